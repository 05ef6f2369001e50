//! `posenc model serve`: an OpenAI-compatible completions server over posenc's Llama runner.
//!
//! It is the reference server that `posenc probe` is tested against, and, with `--inject-bug`,
//! the known-broken one: each bug is a classic position mistake of serving stacks, reproduced
//! inside the server's own batching, prefix cache or decode loop.
//!
//! Endpoints on 127.0.0.1: `POST /v1/completions` (greedy only; `max_tokens`, `logprobs` = top-k,
//! `echo` = prompt logprobs; `prompt` is a string or an array of token ids), `GET /v1/models`,
//! `POST /tokenize` (`{"prompt": TEXT}`, vLLM's shape; `content`/`input` are accepted too) and
//! `GET /health`. Errors are JSON: `{"error": {"message", "type", "param"}}` with status 4xx.
//!
//! How requests run:
//! * **Batching.** One worker thread owns the model. Requests that arrive within
//!   `--batch-window-ms` of the first queued one (up to `--max-batch`) run as one left-padded
//!   batch: the uncached prompt tails are padded to the longest, padding is masked out and each
//!   real token gets its own position (`cumsum(mask) − 1` plus the cached length). Each row runs
//!   through the runner with its own KV cache, which is what a batched kernel computes row by row;
//!   then all rows decode one token per step together.
//! * **Prefix cache.** After its prefill, an unpadded prompt of at least `--min-cached-prefix`
//!   tokens is kept (its KV cache, `--prefix-cache-entries` prompts, least recently used evicted).
//!   A later prompt sharing at least that many leading tokens with an entry reuses the longest such
//!   prefix (all but its last token when it is an exact repeat: the last one is recomputed for its
//!   logits) and prefills only the tail. Requests with `echo` skip the lookup, since they need the
//!   logits of every prompt token.

use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use posenc_model::diagnostics::{padded_positions, PAD_TOKEN};
use posenc_model::llama::{argmax, top_k, KvCache, RopeSetup, MAX_CACHE_TOKENS};
use posenc_model::{scaling, Model};
use serde_json::{json, Map, Value};

use crate::model_cmd::{rope_setup, RopeArgs};
use crate::serve::limits;

/// Most tokens one request may generate.
pub const MAX_NEW_TOKENS: usize = 1024;
/// Most top logprobs per position (OpenAI's limit for completions).
pub const MAX_LOGPROBS: usize = 20;
/// Requests waiting for the worker; more are answered 503.
const QUEUE_CAP: usize = 64;
/// Prompt tokens whose logits are computed at once for `echo` (bounds the logits buffer).
const ECHO_CHUNK: usize = 64;
/// Tokens held by all prefix-cache entries together (about 46 KB of keys and values per token on
/// SmolLM2-135M, so about 380 MB).
const PREFIX_CACHE_TOKENS: usize = 8192;

/// A classic position bug, reproduced inside the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InjectedBug {
    /// Every decoded token at position 0 (prefill is right).
    DecodePositionZero,
    /// Decoded token i at position i + 1.
    DecodeOffByOne,
    /// One position row, the most padded row's, for every row of a padded batch.
    SharedPositionRow,
    /// Prefill with the configured RoPE scaling, decode steps without it.
    ScalingDropped,
    /// A prompt served from the prefix cache gets positions from 0 for its uncached tail,
    /// instead of from the cached length.
    PrefixCacheOffset,
    /// Decode positions count the row's batch padding (the batch's padded length instead of the
    /// row's own length), so they depend on what else is in the batch.
    BatchDependentPosition,
}

