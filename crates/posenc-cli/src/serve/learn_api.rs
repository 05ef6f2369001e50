//! The learning path under `/api/learn/` (exercises, answer checks, walkthroughs, the advisor,
//! the predict-then-reveal questions) and the why-position demo (`/api/why`), from the
//! `posenc_learn` crate, served as JSON.
//!
//! Every answer is computed by `posenc_learn` on the server; the page only shows it. Errors of the
//! learning path become 400 JSON (`{"error": message}`), except a library failure (500).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{blocking, blocking_heavy};
use super::params::{ApiError, ApiResult, Params};
use super::reply::Reply;
use posenc_learn::{self as learn, AdviceRequest, Arch, LearnError, LearnErrorKind, Part};

/// Largest seed: the largest integer a browser's `Number` holds exactly (2^53 - 1).
pub const MAX_SEED: u64 = (1 << 53) - 1;
/// Largest answer text, in characters (the longest real answer, exercise 10's plan, is ~200).
pub const MAX_ANSWER_CHARS: usize = 4096;
/// Largest body of `POST /api/learn/check`, in bytes.
pub const MAX_CHECK_BODY: usize = 16 * 1024;
/// Largest training or target length of the advisor: its Men et al. bound scans every distance
/// below the target (about 2 s at this cap in release).
pub const MAX_ADVISE_LEN: usize = 131_072;
/// Largest body of `POST /api/learn/predict`, in bytes.
pub const MAX_PREDICT_BODY: usize = 1024;

/// Routes under `/api/learn/` (merged into the API router).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/api/learn/exercises",
            get(|p: Params| blocking(move || exercises(&p))),
        )
        .route(
            "/api/learn/instance",
            get(|p: Params| blocking(move || instance(&p))),
        )
        .route(
            "/api/learn/check",
            get(|p: Params| blocking(move || check_query(&p))).post(check_post),
        )
        .route(
            "/api/learn/solution",
            get(|p: Params| blocking(move || solution(&p))),
        )
        .route(
            "/api/learn/topics",
            get(|p: Params| blocking(move || topics(&p))),
        )
        .route(
            "/api/learn/explain",
            get(|p: Params| blocking(move || explain(&p))),
        )
        .route(
            "/api/learn/advise",
            get(|p: Params| blocking_heavy(move || advise(&p))),
        )
        .route(
            "/api/learn/predictions",
            get(|p: Params| blocking(move || predictions(&p))),
        )
        .route("/api/learn/predict", axum::routing::post(predict_post))
        .route("/api/why", get(|p: Params| blocking(move || why(&p))))
}

/// A learning-path error as an API error: 400 for anything the request got wrong, 500 when the
/// library failed on a generated instance (a bug, not the client's fault).
fn learn_error(e: LearnError) -> ApiError {
    let status = match e.kind {
        LearnErrorKind::Library => StatusCode::INTERNAL_SERVER_ERROR,
        LearnErrorKind::UnknownExercise
        | LearnErrorKind::UnknownTopic
        | LearnErrorKind::MalformedAnswer
        | LearnErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
    };
    ApiError {
        status,
        message: e.message,
    }
}

fn to_json(value: &impl serde::Serialize) -> ApiResult<Value> {
    serde_json::to_value(value).map_err(|e| ApiError::bad(format!("cannot serialise: {e}")))
}

/// `n` (1..=10, default 1) and `seed` (0..=2^53-1, default 0).
fn exercise_and_seed(p: &Params) -> ApiResult<(u32, u64)> {
    let n = p.int("n", 1, 1, i64::from(learn::EXERCISE_COUNT))? as u32;
    let seed = p.int("seed", 0, 0, MAX_SEED as i64)? as u64;
    Ok((n, seed))
}

fn part(p: &Params, default: &str) -> ApiResult<Part> {
    p.choice("part", default, &["a", "b", "c"])?
        .parse()
        .map_err(learn_error)
}

fn exercises(p: &Params) -> ApiResult<Value> {
    p.finish()?;
    Ok(json!({ "count": learn::EXERCISE_COUNT, "exercises": learn::list_exercises() }))
}

fn instance(p: &Params) -> ApiResult<Value> {
    let (n, seed) = exercise_and_seed(p)?;
    p.finish()?;
    to_json(&learn::instance(n, seed).map_err(learn_error)?)
}

/// Checks one answer; a wrong answer is a 200 verdict with `correct: false` and a hint.
fn check_answer(n: u32, seed: u64, part: Part, answer: &str) -> ApiResult<Value> {
    if answer.chars().count() > MAX_ANSWER_CHARS {
        return Err(ApiError::bad(format!(
            "`answer` is longer than {MAX_ANSWER_CHARS} characters"
        )));
    }
    if answer.trim().is_empty() {
        return Err(ApiError::bad("`answer` is empty"));
    }
    to_json(&learn::check(n, seed, part, answer).map_err(learn_error)?)
}

fn check_query(p: &Params) -> ApiResult<Value> {
    let (n, seed) = exercise_and_seed(p)?;
    let part = part(p, "a")?;
    let answer = p.text("answer", "", MAX_ANSWER_CHARS)?;
    p.finish()?;
    check_answer(n, seed, part, &answer)
}

/// Body of `POST /api/learn/check`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckBody {
    n: u32,
    seed: u64,
    part: String,
    answer: String,
}

