//! The scheme subcommands: `rope`, `inspect` (and the table commands in `tables`).
//!
//! Output contract (other tools parse it): with `--json`, exactly one JSON object on stdout;
//! floats are printed with full precision (shortest representation that round-trips).

use std::path::PathBuf;

use anyhow::{bail, Context};
use posenc::config::{parse_config, ModelConfig};
use posenc::diagnostics::{InspectOptions, InspectReport};
use posenc::rope::{Precision, RopeTable};
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
    /// `exact` (f64 angles) or `hf` (Hugging Face's float32 arithmetic, bit for bit).
    #[arg(long, default_value = "exact")]
    precision: String,
    /// The machine whose torch arithmetic `hf` reproduces: avx512, avx2 (Intel), amd-avx512,
    /// amd-avx2, default (no vector ISA), or detect (this machine).
    #[arg(long, default_value = "detect")]
    hf_cpu: String,
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
    let precision = match args.precision.as_str() {
        "exact" => Precision::Exact,
        "hf" => cfg.hf_precision(args.hf_cpu.parse()?),
        other => bail!("invalid --precision: expected exact or hf, got `{other}`"),
    };
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
        let hf_trig = match precision {
            Precision::Hf(cpu) => Some(posenc::torch_f32::trig_backend(cpu).to_string()),
            Precision::HfPolar(_) => Some("libm cosf/sinf, as torch.polar".to_string()),
            Precision::Exact => None,
        };
        let out = json!({
            "model_type": cfg.model_type,
            "hf_class": cfg.hf_class,
            "defaults": cfg.defaults,
            "rope_type": freqs.rope_type,
            "rotary_dim": freqs.rotary_dim(),
            "head_dim": params.head_dim,
            "layout": cfg.layout,
            "precision": precision.to_string(),
            "hf_trig": hf_trig,
            "hf_trig_bit_identical": match precision {
                Precision::Hf(cpu) => Some(posenc::torch_f32::trig_backend(cpu).bit_identical()),
                Precision::HfPolar(_) => Some(true),
                Precision::Exact => None,
            },
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
            "model_type {} ({})  precision {}",
            cfg.model_type.as_deref().unwrap_or("none"),
            cfg.hf_class,
            precision
        );
        match precision {
            Precision::Hf(cpu) => {
                println!("hf cos/sin from {}", posenc::torch_f32::trig_backend(cpu))
            }
            Precision::HfPolar(_) => println!("hf cos/sin from libm, as torch.polar"),
            Precision::Exact => {}
        }
        if !cfg.defaults.is_empty() {
            let list: Vec<String> = cfg
                .defaults
                .iter()
                .map(|(k, v)| format!("{k} ({v})"))
                .collect();
            println!("from the model type's defaults: {}", list.join(", "));
        }
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

/// `posenc inspect`: renders [`InspectReport`].
pub fn inspect(args: InspectArgs) -> anyhow::Result<i32> {
    let cfg = read_config(&args.file, "FILE")?;
    for (flag, v) in [("--original", args.original), ("--context", args.context)] {
        if v == Some(0) {
            bail!("invalid {flag}: expected a positive number of tokens, got 0");
        }
    }
    let options = InspectOptions {
        original: args.original,
        context: args.context,
        ..InspectOptions::default()
    };
    let report = InspectReport::new(&cfg, options)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(0);
    }
    println!("{}:", args.file.display());
    print!("{}", report.to_text());
    Ok(0)
}
