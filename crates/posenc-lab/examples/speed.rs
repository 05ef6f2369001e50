//! Training speed per scheme, measured in interleaved rounds within one run (each round trains
//! every scheme for the same few steps), with the load average recorded: the numbers in
//! BENCHMARKS.md.
//!
//! `RAYON_NUM_THREADS=1 cargo run --release -p posenc-lab --example speed -- [ROUNDS] [STEPS] [BATCH] [TRAIN_LEN] [D_MODEL]`
//! (defaults: 3 10 16 32 64; 2 layers, 4 heads, task copy).
//!
//! Besides wall time it records the process's CPU time (`CLOCK_PROCESS_CPUTIME_ID`, every
//! thread) per run: on a shared, loaded machine the CPU time of a one-thread run is the steadier
//! measure of what a step costs.

use std::time::Instant;

use posenc_lab::model::ModelConfig;
use posenc_lab::scheme::ALL_SCHEMES;
use posenc_lab::task::{DataSource, Task};
use posenc_lab::train::{train, TrainOptions};

/// CPU time of the whole process (every thread), seconds.
fn cpu_s() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to write.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime");
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

fn main() -> Result<(), posenc_lab::LabError> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("whole numbers"))
        .collect();
    let arg = |i: usize, d: usize| args.get(i).copied().unwrap_or(d);
    let (rounds, steps, batch, train_len, d_model) =
        (arg(0, 3), arg(1, 10), arg(2, 16), arg(3, 32), arg(4, 64));
    let data = DataSource::algorithmic(Task::Copy)?;
    let opts = TrainOptions {
        steps,
        batch,
        warmup: 1,
        log_every: steps,
        ..TrainOptions::default()
    };
    let load = || {
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let load_before = load();
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); ALL_SCHEMES.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); ALL_SCHEMES.len()];
    let n = ALL_SCHEMES.len();
    for r in 0..rounds {
        // A rotating order, so no scheme always runs first or last in a round.
        for k in 0..n {
            let i = (r + k) % n;
            let scheme = ALL_SCHEMES[i];
            let cfg = ModelConfig {
                task: Task::Copy,
                scheme,
                rope_scaling: None,
                vocab: Task::Copy.vocab(),
                d_model,
                heads: 4,
                layers: 2,
                train_len,
                max_len: 8 * train_len,
                seed: 0,
            };
            let (t, c) = (Instant::now(), cpu_s());
            train(&cfg, &opts, &data, &mut |_| {})?;
            times[i].push(t.elapsed().as_secs_f64());
            cpu[i].push(cpu_s() - c);
        }
    }
    let tokens = (steps * batch * train_len) as f64;
    let min_median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        (v[0], v[v.len() / 2])
    };
    let nope_wall = min_median(&times[0]).1;
    let nope_cpu = min_median(&cpu[0]).1;
    println!("{rounds} interleaved rounds (rotating order) x {steps} steps, batch {batch}, train length {train_len}, d_model {d_model}, 2 layers, 4 heads; threads {}; load average {load_before} -> {}", candle_core::utils::get_num_threads(), load());
    println!(
        "{:<11} {:>22} {:>12} {:>20} {:>14} {:>12}",
        "scheme",
        "wall ms/step min/med",
        "wall / nope",
        "CPU ms/step min/med",
        "CPU / nope",
        "tokens/s CPU"
    );
    for (i, &scheme) in ALL_SCHEMES.iter().enumerate() {
        let (wmin, wmed) = min_median(&times[i]);
        let (cmin, cmed) = min_median(&cpu[i]);
        let per = |x: f64| x * 1e3 / steps as f64;
        println!(
            "{:<11} {:>10.1} / {:>9.1} {:>12.2} {:>9.1} / {:>8.1} {:>14.2} {:>12.0}",
            scheme.name(),
            per(wmin),
            per(wmed),
            wmed / nope_wall,
            per(cmin),
            per(cmed),
            cmed / nope_cpu,
            tokens / cmed
        );
    }
    Ok(())
}
