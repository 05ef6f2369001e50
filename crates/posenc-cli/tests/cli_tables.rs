//! `posenc alibi`, `t5-buckets` and `sinusoidal`: JSON contract and parity with the fixtures.

mod common;
use common::{fixtures, json, posenc, read_json as read};

#[test]
fn alibi_slopes_match_bloom_fixture() {
    let fixture = read(fixtures().join("alibi/slopes.json"));
    for (heads, want) in fixture.as_object().unwrap() {
        let out = json(&posenc(&[
            "alibi",
            "--heads",
            heads,
            "--precision",
            "hf",
            "--json",
        ]));
        let got = out["slopes"].as_array().unwrap();
        assert_eq!(got.len(), want.as_array().unwrap().len());
        for (g, w) in got.iter().zip(want.as_array().unwrap()) {
            let (g, w) = (g.as_f64().unwrap(), w.as_f64().unwrap());
            assert!((g - w).abs() <= 1e-7 * w.abs(), "{heads} heads: {g} vs {w}");
        }
    }
}

#[test]
fn alibi_bias_is_minus_slope_times_distance() {
    let out = json(&posenc(&["alibi", "--heads", "6", "--len", "5", "--json"]));
    let slopes: Vec<f64> = out["slopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_f64().unwrap())
        .collect();
    for (h, head) in out["bias"].as_array().unwrap().iter().enumerate() {
        for (i, row) in head.as_array().unwrap().iter().enumerate() {
            for (j, v) in row.as_array().unwrap().iter().enumerate() {
                let want = if j <= i {
                    -(slopes[h] * (i - j) as f64) as f32
                } else {
                    0.0
                };
                assert_eq!(v.as_f64().unwrap() as f32, want);
            }
        }
    }
    let sym = json(&posenc(&[
        "alibi",
        "--heads",
        "2",
        "--len",
        "3",
        "--symmetric",
        "--json",
    ]));
    // Symmetric (encoder) form: keys after the query are penalised by distance too.
    let m = sym["slopes"][0].as_f64().unwrap();
    assert_eq!(
        sym["bias"][0][0][2].as_f64().unwrap(),
        -(m * 2.0) as f32 as f64
    );
    assert_eq!(
        sym["bias"][0][2][0].as_f64().unwrap(),
        -(m * 2.0) as f32 as f64
    );
}

#[test]
fn t5_buckets_match_fixture() {
    let fixture = read(fixtures().join("t5/buckets.json"));
    for case in fixture.as_array().unwrap() {
        let range = case["relative_positions"].as_array().unwrap();
        let range = format!("{}:{}", range[0], range[1]);
        let nb = case["num_buckets"].to_string();
        let md = case["max_distance"].to_string();
        let mut args = vec![
            "t5-buckets",
            "--num-buckets",
            &nb,
            "--max-distance",
            &md,
            "--range",
            &range,
            "--json",
        ];
        if case["bidirectional"] == false {
            args.push("--unidirectional");
        }
        let out = json(&posenc(&args));
        assert_eq!(
            out["buckets"], case["buckets"],
            "{nb} {md} {}",
            case["bidirectional"]
        );
        assert_eq!(
            out["relative_positions"].as_array().unwrap().len(),
            case["buckets"].as_array().unwrap().len()
        );
    }
}

#[test]
fn sinusoidal_matches_closed_form() {
    let out = json(&posenc(&[
        "sinusoidal",
        "--len",
        "6",
        "--dim",
        "8",
        "--json",
    ]));
    for (p, row) in out["table"].as_array().unwrap().iter().enumerate() {
        for (c, v) in row.as_array().unwrap().iter().enumerate() {
            let freq = 10000f64.powf(-((c / 2 * 2) as f64) / 8.0);
            let want = if c % 2 == 0 {
                (p as f64 * freq).sin()
            } else {
                (p as f64 * freq).cos()
            };
            assert!((v.as_f64().unwrap() - want).abs() < 1e-7);
        }
    }
}

/// `--len 0`: an empty bias per head, in JSON and in text (this used to panic).
#[test]
fn alibi_with_zero_length_prints_empty_matrices() {
    let out = json(&posenc(&["alibi", "--heads", "3", "--len", "0", "--json"]));
    assert_eq!(out["bias"], serde_json::json!([[], [], []]));
    let text = posenc(&["alibi", "--heads", "3", "--len", "0"]);
    assert!(
        text.status.success(),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
}

#[test]
fn table_commands_reject_bad_input_with_exit_2() {
    for args in [
        vec!["alibi", "--heads", "0"],
        vec!["alibi", "--heads", "8", "--precision", "fp16"],
        vec!["alibi", "--heads", "1024", "--len", "100000"],
        vec![
            "t5-buckets",
            "--num-buckets",
            "32",
            "--max-distance",
            "128",
            "--range",
            "5:-5",
        ],
        vec![
            "t5-buckets",
            "--num-buckets",
            "0",
            "--max-distance",
            "128",
            "--range",
            "0:1",
        ],
        vec![
            "t5-buckets",
            "--num-buckets",
            "32",
            "--max-distance",
            "128",
            "--range",
            "-9223372036854775808:9223372036854775807",
        ],
        vec!["sinusoidal", "--len", "4", "--dim", "7"],
        vec![
            "sinusoidal",
            "--len",
            "4",
            "--dim",
            "8",
            "--layout",
            "spiral",
        ],
        vec!["sinusoidal", "--len", "100000000", "--dim", "512"],
        vec!["sinusoidal", "--len", "4", "--dim", "8", "--base", "NaN"],
    ] {
        let out = posenc(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
