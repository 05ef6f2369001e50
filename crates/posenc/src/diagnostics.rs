//! diagnostics (in progress).
