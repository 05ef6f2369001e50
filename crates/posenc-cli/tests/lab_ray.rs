//! scripts/lab-ray.py against a local Ray head on the loopback address, started (and stopped)
//! here: the grid run as one Ray task per cell and merged gives the table `posenc lab sweep`
//! gives. Ray comes from scripts/install-ray.sh (a cached virtual environment outside the
//! checkout); when it cannot be installed the test says so and returns.

mod common;
use common::{json, posenc};

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Ray head, stopped (its whole process group) when dropped.
struct Head(Child);

impl Head {
    /// Signals the head's whole process group. Never a group id below 2: `kill(-1, ..)` would
    /// signal every process this user may signal (util-linux `kill -TERM -N` once did exactly that).
    fn signal_group(&self, signal: libc::c_int) {
        let pgid = self.0.id() as libc::pid_t;
        if pgid > 1 {
            // SAFETY: kill(2) with a negative, non-(-1) pid only signals that process group.
            unsafe {
                libc::kill(-pgid, signal);
            }
        }
    }
}

impl Drop for Head {
    fn drop(&mut self) {
        // `ray start --block` stops the processes it started when it gets SIGTERM.
        self.signal_group(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        self.signal_group(libc::SIGKILL);
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ray_ready(python: &Path, address: &str) -> bool {
    let probe =
        format!("import ray; ray.init(address='{address}', log_to_driver=False); ray.shutdown()");
    Command::new(python)
        .args(["-c", &probe])
        .env("RAY_USAGE_STATS_ENABLED", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn ray_launcher_on_a_loopback_head_matches_a_local_sweep() {
    let install = Command::new(repo().join("scripts/install-ray.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/install-ray.sh");
    if !install.status.success() {
        eprintln!("SKIPPED ray_launcher_on_a_loopback_head_matches_a_local_sweep: scripts/install-ray.sh could not install Ray (no PyPI access or no wheel for this Python); nothing else was tested");
        return;
    }
    let python = PathBuf::from(String::from_utf8(install.stdout).unwrap().trim());
    let ray = python.with_file_name("ray");
    let temp = tempfile::Builder::new()
        .prefix("rp")
        .tempdir_in("/tmp")
        .unwrap(); // Ray's socket paths must stay short
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let head = Head(
        Command::new(&ray)
            .args([
                "start",
                "--head",
                "--block",
                "--node-ip-address=127.0.0.1",
                &format!("--port={port}"),
                "--num-cpus=2",
                "--include-dashboard=false",
                "--disable-usage-stats",
            ])
            .arg(format!("--temp-dir={}", temp.path().display()))
            .env("RAY_USAGE_STATS_ENABLED", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start the Ray head"),
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    while !ray_ready(&python, &address) {
        assert!(
            Instant::now() < deadline,
            "the Ray head on {address} did not come up in 90 s"
        );
        std::thread::sleep(Duration::from_secs(2));
    }

    let grid = [
        "--schemes",
        "rope,shaw",
        "--tasks",
        "reverse",
        "--seeds",
        "0,1",
        "--multiples",
        "1,2",
        "--test-rows",
        "4",
        "--train-len",
        "12",
        "--d-model",
        "16",
        "--heads",
        "2",
        "--layers",
        "1",
        "--steps",
        "5",
        "--batch",
        "4",
        "--warmup",
        "1",
    ];
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("ray");
    // One launch of the Ray launcher over the grid, against the head above.
    let launch = || {
        Command::new(&python)
            .arg(repo().join("scripts/lab-ray.py"))
            .args([
                "--address",
                &address,
                "--out",
                out.to_str().unwrap(),
                "--posenc",
                env!("CARGO_BIN_EXE_posenc"),
                "--",
            ])
            .args(grid)
            .env("RAY_USAGE_STATS_ENABLED", "0")
            .output()
            .expect("run scripts/lab-ray.py")
    };
    let run = launch();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "lab-ray.py failed: {stderr}");
    assert!(stderr.contains("grid of 4 cells, 4 to run"), "{stderr}");
    for f in ["summary.json", "summary.md", "sweep.json"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    assert_eq!(std::fs::read_dir(out.join("cells")).unwrap().count(), 4);
    // A second launch finds every cell done and submits nothing.
    let again = launch();
    assert!(String::from_utf8_lossy(&again.stderr).contains("0 to run"));
    drop(head);

    let local = work.path().join("local");
    let mut args = vec!["lab", "sweep"];
    args.extend(grid);
    args.extend(["--out", local.to_str().unwrap(), "--json"]);
    let strip = |mut v: serde_json::Value| {
        for r in v["rows"].as_array_mut().unwrap() {
            r["tokens_per_s"] = 0.into();
        }
        v["cell_wall_s"] = 0.into();
        v
    };
    let local_summary = strip(json(&posenc(&args)));
    let ray_summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(strip(ray_summary), local_summary);
}
