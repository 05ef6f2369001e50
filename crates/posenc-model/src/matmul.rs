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