/// Arguments of `posenc model serve`.
#[derive(clap::Args)]
pub struct ModelServeArgs {
    /// GGUF file to serve (default: the cached SmolLM2-135M-Instruct from `posenc model fetch`).
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,
    #[command(flatten)]
    rope: RopeArgs,
    /// Port on 127.0.0.1 (0 picks a free one; the address is printed on stderr).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Reproduce a classic position bug inside the server.
    #[arg(long, value_enum, value_name = "NAME")]
    inject_bug: Option<InjectedBug>,
    /// Model name reported by /v1/models and accepted in requests (default: the file name
    /// without `.gguf`).
    #[arg(long, value_name = "NAME")]
    served_model_name: Option<String>,
    /// Most requests run together as one padded batch (1 = no batching).
    #[arg(long, default_value_t = 8)]
    max_batch: usize,
    /// Milliseconds the batcher waits after the first queued request for others to join its batch.
    #[arg(long, default_value_t = 30)]
    batch_window_ms: u64,
    /// Prompts of at least this many tokens are kept in the prefix cache, and a cached prefix is
    /// reused when at least this many leading tokens match.
    #[arg(long, default_value_t = 128)]
    min_cached_prefix: usize,
    /// Prompts kept in the prefix cache (0 disables it).
    #[arg(long, default_value_t = 4)]
    prefix_cache_entries: usize,
}

/// The distribution at one position: the chosen token's logprob and the top-k.
struct Scored {
    token: u32,
    logprob: f32,
    top: Vec<(u32, f32)>,
}

/// What the worker returns for one request.
struct JobOut {
    /// `echo`: one entry per prompt token (`None` for the first, which has no context).
    prompt: Vec<Option<Scored>>,
    completion: Vec<Scored>,
    finish_reason: &'static str,
    cached_tokens: usize,
    batch_size: usize,
}

struct Job {
    tokens: Vec<u32>,
    max_tokens: usize,
    top: usize,
    echo: bool,
    reply: tokio::sync::oneshot::Sender<Result<JobOut, String>>,
}

/// Prompts kept with their KV caches (positions `0..len`, no padding).
struct PrefixCache {
    entries: Vec<(Vec<u32>, KvCache, u64)>,
    cap: usize,
    min_len: usize,
    clock: u64,
}

impl PrefixCache {
    /// The longest cached prefix of `tokens` (at least `min_len` tokens, at most all but the last
    /// token): a copy of its cache truncated to it, and its length.
    fn lookup(&mut self, tokens: &[u32]) -> Option<(KvCache, usize)> {
        self.clock += 1;
        let mut best: Option<(usize, usize)> = None;
        for (i, (cached, _, _)) in self.entries.iter().enumerate() {
            let lcp = cached
                .iter()
                .zip(tokens)
                .take_while(|(a, b)| a == b)
                .count();
            let usable = lcp.min(tokens.len().saturating_sub(1));
            if usable >= self.min_len.max(1) && best.is_none_or(|(_, b)| usable > b) {
                best = Some((i, usable));
            }
        }
        let (i, usable) = best?;
        self.entries[i].2 = self.clock;
        let mut cache = self.entries[i].1.clone();
        cache.truncate(usable);
        Some((cache, usable))
    }

    fn insert(&mut self, tokens: &[u32], cache: &KvCache) {
        if self.cap == 0 || tokens.len() < self.min_len.max(1) || tokens.len() > PREFIX_CACHE_TOKENS
        {
            return;
        }
        self.clock += 1;
        if let Some(e) = self.entries.iter_mut().find(|e| e.0 == tokens) {
            e.2 = self.clock;
            return;
        }
        let mut kept = cache.clone();
        kept.truncate(tokens.len());
        self.entries.push((tokens.to_vec(), kept, self.clock));
        // Evict least recently used entries past the entry cap or the token budget.
        loop {
            let total: usize = self.entries.iter().map(|e| e.0.len()).sum();
            if self.entries.len() <= self.cap && total <= PREFIX_CACHE_TOKENS {
                break;
            }
            let oldest = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.2)
                .map(|(i, _)| i)
                .unwrap_or(0);
            self.entries.remove(oldest);
        }
    }
}

/// The model, the RoPE it serves with, the injected bug and the prefix cache; owned by the worker.
struct Engine {
    model: Arc<Model>,
    rope: RopeSetup,
    bug: Option<InjectedBug>,
    cache: PrefixCache,
}

