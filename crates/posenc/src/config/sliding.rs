//! Layer types and the sliding window: which layers are `sliding_attention` (the file's
//! `layer_types`, else the config class's default pattern) and which window they use.

use serde_json::{Map, Value};

use super::model_types::{LayerPattern, ModelType, NoRopeLayers};
use super::{as_usize, get_usize, LayerRope, Lint, Provenance};
use crate::{Error, Result};

/// What [`layer_plan`] decided.
#[derive(Debug, Clone)]
pub(crate) struct LayerPlan {
    /// Per layer, when the layer count is known.
    pub per_layer: Vec<String>,
    /// The distinct types, `full_attention` first (used when the count is unknown too).
    pub kinds: Vec<String>,
    /// The window of the sliding layers, when some layer uses one.
    pub window: Option<usize>,
    /// Every layer slides (the window applies model-wide).
    pub all_slide: bool,
    /// Layer count, when known.
    pub num_layers: Option<usize>,
}

impl LayerPlan {
    /// The layer-type names the RoPE blocks may be keyed by.
    pub fn type_names(&self) -> Vec<String> {
        if self.per_layer.is_empty() {
            self.kinds.clone()
        } else {
            let mut out: Vec<String> = Vec::new();
            for t in &self.per_layer {
                if !out.contains(t) {
                    out.push(t.clone());
                }
            }
            out
        }
    }

    /// Layers with no RoPE under the class's rule.
    pub fn layers_without_rope(&self, mt: &ModelType) -> Vec<usize> {
        let Some(n) = self.num_layers else {
            return Vec::new();
        };
        match mt.no_rope {
            NoRopeLayers::None => Vec::new(),
            NoRopeLayers::EveryNth(k) => (0..n).filter(|i| (i + 1) % k == 0).collect(),
            NoRopeLayers::FullAttention => self
                .per_layer
                .iter()
                .enumerate()
                .filter(|(_, t)| *t != "sliding_attention")
                .map(|(i, _)| i)
                .collect(),
        }
    }
}

fn bool_key(root: &Map<String, Value>, key: &str) -> Result<Option<bool>> {
    match root.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(Error::invalid(key, format!("true or false, got {v}"))),
    }
}

const ALLOWED_TYPES: &[&str] = &[
    "full_attention",
    "sliding_attention",
    "chunked_attention",
    "linear_attention",
];

