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
