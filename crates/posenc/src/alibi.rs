//! ALiBi: attention with linear biases (Press, Smith & Lewis, 2022).
//!
//! No position vectors at all: each head `h` adds `-m_h · (i - j)` to the score of query `i`
//! attending key `j`, **before softmax** ([`ENTRY`] = [`PositionEntry::AttentionScores`]). The
//! penalty grows linearly with distance, at a head-specific slope `m_h`, so heads with small
//! slopes look far and heads with large slopes look near. Scores are not otherwise changed (no
//! `1/sqrt(d)` on the bias).
//!
//! Slopes ([`slopes`]), the paper's rule: for `n` heads with `n` a power of two,
//! `m_h = 2^(-8(h+1)/n)` (a geometric sequence starting at and with ratio `2^(-8/n)`). Otherwise,
//! with `p` the largest power of two below `n`: the `p` slopes for `p` heads, then the
//! even-indexed (`[0::2]`) slopes for `2p` heads, first `n - p` of them. BLOOM computes the same
//! slopes in float32; [`slopes_bloom_f32`] repeats that arithmetic for bit-level comparisons.
//!
//! Bias forms ([`bias`]):
//! - causal (decoders: BLOOM, MPT, the paper): `-m·(i - j)` for keys `j <= i`; keys after the
//!   query get `0` here, because hiding them is the causal **mask**'s job, kept separate;
//! - symmetric (encoders, e.g. ALiBi-BERT variants): `-m·|i - j|`.
//!
//! Query row `r` sits at absolute position `i = query_offset + r` (decoding with a cache of
//! `query_offset` tokens); keys are at `0 .. len_k`.
//!
//! Implementations differ by a per-row constant, which softmax ignores: BLOOM adds `m·j`
//! (slope times key position) instead of `-m·(i - j)`. [`bias`] gives the paper's form.
//!
//! [`effective_window`] turns a slope into a distance: the bias reaches `ln(threshold)` at
//! `d = -ln(threshold) / m`, i.e. the attention weight of a key that far is `threshold` times
//! that of an equal-score key at distance 0.

use crate::error::check_cap;
use crate::torch_f32::HfCpu;
use crate::{Error, PositionEntry, Result};

/// ALiBi adds its bias to the attention scores, before softmax.
pub const ENTRY: PositionEntry = PositionEntry::AttentionScores;

/// Cap on the number of heads: 1024.
pub const MAX_HEADS: usize = 1024;

/// Cap on `heads * len_q * len_k` for [`bias`]: 67,108,864 values.
pub const MAX_BIAS_ELEMENTS: u64 = 67_108_864;

fn check_heads(num_heads: usize) -> Result<()> {
    if num_heads == 0 {
        return Err(Error::invalid("num_heads", "at least 1 head"));
    }
    check_cap("num_heads", num_heads as u64, MAX_HEADS as u64)
}

/// Largest power of two `<= n` (for `n >= 1`).
fn floor_pow2(n: usize) -> usize {
    1usize << (usize::BITS - 1 - n.leading_zeros())
}

/// The paper's slopes for `num_heads` heads, in `f64`, head 0 first (the largest slope).
///
/// Errors: `num_heads == 0`, `num_heads >` [`MAX_HEADS`].
pub fn slopes(num_heads: usize) -> Result<Vec<f64>> {
    check_heads(num_heads)?;
    let p = floor_pow2(num_heads);
    // For a power of two n: m_h = 2^(-8(h+1)/n).
    let pow2_slopes = |n: usize| (0..n).map(move |h| (-8.0 * (h + 1) as f64 / n as f64).exp2());
    let mut out: Vec<f64> = pow2_slopes(p).collect();
    out.extend(pow2_slopes(2 * p).step_by(2).take(num_heads - p));
    Ok(out)
}

