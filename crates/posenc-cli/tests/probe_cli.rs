//! `posenc probe` against real servers started (and stopped) here on free loopback ports:
//! `posenc model serve` clean and with each injected bug (each must be flagged by its own check
//! and by no other), and llama.cpp's server (llama-cpp-python from scripts/install-llama-cpp.sh,
//! a cached environment outside the checkout; when it cannot be installed the test says so and
//! returns). Every process has a hard deadline; the model is SmolLM2-135M from `posenc model
//! fetch` (scripts/test.sh fetches it first).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest a server may take to load the model and listen.
const START_TIMEOUT: Duration = Duration::from_secs(240);
/// Longest one probe run may take (a run here takes 30–60 s on 2 busy cores).
const PROBE_TIMEOUT: Duration = Duration::from_secs(600);
/// The checks that run on every server.
const CHECKS: &str = "decode-consistency,batch-invariance,prefix-cache";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn model_path() -> PathBuf {
    let out = Command::new(env!("CARGO_BIN_EXE_posenc"))
        .args(["model", "fetch", "--json"])
        .output()
        .expect("posenc model fetch");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    PathBuf::from(v["path"].as_str().unwrap())
}

/// A server process, interrupted (then killed) when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `posenc model serve --port 0 ARGS`, once it prints its address.
fn start_posenc(args: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_posenc"))
        .args(["model", "serve", "--port", "0"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start posenc model serve");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stderr).lines();
        if let Some(Ok(first)) = lines.next() {
            let _ = tx.send(first);
        }
        // Keep draining so the server never blocks on a full pipe.
        for _ in lines {}
    });
    let mut server = Server {
        child,
        url: String::new(),
    };
    let first = rx
        .recv_timeout(START_TIMEOUT)
        .expect("posenc model serve printed no address in time");
    // "posenc model server listening on http://127.0.0.1:PORT/ (...)"
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("no address in {first:?}"));
    assert!(addr.starts_with("127.0.0.1:"), "loopback only: {first}");
    server.url = format!("http://{addr}");
    server
}

