//! The fast kernels (`posenc::kernels`) against the plain reference implementations over seeded
//! random sweeps of shapes, axis orders, layouts, dtypes, partial rotary, positions and row
//! sources, as candle's and ggml's backend tests do.
//!
//! Tolerances. With the same cos/sin rows (table rows, or `hf` precision, which uses the
//! reference's own rows) the fast kernel does exactly the reference's f32 operations, so the
//! result must be **bit-identical** in every dtype (f16/bf16: widen, rotate in f32, round to
//! nearest-even, both sides). With rows computed by the fast `exact` path, each row value is
//! within 3e-7 of the reference row (see `kernels/trig.rs`), so an output `a·c − b·s` with
//! |a|, |b| ≤ 1 moves by at most ~1.2e-6·max(1, attention factor) before storage rounding: the
//! tolerance is `4e-6` plus one unit in the last place of the storage dtype at the value (a
//! rounding boundary may flip). A wrong layout, position or pass-through dimension changes values
//! by 1e-2 or more.

use half::{bf16, f16};
use posenc::attention::Scheme;
use posenc::kernels::{
    self, fill_rope_table, kshift_inplace, rope_inplace, rope_qk_inplace, rope_table,
    stream_inplace, AxisOrder, CosSin, Element, QkShape,
};
use posenc::kv_cache::{self, KvCache};
use posenc::rope::{self, Precision, RopeFrequencies, RopeLayout, RopeTable};
use posenc::Error;
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

