//! # posenc-lab: train small transformers with each position scheme, measure how far each one
//! extrapolates
//!
//! A decoder-only transformer (pre-norm, causal; [`model`]) is trained on CPU with candle
//! (candle-core's autodiff, candle-nn's AdamW) on a seeded task ([`task`]: copy, reverse, sort,
//! addition, next-byte language modelling), with one of seven position schemes ([`scheme`]:
//! NoPE, learned, sinusoidal, RoPE, ALiBi, T5, Shaw) whose terms come from posenc's own scheme
//! modules, then tested at lengths past the training length ([`eval`]). [`sweep`] runs a grid of
//! such cells, resumable and shardable, and summarises it by scheme and length.
//!
//! ```no_run
//! use posenc_lab::{model::ModelConfig, scheme::SchemeKind, task::{DataSource, Task}, train};
//! let cfg = ModelConfig { task: Task::Copy, scheme: SchemeKind::Alibi, rope_scaling: None,
//!     vocab: Task::Copy.vocab(), d_model: 64, heads: 4, layers: 2, train_len: 32,
//!     max_len: 512, seed: 0 };
//! let data = DataSource::algorithmic(Task::Copy)?;
//! let (model, log) = train::train(&cfg, &train::TrainOptions::default(), &data, &mut |_| {})?;
//! let report = posenc_lab::eval::evaluate(&model, &data, &[32, 64, 128], 64, 1234, &mut |_, _| {})?;
//! # Ok::<(), posenc_lab::LabError>(())
//! ```
//!
//! Framework: candle. `bench/lab-framework` times one training step of the same model in
//! candle and burn in interleaved rounds; it measured burn's flex backend at about a third of
//! candle's step time (BENCHMARKS.md), so the measurement favours burn. The lab was written on
//! candle before that measurement and has not been ported yet (BENCHMARKS.md says why).

#![warn(missing_docs)]

pub mod checkpoint;
pub mod eval;
pub mod model;
pub mod scheme;
pub mod sweep;
pub mod task;
pub mod train;

use std::path::{Path, PathBuf};

/// Errors of the lab. Messages name the offending flag or file.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A bad argument: the flag and what was expected.
    #[error("invalid {flag}: {expected}")]
    Invalid {
        /// The command-line flag (or field).
        flag: String,
        /// What was expected, and what was given.
        expected: String,
    },
    /// A position-scheme error from posenc.
    #[error(transparent)]
    Posenc(#[from] posenc::Error),
    /// A tensor-library error (a bug, or memory).
    #[error("tensor error: {0}")]
    Tensor(#[from] candle_core::Error),
    /// A file could not be read or written.
    #[error("{0}")]
    Io(String),
    /// A checkpoint that does not fit its config.
    #[error("bad checkpoint: {0}")]
    Checkpoint(String),
    /// Training produced a non-finite loss or gradient.
    #[error("training diverged: {0}")]
    Diverged(String),
}

impl LabError {
    /// Shorthand for [`LabError::Invalid`].
    pub fn invalid(flag: impl Into<String>, expected: impl Into<String>) -> Self {
        LabError::Invalid {
            flag: flag.into(),
            expected: expected.into(),
        }
    }
}

/// `Result` with [`LabError`].
pub type Result<T, E = LabError> = std::result::Result<T, E>;

/// Largest text file read for language modelling (bytes).
pub const MAX_TEXT_BYTES: u64 = 64 << 20;

/// The text for language modelling: the file given (HTML stripped), or the Rust book from the
/// toolchain docs, found as the perplexity diagnostic finds it
/// ([`posenc_model::perplexity::rust_book_path`]). Returns the text and where it came from.
pub fn load_text(path: Option<&Path>) -> Result<(String, PathBuf)> {
    let path = match path {
        Some(p) => p.to_path_buf(),
        None => posenc_model::perplexity::rust_book_path().ok_or_else(|| {
            LabError::invalid(
                "--text",
                format!(
                    "a text file; none given and the Rust book ($(rustc --print sysroot)/{}) is not installed",
                    posenc_model::perplexity::RUST_BOOK_IN_SYSROOT
                ),
            )
        })?,
    };
    let meta = std::fs::metadata(&path).map_err(|e| {
        LabError::invalid(
            "--text",
            format!("a readable file: {}: {e}", path.display()),
        )
    })?;
    if meta.len() > MAX_TEXT_BYTES {
        return Err(LabError::invalid(
            "--text",
            format!(
                "a file of at most {MAX_TEXT_BYTES} bytes; {} has {}",
                path.display(),
                meta.len()
            ),
        ));
    }
    let raw = std::fs::read_to_string(&path).map_err(|e| {
        LabError::invalid("--text", format!("a UTF-8 file: {}: {e}", path.display()))
    })?;
    Ok((posenc_model::perplexity::text_of_file(&path, raw).0, path))
}

/// The data source of a task: the generator, or the text for `lm` (see [`load_text`]) checked
/// to hold windows of `max_len`.
pub fn data_source(
    task: task::Task,
    text: Option<&Path>,
    max_len: usize,
) -> Result<task::DataSource> {
    if task.is_lm() {
        let (text, _) = load_text(text)?;
        task::DataSource::text(&text, max_len)
    } else {
        task::DataSource::algorithmic(task)
    }
}