/// Chosen token's logprob and the top-k of `logits` (log-softmax in f64).
fn score(logits: &[f32], token: u32, k: usize) -> Scored {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&x| f64::from(x - max).exp()).sum();
    let lse = f64::from(max) + sum.ln();
    let lp = |x: f32| (f64::from(x) - lse) as f32;
    let top = if k == 0 {
        Vec::new()
    } else {
        top_k(logits, k)
            .into_iter()
            .map(|t| (t, lp(logits[t as usize])))
            .collect()
    };
    Scored {
        token,
        logprob: lp(logits[token as usize]),
        top,
    }
}

struct Row {
    cache: KvCache,
    reused: usize,
    pad: usize,
    last_logits: Vec<f32>,
    prompt: Vec<Option<Scored>>,
    completion: Vec<Scored>,
    finish: Option<&'static str>,
}

impl Engine {
    /// Runs `jobs` as one left-padded batch (see the module docs).
    fn run_batch(&mut self, jobs: &[Job]) -> Vec<Result<JobOut, String>> {
        let mut rows = Vec::with_capacity(jobs.len());
        for job in jobs {
            let hit = if job.echo {
                None
            } else {
                self.cache.lookup(&job.tokens)
            };
            let (cache, reused) =
                hit.unwrap_or_else(|| (self.model.llama.new_cache(MAX_CACHE_TOKENS), 0));
            rows.push(Row {
                cache,
                reused,
                pad: 0,
                last_logits: Vec::new(),
                prompt: Vec::new(),
                completion: Vec::new(),
                finish: None,
            });
        }
        let padded = jobs
            .iter()
            .zip(&rows)
            .map(|(j, r)| j.tokens.len() - r.reused)
            .max()
            .unwrap_or(0);
        let mut positions = Vec::with_capacity(jobs.len());
        for (job, row) in jobs.iter().zip(rows.iter_mut()) {
            let tail = job.tokens.len() - row.reused;
            row.pad = padded - tail;
            let mask: Vec<bool> = (0..padded).map(|t| t >= row.pad).collect();
            let offset = if self.bug == Some(InjectedBug::PrefixCacheOffset) {
                0
            } else {
                row.reused as u64
            };
            let p: Vec<u64> = padded_positions(&mask)
                .into_iter()
                .zip(&mask)
                .map(|(p, &m)| if m { p + offset } else { p })
                .collect();
            positions.push(p);
        }
        if self.bug == Some(InjectedBug::SharedPositionRow) {
            if let Some(most_padded) = (0..rows.len()).max_by_key(|&i| rows[i].pad) {
                let shared = positions[most_padded].clone();
                positions.iter_mut().for_each(|p| *p = shared.clone());
            }
        }
        let mut results: Vec<Option<String>> = vec![None; jobs.len()];
        for (i, (job, row)) in jobs.iter().zip(rows.iter_mut()).enumerate() {
            if let Err(e) = self.prefill(job, row, &positions[i], padded) {
                results[i] = Some(e.to_string());
            }
        }
        self.decode(jobs, &mut rows, &mut results);
        jobs.iter()
            .zip(rows)
            .zip(results)
            .map(|((_, row), err)| match err {
                Some(e) => Err(e),
                None => Ok(JobOut {
                    prompt: row.prompt,
                    completion: row.completion,
                    finish_reason: row.finish.unwrap_or("length"),
                    cached_tokens: row.reused,
                    batch_size: jobs.len(),
                }),
            })
            .collect()
    }

