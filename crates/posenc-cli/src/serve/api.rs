//! JSON endpoints of the explorer, one per computation (listed in `assets/API.md`).
//!
//! Each handler reads validated [`Params`], computes with the posenc library on a blocking
//! thread (in one of two bounded pools, [`super::pools`]: slow endpoints apart), and answers JSON. Heatmaps over long position ranges are
//! sampled to at most `width` columns (one per pixel column of the canvas) so the response size
//! is bounded by `width x rows`, not by the sequence length.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use posenc::attention::{self, AttentionOptions, HeadConfig, Mask, Scheme};
use posenc::diagnostics;
use posenc::rope::{
    self, Llama3Params, LongRopeParams, Precision, RopeFrequencies, RopeLayout, RopeParams,
    RopeScaling, YarnParams,
};

use super::params::{check_product, ApiError, ApiResult, Params};
use super::reply::Reply;
use posenc::alibi;
use posenc::learned::LearnedTable;
use posenc::relative::{self, T5Buckets};
use posenc::sinusoidal::{self, SinusoidalLayout};

/// Largest sequence length of a table (`len`).
pub const MAX_LEN: usize = 131_072;
/// Largest position range sampled for RoPE angle maps (only `width` columns are computed).
pub const MAX_LONG_LEN: usize = 1 << 20;
/// Largest `len * dim` of a table.
pub const MAX_CELLS: usize = 4_000_000;
/// Largest model / head dimension.
pub const MAX_DIM: usize = 4096;
/// Largest number of sampled columns in a heatmap answer.
pub const MAX_WIDTH: usize = 2048;
/// Largest number of heads.
pub const MAX_HEADS: usize = 128;
/// Largest side of a square matrix answer (bias, buckets, attention).
pub const MAX_MATRIX: usize = 512;
/// Largest context for the base lower bound (its search is O(context * pairs)).
pub const MAX_BOUND_CONTEXT: usize = 131_072;
/// Largest `config.json` accepted by the inspector, in bytes.
pub const MAX_CONFIG_BYTES: usize = 256 * 1024;

/// Shared state of the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Directory with `posenc model` JSON results.
    pub results_dir: PathBuf,
    /// Whether the results committed in the repository's `results/` folder (compiled into the
    /// binary) stand in for known results that the results directory lacks.
    pub bundled: bool,
    /// Directory with `posenc lab` result files (JSON), for the NoPE panel's measured curves.
    pub lab_dir: PathBuf,
}

/// The API router (`/api/...`) with JSON 404 / 405 fallbacks.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/health", get(health))
        .route(
            "/api/sinusoidal/table",
            get(|p: Params| blocking(move || sinusoidal_table(&p))),
        )
        .route(
            "/api/sinusoidal/row",
            get(|p: Params| blocking(move || sinusoidal_row(&p))),
        )
        .route(
            "/api/learned/table",
            get(|p: Params| blocking(move || learned_table(&p))),
        )
        .route(
            "/api/rope/frequencies",
            get(|p: Params| blocking(move || rope_frequencies(&p))),
        )
        .route(
            "/api/rope/rotation",
            get(|p: Params| blocking(move || rope_rotation(&p))),
        )
        .route(
            "/api/rope/angles",
            get(|p: Params| blocking(move || rope_angles(&p))),
        )
        .route(
            "/api/rope/decay",
            get(|p: Params| blocking(move || rope_decay(&p))),
        )
        .route(
            "/api/rope/relative_check",
            get(|p: Params| blocking(move || rope_relative_check(&p))),
        )
        .route("/api/alibi", get(|p: Params| blocking(move || alibi(&p))))
        .route(
            "/api/relative/t5",
            get(|p: Params| blocking(move || relative_t5(&p))),
        )
        .route(
            "/api/relative/shaw",
            get(|p: Params| blocking(move || relative_shaw(&p))),
        )
        .route(
            "/api/longctx",
            get(|p: Params| blocking(move || longctx(&p))),
        )
        .route(
            "/api/longctx/base_bound",
            get(|p: Params| blocking_heavy(move || base_bound(&p))),
        )
        .route("/api/config/inspect", post(config_inspect))
        .route("/api/results", get(results_index))
        .route("/api/results/{name}", get(results_file))
        .merge(super::learn_api::routes())
        .merge(super::figures_api::routes())
        .method_not_allowed_fallback(|| async {
            ApiError {
                status: StatusCode::METHOD_NOT_ALLOWED,
                message: "method not allowed on this route".into(),
            }
        })
        .fallback(not_found)
        .with_state(state)
}

