//! `posenc learn`, `explain` and `advise` as a user runs them: exit codes 0/1/2, the interactive
//! course through piped stdin, walkthrough numbers against the library, advisor scenarios.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value as J;

mod common;
use common::posenc;

fn posenc_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_posenc"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn posenc");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn json(out: &Output) -> J {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {} stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn assert_usage_error(out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Exercise 3's right answer from its data: clip(j - i, -k, k).
fn ex3_answer(data: &J, flip: bool) -> String {
    let len = data["len"].as_i64().unwrap();
    let k = data["k"].as_i64().unwrap();
    (0..len)
        .map(|i| {
            (0..len)
                .map(|j| {
                    let r = if flip { i - j } else { j - i };
                    r.clamp(-k, k).to_string()
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect::<Vec<_>>()
        .join(";")
}

#[test]
fn list_and_instance() {
    let out = posenc(&["learn", "list", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["exercises"].as_array().unwrap().len(), 10);
    let text = posenc(&["learn", "list"]);
    assert_eq!(String::from_utf8_lossy(&text.stdout).lines().count(), 10);
    let inst = json(&posenc(&["learn", "3", "--seed", "4", "--json"]));
    assert_eq!(inst["exercise"], 3);
    assert_eq!(inst["parts"].as_array().unwrap().len(), 3);
    let text = posenc(&["learn", "3", "--seed", "4"]);
    let s = String::from_utf8_lossy(&text.stdout);
    assert!(
        s.contains("(a)") && s.contains("(b)") && s.contains("(c)"),
        "{s}"
    );
}

#[test]
fn check_exit_codes() {
    let data = json(&posenc(&["learn", "3", "--seed", "4", "--json"]))["data"].clone();
    let right = posenc(&[
        "learn",
        "3",
        "--seed",
        "4",
        "--part",
        "b",
        "--answer",
        &ex3_answer(&data, false),
    ]);
    assert_eq!(
        right.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&right.stdout)
    );
    let wrong = posenc(&[
        "learn",
        "3",
        "--seed",
        "4",
        "--part",
        "b",
        "--answer",
        &ex3_answer(&data, true),
        "--json",
    ]);
    assert_eq!(wrong.status.code(), Some(1));
    let v = json(&wrong);
    assert_eq!(v["correct"], false);
    assert_eq!(v["mistake"], "sign_flipped");
    assert!(v["hint"].as_str().unwrap().contains("key-query"));
    // Answers starting with a minus sign are answers, not options.
    let neg = posenc(&[
        "learn", "6", "--seed", "1", "--part", "b", "--answer", "-1,-2",
    ]);
    assert_eq!(neg.status.code(), Some(1));
    // An unreadable answer names the flag; a right one says "Right" once.
    let bad = posenc(&[
        "learn", "3", "--seed", "4", "--part", "b", "--answer", "1,2",
    ]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid --answer:"));
    let rights: Vec<String> = ["A", "B", "C", "D"]
        .iter()
        .map(|letter| {
            posenc(&[
                "learn", "7", "--seed", "2", "--part", "c", "--answer", letter,
            ])
        })
        .filter(|out| out.status.code() == Some(0))
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .collect();
    assert_eq!(rights.len(), 1, "exactly one option is right");
    assert!(
        rights[0].starts_with("Right") && !rights[0].contains("Right. Right"),
        "{}",
        rights[0]
    );
    // Malformed answers and arguments: exit 2, one line.
    for args in [
        vec![
            "learn", "3", "--seed", "4", "--part", "b", "--answer", "1,2",
        ],
        vec!["learn", "3", "--seed", "4", "--part", "a", "--answer", "Q"],
        vec!["learn", "3", "--seed", "4", "--part", "d", "--answer", "A"],
        vec!["learn", "3", "--seed", "4", "--part", "b"],
        vec!["learn", "3", "--answer", "A"],
        vec!["learn", "11"],
        vec!["learn", "three"],
        vec!["learn", "--json"],
        vec!["explain", "nothing"],
        vec![
            "advise",
            "--train-len",
            "0",
            "--target-len",
            "10",
            "--arch",
            "decoder",
        ],
        vec![
            "advise",
            "--train-len",
            "10",
            "--target-len",
            "10",
            "--arch",
            "mixer",
        ],
    ] {
        assert_usage_error(&posenc(&args));
    }
}

#[test]
fn interactive_course_through_piped_stdin() {
    let seed = "7";
    let inst = json(&posenc(&["learn", "1", "--seed", seed, "--json"]));
    // Part (a): the option describing the token embeddings (sinusoidal enters the hidden states).
    let a = inst["parts"][0]["choices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["text"].as_str().unwrap().contains("token embeddings"))
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let p = inst["data"]["position"].as_f64().unwrap();
    let dim = inst["data"]["dim"].as_u64().unwrap() as usize;
    let row: Vec<String> = (0..dim / 2)
        .flat_map(|i| {
            let w = 10_000f64.powf(-(2.0 * i as f64) / dim as f64);
            [(p * w).sin(), (p * w).cos()]
        })
        .map(|x| format!("{x:.5}"))
        .collect();
    let degrees: Vec<String> = (0..dim / 2)
        .flat_map(|i| {
            let w = 10_000f64.powf(-(2.0 * i as f64) / dim as f64) * std::f64::consts::PI / 180.0;
            [(p * w).sin(), (p * w).cos()]
        })
        .map(|x| format!("{x:.5}"))
        .collect();
    // a right; b: unreadable, then degrees (wrong), then right; c: quit.
    let input = format!(
        "{a}\nhello\n{}\n{}\nquit\n",
        degrees.join(","),
        row.join(",")
    );
    let out = posenc_stdin(&["learn", "--seed", seed], &input);
    let s = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{s}");
    assert!(s.contains("Could not read that"), "{s}");
    // The hint names the mistake in words; internal mistake ids are for programs (--json).
    assert!(s.contains("Not right yet. You used degrees"), "{s}");
    assert!(!s.contains("[degrees]") && !s.contains("[entry_"), "{s}");
    assert!(
        s.contains("Score: 2/3 parts right (1 at the first try), stopped early."),
        "{s}"
    );

    // Skipping everything runs through all 30 parts and shows accepted answers.
    let out = posenc_stdin(&["learn", "--seed", "3"], &"skip\n".repeat(30));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("Score: 0/30 parts right (0 at the first try)."),
        "{s}"
    );
    assert_eq!(s.matches("Skipped. An accepted answer").count(), 30);

    // End of input ends the course cleanly.
    let out = posenc_stdin(&["learn", "--seed", "3"], "");
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("stopped early"));

    // Three wrong answers reveal the answer and the course goes on.
    let out = posenc_stdin(&["learn", "--seed", "3"], "Z\nA\nB\nC\nD\nquit\n");
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("Right.") || s.contains("The answer:"), "{s}");
}

fn section<'a>(w: &'a J, title_part: &str) -> &'a J {
    w["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["title"].as_str().unwrap().contains(title_part))
        .unwrap_or_else(|| panic!("no section `{title_part}`"))
}

fn value(sec: &J, name_part: &str) -> f64 {
    sec["values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"].as_str().unwrap().contains(name_part))
        .unwrap_or_else(|| panic!("no value `{name_part}`"))["value"]
        .as_f64()
        .unwrap()
}

fn matrix(sec: &J, name_part: &str) -> Vec<Vec<f64>> {
    sec["matrices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"].as_str().unwrap().contains(name_part))
        .unwrap_or_else(|| panic!("no matrix `{name_part}`"))["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect()
}

fn explain(topic: &str) -> J {
    let out = posenc(&["explain", topic, "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    json(&out)
}

#[test]
fn every_topic_renders() {
    for topic in [
        "why-position",
        "sinusoidal",
        "learned",
        "relative",
        "rope",
        "alibi",
        "scaling",
        "decode-positions",
        "mistakes",
    ] {
        let out = posenc(&["explain", topic]);
        assert_eq!(out.status.code(), Some(0), "{topic}");
        assert!(out.stdout.len() > 200, "{topic}");
    }
}

#[test]
fn walkthrough_numbers_match_the_library() {
    use posenc::sinusoidal::{table, SinusoidalLayout};
    let w = explain("sinusoidal");
    let t = matrix(section(&w, "4 x 8"), "PE (interleaved)");
    let lib = table(4, 8, 10_000.0, SinusoidalLayout::Interleaved).unwrap();
    // (JSON text round trip: equal up to the last f64 bit of the parser.)
    assert_eq!(t.concat().len(), lib.len());
    for (a, b) in t.concat().iter().zip(&lib) {
        assert!((a - f64::from(*b)).abs() < 1e-12);
    }
    // And an independent formula.
    for (p, row) in t.iter().enumerate() {
        for i in 0..4 {
            let a = p as f64 * 10_000f64.powf(-(2.0 * i as f64) / 8.0);
            assert!((row[2 * i] - a.sin()).abs() < 1e-6 && (row[2 * i + 1] - a.cos()).abs() < 1e-6);
        }
    }

    let w = explain("rope");
    let rot = section(&w, "Rotating");
    assert!((value(rot, "|x|") - value(rot, "|R(3)x|")).abs() < 1e-5);
    let id = section(&w, "identity");
    assert!((value(id, "<R(5)q") - value(id, "<R(1005)q")).abs() < 1e-4);

    let w = explain("alibi");
    let slopes = matrix(section(&w, "Slopes for 8"), "slope m_h")[0].clone();
    let lib = posenc::alibi::slopes(8).unwrap();
    assert_eq!(slopes, lib);
    for (h, s) in slopes.iter().enumerate() {
        assert_eq!(*s, 2f64.powi(-(h as i32 + 1)));
    }

    let w = explain("scaling");
    let inv = matrix(section(&w, "Inverse frequencies"), "inv_freq");
    let base: Vec<f64> = (0..8)
        .map(|i| 10_000f64.powf(-(2.0 * i as f64) / 16.0))
        .collect();
    for (a, b) in inv[0].iter().zip(&base) {
        assert!((a - b).abs() <= 1e-15 * b.max(1.0));
    }
    for (a, b) in inv[1].iter().zip(&base) {
        assert!((a - b / 4.0).abs() <= 1e-15, "PI divides by the factor");
    }
    let sec = section(&w, "Inverse frequencies");
    assert!((value(sec, "attention factor, YaRN") - (0.1 * 4f64.ln() + 1.0)).abs() < 1e-12);

    let w = explain("decode-positions");
    let sec = section(&w, "lengths 3 and 5");
    assert_eq!(
        matrix(sec, "prefill")[0],
        vec![-1.0, -1.0, 0.0, 1.0, 2.0],
        "cumsum(mask) - 1 with padding"
    );
    assert_eq!(
        matrix(sec, "decode position ids"),
        vec![vec![3.0, 5.0], vec![4.0, 6.0], vec![5.0, 7.0]]
    );
    assert!(value(sec, "padded row 0") < 1e-6);

    let w = explain("why-position");
    assert!(value(section(&w, "No position"), "max") < 1e-6);
    assert!(value(section(&w, "With RoPE"), "max") > 1e-3);
    assert!(value(section(&w, "causal mask"), "max") > 1e-3);
}

#[test]
fn mistakes_show_wrong_and_right() {
    let w = explain("mistakes");
    let secs = w["sections"].as_array().unwrap();
    assert_eq!(secs.len(), 10);
    for (i, s) in secs.iter().enumerate() {
        let diff = value(s, "max |wrong - right|");
        assert!(
            diff > 1e-6,
            "mistake {}: wrong equals right ({diff})",
            i + 1
        );
    }
    assert!((value(&secs[0], "sum of the last row") - 1.0).abs() > 1e-3);
    assert!(value(&secs[2], "right decode - full forward") < 1e-5);
    assert!(value(&secs[4], "cumsum positions - unpadded") < 1e-6);
    assert!(value(&secs[4], "RoPE") < 1e-5, "RoPE is shift-invariant");
    let factor = value(&secs[6], "attention factor");
    assert!((value(&secs[6], "ratio") - factor * factor).abs() < 1e-4);
}

#[test]
fn advise_scenarios() {
    // A decoder extended 4x with a KV cache and retrieval.
    let a = json(&posenc(&[
        "advise",
        "--train-len",
        "2048",
        "--target-len",
        "8192",
        "--arch",
        "decoder",
        "--kv-cache",
        "--retrieval",
        "--json",
    ]));
    assert_eq!(a["scheme"], "rope");
    assert_eq!(a["scaling"]["method"], "yarn");
    assert_eq!(a["scaling"]["factor"], 4.0);
    assert_eq!(a["scaling"]["original_max_position_embeddings"], 2048);
    assert!(
        (a["scaling"]["attention_factor"].as_f64().unwrap() - (0.1 * 4f64.ln() + 1.0)).abs()
            < 1e-12
    );
    let cmds: Vec<&str> = a["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["command"].as_str().unwrap())
        .collect();
    // Checks of the user's own stack: through their server, never posenc's bundled model.
    assert!(cmds.iter().any(|c| c.contains("decode-consistency")));
    assert!(cmds.iter().any(|c| c.contains("passkey")));
    assert!(cmds.iter().any(|c| c.starts_with("posenc inspect")));
    assert!(
        !cmds.iter().any(|c| c.starts_with("posenc model")),
        "{cmds:?}"
    );
    let topics: Vec<&str> = a["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["topic"].as_str().unwrap())
        .collect();
    for t in ["extrapolation", "cache", "retrieval", "cost", "base"] {
        assert!(topics.contains(&t), "{t}");
    }
    let bound = posenc::diagnostics::men_base_lower_bound(128, 8192, 0.02).unwrap();
    let facts = a["facts"].as_array().unwrap();
    let fact = |name: &str| {
        facts
            .iter()
            .find(|f| f["name"].as_str().unwrap().contains(name))
            .unwrap()["value"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(fact("Men et al."), bound);
    assert_eq!(fact("YaRN factor"), 4.0);

    // An encoder inside its training length: no scaling, no cache check.
    let a = json(&posenc(&[
        "advise",
        "--train-len",
        "4096",
        "--target-len",
        "2048",
        "--arch",
        "encoder",
        "--json",
    ]));
    assert!(a["scaling"].is_null());
    assert!(!a.to_string().contains("decode-consistency"));
    assert!(a["summary"].as_str().unwrap().contains("no scaling"));

    // Text output.
    let out = posenc(&[
        "advise",
        "--train-len",
        "1024",
        "--target-len",
        "4096",
        "--arch",
        "decoder",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("Recommendation: RoPE") && s.contains("rope_scaling"),
        "{s}"
    );
    // The assumptions are stated, yes/no answers are words, and --head-dim changes the bound.
    assert!(
        s.contains("head size 128 (--head-dim)") && s.contains("KV cache: no"),
        "{s}"
    );
    assert!(s.contains(": yes") || s.contains(": no"), "{s}");
    assert!(!s.contains("(1 = yes)"), "{s}");
    let a64 = json(&posenc(&[
        "advise",
        "--train-len",
        "1024",
        "--target-len",
        "4096",
        "--arch",
        "decoder",
        "--head-dim",
        "64",
        "--json",
    ]));
    assert_eq!(a64["request"]["head_dim"], 64);
    let bound64 = posenc::diagnostics::men_base_lower_bound(64, 4096, 0.02).unwrap();
    assert!(a64["facts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["value"].as_f64() == Some(bound64)));
    assert_usage_error(&posenc(&[
        "advise",
        "--train-len",
        "1024",
        "--target-len",
        "4096",
        "--arch",
        "decoder",
        "--head-dim",
        "63",
    ]));
}
