//! Criterion benchmarks of the fast RoPE kernels (`posenc::kernels`) next to the plain
//! reference, the streaming limit and Hugging Face's eager path. `posenc bench` measures the same
//! kernels at the issue's sizes (128 MB q + k, 512 MiB cache) and reports ratios to the stream;
//! these use smaller buffers so that `cargo bench` stays short.
//!
//! ```sh
//! cargo bench -p posenc --bench rope_kernels
//! ```

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use half::{bf16, f16};
use posenc::kernels::{
    fill_rope_table, hf_eager, kshift_inplace, rope_qk_inplace, stream_inplace, AxisOrder, CosSin,
    Element, QkShape,
};
use posenc::rope::{self, Precision, RopeLayout, RopeParams, RopeTable};

const Q_HEADS: usize = 32;
const KV_HEADS: usize = 8;
const D: usize = 128;
/// 32 MB of f32 q + k.
const SEQ: usize = 1562;

fn values<T: Element>(n: usize, from: fn(f32) -> T) -> Vec<T> {
    (0..n)
        .map(|i| from(((i * 7919) % 2001) as f32 / 1000.0 - 1.0))
        .collect()
}

fn freqs() -> rope::RopeFrequencies {
    RopeParams::new(500_000.0, D)
        .unwrap()
        .frequencies(None, Precision::Exact)
        .unwrap()
}

fn rope_prefill<T: Element>(c: &mut Criterion, name: &str, from: fn(f32) -> T) {
    let f = freqs();
    let table = RopeTable::range(&f, SEQ).unwrap();
    let positions: Vec<u64> = (0..SEQ as u64).collect();
    let mut q = values(SEQ * Q_HEADS * D, from);
    let mut k = values(SEQ * KV_HEADS * D, from);
    let bytes = ((q.len() + k.len()) * T::DTYPE.size() * 2) as u64;
    let mut g = c.benchmark_group(format!("rope_{name}_inplace"));
    g.throughput(Throughput::Bytes(bytes));
    for (order, layout) in [
        (AxisOrder::Bshd, RopeLayout::HalfSplit),
        (AxisOrder::Bshd, RopeLayout::Interleaved),
        (AxisOrder::Bhsd, RopeLayout::HalfSplit),
    ] {
        let shape = QkShape {
            batch: 1,
            seq: SEQ,
            head_dim: D,
            order,
        };
        let id = BenchmarkId::from_parameter(format!("{order:?}/{layout:?}"));
        g.bench_function(id, |b| {
            b.iter(|| {
                rope_qk_inplace(
                    &mut q,
                    Q_HEADS,
                    &mut k,
                    KV_HEADS,
                    &shape,
                    &positions,
                    CosSin::Table(&table),
                    layout,
                )
                .unwrap()
            })
        });
    }
    g.finish();
}

fn rope(c: &mut Criterion) {
    rope_prefill(c, "f32", |v| v);
    rope_prefill(c, "bf16", bf16::from_f32);
    rope_prefill(c, "f16", f16::from_f32);

    // The limit and the two baselines on the same f32 bytes.
    let f = freqs();
    let table = RopeTable::range(&f, SEQ).unwrap();
    let positions: Vec<u64> = (0..SEQ as u64).collect();
    let mut g = c.benchmark_group("baselines_32mb");
    let mut x = values((Q_HEADS + KV_HEADS) * SEQ * D, |v| v);
    g.throughput(Throughput::Bytes((x.len() * 8) as u64));
    g.bench_function("stream_inplace", |b| {
        b.iter(|| stream_inplace(&mut x, 1.0, 0.0))
    });
    g.bench_function("reference_apply_rotary_seq", |b| {
        b.iter(|| {
            rope::apply_rotary_seq(
                &mut x,
                Q_HEADS + KV_HEADS,
                D,
                &positions,
                &f,
                RopeLayout::HalfSplit,
            )
            .unwrap()
        })
    });
    let (cos, sin) = (
        hf_eager::full_width(&table.cos, 64),
        hf_eager::full_width(&table.sin, 64),
    );
    g.bench_function("hf_eager_rotate_half", |b| {
        b.iter(|| hf_eager::apply_rotary_pos_emb(&x, &cos, &sin, SEQ, D).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("rope_decode_step");
    let shape = QkShape {
        batch: 1,
        seq: 1,
        head_dim: D,
        order: AxisOrder::Bshd,
    };
    let (mut q, mut k) = (values(Q_HEADS * D, |v| v), values(KV_HEADS * D, |v| v));
    g.bench_function("computed_row", |b| {
        b.iter(|| {
            rope_qk_inplace(
                &mut q,
                Q_HEADS,
                &mut k,
                KV_HEADS,
                &shape,
                &[1000],
                CosSin::Freqs(&f),
                RopeLayout::HalfSplit,
            )
            .unwrap()
        })
    });
    g.bench_function("table_row", |b| {
        b.iter(|| {
            rope_qk_inplace(
                &mut q,
                Q_HEADS,
                &mut k,
                KV_HEADS,
                &shape,
                &[1000],
                CosSin::Table(&table),
                RopeLayout::HalfSplit,
            )
            .unwrap()
        })
    });
    g.finish();
}

fn tables(c: &mut Criterion) {
    let f = RopeParams::new(10_000.0, 128)
        .unwrap()
        .frequencies(None, Precision::Exact)
        .unwrap();
    let rows = 131_072;
    let positions: Vec<u64> = (0..rows as u64).collect();
    let (mut cos, mut sin) = (vec![0f32; rows * 64], vec![0f32; rows * 64]);
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut g = c.benchmark_group("table_131072x64");
    g.sample_size(10);
    g.bench_function("fill_rope_table_1_thread", |b| {
        b.iter(|| one.install(|| fill_rope_table(&f, &positions, &mut cos, &mut sin).unwrap()))
    });
    g.bench_function("reference_1_thread", |b| {
        b.iter(|| RopeTable::range(&f, rows).unwrap())
    });
    g.finish();
}

fn kshift(c: &mut Criterion) {
    let f = freqs();
    let cells = 16_384; // 32 MiB of f16 keys
    let mut keys = values(cells * KV_HEADS * D, f16::from_f32);
    let deltas = vec![-17i64; cells];
    let mut g = c.benchmark_group("kshift_f16_32mib");
    g.throughput(Throughput::Bytes((keys.len() * 4) as u64));
    g.bench_function("one_delta", |b| {
        b.iter(|| {
            kshift_inplace(&mut keys, KV_HEADS, D, &deltas, &f, RopeLayout::HalfSplit).unwrap()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = rope, tables, kshift
}
criterion_main!(benches);
