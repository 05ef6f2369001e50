//! The one safe `f32` matrix product of the workspace: a bounds check in front of
//! `matrixmultiply::sgemm` or the `gemm` crate's kernels ([`GemmBackend`]). Every product in
//! posenc and posenc-model (fused attention's GEMM tiles, the materialized path, the model's
//! prefill projections and attention) goes through [`gemm()`]. `matrixmultiply` has AVX2/FMA
//! kernels; `gemm` also has AVX-512 ones. BENCHMARKS.md ("Real model") has the measurement that
//! picked the default.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::{Error, Result};

/// Which implementation runs the products of [`gemm()`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GemmBackend {
    /// `matrixmultiply::sgemm` (AVX2/FMA kernels, packs both operands).
    MatrixMultiply,
    /// The `gemm` crate (`gemm-f32`: AVX-512 and AVX2 kernels, picked at run time).
    Gemm,
}

/// The process-wide default backend (0 = gemm, 1 = matrixmultiply).
static DEFAULT_BACKEND: AtomicU8 = AtomicU8::new(0);

/// The backend [`gemm()`] uses (initially [`GemmBackend::Gemm`]).
pub fn default_backend() -> GemmBackend {
    match DEFAULT_BACKEND.load(Ordering::Relaxed) {
        1 => GemmBackend::MatrixMultiply,
        _ => GemmBackend::Gemm,
    }
}

/// Sets the backend [`gemm()`] uses for the rest of the process (benchmarks compare the two).
pub fn set_default_backend(backend: GemmBackend) {
    let v = match backend {
        GemmBackend::Gemm => 0,
        GemmBackend::MatrixMultiply => 1,
    };
    DEFAULT_BACKEND.store(v, Ordering::Relaxed);
}

