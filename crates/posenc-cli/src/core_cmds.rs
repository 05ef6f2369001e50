//! The scheme subcommands: `rope`, `inspect` (and the table commands in `tables`).
//!
//! Output contract (other tools parse it): with `--json`, exactly one JSON object on stdout;
//! floats are printed with full precision (shortest representation that round-trips).

use std::path::PathBuf;

use anyhow::{bail, Context};
use posenc::config::{parse_config, ModelConfig};
use posenc::diagnostics::{frequency_criterion, men_base_lower_bound, pair_report, Band};
use posenc::rope::{
    deepseek_softmax_scale_correction, yarn_correction_range, Precision, RopeParams, RopeScaling,
    RopeTable,
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
    /// Training context to compare against (default: the config's
    /// `original_max_position_embeddings`, else `max_position_embeddings`).
    #[arg(long)]
    original: Option<usize>,
    /// Target context (default: the larger of `max_position_embeddings` and training context × factor).
    #[arg(long)]
    context: Option<usize>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Reads and parses a config file, with errors that name the argument (`what`) and the file.
pub fn read_config(path: &PathBuf, what: &str) -> anyhow::Result<ModelConfig> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
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
        Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => bail!(
            "invalid --positions: a position is too large (max {}), got `{text}`",
            u64::MAX
        ),
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
    let cfg = read_config(&args.config, "--config")?;
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

/// Largest context `posenc inspect` searches the Men et al. lower bound for (the search costs a
/// few full scans of `context × pairs` cosines); above it the bound is reported as not computed.
pub const CLI_BOUND_CAP: usize = 1 << 20;

/// Training and target contexts for [`inspect_report`], overriding what the config implies.
#[derive(Debug, Clone, Copy, Default)]
pub struct Contexts {
    /// Training context (`--original`).
    pub original: Option<usize>,
    /// Target context (`--context`).
    pub extended: Option<usize>,
}

/// The scaling's context factor, if it has one (LongRoPE: explicit or max / original, as HF).
fn scaling_factor(p: &RopeParams) -> Option<f64> {
    match &p.scaling {
        RopeScaling::Default => None,
        RopeScaling::Linear { factor }
        | RopeScaling::Ntk { factor }
        | RopeScaling::Dynamic { factor }
        | RopeScaling::Proportional { factor, .. } => Some(*factor),
        RopeScaling::Yarn(y) => Some(y.factor),
        RopeScaling::Llama3(l) => Some(l.factor),
        RopeScaling::LongRope(l) => Some(l.factor.unwrap_or(
            p.max_position_embeddings as f64 / l.original_max_position_embeddings as f64,
        )),
    }
}

/// `(original, where it came from, extended, where it came from)` for one layer.
fn layer_contexts(
    p: &RopeParams,
    over: Contexts,
) -> anyhow::Result<(usize, &'static str, usize, &'static str)> {
    let named = match &p.scaling {
        RopeScaling::Yarn(y) => Some(y.original_max_position_embeddings),
        RopeScaling::Llama3(l) => Some(l.original_max_position_embeddings),
        RopeScaling::LongRope(l) => Some(l.original_max_position_embeddings),
        _ => None,
    };
    let (original, original_from) = match (over.original, named) {
        (Some(o), _) => (o, "--original"),
        (None, Some(o)) => (o, "original_max_position_embeddings"),
        (None, None) => (p.max_position_embeddings, "max_position_embeddings"),
    };
    let scaled = scaling_factor(p)
        .filter(|f| *f > 1.0)
        .map(|f| (original as f64 * f).round().min(usize::MAX as f64 / 2.0) as usize);
    let (extended, extended_from) = match (over.extended, scaled) {
        (Some(e), _) => (e, "--context"),
        (None, Some(s)) if s > p.max_position_embeddings => (s, "training context × factor"),
        (None, _) => (p.max_position_embeddings, "max_position_embeddings"),
    };
    if original == 0 || extended == 0 {
        bail!("invalid --original / --context: expected positive numbers of tokens");
    }
    Ok((original, original_from, extended, extended_from))
}

/// The `posenc inspect` report as JSON (also used by the explorer's config box).
///
/// Each layer carries its `sliding_window` (or null) and the contexts its analysis uses,
/// `effective_original_context` and `effective_extended_context`: `min(window, context)` for a
/// sliding layer, which never sees a relative distance of `window` or more; the plain contexts
/// otherwise. The per-pair turns, the incomplete-turn lists and the base bound use those.
///
/// The Men et al. criterion is checked at every `m` up to `min(context, bound_cap)` and the lower
/// bound on the base is searched only for contexts up to `bound_cap` (the rest is reported as
/// not computed, with the reason).
pub fn inspect_report(
    cfg: &ModelConfig,
    over: Contexts,
    bound_cap: usize,
) -> anyhow::Result<Value> {
    let bound_cap = bound_cap.min(posenc::diagnostics::MAX_CRITERION_LEN);
    let mut layers = Vec::new();
    for l in &cfg.layers {
        let p = &l.params;
        let (original, original_from, extended, extended_from) = layer_contexts(p, over)?;
        let seq_for_freqs = match p.scaling {
            // Report what the model uses at the target length.
            RopeScaling::Dynamic { .. } | RopeScaling::LongRope(_) => Some(extended),
            _ => None,
        };
        let freqs = p.frequencies(seq_for_freqs, Precision::Exact)?;
        // A sliding layer never sees a relative distance >= its window: the wavelength / turn
        // analysis and the base bound use min(window, context). The frequencies stay those of the
        // whole sequence (dynamic NTK and LongRoPE follow its length, not the window).
        let (eff_original, eff_extended) = match l.sliding_window {
            Some(w) => (original.min(w), extended.min(w)),
            None => (original, extended),
        };
        let pairs = pair_report(p, eff_original, eff_extended, seq_for_freqs)?;
        let select = |keep: &dyn Fn(&posenc::diagnostics::PairReport) -> bool| -> Vec<usize> {
            pairs.iter().filter(|r| keep(r)).map(|r| r.pair).collect()
        };
        let incomplete = select(&|r| r.incomplete_in_original);
        let incomplete_extended = select(&|r| r.incomplete_in_extended);
        let interpolated = select(&|r| r.band == Band::Interpolated);
        let blended = select(&|r| r.band == Band::Blended);
        let rescaled = select(&|r| r.band == Band::Rescaled);
        let bands = match &p.scaling {
            RopeScaling::Yarn(y) => {
                let (low, high) = yarn_correction_range(y, p.rotary_dim, p.base);
                json!({"kind": "yarn", "extrapolated_below_pair": low, "interpolated_from_pair": high,
                       "factor": y.factor, "beta_fast": y.beta_fast, "beta_slow": y.beta_slow, "truncate": y.truncate,
                       "mscale": y.mscale, "mscale_all_dim": y.mscale_all_dim,
                       "deepseek_softmax_scale_correction": y.mscale_all_dim.map(|m| deepseek_softmax_scale_correction(y.factor, m))})
            }
            RopeScaling::Llama3(l3) => {
                let (low_wl, high_wl) = posenc::rope::llama3_wavelength_bounds(l3);
                json!({"kind": "llama3", "low_freq_wavelen": low_wl, "high_freq_wavelen": high_wl, "factor": l3.factor})
            }
            _ => Value::Null,
        };
        // Men et al.: the unscaled base against the training context, the frequencies in use
        // against the target one, and the smallest base that would do for the target.
        // The unscaled frequencies as the model has them (proportional RoPE keeps its frozen
        // pairs at frequency 0, which add 1 each to the sum).
        let unscaled: Vec<f64> = pairs.iter().map(|r| r.inv_freq_unscaled).collect();
        let unscaled_check = frequency_criterion(&unscaled, eff_original.min(bound_cap), true)?;
        let scaled_check = frequency_criterion(&freqs.inv_freq, eff_extended.min(bound_cap), true)?;
        let (bound, bound_note) = if matches!(p.scaling, RopeScaling::Proportional { .. }) {
            (None, Some("not computed: the bound assumes every pair turns at base^(-2i/d), proportional RoPE freezes some".to_string()))
        } else if eff_extended > bound_cap {
            (
                None,
                Some(format!(
                    "not computed: the target context {eff_extended} is above the cap of {bound_cap}"
                )),
            )
        } else {
            let step = if eff_extended > 131_072 { 0.05 } else { 0.02 };
            match men_base_lower_bound(p.rotary_dim, eff_extended, step) {
                Ok(b) => (Some(b), None),
                Err(e) => (None, Some(e.to_string())),
            }
        };
        layers.push(json!({
            "layer_type": l.layer_type,
            "rope_type": freqs.rope_type,
            "params": p,
            "rotary_dim": p.rotary_dim,
            "attention_factor": freqs.attention_factor,
            "frequencies_at_seq_len": seq_for_freqs,
            "original_context": original,
            "original_context_from": original_from,
            "extended_context": extended,
            "extended_context_from": extended_from,
            "sliding_window": l.sliding_window,
            "effective_original_context": eff_original,
            "effective_extended_context": eff_extended,
            "pairs": pairs.iter().map(|r| json!({
                "pair": r.pair, "inv_freq_unscaled": r.inv_freq_unscaled, "inv_freq": r.inv_freq,
                "wavelength": r.wavelength, "turns_in_original": r.turns_in_original,
                "turns_in_extended": r.turns_in_extended,
                "incomplete_in_original": r.incomplete_in_original, "incomplete_in_extended": r.incomplete_in_extended,
                "interpolation": r.interpolation, "band": band_name(r.band),
            })).collect::<Vec<_>>(),
            "pairs_incomplete_in_original": incomplete,
            "pairs_incomplete_in_extended": incomplete_extended,
            "pairs_interpolated": interpolated,
            "pairs_blended": blended,
            "pairs_rescaled": rescaled,
            "bands": bands,
            "base_bound": {
                "criterion": "sum_i cos(m * theta_i) >= 0 for all m < L (Men et al. 2024), checked at every m",
                "base": p.base,
                "unscaled_checked_up_to": unscaled_check.context,
                "unscaled_base_holds_for_original": unscaled_check.holds,
                "unscaled_first_violation": unscaled_check.first_violation,
                "scaled_checked_up_to": scaled_check.context,
                "scaled_frequencies_hold_for_extended": scaled_check.holds,
                "scaled_first_violation": scaled_check.first_violation,
                "lower_bound_for_extended": bound,
                "lower_bound_note": bound_note,
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
        "sliding_window": cfg.sliding_window,
        "layers": layers,
        "warnings": cfg.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
    }))
}

/// A JSON number as text (`?` when absent).
fn num(v: &Value) -> String {
    match v {
        Value::Null => "?".into(),
        other => other.to_string(),
    }
}

/// The readable form of an [`inspect_report`] (what `posenc inspect` prints; the explorer shows it too).
pub fn inspect_text(report: &Value) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "model_type {}, head_dim {}, heads {} (kv {}), max_position_embeddings {} (original {})",
        report["model_type"].as_str().unwrap_or("?"),
        num(&report["head_dim"]),
        num(&report["num_attention_heads"]),
        if report["num_key_value_heads"].is_null() {
            num(&report["num_attention_heads"])
        } else {
            num(&report["num_key_value_heads"])
        },
        num(&report["max_position_embeddings"]),
        if report["original_max_position_embeddings"].is_null() {
            "not given".into()
        } else {
            num(&report["original_max_position_embeddings"])
        },
    );
    for l in report["layers"].as_array().into_iter().flatten() {
        // The contexts the pair analysis and the bound use (min(window, context) for sliding layers).
        let original = num(&l["effective_original_context"]);
        let extended = num(&l["effective_extended_context"]);
        let _ = writeln!(w);
        let _ = writeln!(
            w,
            "[{}] rope_type {}  base {}  rotary_dim {}  attention_factor {}",
            l["layer_type"].as_str().unwrap_or(""),
            l["rope_type"].as_str().unwrap_or(""),
            num(&l["params"]["base"]),
            num(&l["rotary_dim"]),
            num(&l["attention_factor"]),
        );
        let _ = writeln!(
            w,
            "  training context {} (from {}), target context {} (from {}); override with --original / --context",
            num(&l["original_context"]),
            l["original_context_from"].as_str().unwrap_or("?"),
            num(&l["extended_context"]),
            l["extended_context_from"].as_str().unwrap_or("?"),
        );
        if !l["sliding_window"].is_null() {
            let window = num(&l["sliding_window"]);
            if l["effective_extended_context"] != l["extended_context"]
                || l["effective_original_context"] != l["original_context"]
            {
                let _ = writeln!(
                    w,
                    "  sliding window {window}: relative distances stay below {window}, so this layer's effective context is {extended} (training {original}); the analysis below uses it"
                );
            } else {
                let _ = writeln!(
                    w,
                    "  sliding window {window}: not below the {extended}-token target context, so it limits nothing here"
                );
            }
        }
        if !l["frequencies_at_seq_len"].is_null() {
            let _ = writeln!(
                w,
                "  frequencies as used at seq_len {}",
                num(&l["frequencies_at_seq_len"])
            );
        }
        let _ = writeln!(
            w,
            "  pair  inv_freq      wavelength    turns/train  turns/target  interp   band"
        );
        for r in l["pairs"].as_array().into_iter().flatten() {
            let mut flags = Vec::new();
            if r["incomplete_in_original"] == true {
                flags.push("< 1 turn in training window");
            }
            if r["incomplete_in_extended"] == true {
                flags.push("< 1 turn in target window");
            }
            let _ = writeln!(
                w,
                "  {:>4}  {:<12.5e}  {:<12.5e}  {:<11.3}  {:<12.3}  {:<7.3}  {:<12} {}",
                r["pair"].as_u64().unwrap_or(0),
                r["inv_freq"].as_f64().unwrap_or(f64::NAN),
                r["wavelength"].as_f64().unwrap_or(f64::INFINITY),
                r["turns_in_original"].as_f64().unwrap_or(0.0),
                r["turns_in_extended"].as_f64().unwrap_or(0.0),
                r["interpolation"].as_f64().unwrap_or(f64::NAN),
                r["band"].as_str().unwrap_or(""),
                flags.join(", ")
            );
        }
        let count = |key: &str| l[key].as_array().map_or(0, Vec::len);
        let _ = writeln!(
            w,
            "  {} pairs never complete a turn inside the {original}-token training window: past it their angles were never seen in training.",
            count("pairs_incomplete_in_original")
        );
        if count("pairs_incomplete_in_extended") > 0 {
            let _ = writeln!(
                w,
                "  {} pairs still complete no turn inside the {extended}-token target window after scaling.",
                count("pairs_incomplete_in_extended")
            );
        }
        let _ = writeln!(
            w,
            "  scaling: {} pairs interpolated, {} blended, {} rescaled, the rest unchanged.",
            count("pairs_interpolated"),
            count("pairs_blended"),
            count("pairs_rescaled")
        );
        let b = &l["bands"];
        match b["kind"].as_str() {
            Some("yarn") => {
                let _ = writeln!(
                    w,
                    "  YaRN bands (beta_fast {}, beta_slow {}, truncate {}): pairs below {} keep their frequency (extrapolated), pairs from {} on are divided by the factor {} (interpolated), a linear ramp blends those between.",
                    num(&b["beta_fast"]), num(&b["beta_slow"]), num(&b["truncate"]),
                    num(&b["extrapolated_below_pair"]), num(&b["interpolated_from_pair"]), num(&b["factor"])
                );
                if let Some(c) = b["deepseek_softmax_scale_correction"].as_f64() {
                    let _ = writeln!(
                        w,
                        "  DeepSeek softmax-scale correction mscale(factor, mscale_all_dim)^2 = {c} (applied to 1/sqrt(d) in attention, on top of the attention factor)."
                    );
                }
            }
            Some("llama3") => {
                let _ = writeln!(
                    w,
                    "  Llama 3 bands: wavelengths below {} positions are kept, above {} divided by the factor {}, in between smoothly blended.",
                    num(&b["high_freq_wavelen"]), num(&b["low_freq_wavelen"]), num(&b["factor"])
                );
            }
            _ => {}
        }
        let bb = &l["base_bound"];
        let verdict = |holds: &Value, first: &Value, upto: &Value, full: &str| {
            if holds != true {
                format!("fails first at m = {}", num(first))
            } else if num(upto) == full {
                "holds".to_string()
            } else {
                format!("holds for every m < {} (not checked further)", num(upto))
            }
        };
        let _ = writeln!(w, "  base bound (Men et al. 2024, sum_i cos(m θ_i) >= 0 for every m < L, checked at every m):");
        let _ = writeln!(
            w,
            "    unscaled base {} over the {original}-token training context: {}",
            num(&bb["base"]),
            verdict(
                &bb["unscaled_base_holds_for_original"],
                &bb["unscaled_first_violation"],
                &bb["unscaled_checked_up_to"],
                &original
            )
        );
        let _ = writeln!(
            w,
            "    frequencies in use over the {extended}-token target context: {}",
            verdict(
                &bb["scaled_frequencies_hold_for_extended"],
                &bb["scaled_first_violation"],
                &bb["scaled_checked_up_to"],
                &extended
            )
        );
        let _ = writeln!(
            w,
            "    smallest base that satisfies it for {extended} tokens: {}",
            match bb["lower_bound_for_extended"].as_f64() {
                Some(v) => format!("{v:.3e}"),
                None => bb["lower_bound_note"]
                    .as_str()
                    .unwrap_or("none found")
                    .to_string(),
            }
        );
    }
    let warnings = report["warnings"].as_array().cloned().unwrap_or_default();
    if !warnings.is_empty() {
        let _ = writeln!(w);
    }
    for warning in &warnings {
        let _ = writeln!(w, "warning: {}", warning.as_str().unwrap_or(""));
    }
    out
}

/// `posenc inspect`.
pub fn inspect(args: InspectArgs) -> anyhow::Result<i32> {
    let cfg = read_config(&args.file, "FILE")?;
    let over = Contexts {
        original: args.original,
        extended: args.context,
    };
    let report = inspect_report(&cfg, over, CLI_BOUND_CAP)?;
    if args.json {
        println!("{report}");
        return Ok(0);
    }
    println!("{}:", args.file.display());
    print!("{}", inspect_text(&report));
    Ok(0)
}
