//! `posenc serve` as a process: it listens on loopback, answers over a real socket, logs the
//! request to stderr, and exits 0 after SIGINT (graceful shutdown).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One HTTP/1.1 GET with `Connection: close`; returns (status line, body).
fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read response");
    let status = text.lines().next().unwrap_or("").to_string();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[cfg(unix)]
#[test]
fn serve_answers_on_loopback_and_stops_on_sigint() {
    let results = std::env::temp_dir().join(format!("posenc-serve-cli-{}", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_posenc"))
        .args(["serve", "--port", "0", "--results"])
        .arg(&results)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start posenc serve");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).expect("startup line");
    // "posenc explorer listening on http://127.0.0.1:PORT/ ..."
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_string();
    assert!(
        addr.starts_with("127.0.0.1:"),
        "binds loopback by default: {addr}"
    );

    let (status, body) = http_get(&addr, "/api/health");
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("\"ok\":true"), "{body}");
    let (status, body) = http_get(&addr, "/api/sinusoidal/table?len=-3");
    assert!(status.contains("400"), "{status}");
    assert!(body.contains("\"error\""), "{body}");

    // A client that keeps a connection open with half a request must not hold the server up.
    let mut lingering = TcpStream::connect(&addr).expect("connect");
    lingering
        .write_all(b"GET /api/health HTTP/1.1\r\nHost")
        .unwrap();
    // And an idle keep-alive connection after one full answer.
    let mut idle = TcpStream::connect(&addr).expect("connect");
    write!(idle, "GET /api/health HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut buf = [0u8; 512];
    let n = idle.read(&mut buf).expect("keep-alive answer");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("200"));

    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(kill.success());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > Duration::from_secs(20) {
            child.kill().ok();
            panic!("server did not stop within 20 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "graceful shutdown exits 0");
    drop((lingering, idle));
    let mut log = String::new();
    stderr.read_to_string(&mut log).ok();
    assert!(log.contains("GET /api/health 200"), "request log: {log}");
    assert!(log.contains("400"), "request log: {log}");
    assert!(log.contains("shutting down"), "request log: {log}");
}
