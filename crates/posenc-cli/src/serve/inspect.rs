//! The config inspector behind `POST /api/config/inspect`.
//!
//! TEMPORARY: reads the RoPE keys of a Hugging Face `config.json` here until
//! `posenc::config::parse_config` lands; then this becomes a call to it and its lint warnings.

use serde_json::{json, Value};

use super::math::{self, Scaling};
use super::params::{ApiError, ApiResult};

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

fn list(v: &Value, key: &str) -> ApiResult<Option<Vec<f64>>> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) if a.len() <= 4096 => a
            .iter()
            .map(|x| {
                x.as_f64()
                    .ok_or_else(|| ApiError::bad(format!("`{key}` must hold numbers")))
            })
            .collect::<ApiResult<Vec<f64>>>()
            .map(Some),
        Some(_) => Err(ApiError::bad(format!(
            "`{key}` must be a list of at most 4096 numbers"
        ))),
    }
}

/// Parses `text` as a config.json and reports its RoPE setup, frequencies and warnings.
pub fn inspect(text: &str) -> ApiResult<Value> {
    let cfg: Value = serde_json::from_str(text)
        .map_err(|e| ApiError::bad(format!("config is not valid JSON: {e}")))?;
    if !cfg.is_object() {
        return Err(ApiError::bad("config must be a JSON object"));
    }
    let mut warnings: Vec<String> = Vec::new();
    let base = num(&cfg, "rope_theta").unwrap_or_else(|| {
        warnings.push("no `rope_theta`: using the default 10000".into());
        10_000.0
    });
    let hidden =
        num(&cfg, "hidden_size").ok_or_else(|| ApiError::bad("missing key `hidden_size`"))?;
    let heads = num(&cfg, "num_attention_heads")
        .ok_or_else(|| ApiError::bad("missing key `num_attention_heads`"))?;
    if heads < 1.0 || hidden < 1.0 {
        return Err(ApiError::bad(
            "`hidden_size` and `num_attention_heads` must be >= 1",
        ));
    }
    let head_dim = num(&cfg, "head_dim").unwrap_or(hidden / heads);
    let partial = num(&cfg, "partial_rotary_factor").unwrap_or(1.0);
    let rotary_dim = ((head_dim * partial).round() as usize) & !1;
    if !(2..=4096).contains(&rotary_dim) {
        return Err(ApiError::bad(format!(
            "rotary dimension {rotary_dim} out of range 2..=4096"
        )));
    }
    let max_pos = num(&cfg, "max_position_embeddings").map(|x| x as usize);
    let scaling_obj = cfg
        .get("rope_scaling")
        .filter(|v| !v.is_null())
        .cloned()
        .unwrap_or(json!({}));
    let rope_type = scaling_obj
        .get("rope_type")
        .or_else(|| scaling_obj.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_string();
    let factor = num(&scaling_obj, "factor").unwrap_or(1.0);
    let original_max = num(&scaling_obj, "original_max_position_embeddings")
        .or_else(|| num(&cfg, "original_max_position_embeddings"))
        .map(|x| x as usize);
    let need_orig = || -> ApiResult<usize> {
        original_max
            .or(max_pos)
            .ok_or_else(|| ApiError::bad("missing key `original_max_position_embeddings`"))
    };
    let scaling = match rope_type.as_str() {
        "default" => Scaling::Default,
        "linear" => Scaling::Linear { factor },
        "dynamic" => Scaling::Dynamic { factor, original_max: need_orig()? },
        "yarn" => Scaling::Yarn {
            factor,
            original_max: need_orig()?,
            beta_fast: num(&scaling_obj, "beta_fast").unwrap_or(32.0),
            beta_slow: num(&scaling_obj, "beta_slow").unwrap_or(1.0),
        },
        "llama3" => Scaling::Llama3 {
            factor,
            original_max: need_orig()?,
            low_freq_factor: num(&scaling_obj, "low_freq_factor").unwrap_or(1.0),
            high_freq_factor: num(&scaling_obj, "high_freq_factor").unwrap_or(4.0),
        },
        "longrope" => Scaling::LongRope {
            short_factor: list(&scaling_obj, "short_factor")?.ok_or_else(|| ApiError::bad("missing `short_factor`"))?,
            long_factor: list(&scaling_obj, "long_factor")?.ok_or_else(|| ApiError::bad("missing `long_factor`"))?,
            original_max: need_orig()?,
            max_position: max_pos.ok_or_else(|| ApiError::bad("missing `max_position_embeddings`"))?,
        },
        other => {
            return Err(ApiError::bad(format!(
                "unknown rope_type `{other}`; known types: default, linear, dynamic, yarn, llama3, longrope"
            )))
        }
    };
    if scaling_obj.get("type").is_some() && scaling_obj.get("rope_type").is_none() {
        warnings.push("`rope_scaling.type` is the legacy spelling of `rope_type`".into());
    }
    if let (Some(mp), Some(om)) = (max_pos, original_max) {
        if rope_type != "default" && (mp as f64) < om as f64 * factor && rope_type != "longrope" {
            warnings.push(format!(
                "max_position_embeddings ({mp}) is below original_max x factor ({})",
                om as f64 * factor
            ));
        }
    }
    let freqs = math::rope_frequencies(rotary_dim, base, &scaling, max_pos)?;
    let wavelengths: Vec<f64> = freqs
        .inv_freq
        .iter()
        .map(|w| 2.0 * std::f64::consts::PI / w)
        .collect();
    let train = original_max.or(max_pos).unwrap_or(0) as f64;
    let beyond = wavelengths
        .iter()
        .filter(|&&w| w > train && train > 0.0)
        .count();
    Ok(json!({
        "model_type": cfg.get("model_type"),
        "rope_type": rope_type,
        "rope_theta": base,
        "head_dim": head_dim,
        "rotary_dim": rotary_dim,
        "max_position_embeddings": max_pos,
        "original_max_position_embeddings": original_max,
        "factor": factor,
        "attention_factor": freqs.attention_factor,
        "inv_freq": freqs.inv_freq,
        "wavelength": wavelengths,
        "pairs_with_wavelength_beyond_training": beyond,
        "warnings": warnings,
        "source": "explorer stand-in parser (posenc::config not yet available)",
    }))
}
