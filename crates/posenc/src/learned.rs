//! learned (in progress).
