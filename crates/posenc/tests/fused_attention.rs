//! The fused attention kernel (`posenc::fused_attention`) against the plain `f64` reference
//! (`posenc::attention`) over seeded random sweeps of shapes, GQA groups, head dims, schemes,
//! masks and positions, for both tile kernels; the materialized-bias path likewise; and typed
//! errors on bad input.
//!
//! Tolerance. Inputs are uniform in [-1, 1]. The kernel computes in `f32` what the reference
//! computes in `f64`. A score `scale·<q,k> + b` then carries an absolute error of at most about
//! `ε·(scale·Σ_p |q_p k_p| + |b|)` with `ε = 2^-24` relative rounding per operation and `d`
//! operations (≤ `d·ε·scale·d` ≈ 4e-5·scale for d = 80 in the worst case, ~`sqrt(d)` times less
//! typically); `exp` adds 2.5e-7 relative; the online rescaling and the sums over `Lk ≤ 200`
//! keys add at most `Lk·ε` ≈ 1.2e-5 relative, and the output is a convex combination of values
//! with `|v| ≤ 1`. Each case gets `tol = 2e-6 + ε·(4·scale·d·sqrt(d) + 4·Lk) + ε·max|b|`,
//! about 1e-5 for typical cases. A wrong bias sign, a leaked masked key, a wrong position or a
//! missed rescale changes outputs by 1e-3 or more, far above it.

use posenc::alibi;
use posenc::attention::{
    attend_positioned, attention, AttentionOptions, Causal, HeadConfig, Mask, Scheme,
};
use posenc::fused_attention::{
    fused_attend_positioned, fused_attention, fused_attention_with, materialized_bias_attention,
    FusedBias, FusedOptions, RelativeBias, Rotation, TileKernel, KEY_TILE, QUERY_TILE,
};
use posenc::relative::T5Buckets;
use posenc::rope::{self, Precision, RopeLayout, RopeParams, RopeScaling, YarnParams};
use posenc::Error;
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

const EPS: f64 = f32::EPSILON as f64 / 2.0;

fn uniform(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// A length from the interesting set: tiny, tile edges, non-multiples of the tile.
fn length(rng: &mut ChaCha8Rng) -> usize {
    const EDGES: [usize; 9] = [
        1,
        2,
        7,
        KEY_TILE - 1,
        KEY_TILE,
        KEY_TILE + 1,
        QUERY_TILE * 2 + 3,
        130,
        200,
    ];
    if rng.random_bool(0.6) {
        EDGES[rng.random_range(0..EDGES.len())]
    } else {
        rng.random_range(1..=150)
    }
}

/// Query and key positions of one of several kinds.
fn positions(rng: &mut ChaCha8Rng, seq_q: usize, seq_k: usize) -> (Vec<u64>, Vec<u64>) {
    let base: u64 = if rng.random_bool(0.2) {
        1 << 40
    } else {
        rng.random_range(0..1000)
    };
    match rng.random_range(0..4) {
        // Queries are the last seq_q keys (prefill / decode with a cache).
        0 => {
            let keys: Vec<u64> = (0..seq_k as u64).map(|j| base + j).collect();
            let start = base + seq_k as u64;
            let queries = (0..seq_q as u64)
                .map(|i| (start + i).saturating_sub(seq_q as u64))
                .collect();
            (queries, keys)
        }
        // Independent contiguous ranges (cross attention, offsets either way).
        1 => {
            let qb = base + rng.random_range(0..300);
            (
                (0..seq_q as u64).map(|i| qb + i).collect(),
                (0..seq_k as u64).map(|j| base + j).collect(),
            )
        }
        // Increasing with random gaps (packed or pruned caches).
        2 => {
            let mut walk = |n: usize| {
                let mut p = base;
                (0..n)
                    .map(|_| {
                        p += rng.random_range(1..20);
                        p
                    })
                    .collect::<Vec<u64>>()
            };
            (walk(seq_q), walk(seq_k))
        }
        // Arbitrary order, repeats allowed.
        _ => (
            (0..seq_q)
                .map(|_| base + rng.random_range(0..400))
                .collect(),
            (0..seq_k)
                .map(|_| base + rng.random_range(0..400))
                .collect(),
        ),
    }
}

fn rope_scheme(rng: &mut ChaCha8Rng, head_dim: usize) -> Option<Scheme> {
    let full = head_dim - head_dim % 2;
    if full == 0 {
        return None;
    }
    let rotary_dim = if rng.random_bool(0.3) {
        (full / 2).max(2) & !1
    } else {
        full
    };
    let scaling = if rng.random_bool(0.3) {
        RopeScaling::Yarn(YarnParams::new(4.0, 1024))
    } else {
        RopeScaling::Default
    };
    let freqs = RopeParams {
        base: 10000.0,
        head_dim,
        rotary_dim,
        max_position_embeddings: 4096,
        scaling,
    }
    .frequencies(None, Precision::Exact)
    .ok()?;
    let layout = if rng.random_bool(0.5) {
        RopeLayout::Interleaved
    } else {
        RopeLayout::HalfSplit
    };
    Some(Scheme::Rope { freqs, layout })
}

fn mask(rng: &mut ChaCha8Rng, seq_q: usize, seq_k: usize) -> Mask {
    let causal = match rng.random_range(0..3) {
        0 => Causal::None,
        1 => Causal::ByPosition,
        _ => Causal::ByIndex,
    };
    let mut m = Mask {
        causal,
        ..Mask::default()
    };
    if rng.random_bool(0.3) {
        // Padding in runs, so some key tiles are all padding.
        let pad_from = rng.random_range(0..=seq_k);
        let mut kp: Vec<bool> = (0..seq_k).map(|j| j < pad_from).collect();
        if rng.random_bool(0.5) {
            kp.iter_mut().for_each(|x| *x = !*x);
        }
        for x in kp.iter_mut() {
            if rng.random_bool(0.05) {
                *x = !*x;
            }
        }
        m.key_padding = Some(kp);
    }
    if rng.random_bool(0.15) {
        m.allowed = Some((0..seq_q * seq_k).map(|_| rng.random_bool(0.7)).collect());
    }
    m
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).abs())
        .fold(0.0, f64::max)
}

