//! posenc's in-place RoPE against candle-nn's CPU `rope` (half-split) and `rope_i` (interleaved),
//! and against a straight translation of Hugging Face's eager `rotate_half` path, on the same
//! shapes and dtypes, in one process and run.
//!
//! Shape: 32 query + 8 key heads of d = 128 in candle's `(batch, heads, seq, d)` order; q and k
//! are both rotated (candle: two calls returning new tensors; posenc: one in-place call with the
//! same cos/sin table). Cases: a prefill whose q + k is 128 MB in f32 (6250 tokens; the same
//! token count in 16-bit dtypes), and a one-token decode step. Each case is run once to warm up,
//! then `RUNS` times (at least 2000 for the decode step); the median is reported. The outputs are compared before timing.
//!
//! ```sh
//! cd bench/candle-compare && cargo run --release            # RUNS=15 by default
//! ```

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use half::{bf16, f16};
use posenc::kernels::{hf_eager, rope_qk_inplace, AxisOrder, CosSin, Element, QkShape};
use posenc::rope::{Precision, RopeLayout, RopeParams, RopeTable};

const Q_HEADS: usize = 32;
const KV_HEADS: usize = 8;
const D: usize = 128;

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn median_ns(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut v: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_nanos() as f64
        })
        .collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

trait Dt: Element {
    const CANDLE: DType;
    const NAME: &'static str;
    fn from_f32(v: f32) -> Self;
}
impl Dt for f32 {
    const CANDLE: DType = DType::F32;
    const NAME: &'static str = "f32";
    fn from_f32(v: f32) -> Self {
        v
    }
}
impl Dt for bf16 {
    const CANDLE: DType = DType::BF16;
    const NAME: &'static str = "bf16";
    fn from_f32(v: f32) -> Self {
        bf16::from_f32(v)
    }
}
impl Dt for f16 {
    const CANDLE: DType = DType::F16;
    const NAME: &'static str = "f16";
    fn from_f32(v: f32) -> Self {
        f16::from_f32(v)
    }
}

fn to_f32<T: Dt>(x: &[T]) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    T::widen(x, &mut out);
    out
}

/// What both comparisons share: positions (0..seq, or the decode step's 4095), their cos/sin
/// table, the f32 inputs and the `(b, h, s, d)` shape.
struct Inputs {
    positions: Vec<u64>,
    table: RopeTable,
    q0: Vec<f32>,
    k0: Vec<f32>,
    shape: QkShape,
}

fn inputs(seq: usize) -> Inputs {
    let freqs = RopeParams::new(500_000.0, D)
        .and_then(|p| p.frequencies(None, Precision::Exact))
        .expect("valid RoPE parameters");
    let first = if seq == 1 { 4095 } else { 0 };
    let positions: Vec<u64> = (first..first + seq as u64).collect();
    let table = RopeTable::new(&freqs, &positions).expect("table");
    Inputs {
        positions,
        table,
        q0: values(seq * Q_HEADS * D, 1),
        k0: values(seq * KV_HEADS * D, 2),
        shape: QkShape {
            batch: 1,
            seq,
            head_dim: D,
            order: AxisOrder::Bhsd,
        },
    }
}

struct Row {
    case: String,
    posenc_ns: f64,
    candle_ns: f64,
    max_abs_diff: f32,
}

fn compare<T: Dt>(seq: usize, layout: RopeLayout, runs: usize) -> candle_core::Result<Row> {
    let dev = Device::Cpu;
    let Inputs {
        positions,
        table,
        q0,
        k0,
        shape,
    } = inputs(seq);
    let tensor = |v: &[f32], heads: usize| {
        Tensor::from_slice(v, (1, heads, seq, D), &dev).and_then(|t| t.to_dtype(T::CANDLE))
    };
    let (qc, kc) = (tensor(&q0, Q_HEADS)?, tensor(&k0, KV_HEADS)?);
    let cos = Tensor::from_slice(&table.cos, (seq, D / 2), &dev)?.to_dtype(T::CANDLE)?;
    let sin = Tensor::from_slice(&table.sin, (seq, D / 2), &dev)?.to_dtype(T::CANDLE)?;
    let candle_rope = |x: &Tensor| match layout {
        RopeLayout::HalfSplit => candle_nn::rotary_emb::rope(x, &cos, &sin),
        RopeLayout::Interleaved => candle_nn::rotary_emb::rope_i(x, &cos, &sin),
    };
    // Same inputs (rounded to T once), same table: the outputs must agree.
    let mut q: Vec<T> = q0.iter().map(|&v| T::from_f32(v)).collect();
    let mut k: Vec<T> = k0.iter().map(|&v| T::from_f32(v)).collect();
    let rows = CosSin::Table(&table);
    rope_qk_inplace(
        &mut q, Q_HEADS, &mut k, KV_HEADS, &shape, &positions, rows, layout,
    )
    .expect("valid shapes");
    let cq: Vec<f32> = candle_rope(&qc)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1()?;
    let max_abs_diff = to_f32(&q)
        .iter()
        .zip(&cq)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);

    let posenc_ns = median_ns(runs, || {
        rope_qk_inplace(
            &mut q, Q_HEADS, &mut k, KV_HEADS, &shape, &positions, rows, layout,
        )
        .expect("valid shapes");
        std::hint::black_box((&q, &k));
    });
    let candle_ns = median_ns(runs, || {
        let out = (
            candle_rope(&qc).expect("rope"),
            candle_rope(&kc).expect("rope"),
        );
        std::hint::black_box(out);
    });
    Ok(Row {
        case: format!(
            "{} {} {}",
            if seq == 1 {
                "decode (1 token)"
            } else {
                "prefill 6250 tokens"
            },
            T::NAME,
            match layout {
                RopeLayout::HalfSplit => "rope (half-split)",
                RopeLayout::Interleaved => "rope_i (interleaved)",
            }
        ),
        posenc_ns,
        candle_ns,
        max_abs_diff,
    })
}

