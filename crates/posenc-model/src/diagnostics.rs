//! Diagnostics that run on the real model.
//!
//! # check-decode
//! A KV-cached decoder must give the same logits whether a sequence is run in one forward pass
//! or as a prefill followed by one token per step: keys are rotated once, at their own position,
//! and never again. [`check_decode`] runs both paths and compares the logits of every decoded
//! position. With the correct setup the difference is float32 summation noise (≈1e-5 on
//! SmolLM2); position bugs (wrong decode positions, a layout or scaling that differs between the
//! two paths) show up as large differences and top-1 disagreements.
//!
//! The decode path is described by a [`DecodePath`], so injected-bug variants only need to build
//! a different one (other positions, another [`RopeSetup`]).

use crate::error::{Error, Result};
use crate::llama::{argmax, Llama, RopeSetup};

/// Largest |Δlogit| accepted between the full pass and prefill + decode (f32 noise is ≈1e-5).
pub const DECODE_TOLERANCE: f32 = 1e-3;

/// How the prefill + decode path runs.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodePath {
    /// Tokens processed by the prefill call (≥ 1); the rest are decoded one per call.
    pub prefill: usize,
    /// Position id given to each token on this path (the reference path uses `0..n`).
    pub positions: Vec<u64>,
    /// RoPE used on this path.
    pub rope: RopeSetup,
}

impl DecodePath {
    /// The correct path: positions `0..n`, the model's own RoPE setup.
    pub fn correct(llama: &Llama, n_tokens: usize, prefill: usize) -> DecodePath {
        DecodePath {
            prefill,
            positions: (0..n_tokens as u64).collect(),
            rope: llama.rope.clone(),
        }
    }
}

/// Logit comparison at one decoded position.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StepDiff {
    /// Index of the token in the sequence.
    pub index: usize,
    /// max |Δlogit| over the vocabulary.
    pub max_abs_diff: f32,
    /// Top-1 of the full pass.
    pub full_top1: u32,
    /// Top-1 of the decode path.
    pub decode_top1: u32,
}

/// Result of [`check_decode`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DecodeCheck {
    /// Tokens in the sequence.
    pub n_tokens: usize,
    /// Tokens in the prefill call.
    pub prefill: usize,
    /// Positions compared (`n_tokens − prefill + 1`: the last prefill row and every decoded one).
    pub compared: usize,
    /// max |Δlogit| over every compared position and the vocabulary.
    pub max_abs_diff: f32,
    /// Compared positions whose top-1 token agrees.
    pub top1_agree: usize,
    /// The tolerance used for `pass`.
    pub tolerance: f32,
    /// `max_abs_diff ≤ tolerance` and every top-1 agrees.
    pub pass: bool,
    /// Per-position details.
    pub steps: Vec<StepDiff>,
}

/// Runs `ids` once in full (positions `0..n`, the model's RoPE) and again through `path`
/// (prefill, then one token per call with a KV cache) and compares logits at positions
/// `prefill − 1 ..= n − 1`.
pub fn check_decode(llama: &Llama, ids: &[u32], path: &DecodePath) -> Result<DecodeCheck> {
    let n = ids.len();
    if path.prefill == 0 || path.prefill > n {
        return Err(Error::Model(format!(
            "prefill must be in 1..={n}, got {}",
            path.prefill
        )));
    }
    if path.positions.len() != n {
        return Err(posenc::Error::shape("decode positions", n, path.positions.len()).into());
    }
    let vocab = llama.config.vocab_size;
    let rows: Vec<usize> = (path.prefill - 1..n).collect();
    let full_positions: Vec<u64> = (0..n as u64).collect();
    let attend = vec![true; n];
    let mut cache = llama.new_cache(n);
    let full = llama.forward_rows(ids, &full_positions, &attend, &mut cache, &rows)?;

    let mut cache = llama.new_cache(n);
    let p = path.prefill;
    let mut decoded = llama.forward_rows_with(
        &path.rope,
        &ids[..p],
        &path.positions[..p],
        &attend[..p],
        &mut cache,
        &[p - 1],
    )?;
    for i in p..n {
        let step = llama.forward_rows_with(
            &path.rope,
            &ids[i..=i],
            &path.positions[i..=i],
            &attend[i..=i],
            &mut cache,
            &[0],
        )?;
        decoded.extend_from_slice(&step);
    }

    let mut steps = Vec::with_capacity(rows.len());
    for (k, &index) in rows.iter().enumerate() {
        let a = &full[k * vocab..(k + 1) * vocab];
        let b = &decoded[k * vocab..(k + 1) * vocab];
        let max_abs_diff = a
            .iter()
            .zip(b)
            .map(|(x, y)| nan_as_inf((x - y).abs()))
            .fold(0.0f32, f32::max);
        steps.push(StepDiff {
            index,
            max_abs_diff,
            full_top1: argmax(a),
            decode_top1: argmax(b),
        });
    }
    let max_abs_diff = steps.iter().map(|s| s.max_abs_diff).fold(0.0f32, f32::max);
    let top1_agree = steps
        .iter()
        .filter(|s| s.full_top1 == s.decode_top1)
        .count();
    let compared = steps.len();
    Ok(DecodeCheck {
        n_tokens: n,
        prefill: p,
        compared,
        max_abs_diff,
        top1_agree,
        tolerance: DECODE_TOLERANCE,
        pass: max_abs_diff <= DECODE_TOLERANCE && top1_agree == compared,
        steps,
    })
}

/// A NaN difference counts as infinitely large (so it can never pass a tolerance).
fn nan_as_inf(d: f32) -> f32 {
    if d.is_nan() {
        f32::INFINITY
    } else {
        d
    }
}
