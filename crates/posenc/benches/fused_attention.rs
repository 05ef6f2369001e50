//! Fused attention benchmarks (issue 5): speed of the fused kernel with no bias, ALiBi and a T5
//! relative table, against the materialized-bias path, plus peak heap memory.
//!
//! * `cargo bench -p posenc --bench fused_attention` runs the criterion groups (L = 1024 and
//!   4096, 8 heads, d = 64, causal; a decode step).
//! * `FUSED_REPORT=1 cargo bench -p posenc --bench fused_attention` instead prints the report used
//!   for BENCHMARKS.md: per variant, the median and minimum wall time over `FUSED_RUNS`
//!   (default 3) interleaved rounds, GFLOP/s, CPU seconds per run, and the peak heap measured by
//!   the counting allocator below, at L = 16384 (fused) and L = 4096 (fused and materialized);
//!   `FUSED_MATERIALIZED=0` skips the materialized path. `FUSED_REPORT_LENS=2048,4096` picks the lengths (materialized only up to
//!   4096).
//!
//! FLOP count: `4 · head_dim` per (query, key) pair the mask allows, summed over heads
//! (`2·d` for `q·k`, `2·d` for `p·v`); causal attention allows `L(L+1)/2` pairs per head.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use posenc::alibi;
use posenc::attention::{HeadConfig, Mask};
use posenc::fused_attention::{
    fused_attention_with, materialized_bias_attention, FusedBias, FusedOptions, RelativeBias,
    Rotation, TileKernel,
};
use posenc::relative::T5Buckets;

/// `System` with a count of live bytes and their peak, to measure peak heap memory.
struct CountingAlloc;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; only counters are updated.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let now = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size
                    - layout.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const HEADS: usize = 8;
const HEAD_DIM: usize = 64;

struct Inputs {
    heads: HeadConfig,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    pos: Vec<u64>,
    slopes: Vec<f64>,
    t5: RelativeBias,
}

/// Deterministic values in [-1, 1) (xorshift; quality does not matter for timing).
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

fn inputs(len: usize) -> Inputs {
    let heads = HeadConfig::mha(HEADS, HEAD_DIM).expect("valid heads");
    let n = len * heads.q_width();
    let buckets = T5Buckets {
        bidirectional: false,
        num_buckets: 32,
        max_distance: 128,
    };
    let table = values(32 * HEADS, 7);
    // The (heads, Lq + Lk - 1) table over every relative position of the sequence.
    let t5 = RelativeBias::t5(&table, &buckets, HEADS, -(len as i64 - 1), len as i64 - 1)
        .expect("valid table");
    Inputs {
        heads,
        q: values(n, 1),
        k: values(n, 2),
        v: values(n, 3),
        pos: (0..len as u64).collect(),
        slopes: alibi::slopes(HEADS).expect("slopes"),
        t5,
    }
}

#[derive(Clone, Copy, Debug)]
enum Case {
    NoBias,
    Alibi,
    T5,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::NoBias => "nobias",
            Case::Alibi => "alibi",
            Case::T5 => "t5",
        }
    }

    fn bias(self, x: &Inputs) -> FusedBias<'_> {
        match self {
            Case::NoBias => FusedBias::None,
            Case::Alibi => FusedBias::Alibi {
                slopes: &x.slopes,
                symmetric: false,
            },
            Case::T5 => FusedBias::Relative(&x.t5),
        }
    }
}

fn fused(x: &Inputs, case: Case, kernel: TileKernel) -> Vec<f32> {
    fused_attention_with(
        &x.heads,
        &x.q,
        &x.k,
        &x.v,
        &x.pos,
        &x.pos,
        Rotation::None,
        case.bias(x),
        &Mask::causal_by_position(),
        &FusedOptions {
            scale: None,
            kernel,
        },
    )
    .expect("fused attention")
}

fn materialized(x: &Inputs, case: Case) -> (Vec<f32>, usize) {
    let m = materialized_bias_attention(
        &x.heads,
        &x.q,
        &x.k,
        &x.v,
        &x.pos,
        &x.pos,
        Rotation::None,
        case.bias(x),
        &Mask::causal_by_position(),
        &FusedOptions::default(),
    )
    .expect("materialized attention");
    (m.output, m.bias_bytes + m.scores_bytes)
}

fn causal_flops(len: usize) -> f64 {
    let pairs = len as f64 * (len as f64 + 1.0) / 2.0;
    4.0 * HEAD_DIM as f64 * pairs * HEADS as f64
}

/// CPU seconds (user + system) of this process so far, from `/proc/self/stat` (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses): utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    // Clock ticks are 100 per second on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// What one report row runs.
#[derive(Clone, Copy)]
enum Variant {
    Fused(Case, TileKernel),
    Materialized(Case),
}

impl Variant {
    fn label(self) -> String {
        match self {
            Variant::Fused(c, k) => format!("fused {} ({k:?})", c.name()),
            Variant::Materialized(c) => format!("materialized {}", c.name()),
        }
    }

    fn run(self, x: &Inputs) -> (Vec<f32>, usize) {
        match self {
            Variant::Fused(c, k) => (fused(x, c, k), 0),
            Variant::Materialized(c) => materialized(x, c),
        }
    }
}

