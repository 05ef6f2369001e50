//! The reference check: the server's prompt logprobs (`echo`) against posenc's runner on the
//! same text, position by position.

use std::collections::HashMap;

use posenc_model::llama::RopeSetup;
use posenc_model::Model;
use serde_json::{json, Value};

use super::api::Server;
use super::checks::{CheckReport, Verdict, TOP};

/// Rows of logits computed at once.
const CHUNK: usize = 64;
/// Position bins reported.
const BINS: usize = 8;

/// Log-softmax normalizer of one logits row (f64).
fn log_sum_exp(row: &[f32]) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = row.iter().map(|&x| f64::from(x - max).exp()).sum();
    f64::from(max) + sum.ln()
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Runs the check on `text` (at most `max_tokens` of it). `tolerance` is the largest mean
/// |Δ logprob| accepted in any position bin.
pub fn reference(
    server: &Server,
    model: &Model,
    rope: &RopeSetup,
    text: &str,
    max_tokens: usize,
    tolerance: f64,
) -> CheckReport {
    const NAME: &str = "reference";
    let fail = |summary: String, requests| CheckReport {
        name: NAME,
        verdict: Verdict::Error,
        summary,
        numbers: Value::Null,
        requests,
    };
    let tok = &model.tokenizer;
    let ids = match tok.encode(text) {
        Ok(mut ids) => {
            ids.truncate(max_tokens);
            ids
        }
        Err(e) => return fail(format!("tokenizing the reference text: {e}"), vec![]),
    };
    // Send exactly the text of those tokens, and run the ids it encodes to.
    let text = tok.decode(&ids).unwrap_or_default();
    let ids = match tok.encode(&text) {
        Ok(ids) if ids.len() >= 16 => ids,
        _ => return fail("the reference text needs at least 16 tokens".into(), vec![]),
    };
    let n = ids.len();
    let (path, body) = server.completion_request(&text, 1, TOP, true);
    let requests = vec![super::api::Repro {
        path: path.clone(),
        body: body.clone(),
        note: "the text with echo: the server's logprob of every prompt token".into(),
    }];
    let got = match server.complete_body(&path, &body) {
        Ok(c) => c,
        Err(e) => return fail(format!("the echo request: {e}"), requests),
    };
    let n_prompt = got
        .prompt_tokens
        .unwrap_or(got.tokens.len().saturating_sub(1))
        .min(got.tokens.len());
    // A server that adds a BOS token reports one token more.
    let offset = match n_prompt.checked_sub(n) {
        Some(o @ (0 | 1)) => o,
        _ => {
            return CheckReport {
                name: NAME,
                verdict: Verdict::Skipped,
                summary: format!(
                    "tokenizers differ: the server counts {n_prompt} prompt tokens, the reference model {n} (is it the same model?)"
                ),
                numbers: Value::Null,
                requests,
            }
        }
    };
    let strings: Vec<String> = ids
        .iter()
        .map(|&i| tok.decode(&[i]).unwrap_or_default())
        .collect();
    if let Some(i) = (0..n).find(|&i| got.tokens[i + offset] != strings[i]) {
        return CheckReport {
            name: NAME,
            verdict: Verdict::Skipped,
            summary: format!(
                "tokenizers differ at prompt token {i}: the server has {:?}, the reference model {:?}",
                got.tokens[i + offset], strings[i]
            ),
            numbers: Value::Null,
            requests,
        };
    }
    let vocab = model.llama.config.vocab_size;
    let mut by_text: HashMap<String, u32> = HashMap::new();
    for id in 0..vocab as u32 {
        if let Ok(s) = tok.decode(&[id]) {
            by_text.entry(s).or_insert(id);
        }
    }
    let positions: Vec<u64> = (0..n as u64).collect();
    let mut cache = model.llama.new_cache(n);
    let rows: Vec<usize> = (0..n).collect();
    let hidden = match model.llama.forward_hidden(
        rope,
        &ids,
        &positions,
        &vec![true; n],
        &mut cache,
        &rows,
        None,
    ) {
        Ok(h) => h,
        Err(e) => return fail(format!("the reference model: {e}"), requests),
    };
    let d = model.llama.config.dim;
    // Row r of the reference predicts token r + 1. Server entry i (after the BOS offset) is,
    // by OpenAI's semantics, the distribution token i was drawn from: row i − 1.
    let mut divergence = vec![f64::NAN; n];
    let mut aligned_top = Vec::new();
    let mut shifted_top = Vec::new();
    let mut realigned = Vec::new();
    for (c, chunk) in hidden.chunks(CHUNK * d).enumerate() {
        let logits = model.llama.logits_from_hidden(chunk);
        for (k, row) in logits.chunks_exact(vocab).enumerate() {
            let r = c * CHUNK + k;
            let lse = log_sum_exp(row);
            let lp = |id: u32| f64::from(row[id as usize]) - lse;
            let top_err = |i: usize| -> Option<f64> {
                let entries = got.top.get(i + offset)?;
                let errs: Vec<f64> = entries
                    .iter()
                    .filter_map(|(s, v)| by_text.get(s).map(|&id| (v - lp(id)).abs()))
                    .collect();
                (!errs.is_empty()).then(|| mean(&errs))
            };
            if r + 1 < n {
                if let Some(s) = got.logprobs[r + 1 + offset] {
                    divergence[r + 1] = (s - lp(ids[r + 1])).abs();
                }
                if let Some(e) = top_err(r + 1) {
                    aligned_top.push(e);
                }
                // The same row compared with server entry r: a server one position late.
                if let Some(e) = top_err(r) {
                    shifted_top.push(e);
                }
                if let Some(v) = got.logprob_of(r + offset, &strings[r + 1]) {
                    realigned.push((v - lp(ids[r + 1])).abs());
                }
            }
        }
    }
    let measured: Vec<(usize, f64)> = divergence
        .iter()
        .enumerate()
        .filter(|(_, d)| d.is_finite())
        .map(|(i, &d)| (i, d))
        .collect();
    if measured.is_empty() {
        return fail(
            "the server gave no prompt logprobs (does it support echo with logprobs?)".into(),
            requests,
        );
    }
    let per_bin = measured.len().div_ceil(BINS);
    let bins: Vec<Value> = measured
        .chunks(per_bin)
        .map(|b| {
            let v: Vec<f64> = b.iter().map(|x| x.1).collect();
            json!({"from": b[0].0, "to": b[b.len() - 1].0, "mean_abs_logprob_diff": mean(&v),
                   "max_abs_logprob_diff": v.iter().copied().fold(0.0f64, f64::max)})
        })
        .collect();
    let bin_means: Vec<f64> = bins
        .iter()
        .map(|b| b["mean_abs_logprob_diff"].as_f64().unwrap_or(0.0))
        .collect();
    let all: Vec<f64> = measured.iter().map(|x| x.1).collect();
    let (aligned, shifted) = (mean(&aligned_top), mean(&shifted_top));
    // One position late when the next row explains the server's top lists far better.
    let is_shifted = !shifted_top.is_empty() && 4.0 * shifted < aligned;
    let worst_bin = bin_means.iter().copied().fold(0.0f64, f64::max);
    let (first, last) = (bin_means[0], bin_means[bin_means.len() - 1]);
    let grows = last > tolerance && last > 3.0 * first;
    let ctx = model.llama.config.context_length;
    let verdict = if is_shifted || worst_bin > tolerance {
        Verdict::Fail
    } else {
        Verdict::Pass
    };
    let summary = if is_shifted {
        format!(
            "the server's prompt logprobs are one position late: its entry for token i is the distribution after token i (predicting i + 1): top-logprob error {shifted:.3} against the next row vs {aligned:.3} against the right one; token_logprobs[i] is then token i's logprob under the wrong distribution (mean |Δ| {:.3}); realigned by one position the values match posenc's runner to mean |Δ| {:.3}",
            mean(&all),
            mean(&realigned)
        )
    } else if verdict == Verdict::Pass {
        format!(
            "prompt logprobs match posenc's runner at all {} positions (mean |Δ| per position bin ≤ {worst_bin:.3}, tolerance {tolerance})",
            all.len()
        )
    } else if grows {
        format!(
            "divergence grows with position, from mean |Δ| {first:.3} in the first bin to {last:.3} in the last (training context {ctx}): a RoPE scaling ignored or misapplied, or wrong position ids on long prompts"
        )
    } else {
        format!(
            "prompt logprobs diverge from posenc's runner at every position (mean |Δ| up to {worst_bin:.3} per bin, tolerance {tolerance}): other weights or quantization, another RoPE base or layout, or another model"
        )
    };
    CheckReport {
        name: NAME,
        verdict,
        summary,
        numbers: json!({
            "tokens": n, "bos_offset": offset, "training_context": ctx, "tolerance": tolerance,
            "mean_abs_logprob_diff": mean(&all), "bins": bins,
            "top_logprob_error_aligned": aligned, "top_logprob_error_shifted_by_one": shifted,
            "shifted_by_one": is_shifted, "realigned_mean_abs_logprob_diff": mean(&realigned),
            "per_position": divergence.iter().map(|&d| if d.is_finite() { json!(d) } else { Value::Null }).collect::<Vec<_>>(),
        }),
        requests,
    }
}