/// JSON 404 for unknown routes.
pub async fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: "no such route; see API.md for the list".into(),
    }
}

/// Runs a computation in the light pool (see [`super::pools`]) and turns it into a response.
pub(super) async fn blocking<R: Into<Reply>>(
    f: impl FnOnce() -> ApiResult<R> + Send + 'static,
) -> Response {
    super::pools::run(super::pools::Pool::Light, f).await
}

/// Runs a computation that may take seconds in the heavy pool, so it cannot hold up the rest.
pub(super) async fn blocking_heavy<R: Into<Reply>>(
    f: impl FnOnce() -> ApiResult<R> + Send + 'static,
) -> Response {
    super::pools::run(super::pools::Pool::Heavy, f).await
}

async fn health() -> Json<Value> {
    Json(json!({ "ok": true, "name": "posenc", "version": env!("CARGO_PKG_VERSION") }))
}

/// Rows whose wavelength is under two sampled columns: sampling aliases them into slower
/// patterns than they have (the page greys them out).
pub(super) fn aliased(wavelengths: &[f64], positions: &[usize]) -> Vec<bool> {
    let step = match positions {
        [a, b, ..] => (b - a) as f64,
        _ => 1.0,
    };
    wavelengths.iter().map(|&w| w < 2.0 * step).collect()
}

/// The optional `round` parameter: decimal digits kept in large arrays drawn as heatmaps (the
/// page asks for 3; absent, values keep every `f32` digit).
fn round_digits(p: &Params) -> ApiResult<Option<i32>> {
    let r = p.int("round", -1, -1, 7)?;
    Ok((r >= 0).then_some(r as i32))
}

/// `values` rounded to `digits` decimals (unchanged without).
fn rounded(mut values: Vec<f32>, digits: Option<i32>) -> Vec<f32> {
    if let Some(d) = digits {
        let scale = 10f64.powi(d);
        for v in values.iter_mut() {
            *v = ((f64::from(*v) * scale).round() / scale) as f32;
        }
    }
    values
}

/// Positions sampled for `width` columns over `0..len`: all of them when `len <= width`.
fn sample_positions(len: usize, width: usize) -> Vec<usize> {
    if len <= width {
        (0..len).collect()
    } else {
        (0..width).map(|c| c * len / width).collect()
    }
}

// ---------------------------------------------------------------- sinusoidal

pub(super) fn sin_layout(p: &Params) -> ApiResult<SinusoidalLayout> {
    Ok(
        match p.choice(
            "layout",
            "interleaved",
            &["interleaved", "concat", "fairseq"],
        )? {
            "concat" => SinusoidalLayout::Concat,
            "fairseq" => SinusoidalLayout::Fairseq,
            _ => SinusoidalLayout::Interleaved,
        },
    )
}

fn sinusoidal_table(p: &Params) -> ApiResult<Reply> {
    let len = p.usize("len", 256, 1, MAX_LEN)?;
    let dim = p.usize("dim", 64, 2, MAX_DIM)?;
    let base = p.float("base", 10_000.0, 1.0001, 1e12)?;
    let layout = sin_layout(p)?;
    let width = p.usize("width", 512, 1, MAX_WIDTH)?;
    let start = p.usize("start", 0, 0, MAX_LEN)?;
    let digits = round_digits(p)?;
    p.finish()?;
    check_product("len * dim", len, dim, MAX_CELLS)?;
    let positions: Vec<usize> = sample_positions(len, width)
        .into_iter()
        .map(|p| p + start)
        .collect();
    let mut values = Vec::with_capacity(positions.len() * dim);
    for &pos in &positions {
        values.extend(sinusoidal::row(pos as f64, dim, base, layout)?);
    }
    let wavelengths: Vec<f64> = sinusoidal::frequencies(dim, base, layout)?
        .iter()
        .map(|w| std::f64::consts::TAU / w)
        .collect();
    Reply::from(json!({
        "len": len, "dim": dim, "base": base, "layout": layout,
        "start": start,
        "positions": positions,
        "aliased_pairs": aliased(&wavelengths, &positions),
        "wavelengths": wavelengths,
        "value_layout": "row-major [positions.len()][dim]",
    }))
    .with("values", &rounded(values, digits))
}

