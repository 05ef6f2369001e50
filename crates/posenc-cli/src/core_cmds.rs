//! The scheme subcommands: `rope`, `inspect` (and the table commands in `tables`).
//!
//! Output contract (other tools parse it): with `--json`, exactly one JSON object on stdout;
//! floats are printed with full precision (shortest representation that round-trips).

use std::path::PathBuf;

use anyhow::{bail, Context};
use posenc::config::{parse_config, ModelConfig};
use posenc::diagnostics::{
    base_criterion, frequency_criterion, men_base_lower_bound, pair_report, Band,
};
use posenc::rope::{
    deepseek_softmax_scale_correction, yarn_correction_range, Precision, RopeScaling, RopeTable,
};
use serde_json::{json, Value};

/// Most rows `posenc rope` prints.
const MAX_ROPE_ROWS: usize = 65_536;

/// Arguments of `posenc rope`.
#[derive(clap::Args)]
pub struct RopeArgs {
    /// A Hugging Face config.json.
    #[arg(long)]
    config: PathBuf,
    /// Current sequence length (dynamic NTK and LongRoPE depend on it); also the default rows 0..N.
    #[arg(long)]
    seq_len: Option<usize>,
    /// Explicit positions, comma-separated (for example 0,1,4096,131071).
    #[arg(long, allow_hyphen_values = true)]
    positions: Option<String>,
    /// `exact` (f64 angles) or `hf` (Hugging Face's float32 arithmetic).
    #[arg(long, default_value = "exact")]
    precision: String,
    /// Layer type for configs with per-layer RoPE (for example sliding_attention).
    #[arg(long)]
    layer_type: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Arguments of `posenc inspect`.
#[derive(clap::Args)]
pub struct InspectArgs {
    /// A Hugging Face config.json.
    file: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Reads and parses a config file, with errors that name the file.
pub fn read_config(path: &PathBuf) -> anyhow::Result<ModelConfig> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read --config {}", path.display()))?;
    if meta.len() > posenc::config::MAX_CONFIG_BYTES as u64 {
        bail!(
            "{}: {} bytes is larger than the {} byte cap for a config",
            path.display(),
            meta.len(),
            posenc::config::MAX_CONFIG_BYTES
        );
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_config(&text).with_context(|| format!("{}", path.display()))
}

/// Parses `--positions 0,1,2`.
pub fn parse_positions(text: &str) -> anyhow::Result<Vec<u64>> {
    let parsed: Result<Vec<u64>, _> = text
        .split(',')
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .map(str::parse::<u64>)
        .collect();
    match parsed {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => bail!("invalid --positions: expected comma-separated non-negative integers like 0,1,4096, got `{text}`"),
    }
}

fn layer<'a>(
    cfg: &'a ModelConfig,
    layer_type: Option<&str>,
) -> anyhow::Result<&'a posenc::rope::RopeParams> {
    match layer_type {
        None => Ok(cfg.params()),
        Some(t) => match cfg.layers.iter().find(|l| l.layer_type == t) {
            Some(l) => Ok(&l.params),
            None => {
                let known: Vec<&str> = cfg.layers.iter().map(|l| l.layer_type.as_str()).collect();
                bail!(
                    "invalid --layer-type: expected one of {}, got `{t}`",
                    known.join(", ")
                )
            }
        },
    }
}

fn rows_json(values: &[f32], width: usize) -> Value {
    if width == 0 {
        return json!([]);
    }
    Value::Array(
        values
            .chunks(width)
            .map(|r| json!(r.iter().map(|&x| x as f64).collect::<Vec<f64>>()))
            .collect(),
    )
}

