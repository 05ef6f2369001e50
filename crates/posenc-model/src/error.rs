//! The error type of posenc-model.

/// Errors returned by posenc-model. Nothing here panics on a bad file or bad input; it returns one
/// of these, with a message that can go to the user unchanged.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being read or written (usually a path).
        what: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A GGUF file that is truncated, corrupt or outside what the reader supports.
    #[error("bad GGUF file: {0}")]
    Gguf(String),
    /// A tensor stored in a ggml type this crate cannot dequantize.
    #[error("tensor `{tensor}` has ggml type {type_name} (id {type_id}), which is not supported (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K)")]
    UnsupportedType {
        /// The tensor name.
        tensor: String,
        /// The ggml type name (for example "Q6_K"), or "unknown".
        type_name: String,
        /// The ggml type id.
        type_id: u32,
    },
    /// The model file is absent from the cache.
    #[error("model file not found at {path}; run `posenc model fetch` first")]
    ModelMissing {
        /// Where the model was expected.
        path: String,
    },
    /// Downloading or verifying the model failed.
    #[error("model fetch failed: {0}")]
    Fetch(String),
    /// A model whose metadata or tensors do not fit the Llama runner.
    #[error("model: {0}")]
    Model(String),
    /// Tokenizer data or input that the tokenizer cannot handle.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Bad input to the runner (length mismatch, cache overflow, ...) or to posenc.
    #[error(transparent)]
    Posenc(#[from] posenc::Error),
}

/// `std::result::Result` with posenc-model's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}