    fn prefill(
        &mut self,
        job: &Job,
        row: &mut Row,
        positions: &[u64],
        padded: usize,
    ) -> posenc_model::Result<()> {
        let llama = &self.model.llama;
        let tokens: Vec<u32> = std::iter::repeat_n(PAD_TOKEN, row.pad)
            .chain(job.tokens[row.reused..].iter().copied())
            .collect();
        let mask: Vec<bool> = (0..padded).map(|t| t >= row.pad).collect();
        let wanted: Vec<usize> = if job.echo {
            (row.pad..padded).collect()
        } else {
            vec![padded - 1]
        };
        let hidden = llama.forward_hidden(
            &self.rope,
            &tokens,
            positions,
            &mask,
            &mut row.cache,
            &wanted,
            None,
        )?;
        let d = llama.config.dim;
        if job.echo {
            // Row t of `hidden` predicts prompt token t + 1.
            row.prompt.push(None);
            for (c, chunk) in hidden.chunks(ECHO_CHUNK * d).enumerate() {
                let logits = llama.logits_from_hidden(chunk);
                let vocab = llama.config.vocab_size;
                for (r, l) in logits.chunks_exact(vocab).enumerate() {
                    let t = c * ECHO_CHUNK + r;
                    if t + 1 < job.tokens.len() {
                        row.prompt.push(Some(score(l, job.tokens[t + 1], job.top)));
                    } else {
                        row.last_logits = l.to_vec();
                    }
                }
            }
        } else {
            row.last_logits = llama.logits_from_hidden(&hidden);
        }
        if row.pad == 0 {
            self.cache.insert(&job.tokens, &row.cache);
        }
        Ok(())
    }

    /// All rows decode together, one token per step, until each has its tokens or its EOS.
    fn decode(&mut self, jobs: &[Job], rows: &mut [Row], results: &mut [Option<String>]) {
        let llama = &self.model.llama;
        let decode_rope = if self.bug == Some(InjectedBug::ScalingDropped) {
            llama.rope.clone()
        } else {
            self.rope.clone()
        };
        loop {
            let mut active = false;
            for ((job, row), err) in jobs.iter().zip(rows.iter_mut()).zip(results.iter_mut()) {
                if err.is_some() || row.finish.is_some() {
                    continue;
                }
                if row.completion.len() == job.max_tokens {
                    row.finish = Some("length");
                    continue;
                }
                let next = argmax(&row.last_logits);
                if Some(next) == self.model.eos_token {
                    row.finish = Some("stop");
                    continue;
                }
                row.completion.push(score(&row.last_logits, next, job.top));
                if row.completion.len() == job.max_tokens {
                    row.finish = Some("length");
                    continue;
                }
                // Real tokens before `next`: the prompt and the earlier generated ones.
                let real = (job.tokens.len() + row.completion.len() - 1) as u64;
                let pos = match self.bug {
                    Some(InjectedBug::DecodePositionZero) => 0,
                    Some(InjectedBug::DecodeOffByOne) => real + 1,
                    Some(InjectedBug::BatchDependentPosition) => real + row.pad as u64,
                    _ => real,
                };
                match llama.forward_rows_with(
                    &decode_rope,
                    &[next],
                    &[pos],
                    &[true],
                    &mut row.cache,
                    &[0],
                ) {
                    Ok(l) => {
                        row.last_logits = l;
                        active = true;
                    }
                    Err(e) => *err = Some(e.to_string()),
                }
            }
            if !active {
                break;
            }
        }
    }
}

fn worker(mut engine: Engine, rx: mpsc::Receiver<Job>, max_batch: usize, window: Duration) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let until = Instant::now() + window;
        while jobs.len() < max_batch {
            let left = until.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        // A client that gave up does not cost a batch row.
        jobs.retain(|j| !j.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        let results = engine.run_batch(&jobs);
        for (job, result) in jobs.into_iter().zip(results) {
            let _ = job.reply.send(result);
        }
    }
}

struct AppState {
    model: Arc<Model>,
    name: String,
    queue: mpsc::SyncSender<Job>,
    started: u64,
}

/// An OpenAI-shaped JSON error.
fn api_error(status: StatusCode, message: impl Into<String>, param: Option<&str>) -> Response {
    let kind = if status.is_client_error() {
        "invalid_request_error"
    } else {
        "server_error"
    };
    let body = json!({"error": {"message": message.into(), "type": kind, "param": param, "code": status.as_u16()}});
    (status, Json(body)).into_response()
}

fn bad(message: impl Into<String>, param: &str) -> Response {
    api_error(StatusCode::BAD_REQUEST, message, Some(param))
}