fn sinusoidal_row(p: &Params) -> ApiResult<Value> {
    let position = p.float("position", 0.0, 0.0, 1e9)?;
    let dim = p.usize("dim", 64, 2, MAX_DIM)?;
    let base = p.float("base", 10_000.0, 1.0001, 1e12)?;
    let layout = sin_layout(p)?;
    p.finish()?;
    let values = sinusoidal::row(position, dim, base, layout)?;
    let half = dim / 2;
    // Which frequency and function each dimension holds, for labelling.
    let (pair, func): (Vec<usize>, Vec<&str>) = (0..dim)
        .map(|d| match layout {
            SinusoidalLayout::Interleaved => (d / 2, if d % 2 == 0 { "sin" } else { "cos" }),
            // [sin | cos] halves; an odd fairseq dim ends with a zero pad column.
            SinusoidalLayout::Concat | SinusoidalLayout::Fairseq => {
                if d < half {
                    (d, "sin")
                } else if d < 2 * half {
                    (d - half, "cos")
                } else {
                    (half, "pad")
                }
            }
        })
        .unzip();
    Ok(
        json!({ "position": position, "dim": dim, "base": base, "layout": layout, "values": values, "pair": pair, "function": func }),
    )
}

// ---------------------------------------------------------------- learned

fn learned_table(p: &Params) -> ApiResult<Value> {
    let max_positions = p.usize("max_positions", 64, 1, MAX_LEN)?;
    let dim = p.usize("dim", 32, 1, MAX_DIM)?;
    let seed = p.int("seed", 0, 0, i64::MAX)? as u64;
    let std = p.float("std", 0.02, 1e-6, 10.0)?;
    let len = p.usize("len", 2 * max_positions, 1, 4 * MAX_LEN)?;
    let resize_to = p.usize("resize_to", 0, 0, MAX_LEN)?;
    let width = p.usize("width", 512, 1, MAX_WIDTH)?;
    let digits = round_digits(p)?;
    p.finish()?;
    check_product("max_positions * dim", max_positions, dim, MAX_CELLS)?;
    check_product("resize_to * dim", resize_to, dim, MAX_CELLS)?;
    let table = LearnedTable::random(max_positions, dim, seed, std as f32)?;
    let view = |t: &LearnedTable| -> Value {
        let positions = sample_positions(len, width);
        let rows: Vec<Option<Vec<f64>>> = positions
            .iter()
            .map(|&pos| {
                t.lookup(pos as u64).ok().map(|r| {
                    // f64 of the (rounded) f32, printed with f32 digits.
                    rounded(r.to_vec(), digits)
                        .into_iter()
                        .map(|x| x.to_string().parse().unwrap_or(f64::from(x)))
                        .collect()
                })
            })
            .collect();
        json!({ "max_positions": t.max_positions(), "positions": positions, "rows": rows })
    };
    let resized = if resize_to > 0 {
        Some(view(&table.resize(resize_to)?))
    } else {
        None
    };
    Ok(json!({
        "dim": dim, "seed": seed, "std": std, "len": len,
        "parameter_count": max_positions * dim,
        "table": view(&table),
        "resized": resized,
    }))
}

// ---------------------------------------------------------------- rope

