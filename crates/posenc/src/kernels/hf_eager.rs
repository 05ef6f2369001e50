//! Hugging Face's eager RoPE path, translated op by op: the baseline the fast kernels are
//! compared with in the benchmarks (not meant for use).
//!
//! `transformers`' `apply_rotary_pos_emb` computes `q·cos + rotate_half(q)·sin` on
//! `(batch, heads, seq, head_dim)` tensors, with full-width `cos`/`sin` of shape
//! `(seq, head_dim)` (the half-width row repeated: `cat(freqs, freqs)`), where
//! `rotate_half(x) = cat(−x[..., d/2:], x[..., :d/2])`. Each tensor op allocates its result and
//! makes one pass over memory, as eager PyTorch does: `q·cos`, `−x2`, the `cat`, `·sin` and the
//! sum are five new tensors per input. Full rotary only (`rotary_dim == head_dim`).

use crate::{Error, Result};

/// Full-width `cos`/`sin` `(rows, 2·pairs)` from half-width rows, as HF's `cat(freqs, freqs)`.
pub fn full_width(half: &[f32], pairs: usize) -> Vec<f32> {
    half.chunks_exact(pairs.max(1))
        .flat_map(|r| r.iter().chain(r.iter()).copied())
        .collect()
}

/// `x·cos + rotate_half(x)·sin` for `x` of shape `(planes, seq, d)` with `cos`/`sin` `(seq, d)`,
/// returning a new buffer.
///
/// Errors: an odd or zero `d`, `cos`/`sin` not `seq × d`, `x` not a whole number of planes.
pub fn apply_rotary_pos_emb(
    x: &[f32],
    cos: &[f32],
    sin: &[f32],
    seq: usize,
    d: usize,
) -> Result<Vec<f32>> {
    let plane = seq
        .checked_mul(d)
        .filter(|_| d > 0 && d.is_multiple_of(2))
        .ok_or_else(|| Error::invalid("d", format!("an even head dim > 0, got {d}")))?;
    if cos.len() != plane || sin.len() != plane {
        return Err(Error::shape(
            "cos/sin (seq × d)",
            plane,
            format!("{}/{}", cos.len(), sin.len()),
        ));
    }
    if plane == 0 || !x.len().is_multiple_of(plane) {
        return Err(Error::shape(
            "x (planes × seq × d)",
            format!("a multiple of {plane}"),
            x.len(),
        ));
    }
    let h = d / 2;
    // q * cos
    let a: Vec<f32> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| v * cos[i % plane])
        .collect();
    // -x2 (a new tensor of half width)
    let neg_x2: Vec<f32> = x
        .chunks_exact(d)
        .flat_map(|r| r[h..].iter().map(|&v| -v))
        .collect();
    // cat((-x2, x1), dim = -1)
    let mut rot = Vec::with_capacity(x.len());
    for (r, n) in x.chunks_exact(d).zip(neg_x2.chunks_exact(h)) {
        rot.extend_from_slice(n);
        rot.extend_from_slice(&r[..h]);
    }
    // rotate_half(q) * sin
    let b: Vec<f32> = rot
        .iter()
        .enumerate()
        .map(|(i, &v)| v * sin[i % plane])
        .collect();
    // sum
    Ok(a.iter().zip(&b).map(|(p, q)| p + q).collect())
}
