//! sinusoidal (in progress).