/// Reads a RoPE setup (`head_dim`, `base`, `scaling` and its parameters) into library params.
/// `original_max` is the training length; `max_position_embeddings` is set to
/// `original_max * factor` for the scalings that extend the context (as configs do).
fn rope_setup(p: &Params) -> ApiResult<RopeParams> {
    let head_dim = p.usize("head_dim", 64, 2, 1024)?;
    if !head_dim.is_multiple_of(2) {
        return Err(ApiError::bad(format!(
            "`head_dim` must be even, got {head_dim}"
        )));
    }
    let base = p.float("base", 10_000.0, 1.0001, 1e12)?;
    let kind = p.choice(
        "scaling",
        "default",
        &[
            "default", "linear", "ntk", "dynamic", "yarn", "llama3", "longrope",
        ],
    )?;
    let factor = p.float("factor", 4.0, 1.0, 1024.0)?;
    let original_max = p.usize("original_max", 4096, 1, MAX_LONG_LEN)?;
    let scaling = match kind {
        "linear" => RopeScaling::Linear { factor },
        "ntk" => RopeScaling::Ntk { factor },
        "dynamic" => RopeScaling::Dynamic { factor },
        "yarn" => {
            let mut y = YarnParams::new(factor, original_max);
            y.beta_fast = p.float("beta_fast", 32.0, 1e-3, 1e4)?;
            y.beta_slow = p.float("beta_slow", 1.0, 1e-3, 1e4)?;
            RopeScaling::Yarn(y)
        }
        "llama3" => RopeScaling::Llama3(Llama3Params {
            factor,
            low_freq_factor: p.float("low_freq_factor", 1.0, 1e-3, 1e4)?,
            high_freq_factor: p.float("high_freq_factor", 4.0, 1e-3, 1e4)?,
            original_max_position_embeddings: original_max,
        }),
        "longrope" => {
            let half = head_dim / 2;
            // Without explicit lists: short factors 1, long factors rising geometrically from 1
            // to `factor` (an illustration; real lists come from a config).
            let long = p
                .float_list("long_factor", 512, 1e-3, 1e6)?
                .unwrap_or_else(|| {
                    (0..half)
                        .map(|i| factor.powf(i as f64 / (half.max(2) - 1) as f64))
                        .collect()
                });
            let short = p
                .float_list("short_factor", 512, 1e-3, 1e6)?
                .unwrap_or_else(|| vec![1.0; half]);
            RopeScaling::LongRope(LongRopeParams {
                short_factor: short,
                long_factor: long,
                factor: Some(factor),
                attention_factor: None,
                original_max_position_embeddings: original_max,
                short_mscale: None,
                long_mscale: None,
            })
        }
        _ => RopeScaling::Default,
    };
    // Dynamic NTK reads the training length from max_position_embeddings (HF convention).
    let max_position_embeddings = match kind {
        "default" | "linear" | "ntk" | "dynamic" => original_max,
        _ => ((original_max as f64) * factor).round().min(1e12) as usize,
    };
    Ok(RopeParams {
        base,
        head_dim,
        rotary_dim: head_dim,
        max_position_embeddings,
        scaling,
    })
}

/// Training length of a setup read by [`rope_setup`] ([`RopeParams::contexts`]).
fn training_length(params: &RopeParams) -> usize {
    params.contexts().training
}

/// One half-width cos/sin row at `position` (attention factor applied).
fn cos_sin(freqs: &RopeFrequencies, position: u64) -> ApiResult<(Vec<f32>, Vec<f32>)> {
    let mut cos = vec![0f32; freqs.pairs()];
    let mut sin = vec![0f32; freqs.pairs()];
    rope::cos_sin_row(freqs, position, &mut cos, &mut sin)?;
    Ok((cos, sin))
}

/// One half-width pure rotation row for a signed offset (no attention factor).
fn rotation(freqs: &RopeFrequencies, delta: i64) -> ApiResult<(Vec<f32>, Vec<f32>)> {
    let mut cos = vec![0f32; freqs.pairs()];
    let mut sin = vec![0f32; freqs.pairs()];
    rope::rotation_row(freqs, delta, &mut cos, &mut sin)?;
    Ok((cos, sin))
}

fn freqs_json(f: &RopeFrequencies) -> Value {
    json!({ "inv_freq": f.inv_freq, "wavelength": f.wavelengths(), "attention_factor": f.attention_factor })
}

fn rope_frequencies(p: &Params) -> ApiResult<Value> {
    let params = rope_setup(p)?;
    let seq_len = p.usize("seq_len", 0, 0, MAX_LONG_LEN)?;
    p.finish()?;
    let f = params.frequencies((seq_len > 0).then_some(seq_len), Precision::Exact)?;
    Ok(
        json!({ "head_dim": params.head_dim, "base": params.base, "rope_type": f.rope_type, "frequencies": freqs_json(&f) }),
    )
}

fn rope_rotation(p: &Params) -> ApiResult<Value> {
    let params = rope_setup(p)?;
    let position = p.int("position", 0, 0, MAX_LONG_LEN as i64)?;
    p.finish()?;
    let f = params.frequencies(None, Precision::Exact)?;
    // The hand of pair i is the unit vector (1, 0) rotated by position * θ_i.
    let (cos, sin) = rotation(&f, position)?;
    let angle: Vec<f64> = f
        .inv_freq
        .iter()
        .map(|w| (position as f64 * w).rem_euclid(std::f64::consts::TAU))
        .collect();
    Ok(
        json!({ "position": position, "head_dim": params.head_dim, "cos": cos, "sin": sin, "angle": angle, "frequencies": freqs_json(&f) }),
    )
}

/// Angles `position * inv_freq` mod 2π for sampled positions, pair-major.
fn angle_map(inv_freq: &[f64], positions: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(inv_freq.len() * positions.len());
    for w in inv_freq {
        for &pos in positions {
            out.push((pos as f64 * w).rem_euclid(2.0 * std::f64::consts::PI) as f32);
        }
    }
    out
}