/// Reads `layer_types`, `sliding_window` and the class pattern.
pub(crate) fn layer_plan(
    root: &Map<String, Value>,
    mt: &ModelType,
    warnings: &mut Vec<Lint>,
    defaults: &mut Provenance,
) -> Result<LayerPlan> {
    let num_layers = get_usize(root, "num_hidden_layers", "")?;
    let file_types: Option<Vec<String>> = match root.get("layer_types") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|v| {
                    // HF renames the legacy `attention` to `full_attention`.
                    match v.as_str() {
                        Some("attention") => Ok("full_attention".to_string()),
                        Some(s) => Ok(s.to_string()),
                        None => Err(Error::invalid(
                            "layer_types",
                            format!("a list of strings (one per layer), got an entry {v}"),
                        )),
                    }
                })
                .collect::<Result<_>>()?,
        ),
        Some(v) => {
            return Err(Error::invalid(
                "layer_types",
                format!("a list of strings (one per layer), got {v}"),
            ))
        }
    };
    if let Some(types) = &file_types {
        if let Some(n) = num_layers {
            if types.len() != n {
                warnings.push(Lint::hf_error(
                    "layer_types",
                    format!(
                        "{} entries, but num_hidden_layers = {n}; HF refuses the config",
                        types.len()
                    ),
                ));
            }
        }
        if let Some(bad) = types.iter().find(|t| !ALLOWED_TYPES.contains(&t.as_str())) {
            warnings.push(Lint::hf_error(
                "layer_types",
                format!(
                    "unknown layer type `{bad}` (HF accepts {}); HF refuses the config",
                    ALLOWED_TYPES.join(", ")
                ),
            ));
        }
    }
    let window_key = match root.get("sliding_window") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(v) => match as_usize(v, "sliding_window") {
            Ok(w) if w > 0 => Some(Some(w)),
            _ => {
                return Err(Error::invalid(
                    "sliding_window",
                    format!("a positive integer (tokens) or null, got {v}"),
                ))
            }
        },
    };
    let use_sliding = bool_key(root, "use_sliding_window")?;
    let mut window = match window_key {
        Some(w) => w,
        None => {
            if mt.sliding_window.is_some()
                && !matches!(mt.layers, LayerPattern::Qwen2 | LayerPattern::Qwen2Moe)
            {
                defaults.insert("sliding_window".into(), format!("{} default", mt.name));
            }
            mt.sliding_window
        }
    };
    // Qwen-style classes keep the window only with use_sliding_window.
    let gated = matches!(
        mt.layers,
        LayerPattern::Qwen2
            | LayerPattern::Qwen2Moe
            | LayerPattern::AllWhenEnabled
            | LayerPattern::SmolLm3
    );
    if gated && use_sliding != Some(true) {
        if let Some(w) = window.filter(|_| window_key.is_some()) {
            if use_sliding == Some(false) {
                warnings.push(Lint::posenc(
                    "sliding_window",
                    format!("{w} is unused: use_sliding_window is false, so HF sets sliding_window to None and every layer attends to its full context"),
                ));
            }
        }
        window = None;
    }
    let sliding = |i: usize, n: usize| -> Result<bool> {
        Ok(match mt.layers {
            LayerPattern::None | LayerPattern::EveryLayer => false,
            LayerPattern::Alternating => i.is_multiple_of(2),
            LayerPattern::EveryNth {
                key,
                default,
                last_full,
            } => {
                let k = match key.map(|k| get_usize(root, k, "")).transpose()?.flatten() {
                    Some(0) => {
                        return Err(Error::invalid(
                            key.unwrap_or("sliding_window_pattern"),
                            "a positive integer, got 0",
                        ))
                    }
                    Some(k) => k,
                    None => default,
                };
                !((i + 1).is_multiple_of(k) || (last_full && i + 1 == n))
            }
            LayerPattern::Qwen2 => window.is_some() && i >= max_window_layers_value(root)?,
            LayerPattern::Qwen2Moe => {
                window.is_some() && (i + 1) % 2 == 1 && i < max_window_layers_value(root)?
            }
            LayerPattern::AllWhenEnabled => window.is_some(),
            LayerPattern::SmolLm3 => window.is_some() && (i + 1).is_multiple_of(4),
        })
    };
    if matches!(mt.layers, LayerPattern::Qwen2 | LayerPattern::Qwen2Moe)
        && window.is_some()
        && get_usize(root, "max_window_layers", "")?.is_none()
    {
        defaults.insert("max_window_layers".into(), format!("{} default", mt.name));
    }

    let mut all_slide = false;
    let per_layer: Vec<String> = match (&file_types, num_layers) {
        (Some(types), _) if mt.layers == LayerPattern::EveryLayer && mt.name == "mistral" => {
            warnings.push(Lint::posenc(
                "layer_types",
                "ignored: HF's Mistral applies sliding_window to every layer (Ministral reads layer_types)",
            ));
            all_slide = window.is_some();
            vec!["full_attention".to_string(); types.len()]
        }
        (Some(types), _) => types.clone(),
        (None, _) if mt.layers == LayerPattern::EveryLayer => {
            all_slide = window.is_some();
            Vec::new()
        }
        (None, Some(n)) if mt.layers != LayerPattern::None => {
            if !root.contains_key("layer_types") {
                defaults.insert("layer_types".into(), format!("{} default pattern", mt.name));
            }
            (0..n)
                .map(|i| {
                    sliding(i, n).map(|s| {
                        if s {
                            "sliding_attention"
                        } else {
                            "full_attention"
                        }
                        .to_string()
                    })
                })
                .collect::<Result<_>>()?
        }
        _ => Vec::new(),
    };
    let kinds: Vec<String> = if !per_layer.is_empty() {
        let mut k: Vec<String> = Vec::new();
        for t in per_layer.iter().filter(|t| *t != "sliding_attention") {
            if !k.contains(t) {
                k.push(t.clone());
            }
        }
        if per_layer.iter().any(|t| t == "sliding_attention") {
            k.push("sliding_attention".into());
        }
        k
    } else if matches!(
        mt.layers,
        LayerPattern::Alternating | LayerPattern::EveryNth { .. }
    ) || (window.is_some()
        && matches!(
            mt.layers,
            LayerPattern::Qwen2 | LayerPattern::Qwen2Moe | LayerPattern::SmolLm3
        ))
    {
        if num_layers.is_none() {
            warnings.push(Lint::posenc(
                "num_hidden_layers",
                format!(
                    "missing; assuming {}'s mix of sliding and full layers",
                    mt.name
                ),
            ));
        }
        vec!["full_attention".into(), "sliding_attention".into()]
    } else {
        vec!["full_attention".into()]
    };
    if per_layer.iter().all(|t| t == "sliding_attention") && !per_layer.is_empty() {
        all_slide = true;
    }
    if mt.layers == LayerPattern::AllWhenEnabled && window.is_some() {
        all_slide = true;
    }
    if let Some(w) = window {
        let any_sliding = all_slide || kinds.iter().any(|k| k == "sliding_attention");
        if !any_sliding {
            if window_key.is_some() {
                let why = if file_types.is_some() {
                    "layer_types has no sliding_attention layer".to_string()
                } else if mt.layers == LayerPattern::None {
                    format!("{} applies no sliding window; add `layer_types` (sliding_attention / full_attention per layer) if the model uses one", mt.hf_class)
                } else if mt.layers == LayerPattern::Qwen2 {
                    format!(
                        "max_window_layers = {} is not below num_hidden_layers = {}, so no layer slides",
                        max_window_layers_value(root)?,
                        num_layers.map_or("?".into(), |n| n.to_string())
                    )
                } else {
                    "no layer slides with this layer count and pattern".to_string()
                };
                warnings.push(Lint::posenc(
                    "sliding_window",
                    format!("{w} is unused: {why}"),
                ));
            }
            window = None;
        }
    } else if file_types
        .iter()
        .flatten()
        .any(|t| t == "sliding_attention")
        && window_key.is_none()
    {
        warnings.push(Lint::posenc(
            "sliding_window",
            format!("missing although layer_types has sliding_attention layers, and {} has no default window: posenc treats them as full attention", mt.hf_class),
        ));
    }
    Ok(LayerPlan {
        per_layer,
        kinds,
        window,
        all_slide,
        num_layers,
    })
}

