//! Helpers shared by the library's integration tests: the golden fixtures and seeded test data.
#![allow(dead_code)] // each test crate uses a different subset

use std::path::PathBuf;

pub mod hf_lines;

/// The shared fixtures: `$POSENC_FIXTURES`, else `../shared/fixtures` beside the checkout.
pub fn fixtures() -> PathBuf {
    std::env::var_os("POSENC_FIXTURES")
        .map(Into::into)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
        })
}

/// Every `NAME` with a `rope/NAME.config.json` (and its `NAME.expected.json`), sorted; at least
/// the eight shipped ones.
pub fn rope_fixture_names() -> Vec<String> {
    let dir = fixtures().join("rope");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "cannot read {}: {e} (is ../shared beside the checkout?)",
                dir.display()
            )
        })
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".config.json").map(str::to_string))
        .collect();
    names.sort();
    assert!(
        names.len() >= 8,
        "expected the rope fixtures, found {names:?}"
    );
    names
}

/// SplitMix64 → uniform in [-1, 1): deterministic test data.
pub struct Rng(pub u64);

impl Rng {
    /// The next value in [-1, 1).
    pub fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// `n` values.
    pub fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next()).collect()
    }
}
