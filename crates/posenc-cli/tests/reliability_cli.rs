//! Failure modes tried as a user would: a closed stdout, a zero or huge number, a server bound to
//! every interface or pointed at a missing results directory, a server paused and resumed.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{fixture, posenc};

/// Runs `posenc ARGS` with stdout a pipe whose reading end is already closed.
fn with_closed_stdout(args: &[&str]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_posenc"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run posenc")
}

#[test]
fn a_closed_stdout_ends_quietly_with_status_0() {
    let config = fixture("llama-3.1-8b.config.json");
    let commands: Vec<Vec<&str>> = vec![
        vec!["sinusoidal", "--len", "20000", "--dim", "64"],
        vec!["sinusoidal", "--len", "2000", "--dim", "64", "--json"],
        vec!["rope", "--config", &config, "--seq-len", "4096"],
        vec!["rope", "--config", &config, "--json"],
        vec!["inspect", &config],
        vec!["inspect", &config, "--json"],
        vec!["alibi", "--heads", "16", "--len", "64"],
        vec!["alibi", "--heads", "16", "--len", "64", "--json"],
        vec![
            "t5-buckets",
            "--num-buckets",
            "32",
            "--max-distance",
            "128",
            "--range=-60000:60000",
        ],
        vec!["learn", "list"],
        vec!["learn", "list", "--json"],
        vec!["learn", "3", "--seed", "1"],
        vec!["explain", "rope"],
        vec!["explain", "rope", "--json"],
        vec![
            "advise",
            "--train-len",
            "4096",
            "--target-len",
            "32768",
            "--arch",
            "decoder",
        ],
        vec!["--help"],
        vec!["--version"],
    ];
    for args in &commands {
        let out = with_closed_stdout(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "posenc {args:?}: {stderr}");
        assert!(stderr.is_empty(), "posenc {args:?} said: {stderr}");
    }
    // The interactive course writes through a locked stdout (`writeln!`), not `println!`.
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let mut child = Command::new(env!("CARGO_BIN_EXE_posenc"))
        .args(["learn", "--seed", "3"])
        .stdin(Stdio::piped())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the course");
    let _ = child.stdin.take().expect("stdin").write_all(b"a\n");
    let out = child.wait_with_output().expect("course ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "posenc learn: {stderr}");
    assert!(stderr.is_empty(), "posenc learn said: {stderr}");
}

#[test]
fn bench_rejects_zero_runs() {
    let out = posenc(&["bench", "--quick", "--runs", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--runs"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn integers_past_the_type_say_too_large_with_the_limit() {
    let max = u64::MAX.to_string();
    for args in [
        vec!["sinusoidal", "--len", "99999999999999999999", "--dim", "8"],
        vec!["alibi", "--heads", "123456789012345678901234567890"],
        vec!["bench", "--quick", "--runs", "99999999999999999999"],
        vec![
            "advise",
            "--train-len",
            "99999999999999999999",
            "--target-len",
            "8",
        ],
    ] {
        let out = posenc(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("too large (max {max})")),
            "{args:?}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    let config = fixture("smollm2-135m.config.json");
    let out = posenc(&[
        "rope",
        "--config",
        &config,
        "--positions",
        "1,99999999999999999999",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("too large (max {max})")),
        "{stderr}"
    );
    let out = posenc(&[
        "t5-buckets",
        "--num-buckets",
        "32",
        "--max-distance",
        "128",
        "--range",
        "0:99999999999999999999",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("too large (min {}, max {})", i64::MIN, i64::MAX)),
        "{stderr}"
    );
    // The extreme ends of the range are valid and answer (no overflow at i64::MAX).
    let out = posenc(&[
        "t5-buckets",
        "--num-buckets",
        "32",
        "--max-distance",
        "128",
        "--range=9223372036854775806:9223372036854775807",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts `posenc serve ARGS --port 0` (request log: errors only); returns the child, its
/// loopback address and the receiving end of its stderr lines (the listening line consumed).
fn start_serve(
    args: &[&str],
) -> (
    std::process::Child,
    String,
    std::sync::mpsc::Receiver<String>,
) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_posenc"))
        .arg("serve")
        .args(args)
        .args(["--port", "0"])
        .env("POSENC_QUIET", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start posenc serve");
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server says where it listens");
    let port = first
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|hostport| hostport.rsplit(':').next())
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_string();
    (child, format!("127.0.0.1:{port}"), rx)
}

/// The stderr lines printed after the listening line, up to the log line of a 404 request sent
/// now (the request log prints errors even when quiet), so every startup line is in.
fn startup_lines(addr: &str, lines: &std::sync::mpsc::Receiver<String>) -> Vec<String> {
    assert_eq!(
        request(addr, "/api/startup-marker", Duration::from_secs(20)),
        Ok(404)
    );
    let mut seen = Vec::new();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(20)) {
        if line.contains("/api/startup-marker") {
            return seen;
        }
        seen.push(line);
    }
    panic!("no log line for the marker request after {seen:?}");
}

fn stop(mut child: std::process::Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(unix)]
#[test]
fn serve_warns_about_a_public_bind_and_a_missing_results_dir() {
    let missing = std::env::temp_dir().join(format!("posenc-no-such-dir-{}", std::process::id()));
    let missing = missing.to_string_lossy().into_owned();
    // Port 0; the only traffic is one request over loopback.
    let (child, addr, lines) = start_serve(&["--bind", "0.0.0.0", "--results", &missing]);
    let text = startup_lines(&addr, &lines).join("\n");
    stop(child);
    assert!(
        text.contains("warning: --bind 0.0.0.0"),
        "no --bind warning in {text:?}"
    );
    assert!(
        text.contains(&format!("warning: --results {missing} is not a directory")),
        "no --results warning in {text:?}"
    );
    let (child, addr, lines) = start_serve(&["--results", "."]);
    let text = startup_lines(&addr, &lines);
    stop(child);
    assert!(
        !text.join("").contains("warning"),
        "loopback and an existing directory warn nothing: {text:?}"
    );
}

/// One request with its own connection; Ok(status) or the error.
fn request(addr: &str, path: &str, timeout: Duration) -> Result<u16, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line in {text:?}"))
}

/// SIGSTOP for 5 s while 8 clients keep sending requests, then SIGCONT: every request is
/// answered 200 (the ones sent during the pause once the server resumes, within the clients'
/// 20 s timeout), none fails.
#[cfg(unix)]
#[test]
fn a_paused_server_recovers_without_a_failed_request() {
    let (child, addr, _log) = start_serve(&[]);
    let pid = child.id().to_string();
    let deadline = Instant::now() + Duration::from_secs(11);
    let paths = [
        "/api/health",
        "/api/sinusoidal/row?position=7&dim=64",
        "/api/rope/frequencies?head_dim=128&scaling=yarn&factor=4",
        "/api/alibi?heads=8&len=16",
    ];
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut outcomes = Vec::new();
                let mut i = c;
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let outcome = request(&addr, paths[i % paths.len()], Duration::from_secs(20));
                    outcomes.push((outcome, sent.elapsed()));
                    i += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                outcomes
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let status = Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    std::thread::sleep(Duration::from_secs(5));
    let status = Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let outcomes: Vec<(Result<u16, String>, Duration)> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("client"))
        .collect();
    stop(child);
    let failed: Vec<_> = outcomes.iter().filter(|(o, _)| *o != Ok(200)).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {failed:?}",
        failed.len(),
        outcomes.len()
    );
    let longest = outcomes.iter().map(|(_, t)| *t).max().unwrap_or_default();
    assert!(
        longest >= Duration::from_secs(3),
        "some request waited out the pause (longest {longest:?})"
    );
    let after = outcomes
        .iter()
        .filter(|(_, t)| *t < Duration::from_secs(1))
        .count();
    assert!(
        after > outcomes.len() / 2,
        "the server answers quickly again after SIGCONT"
    );
}