/// Runs `posenc probe --url URL --json ARGS` with a hard deadline; returns the exit code, the
/// report and stderr.
fn probe(url: &str, args: &[&str]) -> (i32, Value, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_posenc"))
        .args(["probe", "--url", url, "--json", "--timeout", "300"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start posenc probe");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("posenc probe {args:?} ran past {PROBE_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = out_reader.join().unwrap();
    let err = err_reader.join().unwrap();
    let report = serde_json::from_str(&out).unwrap_or(Value::Null);
    (status.code().unwrap_or(-1), report, err)
}

/// Verdict of each check in the report, by name.
fn verdicts(report: &Value) -> Vec<(String, String)> {
    report["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no checks in {report}"))
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}

/// One raw HTTP/1.1 request; returns (status, JSON body).
fn http(url: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[test]
fn posenc_server_passes_clean_with_reference_and_answers_bad_requests_with_json_4xx() {
    let model = model_path();
    let server = start_posenc(&[]);
    let checks = format!("{CHECKS},reference");
    let (code, report, err) = probe(
        &server.url,
        &[
            "--checks",
            &checks,
            "--decode-tokens",
            "8",
            "--reference-model",
            model.to_str().unwrap(),
            "--reference-tokens",
            "128",
        ],
    );
    assert_eq!(code, 0, "{report:#}\n{err}");
    for (name, verdict) in verdicts(&report) {
        assert_eq!(verdict, "pass", "{name}: {:#}", check(&report, &name));
    }
    // The server runs the same code as the reference: the divergence is float noise.
    let r = check(&report, "reference");
    assert!(
        r["numbers"]["mean_abs_logprob_diff"].as_f64().unwrap() < 1e-3,
        "{r:#}"
    );
    // batch-invariance really batched the prompts (the server says so).
    let rows = &check(&report, "batch-invariance")["numbers"];
    assert!(rows["prompts"].as_u64().unwrap() >= 2);

    let (s, v) = http(&server.url, "GET", "/health", "");
    assert_eq!((s, v["status"].as_str()), (200, Some("ok")));
    let (s, v) = http(
        &server.url,
        "POST",
        "/tokenize",
        r#"{"prompt":"Hello world"}"#,
    );
    assert_eq!(s, 200);
    assert_eq!(
        v["count"].as_u64(),
        Some(v["tokens"].as_array().unwrap().len() as u64)
    );
    for (body, status, param) in [
        (r#"{"prompt":"Hi","temperature":0.7}"#, 400, "temperature"),
        (r#"{"prompt":"Hi","max_tokens":100000}"#, 400, "max_tokens"),
        (r#"{"prompt":"Hi","logprobs":99}"#, 400, "logprobs"),
        (r#"{"prompt":["a","b"]}"#, 400, "prompt"),
        (r#"{"prompt":"Hi","model":"gpt-x"}"#, 404, "model"),
        (r#"{"prompt":"Hi","stream":true}"#, 400, "stream"),
        ("not json", 400, "body"),
    ] {
        let (s, v) = http(&server.url, "POST", "/v1/completions", body);
        assert_eq!(s, status, "{body}: {v}");
        assert_eq!(v["error"]["param"].as_str(), Some(param), "{body}: {v}");
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let (s, v) = http(&server.url, "GET", "/nowhere", "");
    assert_eq!(s, 404);
    assert!(v["error"]["message"].is_string());

    // A tiny passkey grid through the API: prompts sized with the server's /tokenize to fill the
    // cell (length − 10 generated tokens), the grid written as `posenc model passkey` writes it.
    let out = std::env::temp_dir().join(format!("posenc-probe-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let (code, report, err) = probe(
        &server.url,
        &[
            "--checks",
            "passkey",
            "--passkey-lengths",
            "192",
            "--passkey-depths",
            "0,1",
            "--passkey-trials",
            "1",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{report:#}\n{err}");
    let p = check(&report, "passkey");
    assert_eq!(p["verdict"], "info", "{p:#}");
    let grid: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("passkey.json")).unwrap()).unwrap();
    assert_eq!(grid["lengths"], serde_json::json!([192]));
    for cell in grid["cells"].as_array().unwrap() {
        let n = cell["trials"][0]["prompt_tokens"].as_u64().unwrap();
        // The largest filler that fits: within a few tokens of the 182-token budget.
        assert!((170..=182).contains(&n), "{cell}");
    }
    let ci = &p["numbers"]["wilson95"][0][0];
    assert!(ci[0].as_f64().unwrap() >= 0.0 && ci[1].as_f64().unwrap() <= 1.0);
    let _ = std::fs::remove_dir_all(&out);
}

/// Runs the three checks against a server with `bug` and asserts that exactly `caught_by` fails.
fn bug_is_caught_only_by(bug: &str, extra: &[&str], caught_by: &str) {
    let mut args = vec!["--inject-bug", bug];
    args.extend_from_slice(extra);
    let server = start_posenc(&args);
    let (code, report, err) = probe(&server.url, &["--checks", CHECKS, "--decode-tokens", "8"]);
    assert_eq!(code, 1, "{bug}: {report:#}\n{err}");
    for (name, verdict) in verdicts(&report) {
        let want = if name == caught_by { "fail" } else { "pass" };
        assert_eq!(verdict, want, "{bug}, {name}: {:#}", check(&report, &name));
    }
    // The failing check names requests that reproduce it.
    assert!(!check(&report, caught_by)["requests"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn decode_position_zero_is_caught_by_decode_consistency() {
    bug_is_caught_only_by("decode-position-zero", &[], "decode-consistency");
}

#[test]
fn decode_off_by_one_is_caught_by_decode_consistency() {
    bug_is_caught_only_by("decode-off-by-one", &[], "decode-consistency");
}

#[test]
fn dropped_decode_scaling_is_caught_by_decode_consistency() {
    // A scaling that changes every rotation (linear), so that dropping it is not a no-op.
    bug_is_caught_only_by(
        "scaling-dropped",
        &["--rope-scaling", "linear:factor=2"],
        "decode-consistency",
    );
}

#[test]
fn shared_padded_position_row_is_caught_by_batch_invariance() {
    bug_is_caught_only_by("shared-position-row", &[], "batch-invariance");
}

#[test]
fn batch_dependent_decode_positions_are_caught_by_batch_invariance() {
    bug_is_caught_only_by("batch-dependent-position", &[], "batch-invariance");
}

#[test]
fn prefix_cache_offset_is_caught_by_prefix_cache() {
    bug_is_caught_only_by("prefix-cache-offset", &[], "prefix-cache");
}

#[test]
fn unreachable_servers_and_bad_urls_exit_2_naming_the_url() {
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let (code, _, err) = probe(&url, &["--retries", "0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&url) && err.contains("/v1/models"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let (code, _, err) = probe("https://example.com", &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("https is not supported"), "{err}");
    let (code, _, err) = probe(&url, &["--checks", "reference"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--reference-model"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_posenc"))
        .args(["model", "serve", "--inject-bug", "nonsense"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("decode-position-zero"));
}

#[test]
fn llama_cpp_server_passes_at_default_settings_and_its_echo_shift_is_reported() {
    let install = Command::new(repo().join("scripts/install-llama-cpp.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/install-llama-cpp.sh");
    if !install.status.success() {
        eprintln!("SKIPPED llama_cpp_server_passes_at_default_settings_and_its_echo_shift_is_reported: scripts/install-llama-cpp.sh could not install llama-cpp-python; nothing else was tested");
        return;
    }
    let python = String::from_utf8_lossy(&install.stdout).trim().to_string();
    let model = model_path();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Plain CPU weight buffers (use_extra_bufts = false): see scripts/llama-cpp-server.py.
    let child = Command::new(&python)
        .arg(repo().join("scripts/llama-cpp-server.py"))
        .args([
            "--model",
            model.to_str().unwrap(),
            "--port",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start llama_cpp.server");
    let server = Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && http(&server.url, "GET", "/v1/models", "").0 == 200
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "llama_cpp.server did not start in time"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let checks = format!("{CHECKS},reference");
    let (code, report, err) = probe(
        &server.url,
        &[
            "--checks",
            &checks,
            "--decode-tokens",
            "8",
            "--reference-model",
            model.to_str().unwrap(),
            "--reference-tokens",
            "128",
        ],
    );
    for name in ["decode-consistency", "batch-invariance", "prefix-cache"] {
        assert_eq!(
            check(&report, name)["verdict"],
            "pass",
            "{name}: {:#}\n{err}",
            check(&report, name)
        );
    }
    // llama-cpp-python 0.3.36 pairs prompt token i with the logits row after it when `echo` is
    // set (llama_cpp/llama.py: `token_offset = 0 if echo`): the reference check reports that,
    // and realigned by one position its values match posenc's runner within the tolerance.
    let r = check(&report, "reference");
    assert_eq!(r["verdict"], "fail", "{r:#}");
    assert_eq!(r["numbers"]["shifted_by_one"], true, "{r:#}");
    let realigned = r["numbers"]["realigned_mean_abs_logprob_diff"]
        .as_f64()
        .unwrap();
    assert!(
        realigned < r["numbers"]["tolerance"].as_f64().unwrap(),
        "{r:#}"
    );
    assert_eq!(code, 1);
}
