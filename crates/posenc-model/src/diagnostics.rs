//! Position checks that run on the real model.
//!
//! # check-decode
//! A KV-cached decoder must give the same logits whether a sequence is run in one forward pass
//! or as a prefill followed by one token per step: keys are rotated once, at their own position,
//! and never again. [`check_decode`] runs both paths and compares the logits of every decoded
//! position. With the correct setup the difference is float32 summation noise (≈1e-5 on
//! SmolLM2); position bugs show up as large differences and top-1 disagreements.
//!
//! A left-padded batch must give each sequence the logits it gets alone: padding keys are masked
//! out and real tokens get positions `cumsum(mask) − 1` ([`check_padded_batch`]).
//!
//! [`decode_suite`] runs both correct comparisons and then the same comparisons with a classic
//! bug injected, so that users see what each bug does to the logits and that the check catches
//! it:
//!
//! | bug | what the decode path does |
//! |---|---|
//! | `decode_position_zero` | every decoded token at position 0 |
//! | `decode_off_by_one` | decoded token `i` at position `i + 1` |
//! | `half_split_layout` | half-split pairs on GGUF (interleaved) q/k weights, whole path |
//! | `shared_position_row` | one position row (`cumsum(mask) − 1` of the batch's first, most padded row) for every row of a left-padded batch |
//! | `scaling_dropped` | prefill with the configured RoPE scaling, decode steps without it |
//!
//! plus one informative variant, `shared_arange_row` (positions `0..L` for every padded row):
//! every real token of a row is shifted by the same amount, which RoPE cannot see (scores depend
//! on position differences only), so it does **not** drift here, though it would with absolute
//! position embeddings.
//!
//! **Detected** means the comparison fails the test the correct path must pass: max |Δlogit|
//! above [`DECODE_TOLERANCE`] or at least one top-1 disagreement. A bug whose wrong setup is
//! numerically the same as the right one on this input (for example a dynamic scaling, which
//! changes nothing below the training context) is reported as a no-op and not counted. The suite
//! passes when both correct comparisons agree within tolerance and every applicable bug is
//! detected.

use crate::error::{Error, Result};
use crate::llama::{argmax, Llama, RopeSetup};
use posenc::rope::{RopeLayout, RopeScaling, YarnParams};

/// Largest |Δlogit| accepted between the full pass and prefill + decode (f32 noise is ≈1e-5).
pub const DECODE_TOLERANCE: f32 = 1e-3;

/// Token id used for padding (any id works: padding is never attended to).
pub const PAD_TOKEN: u32 = 0;

/// How the prefill + decode path runs.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodePath {
    /// Tokens processed by the prefill call (≥ 1); the rest are decoded one per call.
    pub prefill: usize,
    /// Position id given to each token on this path (the reference path uses `0..n`).
    pub positions: Vec<u64>,
    /// RoPE used by the prefill call.
    pub prefill_rope: RopeSetup,
    /// RoPE used by the decode calls.
    pub decode_rope: RopeSetup,
}

