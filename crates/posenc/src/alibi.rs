//! alibi (in progress).