struct Case {
    heads: HeadConfig,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    qpos: Vec<u64>,
    kpos: Vec<u64>,
    scheme: Scheme,
    mask: Mask,
    scale: Option<f64>,
    max_bias: f64,
}

fn random_case(rng: &mut ChaCha8Rng) -> Case {
    let n_kv = rng.random_range(1..=3);
    let group = [1, 2, 4][rng.random_range(0..3)];
    let head_dim = [1, 3, 8, 16, 33, 64, 80][rng.random_range(0..7)];
    let heads = HeadConfig::new(n_kv * group, n_kv, head_dim).unwrap();
    let (seq_q, seq_k) = (length(rng), length(rng));
    let (qpos, kpos) = positions(rng, seq_q, seq_k);
    let nq = heads.n_q_heads;
    let mut scale = None;
    let mut max_bias = 0.0;
    let scheme = match rng.random_range(0..5) {
        0 => Scheme::NoPe,
        1 | 2 => {
            let slopes = alibi::slopes(nq).unwrap();
            Scheme::Alibi {
                slopes,
                symmetric: rng.random_bool(0.4),
            }
        }
        3 => {
            let buckets = T5Buckets {
                bidirectional: rng.random_bool(0.5),
                num_buckets: [8, 32][rng.random_range(0..2)],
                max_distance: [20, 128][rng.random_range(0..2)],
            };
            let bias_table: Vec<f32> = (0..buckets.num_buckets * nq)
                .map(|_| rng.random_range(-3.0f32..3.0))
                .collect();
            scale = Some(1.0);
            max_bias = 3.0;
            Scheme::T5 {
                bias_table,
                buckets,
            }
        }
        _ => rope_scheme(rng, head_dim).unwrap_or(Scheme::NoPe),
    };
    if let Scheme::Alibi { slopes, symmetric } = &scheme {
        let span = qpos
            .iter()
            .chain(&kpos)
            .max()
            .zip(qpos.iter().chain(&kpos).min())
            .map(|(a, b)| a - b)
            .unwrap_or(0);
        let _ = symmetric;
        max_bias = slopes[0] * span as f64;
    }
    Case {
        q: uniform(rng, seq_q * heads.q_width()),
        k: uniform(rng, seq_k * heads.kv_width()),
        v: uniform(rng, seq_k * heads.kv_width()),
        mask: mask(rng, seq_q, seq_k),
        heads,
        qpos,
        kpos,
        scheme,
        scale,
        max_bias,
    }
}

fn tolerance(c: &Case) -> f64 {
    let d = c.heads.head_dim as f64;
    let scale = c.scale.unwrap_or(1.0 / d.sqrt());
    2e-6 + EPS * (4.0 * scale * d * d.sqrt() + 4.0 * c.kpos.len() as f64) + EPS * c.max_bias
}