fn rope_angles(p: &Params) -> ApiResult<Reply> {
    let params = rope_setup(p)?;
    let len = p.usize("len", 512, 1, MAX_LONG_LEN)?;
    let width = p.usize("width", 512, 1, MAX_WIDTH)?;
    let digits = round_digits(p)?;
    p.finish()?;
    let f = params.frequencies(Some(len), Precision::Exact)?;
    let positions = sample_positions(len, width);
    let angles = angle_map(&f.inv_freq, &positions);
    let wavelengths = f.wavelengths();
    Reply::from(json!({
        "len": len, "positions": positions, "pairs": f.inv_freq.len(),
        "aliased": aliased(&wavelengths, &positions), "wavelength": wavelengths,
        "value_layout": "row-major [pairs][positions.len()], radians in [0, 2pi)",
    }))
    .with("angles", &rounded(angles, digits))
}

fn rope_decay(p: &Params) -> ApiResult<Reply> {
    let params = rope_setup(p)?;
    let max_distance = p.usize("max_distance", 1024, 1, MAX_LONG_LEN)?;
    let width = p.usize("width", 512, 1, MAX_WIDTH)?;
    let digits = round_digits(p)?;
    p.finish()?;
    let f = params.frequencies(None, Precision::Exact)?;
    let distances = sample_positions(max_distance + 1, width);
    let pairs = f.pairs();
    // cos(Δ·θ_i): the score of a query and a key that are the same unit vector in pair i, Δ apart.
    let mut per_pair = vec![0f32; pairs * distances.len()];
    let mut mean = Vec::with_capacity(distances.len());
    for (c, &d) in distances.iter().enumerate() {
        let (cos, _) = rotation(&f, d as i64)?;
        for (i, &v) in cos.iter().enumerate() {
            per_pair[i * distances.len() + c] = v;
        }
        mean.push(cos.iter().map(|&v| v as f64).sum::<f64>() / pairs as f64);
    }
    Reply::from(
        json!({ "distances": distances, "pairs": pairs, "mean": mean,
               "value_layout": "per_pair row-major [pairs][distances.len()]" }),
    )
    .with("per_pair", &rounded(per_pair, digits))
}

fn rope_relative_check(p: &Params) -> ApiResult<Value> {
    let params = rope_setup(p)?;
    let m = p.int("m", 5, 0, MAX_LONG_LEN as i64)?;
    let n = p.int("n", 2, 0, MAX_LONG_LEN as i64)?;
    let s = p.int("s", 100, -(MAX_LONG_LEN as i64), MAX_LONG_LEN as i64)?;
    let seed = p.int("seed", 1, 0, i64::MAX)? as u64;
    p.finish()?;
    if m + s < 0 || n + s < 0 {
        return Err(ApiError::bad("m + s and n + s must be >= 0"));
    }
    let f = params.frequencies(None, Precision::Exact)?;
    let qk = LearnedTable::random(2, params.head_dim, seed, 1.0)?;
    let score = |pq: i64, pk: i64| -> ApiResult<f64> {
        let mut q = qk.lookup(0)?.to_vec();
        let mut k = qk.lookup(1)?.to_vec();
        let (cq, sq) = cos_sin(&f, pq as u64)?;
        let (ck, sk) = cos_sin(&f, pk as u64)?;
        rope::apply_rotary(&mut q, &cq, &sq, RopeLayout::HalfSplit)?;
        rope::apply_rotary(&mut k, &ck, &sk, RopeLayout::HalfSplit)?;
        Ok(q.iter().zip(&k).map(|(&a, &b)| a as f64 * b as f64).sum())
    };
    let a = score(m, n)?;
    let b = score(m + s, n + s)?;
    Ok(
        json!({ "m": m, "n": n, "s": s, "score_mn": a, "score_shifted": b, "abs_diff": (a - b).abs(),
               "note": "q and k are seeded random vectors rotated in f32; the difference is rounding only" }),
    )
}

// ---------------------------------------------------------------- alibi

