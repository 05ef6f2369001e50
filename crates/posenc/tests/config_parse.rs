//! Config parsing: every form found on the Hub, errors that name the key, lint warnings, and
//! no panic on malformed input.

mod common;

use posenc::config::{parse_config, KNOWN_ROPE_TYPES};
use posenc::rope::{deepseek_softmax_scale_correction, Precision, RopeScaling};
use posenc::Error;
use proptest::prelude::*;

fn warnings(text: &str) -> Vec<String> {
    parse_config(text)
        .unwrap()
        .warnings
        .iter()
        .map(|w| w.to_string())
        .collect()
}

#[test]
fn v5_flat_rope_parameters() {
    let cfg = parse_config(
        r#"{"hidden_size": 4096, "num_attention_heads": 32, "max_position_embeddings": 32768,
            "rope_parameters": {"rope_type": "yarn", "rope_theta": 1000000.0, "factor": 4.0,
                                "original_max_position_embeddings": 8192}}"#,
    )
    .unwrap();
    assert_eq!(cfg.layers.len(), 1);
    let p = cfg.params();
    assert_eq!(p.base, 1e6);
    assert_eq!(p.rotary_dim, 128);
    match &p.scaling {
        RopeScaling::Yarn(y) => {
            assert_eq!(y.original_max_position_embeddings, 8192);
            assert_eq!((y.beta_fast, y.beta_slow, y.truncate), (32.0, 1.0, true));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(cfg.original_max_position_embeddings, Some(8192));
}

#[test]
fn v5_per_layer_rope_parameters() {
    let cfg = parse_config(
        r#"{"head_dim": 256, "hidden_size": 2560, "num_attention_heads": 8, "max_position_embeddings": 131072,
            "rope_parameters": {
              "full_attention": {"rope_type": "linear", "rope_theta": 1000000.0, "factor": 8.0},
              "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}}"#,
    )
    .unwrap();
    assert_eq!(cfg.layers.len(), 2);
    assert_eq!(cfg.params().scaling, RopeScaling::Linear { factor: 8.0 });
    let sliding = cfg
        .layers
        .iter()
        .find(|l| l.layer_type == "sliding_attention")
        .unwrap();
    assert_eq!(sliding.params.base, 10000.0);
    assert_eq!(sliding.params.rotary_dim, 256);
}

#[test]
fn gemma3_local_base() {
    let cfg = parse_config(
        r#"{"model_type": "gemma3_text", "head_dim": 256, "num_attention_heads": 8, "hidden_size": 2560, "max_position_embeddings": 131072,
            "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
            "rope_scaling": {"rope_type": "linear", "factor": 8.0}}"#,
    )
    .unwrap();
    let types: Vec<&str> = cfg.layers.iter().map(|l| l.layer_type.as_str()).collect();
    assert_eq!(types, ["full_attention", "sliding_attention"]);
    assert_eq!(cfg.layers[1].params.scaling, RopeScaling::Default);
    assert_eq!(cfg.layers[1].params.base, 10000.0);
}

#[test]
fn legacy_forms_and_rotary_width() {
    // GPT-NeoX: rotary_pct (and its base in rotary_emb_base; rope_theta is not read).
    let cfg = parse_config(r#"{"model_type": "gpt_neox", "hidden_size": 2048, "num_attention_heads": 16, "rotary_pct": 0.5, "rope_theta": 500}"#).unwrap();
    assert_eq!(cfg.params().rotary_dim, 64);
    assert_eq!(cfg.params().base, 10000.0);
    assert!(cfg.warnings.iter().any(|w| w.key == "rope_theta"));
    // Without model_type (Llama's rules), rotary_pct is not read.
    let cfg = parse_config(r#"{"hidden_size": 2048, "num_attention_heads": 16, "rotary_pct": 0.25, "rope_theta": 10000}"#).unwrap();
    assert_eq!(cfg.params().rotary_dim, 128);
    assert!(cfg.warnings.iter().any(|w| w.key == "rotary_pct"));
    // head_dim wins over hidden_size / heads (Gemma, SmolLM2).
    let cfg = parse_config(
        r#"{"hidden_size": 576, "num_attention_heads": 9, "head_dim": 64, "rope_theta": 100000}"#,
    )
    .unwrap();
    assert_eq!(cfg.head_dim, 64);
    // `type` spelling.
    let cfg = parse_config(r#"{"hidden_size": 64, "num_attention_heads": 1, "rope_scaling": {"type": "dynamic", "factor": 2.0}}"#).unwrap();
    assert_eq!(cfg.params().scaling, RopeScaling::Dynamic { factor: 2.0 });
}

#[test]
fn missing_and_bad_keys_are_errors_naming_them() {
    // A missing hidden_size takes the class default, as in HF, and the report says so.
    let cfg = parse_config(r#"{"model_type": "llama", "num_attention_heads": 8}"#).unwrap();
    assert_eq!(cfg.head_dim, 4096 / 8);
    assert_eq!(cfg.defaults["hidden_size"], "llama default");
    let err = parse_config(r#"{"hidden_size": 512, "num_attention_heads": 8, "rope_scaling": {"rope_type": "linear"}}"#).unwrap_err();
    assert!(err.to_string().contains("rope_scaling.factor"), "{err}");
    let err = parse_config(r#"{"hidden_size": 512, "num_attention_heads": 8, "rope_scaling": {"rope_type": "linear", "factor": -2}}"#).unwrap_err();
    assert!(
        err.to_string().contains("factor") && err.to_string().contains("-2"),
        "{err}"
    );
    // An odd head rotated in full (HF refuses it too): head_dim 7.
    let err = parse_config(r#"{"hidden_size": 35, "num_attention_heads": 5}"#).unwrap_err();
    assert!(err.to_string().contains("rotary_dim"), "{err}");
    // An odd partial width is rounded up as HF does: 64 * 0.3 = 19 -> 10 pairs.
    let cfg = parse_config(
        r#"{"model_type": "phi", "hidden_size": 512, "num_attention_heads": 8, "partial_rotary_factor": 0.3}"#,
    )
    .unwrap();
    assert_eq!(cfg.params().rotary_dim, 19);
    assert_eq!(
        cfg.params()
            .frequencies(None, Precision::Exact)
            .unwrap()
            .pairs(),
        10
    );
    let err = parse_config(r#"{"hidden_size": 512, "num_attention_heads": 0}"#).unwrap_err();
    assert!(err.to_string().contains("num_attention_heads"), "{err}");
    let err = parse_config(r#"{"hidden_size": 512, "num_attention_heads": 8, "rope_scaling": {"rope_type": "llama3", "factor": 8.0,
        "original_max_position_embeddings": 1024, "high_freq_factor": 4.0}}"#).unwrap_err();
    assert!(
        matches!(&err, Error::MissingKey { key, .. } if key == "rope_scaling.low_freq_factor"),
        "{err}"
    );
    let err = parse_config(
        r#"{"hidden_size": 512, "num_attention_heads": 8, "rope_scaling": {"rope_type": "yarn"}}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("rope_scaling.factor"), "{err}");
    let err = parse_config(r#"{"hidden_size": 512, "num_attention_heads": 8, "rope_theta": -5}"#)
        .unwrap_err();
    assert!(err.to_string().contains("rope_theta"), "{err}");
}

#[test]
fn unknown_rope_type_lists_the_known_ones() {
    let err = parse_config(r#"{"hidden_size": 512, "num_attention_heads": 8, "rope_scaling": {"rope_type": "xpos", "factor": 2}}"#).unwrap_err();
    match err {
        Error::UnknownRopeType { found, known } => {
            assert_eq!(found, "xpos");
            for k in KNOWN_ROPE_TYPES {
                assert!(known.contains(k));
            }
        }
        other => panic!("{other}"),
    }
}

#[test]
fn lint_warnings() {
    let base = r#""model_type": "llama", "hidden_size": 512, "num_attention_heads": 8, "max_position_embeddings": 8192"#;
    let w = warnings(&format!(
        r#"{{{base}, "rope_scaling": {{"rope_type": "linear", "factor": 0.5}}}}"#
    ));
    assert!(
        w.iter().any(|w| w.contains("factor") && w.contains("< 1")),
        "{w:?}"
    );
    let w = warnings(&format!(
        r#"{{{base}, "rope_scaling": {{"rope_type": "linear", "factor": 2, "low_freq_factor": 1}}}}"#
    ));
    assert!(
        w.iter().any(|w| w.contains("low_freq_factor")
            && w.contains("unrecognized")
            && w.contains("HF warns too")),
        "{w:?}"
    );
    let w = warnings(&format!(
        r#"{{{base}, "rope_scaling": {{"rope_type": "yarn", "factor": 4, "beta_fast": 1, "beta_slow": 32, "original_max_position_embeddings": 2048}}}}"#
    ));
    assert!(w.iter().any(|w| w.contains("beta_fast")), "{w:?}");
    assert!(
        !w.iter()
            .any(|w| w.contains("differs from max_position_embeddings")),
        "8192/2048 = 4: {w:?}"
    );
    let w = warnings(&format!(
        r#"{{{base}, "rope_scaling": {{"rope_type": "yarn", "factor": 8, "original_max_position_embeddings": 2048}}}}"#
    ));
    assert!(
        w.iter()
            .any(|w| w.contains("differs from max_position_embeddings")),
        "{w:?}"
    );
    // Llama 3.1 as Meta publishes it: max / original = 16 differs from factor 8 by design, and HF
    // does not warn; neither does posenc.
    let w = warnings(
        r#"{"model_type": "llama", "hidden_size": 4096, "num_attention_heads": 32, "max_position_embeddings": 131072,
        "rope_theta": 500000.0, "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192, "rope_type": "llama3"}}"#,
    );
    assert!(w.is_empty(), "{w:?}");
    // A clean config has no warnings.
    assert!(warnings(&format!(r#"{{{base}, "rope_theta": 10000}}"#)).is_empty());
}

#[test]
fn longrope_list_of_wrong_length_is_an_error_naming_it() {
    // HF warns on the length, then fails computing the frequencies; posenc refuses at once.
    let err = parse_config(
        r#"{"hidden_size": 64, "num_attention_heads": 8, "max_position_embeddings": 4096, "original_max_position_embeddings": 1024,
            "rope_scaling": {"type": "longrope", "short_factor": [1, 1, 1], "long_factor": [1, 2, 3, 4]}}"#,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("rope_scaling.short_factor"),
        "{err}"
    );
}

#[test]
fn deepseek_yarn_attention_factor() {
    // DeepSeek-V3: mscale = mscale_all_dim = 1, so the RoPE attention factor is 1 and the softmax
    // scale correction is (0.1 ln 40 + 1)^2.
    let cfg = parse_config(
        r#"{"hidden_size": 7168, "num_attention_heads": 128, "head_dim": 64, "max_position_embeddings": 163840,
            "rope_theta": 10000, "rope_scaling": {"type": "yarn", "factor": 40, "beta_fast": 32, "beta_slow": 1,
            "mscale": 1.0, "mscale_all_dim": 1.0, "original_max_position_embeddings": 4096}}"#,
    )
    .unwrap();
    let f = cfg.params().frequencies(None, Precision::Exact).unwrap();
    assert!((f.attention_factor - 1.0).abs() < 1e-12);
    let expected = (0.1f64 * 40f64.ln() + 1.0).powi(2);
    assert!((deepseek_softmax_scale_correction(40.0, 1.0) - expected).abs() < 1e-12);
    // mscale 0.707 / mscale_all_dim 1 (other DeepSeek variants): ratio of the two mscales.
    let y = posenc::rope::YarnParams {
        mscale: Some(0.707),
        mscale_all_dim: Some(1.0),
        ..posenc::rope::YarnParams::new(40.0, 4096)
    };
    let want = (0.1 * 0.707 * 40f64.ln() + 1.0) / (0.1 * 40f64.ln() + 1.0);
    assert!((posenc::rope::yarn_attention_factor(&y) - want).abs() < 1e-12);
}

#[test]
fn yarn_without_truncation_uses_fractional_bounds() {
    let mut y = posenc::rope::YarnParams::new(32.0, 4096);
    y.truncate = false;
    let (low, high) = posenc::rope::yarn_correction_range(&y, 64, 150000.0);
    assert!(low.fract() != 0.0 && high.fract() != 0.0, "{low} {high}");
    y.truncate = true;
    let (low_t, high_t) = posenc::rope::yarn_correction_range(&y, 64, 150000.0);
    assert_eq!((low_t, high_t), (low.floor(), high.ceil()));
}

#[test]
fn malformed_json_is_an_error_not_a_panic() {
    for text in [
        "",
        "{",
        "[]",
        "null",
        "42",
        r#"{"hidden_size": "big"}"#,
        r#"{"hidden_size": 1e400}"#,
        "NaN",
        r#"{"hidden_size": 64, "num_attention_heads": 1, "rope_scaling": [1]}"#,
        r#"{"hidden_size": 64, "num_attention_heads": 1, "rope_parameters": 3}"#,
        r#"{"hidden_size": 64, "num_attention_heads": 1, "rope_scaling": {"rope_type": 7}}"#,
    ] {
        assert!(parse_config(text).is_err(), "{text}");
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        (-1e7f64..1e7).prop_map(serde_json::Value::from),
        (0u64..200_000).prop_map(serde_json::Value::from),
        "[a-z_]{0,12}".prop_map(serde_json::Value::from),
        prop::collection::vec(-5.0f64..50.0, 0..70).prop_map(serde_json::Value::from),
    ]
}

proptest! {
    /// Random values under the keys posenc reads: parsing and computing frequencies return
    /// Ok or Err, never panic.
    #[test]
    fn random_configs_never_panic(
        entries in prop::collection::vec((prop::sample::select(vec![
            "hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim", "max_position_embeddings",
            "rope_theta", "partial_rotary_factor", "rotary_pct", "original_max_position_embeddings", "rope_local_base_freq"]),
            json_value()), 0..8),
        scaling in prop::collection::vec((prop::sample::select(vec![
            "rope_type", "type", "factor", "beta_fast", "beta_slow", "mscale", "mscale_all_dim", "attention_factor",
            "low_freq_factor", "high_freq_factor", "original_max_position_embeddings", "short_factor", "long_factor", "truncate"]),
            json_value()), 0..8),
        rope_type in prop::sample::select(KNOWN_ROPE_TYPES.to_vec()),
        seq_len in prop::option::of(0usize..300_000),
    ) {
        let mut root = serde_json::Map::new();
        root.insert("hidden_size".into(), 512.into());
        root.insert("num_attention_heads".into(), 8.into());
        for (k, v) in entries { root.insert(k.into(), v); }
        let mut block = serde_json::Map::new();
        block.insert("rope_type".into(), rope_type.into());
        for (k, v) in scaling { block.insert(k.into(), v); }
        root.insert("rope_scaling".into(), serde_json::Value::Object(block));
        let text = serde_json::Value::Object(root).to_string();
        if let Ok(cfg) = parse_config(&text) {
            for layer in &cfg.layers {
                for precision in [Precision::Exact, Precision::Hf(posenc::rope::HfCpu::Avx512)] {
                    if let Ok(f) = layer.params.frequencies(seq_len, precision) {
                        prop_assert!(f.inv_freq.iter().all(|x| x.is_finite() && *x >= 0.0));
                        prop_assert!(f.attention_factor.is_finite());
                    }
                }
            }
        }
    }
}

/// HF's standardization of `original_max_position_embeddings` (yarn, llama3, longrope): a single
/// block takes the top-level value over its own, else its own, else `max_position_embeddings`; a
/// per-layer block never reads the top-level value. Each departure from the plain case is linted.
#[test]
fn original_context_follows_hf_standardization() {
    let orig = |text: &str| -> (usize, Vec<String>) {
        let cfg = parse_config(text).unwrap();
        let o = match &cfg.params().scaling {
            RopeScaling::Yarn(y) => y.original_max_position_embeddings,
            RopeScaling::Llama3(l) => l.original_max_position_embeddings,
            RopeScaling::LongRope(l) => l.original_max_position_embeddings,
            other => panic!("{other:?}"),
        };
        (o, cfg.warnings.iter().map(|w| w.to_string()).collect())
    };
    let base = r#""hidden_size": 512, "num_attention_heads": 8, "max_position_embeddings": 32768"#;
    let (o, w) = orig(&format!(
        r#"{{{base}, "original_max_position_embeddings": 4096,
            "rope_scaling": {{"rope_type": "yarn", "factor": 8, "original_max_position_embeddings": 2048}}}}"#
    ));
    assert_eq!(o, 4096, "top level wins, as HF");
    assert!(
        w.iter()
            .any(|w| w.contains("replaced by the top-level value 4096")),
        "{w:?}"
    );
    let (o, w) = orig(&format!(
        r#"{{{base}, "rope_scaling": {{"rope_type": "llama3", "factor": 8, "low_freq_factor": 1, "high_freq_factor": 4}}}}"#
    ));
    assert_eq!(o, 32768, "HF's default is max_position_embeddings");
    let cfg = parse_config(&format!(
        r#"{{{base}, "rope_scaling": {{"rope_type": "llama3", "factor": 8, "low_freq_factor": 1, "high_freq_factor": 4}}}}"#
    ))
    .unwrap();
    assert_eq!(
        cfg.defaults["rope_scaling.original_max_position_embeddings"],
        "max_position_embeddings (HF's default)"
    );
    assert!(
        w.iter()
            .any(|w| w.contains("is not below max_position_embeddings")),
        "{w:?}"
    );
    let (o, w) = orig(&format!(
        r#"{{{base}, "original_max_position_embeddings": 4096,
            "rope_parameters": {{"full_attention": {{"rope_type": "yarn", "rope_theta": 1e6, "factor": 4, "original_max_position_embeddings": 8192}},
                                "sliding_attention": {{"rope_type": "default", "rope_theta": 1e4}}}}}}"#
    ));
    assert_eq!(o, 8192, "per-layer blocks keep their own value");
    assert!(
        w.iter().any(|w| w.contains("not read for per-layer")),
        "{w:?}"
    );
}

/// YaRN with `"factor": null`: HF takes `max_position_embeddings / original`.
#[test]
fn yarn_null_factor_is_the_context_ratio() {
    let cfg = parse_config(
        r#"{"hidden_size": 512, "num_attention_heads": 8, "max_position_embeddings": 16384,
            "rope_scaling": {"rope_type": "yarn", "factor": null, "original_max_position_embeddings": 4096}}"#,
    )
    .unwrap();
    match &cfg.params().scaling {
        RopeScaling::Yarn(y) => assert_eq!(y.factor, 4.0),
        other => panic!("{other:?}"),
    }
    let f = cfg.params().frequencies(None, Precision::Exact).unwrap();
    assert!((f.attention_factor - (0.1 * 4f64.ln() + 1.0)).abs() < 1e-15);
}

/// Llama 3 with `high_freq_factor <= low_freq_factor`: a warning (as in HF), no blended band,
/// and HF's rule: divide every pair whose wavelength exceeds `original / low_freq_factor`, keep
/// the rest.
#[test]
fn llama3_without_blended_band_follows_hf() {
    let cfg = parse_config(
        r#"{"hidden_size": 4096, "num_attention_heads": 32, "max_position_embeddings": 131072, "rope_theta": 500000,
            "rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 4, "high_freq_factor": 1,
                             "original_max_position_embeddings": 8192}}"#,
    )
    .unwrap();
    assert!(cfg
        .warnings
        .iter()
        .any(|w| w.key.ends_with("high_freq_factor")));
    for precision in [Precision::Exact, Precision::Hf(posenc::rope::HfCpu::Avx512)] {
        let f = cfg.params().frequencies(None, precision).unwrap();
        for (i, got) in f.inv_freq.iter().enumerate() {
            let unscaled = 500000f64.powf(-((2 * i) as f64) / 128.0);
            let wavelength = std::f64::consts::TAU / unscaled;
            let want = if wavelength > 8192.0 / 4.0 {
                unscaled / 8.0
            } else {
                unscaled
            };
            assert!(
                (got - want).abs() <= 1e-6 * want,
                "{precision:?} pair {i}: {got} vs {want}"
            );
        }
    }
}

/// A multimodal config (language model under `text_config`) with Gemma 4's layout: sliding layers
/// at head_dim 256 with default RoPE, full-attention layers at `global_head_dim` 512 with
/// proportional RoPE over a quarter of the pairs (exponent 2i / 512).
#[test]
fn text_config_and_gemma4_global_head_dim() {
    let cfg = parse_config(
        r#"{"model_type": "gemma4", "architectures": ["Gemma4ForConditionalGeneration"],
            "vision_config": {"hidden_size": 1152},
            "text_config": {"model_type": "gemma4_text", "hidden_size": 5376, "num_attention_heads": 32,
              "num_key_value_heads": 16, "head_dim": 256, "global_head_dim": 512, "max_position_embeddings": 262144,
              "rope_parameters": {
                "full_attention": {"rope_type": "proportional", "rope_theta": 1000000.0, "partial_rotary_factor": 0.25},
                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}}}"#,
    )
    .unwrap();
    assert_eq!(cfg.model_type.as_deref(), Some("gemma4_text"));
    assert_eq!(cfg.max_position_embeddings, 262144);
    let layer = |t: &str| {
        &cfg.layers
            .iter()
            .find(|l| l.layer_type == t)
            .unwrap()
            .params
    };
    let full = layer("full_attention");
    assert_eq!((full.head_dim, full.rotary_dim), (512, 512));
    let f = full.frequencies(None, Precision::Exact).unwrap();
    assert_eq!(f.pairs(), 256);
    for (i, v) in f.inv_freq.iter().enumerate() {
        let want = if i < 64 {
            1e6f64.powf(-((2 * i) as f64) / 512.0)
        } else {
            0.0
        };
        assert!((v - want).abs() <= 1e-15 * want, "pair {i}: {v} vs {want}");
    }
    let sliding = layer("sliding_attention");
    assert_eq!((sliding.head_dim, sliding.rotary_dim), (256, 256));
    assert_eq!(sliding.scaling, RopeScaling::Default);
}

/// A block's own `partial_rotary_factor` wins over the top-level one (HF's `setdefault`;
/// checked with transformers 5.25: Phi gives 16 frequencies here, head_dim 128 × 0.25).
#[test]
fn block_partial_rotary_factor_wins() {
    let cfg = parse_config(
        r#"{"model_type": "phi", "hidden_size": 512, "num_attention_heads": 4, "partial_rotary_factor": 0.5,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000, "partial_rotary_factor": 0.25}}"#,
    )
    .unwrap();
    assert_eq!(cfg.params().rotary_dim, 32);
    // Llama's rotary module ignores the factor for default RoPE, and posenc says so.
    let cfg = parse_config(
        r#"{"model_type": "llama", "hidden_size": 512, "num_attention_heads": 4,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000, "partial_rotary_factor": 0.25}}"#,
    )
    .unwrap();
    assert_eq!(cfg.params().rotary_dim, 128);
    assert!(cfg
        .warnings
        .iter()
        .any(|w| w.key.ends_with("partial_rotary_factor") && w.message.contains("ignored")));
}

/// A per-layer YaRN block with `truncate: false`: HF v5 reads `truncate` only from the top level
/// of `rope_parameters`, so it truncates; posenc does as HF and says so.
#[test]
fn per_layer_yarn_truncate_is_linted() {
    let cfg = parse_config(
        r#"{"hidden_size": 512, "num_attention_heads": 8, "max_position_embeddings": 32768,
            "rope_parameters": {"full_attention": {"rope_type": "yarn", "rope_theta": 1e6, "factor": 4,
                                                   "original_max_position_embeddings": 8192, "truncate": false},
                                "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}}}"#,
    )
    .unwrap();
    match &cfg.params().scaling {
        RopeScaling::Yarn(y) => assert!(y.truncate),
        other => panic!("{other:?}"),
    }
    assert!(cfg
        .warnings
        .iter()
        .any(|w| w.key.ends_with("full_attention.truncate")));
}

/// The sliding window of each parsed layer type, by name.
fn windows(cfg: &posenc::config::ModelConfig) -> Vec<(String, Option<usize>)> {
    cfg.layers
        .iter()
        .map(|l| (l.layer_type.clone(), l.sliding_window))
        .collect()
}

fn named(pairs: &[(&str, Option<usize>)]) -> Vec<(String, Option<usize>)> {
    pairs.iter().map(|(n, w)| (n.to_string(), *w)).collect()
}

/// Gemma 3 style: `layer_types` marks the sliding layers, `rope_local_base_freq` gives them their
/// own base; the window lands on the sliding entry only, also under `text_config`.
#[test]
fn sliding_window_follows_layer_types() {
    let text = r#"{"model_type": "gemma3_text", "head_dim": 256, "num_attention_heads": 8, "hidden_size": 2560,
        "max_position_embeddings": 131072, "num_hidden_layers": 6, "sliding_window": 1024,
        "layer_types": ["sliding_attention", "sliding_attention", "sliding_attention", "sliding_attention", "sliding_attention", "full_attention"],
        "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
        "rope_scaling": {"rope_type": "linear", "factor": 8.0}}"#;
    let cfg = parse_config(text).unwrap();
    assert_eq!(cfg.sliding_window, Some(1024));
    assert_eq!(
        windows(&cfg),
        named(&[("full_attention", None), ("sliding_attention", Some(1024))])
    );
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    let nested = format!(
        r#"{{"model_type": "gemma3", "vision_config": {{"hidden_size": 1152}}, "text_config": {text}}}"#
    );
    let cfg = parse_config(&nested).unwrap();
    assert_eq!(cfg.sliding_window, Some(1024));
    assert_eq!(
        windows(&cfg),
        named(&[("full_attention", None), ("sliding_attention", Some(1024))])
    );
    // A single RoPE setting with mixed layer types: one entry per attention type, same parameters.
    let cfg = parse_config(
        r#"{"head_dim": 64, "num_attention_heads": 4, "max_position_embeddings": 8192, "rope_theta": 10000.0,
            "sliding_window": 512, "layer_types": ["full_attention", "sliding_attention", "sliding_attention"]}"#,
    )
    .unwrap();
    assert_eq!(
        windows(&cfg),
        named(&[("full_attention", None), ("sliding_attention", Some(512))])
    );
    assert_eq!(cfg.layers[0].params, cfg.layers[1].params);
    // No sliding_attention entry in layer_types: the window is linted as unused.
    let cfg = parse_config(
        r#"{"head_dim": 64, "num_attention_heads": 4, "rope_theta": 10000.0, "sliding_window": 512,
            "layer_types": ["full_attention", "full_attention"]}"#,
    )
    .unwrap();
    assert_eq!(cfg.sliding_window, None);
    assert_eq!(windows(&cfg), named(&[("all", None)]));
    assert!(cfg
        .warnings
        .iter()
        .any(|w| w.key == "sliding_window" && w.message.contains("no sliding_attention")));
}

/// Mistral: every layer slides (the shared Mistral-7B-v0.1 fixture has a 4096 window).
#[test]
fn mistral_window_applies_to_every_layer() {
    let text = std::fs::read_to_string(common::fixtures().join("rope/mistral-7b-v0.1.config.json"))
        .unwrap();
    let cfg = parse_config(&text).unwrap();
    assert_eq!(cfg.sliding_window, Some(4096));
    assert_eq!(windows(&cfg), named(&[("all", Some(4096))]));
    // A window as large as the context is kept, with a lint that it limits nothing.
    let cfg = parse_config(
        r#"{"model_type": "mistral", "hidden_size": 4096, "num_attention_heads": 32,
            "max_position_embeddings": 32768, "rope_theta": 1000000.0, "sliding_window": 32768}"#,
    )
    .unwrap();
    assert_eq!(windows(&cfg), named(&[("all", Some(32768))]));
    assert!(cfg
        .warnings
        .iter()
        .any(|w| w.key == "sliding_window" && w.message.contains("limits nothing")));
    // null (Mistral v0.2+): no window, no lint.
    let mistral = |extra: &str| {
        parse_config(&format!(
            r#"{{"model_type": "mistral", "hidden_size": 4096, "num_attention_heads": 32, "rope_theta": 1e6, "max_position_embeddings": 32768{extra}}}"#
        ))
        .unwrap()
    };
    let cfg = mistral(r#", "sliding_window": null"#);
    assert_eq!(cfg.sliding_window, None);
    assert_eq!(windows(&cfg), named(&[("all", None)]));
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    // Absent: MistralConfig's default window, 4096 (checked with transformers 5.25).
    let cfg = mistral("");
    assert_eq!(cfg.sliding_window, Some(4096));
    assert_eq!(cfg.defaults["sliding_window"], "mistral default");
}

/// Qwen2: `use_sliding_window: false` turns the window off (HF sets it to None); when true, the
/// layers from `max_window_layers` on slide.
#[test]
fn qwen2_use_sliding_window_and_max_window_layers() {
    let qwen = |extra: &str| {
        parse_config(&format!(
            r#"{{"model_type": "qwen2", "hidden_size": 3584, "num_attention_heads": 28, "num_hidden_layers": 28,
                "max_position_embeddings": 32768, "rope_theta": 1000000.0{extra}}}"#
        ))
        .unwrap()
    };
    let cfg =
        qwen(r#", "sliding_window": 131072, "use_sliding_window": false, "max_window_layers": 28"#);
    assert_eq!(cfg.sliding_window, None);
    assert_eq!(windows(&cfg), named(&[("all", None)]));
    assert!(cfg
        .warnings
        .iter()
        .any(|w| w.key == "sliding_window" && w.message.contains("use_sliding_window is false")));
    let cfg =
        qwen(r#", "sliding_window": 4096, "use_sliding_window": true, "max_window_layers": 20"#);
    assert_eq!(cfg.sliding_window, Some(4096));
    assert_eq!(
        windows(&cfg),
        named(&[("full_attention", None), ("sliding_attention", Some(4096))])
    );
    let cfg =
        qwen(r#", "sliding_window": 4096, "use_sliding_window": true, "max_window_layers": 0"#);
    assert_eq!(windows(&cfg), named(&[("all", Some(4096))]));
    let cfg =
        qwen(r#", "sliding_window": 4096, "use_sliding_window": true, "max_window_layers": 28"#);
    assert_eq!(cfg.sliding_window, None);
    assert!(cfg
        .warnings
        .iter()
        .any(|w| w.key == "sliding_window" && w.message.contains("max_window_layers = 28")));
}

/// Gemma 2 without `layer_types`: HF alternates, the first layer sliding.
#[test]
fn gemma2_alternates_without_layer_types() {
    let cfg = parse_config(
        r#"{"model_type": "gemma2", "head_dim": 256, "hidden_size": 3584, "num_attention_heads": 16,
            "num_hidden_layers": 42, "max_position_embeddings": 8192, "rope_theta": 10000.0, "sliding_window": 4096}"#,
    )
    .unwrap();
    assert_eq!(
        windows(&cfg),
        named(&[("full_attention", None), ("sliding_attention", Some(4096))])
    );
    assert_eq!(cfg.params(), &cfg.layers[1].params);
}

/// A window posenc cannot place (unknown model type, no layer_types) is linted, not applied.
#[test]
fn unknown_model_type_window_is_linted() {
    let cfg = parse_config(
        r#"{"model_type": "somenet", "hidden_size": 512, "num_attention_heads": 8, "rope_theta": 10000.0, "sliding_window": 256}"#,
    )
    .unwrap();
    assert_eq!(cfg.sliding_window, None);
    assert_eq!(windows(&cfg), named(&[("all", None)]));
    assert!(cfg
        .warnings
        .iter()
        .any(|w| w.key == "sliding_window" && w.message.contains("layer_types")));
}

#[test]
fn bad_sliding_window_values_name_the_key() {
    for (value, key) in [
        (r#""sliding_window": 0"#, "sliding_window"),
        (r#""sliding_window": -4096"#, "sliding_window"),
        (r#""sliding_window": 1.5"#, "sliding_window"),
        (r#""sliding_window": "4096""#, "sliding_window"),
        (
            r#""sliding_window": 64, "use_sliding_window": "yes""#,
            "use_sliding_window",
        ),
        (
            r#""sliding_window": 64, "layer_types": "sliding_attention""#,
            "layer_types",
        ),
        (
            r#""sliding_window": 64, "layer_types": [1, 2]"#,
            "layer_types",
        ),
    ] {
        let text = format!(
            r#"{{"model_type": "mistral", "hidden_size": 512, "num_attention_heads": 8, "rope_theta": 10000.0, {value}}}"#
        );
        match parse_config(&text) {
            Err(Error::InvalidParameter { field, .. }) => assert_eq!(field, key, "{value}"),
            other => panic!("{value}: {other:?}"),
        }
    }
}

/// A denormal (positive) factor makes frequencies or the attention factor non-finite: an error
/// naming the parameter, in both precisions, never a NaN table.
#[test]
fn denormal_factors_are_errors_naming_the_parameter() {
    let yarn = parse_config(
        r#"{"model_type": "llama", "hidden_size": 512, "num_attention_heads": 8, "max_position_embeddings": 8192,
            "rope_scaling": {"rope_type": "yarn", "factor": 2.5e-308, "original_max_position_embeddings": 4096}}"#,
    )
    .unwrap();
    let longrope = parse_config(
        r#"{"model_type": "phi3", "hidden_size": 256, "num_attention_heads": 8, "max_position_embeddings": 8192,
            "rope_scaling": {"type": "longrope", "short_factor": [2.5e-308, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
                             "long_factor": [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]}}"#,
    )
    .unwrap();
    for (cfg, key) in [(&yarn, "factor"), (&longrope, "short_factor")] {
        for precision in [Precision::Exact, Precision::Hf(posenc::rope::HfCpu::Avx512)] {
            let err = cfg.params().frequencies(None, precision).unwrap_err();
            assert!(err.to_string().contains(key), "{precision}: {err}");
        }
    }
}

/// GPT-J: sizes under the GPT-2 names, an absolute `rotary_dim` (default 64), base 10000 fixed
/// in the model code (checked with transformers 5.25: `create_sinusoidal_positions(n_positions,
/// rotary_dim)`), interleaved pairs; rope_theta is not read.
#[test]
fn gptj_reads_its_own_names_and_fixed_base() {
    let cfg = parse_config(
        r#"{"model_type": "gptj", "n_embd": 256, "n_head": 4, "rotary_dim": 24, "n_positions": 512, "rope_theta": 500.0}"#,
    )
    .unwrap();
    let p = cfg.params();
    assert_eq!((p.head_dim, p.rotary_dim, p.base), (64, 24, 10_000.0));
    assert_eq!(cfg.max_position_embeddings, 512);
    assert_eq!(cfg.layout, posenc::rope::RopeLayout::Interleaved);
    assert!(cfg.warnings.iter().any(|w| w.key == "rope_theta"));
    let f = p.frequencies(None, Precision::Exact).unwrap();
    for (i, v) in f.inv_freq.iter().enumerate() {
        let want = 10_000f64.powf(-(2.0 * i as f64) / 24.0);
        assert!((v - want).abs() <= 1e-15 * want, "pair {i}");
    }
    let cfg = parse_config(r#"{"model_type": "gptj", "n_embd": 1024, "n_head": 4}"#).unwrap();
    assert_eq!(cfg.params().rotary_dim, 64);
    assert_eq!(cfg.defaults["rotary_dim"], "gptj default");
}