// The error is the finished 4xx answer, returned once per request: boxing it buys nothing.
#[allow(clippy::result_large_err)]
fn parse_object(body: &Bytes) -> Result<Map<String, Value>, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad("the body must be a JSON object", "body")),
        Err(e) => Err(bad(format!("the body is not valid JSON: {e}"), "body")),
    }
}

// The error is the finished 4xx answer, returned once per request: boxing it buys nothing.
#[allow(clippy::result_large_err)]
fn optional_usize(
    m: &Map<String, Value>,
    field: &str,
    max: usize,
    default: usize,
) -> Result<usize, Response> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .filter(|&n| n <= max as u64)
            .map(|n| n as usize)
            .ok_or_else(|| bad(format!("`{field}` must be an integer in 0..={max}"), field)),
    }
}

// The error is the finished 4xx answer, returned once per request: boxing it buys nothing.
#[allow(clippy::result_large_err)]
fn check_model(state: &AppState, m: &Map<String, Value>) -> Result<(), Response> {
    match m.get("model") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if *s == state.name => Ok(()),
        Some(other) => Err(api_error(
            StatusCode::NOT_FOUND,
            format!(
                "model {other} is not served here; this server serves {:?}",
                state.name
            ),
            Some("model"),
        )),
    }
}

struct Parsed {
    text: Option<String>,
    tokens: Vec<u32>,
    max_tokens: usize,
    top: Option<usize>,
    echo: bool,
}

// The error is the finished 4xx answer, returned once per request: boxing it buys nothing.
#[allow(clippy::result_large_err)]
fn parse_completion(state: &AppState, body: &Bytes) -> Result<Parsed, Response> {
    let m = parse_object(body)?;
    check_model(state, &m)?;
    let vocab = state.model.llama.config.vocab_size;
    let (text, tokens) =
        match m.get("prompt") {
            Some(Value::String(s)) => {
                let ids = state
                    .model
                    .tokenizer
                    .encode(s)
                    .map_err(|e| bad(format!("cannot tokenize `prompt`: {e}"), "prompt"))?;
                (Some(s.clone()), ids)
            }
            Some(Value::Array(a)) if a.iter().all(|v| v.is_u64()) => {
                let ids: Option<Vec<u32>> = a
                    .iter()
                    .map(|v| v.as_u64().filter(|&t| t < vocab as u64).map(|t| t as u32))
                    .collect();
                let ids = ids.ok_or_else(|| {
                    bad(
                        format!("`prompt` token ids must be < the vocabulary size {vocab}"),
                        "prompt",
                    )
                })?;
                (None, ids)
            }
            Some(Value::Array(_)) => return Err(bad(
                "`prompt` must be one string or one array of token ids (one prompt per request)",
                "prompt",
            )),
            _ => {
                return Err(bad(
                    "`prompt` is required: a string or an array of token ids",
                    "prompt",
                ))
            }
        };
    if tokens.is_empty() {
        return Err(bad("`prompt` has no tokens", "prompt"));
    }
    let max_tokens = optional_usize(&m, "max_tokens", MAX_NEW_TOKENS, 16)?;
    let top = match m.get("logprobs") {
        None | Some(Value::Null) => None,
        Some(_) => Some(optional_usize(&m, "logprobs", MAX_LOGPROBS, 0)?),
    };
    let echo = match m.get("echo") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("`echo` must be true or false", "echo")),
    };
    match m.get("temperature") {
        None | Some(Value::Null) => {}
        Some(v) if v.as_f64() == Some(0.0) => {}
        Some(_) => {
            return Err(bad(
                "only greedy decoding is served: `temperature` must be 0 (or absent)",
                "temperature",
            ))
        }
    }
    if !matches!(m.get("n"), None | Some(Value::Null))
        && m.get("n").and_then(Value::as_u64) != Some(1)
    {
        return Err(bad("`n` must be 1", "n"));
    }
    if m.get("stream").and_then(Value::as_bool) == Some(true) {
        return Err(bad(
            "streaming is not supported: `stream` must be false",
            "stream",
        ));
    }
    if tokens.len() + max_tokens > MAX_CACHE_TOKENS {
        return Err(bad(
            format!(
                "the prompt ({} tokens) plus `max_tokens` {max_tokens} exceeds the context of {MAX_CACHE_TOKENS} tokens",
                tokens.len()
            ),
            "prompt",
        ));
    }
    Ok(Parsed {
        text,
        tokens,
        max_tokens,
        top,
        echo,
    })
}