/// `posenc rope`.
pub fn rope(args: RopeArgs) -> anyhow::Result<i32> {
    let cfg = read_config(&args.config)?;
    let precision: Precision = args.precision.parse()?;
    let params = layer(&cfg, args.layer_type.as_deref())?;
    let positions = match (&args.positions, args.seq_len) {
        (Some(p), _) => parse_positions(p)?,
        (None, Some(n)) => {
            if n > MAX_ROPE_ROWS {
                bail!("invalid --seq-len: rows 0..{n} exceed the cap of {MAX_ROPE_ROWS}; pass --positions to pick rows");
            }
            (0..n as u64).collect()
        }
        (None, None) => (0..8).collect(),
    };
    if positions.len() > MAX_ROPE_ROWS {
        bail!(
            "invalid --positions: {} positions exceed the cap of {MAX_ROPE_ROWS}",
            positions.len()
        );
    }
    let freqs = params.frequencies(args.seq_len, precision)?;
    let table = RopeTable::new(&freqs, &positions)?;
    let warnings: Vec<String> = cfg.warnings.iter().map(ToString::to_string).collect();
    if args.json {
        let out = json!({
            "rope_type": freqs.rope_type,
            "rotary_dim": freqs.rotary_dim(),
            "head_dim": params.head_dim,
            "precision": args.precision,
            "seq_len": args.seq_len,
            "inv_freq": freqs.inv_freq,
            "attention_factor": freqs.attention_factor,
            "positions": positions,
            "cos": rows_json(&table.cos, table.pairs),
            "sin": rows_json(&table.sin, table.pairs),
            "warnings": warnings,
        });
        println!("{out}");
    } else {
        println!(
            "rope_type {}  head_dim {}  rotary_dim {}  base {}  attention_factor {}",
            freqs.rope_type,
            params.head_dim,
            freqs.rotary_dim(),
            params.base,
            freqs.attention_factor
        );
        println!("inv_freq (pair: value, wavelength):");
        for (i, f) in freqs.inv_freq.iter().enumerate() {
            println!("  {i:>3}: {f:<24e} {:.6e}", std::f64::consts::TAU / f);
        }
        println!("cos/sin rows (half width, attention factor applied):");
        for (r, p) in positions.iter().enumerate() {
            let (c, s) = table.row(r).context("row")?;
            let show = |v: &[f32]| {
                v.iter()
                    .take(4)
                    .map(|x| format!("{x:+.6}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            println!("  p={p:<8} cos[{} ...] sin[{} ...]", show(c), show(s));
        }
        for w in &warnings {
            println!("warning: {w}");
        }
    }
    Ok(0)
}

fn band_name(b: Band) -> &'static str {
    match b {
        Band::Unchanged => "unchanged",
        Band::Interpolated => "interpolated",
        Band::Blended => "blended",
        Band::Rescaled => "rescaled",
    }
}

/// The `posenc inspect` report as JSON (also used by the explorer).
pub fn inspect_report(cfg: &ModelConfig) -> anyhow::Result<Value> {
    let mut layers = Vec::new();
    for l in &cfg.layers {
        let p = &l.params;
        let original = cfg
            .original_max_position_embeddings
            .unwrap_or(cfg.max_position_embeddings);
        let extended = cfg.max_position_embeddings;
        let seq_for_freqs = match p.scaling {
            // Report what the model uses at its advertised length.
            RopeScaling::Dynamic { .. } | RopeScaling::LongRope(_) => Some(extended),
            _ => None,
        };
        let freqs = p.frequencies(seq_for_freqs, Precision::Exact)?;
        let pairs = pair_report(p, original, extended, seq_for_freqs)?;
        let incomplete: Vec<usize> = pairs
            .iter()
            .filter(|r| r.incomplete_in_original)
            .map(|r| r.pair)
            .collect();
        let interpolated: Vec<usize> = pairs
            .iter()
            .filter(|r| r.band == Band::Interpolated)
            .map(|r| r.pair)
            .collect();
        let blended: Vec<usize> = pairs
            .iter()
            .filter(|r| r.band == Band::Blended)
            .map(|r| r.pair)
            .collect();
        let bands = match &p.scaling {
            RopeScaling::Yarn(y) => {
                let (low, high) = yarn_correction_range(y, p.rotary_dim, p.base);
                json!({"kind": "yarn", "extrapolated_below_pair": low, "interpolated_from_pair": high,
                       "beta_fast": y.beta_fast, "beta_slow": y.beta_slow, "truncate": y.truncate,
                       "deepseek_softmax_scale_correction": y.mscale_all_dim.map(|m| deepseek_softmax_scale_correction(y.factor, m))})
            }
            RopeScaling::Llama3(l3) => {
                let (low_wl, high_wl) = posenc::rope::llama3_wavelength_bounds(l3);
                json!({"kind": "llama3", "low_freq_wavelen": low_wl, "high_freq_wavelen": high_wl})
            }
            _ => Value::Null,
        };
        // Men et al.: the unscaled base against the original context, the frequencies in use
        // against the advertised one, and the smallest base that would do for the advertised one.
        let unscaled_check = base_criterion(p.base, p.rotary_dim, original, true)?;
        let scaled_check = frequency_criterion(&freqs.inv_freq, extended, true)?;
        let step = if extended > 131_072 { 0.05 } else { 0.02 };
        let bound = men_base_lower_bound(p.rotary_dim, extended, step).ok();
        layers.push(json!({
            "layer_type": l.layer_type,
            "rope_type": freqs.rope_type,
            "params": p,
            "rotary_dim": p.rotary_dim,
            "attention_factor": freqs.attention_factor,
            "original_context": original,
            "extended_context": extended,
            "pairs": pairs.iter().map(|r| json!({
                "pair": r.pair, "inv_freq_unscaled": r.inv_freq_unscaled, "inv_freq": r.inv_freq,
                "wavelength": r.wavelength, "turns_in_original": r.turns_in_original,
                "incomplete_in_original": r.incomplete_in_original, "incomplete_in_extended": r.incomplete_in_extended,
                "interpolation": r.interpolation, "band": band_name(r.band),
            })).collect::<Vec<_>>(),
            "pairs_incomplete_in_original": incomplete,
            "pairs_interpolated": interpolated,
            "pairs_blended": blended,
            "bands": bands,
            "base_bound": {
                "criterion": "sum_i cos(m * theta_i) >= 0 for all m < L (Men et al. 2024)",
                "unscaled_base_holds_for_original": unscaled_check.holds,
                "unscaled_first_violation": unscaled_check.first_violation,
                "scaled_frequencies_hold_for_extended": scaled_check.holds,
                "scaled_first_violation": scaled_check.first_violation,
                "lower_bound_for_extended": bound,
                "base": p.base,
            },
        }));
    }
    Ok(json!({
        "model_type": cfg.model_type,
        "head_dim": cfg.head_dim,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "max_position_embeddings": cfg.max_position_embeddings,
        "original_max_position_embeddings": cfg.original_max_position_embeddings,
        "layers": layers,
        "warnings": cfg.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
    }))
}

/// `posenc inspect`.
pub fn inspect(args: InspectArgs) -> anyhow::Result<i32> {
    let cfg = read_config(&args.file)?;
    let report = inspect_report(&cfg)?;
    if args.json {
        println!("{report}");
        return Ok(0);
    }
    println!(
        "{}: model_type {}, head_dim {}, heads {} (kv {}), context {} (original {})",
        args.file.display(),
        cfg.model_type.as_deref().unwrap_or("?"),
        cfg.head_dim,
        cfg.num_attention_heads
            .map_or("?".into(), |h| h.to_string()),
        cfg.num_key_value_heads
            .or(cfg.num_attention_heads)
            .map_or("?".into(), |h| h.to_string()),
        cfg.max_position_embeddings,
        cfg.original_max_position_embeddings
            .map_or("same".into(), |o| o.to_string())
    );
    for l in report["layers"].as_array().into_iter().flatten() {
        println!();
        println!(
            "[{}] rope_type {}  base {}  rotary_dim {}  attention_factor {}",
            l["layer_type"].as_str().unwrap_or(""),
            l["rope_type"].as_str().unwrap_or(""),
            l["params"]["base"],
            l["rotary_dim"],
            l["attention_factor"]
        );
        println!("  pair  inv_freq      wavelength    turns/orig  interp   band");
        for r in l["pairs"].as_array().into_iter().flatten() {
            let flag = if r["incomplete_in_original"].as_bool() == Some(true) {
                "  < 1 turn in training window"
            } else {
                ""
            };
            println!(
                "  {:>4}  {:<12.5e}  {:<12.5e}  {:<10.3}  {:<7.3}  {}{}",
                r["pair"].as_u64().unwrap_or(0),
                r["inv_freq"].as_f64().unwrap_or(f64::NAN),
                r["wavelength"].as_f64().unwrap_or(f64::NAN),
                r["turns_in_original"].as_f64().unwrap_or(f64::NAN),
                r["interpolation"].as_f64().unwrap_or(f64::NAN),
                r["band"].as_str().unwrap_or(""),
                flag
            );
        }
        let n_incomplete = l["pairs_incomplete_in_original"]
            .as_array()
            .map_or(0, Vec::len);
        println!("  {n_incomplete} pairs never complete a turn inside the {}-token training window: their angles past it were never seen in training.", l["original_context"]);
        println!(
            "  scaling: {} pairs interpolated, {} blended.",
            l["pairs_interpolated"].as_array().map_or(0, Vec::len),
            l["pairs_blended"].as_array().map_or(0, Vec::len)
        );
        if !l["bands"].is_null() {
            println!("  bands: {}", l["bands"]);
        }
        let b = &l["base_bound"];
        println!("  base bound (Men et al. 2024, sum_i cos(m θ_i) >= 0 for all m < L):");
        println!(
            "    unscaled base {} over the original context: {}",
            b["base"],
            if b["unscaled_base_holds_for_original"] == true {
                "holds".to_string()
            } else {
                format!("fails first at m = {}", b["unscaled_first_violation"])
            }
        );
        println!(
            "    frequencies in use over the advertised context: {}",
            if b["scaled_frequencies_hold_for_extended"] == true {
                "holds".to_string()
            } else {
                format!("fails first at m = {}", b["scaled_first_violation"])
            }
        );
        println!(
            "    smallest base that satisfies it for {} tokens: {}",
            l["extended_context"],
            b["lower_bound_for_extended"]
                .as_f64()
                .map_or("none found".into(), |v| format!("{v:.3e}"))
        );
    }
    if !cfg.warnings.is_empty() {
        println!();
    }
    for w in &cfg.warnings {
        println!("warning: {w}");
    }
    Ok(0)
}