fn alibi(p: &Params) -> ApiResult<Value> {
    let heads = p.usize("heads", 8, 1, MAX_HEADS)?;
    let len = p.usize("len", 16, 1, 128)?;
    let head = p.usize("head", 0, 0, MAX_HEADS - 1)?;
    let causal = p.bool("causal", true)?;
    let seed = p.int("seed", 3, 0, i64::MAX)? as u64;
    p.finish()?;
    if head >= heads {
        return Err(ApiError::bad(format!(
            "`head` must be < heads ({heads}), got {head}"
        )));
    }
    let slopes = alibi::slopes(heads)?;
    let slope = slopes[head];
    let bias = alibi::bias(&[slope], len, len, 0, !causal)?;
    let mask = if causal {
        Mask::causal_by_position()
    } else {
        Mask::none()
    };
    let positions: Vec<u64> = (0..len as u64).collect();
    let visible: Vec<bool> = (0..len * len)
        .map(|i| {
            mask.allows(
                i / len,
                i % len,
                len,
                len,
                positions[i / len],
                positions[i % len],
            )
        })
        .collect();
    // Toy content: seeded random q, k, v for one head; the library's reference attention with
    // and without the selected head's ALiBi bias.
    const HEAD_DIM: usize = 16;
    let qkv = LearnedTable::random(3 * len, HEAD_DIM, seed, 1.0)?;
    let part = |i: usize| qkv.data()[i * len * HEAD_DIM..(i + 1) * len * HEAD_DIM].to_vec();
    let (q, k, v) = (part(0), part(1), part(2));
    let one_head = HeadConfig::mha(1, HEAD_DIM)?;
    let options = AttentionOptions {
        scale: None,
        return_weights: true,
    };
    let weights = |scheme: &Scheme| -> ApiResult<Vec<f32>> {
        let out = attention::attention(
            &one_head, &q, &k, &v, &positions, &positions, scheme, &mask, &options,
        )?;
        Ok(out.weights.unwrap_or_default())
    };
    let without = weights(&Scheme::NoPe)?;
    let with = weights(&Scheme::Alibi {
        slopes: vec![slope],
        symmetric: !causal,
    })?;
    // Bias shown only where the mask lets a key through; masked entries are the mask's job.
    let bias_shown: Vec<Option<f32>> = bias
        .iter()
        .zip(&visible)
        .map(|(&b, &m)| m.then_some(b))
        .collect();
    Ok(json!({
        "heads": heads, "head": head, "len": len, "causal": causal, "slopes": slopes,
        "bias": bias_shown, "mask": visible,
        "weights_without_bias": without, "weights_with_bias": with,
        "value_layout": "row-major [query][key]",
    }))
}

// ---------------------------------------------------------------- relative

fn relative_t5(p: &Params) -> ApiResult<Value> {
    let bidirectional = p.bool("bidirectional", true)?;
    let num_buckets = p.usize("num_buckets", 32, 2, 1024)?;
    let max_distance = p.usize("max_distance", 128, 2, MAX_LONG_LEN)?;
    let span = p.usize("span", 200, 1, 4096)?;
    let len = p.usize("len", 64, 1, MAX_MATRIX)?;
    p.finish()?;
    let cfg = T5Buckets {
        bidirectional,
        num_buckets,
        max_distance,
    };
    cfg.validate()?;
    let rel: Vec<i64> = (-(span as i64)..=span as i64).collect();
    let buckets = rel
        .iter()
        .map(|&r| relative::t5_bucket(r, bidirectional, num_buckets, max_distance))
        .collect::<posenc::Result<Vec<usize>>>()?;
    let matrix = relative::t5_bucket_matrix(len, len, 0, &cfg)?;
    Ok(
        json!({ "bidirectional": bidirectional, "num_buckets": num_buckets, "max_distance": max_distance,
               "relative_positions": rel, "buckets": buckets, "len": len, "matrix": matrix,
               "value_layout": "matrix row-major [query][key], relative position = key - query" }),
    )
}

fn relative_shaw(p: &Params) -> ApiResult<Value> {
    let clip = p.usize("clip", 4, 0, 4096)?;
    let len = p.usize("len", 32, 1, MAX_MATRIX)?;
    p.finish()?;
    let matrix = relative::shaw_index_matrix(len, len, clip)?;
    Ok(json!({ "clip": clip, "len": len, "num_embeddings": 2 * clip + 1, "matrix": matrix }))
}

// ---------------------------------------------------------------- long context

