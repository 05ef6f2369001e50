//! Train one small model and test it past its training length.
//!
//! `cargo run --release -p posenc-lab --example train_one -- [SCHEME] [TASK] [STEPS] [TRAIN_LEN] [D_MODEL] [LR] [BATCH]`
//! (defaults: alibi copy 300 32 64 0.001 32).

use posenc_lab::eval::evaluate;
use posenc_lab::model::ModelConfig;
use posenc_lab::scheme::SchemeKind;
use posenc_lab::task::Task;
use posenc_lab::train::{train, TrainOptions};

fn main() -> Result<(), posenc_lab::LabError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.to_string());
    let scheme = SchemeKind::parse(&arg(0, "alibi"))?;
    let task = Task::parse(&arg(1, "copy"))?;
    let steps: usize = arg(2, "300").parse().expect("STEPS: a whole number");
    let train_len: usize = arg(3, "32").parse().expect("TRAIN_LEN: a whole number");
    let d_model: usize = arg(4, "64").parse().expect("D_MODEL: a whole number");
    let cfg = ModelConfig {
        task,
        scheme,
        rope_scaling: None,
        vocab: task.vocab(),
        d_model,
        heads: 4,
        layers: 2,
        train_len,
        max_len: 8 * train_len,
        seed: 0,
    };
    let data = posenc_lab::data_source(task, None, cfg.max_len)?;
    let lr: f64 = arg(5, "0.001").parse().expect("LR: a number");
    let batch: usize = arg(6, "32").parse().expect("BATCH: a whole number");
    let opts = TrainOptions {
        steps,
        lr,
        batch,
        ..TrainOptions::default()
    };
    let (model, log) = train(&cfg, &opts, &data, &mut |p| {
        if p.step % 50 == 0 {
            eprintln!("step {} loss {:.4}", p.step, p.loss);
        }
    })?;
    println!(
        "{} on {}: {} parameters, {:.1} s, {:.0} tokens/s, final loss {:.4}",
        scheme.name(),
        task.name(),
        log.parameters,
        log.wall_s,
        log.tokens_per_s,
        log.final_loss
    );
    let lengths: Vec<usize> = [1, 2, 4, 8].iter().map(|m| m * train_len).collect();
    let report = evaluate(&model, &data, &lengths, 64, 1234, &mut |_, _| {})?;
    for r in &report.results {
        println!(
            "  len {:>4} ({}x): token acc {:.3}  exact {:.3}  ppl {:.3}",
            r.len,
            r.multiple,
            r.token_accuracy.unwrap_or(f64::NAN),
            r.exact_match.unwrap_or(f64::NAN),
            r.ppl
        );
    }
    Ok(())
}
