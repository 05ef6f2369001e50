//! attention (in progress).
