//! The config inspector behind `POST /api/config/inspect`: the typed `posenc inspect` report
//! ([`posenc::diagnostics::InspectReport`], as JSON and as the text the CLI prints) plus a
//! summary of the main layer for the page's table and wavelength plot.

use posenc::config;
use posenc::diagnostics::{InspectOptions, InspectReport};
use serde_json::{json, Value};

use super::params::{ApiError, ApiResult};

/// Parses `text` as a config.json and answers its `posenc inspect` report (the same report,
/// with the same work budget, as the CLI).
pub fn inspect(text: &str) -> ApiResult<Value> {
    let cfg = config::parse_config(text)?;
    let typed = InspectReport::new(&cfg, InspectOptions::default())?;
    let text = typed.to_text();
    let report = serde_json::to_value(&typed).map_err(|e| ApiError::bad(e.to_string()))?;
    // The layer `ModelConfig::params` picks (global layers, or the only one).
    let main = cfg
        .layers
        .iter()
        .position(|l| l.layer_type == "full_attention")
        .unwrap_or(0);
    let layer = &report["layers"][main];
    let pair_values = |key: &str| -> Vec<Value> {
        layer["pairs"]
            .as_array()
            .map(|rows| rows.iter().map(|r| r[key].clone()).collect())
            .unwrap_or_default()
    };
    Ok(json!({
        "model_type": cfg.model_type,
        "rope_type": layer["rope_type"],
        "rope_theta": layer["params"]["base"],
        "head_dim": layer["params"]["head_dim"],
        "rotary_dim": layer["rotary_dim"],
        "max_position_embeddings": cfg.max_position_embeddings,
        "original_max_position_embeddings": cfg.original_max_position_embeddings,
        "training_context": layer["original_context"],
        "target_context": layer["extended_context"],
        "sliding_window": layer["sliding_window"],
        "effective_training_context": layer["effective_original_context"],
        "effective_target_context": layer["effective_extended_context"],
        "factor": layer["params"]["scaling"]["factor"],
        "attention_factor": layer["attention_factor"],
        "inv_freq": pair_values("inv_freq"),
        "wavelength": pair_values("wavelength"),
        "pairs_with_wavelength_beyond_training": layer["pairs_incomplete_in_original"].as_array().map_or(0, Vec::len),
        "layers": cfg.layers.iter().map(|l| l.layer_type.clone()).collect::<Vec<_>>(),
        "warnings": report["warnings"],
        "report": report,
        "text": text,
    }))
}