impl DecodePath {
    /// The correct path: positions `0..n`, the model's own RoPE setup.
    pub fn correct(llama: &Llama, n_tokens: usize, prefill: usize) -> DecodePath {
        DecodePath {
            prefill,
            positions: (0..n_tokens as u64).collect(),
            prefill_rope: llama.rope.clone(),
            decode_rope: llama.rope.clone(),
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

fn compare_rows(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| nan_as_inf((x - y).abs()))
        .fold(0.0f32, f32::max)
}

/// Runs `ids` once in full (positions `0..n`, RoPE `reference`) and again through `path`
/// (prefill, then one token per call with a KV cache) and compares logits at positions
/// `prefill − 1 ..= n − 1`.
pub fn check_decode_against(
    llama: &Llama,
    reference: &RopeSetup,
    ids: &[u32],
    path: &DecodePath,
) -> Result<DecodeCheck> {
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
    let full =
        llama.forward_rows_with(reference, ids, &full_positions, &attend, &mut cache, &rows)?;

    let mut cache = llama.new_cache(n);
    let p = path.prefill;
    let mut decoded = llama.forward_rows_with(
        &path.prefill_rope,
        &ids[..p],
        &path.positions[..p],
        &attend[..p],
        &mut cache,
        &[p - 1],
    )?;
    for i in p..n {
        let step = llama.forward_rows_with(
            &path.decode_rope,
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
        steps.push(StepDiff {
            index,
            max_abs_diff: compare_rows(a, b),
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

/// [`check_decode_against`] with the model's own RoPE ([`Llama::rope`]) as the reference.
pub fn check_decode(llama: &Llama, ids: &[u32], path: &DecodePath) -> Result<DecodeCheck> {
    check_decode_against(llama, &llama.rope, ids, path)
}

/// How a left-padded batch assigns position ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PaddedPositions {
    /// Correct: each row's `cumsum(mask) − 1`, padding slots set to 1 (as HF's `generate`).
    CumsumMask,
    /// Bug: the first row's `cumsum(mask) − 1` used for every row.
    SharedFirstRow,
    /// Positions `0..L` for every row (a uniform shift per row, invisible to RoPE).
    SharedArange,
}

/// `cumsum(mask) − 1` with padding slots set to 1.
pub fn padded_positions(mask: &[bool]) -> Vec<u64> {
    let mut seen = 0u64;
    mask.iter()
        .map(|&m| {
            if m {
                seen += 1;
                seen - 1
            } else {
                1
            }
        })
        .collect()
}

/// Result of [`check_padded_batch`] for one sequence.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SequenceDiff {
    /// Real tokens in the sequence.
    pub len: usize,
    /// Padding tokens in front of it.
    pub pad: usize,
    /// Real positions compared.
    pub compared: usize,
    /// max |Δlogit| against the sequence run alone.
    pub max_abs_diff: f32,
    /// Compared positions whose top-1 agrees.
    pub top1_agree: usize,
}

/// Result of [`check_padded_batch`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BatchCheck {
    /// Length every row is padded to.
    pub padded_len: usize,
    /// Tokens of each padded row in the prefill call; the rest are decoded one per call.
    pub prefill: usize,
    /// How positions were assigned.
    pub positions: PaddedPositions,
    /// Real positions compared, over all rows.
    pub compared: usize,
    /// max |Δlogit| over every row.
    pub max_abs_diff: f32,
    /// Compared positions whose top-1 agrees.
    pub top1_agree: usize,
    /// `max_abs_diff ≤ tolerance` and every top-1 agrees.
    pub pass: bool,
    /// Per-row details, in batch order.
    pub sequences: Vec<SequenceDiff>,
}

/// Runs each sequence alone (positions `0..len`) and as a row of a batch left-padded to the
/// longest one: the first `prefill` tokens of each padded row in one call, the rest one per call,
/// with positions from `scheme` (computed from the batch's masks; row 0 is "the first row").
/// Compares the logits of every real token. Rows run one after the other with their own cache,
/// which is what a batched kernel computes row by row.
pub fn check_padded_batch(
    llama: &Llama,
    sequences: &[Vec<u32>],
    prefill: usize,
    scheme: PaddedPositions,
) -> Result<BatchCheck> {
    let padded_len = sequences.iter().map(Vec::len).max().unwrap_or(0);
    if sequences.is_empty() || sequences.iter().any(Vec::is_empty) {
        return Err(Error::Model(
            "a padded batch needs at least one sequence and no empty one".into(),
        ));
    }
    if prefill == 0 || prefill > padded_len {
        return Err(Error::Model(format!(
            "padded prefill must be in 1..={padded_len}, got {prefill}"
        )));
    }
    let vocab = llama.config.vocab_size;
    let masks: Vec<Vec<bool>> = sequences
        .iter()
        .map(|s| (0..padded_len).map(|t| t >= padded_len - s.len()).collect())
        .collect();
    let first_row = padded_positions(&masks[0]);
    let mut out = Vec::with_capacity(sequences.len());
    for (seq, mask) in sequences.iter().zip(&masks) {
        let (len, pad) = (seq.len(), padded_len - seq.len());
        let alone_pos: Vec<u64> = (0..len as u64).collect();
        let rows: Vec<usize> = (0..len).collect();
        let mut cache = llama.new_cache(len);
        let alone = llama.forward_rows(seq, &alone_pos, &vec![true; len], &mut cache, &rows)?;

        let tokens: Vec<u32> = std::iter::repeat_n(PAD_TOKEN, pad)
            .chain(seq.iter().copied())
            .collect();
        let positions = match scheme {
            PaddedPositions::CumsumMask => padded_positions(mask),
            PaddedPositions::SharedFirstRow => first_row.clone(),
            PaddedPositions::SharedArange => (0..padded_len as u64).collect(),
        };
        let mut cache = llama.new_cache(padded_len);
        // Real rows of the prefill, then one decoded row per call.
        let prefill_rows: Vec<usize> = (pad..prefill).collect();
        let mut batch = llama.forward_rows(
            &tokens[..prefill],
            &positions[..prefill],
            &mask[..prefill],
            &mut cache,
            &prefill_rows,
        )?;
        for t in prefill..padded_len {
            let step = llama.forward_rows(
                &tokens[t..=t],
                &positions[t..=t],
                &mask[t..=t],
                &mut cache,
                &[0],
            )?;
            if mask[t] {
                batch.extend_from_slice(&step);
            }
        }
        // Padded row t ↔ alone row t − pad, for every real t.
        let first_real = pad;
        let (mut worst, mut agree) = (0.0f32, 0);
        let compared = padded_len - first_real;
        for k in 0..compared {
            let a = &alone[k * vocab..(k + 1) * vocab];
            let b = &batch[k * vocab..(k + 1) * vocab];
            worst = worst.max(compare_rows(a, b));
            agree += usize::from(argmax(a) == argmax(b));
        }
        out.push(SequenceDiff {
            len,
            pad,
            compared,
            max_abs_diff: worst,
            top1_agree: agree,
        });
    }
    let compared = out.iter().map(|s| s.compared).sum();
    let top1_agree = out.iter().map(|s| s.top1_agree).sum();
    let max_abs_diff = out.iter().map(|s| s.max_abs_diff).fold(0.0f32, f32::max);
    Ok(BatchCheck {
        padded_len,
        prefill,
        positions: scheme,
        compared,
        max_abs_diff,
        top1_agree,
        pass: max_abs_diff <= DECODE_TOLERANCE && top1_agree == compared,
        sequences: out,
    })
}

/// What a suite entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// A correct path: must agree within tolerance.
    Correct,
    /// An injected bug: must be detected (or be a no-op on this input).
    Bug,
    /// Shown for understanding; not counted.
    Info,
}

/// One comparison of [`decode_suite`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SuiteCheck {
    /// Short identifier (`decode`, `padded_batch`, `decode_position_zero`, ...).
    pub name: String,
    /// Correct path, injected bug or information.
    pub kind: CheckKind,
    /// What runs, in words.
    pub description: String,
    /// Positions compared.
    pub compared: usize,
    /// max |Δlogit| against the reference.
    pub max_abs_diff: f32,
    /// Compared positions whose top-1 agrees.
    pub top1_agree: usize,
    /// `max_abs_diff ≤ tolerance` and every top-1 agrees.
    pub within_tolerance: bool,
    /// The injected change is numerically nothing on this input (same frequencies).
    pub no_op: bool,
    /// Correct: within tolerance. Bug: detected (not within tolerance) or a no-op. Info: true.
    pub ok: bool,
    /// max |Δlogit| per compared step (decode comparisons) or per row (batch comparisons).
    pub detail_max_abs_diff: Vec<f32>,
}

/// Result of [`decode_suite`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DecodeSuite {
    /// Tokens of the sequence.
    pub n_tokens: usize,
    /// Tokens of the prefill call (single-sequence comparisons).
    pub prefill: usize,
    /// Decode steps after it.
    pub decode_steps: usize,
    /// Length of each row of the padded batch.
    pub batch_lengths: Vec<usize>,
    /// RoPE scaling of the correct path (`none` = the model's own).
    pub scaling: String,
    /// The scaling that `scaling_dropped` drops.
    pub dropped_scaling: String,
    /// The tolerance.
    pub tolerance: f32,
    /// Every comparison.
    pub checks: Vec<SuiteCheck>,
    /// Every check `ok`.
    pub pass: bool,
}

fn from_decode(
    name: &str,
    kind: CheckKind,
    description: String,
    c: &DecodeCheck,
    no_op: bool,
) -> SuiteCheck {
    from_parts(
        name,
        kind,
        description,
        (c.compared, c.max_abs_diff, c.top1_agree, c.pass),
        no_op,
        c.steps.iter().map(|s| s.max_abs_diff).collect(),
    )
}

fn from_batch(name: &str, kind: CheckKind, description: String, c: &BatchCheck) -> SuiteCheck {
    from_parts(
        name,
        kind,
        description,
        (c.compared, c.max_abs_diff, c.top1_agree, c.pass),
        false,
        c.sequences.iter().map(|s| s.max_abs_diff).collect(),
    )
}

fn from_parts(
    name: &str,
    kind: CheckKind,
    description: String,
    (compared, max_abs_diff, top1_agree, within): (usize, f32, usize, bool),
    no_op: bool,
    detail: Vec<f32>,
) -> SuiteCheck {
    let ok = match kind {
        CheckKind::Correct => within,
        CheckKind::Bug => !within || no_op,
        CheckKind::Info => true,
    };
    SuiteCheck {
        name: name.into(),
        kind,
        description,
        compared,
        max_abs_diff,
        top1_agree,
        within_tolerance: within,
        no_op,
        ok,
        detail_max_abs_diff: detail,
    }
}

/// Three rows for the padded batch: the last half, the last three quarters and all of `ids`
/// (shortest, hence most padded, first).
pub fn batch_rows(ids: &[u32]) -> Vec<Vec<u32>> {
    let n = ids.len();
    let mut rows: Vec<Vec<u32>> = [n / 2, n / 4, 0]
        .iter()
        .map(|&s| ids[s..].to_vec())
        .collect();
    rows.dedup();
    rows
}

/// Runs every comparison of the module docs on `ids`: `prefill` tokens in one call, the rest
/// decoded; the padded batch from [`batch_rows`] with the same number of decode steps.
pub fn decode_suite(
    llama: &Llama,
    ids: &[u32],
    prefill: usize,
    mut progress: impl FnMut(usize, usize),
) -> Result<DecodeSuite> {
    let n = ids.len();
    if n < 4 {
        return Err(Error::Model(format!(
            "check-decode needs at least 4 tokens, got {n}"
        )));
    }
    if prefill == 0 || prefill >= n {
        return Err(Error::Model(format!(
            "prefill must be in 1..{n} (at least one decode step), got {prefill}"
        )));
    }
    let steps = n - prefill;
    let rows = batch_rows(ids);
    let batch_prefill = n - steps;
    let model_rope = llama.rope.clone();
    let total = 8;
    let mut done = 0;
    let mut tick = |progress: &mut dyn FnMut(usize, usize)| {
        done += 1;
        progress(done, total);
    };
    let mut checks = Vec::new();

    let correct = DecodePath::correct(llama, n, prefill);
    let c = check_decode(llama, ids, &correct)?;
    checks.push(from_decode(
        "decode",
        CheckKind::Correct,
        format!("full pass vs prefill {prefill} + {steps} decode steps"),
        &c,
        false,
    ));
    tick(&mut progress);
    let b = check_padded_batch(llama, &rows, batch_prefill, PaddedPositions::CumsumMask)?;
    checks.push(from_batch(
        "padded_batch",
        CheckKind::Correct,
        format!(
            "left-padded batch of {} rows (positions cumsum(mask) − 1, padding masked) vs each row alone",
            rows.len()
        ),
        &b,
    ));
    tick(&mut progress);

    let mut zero = correct.clone();
    zero.positions[prefill..].fill(0);
    let c = check_decode(llama, ids, &zero)?;
    checks.push(from_decode(
        "decode_position_zero",
        CheckKind::Bug,
        "every decoded token at position 0".into(),
        &c,
        false,
    ));
    tick(&mut progress);

    let mut off = correct.clone();
    for p in off.positions[prefill..].iter_mut() {
        *p += 1;
    }
    let c = check_decode(llama, ids, &off)?;
    checks.push(from_decode(
        "decode_off_by_one",
        CheckKind::Bug,
        "decoded token i at position i + 1".into(),
        &c,
        false,
    ));
    tick(&mut progress);

    let mut half = correct.clone();
    half.prefill_rope.layout = RopeLayout::HalfSplit;
    half.decode_rope.layout = RopeLayout::HalfSplit;
    let c = check_decode(llama, ids, &half)?;
    checks.push(from_decode(
        "half_split_layout",
        CheckKind::Bug,
        "half-split pairs (x[i], x[i+d/2]) on GGUF weights permuted for interleaved pairs".into(),
        &c,
        false,
    ));
    tick(&mut progress);

    let b = check_padded_batch(llama, &rows, batch_prefill, PaddedPositions::SharedFirstRow)?;
    checks.push(from_batch(
        "shared_position_row",
        CheckKind::Bug,
        "the first (most padded) row's cumsum(mask) − 1 used for every row of the batch".into(),
        &b,
    ));
    tick(&mut progress);

    // Scaling dropped: the configured scaling, or YaRN x4 when the model runs unscaled.
    let scaled = if model_rope.params.scaling != RopeScaling::Default {
        model_rope.clone()
    } else {
        let mut s = model_rope.clone();
        s.params.scaling = RopeScaling::Yarn(YarnParams::new(4.0, llama.config.context_length));
        s
    };
    let mut unscaled = scaled.clone();
    unscaled.params.scaling = RopeScaling::Default;
    let no_op = {
        let a = scaled.params.frequencies(Some(n), scaled.precision)?;
        let b = unscaled.params.frequencies(Some(n), unscaled.precision)?;
        a.inv_freq == b.inv_freq && a.attention_factor == b.attention_factor
    };
    let dropped = DecodePath {
        prefill,
        positions: correct.positions.clone(),
        prefill_rope: scaled.clone(),
        decode_rope: unscaled,
    };
    let c = check_decode_against(llama, &scaled, ids, &dropped)?;
    checks.push(from_decode(
        "scaling_dropped",
        CheckKind::Bug,
        format!(
            "prefill with {}, decode steps without it",
            crate::scaling::describe(&scaled.params)
        ),
        &c,
        no_op,
    ));
    tick(&mut progress);

    let b = check_padded_batch(llama, &rows, batch_prefill, PaddedPositions::SharedArange)?;
    checks.push(from_batch(
        "shared_arange_row",
        CheckKind::Info,
        "positions 0..L for every padded row: a per-row shift, which RoPE cannot see".into(),
        &b,
    ));
    tick(&mut progress);

    let pass = checks.iter().all(|c| c.ok);
    Ok(DecodeSuite {
        n_tokens: n,
        prefill,
        decode_steps: steps,
        batch_lengths: rows.iter().map(Vec::len).collect(),
        scaling: crate::scaling::describe(&model_rope.params),
        dropped_scaling: crate::scaling::describe(&scaled.params),
        tolerance: DECODE_TOLERANCE,
        checks,
        pass,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_positions_are_cumsum_minus_one_with_padding_at_one() {
        assert_eq!(
            padded_positions(&[false, false, true, true, true]),
            vec![1, 1, 0, 1, 2]
        );
        assert_eq!(padded_positions(&[true, true]), vec![0, 1]);
        assert!(padded_positions(&[]).is_empty());
    }

    #[test]
    fn batch_rows_are_suffixes_shortest_first() {
        let ids: Vec<u32> = (0..8).collect();
        let rows = batch_rows(&ids);
        assert_eq!(rows, vec![vec![4, 5, 6, 7], vec![2, 3, 4, 5, 6, 7], ids]);
    }
}
