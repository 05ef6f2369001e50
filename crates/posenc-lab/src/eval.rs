//! Evaluation by test length: accuracy (per token and exact match per sequence) on the
//! algorithmic tasks, perplexity on language modelling.
//!
//! Accuracy is teacher-forced: the answer's tokens are predicted (argmax) from the true prefix.
//! A sequence counts as an exact match when every answer token is right, which is the same
//! verdict greedy decoding would give (the first wrong token is wrong in both).

use candle_core::D;
use serde::{Deserialize, Serialize};

use crate::model::Model;
use crate::task::DataSource;
use crate::train::batch_tensors;
use crate::Result;

/// Score entries (`sequences · heads · L²`) computed at a time during evaluation.
pub const EVAL_SCORE_BUDGET: usize = 1 << 23;

/// Results at one test length.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LengthResult {
    /// Positions per test sequence.
    pub len: usize,
    /// `len / train_len`.
    pub multiple: f64,
    /// Test sequences (windows for language modelling).
    pub sequences: usize,
    /// Scored predictions.
    pub predictions: usize,
    /// Share of scored tokens predicted right (tasks).
    pub token_accuracy: Option<f64>,
    /// Share of sequences with every answer token right (tasks).
    pub exact_match: Option<f64>,
    /// Mean negative log-likelihood per scored token, nats.
    pub nll: f64,
    /// `exp(nll)` (language modelling; also reported for tasks).
    pub ppl: f64,
    /// Perplexity of the predictions in the last quarter of each window (language modelling).
    pub tail_ppl: Option<f64>,
}

/// An evaluation (saved as `eval.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// The model's task.
    pub task: crate::task::Task,
    /// The model's scheme.
    pub scheme: crate::scheme::SchemeKind,
    /// RoPE scaling in force at test time.
    pub rope_scaling: Option<String>,
    /// Training length.
    pub train_len: usize,
    /// Seed of the test problems.
    pub test_seed: u64,
    /// One entry per test length.
    pub results: Vec<LengthResult>,
}

/// Evaluates `model` at each length in `lengths` on `rows` test sequences (problems generated
/// from `test_seed`, or held-out windows); `progress(done, total)` after each length.
///
/// Deterministic: the same model and arguments give the same report.
pub fn evaluate(
    model: &Model,
    data: &DataSource,
    lengths: &[usize],
    rows: usize,
    test_seed: u64,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<EvalReport> {
    let cfg = model.config();
    let mut results = Vec::with_capacity(lengths.len());
    for (li, &len) in lengths.iter().enumerate() {
        let terms = model.terms(len)?;
        let batch = data.test_batch(rows, len, test_seed);
        let chunk = (EVAL_SCORE_BUDGET / (cfg.heads * len * len)).max(1);
        let (mut nll_sum, mut scored, mut right, mut exact) = (0.0f64, 0usize, 0usize, 0usize);
        let (mut tail_sum, mut tail_n) = (0.0f64, 0usize);
        let tail_from = len - len / 4;
        for start in (0..batch.rows).step_by(chunk) {
            let end = (start + chunk).min(batch.rows);
            let sub = crate::task::Batch {
                rows: end - start,
                len,
                inputs: batch.inputs[start * len..end * len].to_vec(),
                targets: batch.targets[start * len..end * len].to_vec(),
                weights: batch.weights[start * len..end * len].to_vec(),
            };
            let (x, y, _) = batch_tensors(&sub)?;
            let logits = model.forward(&x, &terms)?;
            let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
            let picked: Vec<f32> = logp.gather(&y.unsqueeze(1)?, 1)?.squeeze(1)?.to_vec1()?;
            let argmax: Vec<u32> = logits.argmax(D::Minus1)?.to_vec1()?;
            for r in 0..sub.rows {
                let mut all_right = true;
                for p in 0..len {
                    let i = r * len + p;
                    if sub.weights[i] == 0.0 {
                        continue;
                    }
                    scored += 1;
                    nll_sum -= f64::from(picked[i]);
                    if p >= tail_from {
                        tail_sum -= f64::from(picked[i]);
                        tail_n += 1;
                    }
                    if argmax[i] == sub.targets[i] {
                        right += 1;
                    } else {
                        all_right = false;
                    }
                }
                if all_right {
                    exact += 1;
                }
            }
        }
        let nll = nll_sum / scored.max(1) as f64;
        let is_lm = cfg.task.is_lm();
        results.push(LengthResult {
            len,
            multiple: len as f64 / cfg.train_len as f64,
            sequences: batch.rows,
            predictions: scored,
            token_accuracy: (!is_lm).then(|| right as f64 / scored.max(1) as f64),
            exact_match: (!is_lm).then(|| exact as f64 / batch.rows.max(1) as f64),
            nll,
            ppl: nll.exp(),
            tail_ppl: is_lm.then(|| (tail_sum / tail_n.max(1) as f64).exp()),
        });
        progress(li + 1, lengths.len());
    }
    Ok(EvalReport {
        task: cfg.task,
        scheme: cfg.scheme,
        rope_scaling: cfg.rope_scaling.clone(),
        train_len: cfg.train_len,
        test_seed,
        results,
    })
}