/// The report: for each length, one run per variant for peak heap, then `FUSED_RUNS` rounds
/// in which every variant runs once (interleaved, so background load hits all of them alike);
/// median and minimum wall time per variant, GFLOP/s from the median, CPU seconds per run.
fn report() {
    let runs: usize = env_or("FUSED_RUNS", 3).max(1);
    let lens: Vec<usize> = std::env::var("FUSED_REPORT_LENS")
        .unwrap_or_else(|_| "16384,4096".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let with_materialized = std::env::var("FUSED_MATERIALIZED").as_deref() != Ok("0");
    println!(
        "fused attention report: {HEADS} heads, d = {HEAD_DIM}, causal, f32, {runs} interleaved rounds, {} threads",
        rayon::current_num_threads()
    );
    for len in lens {
        let x = inputs(len);
        let buffers = 4 * x.q.len() * 4; // q, k, v and the output, f32
        let base = LIVE.load(Ordering::Relaxed);
        let inputs_bytes = 3 * x.q.len() * 4;
        println!(
            "L = {len}: q/k/v/output buffers {:.1} MiB (heap before the calls {:.1} MiB: q, k, v, T5 table)",
            buffers as f64 / 1048576.0,
            base as f64 / 1048576.0
        );
        let mut variants = Vec::new();
        for case in [Case::NoBias, Case::Alibi, Case::T5] {
            for kernel in [TileKernel::Simd, TileKernel::Gemm] {
                variants.push(Variant::Fused(case, kernel));
            }
        }
        if with_materialized && len <= 4096 {
            for case in [Case::NoBias, Case::Alibi, Case::T5] {
                variants.push(Variant::Materialized(case));
            }
        }
        // Peak heap, one run each (also the warm-up).
        let mut peaks = Vec::new();
        let mut tensors = Vec::new();
        for v in &variants {
            PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
            let (out, t) = v.run(&x);
            drop(out);
            peaks.push(PEAK.load(Ordering::Relaxed));
            tensors.push(t);
        }
        let mut times = vec![Vec::new(); variants.len()];
        let mut cpu = vec![0.0f64; variants.len()];
        for _ in 0..runs {
            for (i, v) in variants.iter().enumerate() {
                let c0 = cpu_seconds();
                let t = Instant::now();
                drop(v.run(&x));
                times[i].push(t.elapsed().as_secs_f64());
                cpu[i] += cpu_seconds() - c0;
            }
        }
        let median = |t: &Vec<f64>| {
            let mut t = t.clone();
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        };
        let min = |t: &Vec<f64>| t.iter().copied().fold(f64::INFINITY, f64::min);
        let nobias = (median(&times[0]), min(&times[0]));
        let fused_of = |c: Case| {
            variants
                .iter()
                .position(
                    |v| matches!(v, Variant::Fused(cc, TileKernel::Simd) if cc.name() == c.name()),
                )
                .map(|i| median(&times[i]))
                .unwrap_or(f64::NAN)
        };
        for (i, v) in variants.iter().enumerate() {
            let (med, mn) = (median(&times[i]), min(&times[i]));
            let mut note = String::new();
            match v {
                Variant::Fused(c, TileKernel::Simd) if !matches!(c, Case::NoBias) => {
                    note = format!(
                        "  bias cost vs nobias: {:+.1}% (median), {:+.1}% (min)",
                        (med / nobias.0 - 1.0) * 100.0,
                        (mn / nobias.1 - 1.0) * 100.0
                    );
                }
                Variant::Materialized(c) => {
                    note = format!(
                        "  tensors {:.0} MiB; fused (Simd) is {:.2}x faster",
                        tensors[i] as f64 / 1048576.0,
                        med / fused_of(*c)
                    );
                }
                _ => {}
            }
            println!(
                "  {:<24} median {:8.3} s  min {:8.3} s  {:6.1} GFLOP/s  cpu {:6.2} s/run  peak heap {:8.1} MiB = {:6.3}x buffers{note}",
                v.label(),
                med,
                mn,
                causal_flops(len) / med / 1e9,
                cpu[i] / runs as f64,
                peaks[i] as f64 / 1048576.0,
                // q, k, v were allocated before; the T5 table and anything else count.
                (peaks[i] - base + inputs_bytes) as f64 / buffers as f64,
            );
        }
    }
}

fn bench_fused(c: &mut Criterion) {
    for len in [1024usize, 4096] {
        let x = inputs(len);
        let mut group = c.benchmark_group(format!("fused_attention_L{len}"));
        group.sample_size(10);
        group.throughput(Throughput::Elements(causal_flops(len) as u64));
        for case in [Case::NoBias, Case::Alibi, Case::T5] {
            for kernel in [TileKernel::Simd, TileKernel::Gemm] {
                group.bench_function(
                    BenchmarkId::new(format!("fused_{}", case.name()), format!("{kernel:?}")),
                    |b| b.iter(|| fused(&x, case, kernel)),
                );
            }
            group.bench_function(
                BenchmarkId::new(format!("materialized_{}", case.name()), "gemm"),
                |b| b.iter(|| materialized(&x, case)),
            );
        }
        group.finish();
    }
}

/// One decode step: 1 query at the end of a 4096-token cache, ALiBi.
fn bench_decode(c: &mut Criterion) {
    let len = 4096;
    let x = inputs(len);
    let q = &x.q[..x.heads.q_width()];
    let qpos = [len as u64 - 1];
    c.bench_function("fused_attention_decode_L4096_alibi", |b| {
        b.iter(|| {
            fused_attention_with(
                &x.heads,
                q,
                &x.k,
                &x.v,
                &qpos,
                &x.pos,
                Rotation::None,
                Case::Alibi.bias(&x),
                &Mask::causal_by_position(),
                &FusedOptions::default(),
            )
            .expect("decode")
        })
    });
}

criterion_group!(benches, bench_fused, bench_decode);

fn main() {
    if std::env::var_os("FUSED_REPORT").is_some() {
        report();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
