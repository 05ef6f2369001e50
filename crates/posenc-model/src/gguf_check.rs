//! Consistency of a GGUF model file's metadata with its tensor table, checked before any weight
//! is loaded: a file whose keys contradict its tensors is refused with the key or tensor that is
//! wrong, rather than run as a 0-layer model or with NaN weights.
//!
//! The parser ([`crate::gguf`]) already guarantees that every tensor lies inside the file, that
//! no key or tensor name repeats, and that counts are bounded. This module checks what only makes
//! sense for a transformer checkpoint: `{arch}.block_count` matches the `blk.N.` tensors,
//! `{arch}.embedding_length` and `{arch}.vocab_size` match `token_embd.weight`, the tokenizer's
//! vocabulary matches the embedding rows, and no weight (or block scale) is NaN or infinite.

use crate::error::{Error, Result};
use crate::gguf::{GgmlType, GgufFile, TensorInfo};
use half::{bf16, f16};

/// Largest `block_count` accepted (the largest published models have under 200 blocks).
pub const MAX_BLOCKS: u64 = 1024;
/// Smallest vocabulary of a byte-level BPE tokenizer: every byte needs a token of its own.
pub const MIN_BPE_VOCAB: usize = 256;

/// The architecture prefix of the model's keys (`general.architecture`, for example `llama`).
pub fn architecture(g: &GgufFile) -> Result<&str> {
    g.get("general.architecture")
        .ok_or_else(|| Error::Model("metadata key `general.architecture` is missing".into()))?
        .as_str()
        .ok_or_else(|| Error::Model("metadata key `general.architecture` is not a string".into()))
}

/// Checks the metadata against the tensor table (see the module docs). Errors name the key or
/// tensor that is wrong.
pub fn check_model_file(g: &GgufFile) -> Result<()> {
    let arch = architecture(g)?.to_string();
    let key = |k: &str| format!("{arch}.{k}");
    let uint = |k: &str| -> Result<Option<u64>> {
        match g.get(k) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                Error::Model(format!(
                    "metadata key `{k}` must be a non-negative integer, found {v:?}"
                ))
            }),
        }
    };

    let blocks_key = key("block_count");
    let blocks = uint(&blocks_key)?
        .ok_or_else(|| Error::Model(format!("metadata key `{blocks_key}` is missing")))?;
    if blocks == 0 || blocks > MAX_BLOCKS {
        return Err(Error::Model(format!(
            "metadata key `{blocks_key}` = {blocks}, expected 1..={MAX_BLOCKS}"
        )));
    }
    // Every block index in the tensor names must be below block_count, and every block present.
    let mut seen = vec![false; blocks as usize];
    for t in &g.tensors {
        if let Some(i) = block_index(&t.name) {
            match seen.get_mut(i) {
                Some(s) => *s = true,
                None => {
                    return Err(Error::Model(format!(
                        "tensor `{}` belongs to block {i}, but `{blocks_key}` = {blocks}",
                        t.name
                    )))
                }
            }
        }
    }
    if let Some(missing) = seen.iter().position(|s| !s) {
        return Err(Error::Model(format!(
            "`{blocks_key}` = {blocks}, but the file has no tensors of block {missing} (`blk.{missing}.*`)"
        )));
    }

    let embd = g
        .tensor("token_embd.weight")
        .ok_or_else(|| Error::Model("tensor `token_embd.weight` is missing".into()))?;
    if embd.dims.len() != 2 {
        return Err(Error::Model(format!(
            "tensor `token_embd.weight` has shape {:?}, expected [embedding_length, vocab_size]",
            embd.dims
        )));
    }
    let (width, rows) = (embd.dims[0], embd.dims[1]);
    let width_key = key("embedding_length");
    if let Some(w) = uint(&width_key)? {
        if w != width {
            return Err(Error::Model(format!(
                "metadata key `{width_key}` = {w}, but `token_embd.weight` rows have {width} values"
            )));
        }
    }
    let vocab_key = key("vocab_size");
    if let Some(v) = uint(&vocab_key)? {
        if v != rows {
            return Err(Error::Model(format!(
                "metadata key `{vocab_key}` = {v}, but `token_embd.weight` has {rows} rows"
            )));
        }
    }
    if let Some(tokens) = g.get("tokenizer.ggml.tokens").and_then(|v| v.as_array()) {
        if tokens.len() as u64 != rows {
            return Err(Error::Model(format!(
                "`tokenizer.ggml.tokens` holds {} tokens, but `token_embd.weight` has {rows} rows",
                tokens.len()
            )));
        }
        let bpe = g.get("tokenizer.ggml.model").and_then(|v| v.as_str()) == Some("gpt2");
        if bpe && tokens.len() < MIN_BPE_VOCAB {
            return Err(Error::Model(format!(
                "`tokenizer.ggml.tokens` holds {} tokens; a byte-level BPE vocabulary needs at least {MIN_BPE_VOCAB}",
                tokens.len()
            )));
        }
    }

    for t in &g.tensors {
        check_finite(g, t)?;
    }
    Ok(())
}

/// `N` of a `blk.N.` tensor name.
fn block_index(name: &str) -> Option<usize> {
    let rest = name.strip_prefix("blk.")?;
    let (n, _) = rest.split_once('.')?;
    n.parse().ok()
}

/// Scans a tensor's floats (F32/F16/BF16 values, the f16 scales of quantized blocks) for NaN or
/// infinity. Types without a known layout are left to the loader, which names them.
fn check_finite(g: &GgufFile, t: &TensorInfo) -> Result<()> {
    let Some((_, block_bytes)) = t.ggml_type.block_layout() else {
        return Ok(());
    };
    let raw = g.tensor_bytes(t)?;
    let f16_at = |b: &[u8], at: usize| f16::from_le_bytes([b[at], b[at + 1]]).to_f32();
    let bad = match t.ggml_type {
        GgmlType::F32 => raw
            .chunks_exact(4)
            .position(|b| !f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite()),
        GgmlType::F16 => raw
            .chunks_exact(2)
            .position(|b| !f16::from_le_bytes([b[0], b[1]]).to_f32().is_finite()),
        GgmlType::BF16 => raw
            .chunks_exact(2)
            .position(|b| !bf16::from_le_bytes([b[0], b[1]]).to_f32().is_finite()),
        // Q4_0, Q8_0: one f16 scale first; Q4_1: scale and minimum first.
        GgmlType::Q4_0 | GgmlType::Q8_0 => raw
            .chunks_exact(block_bytes)
            .position(|b| !f16_at(b, 0).is_finite()),
        GgmlType::Q4_1 => raw
            .chunks_exact(block_bytes)
            .position(|b| !(f16_at(b, 0).is_finite() && f16_at(b, 2).is_finite())),
        _ => None,
    };
    match bad {
        None => Ok(()),
        Some(i) => Err(Error::Model(format!(
            "tensor `{}` ({}) holds a NaN or infinite value (element or block {i})",
            t.name,
            t.ggml_type.name()
        ))),
    }
}