fn reference(c: &Case) -> Vec<f32> {
    attention(
        &c.heads,
        &c.q,
        &c.k,
        &c.v,
        &c.qpos,
        &c.kpos,
        &c.scheme,
        &c.mask,
        &AttentionOptions {
            scale: c.scale,
            return_weights: false,
        },
    )
    .unwrap()
    .output
}

/// Rows (query, head) whose keys are all masked must be exactly zero in both.
fn check_zero_rows(c: &Case, want: &[f32], got: &[f32]) {
    let d = c.heads.head_dim;
    for (row, (w, g)) in want.chunks(d).zip(got.chunks(d)).enumerate() {
        if w.iter().all(|&x| x == 0.0) {
            let i = row / c.heads.n_q_heads;
            let any_allowed = (0..c.kpos.len()).any(|j| {
                c.mask
                    .allows(i, j, c.qpos.len(), c.kpos.len(), c.qpos[i], c.kpos[j])
            });
            if !any_allowed {
                assert!(
                    g.iter().all(|&x| x == 0.0),
                    "fully masked row {row} not zero"
                );
            }
        }
    }
}

#[test]
fn fused_matches_reference_over_random_sweep() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_f00d);
    let cases = if cfg!(debug_assertions) { 40 } else { 160 };
    let mut worst_ratio = 0.0f64;
    for case in 0..cases {
        let c = random_case(&mut rng);
        let want = reference(&c);
        let tol = tolerance(&c);
        for kernel in [TileKernel::Simd, TileKernel::Gemm] {
            let options = FusedOptions {
                scale: c.scale,
                kernel,
            };
            let got = fused_attention(
                &c.heads, &c.q, &c.k, &c.v, &c.qpos, &c.kpos, &c.scheme, &c.mask, &options,
            )
            .unwrap();
            assert_eq!(got.len(), want.len());
            let err = max_abs_diff(&got, &want);
            assert!(
                err <= tol,
                "case {case} ({kernel:?}, {} q{} kv{} d{} Lq{} Lk{} {:?}): error {err:e} > {tol:e}",
                c.scheme.name(),
                c.heads.n_q_heads,
                c.heads.n_kv_heads,
                c.heads.head_dim,
                c.qpos.len(),
                c.kpos.len(),
                c.mask.causal,
            );
            worst_ratio = worst_ratio.max(err / tol);
            check_zero_rows(&c, &want, &got);
        }
    }
    eprintln!("worst error / tolerance over the sweep: {worst_ratio:.3}");
}

#[test]
fn materialized_path_matches_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(77);
    let cases = if cfg!(debug_assertions) { 15 } else { 60 };
    for case in 0..cases {
        let c = random_case(&mut rng);
        let want = reference(&c);
        let (rotation, bias, table);
        match &c.scheme {
            Scheme::Rope { freqs, layout } => {
                rotation = Rotation::Rope {
                    freqs,
                    layout: *layout,
                };
                bias = FusedBias::None;
            }
            Scheme::Alibi { slopes, symmetric } => {
                rotation = Rotation::None;
                bias = FusedBias::Alibi {
                    slopes,
                    symmetric: *symmetric,
                };
            }
            Scheme::T5 {
                bias_table,
                buckets,
            } => {
                table = RelativeBias::t5_for_positions(
                    bias_table,
                    buckets,
                    c.heads.n_q_heads,
                    &c.qpos,
                    &c.kpos,
                )
                .unwrap();
                rotation = Rotation::None;
                bias = FusedBias::Relative(&table);
            }
            _ => {
                rotation = Rotation::None;
                bias = FusedBias::None;
            }
        }
        let got = materialized_bias_attention(
            &c.heads,
            &c.q,
            &c.k,
            &c.v,
            &c.qpos,
            &c.kpos,
            rotation,
            bias,
            &c.mask,
            &FusedOptions::with_scale(c.scale),
        )
        .unwrap();
        let n = c.heads.n_q_heads * c.qpos.len() * c.kpos.len() * 4;
        assert_eq!(got.bias_bytes, n);
        assert_eq!(got.scores_bytes, n);
        let err = max_abs_diff(&got.output, &want);
        let tol = tolerance(&c);
        assert!(err <= tol, "case {case}: error {err:e} > {tol:e}");
        check_zero_rows(&c, &want, &got.output);
    }
}