/// The slopes as BLOOM's `build_alibi_tensor` computes them on the machine `cpu`, bit for bit:
/// `base = 2^(-8/p)` rounded to f32, slopes `torch.pow(base, [1 .. p])`, then
/// `extra_base = 2^(-4/p)` (rounded to f32) to the odd powers `1, 3, ..` for the remaining
/// `n - p` heads, in a second `pow`.
///
/// Each `pow` goes through torch's float32 CPU loop ([`crate::torch_f32::pow_scalar_base`]):
/// whole blocks of two vectors through SLEEF's `powf_u10`, the rest through glibc's `powf`. Both
/// round differently from the true power, so the split decides the last bit: on AVX-512, 8 heads
/// use glibc for every slope and 64 heads SLEEF for every slope.
///
/// These differ from the exact [`slopes`] by a few f32 ulps (up to about 5e-7 relative for 32
/// heads), because the rounded base is raised to a power.
///
/// Errors: as [`slopes`].
pub fn slopes_bloom_f32(num_heads: usize, cpu: HfCpu) -> Result<Vec<f32>> {
    use crate::torch_f32::pow_scalar_base;
    check_heads(num_heads)?;
    let p = floor_pow2(num_heads);
    // Python: 2 ** (-(2 ** -(math.log2(p) - 3))) = 2^(-8/p), a double, then torch.tensor(.., float32).
    let base = (-8.0 / p as f64).exp2() as f32;
    let powers: Vec<f32> = (1..=p).map(|k| k as f32).collect();
    let mut out = pow_scalar_base(cpu, base, &powers);
    let rest = num_heads - p;
    if rest > 0 {
        let extra_base = (-4.0 / p as f64).exp2() as f32;
        let odd: Vec<f32> = (0..rest).map(|k| (2 * k + 1) as f32).collect();
        out.extend(pow_scalar_base(cpu, extra_base, &odd));
    }
    Ok(out)
}

/// The ALiBi bias, flat `[heads][len_q][len_k]`, `heads = slopes.len()`, computed in `f64` and
/// stored as `f32`.
///
/// Query row `r` is at absolute position `i = query_offset + r`; key `j` at `j`. Causal
/// (`symmetric = false`): `-m·(i - j)` for `j <= i`, `0` for `j > i` (apply the causal mask
/// separately). Symmetric: `-m·|i - j|`. Add the result to the scores before softmax.
///
/// Errors: no slopes, more than [`MAX_HEADS`], a non-finite slope, `heads * len_q * len_k` above
/// [`MAX_BIAS_ELEMENTS`].
pub fn bias(
    slopes: &[f64],
    len_q: usize,
    len_k: usize,
    query_offset: usize,
    symmetric: bool,
) -> Result<Vec<f32>> {
    check_heads(slopes.len())?;
    if let Some(m) = slopes.iter().find(|m| !m.is_finite()) {
        return Err(Error::invalid("slopes", format!("finite numbers, got {m}")));
    }
    let elements = (slopes.len() as u64)
        .saturating_mul(len_q as u64)
        .saturating_mul(len_k as u64);
    check_cap("heads * len_q * len_k", elements, MAX_BIAS_ELEMENTS)?;
    let mut out = Vec::with_capacity(slopes.len() * len_q * len_k);
    for &m in slopes {
        for r in 0..len_q {
            let i = query_offset as f64 + r as f64;
            out.extend((0..len_k).map(|j| {
                let d = i - j as f64;
                let b = if symmetric {
                    -m * d.abs()
                } else if d >= 0.0 {
                    -m * d
                } else {
                    0.0
                };
                // Avoid -0.0 for m = 0 or d = 0, so outputs compare cleanly.
                (b + 0.0) as f32
            }));
        }
    }
    Ok(out)
}

/// Distance at which a head's bias falls to `ln(threshold)`: `-ln(threshold) / slope`, i.e. the
/// distance where the weight factor `e^(-m·d)` equals `threshold` (for example `threshold = 0.01`:
/// a key that far gets 1% of the weight it would get at distance 0 with the same raw score).
///
/// Errors: `slope` not finite or `<= 0`, `threshold` not in `(0, 1)`.
pub fn effective_window(slope: f64, threshold: f64) -> Result<f64> {
    crate::error::check_positive("slope", slope)?;
    if !(threshold > 0.0 && threshold < 1.0) {
        return Err(Error::invalid(
            "threshold",
            format!("a number in (0, 1), got {threshold}"),
        ));
    }
    Ok(-threshold.ln() / slope)
}
