//! # posenc: transformer positional encodings, exact against Hugging Face
//!
//! Attention is order-blind: permute the tokens and the outputs permute with them. A positional
//! encoding breaks that symmetry. This crate implements every family in use, each with the
//! conventions of the models that use it, and says for each **where position enters** the model
//! ([`PositionEntry`]):
//!
//! | module | scheme | enters at |
//! |---|---|---|
//! | [`sinusoidal`] | Vaswani sin/cos tables (interleaved, concatenated, fairseq) | hidden states |
//! | [`learned`] | learned absolute table (BERT, GPT-2, OPT) | hidden states |
//! | [`relative`] | Shaw clipping, T5 buckets, Transformer-XL, DeBERTa buckets | attention scores |
//! | [`rope`] | rotary embeddings and their long-context scalings | queries and keys |
//! | [`alibi`] | linear distance biases (BLOOM, MPT) | attention scores |
//! | [`nope`] | no positional signal (causal mask only) | nowhere |
//!
//! Around the schemes: [`config`] reads a Hugging Face `config.json` into a RoPE setup and lints it;
//! [`attention`] is a plain reference attention that applies any scheme at its point of entry,
//! with masks kept separate; [`kv_cache`] holds keys and values with explicit position ids;
//! [`diagnostics`] holds model-free checks (wavelengths, the base lower bound for a context).
//!
//! Speed: [`kernels`] applies RoPE in place (f32, f16, bf16; both layouts and axis orders; q and
//! k in one call), builds cos/sin tables and K-shifts a cache at memory-bandwidth speed;
//! [`fused_attention`] is tiled attention with the position signal computed in the kernel. Each
//! is tested against the plain implementation above over random sweeps.
//!
//! Numerics: angles and tables are computed in `f64` and stored as `f32`. RoPE tables also have an
//! `hf` precision mode that repeats Hugging Face's float32 arithmetic, for bit-level comparisons.
//!
//! The library does no I/O beyond parsing bytes it is given, returns [`Error`] on bad input and
//! never panics on it.

#![warn(missing_docs)]

pub mod alibi;
pub mod attention;
pub mod cached_attention;
pub mod config;
pub mod diagnostics;
mod error;
pub mod fused_attention;
pub mod kernels;
pub mod kv_cache;
pub mod learned;
pub mod nope;
pub mod relative;
pub mod rope;
pub mod sinusoidal;
pub mod torch_f32;

pub use error::{Error, Result};

/// Where a positional signal enters a transformer layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PositionEntry {
    /// Added to the token embeddings (hidden states) before the first layer: sinusoidal, learned.
    HiddenStates,
    /// Applied to queries and keys inside every attention layer: RoPE.
    QueryKey,
    /// Added to the attention scores before softmax: ALiBi, T5, Shaw, Transformer-XL, DeBERTa.
    AttentionScores,
    /// Nowhere: NoPE relies on the causal mask alone.
    Nowhere,
}

impl PositionEntry {
    /// A short human description.
    pub fn describe(self) -> &'static str {
        match self {
            PositionEntry::HiddenStates => "added to hidden states (token embeddings)",
            PositionEntry::QueryKey => "applied to queries and keys (rotation)",
            PositionEntry::AttentionScores => "added to attention scores before softmax",
            PositionEntry::Nowhere => "nowhere (the causal mask is the only order signal)",
        }
    }
}
