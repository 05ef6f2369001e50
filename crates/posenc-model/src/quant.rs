//! Weight matrices kept in their GGUF storage type, and the products that read them.
//!
//! A [`QMatrix`] holds `rows` rows of `cols` values as the file stores them (`Q4_0`, `Q4_1`,
//! `Q8_0` blocks, `Q4_K`, `Q6_K` super-blocks; see [`crate::gguf`] for the layouts), or as `f32`
//! for float tensors (`F16`/`BF16` are widened at load). Nothing is dequantized at load.
//! K-quant rows decode one 256-value super-block at a time into an L1 buffer (reference decoder)
//! followed by the vectorized dot product; they have no register-level kernels yet.
//!
//! - **Decode** ([`QMatrix::matvec`], and [`QMatrix::matmul`] with a few rows): each weight block
//!   is unpacked in registers and multiplied with `f32` activations. Kernels for AVX-512 and
//!   AVX2+FMA (`std::arch`, picked at run time by feature detection) and a scalar fallback
//!   (dequantize the row with [`crate::gguf::dequantize_into`], then a dot product). Rows are split
//!   across rayon's threads.
//! - **Prefill** ([`QMatrix::matmul`] with many rows): tiles of [`TILE_ROWS`] weight rows are
//!   dequantized into a scratch buffer and multiplied by the activations with
//!   [`posenc::kernels::gemm::gemm`]; tiles run in parallel.
//!
//! The 4-bit types factor their offset out of the block sum: for `Q4_1`,
//! `Σ (d·q_j + m)·x_j = d·Σ q_j x_j + m·Σ x_j`, and `Q4_0` is the case `m = −8d`. The block sums
//! `Σ x_j` are computed once per activation row and shared by every weight row. Results differ
//! from dequantize-then-dot only by the order of the f32 additions (tested in this module).

use crate::error::{Error, Result};
use crate::gguf::{dequantize_into, GgmlType};
use posenc::cached_attention::dot;
use posenc::kernels::gemm::{gemm, MatRef};
use rayon::prelude::*;

/// Weight rows per prefill tile (a 128 × 576 `f32` tile is 288 KiB: it stays in L2 while the
/// GEMM streams the activations past it).
pub const TILE_ROWS: usize = 128;
/// Up to this many activation rows, [`QMatrix::matmul`] runs one matrix–vector product per row
/// (decode); above, it dequantizes tiles into the GEMM.
pub const MATVEC_MAX_ROWS: usize = 4;
/// Weight rows per parallel matrix–vector task.
const MATVEC_TASK_ROWS: usize = 64;
/// Values per quantized block (all supported block types).
const QK: usize = 32;

/// Instruction set a kernel runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Portable code (dequantize the row, then dot).
    Scalar,
    /// AVX2 + FMA + F16C.
    Avx2,
    /// AVX-512F + F16C.
    Avx512,
}

impl Isa {
    /// The best kernel set this CPU supports.
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("f16c") {
                return Isa::Avx512;
            }
            if is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
            {
                return Isa::Avx2;
            }
        }
        Isa::Scalar
    }

    /// Every kernel set this CPU can run (for tests and benchmarks).
    pub fn available() -> Vec<Isa> {
        let mut out = vec![Isa::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            let f16c = is_x86_feature_detected!("f16c");
            if f16c && is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                out.push(Isa::Avx2);
            }
            if f16c && is_x86_feature_detected!("avx512f") {
                out.push(Isa::Avx512);
            }
        }
        out
    }
}

enum Data {
    F32(Vec<f32>),
    Blocks(Vec<u8>),
}

/// A `rows × cols` weight matrix (a GGUF tensor with `ne = [cols, rows]`) in its storage type.
pub struct QMatrix {
    ty: GgmlType,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    data: Data,
}

impl std::fmt::Debug for QMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QMatrix")
            .field("type", &self.ty.name())
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .finish()
    }
}