/// A strided read-only matrix view: element `(r, c)` is `data[offset + r·rs + c·cs]`.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    /// The backing buffer.
    pub data: &'a [f32],
    /// Index of element `(0, 0)`.
    pub offset: usize,
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Distance between consecutive rows.
    pub rs: usize,
    /// Distance between consecutive columns.
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// A dense row-major `rows × cols` view of the start of `data`.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> MatRef<'a> {
        MatRef {
            data,
            offset: 0,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose (same data, rows and columns swapped).
    pub fn t(self) -> MatRef<'a> {
        MatRef {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// Whether every element lies inside `data` (checked before any raw-pointer use).
    pub fn in_bounds(&self) -> bool {
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

/// `out[m × n] = a[m × k] · b[k × n]`, or `out += a · b` when `accumulate`. `out` is row-major
/// with row stride `out_rs ≥ n`.
///
/// Runs on [`default_backend`].
///
/// Errors (nothing is written): `a.cols != b.rows`, a view that reaches outside its buffer, or
/// an `out` too small for `m` rows of stride `out_rs`.
pub fn gemm(a: MatRef, b: MatRef, out: &mut [f32], out_rs: usize, accumulate: bool) -> Result<()> {
    gemm_with(default_backend(), a, b, out, out_rs, accumulate)
}

/// [`gemm()`] on a given backend.
pub fn gemm_with(
    backend: GemmBackend,
    a: MatRef,
    b: MatRef,
    out: &mut [f32],
    out_rs: usize,
    accumulate: bool,
) -> Result<()> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if b.rows != k {
        return Err(Error::shape("gemm b rows", k, b.rows));
    }
    if !a.in_bounds() || !b.in_bounds() {
        return Err(Error::shape(
            "gemm operand",
            "a view inside its buffer",
            "a view past the end",
        ));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    let need = (m - 1).checked_mul(out_rs).and_then(|v| v.checked_add(n));
    if out_rs < n || need.is_none_or(|need| need > out.len()) {
        return Err(Error::shape(
            "gemm output",
            format!("{m} rows of stride {out_rs} ≥ {n}"),
            out.len(),
        ));
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                out[r * out_rs..r * out_rs + n].fill(0.0);
            }
        }
        return Ok(());
    }
    if backend == GemmBackend::Gemm {
        // SAFETY: as below; `gemm` computes dst = alpha·dst + beta·lhs·rhs, reading dst only
        // when `read_dst`. One thread: callers split the work with rayon.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                out.as_mut_ptr(),
                1,
                out_rs as isize,
                accumulate,
                a.data.as_ptr().add(a.offset),
                a.cs as isize,
                a.rs as isize,
                b.data.as_ptr().add(b.offset),
                b.cs as isize,
                b.rs as isize,
                1.0f32,
                1.0f32,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        return Ok(());
    }
    // SAFETY: the checks above guarantee that every element addressed through these pointers and
    // strides lies inside the borrowed slices; `out` is borrowed mutably, so it aliases neither.
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
            if accumulate { 1.0 } else { 0.0 },
            out.as_mut_ptr(),
            out_rs as isize,
            1,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: MatRef, b: MatRef) -> Vec<f64> {
        let mut y = vec![0.0; a.rows * b.cols];
        for r in 0..a.rows {
            for c in 0..b.cols {
                y[r * b.cols + c] = (0..a.cols)
                    .map(|i| {
                        a.data[a.offset + r * a.rs + i * a.cs] as f64
                            * b.data[b.offset + i * b.rs + c * b.cs] as f64
                    })
                    .sum();
            }
        }
        y
    }

    proptest::proptest! {
        /// Strided and transposed operands, with and without accumulation, against f64 loops.
        #[test]
        fn gemm_matches_naive(m in 0usize..9, k in 0usize..13, n in 0usize..11, off in 0usize..3,
                              transpose_b in proptest::bool::ANY, accumulate in proptest::bool::ANY,
                              seed in 0u32..1000) {
            let val = |i: usize| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 97) as f32 / 48.0 - 1.0;
            let ad: Vec<f32> = (0..off + m * k).map(val).collect();
            let bd: Vec<f32> = (0..off + k * n).map(|i| val(i + 7)).collect();
            let a = MatRef { offset: off, ..MatRef::row_major(&ad, m, k) };
            let b = if transpose_b {
                MatRef { offset: off, ..MatRef::row_major(&bd, n, k) }.t()
            } else {
                MatRef { offset: off, ..MatRef::row_major(&bd, k, n) }
            };
            let out_rs = n + 1;
            let before: Vec<f32> = (0..m * out_rs).map(|i| val(i + 3)).collect();
            let want = naive(a, b);
            for backend in [GemmBackend::MatrixMultiply, GemmBackend::Gemm] {
                let mut out = before.clone();
                gemm_with(backend, a, b, &mut out, out_rs, accumulate).unwrap();
                for r in 0..m {
                    for c in 0..n {
                        let base = if accumulate { before[r * out_rs + c] as f64 } else { 0.0 };
                        let w = want[r * n + c] + base;
                        proptest::prop_assert!((out[r * out_rs + c] as f64 - w).abs() < 1e-5 * (1.0 + w.abs()),
                            "{backend:?} ({r}, {c})");
                    }
                    // The padding column of each output row is never written.
                    if n < out_rs {
                        proptest::prop_assert_eq!(out[r * out_rs + n], before[r * out_rs + n]);
                    }
                }
            }
        }
    }

    #[test]
    fn gemm_rejects_out_of_bounds_views() {
        let d = [0.0f32; 6];
        let a = MatRef::row_major(&d, 2, 4);
        let b = MatRef::row_major(&d, 4, 1);
        let mut out = [0.0f32; 2];
        assert!(gemm(a, b, &mut out, 1, false).is_err());
        let a = MatRef::row_major(&d, 2, 3);
        let b = MatRef::row_major(&d, 3, 2);
        assert!(gemm(a, b, &mut out, 2, false).is_err());
        let mut out = [0.0f32; 4];
        assert!(gemm(a, b, &mut out, 2, false).is_ok());
    }
}
