//! Query-string parameters with validation, and the JSON error type of the API.
//!
//! Every endpoint reads its parameters through [`Params`], which checks type and range of each
//! value and rejects unknown or repeated keys, so a request can only reach the computation with
//! values inside the caps.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// An API error: a status code and a message, sent as `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status (400 for bad input, 404 for unknown routes, ...).
    pub status: StatusCode,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    /// A 400 Bad Request with `message`.
    pub fn bad(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl From<posenc::Error> for ApiError {
    fn from(err: posenc::Error) -> Self {
        ApiError::bad(err.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

/// Result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

/// Parsed query parameters. Getters validate; [`Params::finish`] rejects keys nobody read.
#[derive(Debug, Default)]
pub struct Params {
    values: BTreeMap<String, String>,
    used: RefCell<BTreeSet<String>>,
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(pairs) = Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad(format!("malformed query string: {}", e.body_text())))?;
        Params::from_pairs(pairs)
    }
}

impl Params {
    /// Builds from decoded `(key, value)` pairs; a repeated key is an error.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> ApiResult<Self> {
        let mut values = BTreeMap::new();
        for (k, v) in pairs {
            if values.insert(k.clone(), v).is_some() {
                return Err(ApiError::bad(format!(
                    "parameter `{k}` given more than once"
                )));
            }
        }
        Ok(Params {
            values,
            used: RefCell::default(),
        })
    }

    fn raw(&self, key: &str) -> Option<&str> {
        self.used.borrow_mut().insert(key.to_string());
        self.values.get(key).map(|s| s.trim())
    }

    /// An integer in `min..=max`, `default` when absent.
    pub fn int(&self, key: &str, default: i64, min: i64, max: i64) -> ApiResult<i64> {
        match self.raw(key) {
            None => Ok(default),
            Some(s) => {
                let v: i64 = s.parse().map_err(|e: std::num::ParseIntError| {
                    use std::num::IntErrorKind;
                    ApiError::bad(match e.kind() {
                        // Digits that overflow i64: say what the limit is, not "not an integer".
                        IntErrorKind::PosOverflow => {
                            format!("`{key}` is too large (max {max}), got {s}")
                        }
                        IntErrorKind::NegOverflow => {
                            format!("`{key}` is too small (min {min}), got {s}")
                        }
                        _ => format!("`{key}` must be an integer, got {s:?}"),
                    })
                })?;
                if v > max {
                    return Err(ApiError::bad(format!(
                        "`{key}` is too large (max {max}), got {v}"
                    )));
                }
                if v < min {
                    return Err(ApiError::bad(format!(
                        "`{key}` must be in {min}..={max}, got {v}"
                    )));
                }
                Ok(v)
            }
        }
    }

    /// A non-negative integer in `min..=max` as `usize`.
    pub fn usize(&self, key: &str, default: usize, min: usize, max: usize) -> ApiResult<usize> {
        Ok(self.int(key, default as i64, min as i64, max as i64)? as usize)
    }

    /// A finite float in `min..=max`, `default` when absent.
    pub fn float(&self, key: &str, default: f64, min: f64, max: f64) -> ApiResult<f64> {
        match self.raw(key) {
            None => Ok(default),
            Some(s) => {
                let v: f64 = s
                    .parse()
                    .map_err(|_| ApiError::bad(format!("`{key}` must be a number, got {s:?}")))?;
                if !v.is_finite() || v < min || v > max {
                    return Err(ApiError::bad(format!(
                        "`{key}` must be a finite number in [{min}, {max}], got {s}"
                    )));
                }
                Ok(v)
            }
        }
    }

    /// `true`/`false` (also `1`/`0`).
    pub fn bool(&self, key: &str, default: bool) -> ApiResult<bool> {
        match self.raw(key) {
            None => Ok(default),
            Some("true") | Some("1") => Ok(true),
            Some("false") | Some("0") => Ok(false),
            Some(s) => Err(ApiError::bad(format!(
                "`{key}` must be true or false, got {s:?}"
            ))),
        }
    }

    /// One of `choices`, `default` when absent.
    pub fn choice<'a>(
        &self,
        key: &str,
        default: &'a str,
        choices: &[&'a str],
    ) -> ApiResult<&'a str> {
        match self.raw(key) {
            None => Ok(default),
            Some(s) => choices.iter().copied().find(|c| *c == s).ok_or_else(|| {
                ApiError::bad(format!(
                    "`{key}` must be one of {}, got {s:?}",
                    choices.join(", ")
                ))
            }),
        }
    }

    /// A comma-separated list of at most `max_len` finite floats in `min..=max`, or `None`.
    pub fn float_list(
        &self,
        key: &str,
        max_len: usize,
        min: f64,
        max: f64,
    ) -> ApiResult<Option<Vec<f64>>> {
        let Some(s) = self.raw(key) else {
            return Ok(None);
        };
        let parts: Vec<&str> = s.split(',').collect();
        if parts.len() > max_len {
            return Err(ApiError::bad(format!(
                "`{key}` has {} values, at most {max_len} allowed",
                parts.len()
            )));
        }
        let mut out = Vec::with_capacity(parts.len());
        for p in parts {
            let v: f64 = p.trim().parse().map_err(|_| {
                ApiError::bad(format!("`{key}` must be numbers separated by commas"))
            })?;
            if !v.is_finite() || v < min || v > max {
                return Err(ApiError::bad(format!(
                    "`{key}` values must be in [{min}, {max}], got {v}"
                )));
            }
            out.push(v);
        }
        Ok(Some(out))
    }

    /// A string of at most `max_chars` characters, `default` when absent.
    pub fn text(&self, key: &str, default: &str, max_chars: usize) -> ApiResult<String> {
        match self.raw(key) {
            None => Ok(default.to_string()),
            Some(s) if s.chars().count() > max_chars => Err(ApiError::bad(format!(
                "`{key}` is longer than {max_chars} characters"
            ))),
            Some(s) => Ok(s.to_string()),
        }
    }

    /// Rejects keys that no getter asked for (catches typos such as `lenght=`).
    pub fn finish(&self) -> ApiResult<()> {
        let used = self.used.borrow();
        let unknown: Vec<&str> = self
            .values
            .keys()
            .filter(|k| !used.contains(*k))
            .map(|s| s.as_str())
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(ApiError::bad(format!(
                "unknown parameter(s): {}",
                unknown.join(", ")
            )))
        }
    }
}

/// Fails with 400 when `a * b` exceeds `cap` (checked before any allocation).
pub fn check_product(what: &str, a: usize, b: usize, cap: usize) -> ApiResult<()> {
    match a.checked_mul(b) {
        Some(p) if p <= cap => Ok(()),
        _ => Err(ApiError::bad(format!(
            "{what} = {a} x {b} exceeds the cap of {cap}"
        ))),
    }
}
