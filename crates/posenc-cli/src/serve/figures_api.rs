//! The explorer's teaching figures (`posenc_learn::figures`) and the lab's length-generalization
//! curves (`posenc_learn::lab`), served as JSON.

use std::path::Path;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use posenc::relative::T5Buckets;
use posenc_learn::figures;
use serde_json::{json, Value};

use super::api::{blocking, sin_layout, AppState};
use super::params::{ApiError, ApiResult, Params};
use super::reply::Reply;
use posenc_learn::LearnError;

/// Largest lab result file read, in bytes.
const MAX_LAB_FILE: u64 = 16 * 1024 * 1024;
/// Most lab result files read (a full grid: 7 schemes × 5 tasks × 3 seeds × a few sizes).
const MAX_LAB_FILES: usize = 1024;

/// Routes of the figures and the lab results (merged into the API router).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/api/sinusoidal/similarity",
            get(|p: Params| blocking(move || similarity(&p))),
        )
        .route(
            "/api/rope/qk2d",
            get(|p: Params| blocking(move || qk2d(&p))),
        )
        .route(
            "/api/rope/decay_bound",
            get(|p: Params| blocking(move || decay_bound(&p))),
        )
        .route(
            "/api/compare/distance",
            get(|p: Params| blocking(move || distance(&p))),
        )
        .route(
            "/api/nope/counting",
            get(|p: Params| blocking(move || counting(&p))),
        )
        .route("/api/walk", get(|p: Params| blocking(move || walk(&p))))
        .route("/api/lab", get(lab))
}

/// Figures reject bad sizes themselves; those are the client's fault (400).
fn bad(e: LearnError) -> ApiError {
    ApiError::bad(e.message)
}

fn similarity(p: &Params) -> ApiResult<Reply> {
    let len = p.usize("len", 64, 1, figures::MAX_SIMILARITY_LEN)?;
    let start = p.usize("start", 0, 0, 1 << 20)?;
    let dim = p.usize("dim", 64, 2, figures::MAX_HEAD_DIM)?;
    let base = p.float("base", 10_000.0, 1.0001, 1e12)?;
    let layout = sin_layout(p)?;
    p.finish()?;
    let s = figures::sinusoidal_similarity(len, start, dim, base, layout).map_err(bad)?;
    Reply::from(json!({
        "positions": s.positions, "dim": s.dim, "base": s.base, "layout": s.layout,
        "by_offset": s.by_offset, "max_offset_deviation": s.max_offset_deviation,
        "self_dot": s.self_dot,
        "value_layout": "row-major [positions][positions], PE(i).PE(j) / PE(i).PE(i)",
    }))
    .with("values", &s.values)
}

fn qk2d(p: &Params) -> ApiResult<Reply> {
    let head_dim = p.usize("head_dim", 64, 2, figures::MAX_HEAD_DIM)?;
    let base = p.float("base", 10_000.0, 1.0001, 1e12)?;
    let pair = p.usize("pair", 8, 0, figures::MAX_HEAD_DIM / 2)?;
    let lim = figures::MAX_DISTANCE as i64;
    let m = p.int("m", 3, 0, lim)?;
    let n = p.int("n", 10, 0, lim)?;
    let s = p.int("s", 100, -lim, lim)?;
    let seed = p.int("seed", 1, 0, i64::MAX)? as u64;
    let max_offset = p.usize("max_offset", 64, 1, figures::MAX_DISTANCE)?;
    let points = p.usize("points", 257, 2, figures::MAX_POINTS)?;
    p.finish()?;
    Reply::of(
        &figures::qk_rotation(head_dim, base, pair, m, n, s, seed, max_offset, points)
            .map_err(bad)?,
    )
}

