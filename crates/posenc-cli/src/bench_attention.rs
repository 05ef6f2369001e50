//! `posenc bench` cases for fused attention (issue 5): the fused kernel with no bias, ALiBi and a
//! T5 relative table, and the materialized-bias path, causal, 8 heads, d = 64.
//!
//! Attention is compute-bound, so `gbps` / `ratio_to_stream` (bytes = q, k, v and output once)
//! say little here; each case carries `flops` per run (`4 · d` per allowed query/key pair), so
//! GFLOP/s = `flops / median_ns`. Materialized cases carry `tensor_bytes`, the size of their two
//! `(heads, L, L)` tensors; the fused kernel allocates no such tensor (peak-heap measurements are
//! in `cargo bench -p posenc --bench fused_attention`, see BENCHMARKS.md).

use posenc::alibi;
use posenc::attention::{HeadConfig, Mask};
use posenc::fused_attention::{
    fused_attention_with, materialized_bias_attention, FusedBias, FusedOptions, RelativeBias,
    Rotation,
};
use posenc::relative::T5Buckets;

use crate::bench_cmd::{BenchConfig, Case, Timed};

const HEADS: usize = 8;
const HEAD_DIM: usize = 64;

#[derive(Clone, Copy)]
enum Bias {
    None,
    Alibi,
    T5,
}

impl Bias {
    fn name(self) -> &'static str {
        match self {
            Bias::None => "nobias",
            Bias::Alibi => "alibi",
            Bias::T5 => "t5",
        }
    }
}

struct Inputs {
    heads: HeadConfig,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    pos: Vec<u64>,
    slopes: Vec<f64>,
    t5: Option<RelativeBias>,
}

/// Deterministic values in [-1, 1) (the same generator as the RoPE cases).
fn values(n: usize, seed: u64) -> Vec<f32> {
    crate::bench_rope::values(n, seed, |v| v)
}

fn inputs(len: usize, bias: Bias) -> Inputs {
    let heads = HeadConfig {
        n_q_heads: HEADS,
        n_kv_heads: HEADS,
        head_dim: HEAD_DIM,
    };
    let n = len * HEADS * HEAD_DIM;
    // The (heads, L + L - 1) table over every relative position of the sequence.
    let t5 = matches!(bias, Bias::T5).then(|| {
        let buckets = T5Buckets {
            bidirectional: false,
            num_buckets: 32,
            max_distance: 128,
        };
        RelativeBias::t5(
            &values(32 * HEADS, 7),
            &buckets,
            HEADS,
            -(len as i64 - 1),
            len as i64 - 1,
        )
        .expect("valid T5 table")
    });
    Inputs {
        heads,
        q: values(n, 1),
        k: values(n, 2),
        v: values(n, 3),
        pos: (0..len as u64).collect(),
        slopes: alibi::slopes(HEADS).expect("ALiBi slopes"),
        t5,
    }
}

fn fused_bias<'a>(x: &'a Inputs, bias: Bias) -> FusedBias<'a> {
    match (bias, &x.t5) {
        (Bias::Alibi, _) => FusedBias::Alibi {
            slopes: &x.slopes,
            symmetric: false,
        },
        (Bias::T5, Some(t)) => FusedBias::Relative(t),
        _ => FusedBias::None,
    }
}

fn case(len: usize, bias: Bias, materialized: bool, suffix: &str) -> Case {
    let path = if materialized {
        "materialized"
    } else {
        "fused"
    };
    let name = format!("attention_{}_{path}{suffix}", bias.name());
    let buffer_bytes = 4 * (len * HEADS * HEAD_DIM * 4) as u64;
    let pairs = len as f64 * (len as f64 + 1.0) / 2.0 * HEADS as f64;
    let flops = 4.0 * HEAD_DIM as f64 * pairs;
    let tensor_bytes = 2 * (HEADS * len * len * 4) as u64;
    let c = Case::new(name, buffer_bytes, move || -> Timed {
        let x = inputs(len, bias);
        let mask = Mask::causal_by_position();
        Box::new(move || {
            let out = if materialized {
                materialized_bias_attention(
                    &x.heads,
                    &x.q,
                    &x.k,
                    &x.v,
                    &x.pos,
                    &x.pos,
                    Rotation::None,
                    fused_bias(&x, bias),
                    &mask,
                    &FusedOptions::default(),
                )
                .map(|m| m.output)
            } else {
                fused_attention_with(
                    &x.heads,
                    &x.q,
                    &x.k,
                    &x.v,
                    &x.pos,
                    &x.pos,
                    Rotation::None,
                    fused_bias(&x, bias),
                    &mask,
                    &FusedOptions::default(),
                )
            };
            std::hint::black_box(out.expect("attention on valid inputs"));
        })
    })
    .with("seq_len", len as u64)
    .with("heads", HEADS as u64)
    .with("head_dim", HEAD_DIM as u64)
    .with("causal", true)
    .with("flops", flops);
    if materialized {
        c.with("tensor_bytes", tensor_bytes)
    } else {
        c
    }
}

/// The attention cases: at L = 4096 (256 with `--quick`) the fused kernel and the materialized
/// path for each bias; at L = 16384 (512 with `--quick`) the fused kernel only.
pub fn cases(cfg: &BenchConfig) -> Vec<Case> {
    let short = cfg.pick(4096, 256);
    let long = cfg.pick(16384, 512);
    let mut out = Vec::new();
    for bias in [Bias::None, Bias::Alibi, Bias::T5] {
        out.push(case(short, bias, false, ""));
    }
    for bias in [Bias::None, Bias::Alibi, Bias::T5] {
        out.push(case(short, bias, true, "").few_runs(3));
    }
    for bias in [Bias::None, Bias::Alibi, Bias::T5] {
        out.push(case(long, bias, false, "_16k").few_runs(3));
    }
    out
}