impl QMatrix {
    /// Wraps the raw bytes of a tensor of type `ty` with `rows` rows of `cols` values. `Q4_0`,
    /// `Q4_1` and `Q8_0` stay as stored; `F32`, `F16` and `BF16` become `f32`. Another type is
    /// [`Error::UnsupportedType`] naming `name`; a length that does not match is [`Error::Gguf`].
    pub fn from_raw(
        name: &str,
        ty: GgmlType,
        rows: usize,
        cols: usize,
        raw: &[u8],
    ) -> Result<QMatrix> {
        let unsupported = || Error::UnsupportedType {
            tensor: name.to_string(),
            type_name: ty.name().to_string(),
            type_id: ty.0,
        };
        let (per_block, block_bytes) = ty.block_layout().ok_or_else(unsupported)?;
        if !cols.is_multiple_of(per_block) {
            return Err(Error::Gguf(format!(
                "tensor `{name}`: row length {cols} is not a multiple of the {} block size {per_block}",
                ty.name()
            )));
        }
        let row_bytes = cols / per_block * block_bytes;
        if rows.checked_mul(row_bytes) != Some(raw.len()) {
            return Err(Error::Gguf(format!(
                "tensor `{name}`: {} bytes for {rows} rows of {cols} {} values",
                raw.len(),
                ty.name()
            )));
        }
        let data = match ty {
            GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q8_0 | GgmlType::Q4_K | GgmlType::Q6_K => {
                Data::Blocks(raw.to_vec())
            }
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => {
                let mut v = vec![0.0f32; rows * cols];
                dequantize_into(ty, raw, &mut v)?;
                Data::F32(v)
            }
            _ => return Err(unsupported()),
        };
        let (ty, row_bytes) = match data {
            Data::F32(_) => (GgmlType::F32, cols * 4),
            Data::Blocks(_) => (ty, row_bytes),
        };
        Ok(QMatrix {
            ty,
            rows,
            cols,
            row_bytes,
            data,
        })
    }

    /// The storage type (`F32` for float tensors, which are widened at load).
    pub fn ggml_type(&self) -> GgmlType {
        self.ty
    }