fn longctx(p: &Params) -> ApiResult<Reply> {
    let params = rope_setup(p)?;
    let target_len = p.usize("target_len", 32_768, 1, MAX_LONG_LEN)?;
    let width = p.usize("width", 512, 1, MAX_WIDTH)?;
    let digits = round_digits(p)?;
    p.finish()?;
    let train_len = training_length(&params);
    let unscaled = RopeParams {
        scaling: RopeScaling::Default,
        ..params.clone()
    };
    let before = unscaled.frequencies(None, Precision::Exact)?;
    let after = params.frequencies(Some(target_len), Precision::Exact)?;
    let report = diagnostics::pair_report(&params, train_len, target_len, Some(target_len))?;
    let factor = serde_json::to_value(&params.scaling)
        .ok()
        .and_then(|v| v.get("factor").and_then(Value::as_f64))
        .unwrap_or(1.0);
    let positions = sample_positions(target_len, width);
    let angles_before = angle_map(&before.inv_freq, &positions);
    let angles_after = angle_map(&after.inv_freq, &positions);
    Reply::from(json!({
        "head_dim": params.head_dim, "base": params.base, "rope_type": after.rope_type,
        "train_len": train_len, "target_len": target_len, "factor": factor,
        "before": freqs_json(&before), "after": freqs_json(&after),
        "division": report.iter().map(|r| r.interpolation).collect::<Vec<_>>(),
        "bands": report.iter().map(|r| r.band).collect::<Vec<_>>(),
        "pairs": report,
        "aliased_before": aliased(&before.wavelengths(), &positions),
        "aliased_after": aliased(&after.wavelengths(), &positions),
        "positions": positions,
        "value_layout": "angles row-major [pairs][positions.len()], radians in [0, 2pi)",
    }))
    .with("angles_before", &rounded(angles_before, digits))?
    .with("angles_after", &rounded(angles_after, digits))
}

fn base_bound(p: &Params) -> ApiResult<Value> {
    let head_dim = p.usize("head_dim", 128, 2, 1024)?;
    let context = p.usize("context", 4096, 1, MAX_BOUND_CONTEXT)?;
    let base = p.float("base", 0.0, 0.0, 1e12)?;
    p.finish()?;
    check_product("context * head_dim", context, head_dim, 8_388_608)?;
    // The bound depends only on (head_dim, context) and costs up to seconds: keep recent answers.
    static BOUNDS: OnceLock<Mutex<HashMap<(usize, usize), f64>>> = OnceLock::new();
    let cache = BOUNDS.get_or_init(Default::default);
    let cached = cache
        .lock()
        .ok()
        .and_then(|c| c.get(&(head_dim, context)).copied());
    let bound = match cached {
        Some(b) => b,
        None => {
            let b = diagnostics::men_base_lower_bound(head_dim, context, 0.02)?;
            if let Ok(mut c) = cache.lock() {
                if c.len() >= 256 {
                    c.clear();
                }
                c.insert((head_dim, context), b);
            }
            b
        }
    };
    // The criterion for the chosen base too, when one is given (full scan: minimum and where).
    let chosen = if base > 1.0 {
        Some(diagnostics::base_criterion(base, head_dim, context, false)?)
    } else {
        None
    };
    Ok(
        json!({ "head_dim": head_dim, "context": context, "base_lower_bound": bound, "grid_step": 0.02,
               "chosen": chosen }),
    )
}

// ---------------------------------------------------------------- config inspector

async fn config_inspect(body: Result<Bytes, BytesRejection>) -> Response {
    let bytes = match body {
        Ok(b) => b,
        Err(e) => {
            return ApiError {
                status: e.status(),
                message: format!("cannot read body: {}", e.body_text()),
            }
            .into_response()
        }
    };
    if bytes.len() > MAX_CONFIG_BYTES {
        return ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("config is larger than the limit of {MAX_CONFIG_BYTES} bytes"),
        }
        .into_response();
    }
    blocking_heavy(move || {
        let text = std::str::from_utf8(&bytes).map_err(|_| ApiError::bad("config is not UTF-8"))?;
        super::inspect::inspect(text)
    })
    .await
}

// ---------------------------------------------------------------- model results

/// Result files the explorer knows, by API name: (name, file, how to produce it).
/// (`posenc model passkey|perplexity|attention-stats --out DIR [--name NAME]` writes NAME.json,
/// NAME.svg, NAME.png.)
const RESULT_FILES: &[(&str, &str, &str)] = &[
    (
        "passkey",
        "passkey.json",
        "posenc model passkey --depths 0,0.5,1 --out DIR",
    ),
    (
        "passkey-yarn",
        "passkey-yarn.json",
        "posenc model passkey --rope-scaling yarn:factor=4,original_max_position_embeddings=8192 --lengths 4096,8192,16384 --depths 0,0.5,1 --trials 1 --name passkey-yarn --out DIR",
    ),
    (
        "attention-stats",
        "attention-stats.json",
        "posenc model attention-stats --out DIR",
    ),
    (
        "perplexity",
        "perplexity.json",
        "posenc model perplexity --out DIR",
    ),
];

