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

fn fixtures() -> PathBuf {
    std::env::var_os("POSENC_FIXTURES")
        .map(Into::into)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
        })
}

#[test]
fn logits_json_follows_the_cli_contract_and_matches_hf() {
    let path = fixtures().join("model/smollm2-reference.json");
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).unwrap();
    let dir = temp_dir("logits");
    for case in cases.as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let prompt = dir.join(format!("{name}.txt"));
        std::fs::write(&prompt, case["text"].as_str().unwrap()).unwrap();
        let greedy = case["greedy_ids"].as_array().unwrap().len().to_string();
        let k = case["top_ids"].as_array().unwrap().len().to_string();
        let out = posenc(&[
            "model",
            "logits",
            "--prompt-file",
            prompt.to_str().unwrap(),
            "--top-k",
            &k,
            "--greedy",
            &greedy,
            "--json",
        ]);
        let v = json(&out);
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            ["greedy_ids", "greedy_text", "ids", "top_ids", "top_logits"],
            "{name}"
        );
        // No BOS is added: the ids are the fixture's, token for token.
        assert_eq!(v["ids"], case["ids"], "{name}");
        assert_eq!(v["top_ids"], case["top_ids"], "{name}");
        for (got, want) in v["top_logits"]
            .as_array()
            .unwrap()
            .iter()
            .zip(case["top_logits"].as_array().unwrap())
        {
            let (g, w) = (got.as_f64().unwrap(), want.as_f64().unwrap());
            assert!((g - w).abs() <= 1e-2, "{name}: logit {g} vs HF {w}");
        }
        assert_eq!(v["greedy_ids"], case["greedy_ids"], "{name}");
        assert_eq!(v["greedy_text"], case["greedy_text"], "{name}");
    }
    // The contract's bad inputs: a missing prompt file, an empty prompt, a --greedy over the cap.
    let out = posenc(&[
        "model",
        "logits",
        "--prompt-file",
        "/nonexistent/p.txt",
        "--json",
    ]);
    assert_usage_error(&out, "/nonexistent/p.txt");
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let out = posenc(&["model", "logits", "--prompt-file", empty.to_str().unwrap()]);
    assert_usage_error(&out, "empty");
    let out = posenc(&[
        "model",
        "logits",
        "--prompt-file",
        dir.join("capital.txt").to_str().unwrap(),
        "--greedy",
        "100000",
    ]);
    assert_usage_error(&out, "--greedy");
    let out = posenc(&[
        "model",
        "logits",
        "--prompt-file",
        empty.to_str().unwrap(),
        "--top-k",
        "x",
    ]);
    assert_usage_error(&out, "--top-k");
}

#[test]
fn fetch_does_nothing_when_the_model_is_present() {
    // scripts/test.sh fetched it; a second fetch only verifies the checksum.
    let out = posenc(&["model", "fetch", "--json"]);
    let v = json(&out);
    assert_eq!(v["downloaded"], false, "{v}");
    assert_eq!(
        v["sha256"],
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    );
    assert!(std::path::Path::new(v["path"].as_str().unwrap()).is_file());
    let out = posenc(&["model", "fetch"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("already present and valid"));
}

/// Runs `posenc ARGS` with stdout and stderr on a pseudo-terminal (util-linux `script`), so that
/// indicatif draws as it would for a user; `None` when `script` is not installed.
fn posenc_on_a_terminal(args: &[&str]) -> Option<(Option<i32>, String)> {
    let command = std::iter::once(env!("CARGO_BIN_EXE_posenc"))
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ");
    let out = Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .env("TERM", "xterm")
        .output()
        .ok()?;
    Some((
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

#[test]
fn progress_bar_on_a_terminal_and_none_with_json() {
    let dir = temp_dir("progress");
    let base = [
        "model",
        "passkey",
        "--lengths",
        "128,256",
        "--depths",
        "0,1",
        "--trials",
        "1",
        "--out",
        dir.to_str().unwrap(),
    ];
    let Some((code, shown)) = posenc_on_a_terminal(&base) else {
        eprintln!("skipped: util-linux `script` is not installed");
        return;
    };
    assert_eq!(code, Some(0), "{shown}");
    assert!(
        shown.contains("passkey ["),
        "no progress bar on a terminal: {shown:?}"
    );
    let mut quiet: Vec<&str> = base.to_vec();
    quiet.push("--json");
    let (code, shown) = posenc_on_a_terminal(&quiet).unwrap();
    assert_eq!(code, Some(0), "{shown}");
    assert!(
        !shown.contains("passkey ["),
        "a progress bar with --json: {shown:?}"
    );
    let v: serde_json::Value =
        serde_json::from_str(shown.trim()).expect("only JSON on the terminal");
    assert_eq!(v["lengths"], serde_json::json!([128, 256]));
}

/// A minimal GGUF file (version 3, no tensors) whose only metadata is `general.architecture`.
fn gguf_with_architecture(arch: &str) -> Vec<u8> {
    let mut f = b"GGUF".to_vec();
    f.extend(3u32.to_le_bytes());
    f.extend(0u64.to_le_bytes()); // tensors
    f.extend(1u64.to_le_bytes()); // metadata entries
    let key = b"general.architecture";
    f.extend((key.len() as u64).to_le_bytes());
    f.extend(key);
    f.extend(8u32.to_le_bytes()); // string
    f.extend((arch.len() as u64).to_le_bytes());
    f.extend(arch.as_bytes());
    f
}

#[test]
fn model_flag_loads_a_file_and_names_what_it_cannot_load() {
    // The bundled model, given by path, runs like the default.
    let (path, _) = posenc_model::fetch::fetch_model().expect("model fetched by scripts/test.sh");
    let dir = temp_dir("model-flag");
    let ids = dir.join("ids.json");
    let out = posenc(&[
        "model",
        "bench",
        "--model",
        path.to_str().unwrap(),
        "--tokens",
        "8",
        "--decode",
        "2",
        "--ids-out",
        ids.to_str().unwrap(),
        "--json",
    ]);
    let v = json(&out);
    assert_eq!(v["prefill_tokens"], 8);
    assert!(v["peak_rss_bytes"].as_u64().is_some_and(|b| b > 0));
    let written: Vec<u32> = serde_json::from_str(&std::fs::read_to_string(&ids).unwrap()).unwrap();
    assert_eq!(written.len(), 8);
    // A missing file and an unsupported architecture: exit 2 naming the flag and the cause.
    let out = posenc(&[
        "model",
        "check-decode",
        "--model",
        "/nonexistent/model.gguf",
    ]);
    assert_usage_error(&out, "--model /nonexistent/model.gguf");
    let gemma = dir.join("gemma.gguf");
    std::fs::write(&gemma, gguf_with_architecture("gemma3")).unwrap();
    let text = dir.join("text.txt");
    std::fs::write(&text, "A short text.").unwrap();
    for cmd in [
        "logits",
        "check-decode",
        "passkey",
        "perplexity",
        "attention-stats",
        "bench",
    ] {
        let mut args = vec!["model", cmd, "--model", gemma.to_str().unwrap()];
        if cmd == "logits" {
            args.extend(["--prompt-file", "/dev/null"]);
        }
        if cmd == "perplexity" {
            args.extend(["--text-file", text.to_str().unwrap()]);
        }
        let out = posenc(&args);
        assert_usage_error(&out, "\"gemma3\" is not supported");
    }
}
