//! `posenc bench` cases for RoPE (issue 5): in-place application in f32/bf16/f16, a decode step,
//! the cos/sin table, K-shift, Hugging Face's eager `rotate_half` path, and the streaming
//! kernel they are compared with.
//!
//! Shapes: 32 query and 8 key heads of d = 128 (Llama-3-8B's attention), q and k rotated in one
//! call; `seq` is chosen so that q + k is 128 MB (6250 tokens in f32, 12500 in 16-bit).

use half::{bf16, f16};
use posenc::kernels::{
    self, fill_rope_table, hf_eager, kshift_inplace, rope_qk_inplace, rope_table, stream_inplace,
    AxisOrder, CosSin, Element, QkShape,
};
use posenc::rope::{Precision, RopeFrequencies, RopeLayout, RopeParams, RopeTable};

use crate::bench_cmd::{Alongside, BenchConfig, Case, StreamClass, Timed};

/// Name prefix of the stream measurements at the RoPE buffer size (`stream_gbps`).
pub const STREAM_MAIN: &str = "stream_inplace_128mb";
/// Name prefix of the stream measurements at the K-shift cache size.
pub const STREAM_LARGE: &str = "stream_inplace_512mib";

const Q_HEADS: usize = 32;
const KV_HEADS: usize = 8;
const D: usize = 128;

fn freqs() -> RopeFrequencies {
    RopeParams::new(500_000.0, D)
        .and_then(|p| p.frequencies(None, Precision::Exact))
        .expect("valid RoPE parameters")
}

/// Deterministic values in [-1, 1).
pub fn values<T: Element>(n: usize, seed: u64, from: fn(f32) -> T) -> Vec<T> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            from((s >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
        })
        .collect()
}

/// The stream pass run alongside the cases of one size class.
pub fn alongside(cfg: &BenchConfig, class: StreamClass) -> Alongside {
    let bytes = match class {
        StreamClass::Main => cfg.pick(128_000_000usize, 4_000_000),
        StreamClass::Large => cfg.pick(512usize << 20, 16 << 20),
    };
    let mut x = values(bytes / 4, 12, |v| v);
    let (a, b) = (std::hint::black_box(1.0f32), std::hint::black_box(0.0f32));
    Alongside::new(
        Box::new(move || {
            stream_inplace(&mut x, a, b);
            std::hint::black_box(&x);
        }),
        2 * bytes as u64,
    )
}

/// The two stream measurements (`tag` tells the one before the kernels from the one after).
pub fn stream_cases(cfg: &BenchConfig, tag: &str) -> Vec<Case> {
    let main = cfg.pick(128_000_000usize, 4_000_000);
    let large = cfg.pick(512usize << 20, 16 << 20);
    [
        (STREAM_MAIN, main, StreamClass::Main),
        (STREAM_LARGE, large, StreamClass::Large),
    ]
    .into_iter()
    .map(|(name, bytes, class)| {
        Case::new(
            format!("{name}_{tag}"),
            2 * bytes as u64,
            move || -> Timed {
                let mut x = values(bytes / 4, 11, |v| v);
                // a and b are opaque, so the pass cannot be folded away.
                let (a, b) = (std::hint::black_box(1.0f32), std::hint::black_box(0.0f32));
                Box::new(move || {
                    stream_inplace(&mut x, a, b);
                    std::hint::black_box(&x);
                })
            },
        )
        .with("buffer_bytes", bytes as u64)
        .stream(class)
    })
    .collect()
}

