//! `Precision::Hf(posenc::rope::HfCpu::Avx512)` reproduces Hugging Face's float32 `inv_freq` bit for bit on every golden
//! fixture in `../shared/fixtures/rope` (every file, every `seq_len` entry, every pair).

use posenc::config::parse_config;
use posenc::rope::Precision;
use serde_json::Value;

mod common;
use common::fixtures;

#[test]
fn hf_inv_freq_matches_torch_float32_bits() {
    let dir = fixtures().join("rope");
    let names = common::rope_fixture_names();

    let mut mismatches = Vec::new();
    let mut checked = 0usize;
    let mut entries = 0usize;
    for name in &names {
        let config = std::fs::read_to_string(dir.join(format!("{name}.config.json"))).unwrap();
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{name}.expected.json"))).unwrap(),
        )
        .unwrap();
        let params = parse_config(&config)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .params()
            .clone();
        for entry in expected.as_array().unwrap() {
            entries += 1;
            let seq_len = entry["seq_len"].as_u64().map(|s| s as usize);
            // The fixture stores float32 values as JSON doubles; the cast back is exact.
            let want: Vec<f32> = entry["inv_freq"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            let got = params
                .frequencies(seq_len, Precision::Hf(posenc::rope::HfCpu::Avx512))
                .unwrap()
                .inv_freq;
            assert_eq!(got.len(), want.len(), "{name} seq_len {seq_len:?}");
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                checked += 1;
                if (*g as f32).to_bits() != w.to_bits() {
                    mismatches.push(format!(
                        "{name} seq_len {seq_len:?} pair {i}: got {g:e}, torch {w:e}"
                    ));
                }
            }
        }
    }
    assert!(
        entries >= names.len() && checked >= 8 * entries,
        "only {entries} fixture entries ({checked} values) checked"
    );
    assert!(
        mismatches.is_empty(),
        "{} of {checked} inv_freq values differ in bits:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