fn max_window_layers_value(root: &Map<String, Value>) -> Result<usize> {
    Ok(get_usize(root, "max_window_layers", "")?.unwrap_or(28))
}

/// Puts the window on the sliding layers' entries (splitting a single `all` entry into
/// `full_attention` and `sliding_attention` when only some layers slide). Returns the window when
/// some layer uses it.
pub(crate) fn apply_window(
    plan: &LayerPlan,
    max_position_embeddings: usize,
    layers: &mut Vec<LayerRope>,
    warnings: &mut Vec<Lint>,
) -> Option<usize> {
    let w = plan.window?;
    if plan.all_slide {
        for l in layers.iter_mut() {
            l.sliding_window = Some(w);
        }
    } else if let Some(l) = layers
        .iter_mut()
        .find(|l| l.layer_type == "sliding_attention")
    {
        l.sliding_window = Some(w);
    } else if layers.len() == 1 && layers[0].layer_type == "all" {
        let params = layers[0].params.clone();
        layers.clear();
        for t in plan.kinds.iter().filter(|k| *k != "sliding_attention") {
            layers.push(LayerRope {
                layer_type: t.clone(),
                params: params.clone(),
                sliding_window: None,
            });
        }
        layers.push(LayerRope {
            layer_type: "sliding_attention".into(),
            params,
            sliding_window: Some(w),
        });
    } else {
        let names: Vec<&str> = layers.iter().map(|l| l.layer_type.as_str()).collect();
        warnings.push(Lint::posenc(
            "sliding_window",
            format!("{w} is not applied: the sliding_attention layers have no RoPE entry (rope_parameters has {})", names.join(", ")),
        ));
        return None;
    }
    if w >= max_position_embeddings {
        warnings.push(Lint::posenc(
            "sliding_window",
            format!("{w} is not below max_position_embeddings = {max_position_embeddings}: the window limits nothing within the advertised context"),
        ));
    }
    Some(w)
}