/// In-place q + k RoPE over `seq` tokens.
fn rope_case<T: Element>(
    name: &str,
    seq: usize,
    from: fn(f32) -> T,
    order: AxisOrder,
    layout: RopeLayout,
    table_rows: bool,
) -> Case {
    let bytes = (seq * (Q_HEADS + KV_HEADS) * D * T::DTYPE.size()) as u64;
    Case::new(name, 2 * bytes, move || -> Timed {
        let f = freqs();
        let table = RopeTable::range(&f, seq).expect("table");
        let positions: Vec<u64> = (0..seq as u64).collect();
        let mut q = values(seq * Q_HEADS * D, 1, from);
        let mut k = values(seq * KV_HEADS * D, 2, from);
        let shape = QkShape {
            batch: 1,
            seq,
            head_dim: D,
            order,
        };
        Box::new(move || {
            let rows = if table_rows {
                CosSin::Table(&table)
            } else {
                CosSin::Freqs(&f)
            };
            rope_qk_inplace(
                &mut q, Q_HEADS, &mut k, KV_HEADS, &shape, &positions, rows, layout,
            )
            .expect("valid shapes");
            std::hint::black_box((&q, &k));
        })
    })
    .with("dtype", format!("{:?}", T::DTYPE).to_lowercase())
    .with("buffer_bytes", bytes)
    .with("seq", seq as u64)
    .with("q_heads", Q_HEADS as u64)
    .with("kv_heads", KV_HEADS as u64)
    .with("head_dim", D as u64)
    .with("order", format!("{order:?}").to_lowercase())
    .with("layout", format!("{layout:?}"))
    .with(
        "rows",
        if table_rows {
            "table"
        } else {
            "computed per token"
        },
    )
    .alongside_stream()
}

fn decode_case(name: &str, table_rows: bool) -> Case {
    let bytes = ((Q_HEADS + KV_HEADS) * D * 4) as u64;
    Case::new(name, 2 * bytes, move || -> Timed {
        let f = freqs();
        let pos = 4095u64;
        let table = RopeTable::range(&f, 4096).expect("table");
        let mut q = values(Q_HEADS * D, 3, |v| v);
        let mut k = values(KV_HEADS * D, 4, |v| v);
        let shape = QkShape {
            batch: 1,
            seq: 1,
            head_dim: D,
            order: AxisOrder::Bshd,
        };
        Box::new(move || {
            let rows = if table_rows {
                CosSin::Table(&table)
            } else {
                CosSin::Freqs(&f)
            };
            rope_qk_inplace(
                &mut q,
                Q_HEADS,
                &mut k,
                KV_HEADS,
                &shape,
                &[pos],
                rows,
                RopeLayout::HalfSplit,
            )
            .expect("valid shapes");
            std::hint::black_box((&q, &k));
        })
    })
    .with("tokens", 1u64)
    .with("q_heads", Q_HEADS as u64)
    .with("kv_heads", KV_HEADS as u64)
    .with("head_dim", D as u64)
    .with("rows", if table_rows { "table" } else { "computed" })
}

fn hf_case(seq: usize) -> Case {
    let bytes = (seq * (Q_HEADS + KV_HEADS) * D * 4) as u64;
    Case::new("hf_rotate_half_f32", 2 * bytes, move || -> Timed {
        let f = freqs();
        let table = RopeTable::range(&f, seq).expect("table");
        let cos = hf_eager::full_width(&table.cos, table.pairs);
        let sin = hf_eager::full_width(&table.sin, table.pairs);
        let q = values(seq * Q_HEADS * D, 1, |v| v);
        let k = values(seq * KV_HEADS * D, 2, |v| v);
        Box::new(move || {
            let qe = hf_eager::apply_rotary_pos_emb(&q, &cos, &sin, seq, D).expect("valid shapes");
            let ke = hf_eager::apply_rotary_pos_emb(&k, &cos, &sin, seq, D).expect("valid shapes");
            std::hint::black_box((qe, ke));
        })
    })
    .with("dtype", "f32")
    .with("buffer_bytes", bytes)
    .with("seq", seq as u64)
    .with("order", "bhsd")
    .with(
        "note",
        "HF eager apply_rotary_pos_emb: five new tensors per input, output not in place",
    )
    .alongside_stream()
}

#[derive(Clone, Copy)]
enum TableWay {
    Fresh,
    Into,
    Reference,
}

