//! The config inspector behind `POST /api/config/inspect`: `posenc::config::parse_config`, the
//! frequencies of the parsed setup and the per-pair diagnostics.

use posenc::rope::Precision;
use posenc::{config, diagnostics};
use serde_json::{json, Value};

use super::params::ApiResult;

/// Parses `text` as a config.json and reports its RoPE setup, frequencies and lint warnings.
pub fn inspect(text: &str) -> ApiResult<Value> {
    let cfg = config::parse_config(text)?;
    let params = cfg.params();
    let max_pos = cfg.max_position_embeddings;
    let train = cfg.original_max_position_embeddings.unwrap_or(max_pos);
    // Frequencies at the advertised context (dynamic NTK and LongRoPE depend on the length).
    let freqs = params.frequencies(Some(max_pos), Precision::Exact)?;
    let pairs = diagnostics::pair_report(params, train, max_pos, Some(max_pos))?;
    let factor = serde_json::to_value(&params.scaling)
        .ok()
        .and_then(|v| v.get("factor").and_then(Value::as_f64));
    let warnings: Vec<String> = cfg
        .warnings
        .iter()
        .map(|l| format!("{}: {}", l.key, l.message))
        .collect();
    Ok(json!({
        "model_type": cfg.model_type,
        "rope_type": params.scaling.rope_type(),
        "rope_theta": params.base,
        "head_dim": params.head_dim,
        "rotary_dim": params.rotary_dim,
        "max_position_embeddings": max_pos,
        "original_max_position_embeddings": cfg.original_max_position_embeddings,
        "factor": factor,
        "attention_factor": freqs.attention_factor,
        "inv_freq": freqs.inv_freq,
        "wavelength": freqs.wavelengths(),
        "pairs_with_wavelength_beyond_training": pairs.iter().filter(|p| p.incomplete_in_original).count(),
        "pairs": pairs,
        "layers": cfg.layers.iter().map(|l| l.layer_type.clone()).collect::<Vec<_>>(),
        "warnings": warnings,
    }))
}