/// A `(heads, Lq + Lk − 1)` table over the full span (what the benchmark uses) gives the
/// reference T5 result, and so does the clipped `t5_for_positions` table.
#[test]
fn full_span_t5_table_matches_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for &(seq_q, seq_k, offset) in &[(70usize, 150usize, 0u64), (1, 300, 299), (129, 129, 7)] {
        let heads = HeadConfig::new(4, 2, 16).unwrap();
        let buckets = T5Buckets {
            bidirectional: true,
            num_buckets: 32,
            max_distance: 40,
        };
        let bias_table = uniform(&mut rng, 32 * 4);
        let qpos: Vec<u64> = (0..seq_q as u64).map(|i| offset + i).collect();
        let kpos: Vec<u64> = (0..seq_k as u64).collect();
        let q = uniform(&mut rng, seq_q * heads.q_width());
        let k = uniform(&mut rng, seq_k * heads.kv_width());
        let v = uniform(&mut rng, seq_k * heads.kv_width());
        let scheme = Scheme::T5 {
            bias_table: bias_table.clone(),
            buckets,
        };
        let mask = Mask::causal_by_position();
        let want = attention(
            &heads,
            &q,
            &k,
            &v,
            &qpos,
            &kpos,
            &scheme,
            &mask,
            &AttentionOptions {
                scale: Some(1.0),
                return_weights: false,
            },
        )
        .unwrap()
        .output;
        let min_rel = -(offset as i64 + seq_q as i64 - 1);
        let max_rel = seq_k as i64 - 1 - offset as i64;
        let table = RelativeBias::t5(&bias_table, &buckets, 4, min_rel, max_rel).unwrap();
        assert_eq!(table.len(), seq_q + seq_k - 1);
        let got = fused_attention_with(
            &heads,
            &q,
            &k,
            &v,
            &qpos,
            &kpos,
            Rotation::None,
            FusedBias::Relative(&table),
            &mask,
            &FusedOptions::with_scale(Some(1.0)),
        )
        .unwrap();
        assert!(max_abs_diff(&got, &want) < 2e-5);
    }
}

/// Masked pairs get weight exactly 0 whatever their bias: a relative table that puts +1e4 on
/// every future key must not move the causal result at all compared with a table that puts 0 there.
#[test]
fn masked_bias_never_leaks() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let heads = HeadConfig::mha(2, 8).unwrap();
    let l = 100;
    let pos: Vec<u64> = (0..l as u64).collect();
    let (q, k, v) = (
        uniform(&mut rng, l * 16),
        uniform(&mut rng, l * 16),
        uniform(&mut rng, l * 16),
    );
    let table = |future: f32| {
        let mut vals = Vec::new();
        for _ in 0..2 {
            vals.extend((0..2 * l - 1).map(|t| if t + 1 > l { future } else { 0.25 }));
        }
        RelativeBias::new(2, -(l as i64 - 1), vals).unwrap()
    };
    let mask = Mask::causal_by_position().with_key_padding((0..l).map(|j| j % 7 != 3).collect());
    let run = |t: &RelativeBias| {
        fused_attention_with(
            &heads,
            &q,
            &k,
            &v,
            &pos,
            &pos,
            Rotation::None,
            FusedBias::Relative(t),
            &mask,
            &FusedOptions::default(),
        )
        .unwrap()
    };
    assert_eq!(run(&table(1e4)), run(&table(0.0)));
}

/// A KV-cache decode step: one query at the end of a long cache whose keys are stored rotated.
#[test]
fn decode_step_with_prerotated_cache_matches_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let heads = HeadConfig::new(8, 2, 32).unwrap();
    let freqs = RopeParams::new(10000.0, 32)
        .unwrap()
        .frequencies(None, Precision::Exact)
        .unwrap();
    let scheme = Scheme::Rope {
        freqs: freqs.clone(),
        layout: RopeLayout::HalfSplit,
    };
    let seq_k = 333;
    let kpos: Vec<u64> = (1000..1000 + seq_k as u64).collect();
    let qpos = vec![1000 + seq_k as u64 - 1];
    let mut q = uniform(&mut rng, heads.q_width());
    let mut k = uniform(&mut rng, seq_k * heads.kv_width());
    let v = uniform(&mut rng, seq_k * heads.kv_width());
    rope::apply_rotary_seq(&mut q, 8, 32, &qpos, &freqs, RopeLayout::HalfSplit).unwrap();
    rope::apply_rotary_seq(&mut k, 2, 32, &kpos, &freqs, RopeLayout::HalfSplit).unwrap();
    let mask = Mask::causal_by_position();
    let want = attend_positioned(
        &heads,
        &q,
        &k,
        &v,
        &qpos,
        &kpos,
        &scheme,
        &mask,
        &AttentionOptions::default(),
    )
    .unwrap()
    .output;
    let got = fused_attend_positioned(
        &heads,
        &q,
        &k,
        &v,
        &qpos,
        &kpos,
        &scheme,
        &mask,
        &FusedOptions::default(),
    )
    .unwrap();
    assert!(max_abs_diff(&got, &want) < 1e-5);
}

