//! # posenc-model: a real model to find position bugs on
//!
//! A GGUF reader, a byte-level BPE tokenizer and a Llama-family forward pass in `f32` whose
//! rotary embeddings come from [`posenc::rope`], plus diagnostics that run on the model.
