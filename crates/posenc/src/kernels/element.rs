//! Storage types of the fast kernels: `f32`, `f16` and `bf16` (math is always f32).

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use multiversion::multiversion;

/// Storage dtype of a buffer the kernels rotate in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dtype {
    /// IEEE single precision.
    F32,
    /// IEEE half precision (`half::f16`).
    F16,
    /// bfloat16 (`half::bf16`).
    Bf16,
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::Bf16 => 2,
        }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for half::f16 {}
    impl Sealed for half::bf16 {}
}

/// An element type the kernels accept: `f32`, `half::f16` or `half::bf16`. Sealed.
pub trait Element: Copy + Send + Sync + 'static + sealed::Sealed {
    /// The dtype tag.
    const DTYPE: Dtype;
    /// The buffer itself when it already is f32 (no conversion needed).
    fn as_f32_mut(x: &mut [Self]) -> Option<&mut [f32]>;
    /// The buffer's bits when it is bf16 (rotated by a fused kernel, no scratch pass).
    fn as_bf16_bits_mut(_: &mut [Self]) -> Option<&mut [u16]> {
        None
    }
    /// Rotates in place with a fused kernel when one exists for this type, layout and width;
    /// returns false to ask for the widen → rotate → narrow path.
    fn fused_rotate(
        _xs: &mut [Self],
        _width: usize,
        _cos: &[f32],
        _sin: &[f32],
        _layout: crate::rope::RopeLayout,
    ) -> bool {
        false
    }
    /// Widens `src` into `dst` (same length).
    fn widen(src: &[Self], dst: &mut [f32]);
    /// Rounds `src` to nearest-even into `dst` (same length), exactly as `half` does.
    fn narrow(src: &[f32], dst: &mut [Self]);
}

impl Element for f32 {
    const DTYPE: Dtype = Dtype::F32;
    fn as_f32_mut(x: &mut [Self]) -> Option<&mut [f32]> {
        Some(x)
    }
    fn widen(src: &[Self], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }
    fn narrow(src: &[f32], dst: &mut [Self]) {
        dst.copy_from_slice(src);
    }
}

impl Element for f16 {
    const DTYPE: Dtype = Dtype::F16;
    fn as_f32_mut(_: &mut [Self]) -> Option<&mut [f32]> {
        None
    }
    fn fused_rotate(
        xs: &mut [Self],
        width: usize,
        cos: &[f32],
        sin: &[f32],
        layout: crate::rope::RopeLayout,
    ) -> bool {
        #[cfg(target_arch = "x86_64")]
        if layout == crate::rope::RopeLayout::HalfSplit
            && cos.len() == sin.len()
            && cos.len().is_multiple_of(16)
            && 2 * cos.len() <= width
            && std::arch::is_x86_feature_detected!("avx512f")
        {
            // SAFETY: AVX-512F checked; the pair count is a multiple of 16 and fits the width.
            unsafe {
                x86::f16_rotate_half_split_avx512(xs.reinterpret_cast_mut(), width, cos, sin)
            };
            return true;
        }
        let _ = (xs, width, cos, sin, layout);
        false
    }
    fn widen(src: &[Self], dst: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked above).
            let done = unsafe { x86::f16_widen_avx512(src.reinterpret_cast(), dst) };
            src[done..].convert_to_f32_slice(&mut dst[done..]);
            return;
        }
        // `half` converts slices with F16C when the CPU has it (checked at run time).
        src.convert_to_f32_slice(dst);
    }
    fn narrow(src: &[f32], dst: &mut [Self]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked above).
            let done = unsafe { x86::f16_narrow_avx512(src, dst.reinterpret_cast_mut()) };
            dst[done..].convert_from_f32_slice(&src[done..]);
            return;
        }
        dst.convert_from_f32_slice(src);
    }
}

impl Element for bf16 {
    const DTYPE: Dtype = Dtype::Bf16;
    fn as_f32_mut(_: &mut [Self]) -> Option<&mut [f32]> {
        None
    }
    fn as_bf16_bits_mut(x: &mut [Self]) -> Option<&mut [u16]> {
        Some(x.reinterpret_cast_mut())
    }
    fn widen(src: &[Self], dst: &mut [f32]) {
        bf16_widen(src, dst);
    }
    fn narrow(src: &[f32], dst: &mut [Self]) {
        bf16_narrow(src, dst);
    }
}