/// The bytes of a request body of at most `max` bytes (413 past it, the reader's own status
/// when the body cannot be read).
fn body_bytes(body: Result<Bytes, BytesRejection>, max: usize) -> ApiResult<Bytes> {
    let bytes = body.map_err(|e| ApiError {
        status: e.status(),
        message: format!("cannot read body: {}", e.body_text()),
    })?;
    if bytes.len() > max {
        return Err(ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("body is larger than the limit of {max} bytes"),
        });
    }
    Ok(bytes)
}

async fn check_post(body: Result<Bytes, BytesRejection>) -> Response {
    let bytes = match body_bytes(body, MAX_CHECK_BODY) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    blocking(move || {
        let body: CheckBody = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::bad(format!(
                "body must be JSON {{\"n\", \"seed\", \"part\", \"answer\"}}: {e}"
            ))
        })?;
        if body.n == 0 || body.n > learn::EXERCISE_COUNT {
            return Err(ApiError::bad(format!(
                "`n` must be in 1..={}, got {}",
                learn::EXERCISE_COUNT,
                body.n
            )));
        }
        if body.seed > MAX_SEED {
            return Err(ApiError::bad(format!(
                "`seed` must be in 0..={MAX_SEED}, got {}",
                body.seed
            )));
        }
        let part: Part = body.part.parse().map_err(learn_error)?;
        check_answer(body.n, body.seed, part, &body.answer)
    })
    .await
}

/// An answer `check` accepts. Instances are public functions of their seed, so this reveals
/// nothing a client could not compute; the page itself never asks for it (tests and scripts do).
fn solution(p: &Params) -> ApiResult<Value> {
    let (n, seed) = exercise_and_seed(p)?;
    let part = part(p, "a")?;
    p.finish()?;
    let answer = learn::solution(n, seed, part).map_err(learn_error)?;
    Ok(json!({ "n": n, "seed": seed, "part": part, "answer": answer }))
}

fn topics(p: &Params) -> ApiResult<Value> {
    p.finish()?;
    Ok(json!({ "topics": learn::TOPICS }))
}

fn explain(p: &Params) -> ApiResult<Value> {
    let topic = p.text("topic", learn::TOPICS[0], 64)?;
    p.finish()?;
    to_json(&learn::explain(&topic).map_err(learn_error)?)
}

fn advise(p: &Params) -> ApiResult<Value> {
    let train_len = p.usize("train_len", 4096, 1, MAX_ADVISE_LEN)?;
    let target_len = p.usize("target_len", 32_768, 1, MAX_ADVISE_LEN)?;
    let arch = match p.choice("arch", "decoder", &["decoder", "encoder"])? {
        "encoder" => Arch::Encoder,
        _ => Arch::Decoder,
    };
    let kv_cache = p.bool("kv_cache", true)?;
    let retrieval = p.bool("retrieval", false)?;
    let head_dim = p.usize("head_dim", learn::DEFAULT_HEAD_DIM, 2, learn::MAX_HEAD_DIM)?;
    p.finish()?;
    let req = AdviceRequest {
        train_len,
        target_len,
        arch,
        kv_cache,
        retrieval,
        head_dim,
    };
    // The bound behind the advice costs up to seconds and depends only on the request: keep
    // recent answers (the form re-asks the same question as the user toggles options back).
    type Key = (usize, usize, bool, bool, bool, usize);
    static ADVICE: OnceLock<Mutex<HashMap<Key, Value>>> = OnceLock::new();
    let key = (
        train_len,
        target_len,
        arch == Arch::Encoder,
        kv_cache,
        retrieval,
        head_dim,
    );
    let cache = ADVICE.get_or_init(Default::default);
    if let Some(hit) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(hit);
    }
    let advice = to_json(&learn::advise(&req).map_err(learn_error)?)?;
    if let Ok(mut c) = cache.lock() {
        if c.len() >= 256 {
            c.clear();
        }
        c.insert(key, advice.clone());
    }
    Ok(advice)
}

fn predictions(p: &Params) -> ApiResult<Value> {
    p.finish()?;
    Ok(json!({ "predictions": learn::predictions().map_err(learn_error)? }))
}

/// Body of `POST /api/learn/predict`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PredictBody {
    id: String,
    choice: String,
}

async fn predict_post(body: Result<Bytes, BytesRejection>) -> Response {
    let bytes = match body_bytes(body, MAX_PREDICT_BODY) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    blocking(move || {
        let body: PredictBody = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad(format!("body must be JSON {{\"id\", \"choice\"}}: {e}")))?;
        to_json(&learn::check_prediction(&body.id, &body.choice).map_err(learn_error)?)
    })
    .await
}

/// The why-position demo: a toy head over two word orders (`posenc_learn::why_position`).
fn why(p: &Params) -> ApiResult<Reply> {
    let scheme: learn::WhyScheme = p
        .choice(
            "scheme",
            "none",
            &["none", "sinusoidal", "learned", "rope", "alibi", "t5"],
        )?
        .parse()
        .map_err(learn_error)?;
    let a = p.text("a", "the dog bit the man", 200)?;
    let b = p.text("b", "the man bit the dog", 200)?;
    let seed = p.int("seed", 7, 0, MAX_SEED as i64)? as u64;
    p.finish()?;
    Reply::of(&learn::why_position(&learn::WhyRequest { scheme, a, b, seed }).map_err(learn_error)?)
}
