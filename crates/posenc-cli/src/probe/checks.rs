//! The probe's checks. Each returns a [`CheckReport`]: a verdict, the numbers behind it and the
//! requests that reproduce it.

use serde_json::{json, Value};

use super::api::{Completion, Repro, Server};
use super::texts;

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Nothing wrong found.
    Pass,
    /// A position problem found.
    Fail,
    /// Measured, with no pass/fail threshold (passkey without `--passkey-min`).
    Info,
    /// Could not run (the server lacks what it needs); the summary says why.
    Skipped,
    /// The server failed during the check (error answer, timeout).
    Error,
}

/// One check's result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckReport {
    /// Check name.
    pub name: &'static str,
    /// Verdict.
    pub verdict: Verdict,
    /// One or two sentences: what was compared and what came out.
    pub summary: String,
    /// The numbers behind the verdict.
    pub numbers: Value,
    /// Requests that reproduce the finding (or the comparison, on a pass).
    pub requests: Vec<Repro>,
}

impl CheckReport {
    fn error(name: &'static str, what: &str, e: String, requests: Vec<Repro>) -> CheckReport {
        CheckReport {
            name,
            verdict: Verdict::Error,
            summary: format!("{what}: {e}"),
            numbers: Value::Null,
            requests,
        }
    }
}

/// Thresholds of the comparisons (nats). The defaults and the measurements behind them are in
/// [`super::ProbeArgs`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct Tolerances {
    /// Top-1 disagreements count only where the compared step's top-1 − top-2 margin exceeds this.
    pub tie_margin: f64,
    /// Largest |Δ logprob| accepted between decode and prefill of the same text.
    pub decode: f64,
    /// Largest |Δ logprob| accepted between a prompt alone and in a batch.
    pub batch: f64,
    /// Largest |Δ logprob| accepted between a cold prompt and the same prompt from the cache.
    pub prefix: f64,
}

/// Per-step comparison of two completions of the same text.
#[derive(Debug, Clone, serde::Serialize)]
struct StepCompare {
    step: usize,
    /// Sampled tokens.
    token_a: String,
    token_b: String,
    /// Most likely tokens by each side's logprobs.
    top1_a: Option<String>,
    top1_b: Option<String>,
    margin_a: Option<f64>,
    /// |Δ logprob| of `top1_a` between the two (None when `b` does not list it).
    logprob_diff: Option<f64>,
}

/// Compares `a` and `b` step by step while their sampled tokens agree (the texts differ after
/// that). Returns the steps, the worst |Δ logprob| and the first step whose most likely tokens
/// differ at a top-1 margin above the tie threshold.
fn compare_completions(
    a: &Completion,
    b: &Completion,
    tol: &Tolerances,
) -> (Vec<StepCompare>, f64, Option<usize>) {
    let mut steps = Vec::new();
    let mut worst = 0.0f64;
    let mut bad_split = None;
    for i in 0..a.tokens.len().min(b.tokens.len()) {
        let (top_a, top_b) = (a.top1(i), b.top1(i));
        let diff = top_a.and_then(|t| Some((a.logprob_of(i, t)? - b.logprob_of(i, t)?).abs()));
        if let Some(d) = diff {
            worst = worst.max(d);
        }
        let margin = a.margin(i);
        steps.push(StepCompare {
            step: i,
            token_a: a.tokens[i].clone(),
            token_b: b.tokens[i].clone(),
            top1_a: top_a.map(str::to_string),
            top1_b: top_b.map(str::to_string),
            margin_a: margin.is_finite().then_some(margin),
            logprob_diff: diff,
        });
        if top_a != top_b && margin > tol.tie_margin && bad_split.is_none() {
            bad_split = Some(i);
        }
        if a.tokens[i] != b.tokens[i] {
            break;
        }
    }
    (steps, worst, bad_split)
}

fn repro(
    server: &Server,
    prompt: &str,
    max_tokens: usize,
    top: usize,
    echo: bool,
    note: &str,
) -> Repro {
    let (path, body) = server.completion_request(prompt, max_tokens, top, echo);
    Repro {
        path,
        body,
        note: note.to_string(),
    }
}

/// Top logprobs requested from the server.
pub const TOP: usize = 5;

