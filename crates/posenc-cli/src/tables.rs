//! The table subcommands: `alibi`, `t5-buckets`, `sinusoidal`.

use anyhow::bail;
use posenc::relative::{t5_bucket, T5Buckets};
use posenc::sinusoidal::SinusoidalLayout;
use serde_json::json;

/// Most values a table subcommand prints (the JSON would be tens of megabytes past this).
const MAX_PRINTED_VALUES: usize = 4_194_304;

/// Arguments of `posenc alibi`.
#[derive(clap::Args)]
pub struct AlibiArgs {
    /// Number of attention heads.
    #[arg(long)]
    heads: usize,
    /// Also print the bias for `len` queries × `len` keys.
    #[arg(long)]
    len: Option<usize>,
    /// Encoder form `-m|i-j|` instead of the causal `-m(i-j)`.
    #[arg(long)]
    symmetric: bool,
    /// `exact` (the paper's slopes in f64) or `hf` (BLOOM's float32 slopes, bit for bit).
    #[arg(long, default_value = "exact")]
    precision: String,
    /// The machine whose torch arithmetic `hf` reproduces: avx512, avx2 (Intel), amd-avx512,
    /// amd-avx2, default (no vector ISA), or detect (this machine).
    #[arg(long, default_value = "detect")]
    hf_cpu: String,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Arguments of `posenc t5-buckets`.
#[derive(clap::Args)]
pub struct T5Args {
    /// Number of buckets (32 in T5).
    #[arg(long)]
    num_buckets: usize,
    /// Distance past which every position shares the last bucket (128 in T5).
    #[arg(long)]
    max_distance: usize,
    /// Causal (decoder) buckets instead of bidirectional ones.
    #[arg(long)]
    unidirectional: bool,
    /// Relative positions `key - query` to print, as `A:B` (inclusive), for example -600:600.
    #[arg(long, allow_hyphen_values = true)]
    range: String,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Arguments of `posenc sinusoidal`.
#[derive(clap::Args)]
pub struct SinusoidalArgs {
    /// Number of positions (rows).
    #[arg(long)]
    len: usize,
    /// Model dimension (columns).
    #[arg(long)]
    dim: usize,
    /// `interleaved` (Vaswani), `concat` ([sin | cos]) or `fairseq` (concat with d/2-1).
    #[arg(long, default_value = "interleaved")]
    layout: String,
    /// Frequency base.
    #[arg(long, default_value_t = 10000.0)]
    base: f64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Parses a layout name.
pub fn parse_layout(name: &str) -> anyhow::Result<SinusoidalLayout> {
    Ok(match name {
        "interleaved" => SinusoidalLayout::Interleaved,
        "concat" => SinusoidalLayout::Concat,
        "fairseq" => SinusoidalLayout::Fairseq,
        _ => bail!("invalid --layout: expected interleaved, concat or fairseq, got `{name}`"),
    })
}

fn check_printable(what: &str, count: usize) -> anyhow::Result<()> {
    if count > MAX_PRINTED_VALUES {
        bail!(
            "invalid {what}: {count} values exceed the cap of {MAX_PRINTED_VALUES} printed values"
        );
    }
    Ok(())
}

/// `posenc alibi`.
pub fn alibi(args: AlibiArgs) -> anyhow::Result<i32> {
    let slopes: Vec<f64> = match args.precision.as_str() {
        "exact" => posenc::alibi::slopes(args.heads)?,
        "hf" => posenc::alibi::slopes_bloom_f32(args.heads, args.hf_cpu.parse()?)?
            .into_iter()
            .map(f64::from)
            .collect(),
        other => bail!("invalid --precision: expected exact or hf, got `{other}`"),
    };
    let bias = match args.len {
        Some(len) => {
            check_printable("--len", args.heads.saturating_mul(len).saturating_mul(len))?;
            Some(posenc::alibi::bias(&slopes, len, len, 0, args.symmetric)?)
        }
        None => None,
    };
    if args.json {
        let mut out = json!({ "slopes": slopes, "symmetric": args.symmetric });
        if let (Some(b), Some(len)) = (&bias, args.len) {
            out["bias"] = json!(bias_cube(b, slopes.len(), len));
        }
        println!("{out}");
        return Ok(0);
    }
    println!(
        "ALiBi slopes for {} heads (bias = -slope × distance, added to scores before softmax):",
        args.heads
    );
    for (h, s) in slopes.iter().enumerate() {
        let window = posenc::alibi::effective_window(*s, 0.01)?;
        println!("  head {h:>3}: slope {s:<12.6e}  weight halves every {:.1} tokens, falls to 1% at {window:.1}", std::f64::consts::LN_2 / s);
    }
    if let (Some(b), Some(len)) = (&bias, args.len) {
        for (h, head) in bias_cube(b, slopes.len(), len).iter().enumerate().take(4) {
            println!("head {h} bias:");
            for row in head.iter().take(16) {
                println!(
                    "  {}",
                    row.iter()
                        .take(16)
                        .map(|x| format!("{x:7.3}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
            }
        }
    }
    Ok(0)
}

/// A flat `[heads][len][len]` bias as nested rows (`len = 0` gives `heads` empty matrices).
fn bias_cube(flat: &[f32], heads: usize, len: usize) -> Vec<Vec<Vec<f64>>> {
    (0..heads)
        .map(|h| {
            (0..len)
                .map(|q| {
                    let start = (h * len + q) * len;
                    flat[start..start + len]
                        .iter()
                        .map(|&x| f64::from(x))
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// Parses `A:B` into an inclusive range.
pub fn parse_range(text: &str) -> anyhow::Result<(i64, i64)> {
    use std::num::IntErrorKind;
    let ends = text
        .split_once(':')
        .map(|(a, b)| (a.trim().parse::<i64>(), b.trim().parse::<i64>()));
    let overflow = |r: &Result<i64, std::num::ParseIntError>| matches!(r, Err(e) if matches!(e.kind(), IntErrorKind::PosOverflow | IntErrorKind::NegOverflow));
    match ends {
        Some((Ok(a), Ok(b))) if a <= b => Ok((a, b)),
        Some((a, b)) if overflow(&a) || overflow(&b) => bail!(
            "invalid --range: an end is too large (min {}, max {}), got `{text}`",
            i64::MIN,
            i64::MAX
        ),
        _ => {
            bail!("invalid --range: expected A:B with integers A <= B, like -600:600, got `{text}`")
        }
    }
}

/// `posenc t5-buckets`.
pub fn t5_buckets(args: T5Args) -> anyhow::Result<i32> {
    let (a, b) = parse_range(&args.range)?;
    let count = (b as i128 - a as i128 + 1) as u128;
    if count > MAX_PRINTED_VALUES as u128 {
        bail!("invalid --range: {count} positions exceed the cap of {MAX_PRINTED_VALUES}");
    }
    let cfg = T5Buckets {
        bidirectional: !args.unidirectional,
        num_buckets: args.num_buckets,
        max_distance: args.max_distance,
    };
    cfg.validate()?;
    let buckets: Vec<usize> = (a..=b)
        .map(|rp| t5_bucket(rp, cfg.bidirectional, cfg.num_buckets, cfg.max_distance))
        .collect::<Result<_, _>>()?;
    if args.json {
        println!(
            "{}",
            json!({ "relative_positions": (a..=b).collect::<Vec<i64>>(), "buckets": buckets,
            "bidirectional": cfg.bidirectional, "num_buckets": cfg.num_buckets, "max_distance": cfg.max_distance })
        );
        return Ok(0);
    }
    println!(
        "T5 buckets ({}, {} buckets, max_distance {}), relative position = key - query:",
        if cfg.bidirectional {
            "bidirectional"
        } else {
            "causal"
        },
        cfg.num_buckets,
        cfg.max_distance
    );
    // Print runs of equal buckets compactly.
    let mut start = a;
    for (i, rp) in (a..=b).enumerate() {
        let last = rp == b || buckets[i + 1] != buckets[i];
        if last {
            if start == rp {
                println!("  {rp:>8}            -> bucket {}", buckets[i]);
            } else {
                println!("  {start:>8} ..= {rp:<8} -> bucket {}", buckets[i]);
            }
            start = rp.saturating_add(1);
        }
    }
    Ok(0)
}

/// `posenc sinusoidal`.
pub fn sinusoidal(args: SinusoidalArgs) -> anyhow::Result<i32> {
    let layout = parse_layout(&args.layout)?;
    check_printable("--len × --dim", args.len.saturating_mul(args.dim))?;
    let table = posenc::sinusoidal::table(args.len, args.dim, args.base, layout)?;
    if args.json {
        let rows: Vec<Vec<f64>> = table
            .chunks(args.dim.max(1))
            .map(|r| r.iter().map(|&x| x as f64).collect())
            .collect();
        println!(
            "{}",
            json!({ "table": rows, "len": args.len, "dim": args.dim, "layout": args.layout, "base": args.base })
        );
        return Ok(0);
    }
    println!(
        "sinusoidal table, {} layout, base {}: {} positions × {} dims (first 8 columns shown)",
        args.layout, args.base, args.len, args.dim
    );
    for (p, row) in table.chunks(args.dim.max(1)).enumerate() {
        println!(
            "  {p:>5}: {}",
            row.iter()
                .take(8)
                .map(|x| format!("{x:+.4}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    Ok(0)
}
