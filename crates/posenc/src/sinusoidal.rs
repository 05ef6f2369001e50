//! Fixed sinusoidal position tables (Vaswani et al., 2017), in the three layouts found in real code.
//!
//! A sinusoidal encoding maps position `p` to a `dim`-vector of sines and cosines of `p` at a
//! geometric ladder of frequencies. It is **added to the token embeddings** before the first layer
//! ([`ENTRY`] = [`PositionEntry::HiddenStates`]); nothing in it is learned.
//!
//! With `h = dim / 2` frequency indices `i = 0 .. h`:
//!
//! | layout | frequency `ω_i` | column of `sin(p·ω_i)` | column of `cos(p·ω_i)` | used by |
//! |---|---|---|---|---|
//! | [`SinusoidalLayout::Interleaved`] | `base^(-2i/dim)` | `2i` | `2i+1` | the paper, Annotated Transformer, HF DistilBERT / XLM `create_sinusoidal_embeddings` |
//! | [`SinusoidalLayout::Concat`] | `base^(-i/h)` (same ladder) | `i` | `h+i` | HF Marian / Pegasus `SinusoidalPositionalEmbedding`, Transformer-XL's relative table |
//! | [`SinusoidalLayout::Fairseq`] | `base^(-i/(h-1))` | `i` | `h+i` | fairseq `SinusoidalPositionalEmbedding`, HF M2M100 / XGLM, tensor2tensor `get_timing_signal_1d`, Whisper |
//!
//! `Interleaved` and `Concat` hold the same numbers in a different column order. `Fairseq` divides
//! the exponent by `h - 1`, so its last frequency is exactly `1/base` (the others stop one step
//! short of it); tensor2tensor's `get_timing_signal_1d` uses that same `h - 1` denominator
//! (`log(max_timescale) / (num_timescales - 1)`), so its table is the `Fairseq` one.
//!
//! Conventions:
//! - `base` is the "10000" of the paper; it must be finite and `> 1` (so wavelengths grow along the
//!   vector; `base <= 1` is almost always a mistake such as passing `1/10000`).
//! - `Interleaved` and `Concat` need an even, non-zero `dim`. `Fairseq` needs `dim >= 4`
//!   (`h - 1 > 0`); for odd `dim` the last column is zero, as fairseq pads it.
//! - Positions are whatever the model feeds: fairseq and M2M100 start real tokens at
//!   `padding_idx + 1` and zero the padding row; that offset is the caller's business here.
//! - Angles `p·ω_i` and their sines are computed in `f64` and stored as `f32`. Any finite real
//!   position is accepted (fractional positions are used by interpolation tricks).
//!
//! A property worth knowing: in the interleaved layout each pair `(sin, cos)` at `p + k` is the pair
//! at `p` rotated by the angle `k·ω_i`, so `PE(p+k)` is a fixed linear map of `PE(p)` for every `p`.

use crate::error::{check_cap, check_finite};
use crate::{Error, PositionEntry, Result};

/// Sinusoidal encodings are added to the hidden states (token embeddings).
pub const ENTRY: PositionEntry = PositionEntry::HiddenStates;

/// Cap on `len * dim` for [`table`] (and on `dim` for [`row`]): 16,777,216 values, 64 MiB of `f32`.
pub const MAX_TABLE_ELEMENTS: u64 = 16_777_216;

/// Column order and frequency ladder of a sinusoidal table (see the module docs for the formulas).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinusoidalLayout {
    /// Vaswani: `PE[p, 2i] = sin(p·base^(-2i/d))`, `PE[p, 2i+1] = cos(p·base^(-2i/d))`.
    Interleaved,
    /// `[sin | cos]` halves with the Vaswani frequencies `base^(-i/(d/2))` (Marian, Pegasus).
    Concat,
    /// `[sin | cos]` halves with frequencies `base^(-i/(d/2-1))` (fairseq, M2M100, tensor2tensor).
    Fairseq,
}

/// The `dim / 2` angular frequencies `ω_i` of a layout, in `f64`, highest first.
///
/// Errors: `dim` invalid for the layout (see the module docs), `base` not finite or `<= 1`,
/// `dim` above [`MAX_TABLE_ELEMENTS`].
pub fn frequencies(dim: usize, base: f64, layout: SinusoidalLayout) -> Result<Vec<f64>> {
    check_cap("dim", dim as u64, MAX_TABLE_ELEMENTS)?;
    check_finite("base", base)?;
    if base <= 1.0 {
        return Err(Error::invalid(
            "base",
            format!("a finite number > 1, got {base}"),
        ));
    }
    let half = dim / 2;
    match layout {
        SinusoidalLayout::Interleaved | SinusoidalLayout::Concat => {
            if dim == 0 || dim % 2 == 1 {
                return Err(Error::invalid(
                    "dim",
                    format!("an even number > 0 for the {layout:?} layout, got {dim}"),
                ));
            }
            Ok((0..half)
                .map(|i| base.powf(-((2 * i) as f64) / dim as f64))
                .collect())
        }
        SinusoidalLayout::Fairseq => {
            if dim < 4 {
                return Err(Error::invalid(
                    "dim",
                    format!("at least 4 for the fairseq layout (d/2 - 1 > 0), got {dim}"),
                ));
            }
            let denom = (half - 1) as f64;
            Ok((0..half).map(|i| base.powf(-(i as f64) / denom)).collect())
        }
    }
}

/// Writes the row for `position` into `out` (length `dim`), given the layout's frequencies.
fn fill_row(out: &mut [f32], position: f64, freqs: &[f64], layout: SinusoidalLayout) {
    let half = freqs.len();
    for (i, &w) in freqs.iter().enumerate() {
        let (s, c) = (position * w).sin_cos();
        let (si, ci) = match layout {
            SinusoidalLayout::Interleaved => (2 * i, 2 * i + 1),
            SinusoidalLayout::Concat | SinusoidalLayout::Fairseq => (i, half + i),
        };
        if let Some(slot) = out.get_mut(si) {
            *slot = s as f32;
        }
        if let Some(slot) = out.get_mut(ci) {
            *slot = c as f32;
        }
    }
    // Odd fairseq dim: the padding column stays zero.
    for slot in out.iter_mut().skip(2 * half) {
        *slot = 0.0;
    }
}

/// The encoding of one (possibly fractional or negative) `position`: a vector of length `dim`.
///
/// Errors: `position` not finite, plus the errors of [`frequencies`].
pub fn row(position: f64, dim: usize, base: f64, layout: SinusoidalLayout) -> Result<Vec<f32>> {
    check_finite("position", position)?;
    let freqs = frequencies(dim, base, layout)?;
    let mut out = vec![0.0f32; dim];
    fill_row(&mut out, position, &freqs, layout);
    Ok(out)
}

/// The table for positions `0 .. len`, flat row-major `[len][dim]` (row `p` at `p*dim ..`).
///
/// Errors: `len * dim` above [`MAX_TABLE_ELEMENTS`] ([`Error::TooLarge`]), plus the errors of
/// [`frequencies`]. `len = 0` gives an empty table.
pub fn table(len: usize, dim: usize, base: f64, layout: SinusoidalLayout) -> Result<Vec<f32>> {
    let elements = (len as u64).saturating_mul(dim as u64);
    check_cap("len * dim", elements, MAX_TABLE_ELEMENTS)?;
    let freqs = frequencies(dim, base, layout)?;
    let mut out = vec![0.0f32; len * dim];
    for (p, chunk) in out.chunks_exact_mut(dim).enumerate() {
        fill_row(chunk, p as f64, &freqs, layout);
    }
    Ok(out)
}
