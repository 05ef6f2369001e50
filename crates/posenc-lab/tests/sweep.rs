//! A sweep gives the same table whether it runs in one go, is interrupted and resumed, or is
//! split into shards and merged; finished cells are never rerun.

use std::path::Path;

use posenc_lab::scheme::SchemeKind;
use posenc_lab::sweep::{merge, sweep, Shard, SweepEvent, SweepSpec};
use posenc_lab::task::Task;
use posenc_lab::train::TrainOptions;

fn spec() -> SweepSpec {
    SweepSpec {
        schemes: vec![SchemeKind::Nope, SchemeKind::Alibi, SchemeKind::Learned],
        tasks: vec![Task::Copy, Task::Sort],
        seeds: vec![0, 1],
        d_model: 16,
        heads: 2,
        layers: 1,
        train_len: 12,
        lengths: vec![12, 24],
        test_rows: 8,
        test_seed: 5,
        train: TrainOptions {
            steps: 4,
            batch: 4,
            warmup: 1,
            log_every: 2,
            ..TrainOptions::default()
        },
        text: None,
    }
}

fn run(dir: &Path, shard: Option<Shard>) -> (posenc_lab::sweep::Summary, Vec<String>, Vec<String>) {
    let (mut ran, mut skipped) = (Vec::new(), Vec::new());
    let s = sweep(&spec(), dir, shard, &mut |e| match e {
        SweepEvent::Started(c, _, _) => ran.push(c.id()),
        SweepEvent::Skipped(c) => skipped.push(c.id()),
        _ => {}
    })
    .unwrap();
    (s, ran, skipped)
}

#[test]
fn one_run_resume_and_shards_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    let (a, ran, skipped) = run(&whole, None);
    assert_eq!(ran.len(), 12);
    assert!(skipped.is_empty());
    assert_eq!(a.cells_done, 12);
    assert_eq!(a.rows.len(), 6);

    // Running again reruns nothing and gives the same table.
    let stamp = std::fs::metadata(whole.join("cells/copy-nope-s0.json"))
        .unwrap()
        .modified()
        .unwrap();
    let (again, ran, skipped) = run(&whole, None);
    assert!(ran.is_empty(), "{ran:?}");
    assert_eq!(skipped.len(), 12);
    assert_eq!(again.metrics(), a.metrics());
    assert_eq!(
        std::fs::metadata(whole.join("cells/copy-nope-s0.json"))
            .unwrap()
            .modified()
            .unwrap(),
        stamp
    );

    // Interrupted: one shard finished, a cell killed half-way (its temporary file left behind),
    // another cell's file gone. Resuming runs exactly the missing cells.
    let resumed = tmp.path().join("resumed");
    let (_, ran0, _) = run(&resumed, Some("0/3".parse().unwrap()));
    assert_eq!(ran0.len(), 4);
    let stale = resumed.join("cells/.tmp-interrupted");
    std::fs::write(&stale, b"{\"half\": ").unwrap();
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(an_hour_ago)
        .unwrap();
    let fresh = resumed.join("cells/.tmp-another-shard-writing");
    std::fs::write(&fresh, b"{").unwrap();
    std::fs::remove_file(resumed.join(format!("cells/{}.json", ran0[1]))).unwrap();
    let (b, ran, skipped) = run(&resumed, None);
    assert_eq!(ran.len(), 9, "{ran:?}");
    assert_eq!(skipped.len(), 3);
    assert!(!stale.exists());
    assert!(
        fresh.exists(),
        "a young temporary file may be another shard's write in progress"
    );
    assert_eq!(b.metrics(), a.metrics());

    // Shards in separate directories, merged.
    let shards: Vec<_> = (0..3)
        .map(|i| tmp.path().join(format!("shard{i}")))
        .collect();
    for (i, d) in shards.iter().enumerate() {
        let (s, ran, _) = run(d, Some(Shard { index: i, count: 3 }));
        assert_eq!(ran.len(), 4);
        assert_eq!(s.cells_done, 4);
    }
    let merged = merge(&shards, &tmp.path().join("merged")).unwrap();
    assert_eq!(merged.metrics(), a.metrics());
    assert_eq!(merged.cells_done, 12);
}

#[test]
fn a_directory_of_another_grid_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    run(
        tmp.path(),
        Some(Shard {
            index: 0,
            count: 12,
        }),
    );
    let mut other = spec();
    other.seeds = vec![7];
    let err = sweep(&other, tmp.path(), None, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("--out"), "{err}");
    let elsewhere = tempfile::tempdir().unwrap();
    sweep(
        &other,
        elsewhere.path(),
        Some(Shard { index: 0, count: 9 }),
        &mut |_| {},
    )
    .unwrap();
    assert!(merge(
        &[tmp.path().to_path_buf(), elsewhere.path().to_path_buf()],
        &tmp.path().join("m")
    )
    .is_err());
}

#[test]
fn shards_parse_and_reject() {
    assert_eq!(
        "2/5".parse::<Shard>().unwrap(),
        Shard { index: 2, count: 5 }
    );
    for bad in ["5/5", "1", "a/b", "0/0", "-1/3"] {
        let err = bad.parse::<Shard>().unwrap_err().to_string();
        assert!(err.contains("--shard"), "{bad}: {err}");
    }
}
