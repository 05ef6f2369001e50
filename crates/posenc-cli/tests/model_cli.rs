//! `posenc model ...` on the real model (fetched by scripts/test.sh first): exit codes, the files
//! written for the explorer, bad flags. Every run is small (tens to hundreds of tokens).

use std::path::PathBuf;
use std::process::{Command, Output};

fn posenc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_posenc"))
        .args(args)
        .output()
        .expect("run posenc")
}

/// A fresh directory under the system temp dir.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("posenc-model-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "stderr: {}", stderr(out));
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

/// Exit 2, one line on stderr that mentions `needle`, no panic text.
fn assert_usage_error(out: &Output, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "{needle:?} not in {err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Whether figures can be drawn here (a font is found); the JSON never depends on it.
fn fonts_available(out: &Output) -> bool {
    !stderr(out).contains("no TrueType font")
}

#[test]
fn check_decode_exits_0_and_reports_every_check() {
    // A configured scaling is what `scaling_dropped` drops; dynamic NTK is a no-op below 8192.
    let out = posenc(&[
        "model",
        "check-decode",
        "--max-tokens",
        "10",
        "--rope-scaling",
        "dynamic:factor=2",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["pass"], true);
    assert_eq!(v["scaling"], "dynamic x2");
    let checks = v["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 8);
    for c in checks {
        let within = c["within_tolerance"].as_bool().unwrap();
        match (c["kind"].as_str().unwrap(), c["name"].as_str().unwrap()) {
            ("correct", _) => assert!(within, "{c}"),
            ("bug", "scaling_dropped") => assert_eq!(c["no_op"], true, "{c}"),
            ("bug", _) => assert!(!within, "{c}"),
            _ => {}
        }
    }
}

#[test]
fn bad_model_flags_exit_2_naming_the_flag() {
    let out = posenc(&[
        "model",
        "check-decode",
        "--rope-scaling",
        "yarn:factor=4,factr=2",
    ]);
    assert_usage_error(&out, "--rope-scaling factr");
    let out = posenc(&["model", "check-decode", "--rope-scaling", "warp:factor=2"]);
    assert_usage_error(&out, "warp");
    let out = posenc(&[
        "model",
        "check-decode",
        "--max-tokens",
        "8",
        "--prefill",
        "8",
    ]);
    assert_usage_error(&out, "--prefill");
    let dir = temp_dir("bad");
    let cfg = dir.join("config.json");
    std::fs::write(
        &cfg,
        r#"{"rope_theta": 10000, "rope_scaling": {"rope_type": "linear", "factor": 2}}"#,
    )
    .unwrap();
    let out = posenc(&[
        "model",
        "passkey",
        "--rope-config",
        cfg.to_str().unwrap(),
        "--lengths",
        "128",
    ]);
    assert_usage_error(&out, "rope_theta");
    let out = posenc(&[
        "model",
        "passkey",
        "--lengths",
        "8",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_usage_error(&out, "lengths");
    let out = posenc(&["model", "passkey", "--depths", "1.5"]);
    assert_usage_error(&out, "depths");
    let out = posenc(&[
        "model",
        "perplexity",
        "--text-file",
        "/nonexistent/book.html",
    ]);
    assert_usage_error(&out, "/nonexistent/book.html");
    let out = posenc(&["model", "attention-stats", "--tokens", "8", "--skip", "8"]);
    assert_usage_error(&out, "--skip");
}

#[test]
fn passkey_writes_what_the_explorer_reads() {
    let dir = temp_dir("passkey");
    let out = posenc(&[
        "model",
        "passkey",
        "--lengths",
        "128,256",
        "--depths",
        "0,1",
        "--trials",
        "1",
        "--seed",
        "3",
        "--out",
        dir.to_str().unwrap(),
        "--json",
    ]);
    let printed = json(&out);
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("passkey.json")).unwrap()).unwrap();
    assert_eq!(printed, file, "--json prints the file's content");
    // The explorer labels the rows of `accuracy` with `lengths` and its columns with `depths`.
    assert_eq!(file["lengths"], serde_json::json!([128, 256]));
    assert_eq!(file["depths"], serde_json::json!([0.0, 1.0]));
    let acc = file["accuracy"].as_array().unwrap();
    assert_eq!(acc.len(), 2);
    for row in acc {
        for v in row.as_array().unwrap() {
            let v = v.as_f64().unwrap();
            assert!(v == 0.0 || v == 1.0);
        }
    }
    for cell in file["cells"].as_array().unwrap() {
        for t in cell["trials"].as_array().unwrap() {
            let correct = t["correct"].as_bool().unwrap();
            assert_eq!(correct, t["answer"] == t["passkey"], "{t}");
            assert!(t["prompt_tokens"].as_u64().unwrap() <= cell["length"].as_u64().unwrap() - 10);
        }
    }
    if fonts_available(&out) {
        let svg = std::fs::read_to_string(dir.join("passkey.svg")).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("needle depth"));
        let png = std::fs::read(dir.join("passkey.png")).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn perplexity_and_attention_stats_write_their_files() {
    let dir = temp_dir("ppl");
    let text = dir.join("text.html");
    let body = "<p>The borrow checker makes sure that references are valid. &amp; Each value has \
                one owner; when the owner goes out of scope the value is dropped.</p>\n"
        .repeat(20);
    std::fs::write(
        &text,
        format!("<!DOCTYPE html><html><body>{body}</body></html>"),
    )
    .unwrap();
    let out = posenc(&[
        "model",
        "perplexity",
        "--text-file",
        text.to_str().unwrap(),
        "--lengths",
        "64,128",
        "--tail",
        "16",
        "--scaling",
        "none",
        "--scaling",
        "linear:factor=2",
        "--out",
        dir.to_str().unwrap(),
        "--json",
    ]);
    let v = json(&out);
    assert_eq!(v["scalings"], serde_json::json!(["none", "linear x2"]));
    assert!(v["source"].as_str().unwrap().contains("HTML stripped"));
    for table in ["ppl", "tail_ppl"] {
        for row in v[table].as_array().unwrap() {
            for x in row.as_array().unwrap() {
                let x = x.as_f64().unwrap();
                assert!(x.is_finite() && x >= 1.0, "{table}: {x}");
            }
        }
    }
    // Repeated text: with more context the model predicts it better.
    assert!(v["ppl"][0][1].as_f64().unwrap() < v["ppl"][0][0].as_f64().unwrap());
    assert!(dir.join("perplexity.json").is_file());
    if fonts_available(&out) {
        assert!(dir.join("perplexity.svg").is_file() && dir.join("perplexity.png").is_file());
    }

    let out = posenc(&[
        "model",
        "attention-stats",
        "--text-file",
        text.to_str().unwrap(),
        "--tokens",
        "96",
        "--skip",
        "8",
        "--out",
        dir.to_str().unwrap(),
        "--json",
    ]);
    let v = json(&out);
    assert_eq!(v["layers"].as_array().unwrap().len(), 30);
    assert_eq!(v["heads"].as_array().unwrap().len(), 9);
    let max_entropy = (96f64).ln();
    for row in v["entropy"].as_array().unwrap() {
        for e in row.as_array().unwrap() {
            let e = e.as_f64().unwrap();
            assert!((0.0..=max_entropy + 1e-9).contains(&e), "{e}");
        }
    }
    for row in v["distance_mass_by_layer"].as_array().unwrap() {
        let s: f64 = row
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .sum();
        assert!((s - 1.0).abs() < 1e-3, "distance mass sums to {s}");
    }
    assert_eq!(
        v["distance_bins"].as_array().unwrap().len(),
        v["distance_mass_by_layer"][0].as_array().unwrap().len()
    );
    assert!(dir.join("attention-stats.json").is_file());
    let _ = std::fs::remove_dir_all(&dir);
}
