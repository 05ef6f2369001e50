//! Property tests of the RoPE rotation as attention uses it.
//!
//! Tolerances come from f32 rounding. With `u = ε/2` the unit roundoff of f32, one rotated
//! component `a·c - b·s` carries the rounding of `c` and `s` (stored f32), of both products and of
//! the difference: at most `3u·(|a c| + |b s|) ≤ 3u·|(a, b)|`. So the rotated pair is off by at
//! most `3√2·u·|(a, b)| ≈ 4.25u` of its norm (times the attention factor), and a dot product of
//! two rotated vectors by `(4.25u + 4.25u)·|q||k|` (Cauchy–Schwarz over the pairs). Angles are
//! formed in f64 (error `≈ p·1e-16` rad, `1e-10` at `p = 1e6`), which is negligible here.

use posenc::rope::{
    apply_rotary, cos_sin_row, rotation_row, Precision, RopeFrequencies, RopeLayout, RopeParams,
    RopeScaling, YarnParams,
};
use proptest::prelude::*;

const U: f64 = f32::EPSILON as f64 / 2.0;

fn freqs(base: f64, head_dim: usize, rotary_dim: usize, yarn: bool) -> RopeFrequencies {
    let scaling = if yarn {
        RopeScaling::Yarn(YarnParams::new(8.0, 2048))
    } else {
        RopeScaling::Default
    };
    RopeParams {
        base,
        head_dim,
        rotary_dim,
        max_position_embeddings: 16384,
        scaling,
    }
    .frequencies(None, Precision::Exact)
    .unwrap()
}

fn rotate(x: &[f32], f: &RopeFrequencies, p: u64, layout: RopeLayout) -> Vec<f32> {
    let mut cos = vec![0.0f32; f.pairs()];
    let mut sin = vec![0.0f32; f.pairs()];
    cos_sin_row(f, p, &mut cos, &mut sin).unwrap();
    let mut out = x.to_vec();
    apply_rotary(&mut out, &cos, &sin, layout).unwrap();
    out
}

fn pair_idx(layout: RopeLayout, i: usize, pairs: usize) -> (usize, usize) {
    match layout {
        RopeLayout::HalfSplit => (i, i + pairs),
        RopeLayout::Interleaved => (2 * i, 2 * i + 1),
    }
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

fn norm(a: &[f32]) -> f64 {
    dot(a, a).sqrt()
}

fn layout() -> impl Strategy<Value = RopeLayout> {
    prop_oneof![Just(RopeLayout::HalfSplit), Just(RopeLayout::Interleaved)]
}

/// (head_dim, rotary_dim, vector) with even rotary_dim <= head_dim.
fn head() -> impl Strategy<Value = (usize, usize, Vec<f32>)> {
    (1usize..=32, 0usize..=8).prop_flat_map(|(pairs, extra)| {
        let d = 2 * pairs + extra;
        (
            Just(d),
            Just(2 * pairs),
            prop::collection::vec(-10.0f32..10.0, d),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every rotated pair keeps its norm (times the attention factor); dims past rotary_dim are
    /// untouched bit for bit.
    #[test]
    fn rotation_preserves_each_pair_norm(
        (d, rd, x) in head(),
        base in 10.0f64..1e6,
        p in 0u64..=1_000_000,
        yarn in any::<bool>(),
        layout in layout(),
    ) {
        let f = freqs(base, d, rd, yarn);
        let a = f.attention_factor;
        let y = rotate(&x, &f, p, layout);
        for i in 0..f.pairs() {
            let (ia, ib) = pair_idx(layout, i, f.pairs());
            let before = (x[ia] as f64).hypot(x[ib] as f64);
            let after = (y[ia] as f64).hypot(y[ib] as f64);
            // 4.25u bound, rounded up to 6u.
            prop_assert!((after - a * before).abs() <= 6.0 * U * a * before,
                "pair {}: {} vs {}", i, after, a * before);
        }
        prop_assert_eq!(
            x[rd..].iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            y[rd..].iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    /// `<R(m) q, R(n) k> = a² <q, R(n - m) k>` for positions up to 1e6 (exact mode), where
    /// `R(n - m)` is the pure rotation of `rotation_row`. Bound: 8.5u|q||k| on the left (two
    /// rotations), 4.25u on the right, total ≈ 12.75u ≈ 6.4ε; we allow 8ε·a²·|q||k|.
    #[test]
    fn scores_depend_only_on_the_offset(
        (d, rd, q) in head(),
        kseed in prop::collection::vec(-10.0f32..10.0, 72),
        base in 10.0f64..1e6,
        m in 0u64..=1_000_000,
        n in 0u64..=1_000_000,
        yarn in any::<bool>(),
        layout in layout(),
    ) {
        let k = &kseed[..d];
        let f = freqs(base, d, rd, yarn);
        let a = f.attention_factor;
        let lhs = dot(&rotate(&q, &f, m, layout), &rotate(k, &f, n, layout));
        let mut cos = vec![0.0f32; f.pairs()];
        let mut sin = vec![0.0f32; f.pairs()];
        rotation_row(&f, n as i64 - m as i64, &mut cos, &mut sin).unwrap();
        let mut kr = k.to_vec();
        apply_rotary(&mut kr, &cos, &sin, layout).unwrap();
        // Dims past rotary_dim are not scaled by the factor: compare them separately.
        let rhs = a * a * dot(&q[..rd], &kr[..rd]) + dot(&q[rd..], &kr[rd..]);
        let tol = 8.0 * f32::EPSILON as f64 * a * a * norm(&q) * norm(k);
        prop_assert!((lhs - rhs).abs() <= tol, "{} vs {} (tol {:e})", lhs, rhs, tol);
    }
}