fn token_text(model: &Model, id: u32) -> String {
    model.tokenizer.decode(&[id]).unwrap_or_default()
}

/// OpenAI's legacy completions `logprobs` object.
fn logprobs_json(model: &Model, entries: &[Option<&Scored>], ids: &[u32], start: usize) -> Value {
    let mut tokens = Vec::new();
    let mut lps = Vec::new();
    let mut tops = Vec::new();
    let mut offsets = Vec::new();
    let mut offset = start;
    for (e, &id) in entries.iter().zip(ids) {
        let s = token_text(model, id);
        offsets.push(offset);
        offset += s.chars().count();
        tokens.push(s);
        match e {
            None => {
                lps.push(Value::Null);
                tops.push(Value::Null);
            }
            Some(sc) => {
                lps.push(json!(sc.logprob));
                let mut top = Map::new();
                for &(t, lp) in &sc.top {
                    // Two ids can decode to the same text; keep the likelier one.
                    top.entry(token_text(model, t)).or_insert(json!(lp));
                }
                tops.push(Value::Object(top));
            }
        }
    }
    json!({"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets})
}

async fn completions(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let req = match parse_completion(&state, &body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job = Job {
        tokens: req.tokens.clone(),
        max_tokens: req.max_tokens,
        top: req.top.unwrap_or(0),
        echo: req.echo,
        reply: tx,
    };
    if state.queue.try_send(job).is_err() {
        return api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{QUEUE_CAP} requests are already waiting; retry later"),
            None,
        );
    }
    let out = match rx.await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return api_error(StatusCode::BAD_REQUEST, e, Some("prompt")),
        Err(_) => {
            return api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the model worker stopped",
                None,
            )
        }
    };
    let model = &state.model;
    let completion_ids: Vec<u32> = out.completion.iter().map(|s| s.token).collect();
    let completion_text = model.tokenizer.decode(&completion_ids).unwrap_or_default();
    let prompt_text = req
        .text
        .clone()
        .unwrap_or_else(|| model.tokenizer.decode(&req.tokens).unwrap_or_default());
    let (text, logprobs) = if req.echo {
        let mut entries: Vec<Option<&Scored>> = out.prompt.iter().map(Option::as_ref).collect();
        entries.extend(out.completion.iter().map(Some));
        let ids: Vec<u32> = req.tokens.iter().chain(&completion_ids).copied().collect();
        (
            format!("{prompt_text}{completion_text}"),
            logprobs_json(model, &entries, &ids, 0),
        )
    } else {
        let entries: Vec<Option<&Scored>> = out.completion.iter().map(Some).collect();
        (
            completion_text,
            logprobs_json(
                model,
                &entries,
                &completion_ids,
                prompt_text.chars().count(),
            ),
        )
    };
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let body = json!({
        "id": format!("cmpl-{}-{created}", state.started),
        "object": "text_completion",
        "created": created,
        "model": state.name,
        "choices": [{
            "index": 0,
            "text": text,
            "logprobs": if req.top.is_some() { logprobs } else { Value::Null },
            "finish_reason": out.finish_reason,
        }],
        "usage": {
            "prompt_tokens": req.tokens.len(),
            "completion_tokens": completion_ids.len(),
            "total_tokens": req.tokens.len() + completion_ids.len(),
            "prompt_tokens_details": {"cached_tokens": out.cached_tokens},
        },
        "posenc": {"batch_size": out.batch_size},
    });
    Json(body).into_response()
}