#[test]
fn empty_sequences() {
    let heads = HeadConfig::mha(2, 4).unwrap();
    let out = fused_attention(
        &heads,
        &[],
        &[],
        &[],
        &[],
        &[],
        &Scheme::NoPe,
        &Mask::none(),
        &FusedOptions::default(),
    )
    .unwrap();
    assert!(out.is_empty());
    // Queries but no keys: every row is fully masked, output zeros (as the reference).
    let out = fused_attention(
        &heads,
        &[0.5; 8],
        &[],
        &[],
        &[3],
        &[],
        &Scheme::NoPe,
        &Mask::none(),
        &FusedOptions::default(),
    )
    .unwrap();
    assert_eq!(out, vec![0.0; 8]);
}

#[test]
fn bad_input_is_a_typed_error() {
    let heads = HeadConfig::new(4, 2, 8).unwrap();
    let (q, k, v) = (
        vec![0.1f32; 3 * 32],
        vec![0.1f32; 5 * 16],
        vec![0.1f32; 5 * 16],
    );
    let (qp, kp) = (vec![0u64, 1, 2], vec![0u64, 1, 2, 3, 4]);
    let o = FusedOptions::default();
    let run = |q: &[f32], k: &[f32], v: &[f32], qp: &[u64], kp: &[u64], s: &Scheme, m: &Mask| {
        fused_attention(&heads, q, k, v, qp, kp, s, m, &o)
    };
    let none = Mask::none();
    assert!(run(&q, &k, &v, &qp, &kp, &Scheme::NoPe, &none).is_ok());
    assert!(matches!(
        run(&q[1..], &k, &v, &qp, &kp, &Scheme::NoPe, &none),
        Err(Error::Shape { .. })
    ));
    assert!(run(&q, &k, &v[1..], &qp, &kp, &Scheme::NoPe, &none).is_err());
    assert!(run(&q, &k, &v, &qp[1..], &kp, &Scheme::NoPe, &none).is_err());
    let mut nan = q.clone();
    nan[5] = f32::NAN;
    assert!(run(&nan, &k, &v, &qp, &kp, &Scheme::NoPe, &none).is_err());
    // Finite in f32 but |score| up to 1e40: refused instead of overflowing.
    let (big_q, big_k) = (vec![1e20f32; q.len()], vec![1e20f32; k.len()]);
    assert!(matches!(
        run(&big_q, &big_k, &v, &qp, &kp, &Scheme::NoPe, &none),
        Err(Error::InvalidParameter { .. })
    ));
    let bad_mask = Mask::none().with_key_padding(vec![true; 4]);
    assert!(run(&q, &k, &v, &qp, &kp, &Scheme::NoPe, &bad_mask).is_err());
    let bad_alibi = Scheme::Alibi {
        slopes: vec![0.5; 3],
        symmetric: false,
    };
    assert!(run(&q, &k, &v, &qp, &kp, &bad_alibi, &none).is_err());
    let shaw = Scheme::Shaw {
        rel_k: vec![0.0; 3 * 8],
        rel_v: vec![],
        max_relative_position: 1,
    };
    assert!(run(&q, &k, &v, &qp, &kp, &shaw, &none).is_err());
    let table = RelativeBias::new(2, 0, vec![0.0; 4]).unwrap();
    assert!(fused_attention_with(
        &heads,
        &q,
        &k,
        &v,
        &qp,
        &kp,
        Rotation::None,
        FusedBias::Relative(&table),
        &none,
        &o,
    )
    .is_err());
    let freqs = RopeParams::new(10000.0, 16)
        .unwrap()
        .frequencies(None, Precision::Exact)
        .unwrap();
    assert!(fused_attention_with(
        &heads,
        &q,
        &k,
        &v,
        &qp,
        &kp,
        Rotation::Rope {
            freqs: &freqs,
            layout: RopeLayout::HalfSplit
        },
        FusedBias::None,
        &none,
        &o,
    )
    .is_err());
    let nan_scale = FusedOptions::with_scale(Some(f64::NAN));
    assert!(fused_attention(
        &heads,
        &q,
        &k,
        &v,
        &qp,
        &kp,
        &Scheme::NoPe,
        &none,
        &nan_scale
    )
    .is_err());
    assert!(RelativeBias::t5(
        &[0.0; 64],
        &T5Buckets {
            bidirectional: true,
            num_buckets: 32,
            max_distance: 128
        },
        2,
        5,
        4
    )
    .is_err());
}
