//! The memory-bandwidth yardstick: an in-place pass that reads and writes every byte once.

use multiversion::multiversion;
use rayon::prelude::*;

use super::{PARALLEL_THRESHOLD, TASK_ELEMENTS};

/// `x[i] = x[i] · a + b` over the whole buffer, in place, on rayon's threads above
/// [`PARALLEL_THRESHOLD`](super::PARALLEL_THRESHOLD) elements: the same access pattern as an
/// in-place RoPE (read and write each byte once) with almost no arithmetic, so its bytes per
/// second are the limit a streaming kernel can reach on this machine. Bytes moved: `8 · x.len()`.
pub fn stream_inplace(x: &mut [f32], a: f32, b: f32) {
    if x.len() < PARALLEL_THRESHOLD {
        scale_add(x, a, b);
    } else {
        x.par_chunks_mut(TASK_ELEMENTS)
            .for_each(|c| scale_add(c, a, b));
    }
}

#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
fn scale_add(x: &mut [f32], a: f32, b: f32) {
    for v in x.iter_mut() {
        *v = *v * a + b;
    }
}
