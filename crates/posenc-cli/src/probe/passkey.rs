//! The passkey grid through a server's API: prompts from posenc-model's landmark builder, sized
//! with the server's own tokenizer; rates with Wilson 95% intervals.

use posenc_model::passkey::{
    cell_prompt_text, first_integer, passkey as passkey_of, wilson_interval, Cell, PasskeyReport,
    Trial,
};
use serde_json::{json, Value};

use super::api::{Repro, Server};
use super::checks::{CheckReport, Verdict};

/// The grid and its verdict threshold.
#[derive(Debug, Clone)]
pub struct PasskeyOptions {
    /// Context lengths (prompt + generation budget), tokens.
    pub lengths: Vec<usize>,
    /// Needle depths in [0, 1].
    pub depths: Vec<f64>,
    /// Trials per cell.
    pub trials: usize,
    /// Passkey seed.
    pub seed: u64,
    /// Tokens generated per answer.
    pub max_new_tokens: usize,
    /// Fail when a cell's Wilson upper bound is below this rate.
    pub min_rate: Option<f64>,
    /// Requests in flight at once.
    pub concurrency: usize,
}

/// 95% normal quantile.
const Z95: f64 = 1.959_963_984_540_054;

/// Runs the grid. Returns the check report and the grid in `posenc model passkey`'s format.
pub fn passkey(server: &Server, opts: &PasskeyOptions) -> (CheckReport, Option<PasskeyReport>) {
    const NAME: &str = "passkey";
    let mut cells = Vec::new();
    let mut accuracy = Vec::new();
    let mut intervals = Vec::new();
    let mut requests = Vec::new();
    for &length in &opts.lengths {
        let budget = length.saturating_sub(opts.max_new_tokens);
        let mut row = Vec::new();
        let mut row_ci = Vec::new();
        for &depth in &opts.depths {
            let mut prompts = Vec::new();
            for t in 0..opts.trials {
                let key = passkey_of(opts.seed, length, depth, t);
                let built = cell_prompt_text(key, budget, depth, |text| {
                    server
                        .tokenize(text)
                        .map(|ids| ids.len())
                        .map_err(posenc_model::Error::Model)
                });
                match built {
                    Ok((text, n)) => prompts.push((key, text, n)),
                    Err(e) => {
                        return (
                            CheckReport {
                                name: NAME,
                                verdict: Verdict::Error,
                                summary: format!(
                                    "building the prompt of length {length}, depth {depth}: {e}"
                                ),
                                numbers: Value::Null,
                                requests,
                            },
                            None,
                        )
                    }
                }
            }
            let bodies: Vec<(String, Value)> = prompts
                .iter()
                .map(|(_, text, _)| server.completion_request(text, opts.max_new_tokens, 0, false))
                .collect();
            let mut answers = Vec::new();
            for chunk in bodies.chunks(opts.concurrency.max(1)) {
                let path = chunk[0].0.clone();
                let payloads: Vec<Value> = chunk.iter().map(|(_, b)| b.clone()).collect();
                let got = if payloads.len() == 1 {
                    vec![server.client.post(&path, &payloads[0])]
                } else {
                    server.client.post_concurrently(&path, &payloads)
                };
                answers.extend(got);
            }
            let mut trials = Vec::new();
            for ((key, _, n), (answer, (path, body))) in
                prompts.iter().zip(answers.into_iter().zip(bodies))
            {
                let generated = match answer
                    .map_err(|e| e.to_string())
                    .and_then(|v| server.parse(&v))
                {
                    Ok(c) => c.text,
                    Err(e) => {
                        requests.push(Repro {
                            path,
                            body,
                            note: "the failing passkey request".into(),
                        });
                        return (
                            CheckReport {
                                name: NAME,
                                verdict: Verdict::Error,
                                summary: format!("length {length}, depth {depth}: {e}"),
                                numbers: Value::Null,
                                requests,
                            },
                            None,
                        );
                    }
                };
                let answer = first_integer(&generated);
                if requests.len() < 2 && answer != Some(u64::from(*key)) {
                    let note = format!("a missed passkey ({key}) at length {length}, depth {depth}: answered {generated:?}");
                    requests.push(Repro { path, body, note });
                }
                trials.push(Trial {
                    passkey: *key,
                    answer,
                    correct: answer == Some(u64::from(*key)),
                    prompt_tokens: *n,
                    generated,
                });
            }
            let right = trials.iter().filter(|t| t.correct).count();
            let acc = right as f64 / trials.len().max(1) as f64;
            row.push(acc);
            row_ci.push(wilson_interval(right, trials.len(), Z95));
            cells.push(Cell {
                length,
                depth,
                accuracy: acc,
                trials,
            });
        }
        accuracy.push(row);
        intervals.push(row_ci);
    }
    let report = PasskeyReport {
        scaling: "as served".into(),
        context_length: 0,
        trials: opts.trials,
        seed: opts.seed,
        max_new_tokens: opts.max_new_tokens,
        lengths: opts.lengths.clone(),
        depths: opts.depths.clone(),
        accuracy: accuracy.clone(),
        cells,
    };
    let below: Vec<Value> = opts
        .min_rate
        .map(|min| {
            opts.lengths
                .iter()
                .enumerate()
                .flat_map(|(i, &l)| {
                    let intervals = &intervals;
                    opts.depths
                        .iter()
                        .enumerate()
                        .filter(move |&(j, _)| intervals[i][j].1 < min)
                        .map(move |(_, &d)| json!({"length": l, "depth": d}))
                })
                .collect()
        })
        .unwrap_or_default();
    let verdict = match opts.min_rate {
        None => Verdict::Info,
        Some(_) if below.is_empty() => Verdict::Pass,
        Some(_) => Verdict::Fail,
    };
    let per_length: Vec<String> = opts
        .lengths
        .iter()
        .zip(&accuracy)
        .map(|(l, row)| {
            format!(
                "{l}: {:.2}",
                row.iter().sum::<f64>() / row.len().max(1) as f64
            )
        })
        .collect();
    let summary = match opts.min_rate {
        None => format!("mean retrieval rate by length: {}", per_length.join(", ")),
        Some(min) if below.is_empty() => format!(
            "every cell's Wilson 95% upper bound is ≥ {min} (mean rate by length: {})",
            per_length.join(", ")
        ),
        Some(min) => format!(
            "{} cells retrieve the passkey less often than {min} (Wilson 95% upper bound below it); mean rate by length: {}",
            below.len(),
            per_length.join(", ")
        ),
    };
    let cis: Vec<Vec<[f64; 2]>> = intervals
        .iter()
        .map(|r| r.iter().map(|&(a, b)| [a, b]).collect())
        .collect();
    (
        CheckReport {
            name: NAME,
            verdict,
            summary,
            numbers: json!({"lengths": opts.lengths, "depths": opts.depths, "trials": opts.trials,
                            "seed": opts.seed, "accuracy": accuracy, "wilson95": cis,
                            "cells_below_min_rate": below}),
            requests,
        },
        Some(report),
    )
}