fn table_case(name: &str, rows: usize, way: TableWay, threads: Option<usize>) -> Case {
    let pairs = 64;
    let bytes = (2 * rows * pairs * 4) as u64;
    let c = Case::new(name, bytes, move || -> Timed {
        let f = RopeParams::new(10_000.0, 2 * pairs)
            .and_then(|p| p.frequencies(None, Precision::Exact))
            .expect("valid RoPE parameters");
        let positions: Vec<u64> = (0..rows as u64).collect();
        let (mut cos, mut sin) = (vec![0f32; rows * pairs], vec![0f32; rows * pairs]);
        Box::new(move || match way {
            TableWay::Fresh => {
                std::hint::black_box(rope_table(&f, &positions).expect("table"));
            }
            TableWay::Into => {
                fill_rope_table(&f, &positions, &mut cos, &mut sin).expect("table");
                std::hint::black_box((&cos, &sin));
            }
            TableWay::Reference => {
                std::hint::black_box(RopeTable::range(&f, rows).expect("table"));
            }
        })
    })
    .with("rows", rows as u64)
    .with("pairs", pairs as u64)
    .with("precision", "exact")
    .with(
        "way",
        match way {
            TableWay::Fresh => "kernels::rope_table (new buffers)",
            TableWay::Into => "kernels::fill_rope_table (into existing buffers)",
            TableWay::Reference => "rope::RopeTable::range (plain f64 reference)",
        },
    );
    let c = match threads {
        Some(n) => c.threads(n),
        None => c,
    };
    if matches!(way, TableWay::Reference) {
        c.few_runs(3)
    } else {
        c
    }
}

fn kshift_case(cells: usize) -> Case {
    let bytes = (cells * KV_HEADS * D * 2) as u64;
    Case::new("kshift_f16", 2 * bytes, move || -> Timed {
        let f = freqs();
        let mut keys = values(cells * KV_HEADS * D, 5, f16::from_f32);
        // A context shift: every cell moves back by the same number of positions.
        let deltas = vec![-17i64; cells];
        Box::new(move || {
            kshift_inplace(&mut keys, KV_HEADS, D, &deltas, &f, RopeLayout::HalfSplit)
                .expect("valid cache");
            std::hint::black_box(&keys);
        })
    })
    .with("dtype", "f16")
    .with("cache_bytes", bytes)
    .with("cells", cells as u64)
    .with("kv_heads", KV_HEADS as u64)
    .with("head_dim", D as u64)
    .with("distinct_deltas", 1u64)
    .stream(StreamClass::Large)
    .alongside_stream()
}

/// The RoPE, table and K-shift cases.
pub fn cases(cfg: &BenchConfig) -> Vec<Case> {
    let seq32 = cfg.pick(6250, 50);
    let seq16 = cfg.pick(12500, 100);
    let table_rows = cfg.pick(131_072, 2048);
    let table_name = |suffix: &str| {
        if cfg.quick {
            format!("rope_table_131072x64{suffix}_quick{table_rows}")
        } else {
            format!("rope_table_131072x64{suffix}")
        }
    };
    let (bshd, bhsd) = (AxisOrder::Bshd, AxisOrder::Bhsd);
    let (half, inter) = (RopeLayout::HalfSplit, RopeLayout::Interleaved);
    let f32v = |v: f32| v;
    vec![
        rope_case("rope_f32_inplace", seq32, f32v, bshd, half, true),
        rope_case(
            "rope_f32_inplace_interleaved",
            seq32,
            f32v,
            bshd,
            inter,
            true,
        ),
        rope_case("rope_f32_inplace_bhsd", seq32, f32v, bhsd, half, true),
        rope_case("rope_f32_inplace_computed", seq32, f32v, bshd, half, false),
        rope_case("rope_bf16_inplace", seq16, bf16::from_f32, bshd, half, true),
        rope_case(
            "rope_bf16_inplace_interleaved",
            seq16,
            bf16::from_f32,
            bshd,
            inter,
            true,
        ),
        rope_case("rope_f16_inplace", seq16, f16::from_f32, bshd, half, true),
        hf_case(seq32),
        decode_case("rope_decode_step", false),
        decode_case("rope_decode_step_table", true),
        table_case(&table_name(""), table_rows, TableWay::Fresh, Some(1)),
        table_case(&table_name("_into"), table_rows, TableWay::Into, Some(1)),
        table_case(&table_name("_parallel"), table_rows, TableWay::Fresh, None),
        table_case(
            &table_name("_reference"),
            table_rows,
            TableWay::Reference,
            Some(1),
        ),
        kshift_case(cfg.pick(262_144, 2048)),
    ]
    .into_iter()
    .map(|c| {
        c.with(
            "parallel_threshold_elements",
            kernels::PARALLEL_THRESHOLD as u64,
        )
    })
    .collect()
}
