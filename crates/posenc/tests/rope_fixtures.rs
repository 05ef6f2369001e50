//! Parity with Hugging Face transformers on the golden fixtures in `../shared/fixtures/rope`.

use posenc::config::parse_config;
use posenc::rope::{cos_sin_row, Precision};
use serde_json::Value;

mod common;
use common::fixtures;

/// Every `NAME` with both `NAME.config.json` and `NAME.expected.json`.
fn cases() -> Vec<(String, String, Value)> {
    let dir = fixtures().join("rope");
    let names = common::rope_fixture_names();
    names
        .into_iter()
        .map(|n| {
            let config = std::fs::read_to_string(dir.join(format!("{n}.config.json"))).unwrap();
            let expected = std::fs::read_to_string(dir.join(format!("{n}.expected.json"))).unwrap();
            (n, config, serde_json::from_str(&expected).unwrap())
        })
        .collect()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn seq_len(entry: &Value) -> Option<usize> {
    entry["seq_len"].as_u64().map(|s| s as usize)
}

#[test]
fn inv_freq_and_attention_factor_match_hf() {
    let mut checked = 0;
    for (name, config, expected) in cases() {
        let model = parse_config(&config).unwrap_or_else(|e| panic!("{name}: {e}"));
        let params = model.params();
        for entry in expected.as_array().unwrap() {
            let want = f64s(&entry["inv_freq"]);
            assert_eq!(
                entry["rotary_dim"].as_u64().unwrap() as usize,
                params.rotary_dim,
                "{name}"
            );
            for precision in [Precision::Exact, Precision::Hf(posenc::rope::HfCpu::Avx512)] {
                let got = params.frequencies(seq_len(entry), precision).unwrap();
                assert_eq!(
                    got.rope_type,
                    entry["rope_type"].as_str().unwrap(),
                    "{name}"
                );
                assert_eq!(got.inv_freq.len(), want.len(), "{name}");
                for (i, (g, w)) in got.inv_freq.iter().zip(&want).enumerate() {
                    let rel = (g - w).abs() / w.abs();
                    assert!(
                        rel <= 1e-6,
                        "{name} seq_len {:?} {precision:?} pair {i}: {g} vs {w} (rel {rel:e})",
                        seq_len(entry)
                    );
                }
                let af = entry["attention_factor"].as_f64().unwrap();
                assert!(
                    (got.attention_factor - af).abs() <= 1e-6,
                    "{name}: attention factor {} vs {af}",
                    got.attention_factor
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 30);
}

#[test]
fn hf_precision_reproduces_hf_cos_sin() {
    let mut worst = 0.0f64;
    for (name, config, expected) in cases() {
        let params = parse_config(&config).unwrap().params().clone();
        for entry in expected.as_array().unwrap() {
            let freqs = params
                .frequencies(seq_len(entry), Precision::Hf(posenc::rope::HfCpu::Avx512))
                .unwrap();
            let positions = entry["positions"].as_array().unwrap();
            for (row, p) in positions.iter().enumerate() {
                let p = p.as_u64().unwrap();
                let mut cos = vec![0.0; freqs.pairs()];
                let mut sin = vec![0.0; freqs.pairs()];
                cos_sin_row(&freqs, p, &mut cos, &mut sin).unwrap();
                for (got, key) in [(&cos, "hf_cos"), (&sin, "hf_sin")] {
                    let want = f64s(&entry[key][row]);
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        let err = (*g as f64 - w).abs();
                        worst = worst.max(err);
                        assert!(
                            err <= 1e-5,
                            "{name} seq_len {:?} {key} position {p} pair {i}: {g} vs {w}",
                            seq_len(entry)
                        );
                    }
                }
            }
        }
    }
    eprintln!("hf mode: worst |Δ| against HF cos/sin = {worst:e}");
}

/// Exact mode against the f64 truth `cos(p·θ)·a`, over a sweep of positions up to 2^20.
/// Also measures how far HF's float32 path is from that truth (documented, not asserted).
#[test]
fn exact_precision_is_exact_up_to_2_pow_20() {
    let mut positions: Vec<u64> = (0..(1u64 << 20)).step_by(4099).collect();
    positions.extend((0..=20).map(|k| 1u64 << k));
    positions.extend([(1 << 20) - 1, 999_983, 524_287, 32_767, 131_071]);
    let mut hf_worst = 0.0f64;
    for (name, config, expected) in cases() {
        let params = parse_config(&config).unwrap().params().clone();
        for entry in expected.as_array().unwrap() {
            let exact = params
                .frequencies(seq_len(entry), Precision::Exact)
                .unwrap();
            let hf = params
                .frequencies(seq_len(entry), Precision::Hf(posenc::rope::HfCpu::Avx512))
                .unwrap();
            let n = exact.pairs();
            let (mut c, mut s) = (vec![0.0; n], vec![0.0; n]);
            let (mut hc, mut hs) = (vec![0.0; n], vec![0.0; n]);
            for &p in &positions {
                cos_sin_row(&exact, p, &mut c, &mut s).unwrap();
                cos_sin_row(&hf, p, &mut hc, &mut hs).unwrap();
                for i in 0..n {
                    let angle = p as f64 * exact.inv_freq[i];
                    let (tc, ts) = (
                        angle.cos() * exact.attention_factor,
                        angle.sin() * exact.attention_factor,
                    );
                    let err = (c[i] as f64 - tc).abs().max((s[i] as f64 - ts).abs());
                    assert!(err <= 1e-6, "{name}: position {p} pair {i}: error {err:e}");
                    hf_worst =
                        hf_worst.max((hc[i] as f64 - tc).abs().max((hs[i] as f64 - ts).abs()));
                }
            }
        }
    }
    eprintln!("HF float32 path vs f64 truth, positions <= 2^20: worst |Δ| = {hf_worst:e}");
    // The float32 angle is visibly wrong at large positions; exact mode is not.
    assert!(
        hf_worst > 1e-3,
        "expected HF's float32 path to drift at large positions, got {hf_worst:e}"
    );
}

/// LongRoPE switches factor sets exactly past the original context; dynamic NTK changes
/// nothing up to max_position_embeddings.
#[test]
fn sequence_length_rules() {
    for (name, config, _) in cases() {
        let params = parse_config(&config).unwrap().params().clone();
        let at = |s| {
            params
                .frequencies(Some(s), Precision::Exact)
                .unwrap()
                .inv_freq
        };
        match &params.scaling {
            posenc::rope::RopeScaling::LongRope(l) => {
                let o = l.original_max_position_embeddings;
                assert_eq!(at(o), at(1), "{name}");
                assert_ne!(at(o + 1), at(o), "{name}");
            }
            posenc::rope::RopeScaling::Dynamic { .. } => {
                let m = params.max_position_embeddings;
                assert_eq!(at(m), at(1), "{name}");
                let longer = at(2 * m);
                assert!(
                    longer.iter().zip(at(m)).skip(1).all(|(a, b)| *a < b),
                    "{name}: longer context lowers frequencies"
                );
            }
            _ => {}
        }
    }
}
