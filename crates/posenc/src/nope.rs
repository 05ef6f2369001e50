//! nope (in progress).