/// decode-consistency: greedy decode vs prefill of the same prefix, step by step.
pub fn decode_consistency(server: &Server, n_tokens: usize, tol: &Tolerances) -> CheckReport {
    const NAME: &str = "decode-consistency";
    let prompt = texts::DECODE_PROMPT;
    let gen_repro = repro(
        server,
        prompt,
        n_tokens,
        TOP,
        false,
        "greedy decode (the server's decode path)",
    );
    let generated = match server.complete(prompt, n_tokens, TOP, false) {
        Ok(c) if c.tokens.len() >= 2 => c,
        Ok(c) => {
            return CheckReport {
                name: NAME,
                verdict: Verdict::Skipped,
                summary: format!(
                    "the server generated {} token(s) with logprobs; at least 2 are needed (does it return `logprobs`?)",
                    c.tokens.len()
                ),
                numbers: Value::Null,
                requests: vec![gen_repro],
            }
        }
        Err(e) => return CheckReport::error(NAME, "greedy generation", e, vec![gen_repro]),
    };
    let base = server.tokenize(prompt).ok();
    let mut steps = Vec::new();
    let mut failures = Vec::new();
    let mut worst = 0.0f64;
    let mut skipped = 0;
    let mut requests = vec![gen_repro];
    for k in 1..generated.tokens.len() {
        let text = format!("{prompt}{}", generated.tokens[..k].concat());
        // The prefix must tokenize back to the prompt's tokens plus the k generated ones, or
        // the prefill path would see other tokens.
        if let Some(base) = &base {
            match server.tokenize(&text) {
                Ok(ids) if ids.len() == base.len() + k && ids.starts_with(base) => {}
                Ok(_) => {
                    skipped += 1;
                    continue;
                }
                Err(e) => return CheckReport::error(NAME, "tokenize", e, requests),
            }
        }
        let r = match server.complete(&text, 1, TOP, false) {
            Ok(r) if !r.tokens.is_empty() => r,
            Ok(_) => {
                skipped += 1;
                continue;
            }
            Err(e) => {
                requests.push(repro(
                    server,
                    &text,
                    1,
                    TOP,
                    false,
                    &format!("prefill of prompt + generated[..{k}]"),
                ));
                return CheckReport::error(NAME, &format!("prefill step {k}"), e, requests);
            }
        };
        // Most likely tokens of the decode step and of the prefill, by their logprobs.
        let decode_tok = generated.top1(k).unwrap_or_default().to_string();
        let prefill_tok = r.top1(0).unwrap_or_default().to_string();
        let margin = generated.margin(k);
        let diff = match (
            generated.logprob_of(k, &decode_tok),
            r.logprob_of(0, &decode_tok),
        ) {
            (Some(a), Some(b)) => Some((a - b).abs()),
            _ => None,
        };
        worst = worst.max(diff.unwrap_or(0.0));
        let disagree = prefill_tok != decode_tok && margin > tol.tie_margin;
        let too_far = diff.is_some_and(|d| d > tol.decode);
        if (disagree || too_far) && failures.len() < 3 {
            requests.push(repro(
                server,
                &text,
                1,
                TOP,
                false,
                &format!(
                    "prefill of prompt + generated[..{k}]: top-1 {prefill_tok:?}, decode step {k}: top-1 {decode_tok:?} (|Δ logprob| {diff:?})",
                ),
            ));
        }
        if disagree || too_far {
            failures.push(k);
        }
        steps.push(json!({
            "step": k, "sampled": generated.tokens[k], "decode_top1": decode_tok, "prefill_top1": prefill_tok,
            "decode_margin": finite(margin), "logprob_diff": diff,
        }));
    }
    let compared = steps.len();
    let verdict = if compared == 0 {
        Verdict::Skipped
    } else if failures.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    let summary = match verdict {
        Verdict::Pass => format!(
            "decode and prefill agree at all {compared} steps (max |Δ logprob| {worst:.2e} ≤ {}; {skipped} steps skipped where the text retokenizes differently)",
            tol.decode
        ),
        Verdict::Fail => format!(
            "decode and prefill disagree at {} of {compared} steps (first at step {}; max |Δ logprob| {worst:.3}): decoded tokens get other positions or another cache than a prefill of the same text (wrong decode position ids, KV-cache misuse, or a scaling applied in one path only)",
            failures.len(), failures[0]
        ),
        _ => format!("no step could be compared ({skipped} skipped: the generated text retokenizes differently)"),
    };
    CheckReport {
        name: NAME,
        verdict,
        summary,
        numbers: json!({
            "generated": generated.tokens, "compared": compared, "skipped": skipped,
            "failing_steps": failures, "max_abs_logprob_diff": worst, "tolerances": tol, "steps": steps,
        }),
        requests,
    }
}

