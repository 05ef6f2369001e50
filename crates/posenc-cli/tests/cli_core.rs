//! The CLI contract for `rope` and `inspect`: JSON shape, parity with every fixture and every
//! `seq_len` in it, exit status 2 with a one-line message on bad input, never a panic.

mod common;
use common::{assert_usage_error, fixture, fixtures, json, posenc, read_json};

/// `posenc rope --json` against every fixture in `../shared/fixtures/rope` and every `seq_len`
/// in it, at every fixture position: `inv_freq` and `attention_factor` within 1e-6 (relative /
/// absolute), `hf` cos/sin within 1e-5 of `hf_cos`/`hf_sin`, `exact` cos/sin within 1e-6 of the
/// f64 value `cos(p·inv_freq)·attention_factor`.
#[test]
fn rope_json_matches_every_fixture_and_seq_len() {
    let dir = fixtures().join("rope");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".config.json").map(str::to_string))
        .collect();
    names.sort();
    assert!(names.len() >= 8, "{names:?}");
    let mut entries = 0;
    for name in &names {
        let cfg = fixture(&format!("{name}.config.json"));
        let expected = read_json(dir.join(format!("{name}.expected.json")));
        for entry in expected.as_array().unwrap() {
            let positions: Vec<String> = entry["positions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.to_string())
                .collect();
            let positions = positions.join(",");
            let seq_len = entry["seq_len"].as_u64().map(|s| s.to_string());
            for precision in ["hf", "exact"] {
                let mut args = vec![
                    "rope",
                    "--config",
                    &cfg,
                    "--positions",
                    &positions,
                    "--precision",
                    precision,
                    "--json",
                ];
                if let Some(s) = &seq_len {
                    args.extend(["--seq-len", s.as_str()]);
                }
                let out = json(&posenc(&args));
                let ctx = format!("{name} seq_len {seq_len:?} {precision}");
                for key in [
                    "rope_type",
                    "rotary_dim",
                    "head_dim",
                    "inv_freq",
                    "attention_factor",
                    "positions",
                    "cos",
                    "sin",
                    "warnings",
                ] {
                    assert!(out.get(key).is_some(), "{ctx}: missing {key}");
                }
                assert_eq!(out["rope_type"], entry["rope_type"], "{ctx}");
                assert_eq!(out["rotary_dim"], entry["rotary_dim"], "{ctx}");
                assert_eq!(out["positions"], entry["positions"], "{ctx}");
                let inv: Vec<f64> = out["inv_freq"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect();
                let want = entry["inv_freq"].as_array().unwrap();
                assert_eq!(inv.len(), want.len(), "{ctx}");
                for (g, w) in inv.iter().zip(want) {
                    let w = w.as_f64().unwrap();
                    assert!(
                        (g - w).abs() <= 1e-6 * w.abs(),
                        "{ctx}: inv_freq {g} vs {w}"
                    );
                }
                let af = out["attention_factor"].as_f64().unwrap();
                let want_af = entry["attention_factor"].as_f64().unwrap();
                assert!(
                    (af - want_af).abs() <= 1e-6,
                    "{ctx}: attention_factor {af} vs {want_af}"
                );
                for (key, hf_key, f64_trig) in [
                    ("cos", "hf_cos", f64::cos as fn(f64) -> f64),
                    ("sin", "hf_sin", f64::sin),
                ] {
                    for (r, row) in out[key].as_array().unwrap().iter().enumerate() {
                        let p = entry["positions"][r].as_f64().unwrap();
                        let row = row.as_array().unwrap();
                        assert_eq!(row.len(), inv.len(), "{ctx}: half-width rows");
                        for (i, g) in row.iter().enumerate() {
                            let g = g.as_f64().unwrap();
                            let (want, tol) = if precision == "hf" {
                                (entry[hf_key][r][i].as_f64().unwrap(), 1e-5)
                            } else {
                                (f64_trig(p * inv[i]) * af, 1e-6)
                            };
                            assert!(
                                (g - want).abs() <= tol,
                                "{ctx}: {key} position {p} pair {i}: {g} vs {want}"
                            );
                        }
                    }
                }
            }
            entries += 1;
        }
    }
    assert!(entries >= 18, "{entries} fixture entries");
}

#[test]
fn rope_exact_is_full_precision_and_defaults_to_eight_rows() {
    let out = json(&posenc(&[
        "rope",
        "--config",
        &fixture("smollm2-135m.config.json"),
        "--json",
    ]));
    assert_eq!(out["positions"].as_array().unwrap().len(), 8);
    assert_eq!(
        out["cos"].as_array().unwrap()[0].as_array().unwrap().len(),
        32
    );
    // Row 1, pair 0: cos(1 rad) stored as f32 and printed with every digit of that f32.
    let c = out["cos"][1][0].as_f64().unwrap();
    assert_eq!(c, 1f64.cos() as f32 as f64);
}

#[test]
fn inspect_reports_bands_and_bound() {
    let out = json(&posenc(&[
        "inspect",
        &fixture("llama-3.1-8b.config.json"),
        "--json",
    ]));
    let layer = &out["layers"][0];
    assert_eq!(layer["rope_type"], "llama3");
    assert_eq!(layer["pairs"].as_array().unwrap().len(), 64);
    assert_eq!(layer["original_context"], 8192);
    assert_eq!(layer["extended_context"], 131072);
    // Per pair, against both contexts: turns = context / wavelength.
    for r in layer["pairs"].as_array().unwrap() {
        let wl = r["wavelength"].as_f64().unwrap();
        let unscaled_wl = std::f64::consts::TAU / r["inv_freq_unscaled"].as_f64().unwrap();
        let turns_ext = r["turns_in_extended"].as_f64().unwrap();
        assert!((turns_ext - 131072.0 / wl).abs() <= 1e-9 * turns_ext.max(1.0));
        assert_eq!(r["incomplete_in_original"], unscaled_wl > 8192.0);
        assert_eq!(r["incomplete_in_extended"], wl > 131072.0);
    }
    assert!(!layer["pairs_incomplete_in_original"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(layer["bands"]["kind"], "llama3");
    // The bound is checked directly: it satisfies the criterion at every m < 131072 and a base
    // 2% below it (the grid step) does not.
    let bound = layer["base_bound"]["lower_bound_for_extended"]
        .as_f64()
        .unwrap();
    assert!(
        posenc::diagnostics::base_criterion(bound, 128, 131072, false)
            .unwrap()
            .holds
    );
    assert!(
        !posenc::diagnostics::base_criterion(bound / 1.02, 128, 131072, true)
            .unwrap()
            .holds
    );
    // The frequencies in use: first violation as a direct scan finds it.
    let inv: Vec<f64> = layer["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["inv_freq"].as_f64().unwrap())
        .collect();
    let first =
        (0..131072usize).find(|&m| inv.iter().map(|f| (m as f64 * f).cos()).sum::<f64>() < 0.0);
    assert_eq!(
        layer["base_bound"]["scaled_first_violation"]
            .as_u64()
            .map(|m| m as usize),
        first
    );
    // Qwen2.5's published YaRN recipe (factor 4, original = max_position_embeddings = 32768):
    // HF does not warn (its implicit factor is 1), so neither does posenc.
    assert!(out["warnings"].as_array().unwrap().is_empty(), "{out}");

    // Text report: the same content, readable.
    let text = posenc(&["inspect", &fixture("qwen2.5-7b-yarn.config.json")]);
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    for needle in [
        "rope_type yarn",
        "turns/target",
        "YaRN bands (beta_fast 32",
        "target context 131072 (from training context × factor)",
        "Men et al. 2024",
        "smallest base that satisfies it for 131072 tokens",
    ] {
        assert!(text.contains(needle), "`{needle}` missing from:\n{text}");
    }
}

/// `--original` / `--context` override the contexts; a context past the criterion's cap is
/// checked up to the cap and the bound reported as not computed, not an error.
#[test]
fn inspect_contexts_override_and_cap() {
    let cfg = fixture("longchat-linear-8.config.json");
    let out = json(&posenc(&[
        "inspect",
        &cfg,
        "--original",
        "2048",
        "--context",
        "16384",
        "--json",
    ]));
    let layer = &out["layers"][0];
    assert_eq!(layer["original_context"], 2048);
    assert_eq!(layer["original_context_from"], "override");
    assert_eq!(layer["extended_context"], 16384);
    let dir = std::env::temp_dir().join(format!("posenc-inspect-cap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let huge = dir.join("huge.json");
    std::fs::write(
        &huge,
        r#"{"hidden_size": 4096, "num_attention_heads": 32, "max_position_embeddings": 10485760,
            "rope_theta": 500000.0}"#,
    )
    .unwrap();
    let out = json(&posenc(&["inspect", huge.to_str().unwrap(), "--json"]));
    let bb = &out["layers"][0]["base_bound"];
    assert!(bb["lower_bound_for_extended"].is_null());
    assert!(
        bb["lower_bound_note"]
            .as_str()
            .unwrap()
            .contains("work budget"),
        "{bb}"
    );
    assert_eq!(bb["scaled_frequencies_hold_for_extended"], false);
    // Proportional RoPE (Gemma 4 global layers): frozen pairs count in the criterion (1 each),
    // and the base bound, which assumes every pair turns, is not claimed.
    let prop = dir.join("prop.json");
    std::fs::write(
        &prop,
        r#"{"model_type": "gemma4_text", "head_dim": 256, "global_head_dim": 512, "hidden_size": 2048, "num_attention_heads": 8,
            "max_position_embeddings": 8192,
            "rope_parameters": {"full_attention": {"rope_type": "proportional", "rope_theta": 10000.0, "partial_rotary_factor": 0.25},
                                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}}"#,
    )
    .unwrap();
    let out = json(&posenc(&["inspect", prop.to_str().unwrap(), "--json"]));
    let full = out["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["layer_type"] == "full_attention")
        .unwrap();
    let bb = &full["base_bound"];
    assert_eq!(full["rotary_dim"], 512);
    assert!(
        bb["lower_bound_note"]
            .as_str()
            .unwrap()
            .contains("proportional"),
        "{bb}"
    );
    let inv: Vec<f64> = full["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["inv_freq_unscaled"].as_f64().unwrap())
        .collect();
    assert_eq!(inv.iter().filter(|f| **f == 0.0).count(), 192);
    let first =
        (0..8192usize).find(|&m| inv.iter().map(|f| (m as f64 * f).cos()).sum::<f64>() < 0.0);
    assert_eq!(
        bb["unscaled_first_violation"].as_u64().map(|m| m as usize),
        first
    );
    std::fs::remove_dir_all(&dir).ok();
    assert_usage_error(&posenc(&["inspect", &cfg, "--context", "0"]), "--context");
    assert_usage_error(&posenc(&["inspect", "/nonexistent.json"]), "FILE");
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let dir = std::env::temp_dir().join(format!("posenc-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    };
    let good = fixture("smollm2-135m.config.json");
    assert_usage_error(
        &posenc(&["rope", "--config", "/nonexistent/config.json"]),
        "--config",
    );
    assert_usage_error(
        &posenc(&["rope", "--config", &good, "--positions", "1,x"]),
        "--positions",
    );
    assert_usage_error(
        &posenc(&["rope", "--config", &good, "--positions", "-1"]),
        "--positions",
    );
    assert_usage_error(
        &posenc(&["rope", "--config", &good, "--precision", "fp8"]),
        "precision",
    );
    assert_usage_error(
        &posenc(&["rope", "--config", &good, "--seq-len", "100000000"]),
        "--seq-len",
    );
    assert_usage_error(
        &posenc(&["rope", "--config", &write("bad.json", "{not json")]),
        "config.json",
    );
    assert_usage_error(
        &posenc(&[
            "rope",
            "--config",
            &write(
                "unk.json",
                r#"{"hidden_size": 64, "num_attention_heads": 1, "rope_scaling": {"rope_type": "xpos"}}"#,
            ),
        ]),
        "known types",
    );
    assert_usage_error(
        &posenc(&[
            "rope",
            "--config",
            &write(
                "odd.json",
                r#"{"hidden_size": 35, "num_attention_heads": 5}"#,
            ),
        ]),
        "rotary_dim",
    );
    assert_usage_error(
        &posenc(&[
            "rope",
            "--config",
            &write(
                "neg.json",
                r#"{"hidden_size": 64, "num_attention_heads": 2, "rope_scaling": {"type": "linear", "factor": -1}}"#,
            ),
        ]),
        "factor",
    );
    assert_usage_error(
        &posenc(&[
            "rope",
            "--config",
            &write(
                "zero.json",
                r#"{"hidden_size": 64, "num_attention_heads": 0}"#,
            ),
        ]),
        "num_attention_heads",
    );
    assert_usage_error(
        &posenc(&[
            "rope",
            "--config",
            &write(
                "short.json",
                r#"{"hidden_size": 64, "num_attention_heads": 2, "rope_scaling": {"type": "longrope", "short_factor": [1], "long_factor": [1]}}"#,
            ),
        ]),
        "short_factor",
    );
    assert_usage_error(
        &posenc(&[
            "inspect",
            &write(
                "float.json",
                r#"{"hidden_size": "wide", "num_attention_heads": 2}"#,
            ),
        ]),
        "hidden_size",
    );
    assert_usage_error(&posenc(&["rope"]), "--config");
    std::fs::remove_dir_all(&dir).ok();
}

/// The layer of an inspect report with this `layer_type`.
fn report_layer<'a>(out: &'a serde_json::Value, layer_type: &str) -> &'a serde_json::Value {
    out["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["layer_type"] == layer_type)
        .unwrap_or_else(|| panic!("no {layer_type} layer in {out}"))
}

/// Sliding layers: turns, incomplete pairs and the base bound are taken over min(window, context);
/// full-attention layers and configs without a window keep the plain contexts.
#[test]
fn inspect_bounds_sliding_layers_by_the_window() {
    let dir = std::env::temp_dir().join(format!("posenc-inspect-sliding-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    };
    // Gemma 3 style, small: 5 sliding layers per global one, 512-token window, 8192 context.
    let gemma = |window: &str| {
        format!(
            r#"{{"model_type": "gemma3_text", "head_dim": 64, "hidden_size": 256, "num_attention_heads": 4,
                "num_hidden_layers": 6, "max_position_embeddings": 8192, {window}
                "layer_types": ["sliding_attention", "sliding_attention", "sliding_attention", "sliding_attention", "sliding_attention", "full_attention"],
                "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0}}"#
        )
    };
    let with = json(&posenc(&[
        "inspect",
        &write("gemma.json", &gemma(r#""sliding_window": 512,"#)),
        "--json",
    ]));
    let without = json(&posenc(&[
        "inspect",
        &write("gemma-nowindow.json", &gemma(r#""sliding_window": null,"#)),
        "--json",
    ]));
    assert_eq!(with["sliding_window"], 512);
    assert!(without["sliding_window"].is_null());
    let sliding = report_layer(&with, "sliding_attention");
    let sliding_plain = report_layer(&without, "sliding_attention");
    assert_eq!(sliding["sliding_window"], 512);
    assert_eq!(sliding["original_context"], 8192);
    assert_eq!(sliding["extended_context"], 8192);
    assert_eq!(sliding["effective_original_context"], 512);
    assert_eq!(sliding["effective_extended_context"], 512);
    assert!(sliding_plain["sliding_window"].is_null());
    assert_eq!(sliding_plain["effective_extended_context"], 8192);
    let rows = sliding["pairs"].as_array().unwrap();
    let rows_plain = sliding_plain["pairs"].as_array().unwrap();
    assert_eq!(rows.len(), 32);
    let mut newly_incomplete = 0;
    for (r, rp) in rows.iter().zip(rows_plain) {
        // Same frequencies; turns scale with the context the layer sees.
        assert_eq!(r["wavelength"], rp["wavelength"]);
        let wl = r["wavelength"].as_f64().unwrap();
        let turns = r["turns_in_extended"].as_f64().unwrap();
        assert!((turns - 512.0 / wl).abs() <= 1e-9 * turns.max(1.0), "{r}");
        let ratio = turns / rp["turns_in_extended"].as_f64().unwrap();
        assert!((ratio - 512.0 / 8192.0).abs() < 1e-12, "{ratio}");
        assert_eq!(r["incomplete_in_extended"], wl > 512.0);
        if r["incomplete_in_original"] == true && rp["incomplete_in_original"] == false {
            newly_incomplete += 1;
        }
    }
    // Base 10000 over 64 dims: pairs with wavelengths between 512 and 8192 turn in the full
    // context but not inside the window.
    assert!(newly_incomplete > 0);
    let count = |l: &serde_json::Value, key: &str| l[key].as_array().unwrap().len();
    assert!(
        count(sliding, "pairs_incomplete_in_original")
            > count(sliding_plain, "pairs_incomplete_in_original")
    );
    // Base bound over the window: the criterion is checked up to 512, and the smallest base
    // satisfies it there while 2% less (the grid step) does not.
    let bb = &sliding["base_bound"];
    assert_eq!(bb["scaled_checked_up_to"], 512);
    assert_eq!(bb["unscaled_checked_up_to"], 512);
    let bound = bb["lower_bound_for_extended"].as_f64().unwrap();
    assert!(
        posenc::diagnostics::base_criterion(bound, 64, 512, false)
            .unwrap()
            .holds
    );
    assert!(
        !posenc::diagnostics::base_criterion(bound / 1.02, 64, 512, true)
            .unwrap()
            .holds
    );
    let bound_plain = sliding_plain["base_bound"]["lower_bound_for_extended"]
        .as_f64()
        .unwrap();
    assert!(bound < bound_plain, "{bound} vs {bound_plain}");
    // The full-attention layer is the same with or without the window.
    let full = report_layer(&with, "full_attention");
    assert!(full["sliding_window"].is_null());
    assert_eq!(full["effective_extended_context"], 8192);
    assert_eq!(full, report_layer(&without, "full_attention"));

    // Text form.
    let text = posenc(&["inspect", &dir.join("gemma.json").to_string_lossy()]);
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    for needle in [
        "sliding window 512: relative distances stay below 512, so this layer's effective context is 512",
        "inside the 512-token training window",
        "over the 8192-token training context",
    ] {
        assert!(text.contains(needle), "`{needle}` missing from:\n{text}");
    }

    // Mistral-7B-v0.1 (shared fixture): the one layer type slides; its window bounds everything.
    let out = json(&posenc(&[
        "inspect",
        &fixture("mistral-7b-v0.1.config.json"),
        "--json",
    ]));
    let all = report_layer(&out, "all");
    assert_eq!(all["sliding_window"], 4096);
    assert_eq!(all["original_context"], 32768);
    assert_eq!(all["effective_original_context"], 4096);
    assert_eq!(all["effective_extended_context"], 4096);
    assert_eq!(all["base_bound"]["scaled_checked_up_to"], 4096);
    for r in all["pairs"].as_array().unwrap() {
        let wl = r["wavelength"].as_f64().unwrap();
        let turns = r["turns_in_original"].as_f64().unwrap();
        assert!((turns - 4096.0 / wl).abs() <= 1e-9 * turns.max(1.0), "{r}");
    }
    // --context larger than the window: the target moves, the sliding layer's effective one not.
    let out = json(&posenc(&[
        "inspect",
        &fixture("mistral-7b-v0.1.config.json"),
        "--context",
        "65536",
        "--json",
    ]));
    assert_eq!(out["layers"][0]["extended_context"], 65536);
    assert_eq!(out["layers"][0]["effective_extended_context"], 4096);
    let text = posenc(&["inspect", &fixture("mistral-7b-v0.1.config.json")]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("sliding window 4096: relative distances stay below 4096, so this layer's effective context is 4096"),
        "{text}"
    );

    // No window: effective contexts are the plain ones, nothing about windows in the text.
    let out = json(&posenc(&[
        "inspect",
        &fixture("llama-3.1-8b.config.json"),
        "--json",
    ]));
    let layer = &out["layers"][0];
    assert!(out["sliding_window"].is_null());
    assert!(layer["sliding_window"].is_null());
    assert_eq!(
        layer["effective_original_context"],
        layer["original_context"]
    );
    assert_eq!(
        layer["effective_extended_context"],
        layer["extended_context"]
    );
    let text = posenc(&["inspect", &fixture("llama-3.1-8b.config.json")]);
    assert!(!String::from_utf8_lossy(&text.stdout).contains("sliding window"));

    // A window that is not a positive integer: exit 2 naming the key.
    assert_usage_error(
        &posenc(&[
            "inspect",
            &write(
                "zero.json",
                r#"{"model_type": "mistral", "hidden_size": 512, "num_attention_heads": 8, "sliding_window": 0}"#,
            ),
        ]),
        "sliding_window",
    );
    std::fs::remove_dir_all(&dir).ok();
}
