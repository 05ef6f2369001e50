//! NoPE: no positional encoding at all.
//!
//! A decoder-only transformer with **no** position signal still knows token order, through the
//! causal mask alone: query `i` sees keys `0 ..= i`, so the number of visible keys differs per
//! position, and the model can (and does) learn to recover absolute and relative position from
//! that (Haviv et al. 2022, "Transformer Language Models without Positional Encodings Still
//! Learn Positional Information"; Kazemnejad et al. 2023, "The Impact of Positional Encoding on
//! Length Generalization in Transformers", where NoPE length-generalises better than RoPE or
//! ALiBi on their synthetic tasks). Without the mask (an encoder), attention is permutation
//! equivariant and NoPE gives no order information whatsoever.
//!
//! Nothing is added anywhere ([`ENTRY`] = [`PositionEntry::Nowhere`]); [`causal_mask`] returns the
//! mask so the one order signal can be inspected. Real uses: Llama 4 interleaves NoPE layers with
//! RoPE layers ("iRoPE"); SmolLM3 and Command A drop RoPE in some layers likewise.

use crate::error::check_cap;
use crate::{PositionEntry, Result};

/// NoPE adds no positional signal anywhere.
pub const ENTRY: PositionEntry = PositionEntry::Nowhere;

/// Cap on `len_q * len_k` for [`causal_mask`]: 67,108,864.
pub const MAX_MASK_ELEMENTS: u64 = 67_108_864;

/// The no-position scheme, as a value (for code that picks a scheme per layer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct NoPe;

impl NoPe {
    /// Where NoPE's position signal enters: nowhere.
    pub fn entry(self) -> PositionEntry {
        ENTRY
    }
}

/// The causal mask, flat `[len_q][len_k]`: `true` where query row `r` (absolute position
/// `query_offset + r`) may attend key `j`, i.e. `j <= query_offset + r`.
///
/// Under NoPE this boolean pattern is the model's only source of order information.
///
/// Errors: `len_q * len_k` above [`MAX_MASK_ELEMENTS`].
pub fn causal_mask(len_q: usize, len_k: usize, query_offset: usize) -> Result<Vec<bool>> {
    check_cap(
        "len_q * len_k",
        (len_q as u64).saturating_mul(len_k as u64),
        MAX_MASK_ELEMENTS,
    )?;
    let mut out = Vec::with_capacity(len_q * len_k);
    for r in 0..len_q {
        let i = query_offset as u128 + r as u128;
        out.extend((0..len_k).map(|j| j as u128 <= i));
    }
    Ok(out)
}
