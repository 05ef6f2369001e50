//! # posenc-model: a real model to find position bugs on
//!
//! A GGUF reader, a byte-level BPE tokenizer and a Llama-family forward pass in `f32` whose
//! rotary embeddings come from [`posenc::rope`], plus diagnostics that run on the model.
//!
//! The reference model is SmolLM2-135M-Instruct (30 layers, 576 hidden, 9 query heads and 3
//! key/value heads of 64 dims, RoPE base 100000, tied embeddings), from a Q4_1 GGUF that
//! [`fetch`] downloads; any Llama-family GGUF (`llama`, `mistral`, `qwen2`) loads with
//! [`Model::load`]. Weight matrices stay in their storage type (`Q4_0`, `Q4_1`, `Q8_0`; see
//! [`quant`]) and are unpacked in registers by the matrix–vector kernels of decode, or tile by tile
//! into the GEMM of prefill; RoPE is [`posenc::kernels::rope_qk_inplace`] and attention
//! [`posenc::cached_attention`]. Logits match Hugging Face transformers (which dequantizes the same
//! file) to about 2e-5 on the reference fixtures.
//!
//! - [`gguf`]: the file format and dequantization (the reference of [`quant`]).
//! - [`quant`]: quantized weight matrices and their products.
//! - [`tokenizer`]: byte-level BPE with the SmolLM pre-tokenizer.
//! - [`llama`]: the forward pass, KV cache with explicit positions, greedy decoding.
//! - [`fetch`]: model location, download and checksum.
//! - [`diagnostics`]: checks on the real model (full pass vs prefill + decode).

#![warn(missing_docs)]

pub mod attention_stats;
pub mod diagnostics;
mod error;
pub mod fetch;
pub mod gguf;
pub mod gguf_check;
pub mod llama;
pub mod passkey;
pub mod perplexity;
pub mod quant;
pub mod scaling;
pub mod tokenizer;

pub use error::{Error, Result};

/// A loaded model with its tokenizer.
pub struct Model {
    /// The network.
    pub llama: llama::Llama,
    /// The tokenizer from the same file.
    pub tokenizer: tokenizer::Tokenizer,
    /// `tokenizer.ggml.eos_token_id`, if present.
    pub eos_token: Option<u32>,
}

impl Model {
    /// Loads a GGUF file (weight matrices kept in their storage type).
    pub fn load(path: &std::path::Path) -> Result<Model> {
        let g = gguf::GgufFile::open(path)?;
        Model::from_gguf(&g)
    }

    /// Builds the model and tokenizer from a parsed file.
    pub fn from_gguf(g: &gguf::GgufFile) -> Result<Model> {
        let llama = llama::Llama::from_gguf(g)?;
        let tokenizer = tokenizer::Tokenizer::from_gguf(g)?;
        let eos_token = g
            .get("tokenizer.ggml.eos_token_id")
            .and_then(|v| v.as_u64())
            .and_then(|v| u32::try_from(v).ok());
        Ok(Model {
            llama,
            tokenizer,
            eos_token,
        })
    }

    /// Loads the reference model from the cache (error telling to run `posenc model fetch` if absent).
    pub fn load_default() -> Result<Model> {
        Model::load(&fetch::ensure_model()?)
    }
}