/// The measured results committed in the repository's `results/` folder (see
/// `results/README.md`), compiled in: (name, repository path, JSON text).
const BUNDLED_RESULTS: &[(&str, &str, &str)] = &[
    (
        "passkey",
        "results/passkey.json",
        include_str!("../../../../results/passkey.json"),
    ),
    (
        "passkey-yarn",
        "results/passkey-yarn.json",
        include_str!("../../../../results/passkey-yarn.json"),
    ),
    (
        "attention-stats",
        "results/attention-stats.json",
        include_str!("../../../../results/attention-stats.json"),
    ),
    (
        "perplexity",
        "results/perplexity.json",
        include_str!("../../../../results/perplexity.json"),
    ),
];

/// The committed copy of a known result, when it is shown.
fn bundled(state: &AppState, name: &str) -> Option<(&'static str, &'static str)> {
    if !state.bundled {
        return None;
    }
    BUNDLED_RESULTS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, path, text)| (*path, *text))
}

/// Largest result file served, in bytes.
const MAX_RESULT_BYTES: u64 = 64 * 1024 * 1024;
/// Most extra `*.json` files listed from the results directory.
const MAX_EXTRA_RESULTS: usize = 32;

/// A plain file name (no separators, no leading dot) ending in `.json`.
fn is_result_file_name(name: &str) -> bool {
    name.len() <= 128
        && name.ends_with(".json")
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

async fn results_index(State(state): State<Arc<AppState>>) -> Response {
    let dir = state.results_dir.clone();
    blocking(move || {
        let shown = dir.display().to_string();
        let mut items: Vec<Value> = RESULT_FILES
            .iter()
            .map(|(name, file, how)| {
                let path = dir.join(file);
                let present = path.is_file();
                let committed = bundled(&state, name).map(|(p, _)| p);
                let source = if present {
                    Some("results_dir")
                } else {
                    committed.map(|_| "committed")
                };
                json!({ "name": name, "file": path.display().to_string(), "present": present,
                        "committed": committed, "source": source,
                        "how_to_produce": how.replace("DIR", &shown) })
            })
            .collect();
        // Any other JSON file in the directory, by file name (sorted, capped).
        let mut extra: Vec<String> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| is_result_file_name(n) && !RESULT_FILES.iter().any(|(_, f, _)| f == n))
                    .collect()
            })
            .unwrap_or_default();
        extra.sort();
        extra.truncate(MAX_EXTRA_RESULTS);
        for name in extra {
            let path = dir.join(&name);
            items.push(json!({ "name": name, "file": path.display().to_string(), "present": true,
                               "committed": null, "source": "results_dir", "how_to_produce": null }));
        }
        Ok(json!({ "results_dir": shown, "results": items }))
    })
    .await
}

/// Serves a known result (`passkey`, `attention-stats`, `perplexity`) or any `NAME.json` in the
/// results dir.
async fn results_file(
    State(state): State<Arc<AppState>>,
    name: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    let Ok(axum::extract::Path(name)) = name else {
        return ApiError::bad("malformed result name").into_response();
    };
    let (path, how) = match RESULT_FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, file, how)) => (
            state.results_dir.join(file),
            how.replace("DIR", &state.results_dir.display().to_string()),
        ),
        None if is_result_file_name(&name) => (
            state.results_dir.join(&name),
            String::from("a `posenc model` command"),
        ),
        None => return not_found().await.into_response(),
    };
    let committed = bundled(&state, &name);
    blocking(move || {
        let meta = match (std::fs::metadata(&path), committed) {
            (Ok(meta), _) => meta,
            (Err(_), Some((repo_path, text))) => {
                return serde_json::from_str::<Value>(text).map_err(|e| ApiError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    message: format!("committed {repo_path} is not JSON: {e}"),
                });
            }
            (Err(_), None) => {
                return Err(ApiError {
                    status: StatusCode::NOT_FOUND,
                    message: format!("{} not found; produce it with: {how}", path.display()),
                })
            }
        };
        if !meta.is_file() || meta.len() > MAX_RESULT_BYTES {
            return Err(ApiError::bad(format!(
                "{} is not a file of at most 64 MiB",
                path.display()
            )));
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ApiError::bad(format!("cannot read {}: {e}", path.display())))?;
        serde_json::from_str::<Value>(&text)
            .map_err(|e| ApiError::bad(format!("{} is not JSON: {e}", path.display())))
    })
    .await
}
