//! The CLI contract for `rope` and `inspect`: JSON shape, parity with the fixtures, exit status 2
//! with a one-line message on bad input, never a panic.

use std::path::PathBuf;
use std::process::{Command, Output};

fn posenc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_posenc"))
        .args(args)
        .output()
        .expect("run posenc")
}

fn fixtures() -> PathBuf {
    std::env::var_os("POSENC_FIXTURES")
        .map(Into::into)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
        })
}

fn fixture(name: &str) -> String {
    fixtures()
        .join("rope")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

/// Exit 2, one line on stderr that mentions `needle`, no panic text.
fn assert_usage_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{stderr}"
    );
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one line expected: {stderr}"
    );
    assert!(stderr.contains(needle), "expected `{needle}` in: {stderr}");
}

#[test]
fn rope_json_matches_hf_fixture_in_hf_mode() {
    let cfg = fixture("phi3-style-longrope.config.json");
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("phi3-style-longrope.expected.json")).unwrap(),
    )
    .unwrap();
    let entry = expected
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["seq_len"] == 8192)
        .unwrap();
    let positions: Vec<String> = entry["positions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.to_string())
        .collect();
    let out = json(&posenc(&[
        "rope",
        "--config",
        &cfg,
        "--seq-len",
        "8192",
        "--positions",
        &positions.join(","),
        "--precision",
        "hf",
        "--json",
    ]));
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
        assert!(out.get(key).is_some(), "missing {key}");
    }
    assert_eq!(out["rope_type"], "longrope");
    assert_eq!(out["rotary_dim"], 96);
    assert_eq!(out["head_dim"], 96);
    let af = out["attention_factor"].as_f64().unwrap();
    assert!((af - entry["attention_factor"].as_f64().unwrap()).abs() < 1e-12);
    for (key, want_key) in [("cos", "hf_cos"), ("sin", "hf_sin")] {
        for (row, want) in out[key]
            .as_array()
            .unwrap()
            .iter()
            .zip(entry[want_key].as_array().unwrap())
        {
            for (g, w) in row.as_array().unwrap().iter().zip(want.as_array().unwrap()) {
                assert!((g.as_f64().unwrap() - w.as_f64().unwrap()).abs() <= 1e-5);
            }
        }
    }
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
    assert!(!layer["pairs_incomplete_in_original"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(layer["bands"]["kind"], "llama3");
    assert!(
        layer["base_bound"]["lower_bound_for_extended"]
            .as_f64()
            .unwrap()
            > 1e6
    );
    // Text report works too.
    let text = posenc(&["inspect", &fixture("qwen2.5-7b-yarn.config.json")]);
    assert!(text.status.success());
    assert!(String::from_utf8_lossy(&text.stdout).contains("yarn"));
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
                r#"{"hidden_size": 64, "num_attention_heads": 2, "partial_rotary_factor": 0.3}"#,
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
            &write("missing.json", r#"{"num_attention_heads": 2}"#),
        ]),
        "hidden_size",
    );
    assert_usage_error(&posenc(&["rope"]), "--config");
    std::fs::remove_dir_all(&dir).ok();
}