    /// Number of rows (output features).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (input features).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes held in memory.
    pub fn bytes(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len() * 4,
            Data::Blocks(b) => b.len(),
        }
    }

    /// Dequantizes rows `r0..r1` into `out` (`(r1 − r0) × cols` values), with the scalar
    /// reference dequantizer. Panics if the range or `out` does not fit (internal use).
    pub fn dequantize_rows(&self, r0: usize, r1: usize, out: &mut [f32]) {
        assert!(r0 <= r1 && r1 <= self.rows && out.len() == (r1 - r0) * self.cols);
        match &self.data {
            Data::F32(v) => out.copy_from_slice(&v[r0 * self.cols..r1 * self.cols]),
            Data::Blocks(b) => {
                dequantize_into(self.ty, &b[r0 * self.row_bytes..r1 * self.row_bytes], out)
                    .expect("block rows were checked at construction");
            }
        }
    }

    /// `y = W·x` (`x` has `cols` values, `y` gets `rows`), rows split across rayon's threads.
    /// Panics on a length mismatch (internal use).
    pub fn matvec(&self, x: &[f32], y: &mut [f32]) {
        self.matvec_with(Isa::detect(), x, y)
    }

    /// [`QMatrix::matvec`] on a given kernel set (which must be one of [`Isa::available`]).
    pub fn matvec_with(&self, isa: Isa, x: &[f32], y: &mut [f32]) {
        assert!(
            x.len() == self.cols && y.len() == self.rows,
            "matvec shapes"
        );
        assert!(Isa::available().contains(&isa), "kernel set not available");
        let sums = block_sums(x);
        y.par_chunks_mut(MATVEC_TASK_ROWS)
            .enumerate()
            .for_each(|(ci, yc)| {
                let r0 = ci * MATVEC_TASK_ROWS;
                let mut scratch = Vec::new();
                for (j, out) in yc.iter_mut().enumerate() {
                    *out = self.dot_row(isa, r0 + j, x, &sums, &mut scratch);
                }
            });
    }

    /// `y[n × rows] = x[n × cols] · Wᵀ`: matrix–vector products for `n ≤` [`MATVEC_MAX_ROWS`],
    /// dequantized tiles into the GEMM above. Panics on a length mismatch (internal use).
    pub fn matmul(&self, x: &[f32], n: usize) -> Vec<f32> {
        let (k, m) = (self.cols, self.rows);
        assert_eq!(x.len(), n * k, "matmul shapes");
        let mut y = vec![0.0f32; n * m];
        if n <= MATVEC_MAX_ROWS {
            for (xr, yr) in x.chunks_exact(k.max(1)).zip(y.chunks_exact_mut(m.max(1))) {
                self.matvec(xr, yr);
            }
            return y;
        }
        let a = MatRef::row_major(x, n, k);
        let tiles = m.div_ceil(TILE_ROWS);
        let parts: Vec<(usize, Vec<f32>)> = (0..tiles)
            .into_par_iter()
            .map(|t| {
                let (c0, c1) = (t * TILE_ROWS, ((t + 1) * TILE_ROWS).min(m));
                let w = c1 - c0;
                let mut part = vec![0.0f32; n * w];
                let deq;
                let b = match &self.data {
                    Data::F32(v) => MatRef {
                        offset: c0 * k,
                        ..MatRef::row_major(v, w, k)
                    }
                    .t(),
                    Data::Blocks(_) => {
                        let mut buf = vec![0.0f32; w * k];
                        self.dequantize_rows(c0, c1, &mut buf);
                        deq = buf;
                        MatRef::row_major(&deq, w, k).t()
                    }
                };
                gemm(a, b, &mut part, w, false).expect("tile shapes are consistent");
                (c0, part)
            })
            .collect();
        for (c0, part) in parts {
            let w = part.len() / n;
            for (r, src) in part.chunks_exact(w).enumerate() {
                y[r * m + c0..r * m + c0 + w].copy_from_slice(src);
            }
        }
        y
    }

    fn dot_row(&self, isa: Isa, r: usize, x: &[f32], sums: &[f32], scratch: &mut Vec<f32>) -> f32 {
        let data = match &self.data {
            Data::F32(v) => return dot(&v[r * self.cols..(r + 1) * self.cols], x),
            Data::Blocks(b) => &b[r * self.row_bytes..(r + 1) * self.row_bytes],
        };
        if matches!(self.ty, GgmlType::Q4_K | GgmlType::Q6_K) {
            // K-quants: each 256-value super-block is decoded into an L1-resident buffer by the
            // reference decoder, then multiplied with the vectorized dot product.
            let (per_block, block_bytes) = self.ty.block_layout().expect("supported type");
            let mut buf = [0.0f32; 256];
            return data
                .chunks_exact(block_bytes)
                .zip(x.chunks_exact(per_block))
                .map(|(blk, xb)| {
                    dequantize_into(self.ty, blk, &mut buf).expect("whole super-block");
                    dot(&buf, xb)
                })
                .sum();
        }
        match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `isa` is one of `Isa::available()` (asserted by the callers), so the CPU has
            // the features the kernel is compiled for; `data` holds `cols / 32` whole blocks,
            // `x` has `cols` values and `sums` one value per block.
            Isa::Avx512 => unsafe {
                match self.ty {
                    GgmlType::Q4_0 => x86::q4_avx512::<false>(data, x, sums),
                    GgmlType::Q4_1 => x86::q4_avx512::<true>(data, x, sums),
                    _ => x86::q8_0_avx512(data, x),
                }
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Isa::Avx2 => unsafe {
                match self.ty {
                    GgmlType::Q4_0 => x86::q4_avx2::<false>(data, x, sums),
                    GgmlType::Q4_1 => x86::q4_avx2::<true>(data, x, sums),
                    _ => x86::q8_0_avx2(data, x),
                }
            },
            _ => {
                scratch.resize(self.cols, 0.0);
                dequantize_into(self.ty, data, scratch).expect("row checked at construction");
                dot(scratch, x)
            }
        }
    }
}

