//! Vectorized `f32` dot product and shifted exponential (the runner's softmax).

/// Dot product with 16 independent accumulators (vectorizes; order differs from a plain sum).
/// Compiled for AVX2 as well as the baseline, picked at run time.
#[multiversion::multiversion(targets("x86_64+avx2+fma", "x86_64+avx"))]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Replaces every `s` by `exp((s − max)·scale)` and returns the sum of the results
/// (`max ≥ s` and `scale > 0`, so every argument is ≤ 0; `−∞` gives ≈1e-38, not 0).
///
/// `exp` by range reduction: `x = k·ln2 + r` with `k = round(x / ln2)`, `|r| ≤ ln2/2`, Cody–Waite
/// split of ln2, degree-7 Taylor polynomial for `e^r` (truncation error < 3e-9 relative), and `2^k`
/// written into the exponent bits. Arguments are clamped to `[−87, 0]`, so `2^k` stays normal.
/// Relative error about 2e-7 (a few ulp), checked against f64 `exp` in the tests. Plain
/// arithmetic that the compiler vectorizes (libm's `expf` is a scalar call).
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512vl+avx2+fma",
    "x86_64+avx2+fma",
    "x86_64+avx"
))]
pub(crate) fn exp_shifted(scores: &mut [f32], max: f32, scale: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // Cody–Waite: LN2_HI has 9 significant bits, so k·LN2_HI is exact for |k| < 2^15.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4; // ln 2 − LN2_HI
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding and subtracting rounds to an integer
    let mut acc = [0.0f32; 16];
    let exp = |s: f32| -> f32 {
        let x = ((s - max) * scale).clamp(-87.0, 0.0);
        // t's mantissa holds k: its bits minus ROUND's bits are k (|k| ≤ 126 < 2^22). Integer
        // bit arithmetic instead of a float-to-int cast keeps the loop vectorized.
        let t = x * LOG2E + ROUND;
        let k = t - ROUND;
        let r = x - k * LN2_HI - k * LN2_LO;
        let p = 1.0
            + r * (1.0
                + r * (0.5
                    + r * (1.0 / 6.0
                        + r * (1.0 / 24.0
                            + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
        let k_int = t.to_bits().wrapping_sub(ROUND.to_bits());
        let two_k = f32::from_bits(k_int.wrapping_add(127) << 23);
        p * two_k
    };
    let mut chunks = scores.chunks_exact_mut(16);
    for c in &mut chunks {
        for i in 0..16 {
            c[i] = exp(c[i]);
            acc[i] += c[i];
        }
    }
    let mut tail = 0.0f32;
    for v in chunks.into_remainder() {
        *v = exp(*v);
        tail += *v;
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_shifted_matches_f64_exp_over_random_arguments() {
        // Seeded sweep over the whole clamped range, plus the edges.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        for trial in 0..200 {
            let n = 1 + trial % 67;
            let scale = 0.01 + 2.0 * next();
            let max = 50.0 * (next() - 0.5);
            let mut s: Vec<f32> = (0..n).map(|_| max - 90.0 / scale * next()).collect();
            if trial == 0 {
                s[0] = max;
            }
            let want: Vec<f64> = s
                .iter()
                .map(|&v| (((v - max) * scale).max(-87.0) as f64).exp())
                .collect();
            let sum = exp_shifted(&mut s, max, scale);
            for (g, w) in s.iter().zip(&want) {
                assert!((*g as f64 - w).abs() <= 4e-7 * w, "{g} vs {w}");
            }
            let want_sum: f64 = want.iter().sum();
            assert!((sum as f64 - want_sum).abs() <= 1e-6 * want_sum);
        }
        let mut s = [f32::NEG_INFINITY, 0.0];
        exp_shifted(&mut s, 0.0, 1.0);
        assert!(s[0] > 0.0 && s[0] < 1e-37 && s[1] == 1.0);
    }
}