fn decay_bound(p: &Params) -> ApiResult<Reply> {
    let head_dim = p.usize("head_dim", 128, 2, figures::MAX_HEAD_DIM)?;
    let base = p.float("base", 10_000.0, 1.0001, 1e12)?;
    let max_distance = p.usize("max_distance", 256, 1, figures::MAX_DISTANCE)?;
    let points = p.usize("points", 257, 2, figures::MAX_POINTS)?;
    p.finish()?;
    // The criterion's first violation is searched at every distance: cap the scan's cost.
    if max_distance.saturating_mul(head_dim) > 16 << 20 {
        return Err(ApiError::bad(format!(
            "max_distance * head_dim = {max_distance} x {head_dim} exceeds the cap of {}",
            16 << 20
        )));
    }
    Reply::of(&figures::decay_bound(head_dim, base, max_distance, points).map_err(bad)?)
}

fn distance(p: &Params) -> ApiResult<Reply> {
    let max_distance = p.usize("max_distance", 1024, 1, figures::MAX_DISTANCE)?;
    let points = p.usize("points", 400, 2, figures::MAX_POINTS)?;
    let head_dim = p.usize("head_dim", 64, 2, figures::MAX_HEAD_DIM)?;
    let base = p.float("base", 10_000.0, 1.0001, 1e12)?;
    let heads = p.usize("heads", 8, 1, figures::MAX_HEADS)?;
    let t5 = T5Buckets {
        bidirectional: false,
        num_buckets: p.usize("num_buckets", 32, 2, 1024)?,
        max_distance: p.usize("t5_max_distance", 128, 2, figures::MAX_DISTANCE)?,
    };
    let seed = p.int("seed", 5, 0, i64::MAX)? as u64;
    p.finish()?;
    Reply::of(
        &figures::distance_profile(max_distance, points, head_dim, base, heads, t5, seed)
            .map_err(bad)?,
    )
}

fn counting(p: &Params) -> ApiResult<Reply> {
    let len = p.usize("len", 32, 1, figures::MAX_NOPE_LEN)?;
    p.finish()?;
    Reply::of(&figures::nope_counting(len).map_err(bad)?)
}

fn walk(p: &Params) -> ApiResult<Reply> {
    let scheme = p.choice(
        "scheme",
        "rope",
        &["nope", "sinusoidal", "learned", "rope", "alibi", "t5"],
    )?;
    let seed = p.int("seed", 2, 0, i64::MAX)? as u64;
    p.finish()?;
    Reply::of(&figures::walk(scheme, seed).map_err(bad)?)
}

/// The `*.json` files in `dir` down to three levels (`results/lab/SWEEP/cells/*.json`), sorted
/// and capped, parsed.
fn read_lab_files(dir: &Path) -> (Vec<String>, Vec<Value>, Vec<String>) {
    let mut files = Vec::new();
    let mut dirs = vec![(dir.to_path_buf(), 0)];
    while let Some((d, depth)) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() && depth < 3 {
                dirs.push((p, depth + 1));
            } else if kind.is_file() && p.extension().is_some_and(|x| x == "json") {
                files.push(p);
            }
        }
    }
    files.sort();
    files.truncate(MAX_LAB_FILES);
    let (mut names, mut docs, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    for f in files {
        let shown = f.strip_prefix(dir).unwrap_or(&f).display().to_string();
        let too_big = std::fs::metadata(&f).map_or(true, |m| m.len() > MAX_LAB_FILE);
        let parsed = (!too_big)
            .then(|| std::fs::read_to_string(&f).ok())
            .flatten()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok());
        match parsed {
            Some(v) => {
                names.push(shown);
                docs.push(v);
            }
            None => skipped.push(shown),
        }
    }
    (names, docs, skipped)
}

/// The lab's measured curves from the lab directory, or how to produce them.
async fn lab(State(state): State<Arc<AppState>>) -> Response {
    let dir = state.lab_dir.clone();
    blocking(move || {
        let (files, docs, skipped) = read_lab_files(&dir);
        let groups = posenc_learn::lab::lab_curves(&docs);
        Ok(json!({
            "lab_dir": dir.display().to_string(),
            "files": files,
            "unreadable": skipped,
            "groups": groups,
            "how_to_produce": format!(
                "posenc lab sweep --schemes nope,learned,sinusoidal,rope,alibi,t5 --tasks copy,reverse,addition --seeds 0,1,2 --out {}",
                dir.display()
            ),
        }))
    })
    .await
}