fn uniform(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Random frequencies: geometric θ_i from a random base, a random attention factor.
fn random_freqs(rng: &mut ChaCha8Rng, pairs: usize, precision: Precision) -> RopeFrequencies {
    let base = [10_000.0, 500_000.0, 100.0, 1e6][rng.random_range(0..4)];
    let factor = if rng.random_bool(0.5) {
        1.0
    } else {
        rng.random_range(0.7..1.6)
    };
    let inv_freq = (0..pairs)
        .map(|i| {
            let f = 1.0 / f64::powf(base, i as f64 / pairs.max(1) as f64);
            match precision {
                Precision::Exact => f,
                Precision::Hf(_) | Precision::HfPolar(_) => f as f32 as f64,
            }
        })
        .collect();
    RopeFrequencies {
        rope_type: "default".into(),
        inv_freq,
        attention_factor: factor,
        precision,
    }
}

fn ulp_f16(v: f32) -> f64 {
    let x = f16::from_f32(v.abs());
    (f16::from_bits(x.to_bits() + 1).to_f64() - x.to_f64()).abs()
}

fn ulp_bf16(v: f32) -> f64 {
    let x = bf16::from_f32(v.abs());
    (bf16::from_bits(x.to_bits() + 1).to_f64() - x.to_f64()).abs()
}

/// A storage dtype under test: conversions via `half` and the unit in the last place.
trait TestDtype: Element + PartialEq + std::fmt::Debug {
    fn from(v: f32) -> Self;
    fn to(self) -> f32;
    fn ulp(v: f32) -> f64;
    fn bits(self) -> u32;
}

impl TestDtype for f32 {
    fn from(v: f32) -> Self {
        v
    }
    fn to(self) -> f32 {
        self
    }
    fn ulp(_: f32) -> f64 {
        0.0
    }
    fn bits(self) -> u32 {
        self.to_bits()
    }
}

impl TestDtype for f16 {
    fn from(v: f32) -> Self {
        f16::from_f32(v)
    }
    fn to(self) -> f32 {
        self.to_f32()
    }
    fn ulp(v: f32) -> f64 {
        ulp_f16(v)
    }
    fn bits(self) -> u32 {
        self.to_bits() as u32
    }
}

impl TestDtype for bf16 {
    fn from(v: f32) -> Self {
        bf16::from_f32(v)
    }
    fn to(self) -> f32 {
        self.to_f32()
    }
    fn ulp(v: f32) -> f64 {
        ulp_bf16(v)
    }
    fn bits(self) -> u32 {
        self.to_bits() as u32
    }
}

/// Index of element `e` of head `h` of token `(b, t)`.
fn index(
    order: AxisOrder,
    s: &QkShape,
    heads: usize,
    b: usize,
    t: usize,
    h: usize,
    e: usize,
) -> usize {
    match order {
        AxisOrder::Bshd => ((b * s.seq + t) * heads + h) * s.head_dim + e,
        AxisOrder::Bhsd => ((b * heads + h) * s.seq + t) * s.head_dim + e,
    }
}

/// The reference: every head vector widened to f32, rotated by `rope::apply_rotary` with the
/// reference row `rope::cos_sin_row` at its position, rounded back.
fn reference<T: TestDtype>(
    x: &[T],
    heads: usize,
    s: &QkShape,
    positions: &[u64],
    freqs: &RopeFrequencies,
    layout: RopeLayout,
) -> Vec<T> {
    let mut out = x.to_vec();
    let pairs = freqs.pairs();
    let (mut c, mut sn) = (vec![0f32; pairs], vec![0f32; pairs]);
    let mut v = vec![0f32; s.head_dim];
    for b in 0..s.batch {
        for t in 0..s.seq {
            let p = if positions.len() == s.seq {
                positions[t]
            } else {
                positions[b * s.seq + t]
            };
            rope::cos_sin_row(freqs, p, &mut c, &mut sn).unwrap();
            for h in 0..heads {
                for (e, ve) in v.iter_mut().enumerate() {
                    *ve = x[index(s.order, s, heads, b, t, h, e)].to();
                }
                rope::apply_rotary(&mut v, &c, &sn, layout).unwrap();
                for (e, &ve) in v.iter().enumerate().take(2 * pairs) {
                    out[index(s.order, s, heads, b, t, h, e)] = T::from(ve);
                }
            }
        }
    }
    out
}

fn compare<T: TestDtype>(got: &[T], want: &[T], bit_exact: bool, ctx: &str) {
    assert_eq!(got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if bit_exact {
            assert_eq!(g.bits(), w.bits(), "{ctx}: element {i}: {g:?} vs {w:?}");
        } else {
            let tol = 4e-6 + T::ulp(w.to());
            let d = (g.to() as f64 - w.to() as f64).abs();
            assert!(
                d <= tol,
                "{ctx}: element {i}: {g:?} vs {w:?} (|Δ| = {d:e} > {tol:e})"
            );
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Source {
    Table,
    Exact,
    Hf,
}

fn sweep<T: TestDtype>(seed: u64, cases: usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for case in 0..cases {
        let big = case % 10 == 9;
        let batch = rng.random_range(1..=3);
        let seq = if big {
            rng.random_range(200..=400)
        } else {
            rng.random_range(1..=24)
        };
        let q_heads = rng.random_range(1..=6);
        let kv_heads = rng.random_range(1..=q_heads);
        let head_dim = [2, 4, 6, 8, 16, 32, 64, 80, 96, 128, 130, 256][rng.random_range(0..12)];
        let rotary_dim = if rng.random_bool(0.3) {
            2 * rng.random_range(0..=head_dim / 2)
        } else {
            head_dim - head_dim % 2
        };
        let order = if rng.random_bool(0.5) {
            AxisOrder::Bshd
        } else {
            AxisOrder::Bhsd
        };
        let layout = if rng.random_bool(0.5) {
            RopeLayout::HalfSplit
        } else {
            RopeLayout::Interleaved
        };
        let source = [Source::Table, Source::Exact, Source::Hf][rng.random_range(0..3)];
        let precision = if matches!(source, Source::Hf) {
            Precision::Hf(posenc::rope::HfCpu::Avx512)
        } else {
            Precision::Exact
        };
        let freqs = random_freqs(&mut rng, rotary_dim / 2, precision);
        let shape = QkShape {
            batch,
            seq,
            head_dim,
            order,
        };
        // Positions: shared or per sequence; from 0, an offset, left padding, gaps, or far out.
        let start: u64 = [0, 5, 4096, 1 << 20, (1 << 20) - 3][rng.random_range(0..5)];
        let per_seq = rng.random_bool(0.5);
        let n_pos = if per_seq { batch * seq } else { seq };
        let positions: Vec<u64> = match (source, rng.random_range(0..3)) {
            // Tables are built over a consecutive range, so look-ups stay inside it.
            (Source::Table, _) | (_, 0) => (0..n_pos).map(|i| start + (i % seq) as u64).collect(),
            (_, 1) => (0..n_pos)
                .map(|_| start + rng.random_range(0..10_000))
                .collect(),
            _ => (0..n_pos)
                .map(|i| start + ((i % seq) as u64) * 7 + (i / seq) as u64)
                .collect(),
        };
        let table;
        let rows = match source {
            Source::Table => {
                let hi = positions.iter().max().copied().unwrap_or(start);
                let range: Vec<u64> = (start..=hi).collect();
                table = RopeTable::new(&freqs, &range).unwrap();
                CosSin::Table(&table)
            }
            _ => CosSin::Freqs(&freqs),
        };
        let q0: Vec<T> = uniform(&mut rng, batch * seq * q_heads * head_dim)
            .into_iter()
            .map(T::from)
            .collect();
        let k0: Vec<T> = uniform(&mut rng, batch * seq * kv_heads * head_dim)
            .into_iter()
            .map(T::from)
            .collect();
        let want_q = reference(&q0, q_heads, &shape, &positions, &freqs, layout);
        let want_k = reference(&k0, kv_heads, &shape, &positions, &freqs, layout);
        let exact = !matches!(source, Source::Exact);
        let ctx = format!("seed {seed} case {case}: {shape:?} q{q_heads}/kv{kv_heads} rd {rotary_dim} {layout:?} {source:?}");
        if rng.random_bool(0.5) {
            let (mut q, mut k) = (q0.clone(), k0.clone());
            rope_qk_inplace(
                &mut q, q_heads, &mut k, kv_heads, &shape, &positions, rows, layout,
            )
            .unwrap();
            compare(&q, &want_q, exact, &format!("{ctx} q (qk call)"));
            compare(&k, &want_k, exact, &format!("{ctx} k (qk call)"));
        } else {
            let mut q = q0.clone();
            rope_inplace(&mut q, q_heads, &shape, &positions, rows, layout).unwrap();
            compare(&q, &want_q, exact, &format!("{ctx} q"));
        }
    }
}

#[test]
fn rope_f32_matches_reference() {
    sweep::<f32>(1, 120);
}

#[test]
fn rope_f16_matches_reference() {
    sweep::<f16>(2, 80);
}

#[test]
fn rope_bf16_matches_reference() {
    sweep::<bf16>(3, 80);
}

#[test]
fn decode_step_matches_reference() {
    // One token, 32 query + 8 key heads, d = 128, at a long position: the benchmark's decode shape.
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let freqs = random_freqs(&mut rng, 64, Precision::Exact);
    let shape = QkShape {
        batch: 1,
        seq: 1,
        head_dim: 128,
        order: AxisOrder::Bshd,
    };
    for layout in [RopeLayout::HalfSplit, RopeLayout::Interleaved] {
        let (q0, k0) = (uniform(&mut rng, 32 * 128), uniform(&mut rng, 8 * 128));
        let (mut q, mut k) = (q0.clone(), k0.clone());
        rope_qk_inplace(
            &mut q,
            32,
            &mut k,
            8,
            &shape,
            &[131_071],
            CosSin::Freqs(&freqs),
            layout,
        )
        .unwrap();
        compare(
            &q,
            &reference(&q0, 32, &shape, &[131_071], &freqs, layout),
            false,
            "decode q",
        );
        compare(
            &k,
            &reference(&k0, 8, &shape, &[131_071], &freqs, layout),
            false,
            "decode k",
        );
    }
}

#[test]
fn tables_match_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for case in 0..40 {
        let pairs = [1, 2, 8, 32, 64, 65][case % 6];
        let precision = if case % 4 == 3 {
            Precision::Hf(posenc::rope::HfCpu::Avx512)
        } else {
            Precision::Exact
        };
        let freqs = random_freqs(&mut rng, pairs, precision);
        let n = if case % 10 == 0 {
            3000
        } else {
            rng.random_range(0..300)
        };
        let start: u64 = [0, 1 << 20, (1 << 20) - 100, 1 << 16][case % 4];
        let positions: Vec<u64> = (0..n)
            .map(|i| start + i as u64 * rng.random_range(1..3))
            .collect();
        let fast = rope_table(&freqs, &positions).unwrap();
        let slow = RopeTable::new(&freqs, &positions).unwrap();
        assert_eq!(fast.positions, slow.positions);
        for (f, s) in fast
            .cos
            .iter()
            .chain(&fast.sin)
            .zip(slow.cos.iter().chain(&slow.sin))
        {
            if precision.is_hf() {
                assert_eq!(f.to_bits(), s.to_bits(), "case {case}: hf tables differ");
            } else {
                let tol = 3e-7 * freqs.attention_factor.max(1.0) + 1e-7;
                assert!(((f - s) as f64).abs() <= tol, "case {case}: {f} vs {s}");
            }
        }
    }
}

#[test]
fn exact_table_error_at_position_2_pow_20_is_below_1e_6() {
    // Against the true values (f64 sin/cos of the f64 angle), not only the reference's f32 rows.
    let freqs = rope::RopeParams::new(10_000.0, 128)
        .unwrap()
        .frequencies(None, Precision::Exact)
        .unwrap();
    let positions: Vec<u64> = ((1u64 << 20) - 64..(1 << 20) + 64).collect();
    let t = rope_table(&freqs, &positions).unwrap();
    let mut worst = 0.0f64;
    for (r, &p) in positions.iter().enumerate() {
        for (i, &f) in freqs.inv_freq.iter().enumerate() {
            let (s, c) = (p as f64 * f).rem_euclid(std::f64::consts::TAU).sin_cos();
            worst = worst
                .max((t.cos[r * 64 + i] as f64 - c).abs())
                .max((t.sin[r * 64 + i] as f64 - s).abs());
        }
    }
    assert!(worst <= 1e-6, "worst |error| {worst:e}");
}

#[test]
fn fill_rope_table_checks_buffer_sizes() {
    let freqs = random_freqs(&mut ChaCha8Rng::seed_from_u64(6), 4, Precision::Exact);
    let (mut c, mut s) = (vec![0f32; 7], vec![0f32; 8]);
    assert!(matches!(
        fill_rope_table(&freqs, &[0, 1], &mut c, &mut s),
        Err(Error::Shape { .. })
    ));
}

/// K-shift reference: a KV cache holding the keys, shifted by `kv_cache::shift_keys_per_cell`.
fn reference_kshift(
    keys: &[f32],
    kv_heads: usize,
    head_dim: usize,
    deltas: &[i64],
    freqs: &RopeFrequencies,
    layout: RopeLayout,
) -> Vec<f32> {
    let mut cache = KvCache::new(kv_heads, head_dim).unwrap();
    let positions: Vec<Option<u64>> = (0..deltas.len()).map(|i| Some(1000 + i as u64)).collect();
    cache
        .append(keys, &vec![0.0; keys.len()], &positions, &Scheme::NoPe)
        .unwrap();
    kv_cache::shift_keys_per_cell(&mut cache, deltas, freqs, layout).unwrap();
    cache.keys().to_vec()
}

fn kshift_sweep<T: TestDtype>(seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for case in 0..40 {
        let cells = if case % 8 == 7 {
            rng.random_range(300..600)
        } else {
            rng.random_range(1..40)
        };
        let kv_heads = rng.random_range(1..=4);
        let head_dim = [4, 8, 64, 80, 128][rng.random_range(0..5)];
        let rotary_dim = if rng.random_bool(0.3) {
            2 * rng.random_range(0..=head_dim / 2)
        } else {
            head_dim
        };
        let layout = if rng.random_bool(0.5) {
            RopeLayout::HalfSplit
        } else {
            RopeLayout::Interleaved
        };
        let freqs = random_freqs(&mut rng, rotary_dim / 2, Precision::Exact);
        // Mostly one delta (a context shift), sometimes a few, sometimes zeros in between.
        let choices: Vec<i64> = (0..rng.random_range(1..4))
            .map(|_| rng.random_range(-900..900))
            .collect();
        let deltas: Vec<i64> = (0..cells)
            .map(|_| {
                if rng.random_bool(0.1) {
                    0
                } else {
                    choices[rng.random_range(0..choices.len())]
                }
            })
            .collect();
        let keys0: Vec<T> = uniform(&mut rng, cells * kv_heads * head_dim)
            .into_iter()
            .map(T::from)
            .collect();
        let widened: Vec<f32> = keys0.iter().map(|&v| v.to()).collect();
        let want: Vec<T> = reference_kshift(&widened, kv_heads, head_dim, &deltas, &freqs, layout)
            .into_iter()
            .map(T::from)
            .collect();
        let mut keys = keys0.clone();
        kshift_inplace(&mut keys, kv_heads, head_dim, &deltas, &freqs, layout).unwrap();
        compare(
            &keys,
            &want,
            false,
            &format!("kshift seed {seed} case {case}"),
        );
        // Delta-0 cells are bit-identical, as are the dims past rotary_dim.
        let w = kv_heads * head_dim;
        for (c, &d) in deltas.iter().enumerate() {
            for h in 0..kv_heads {
                let from = if d == 0 { 0 } else { rotary_dim };
                for e in from..head_dim {
                    let i = c * w + h * head_dim + e;
                    assert_eq!(
                        keys[i].bits(),
                        keys0[i].bits(),
                        "case {case}: cell {c} dim {e} changed"
                    );
                }
            }
        }
    }
}

#[test]
fn kshift_f32_matches_kv_cache_reference() {
    kshift_sweep::<f32>(7);
}

#[test]
fn kshift_f16_matches_kv_cache_reference() {
    kshift_sweep::<f16>(8);
}

#[test]
fn kshift_bf16_matches_kv_cache_reference() {
    kshift_sweep::<bf16>(9);
}

#[test]
fn bad_inputs_are_typed_errors_and_change_nothing() {
    let freqs = random_freqs(&mut ChaCha8Rng::seed_from_u64(10), 4, Precision::Exact);
    let shape = QkShape {
        batch: 1,
        seq: 2,
        head_dim: 8,
        order: AxisOrder::Bshd,
    };
    let x0 = vec![0.5f32; 2 * 3 * 8];
    let mut x = x0.clone();
    let rows = CosSin::Freqs(&freqs);
    let l = RopeLayout::HalfSplit;
    // Wrong buffer length, zero heads, wrong number of positions.
    assert!(matches!(
        rope_inplace(&mut x[..47], 3, &shape, &[0, 1], rows, l),
        Err(Error::Shape { .. })
    ));
    assert!(rope_inplace(&mut x, 0, &shape, &[0, 1], rows, l).is_err());
    assert!(matches!(
        rope_inplace(&mut x, 3, &shape, &[0, 1, 2], rows, l),
        Err(Error::Shape { .. })
    ));
    // rotary_dim above head_dim.
    let wide = random_freqs(&mut ChaCha8Rng::seed_from_u64(11), 5, Precision::Exact);
    assert!(matches!(
        rope_inplace(&mut x, 3, &shape, &[0, 1], CosSin::Freqs(&wide), l),
        Err(Error::InvalidParameter { .. })
    ));
    // A position with no table row, after one with a row.
    let table = RopeTable::range(&freqs, 4).unwrap();
    let err = rope_inplace(&mut x, 3, &shape, &[3, 4], CosSin::Table(&table), l).unwrap_err();
    assert!(err.to_string().contains("positions"), "{err}");
    // An overflowing shape.
    let huge = QkShape {
        batch: usize::MAX,
        seq: 2,
        head_dim: 8,
        order: AxisOrder::Bhsd,
    };
    assert!(rope_inplace(&mut x, 3, &huge, &[0, 1], rows, l).is_err());
    assert_eq!(x, x0, "a failed call changed the buffer");
    // K-shift: wrong lengths, zero heads.
    let mut keys = vec![0.5f32; 3 * 8];
    assert!(kshift_inplace(&mut keys, 1, 8, &[1, 2], &freqs, l).is_err());
    assert!(kshift_inplace(&mut keys, 0, 8, &[1, 2, 3], &freqs, l).is_err());
    assert!(matches!(
        kshift_inplace(&mut keys, 3, 8, &[1, 2], &wide, l),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        kshift_inplace(&mut keys, 1, 8, &[1, 2, 3], &wide, l),
        Err(Error::InvalidParameter { .. })
    ));
    assert_eq!(keys, vec![0.5f32; 24]);
}

#[test]
fn empty_inputs_are_fine() {
    let freqs = random_freqs(&mut ChaCha8Rng::seed_from_u64(12), 4, Precision::Exact);
    let shape = QkShape {
        batch: 0,
        seq: 0,
        head_dim: 8,
        order: AxisOrder::Bshd,
    };
    rope_inplace::<f32>(
        &mut [],
        2,
        &shape,
        &[],
        CosSin::Freqs(&freqs),
        RopeLayout::HalfSplit,
    )
    .unwrap();
    kshift_inplace::<f32>(&mut [], 2, 8, &[], &freqs, RopeLayout::HalfSplit).unwrap();
    assert!(rope_table(&freqs, &[]).unwrap().is_empty());
}

#[test]
fn stream_kernel_computes_scale_add() {
    for n in [0, 5, kernels::PARALLEL_THRESHOLD + 7] {
        let mut x: Vec<f32> = (0..n).map(|i| i as f32).collect();
        stream_inplace(&mut x, 2.0, 1.0);
        assert!(x
            .iter()
            .enumerate()
            .all(|(i, &v)| v == 2.0 * i as f32 + 1.0));
    }
}

#[test]
fn hf_eager_path_matches_reference_and_rejects_bad_shapes() {
    // (planes, seq, d) = (3, 5, 8), positions 0..5, half-split: the same rotation as the reference.
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let freqs = random_freqs(&mut rng, 4, Precision::Exact);
    let table = RopeTable::range(&freqs, 5).unwrap();
    let (cos, sin) = (
        kernels::hf_eager::full_width(&table.cos, 4),
        kernels::hf_eager::full_width(&table.sin, 4),
    );
    let x = uniform(&mut rng, 3 * 5 * 8);
    let got = kernels::hf_eager::apply_rotary_pos_emb(&x, &cos, &sin, 5, 8).unwrap();
    let shape = QkShape {
        batch: 1,
        seq: 5,
        head_dim: 8,
        order: AxisOrder::Bhsd,
    };
    let want = reference(
        &x,
        3,
        &shape,
        &[0, 1, 2, 3, 4],
        &freqs,
        RopeLayout::HalfSplit,
    );
    compare(&got, &want, false, "hf eager");
    assert!(kernels::hf_eager::apply_rotary_pos_emb(&x, &cos, &sin, 5, 7).is_err());
    assert!(kernels::hf_eager::apply_rotary_pos_emb(&x[..7], &cos, &sin, 5, 8).is_err());
    assert!(kernels::hf_eager::apply_rotary_pos_emb(&x, &cos[..3], &sin, 5, 8).is_err());
}