/// Sums of `x` over each 32-value block (the offset term of the 4-bit types).
fn block_sums(x: &[f32]) -> Vec<f32> {
    x.chunks(QK).map(|c| c.iter().sum()).collect()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! Block kernels. Each takes one row of whole blocks, the `f32` activations (`32 ·` blocks
    //! values) and, for the 4-bit types, the activations' block sums. Blocks go in pairs with two
    //! sets of accumulators, so consecutive blocks do not wait on each other's additions.
    use std::arch::x86_64::*;

    #[inline(always)]
    unsafe fn hsum256(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    /// The f16 at `p` broadcast to 16 f32 lanes. Full-width broadcast and conversion: scalar
    /// f16 conversions compiled to partial-register inserts that waited on the accumulators.
    #[inline(always)]
    unsafe fn f16_x16(p: *const u8) -> __m512 {
        _mm512_cvtph_ps(_mm256_set1_epi16((p as *const i16).read_unaligned()))
    }

    /// The f16 at `p` broadcast to 8 f32 lanes.
    #[inline(always)]
    unsafe fn f16_x8(p: *const u8) -> __m256 {
        _mm256_cvtph_ps(_mm_set1_epi16((p as *const i16).read_unaligned()))
    }

    /// Scale and offset of a 4-bit block (`Q4_1`: stored `d, m`; `Q4_0`: `d, −8d`), broadcast.
    #[inline(always)]
    unsafe fn q4_scales_x16<const MIN: bool>(blk: *const u8) -> (__m512, __m512) {
        let d = f16_x16(blk);
        let m = if MIN {
            f16_x16(blk.add(2))
        } else {
            _mm512_mul_ps(d, _mm512_set1_ps(-8.0))
        };
        (d, m)
    }

    /// [`q4_scales_x16`] in 8 lanes.
    #[inline(always)]
    unsafe fn q4_scales_x8<const MIN: bool>(blk: *const u8) -> (__m256, __m256) {
        let d = f16_x8(blk);
        let m = if MIN {
            f16_x8(blk.add(2))
        } else {
            _mm256_mul_ps(d, _mm256_set1_ps(-8.0))
        };
        (d, m)
    }

    /// `Σ q_j x_j` of one 4-bit block, as 16 lanes.
    #[inline(always)]
    unsafe fn q4_block_avx512<const MIN: bool>(blk: *const u8, xp: *const f32) -> __m512 {
        let qs = _mm_loadu_si128(blk.add(if MIN { 4 } else { 2 }) as *const __m128i);
        let v = _mm512_cvtepu8_epi32(qs);
        let lo = _mm512_cvtepi32_ps(_mm512_and_si512(v, _mm512_set1_epi32(0x0f)));
        let hi = _mm512_cvtepi32_ps(_mm512_srli_epi32(v, 4));
        let t = _mm512_mul_ps(lo, _mm512_loadu_ps(xp));
        _mm512_fmadd_ps(hi, _mm512_loadu_ps(xp.add(16)), t)
    }

    /// `Q4_1` (`MIN = true`: 20-byte blocks `d, m, qs`) or `Q4_0` (18-byte blocks `d, qs`,
    /// offset `−8d`).
    #[target_feature(enable = "avx512f,f16c")]
    pub unsafe fn q4_avx512<const MIN: bool>(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
        let bb = if MIN { 20 } else { 18 };
        let nb = x.len() / 32;
        debug_assert!(row.len() == nb * bb && sums.len() == nb);
        let (rp, xp, sp) = (row.as_ptr(), x.as_ptr(), sums.as_ptr());
        let (mut acc0, mut acc1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        // Offset terms m·Σx, the same in every lane (lane 0 is read at the end).
        let (mut off0, mut off1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut b = 0;
        while b + 2 <= nb {
            let (d0, m0) = q4_scales_x16::<MIN>(rp.add(b * bb));
            let (d1, m1) = q4_scales_x16::<MIN>(rp.add((b + 1) * bb));
            let t0 = q4_block_avx512::<MIN>(rp.add(b * bb), xp.add(b * 32));
            let t1 = q4_block_avx512::<MIN>(rp.add((b + 1) * bb), xp.add(b * 32 + 32));
            acc0 = _mm512_fmadd_ps(d0, t0, acc0);
            acc1 = _mm512_fmadd_ps(d1, t1, acc1);
            off0 = _mm512_fmadd_ps(m0, _mm512_set1_ps(*sp.add(b)), off0);
            off1 = _mm512_fmadd_ps(m1, _mm512_set1_ps(*sp.add(b + 1)), off1);
            b += 2;
        }
        if b < nb {
            let (d0, m0) = q4_scales_x16::<MIN>(rp.add(b * bb));
            let t0 = q4_block_avx512::<MIN>(rp.add(b * bb), xp.add(b * 32));
            acc0 = _mm512_fmadd_ps(d0, t0, acc0);
            off0 = _mm512_fmadd_ps(m0, _mm512_set1_ps(*sp.add(b)), off0);
        }
        let off = _mm512_add_ps(off0, off1);
        _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) + _mm512_cvtss_f32(off)
    }

    /// `Σ q_j x_j` of one `Q8_0` block, as 16 lanes.
    #[inline(always)]
    unsafe fn q8_block_avx512(blk: *const u8, xp: *const f32) -> __m512 {
        let q0 = _mm512_cvtepi8_epi32(_mm_loadu_si128(blk.add(2) as *const __m128i));
        let q1 = _mm512_cvtepi8_epi32(_mm_loadu_si128(blk.add(18) as *const __m128i));
        let t = _mm512_mul_ps(_mm512_cvtepi32_ps(q0), _mm512_loadu_ps(xp));
        _mm512_fmadd_ps(_mm512_cvtepi32_ps(q1), _mm512_loadu_ps(xp.add(16)), t)
    }

    /// `Q8_0`: 34-byte blocks `d, qs[32]` (signed).
    #[target_feature(enable = "avx512f,f16c")]
    pub unsafe fn q8_0_avx512(row: &[u8], x: &[f32]) -> f32 {
        let nb = x.len() / 32;
        debug_assert!(row.len() == nb * 34);
        let (rp, xp) = (row.as_ptr(), x.as_ptr());
        let (mut acc0, mut acc1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut b = 0;
        while b + 2 <= nb {
            let (d0, d1) = (f16_x16(rp.add(b * 34)), f16_x16(rp.add(b * 34 + 34)));
            let t0 = q8_block_avx512(rp.add(b * 34), xp.add(b * 32));
            let t1 = q8_block_avx512(rp.add(b * 34 + 34), xp.add(b * 32 + 32));
            acc0 = _mm512_fmadd_ps(d0, t0, acc0);
            acc1 = _mm512_fmadd_ps(d1, t1, acc1);
            b += 2;
        }
        if b < nb {
            let t0 = q8_block_avx512(rp.add(b * 34), xp.add(b * 32));
            acc0 = _mm512_fmadd_ps(f16_x16(rp.add(b * 34)), t0, acc0);
        }
        _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
    }

    /// `Σ q_j x_j` of one 4-bit block, as 8 lanes.
    #[inline(always)]
    unsafe fn q4_block_avx2<const MIN: bool>(blk: *const u8, xp: *const f32) -> __m256 {
        let mask = _mm256_set1_epi32(0x0f);
        let qs = blk.add(if MIN { 4 } else { 2 });
        let a = _mm256_cvtepu8_epi32(_mm_loadl_epi64(qs as *const __m128i));
        let c = _mm256_cvtepu8_epi32(_mm_loadl_epi64(qs.add(8) as *const __m128i));
        let t = _mm256_mul_ps(
            _mm256_cvtepi32_ps(_mm256_and_si256(a, mask)),
            _mm256_loadu_ps(xp),
        );
        let t = _mm256_fmadd_ps(
            _mm256_cvtepi32_ps(_mm256_and_si256(c, mask)),
            _mm256_loadu_ps(xp.add(8)),
            t,
        );
        let t = _mm256_fmadd_ps(
            _mm256_cvtepi32_ps(_mm256_srli_epi32(a, 4)),
            _mm256_loadu_ps(xp.add(16)),
            t,
        );
        _mm256_fmadd_ps(
            _mm256_cvtepi32_ps(_mm256_srli_epi32(c, 4)),
            _mm256_loadu_ps(xp.add(24)),
            t,
        )
    }

    /// AVX2 version of [`q4_avx512`].
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn q4_avx2<const MIN: bool>(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
        let bb = if MIN { 20 } else { 18 };
        let nb = x.len() / 32;
        debug_assert!(row.len() == nb * bb && sums.len() == nb);
        let (rp, xp, sp) = (row.as_ptr(), x.as_ptr(), sums.as_ptr());
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let (mut off0, mut off1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut b = 0;
        while b + 2 <= nb {
            let (d0, m0) = q4_scales_x8::<MIN>(rp.add(b * bb));
            let (d1, m1) = q4_scales_x8::<MIN>(rp.add((b + 1) * bb));
            let t0 = q4_block_avx2::<MIN>(rp.add(b * bb), xp.add(b * 32));
            let t1 = q4_block_avx2::<MIN>(rp.add((b + 1) * bb), xp.add(b * 32 + 32));
            acc0 = _mm256_fmadd_ps(d0, t0, acc0);
            acc1 = _mm256_fmadd_ps(d1, t1, acc1);
            off0 = _mm256_fmadd_ps(m0, _mm256_set1_ps(*sp.add(b)), off0);
            off1 = _mm256_fmadd_ps(m1, _mm256_set1_ps(*sp.add(b + 1)), off1);
            b += 2;
        }
        if b < nb {
            let (d0, m0) = q4_scales_x8::<MIN>(rp.add(b * bb));
            let t0 = q4_block_avx2::<MIN>(rp.add(b * bb), xp.add(b * 32));
            acc0 = _mm256_fmadd_ps(d0, t0, acc0);
            off0 = _mm256_fmadd_ps(m0, _mm256_set1_ps(*sp.add(b)), off0);
        }
        let off = _mm256_add_ps(off0, off1);
        hsum256(_mm256_add_ps(acc0, acc1)) + _mm256_cvtss_f32(off)
    }

    /// `Σ q_j x_j` of one `Q8_0` block, as 8 lanes.
    #[inline(always)]
    unsafe fn q8_block_avx2(blk: *const u8, xp: *const f32) -> __m256 {
        let mut t = _mm256_setzero_ps();
        for i in 0..4 {
            let q = _mm256_cvtepi8_epi32(_mm_loadl_epi64(blk.add(2 + 8 * i) as *const __m128i));
            t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q), _mm256_loadu_ps(xp.add(8 * i)), t);
        }
        t
    }

    /// AVX2 version of [`q8_0_avx512`].
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn q8_0_avx2(row: &[u8], x: &[f32]) -> f32 {
        let nb = x.len() / 32;
        debug_assert!(row.len() == nb * 34);
        let (rp, xp) = (row.as_ptr(), x.as_ptr());
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut b = 0;
        while b + 2 <= nb {
            let (d0, d1) = (f16_x8(rp.add(b * 34)), f16_x8(rp.add(b * 34 + 34)));
            let t0 = q8_block_avx2(rp.add(b * 34), xp.add(b * 32));
            let t1 = q8_block_avx2(rp.add(b * 34 + 34), xp.add(b * 32 + 32));
            acc0 = _mm256_fmadd_ps(d0, t0, acc0);
            acc1 = _mm256_fmadd_ps(d1, t1, acc1);
            b += 2;
        }
        if b < nb {
            let t0 = q8_block_avx2(rp.add(b * 34), xp.add(b * 32));
            acc0 = _mm256_fmadd_ps(f16_x8(rp.add(b * 34)), t0, acc0);
        }
        hsum256(_mm256_add_ps(acc0, acc1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;
    use proptest::prelude::*;

    /// Random blocks of `ty`: scales of either sign and magnitude 1e-3..1, random quants.
    fn random_blocks(ty: GgmlType, rows: usize, cols: usize, seed: u64) -> Vec<u8> {
        let (_, bb) = ty.block_layout().unwrap();
        let mut state = seed | 1;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut raw = Vec::new();
        let (per_block, _) = ty.block_layout().unwrap();
        for _ in 0..rows * cols / per_block {
            let mut blk = vec![0u8; bb];
            for b in blk.iter_mut() {
                *b = next() as u8;
            }
            let scale = |r: u64| {
                let mag = 10f32.powf(-3.0 * (r % 1000) as f32 / 1000.0);
                let s = if r & (1 << 20) != 0 { -mag } else { mag };
                f16::from_f32(s).to_le_bytes()
            };
            let at = if ty == GgmlType::Q6_K { bb - 2 } else { 0 };
            blk[at..at + 2].copy_from_slice(&scale(next()));
            if ty == GgmlType::Q4_1 || ty == GgmlType::Q4_K {
                blk[2..4].copy_from_slice(&scale(next()));
            }
            raw.extend_from_slice(&blk);
        }
        raw
    }

    fn reference(w: &[f32], x: &[f32], n: usize, rows: usize, cols: usize) -> Vec<f64> {
        let mut y = vec![0.0; n * rows];
        for i in 0..n {
            for r in 0..rows {
                y[i * rows + r] = (0..cols)
                    .map(|c| w[r * cols + c] as f64 * x[i * cols + c] as f64)
                    .sum();
            }
        }
        y
    }

    fn types() -> impl Strategy<Value = GgmlType> {
        prop_oneof![
            Just(GgmlType::Q4_0),
            Just(GgmlType::Q4_1),
            Just(GgmlType::Q8_0),
            Just(GgmlType::Q4_K),
            Just(GgmlType::Q6_K),
            Just(GgmlType::F16)
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Every kernel set against dequantize-then-dot in f64, over random shapes, types and
        /// data; rows counts that are and are not multiples of the task size. Tolerance: f32
        /// summation over `cols` terms, `cols · 2⁻²³ · Σ|w·x|` with a factor 4 of headroom.
        #[test]
        fn kernels_match_dequantize_then_dot(ty in types(), rows in 1usize..150,
                                             blocks in 1usize..24, n in 1usize..7,
                                             seed in any::<u64>()) {
            let cols = blocks * ty.block_layout().unwrap().0.max(QK);
            let raw = if ty == GgmlType::F16 {
                (0..rows * cols).flat_map(|i| f16::from_f32(((i * 37 % 101) as f32 - 50.0) / 25.0).to_le_bytes()).collect()
            } else {
                random_blocks(ty, rows, cols, seed)
            };
            let w = crate::gguf::dequantize(ty, &raw).unwrap();
            let qm = QMatrix::from_raw("w", ty, rows, cols, &raw).unwrap();
            let mut st = seed.rotate_left(17) | 1;
            let x: Vec<f32> = (0..n * cols).map(|_| {
                st ^= st << 13; st ^= st >> 7; st ^= st << 17;
                (st >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            }).collect();
            let want = reference(&w, &x, n, rows, cols);
            let bound: Vec<f64> = (0..n * rows).map(|i| {
                let (r, row) = (i % rows, i / rows);
                (0..cols).map(|c| (w[r * cols + c] as f64 * x[row * cols + c] as f64).abs()).sum::<f64>()
            }).collect();
            let tol = |i: usize| 4.0 * cols as f64 * f32::EPSILON as f64 * bound[i] + 1e-30;
            for isa in Isa::available() {
                for (i, xr) in x.chunks_exact(cols).enumerate() {
                    let mut y = vec![0.0f32; rows];
                    qm.matvec_with(isa, xr, &mut y);
                    for (r, &v) in y.iter().enumerate() {
                        let j = i * rows + r;
                        prop_assert!((v as f64 - want[j]).abs() <= tol(j),
                            "{isa:?} {} row {r}: {v} vs {}", ty.name(), want[j]);
                    }
                }
            }
            let y = qm.matmul(&x, n);
            for (j, &v) in y.iter().enumerate() {
                prop_assert!((v as f64 - want[j]).abs() <= tol(j), "matmul {}: {v} vs {}", ty.name(), want[j]);
            }
        }
    }

    #[test]
    fn unsupported_type_and_bad_length_are_errors() {
        let e = QMatrix::from_raw("blk.0.ffn_down.weight", GgmlType(13), 1, 256, &[0; 176]);
        assert!(
            matches!(e, Err(Error::UnsupportedType { ref tensor, ref type_name, .. })
            if tensor == "blk.0.ffn_down.weight" && type_name == "Q5_K")
        );
        assert!(QMatrix::from_raw("w", GgmlType::Q4_1, 2, 32, &[0; 39]).is_err());
        assert!(QMatrix::from_raw("w", GgmlType::Q4_1, 1, 48, &[0; 30]).is_err());
    }
}
