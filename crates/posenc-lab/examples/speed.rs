//! Training speed per scheme, measured in interleaved rounds within one run (each round trains
//! every scheme for the same few steps), with the load average recorded: the numbers in
//! BENCHMARKS.md.
//!
//! `RAYON_NUM_THREADS=1 cargo run --release -p posenc-lab --example speed -- [ROUNDS] [STEPS] [BATCH] [TRAIN_LEN] [D_MODEL]`
//! (defaults: 3 10 16 32 64; 2 layers, 4 heads, task copy).

use std::time::Instant;

use posenc_lab::model::ModelConfig;
use posenc_lab::scheme::ALL_SCHEMES;
use posenc_lab::task::{DataSource, Task};
use posenc_lab::train::{train, TrainOptions};

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
    for _ in 0..rounds {
        for (i, &scheme) in ALL_SCHEMES.iter().enumerate() {
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
            let t = Instant::now();
            train(&cfg, &opts, &data, &mut |_| {})?;
            times[i].push(t.elapsed().as_secs_f64());
        }
    }
    let tokens = (steps * batch * train_len) as f64;
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let nope = median(&mut times[0].clone());
    println!("{rounds} interleaved rounds x {steps} steps, batch {batch}, train length {train_len}, d_model {d_model}, 2 layers, 4 heads; threads {}; load average {load_before} -> {}", candle_core::utils::get_num_threads(), load());
    println!(
        "{:<11} {:>12} {:>12} {:>14}",
        "scheme", "ms/step", "tokens/s", "time / nope"
    );
    for (i, &scheme) in ALL_SCHEMES.iter().enumerate() {
        let m = median(&mut times[i]);
        println!(
            "{:<11} {:>12.1} {:>12.0} {:>14.2}",
            scheme.name(),
            m * 1e3 / steps as f64,
            tokens / m,
            m / nope
        );
    }
    Ok(())
}