fn finite(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

/// batch-invariance: prompts of different lengths alone, then all at once.
pub fn batch_invariance(server: &Server, n_tokens: usize, tol: &Tolerances) -> CheckReport {
    const NAME: &str = "batch-invariance";
    let prompts = texts::batch_prompts();
    let requests: Vec<Repro> = prompts
        .iter()
        .map(|p| {
            repro(
                server,
                p,
                n_tokens,
                TOP,
                false,
                "sent alone, then all of these at once",
            )
        })
        .collect();
    let mut alone = Vec::new();
    for p in &prompts {
        match server.complete(p, n_tokens, TOP, false) {
            Ok(c) => alone.push(c),
            Err(e) => return CheckReport::error(NAME, "a prompt alone", e, requests),
        }
    }
    let (path, _) = server.completion_request(prompts[0], n_tokens, TOP, false);
    let bodies: Vec<Value> = prompts
        .iter()
        .map(|p| server.completion_request(p, n_tokens, TOP, false).1)
        .collect();
    let answers = server.client.post_concurrently(&path, &bodies);
    let mut rows = Vec::new();
    let mut failing = Vec::new();
    let mut worst = 0.0f64;
    let mut batch_sizes = Vec::new();
    for (i, (a, answer)) in alone.iter().zip(answers).enumerate() {
        let answer = match answer {
            Ok(v) => v,
            Err(e) => {
                return CheckReport::error(NAME, "the concurrent requests", e.to_string(), requests)
            }
        };
        batch_sizes.push(answer["posenc"]["batch_size"].as_u64());
        let b = match server.parse(&answer) {
            Ok(b) => b,
            Err(e) => return CheckReport::error(NAME, "the concurrent requests", e, requests),
        };
        if a.tokens.is_empty() {
            return CheckReport {
                name: NAME,
                verdict: Verdict::Skipped,
                summary: "the server returned no logprobs".into(),
                numbers: Value::Null,
                requests,
            };
        }
        let (steps, w, split) = compare_completions(a, &b, tol);
        worst = worst.max(w);
        let bad = split.is_some() || w > tol.batch;
        if bad {
            failing.push(i);
        }
        rows.push(json!({
            "prompt": i, "alone": a.tokens, "together": b.tokens, "max_abs_logprob_diff": w,
            "first_disagreement": split, "steps": steps,
        }));
    }
    let known: Vec<u64> = batch_sizes.iter().flatten().copied().collect();
    let batch_note = if known.is_empty() {
        "the server does not say how it batched them".to_string()
    } else {
        format!("the server reports batch sizes {known:?}")
    };
    let verdict = if failing.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    let summary = if failing.is_empty() {
        format!(
            "{} prompts of different lengths give the same greedy tokens alone and sent at once (max |Δ logprob| {worst:.2e} ≤ {}; {batch_note})",
            prompts.len(),
            tol.batch
        )
    } else {
        format!(
            "prompts {failing:?} change when sent together with others (max |Δ logprob| {worst:.3}; {batch_note}): positions depend on the batch (padding counted in position ids, one position row shared by padded rows, or continuous-batching offsets)"
        )
    };
    CheckReport {
        name: NAME,
        verdict,
        summary,
        numbers: json!({"prompts": prompts.len(), "failing_prompts": failing, "max_abs_logprob_diff": worst,
                        "tolerances": tol, "rows": rows}),
        requests,
    }
}

/// prefix-cache: a long prompt twice, then a prompt sharing its prefix twice.
pub fn prefix_cache(server: &Server, n_tokens: usize, tol: &Tolerances, nonce: u64) -> CheckReport {
    const NAME: &str = "prefix-cache";
    let long = texts::long_prefix(nonce);
    let a = format!("{long}{}", texts::ENDING_A);
    let b = format!("{long}{}", texts::ENDING_B);
    let order = [
        (
            &a,
            "A, cold (the run's nonce makes its prefix new to the server)",
        ),
        (&a, "A again: served from the prefix cache"),
        (&b, "B: shares A's long prefix (a partial cache hit)"),
        (&b, "B again: its own prefix is cached now"),
    ];
    let requests: Vec<Repro> = order
        .iter()
        .map(|(p, note)| repro(server, p, n_tokens, TOP, false, note))
        .collect();
    let mut got = Vec::new();
    for (p, _) in order {
        match server.complete(p, n_tokens, TOP, false) {
            Ok(c) if !c.tokens.is_empty() => got.push(c),
            Ok(_) => {
                return CheckReport {
                    name: NAME,
                    verdict: Verdict::Skipped,
                    summary: "the server returned no logprobs".into(),
                    numbers: Value::Null,
                    requests,
                }
            }
            Err(e) => return CheckReport::error(NAME, "a prefix-cache request", e, requests),
        }
    }
    let prompt_tokens = server.tokenize(&a).map(|t| t.len()).ok();
    let mut pairs = Vec::new();
    let mut failing = Vec::new();
    let mut worst = 0.0f64;
    for (label, (x, y)) in [
        ("A cold vs A repeated", (0, 1)),
        ("B (partial hit) vs B repeated", (2, 3)),
    ] {
        let (steps, w, split) = compare_completions(&got[x], &got[y], tol);
        worst = worst.max(w);
        if split.is_some() || w > tol.prefix {
            failing.push(label);
        }
        pairs.push(
            json!({"pair": label, "max_abs_logprob_diff": w, "first_disagreement": split,
                          "tokens": [got[x].tokens, got[y].tokens], "steps": steps}),
        );
    }
    let verdict = if failing.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    let summary = if failing.is_empty() {
        format!(
            "a {}-token prompt and a prompt sharing its prefix give the same tokens cold and from the cache (max |Δ logprob| {worst:.2e} ≤ {})",
            prompt_tokens.map(|n| n.to_string()).unwrap_or_else(|| "long".into()),
            tol.prefix
        )
    } else {
        format!(
            "{} differ (max |Δ logprob| {worst:.3}): requests served from the prefix cache do not match a cold one (cached keys reused at a wrong offset, or the uncached tail given positions from 0)",
            failing.join(" and ")
        )
    };
    CheckReport {
        name: NAME,
        verdict,
        summary,
        numbers: json!({"prompt_tokens": prompt_tokens, "failing": failing, "max_abs_logprob_diff": worst,
                        "tolerances": tol, "pairs": pairs}),
        requests,
    }
}
