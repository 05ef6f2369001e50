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
    // `half` converts slices with F16C when the CPU has it (checked at run time).
    fn widen(src: &[Self], dst: &mut [f32]) {
        src.convert_to_f32_slice(dst);
    }
    fn narrow(src: &[f32], dst: &mut [Self]) {
        dst.convert_from_f32_slice(src);
    }
}

impl Element for bf16 {
    const DTYPE: Dtype = Dtype::Bf16;
    fn as_f32_mut(_: &mut [Self]) -> Option<&mut [f32]> {
        None
    }
    fn widen(src: &[Self], dst: &mut [f32]) {
        bf16_widen(src, dst);
    }
    fn narrow(src: &[f32], dst: &mut [Self]) {
        bf16_narrow(src, dst);
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
        let x = s.to_bits();
        // Round to nearest, ties to even; NaN stays NaN (quiet bit set), as `half` does.
        let rounded = (x.wrapping_add(0x7fff + ((x >> 16) & 1)) >> 16) as u16;
        let nan = ((x >> 16) as u16) | 0x0040;
        let is_nan = (x & 0x7fff_ffff) > 0x7f80_0000;
        *d = bf16::from_bits(if is_nan { nan } else { rounded });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