async fn tokenize(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let m = match parse_object(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    if let Err(r) = check_model(&state, &m) {
        return r;
    }
    let text = ["prompt", "content", "input"]
        .iter()
        .find_map(|k| m.get(*k).and_then(Value::as_str));
    let Some(text) = text else {
        return bad("`prompt` (a string) is required", "prompt");
    };
    match state.model.tokenizer.encode(text) {
        Ok(ids) => {
            Json(json!({"tokens": ids, "count": ids.len(), "max_model_len": MAX_CACHE_TOKENS}))
                .into_response()
        }
        Err(e) => bad(format!("cannot tokenize `prompt`: {e}"), "prompt"),
    }
}

async fn models(State(state): State<Arc<AppState>>) -> Response {
    Json(json!({"object": "list", "data": [{
        "id": state.name, "object": "model", "owned_by": "posenc", "created": state.started,
        "max_model_len": MAX_CACHE_TOKENS,
    }]}))
    .into_response()
}

async fn health() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

async fn not_found() -> Response {
    api_error(
        StatusCode::NOT_FOUND,
        "no such endpoint; this server has POST /v1/completions, GET /v1/models, POST /tokenize, GET /health",
        None,
    )
}

fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(models))
        .route("/tokenize", post(tokenize))
        .route("/health", get(health))
        .fallback(not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn(limits::limit_body))
}

/// Runs `posenc model serve` until Ctrl-C.
pub fn run(args: ModelServeArgs) -> anyhow::Result<i32> {
    anyhow::ensure!(
        (1..=64).contains(&args.max_batch),
        "--max-batch must be in 1..=64, got {}",
        args.max_batch
    );
    anyhow::ensure!(
        args.batch_window_ms <= 10_000,
        "--batch-window-ms must be at most 10000, got {}",
        args.batch_window_ms
    );
    let path = match &args.model {
        Some(p) => p.clone(),
        None => posenc_model::fetch::ensure_model()?,
    };
    let model = Model::load(&path).with_context(|| format!("--model {}", path.display()))?;
    let rope = rope_setup(&model, &args.rope)?;
    let name = args.served_model_name.clone().unwrap_or_else(|| {
        path.file_name()
            .map(|n| n.to_string_lossy().trim_end_matches(".gguf").to_string())
            .unwrap_or_else(|| "posenc".into())
    });
    let model = Arc::new(model);
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let engine = Engine {
        model: model.clone(),
        rope: rope.clone(),
        bug: args.inject_bug,
        cache: PrefixCache {
            entries: Vec::new(),
            cap: args.prefix_cache_entries,
            min_len: args.min_cached_prefix,
            clock: 0,
        },
    };
    let (tx, rx) = mpsc::sync_channel(QUEUE_CAP);
    let window = Duration::from_millis(args.batch_window_ms);
    let max_batch = args.max_batch;
    std::thread::Builder::new()
        .name("posenc-model-worker".into())
        .spawn(move || worker(engine, rx, max_batch, window))
        .context("starting the model worker")?;
    let state = Arc::new(AppState {
        model,
        name,
        queue: tx,
        started,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let bug = args.inject_bug;
    let code = runtime.block_on(async move {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], args.port));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("--port {}: cannot listen on {addr}", args.port))?;
        let local = listener.local_addr().context("reading the bound address")?;
        eprintln!(
            "posenc model server listening on http://{local}/ (model {:?}, RoPE scaling {}, injected bug: {}); Ctrl-C to stop",
            state.name,
            scaling::describe(&rope.params),
            bug.map(|b| format!("{b:?}")).unwrap_or_else(|| "none".into())
        );
        let server_limits = limits::Limits {
            // A long prompt on a slow machine can take minutes before the first answer byte.
            idle_timeout: Duration::from_secs(1800),
            ..limits::Limits::default()
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(limits::serve(listener, app(state), server_limits, async {
            stop_rx.await.ok();
        }));
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        eprintln!("posenc model server: shutting down");
        stop_tx.send(()).ok();
        let _ = tokio::time::timeout(Duration::from_secs(3), server).await;
        anyhow::Ok(0)
    });
    runtime.shutdown_timeout(Duration::from_millis(500));
    code
}
