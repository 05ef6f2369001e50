//! Dense `f32` matrix products through `matrixmultiply`, split across rayon threads.

use rayon::prelude::*;

/// A strided read-only matrix view: element `(r, c)` is `data[offset + r*rs + c*cs]`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl View<'_> {
    /// Whether every element lies inside `data` (checked before any raw-pointer use).
    fn in_bounds(&self) -> bool {
        if self.rows == 0 || self.cols == 0 {
            return true;
        }
        let last = (self.rows - 1)
            .checked_mul(self.rs)
            .and_then(|a| {
                (self.cols - 1)
                    .checked_mul(self.cs)
                    .and_then(|b| a.checked_add(b))
            })
            .and_then(|a| a.checked_add(self.offset));
        last.is_some_and(|l| l < self.data.len())
    }
}

/// `out[m × n] (row-major, row stride out_rs) = a[m × k] · b[k × n]`.
///
/// Panics if a view or `out` is too small (internal callers size them; never user-controlled).
pub(crate) fn gemm_into(a: View, b: View, out: &mut [f32], out_rs: usize) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(
        a.in_bounds() && b.in_bounds() && b.rows == k,
        "gemm operand shapes"
    );
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        out_rs >= n && (m - 1) * out_rs + n <= out.len(),
        "gemm output shape"
    );
    if k == 0 {
        for r in 0..m {
            out[r * out_rs..r * out_rs + n].fill(0.0);
        }
        return;
    }
    // SAFETY: the asserts above guarantee every element addressed through these pointers and
    // strides lies inside the borrowed slices; `out` is borrowed mutably and does not alias.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.data.as_ptr().add(a.offset),
            a.rs as isize,
            a.cs as isize,
            b.data.as_ptr().add(b.offset),
            b.rs as isize,
            b.cs as isize,
            0.0,
            out.as_mut_ptr(),
            out_rs as isize,
            1,
        );
    }
}

/// `y[n × m] = x[n × k] · wᵀ` where `w` holds `m` rows of `k` values (a GGUF weight with
/// `ne = [k, m]`). Splits rows of `x` across threads for long inputs and output features for short
/// ones (decode).
pub(crate) fn linear(x: &[f32], n: usize, k: usize, w: &[f32], m: usize) -> Vec<f32> {
    let mut y = vec![0.0f32; n * m];
    let threads = rayon::current_num_threads().max(1);
    if n <= 2 {
        // Decode: a matrix-vector product is memory-bound; stream each weight row once instead of
        // letting the GEMM pack the whole weight matrix first.
        let rows_per = 256;
        for (r, yr) in y.chunks_mut(m).enumerate() {
            let xr = &x[r * k..(r + 1) * k];
            yr.par_chunks_mut(rows_per)
                .enumerate()
                .for_each(|(ci, yc)| {
                    for (j, out) in yc.iter_mut().enumerate() {
                        let row = (ci * rows_per + j) * k;
                        *out = dot(xr, &w[row..row + k]);
                    }
                });
        }
        return y;
    }
    let wt = |c0: usize, c1: usize| View {
        data: w,
        offset: c0 * k,
        rows: k,
        cols: c1 - c0,
        rs: 1,
        cs: k,
    };
    if n >= 16 * threads {
        let rows_per = n.div_ceil(threads * 4).max(8);
        y.par_chunks_mut(rows_per * m)
            .enumerate()
            .for_each(|(ci, yc)| {
                let r0 = ci * rows_per;
                let rows = yc.len() / m;
                let a = View {
                    data: x,
                    offset: r0 * k,
                    rows,
                    cols: k,
                    rs: k,
                    cs: 1,
                };
                gemm_into(a, wt(0, m), yc, m);
            });
    } else {
        let cols_per = m.div_ceil(threads * 4).max(64);
        let a = View {
            data: x,
            offset: 0,
            rows: n,
            cols: k,
            rs: k,
            cs: 1,
        };
        let parts: Vec<(usize, Vec<f32>)> = (0..m.div_ceil(cols_per))
            .into_par_iter()
            .map(|ci| {
                let c0 = ci * cols_per;
                let c1 = (c0 + cols_per).min(m);
                let mut part = vec![0.0f32; n * (c1 - c0)];
                gemm_into(a, wt(c0, c1), &mut part, c1 - c0);
                (c0, part)
            })
            .collect();
        for (c0, part) in parts {
            let w = part.len() / n.max(1);
            for r in 0..n {
                y[r * m + c0..r * m + c0 + w].copy_from_slice(&part[r * w..(r + 1) * w]);
            }
        }
    }
    y
}

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

    fn naive(x: &[f32], n: usize, k: usize, w: &[f32], m: usize) -> Vec<f64> {
        let mut y = vec![0.0; n * m];
        for r in 0..n {
            for c in 0..m {
                y[r * m + c] = (0..k)
                    .map(|i| x[r * k + i] as f64 * w[c * k + i] as f64)
                    .sum();
            }
        }
        y
    }

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

    #[test]
    fn linear_matches_naive_for_both_splits() {
        for &(n, k, m) in &[
            (1, 37, 300),
            (3, 64, 5),
            (100, 20, 130),
            (0, 4, 4),
            (2, 0, 3),
        ] {
            let x: Vec<f32> = (0..n * k)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0)
                .collect();
            let w: Vec<f32> = (0..m * k)
                .map(|i| ((i * 11 % 17) as f32 - 8.0) / 7.0)
                .collect();
            let y = linear(&x, n, k, &w, m);
            let want = naive(&x, n, k, &w, m);
            assert_eq!(y.len(), want.len());
            for (a, b) in y.iter().zip(&want) {
                assert!((*a as f64 - b).abs() < 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
    }
}