/// f16 ⇄ f32 with AVX-512F's conversion instructions, 16 values per instruction (`half`'s slice
/// conversion uses F16C 8 at a time through a per-chunk call). Same IEEE round-to-nearest-even;
/// checked bit for bit against `half` in the tests. Each returns how many leading values it
/// converted (a multiple of 16); the caller converts the rest with `half`.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn f16_widen_avx512(src: &[u16], dst: &mut [f32]) -> usize {
        let n = src.len().min(dst.len()) / 16 * 16;
        let mut i = 0;
        while i < n {
            // SAFETY: i + 16 <= n <= both lengths.
            unsafe {
                let h = _mm256_loadu_si256(src.as_ptr().add(i) as *const __m256i);
                _mm512_storeu_ps(dst.as_mut_ptr().add(i), _mm512_cvtph_ps(h));
            }
            i += 16;
        }
        n
    }

    /// Half-split rotation of every `width`-wide f16 vector in place, fused (load 16 halves of
    /// each side, widen, rotate with the reference's f32 operations, round, store). Needs
    /// `cos.len()` to be a multiple of 16; the caller checks.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn f16_rotate_half_split_avx512(
        xs: &mut [u16],
        width: usize,
        cos: &[f32],
        sin: &[f32],
    ) {
        let p = cos.len().min(sin.len());
        debug_assert!(p.is_multiple_of(16) && 2 * p <= width);
        for x in xs.chunks_exact_mut(width) {
            let base = x.as_mut_ptr();
            let mut i = 0;
            while i + 16 <= p {
                // SAFETY: i + 16 <= p, so both halves [i, i+16) and [p+i, p+i+16) lie inside the
                // vector (2p <= width), and inside cos/sin.
                unsafe {
                    let pa = base.add(i) as *mut __m256i;
                    let pb = base.add(p + i) as *mut __m256i;
                    let a = _mm512_cvtph_ps(_mm256_loadu_si256(pa));
                    let b = _mm512_cvtph_ps(_mm256_loadu_si256(pb));
                    let c = _mm512_loadu_ps(cos.as_ptr().add(i));
                    let s = _mm512_loadu_ps(sin.as_ptr().add(i));
                    let na = _mm512_sub_ps(_mm512_mul_ps(a, c), _mm512_mul_ps(b, s));
                    let nb = _mm512_add_ps(_mm512_mul_ps(a, s), _mm512_mul_ps(b, c));
                    const R: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
                    _mm256_storeu_si256(pa, _mm512_cvtps_ph::<R>(na));
                    _mm256_storeu_si256(pb, _mm512_cvtps_ph::<R>(nb));
                }
                i += 16;
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn f16_narrow_avx512(src: &[f32], dst: &mut [u16]) -> usize {
        let n = src.len().min(dst.len()) / 16 * 16;
        let mut i = 0;
        while i < n {
            // SAFETY: i + 16 <= n <= both lengths.
            unsafe {
                let v = _mm512_loadu_ps(src.as_ptr().add(i));
                let h = _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
                _mm256_storeu_si256(dst.as_mut_ptr().add(i) as *mut __m256i, h);
            }
            i += 16;
        }
        n
    }
}

// `half`'s bf16 slice conversion is a scalar loop compiled for the baseline CPU; these are the same
// bit operations (checked bit for bit against `bf16::from_f32` in the tests), written so that they
// vectorize for the CPU found at run time.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx2", "x86_64+avx2", "aarch64+neon"))]
fn bf16_widen(src: &[bf16], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = f32::from_bits((s.to_bits() as u32) << 16);
    }
}

#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx2", "x86_64+avx2", "aarch64+neon"))]
fn bf16_narrow(src: &[f32], dst: &mut [bf16]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = bf16::from_bits(super::rotate::f32_to_bf16(s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversions_match_half_bit_for_bit() {
        let mut bits: Vec<u32> = (0..=u32::MAX).step_by(1009).collect();
        bits.extend([
            0,
            0x8000_0000,
            0x7f80_0000,
            0xff80_0000,
            0x7fc0_0000,
            0x477f_e000,
            0x477f_f000,
            0x3380_0000,
            0x3300_0001,
            0x387f_c000,
        ]);
        let src: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
        let mut ours = vec![f16::ZERO; src.len()];
        <f16 as Element>::narrow(&src, &mut ours);
        for (&s, o) in src.iter().zip(&ours) {
            let want = f16::from_f32(s);
            if s.is_nan() {
                assert!(o.is_nan(), "narrow {:#x}", s.to_bits());
            } else {
                assert_eq!(o.to_bits(), want.to_bits(), "narrow {:#x}", s.to_bits());
            }
        }
        let all: Vec<f16> = (0..=u16::MAX).map(f16::from_bits).collect();
        let mut back = vec![0f32; all.len()];
        <f16 as Element>::widen(&all, &mut back);
        for (b, h) in back.iter().zip(&all) {
            if h.is_nan() {
                assert!(b.is_nan());
            } else {
                assert_eq!(
                    b.to_bits(),
                    h.to_f32().to_bits(),
                    "widen {:#x}",
                    h.to_bits()
                );
            }
        }
    }

    #[test]
    fn bf16_conversions_match_half_bit_for_bit() {
        // Every 997th bit pattern, plus the edges.
        let mut bits: Vec<u32> = (0..=u32::MAX).step_by(997).collect();
        bits.extend([
            0,
            0x8000_0000,
            0x7f80_0000,
            0xff80_0000,
            0x7fc0_0000,
            0x7f80_0001,
            0x7f7f_ffff,
            0x0000_8000,
            0x3f80_8000,
            0x3f81_8000,
        ]);
        let src: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
        let mut ours = vec![bf16::ZERO; src.len()];
        bf16_narrow(&src, &mut ours);
        for (&s, o) in src.iter().zip(&ours) {
            assert_eq!(
                o.to_bits(),
                bf16::from_f32(s).to_bits(),
                "narrow {:#x}",
                s.to_bits()
            );
        }
        let mut back = vec![0f32; src.len()];
        bf16_widen(&ours, &mut back);
        for (b, o) in back.iter().zip(&ours) {
            assert_eq!(b.to_bits(), o.to_f32().to_bits());
        }
    }
}
