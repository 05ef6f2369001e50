//! `posenc lab`: bad arguments exit 2 naming the flag; train → eval and sweep → merge end to end
//! on tiny models (the table, the JSON and the figures are written).

mod common;
use common::{assert_usage_error, json, posenc};

const TINY: &[&str] = &[
    "--train-len",
    "12",
    "--d-model",
    "16",
    "--heads",
    "2",
    "--layers",
    "1",
    "--steps",
    "6",
    "--batch",
    "4",
    "--warmup",
    "1",
];

fn with<'a>(head: &[&'a str], tail: &[&'a str]) -> Vec<&'a str> {
    head.iter().chain(tail).copied().collect()
}

#[test]
fn bad_arguments_exit_2_naming_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().to_str().unwrap();
    let train = [
        "lab", "train", "--task", "copy", "--scheme", "rope", "--out", out,
    ];
    for (extra, flag) in [
        (&["--scheme", "xpos"][..], "--scheme"),
        (&["--task", "parity"], "--task"),
        (&["--heads", "3"], "--heads"),
        (&["--heads", "64", "--d-model", "64"], "--heads"),
        (&["--d-model", "0"], "--d-model"),
        (&["--layers", "0"], "--layers"),
        (&["--train-len", "2"], "--train-len"),
        (&["--train-len", "many"], "--train-len"),
        (&["--steps", "0"], "--steps"),
        (&["--batch", "0"], "--batch"),
        (&["--lr=-1"], "--lr"),
        (&["--lr", "NaN"], "--lr"),
        (&["--max-len", "8", "--train-len", "16"], "--max-len"),
        (&["--rope-scaling", "linear:factor=2,factr=2"], "factr"),
        (&["--rope-scaling", "linear:factr=2"], "--rope-scaling"),
        (&["--rope-scaling", "warp:factor=2"], "warp"),
    ] {
        // Later flags override earlier ones (clap keeps the last), except the repeated scheme/task.
        let mut args: Vec<&str> = train.to_vec();
        if extra[0] == "--scheme" || extra[0] == "--task" {
            let i = args.iter().position(|a| *a == extra[0]).unwrap();
            args[i + 1] = extra[1];
        } else {
            args.extend_from_slice(extra);
        }
        assert_usage_error(&posenc(&args), flag);
    }
    let alibi_scaled = [
        "lab",
        "train",
        "--task",
        "copy",
        "--scheme",
        "alibi",
        "--rope-scaling",
        "linear:factor=2",
        "--out",
        out,
    ];
    assert_usage_error(&posenc(&alibi_scaled), "--rope-scaling");
    assert_usage_error(
        &posenc(&[
            "lab",
            "train",
            "--task",
            "lm",
            "--scheme",
            "nope",
            "--text",
            "/nonexistent/book.txt",
            "--out",
            out,
        ]),
        "--text",
    );
    assert_usage_error(
        &posenc(&["lab", "eval", "/nonexistent/dir"]),
        "/nonexistent/dir",
    );
    let sweep = ["lab", "sweep", "--out", out];
    assert_usage_error(
        &posenc(&with(&sweep, &["--schemes", "rope,xpos"])),
        "--schemes",
    );
    assert_usage_error(&posenc(&with(&sweep, &["--tasks", ""])), "--tasks");
    assert_usage_error(&posenc(&with(&sweep, &["--seeds", "0,x"])), "--seeds");
    assert_usage_error(&posenc(&with(&sweep, &["--shard", "4/4"])), "--shard");
    assert_usage_error(
        &posenc(&with(&sweep, &["--multiples", "0,2"])),
        "--multiples",
    );
    assert_usage_error(&posenc(&["lab", "sweep"]), "--out");
    assert_usage_error(&posenc(&["lab", "merge", "--out", out]), "DIRS");
}

#[test]
fn train_then_eval() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ckpt");
    let d = dir.to_str().unwrap();
    let log = json(&posenc(&with(
        &[
            "lab", "train", "--task", "addition", "--scheme", "t5", "--out", d, "--json",
        ],
        TINY,
    )));
    assert_eq!(log["steps"], 6);
    assert!(log["tokens_per_s"].as_f64().unwrap() > 0.0);
    for f in ["model.safetensors", "config.json", "train-log.json"] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    let a = json(&posenc(&[
        "lab",
        "eval",
        d,
        "--lengths",
        "12,24,48",
        "--rows",
        "8",
        "--json",
    ]));
    let b = json(&posenc(&[
        "lab",
        "eval",
        d,
        "--lengths",
        "12,24,48",
        "--rows",
        "8",
        "--json",
    ]));
    assert_eq!(a, b);
    assert_eq!(a["results"].as_array().unwrap().len(), 3);
    assert_eq!(a["results"][2]["len"], 48);
    assert!(dir.join("eval.json").is_file());
    let text = posenc(&["lab", "eval", d, "--rows", "4"]);
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("token acc") && text.contains("192"), "{text}");
    // A learned table ends at --max-len.
    let learned = tmp.path().join("learned");
    let l = learned.to_str().unwrap();
    assert!(posenc(&with(
        &[
            "lab",
            "train",
            "--task",
            "copy",
            "--scheme",
            "learned",
            "--max-len",
            "24",
            "--out",
            l
        ],
        TINY
    ))
    .status
    .success());
    assert_usage_error(
        &posenc(&["lab", "eval", l, "--lengths", "12,48"]),
        "--lengths",
    );
}

#[test]
fn sweep_plan_shards_and_merge() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = with(
        &[
            "lab",
            "sweep",
            "--schemes",
            "nope,alibi",
            "--tasks",
            "copy",
            "--seeds",
            "0,1",
            "--multiples",
            "1,2",
            "--test-rows",
            "4",
        ],
        TINY,
    );
    let plan = json(&posenc(&with(&grid, &["--plan"])));
    assert_eq!(plan["count"], 4);
    assert_eq!(plan["cells"][1]["id"], "copy-alibi-s0");
    let whole = tmp.path().join("whole");
    let one = json(&posenc(&with(
        &grid,
        &["--out", whole.to_str().unwrap(), "--json"],
    )));
    assert_eq!(one["cells_done"], 4);
    let md = std::fs::read_to_string(whole.join("summary.md")).unwrap();
    assert!(
        md.contains("max usable length") && md.contains("| copy | alibi | 12 |"),
        "{md}"
    );
    for f in ["summary.json", "summary.svg", "summary.png", "sweep.json"] {
        assert!(whole.join(f).is_file(), "{f}");
    }
    let s0 = tmp.path().join("s0");
    let s1 = tmp.path().join("s1");
    assert!(posenc(&with(
        &grid,
        &["--out", s0.to_str().unwrap(), "--shard", "0/2"]
    ))
    .status
    .success());
    assert!(posenc(&with(
        &grid,
        &["--out", s1.to_str().unwrap(), "--shard", "1/2"]
    ))
    .status
    .success());
    let merged = tmp.path().join("merged");
    let m = json(&posenc(&[
        "lab",
        "merge",
        s0.to_str().unwrap(),
        s1.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
        "--json",
    ]));
    let strip = |mut v: serde_json::Value| {
        for r in v["rows"].as_array_mut().unwrap() {
            r["tokens_per_s"] = 0.into();
        }
        v["cell_wall_s"] = 0.into();
        v
    };
    assert_eq!(strip(m), strip(one));
}
