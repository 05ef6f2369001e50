//! relative (in progress).
