//! The one error type of the library.
//!
//! Every fallible function returns [`Result`]. Messages name the offending field and the form
//! that was expected, so a command line or a server can pass them to the user unchanged.

/// Errors returned by posenc. The library never panics on user input; it returns one of these.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A parameter has a value outside its domain (NaN, negative, zero heads, odd dimension...).
    #[error("invalid `{field}`: {expected}")]
    InvalidParameter {
        /// The parameter or config key, as the user spelled it.
        field: String,
        /// What was expected, in words (for example "a finite number > 0, got -1").
        expected: String,
    },
    /// A required key is missing from a configuration.
    #[error("missing key `{key}`: {expected}")]
    MissingKey {
        /// The key that is missing.
        key: String,
        /// What should be there.
        expected: String,
    },
    /// A `rope_type` (or legacy `type`) that posenc does not know.
    #[error("unknown rope_type `{found}`; known types: {known}")]
    UnknownRopeType {
        /// The value found in the config.
        found: String,
        /// Comma-separated list of the known types.
        known: String,
    },
    /// A position past the end of a learned table.
    #[error("position {position} is past the learned table ({max_positions} rows, positions 0..{max_positions})")]
    PositionOutOfRange {
        /// The position asked for.
        position: u64,
        /// The number of rows in the table.
        max_positions: usize,
    },
    /// Buffers whose lengths do not fit the shape they are described with.
    #[error("shape mismatch for `{what}`: expected {expected}, got {got}")]
    Shape {
        /// Which buffer.
        what: String,
        /// The expected length or shape.
        expected: String,
        /// The length or shape that was passed.
        got: String,
    },
    /// A request above an explicit size cap (protects memory).
    #[error("`{what}` = {value} exceeds the cap of {cap}")]
    TooLarge {
        /// What was too large.
        what: String,
        /// The requested size.
        value: u64,
        /// The cap.
        cap: u64,
    },
    /// Input that could not be parsed (JSON, safetensors, .npy, ...).
    #[error("cannot parse {what}: {message}")]
    Parse {
        /// What was being parsed.
        what: String,
        /// The parser's message.
        message: String,
    },
}

/// `std::result::Result` with posenc's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::InvalidParameter`].
    pub fn invalid(field: impl Into<String>, expected: impl Into<String>) -> Self {
        Error::InvalidParameter {
            field: field.into(),
            expected: expected.into(),
        }
    }

    /// Shorthand for [`Error::Shape`].
    pub fn shape(what: impl Into<String>, expected: impl ToString, got: impl ToString) -> Self {
        Error::Shape {
            what: what.into(),
            expected: expected.to_string(),
            got: got.to_string(),
        }
    }

    /// Shorthand for [`Error::Parse`].
    pub fn parse(what: impl Into<String>, message: impl ToString) -> Self {
        Error::Parse {
            what: what.into(),
            message: message.to_string(),
        }
    }
}

/// Checks that `value` is finite and strictly positive.
pub(crate) fn check_positive(field: &str, value: f64) -> Result<f64> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(Error::invalid(
            field,
            format!("a finite number > 0, got {value}"),
        ))
    }
}

/// Checks that `value` is finite.
pub(crate) fn check_finite(field: &str, value: f64) -> Result<f64> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(Error::invalid(
            field,
            format!("a finite number, got {value}"),
        ))
    }
}

/// Checks that `value` does not exceed `cap`.
pub(crate) fn check_cap(what: &str, value: u64, cap: u64) -> Result<()> {
    if value > cap {
        Err(Error::TooLarge {
            what: what.into(),
            value,
            cap,
        })
    } else {
        Ok(())
    }
}