/// posenc against the Hugging Face eager translation (f32, half-split, candle's shapes).
fn compare_hf(seq: usize, runs: usize) -> Row {
    let Inputs {
        positions,
        table,
        q0,
        k0,
        shape,
    } = inputs(seq);
    let cos = hf_eager::full_width(&table.cos, table.pairs);
    let sin = hf_eager::full_width(&table.sin, table.pairs);
    let (mut q, mut k) = (q0.clone(), k0.clone());
    let rows = CosSin::Table(&table);
    let layout = RopeLayout::HalfSplit;
    rope_qk_inplace(
        &mut q, Q_HEADS, &mut k, KV_HEADS, &shape, &positions, rows, layout,
    )
    .expect("valid shapes");
    let hq = hf_eager::apply_rotary_pos_emb(&q0, &cos, &sin, seq, D).expect("valid shapes");
    let max_abs_diff = q
        .iter()
        .zip(&hq)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let posenc_ns = median_ns(runs, || {
        rope_qk_inplace(
            &mut q, Q_HEADS, &mut k, KV_HEADS, &shape, &positions, rows, layout,
        )
        .expect("valid shapes");
        std::hint::black_box((&q, &k));
    });
    let hf_ns = median_ns(runs, || {
        let out = (
            hf_eager::apply_rotary_pos_emb(&q0, &cos, &sin, seq, D).expect("valid shapes"),
            hf_eager::apply_rotary_pos_emb(&k0, &cos, &sin, seq, D).expect("valid shapes"),
        );
        std::hint::black_box(out);
    });
    Row {
        case: format!(
            "{} f32 HF eager rotate_half",
            if seq == 1 {
                "decode (1 token)"
            } else {
                "prefill 6250 tokens"
            }
        ),
        posenc_ns,
        candle_ns: hf_ns,
        max_abs_diff,
    }
}

fn main() -> candle_core::Result<()> {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    println!(
        "threads: {} (rayon, shared by posenc and candle); median of {runs} runs",
        rayon_threads()
    );
    println!("| case | posenc | other | other / posenc | max abs diff |");
    println!("|---|---|---|---|---|");
    let mut rows = Vec::new();
    for seq in [6250, 1] {
        // A decode step takes about a microsecond: many more samples.
        let runs = if seq == 1 { runs.max(2000) } else { runs };
        for layout in [RopeLayout::HalfSplit, RopeLayout::Interleaved] {
            rows.push(compare::<f32>(seq, layout, runs)?);
            rows.push(compare::<bf16>(seq, layout, runs)?);
            rows.push(compare::<f16>(seq, layout, runs)?);
        }
        rows.push(compare_hf(seq, runs));
    }
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.1}× | {:.1e} |",
            r.case,
            human(r.posenc_ns),
            human(r.candle_ns),
            r.candle_ns / r.posenc_ns,
            r.max_abs_diff
        );
    }
    let json: Vec<_> = rows
        .iter()
        .map(|r| {
            serde_json::json!({"case": r.case, "posenc_ns": r.posenc_ns, "other_ns": r.candle_ns,
                "speedup": r.candle_ns / r.posenc_ns, "max_abs_diff": r.max_abs_diff})
        })
        .collect();
    eprintln!("{}", serde_json::Value::from(json));
    Ok(())
}

fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn human(ns: f64) -> String {
    if ns < 1e4 {
        format!("{ns:.0} ns")
    } else if ns < 1e7 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{:.1} ms", ns / 1e6)
    }
}
