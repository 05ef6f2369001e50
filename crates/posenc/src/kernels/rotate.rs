//! The inner loops: rotate one head vector's rotary block by one cos/sin row, f32 in place.
//!
//! The arithmetic is exactly the reference's (`a·c − b·s`, `a·s + b·c`, no fused multiply-add),
//! so with the same cos/sin row the fast path is bit-identical to `rope::apply_rotary` in f32.

use multiversion::multiversion;

use crate::rope::RopeLayout;

/// Rotates `x[..2·cos.len()]` in place; `cos` and `sin` have the same length.
#[inline]
pub(crate) fn rotate(x: &mut [f32], cos: &[f32], sin: &[f32], layout: RopeLayout) {
    match layout {
        RopeLayout::HalfSplit => rotate_half_split(x, cos, sin),
        RopeLayout::Interleaved => rotate_interleaved(x, cos, sin),
    }
}

/// Rotates every vector of `xs` (contiguous vectors of `width` floats) by the same row.
#[inline]
pub(crate) fn rotate_many(
    xs: &mut [f32],
    width: usize,
    cos: &[f32],
    sin: &[f32],
    layout: RopeLayout,
) {
    match layout {
        RopeLayout::HalfSplit => rotate_many_half_split(xs, width, cos, sin),
        RopeLayout::Interleaved => rotate_many_interleaved(xs, width, cos, sin),
    }
}

#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
fn rotate_many_half_split(xs: &mut [f32], width: usize, cos: &[f32], sin: &[f32]) {
    for x in xs.chunks_exact_mut(width) {
        half_split_body(x, cos, sin);
    }
}

#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
fn rotate_many_interleaved(xs: &mut [f32], width: usize, cos: &[f32], sin: &[f32]) {
    for x in xs.chunks_exact_mut(width) {
        interleaved_body(x, cos, sin);
    }
}

#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
fn rotate_half_split(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    half_split_body(x, cos, sin);
}

#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
fn rotate_interleaved(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    interleaved_body(x, cos, sin);
}

#[inline(always)]
fn half_split_body(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    let p = cos.len().min(sin.len());
    let (a, rest) = x.split_at_mut(p);
    let b = &mut rest[..p];
    let (cos, sin) = (&cos[..p], &sin[..p]);
    for i in 0..p {
        let (xa, xb) = (a[i], b[i]);
        a[i] = xa * cos[i] - xb * sin[i];
        b[i] = xa * sin[i] + xb * cos[i];
    }
}

#[inline(always)]
fn interleaved_body(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    let p = cos.len().min(sin.len());
    let pairs = &mut x[..2 * p];
    for ((pair, &c), &s) in pairs.chunks_exact_mut(2).zip(&cos[..p]).zip(&sin[..p]) {
        let (xa, xb) = (pair[0], pair[1]);
        pair[0] = xa * c - xb * s;
        pair[1] = xa * s + xb * c;
    }
}

/// [`rotate_many`] on bf16 storage, fused: each pair is widened, rotated and rounded back in
/// registers (the same f32 operations and round-to-nearest-even as widen → rotate → narrow).
#[inline]
pub(crate) fn rotate_many_bf16(
    xs: &mut [u16],
    width: usize,
    cos: &[f32],
    sin: &[f32],
    layout: RopeLayout,
) {
    match layout {
        RopeLayout::HalfSplit => bf16_many_half_split(xs, width, cos, sin),
        RopeLayout::Interleaved => bf16_many_interleaved(xs, width, cos, sin),
    }
}

#[inline(always)]
fn bf16_to_f32(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// Round to nearest, ties to even; NaN stays NaN with the quiet bit set (as `half` does).
#[inline(always)]
pub(crate) fn f32_to_bf16(s: f32) -> u16 {
    let x = s.to_bits();
    let rounded = (x.wrapping_add(0x7fff + ((x >> 16) & 1)) >> 16) as u16;
    let nan = ((x >> 16) as u16) | 0x0040;
    if (x & 0x7fff_ffff) > 0x7f80_0000 {
        nan
    } else {
        rounded
    }
}

#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl+avx2+fma",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
fn bf16_many_half_split(xs: &mut [u16], width: usize, cos: &[f32], sin: &[f32]) {
    let p = cos.len().min(sin.len());
    let (cos, sin) = (&cos[..p], &sin[..p]);
    for x in xs.chunks_exact_mut(width) {
        let (a, rest) = x.split_at_mut(p);
        let b = &mut rest[..p];
        for i in 0..p {
            let (xa, xb) = (bf16_to_f32(a[i]), bf16_to_f32(b[i]));
            a[i] = f32_to_bf16(xa * cos[i] - xb * sin[i]);
            b[i] = f32_to_bf16(xa * sin[i] + xb * cos[i]);
        }
    }
}

#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl+avx2+fma",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
fn bf16_many_interleaved(xs: &mut [u16], width: usize, cos: &[f32], sin: &[f32]) {
    let p = cos.len().min(sin.len());
    let (cos, sin) = (&cos[..p], &sin[..p]);
    for x in xs.chunks_exact_mut(width) {
        for ((pair, &c), &s) in x[..2 * p].chunks_exact_mut(2).zip(cos).zip(sin) {
            let (xa, xb) = (bf16_to_f32(pair[0]), bf16_to_f32(pair[1]));
            pair[0] = f32_to_bf16(xa * c - xb * s);
            pair[1] = f32_to_bf16(xa * s + xb * c);
        }
    }
}
