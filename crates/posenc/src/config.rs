//! Reading RoPE settings from a Hugging Face `config.json`, and linting them.
//!
//! Accepted forms, as found on the Hub:
//! * legacy: top-level `rope_theta` plus an optional `rope_scaling` block whose kind is spelled
//!   `rope_type` or (older) `type`;
//! * transformers v5: `rope_parameters`, either flat (`{"rope_type": ..., "rope_theta": ...}`) or
//!   one block per layer type (`{"full_attention": {...}, "sliding_attention": {...}}`);
//! * Gemma 3: `rope_theta` for global layers and `rope_local_base_freq` for sliding layers;
//! * rotary width from `partial_rotary_factor` (Phi, Gemma 4), `rotary_pct` (GPT-NeoX) or
//!   `rotary_dim`; head size from `head_dim` or `hidden_size / num_attention_heads`;
//! * `original_max_position_embeddings` inside the scaling block or at top level (Phi-3; as in HF,
//!   the top-level value wins for a single block, and defaults to `max_position_embeddings` for
//!   YaRN, Llama 3 and LongRoPE when neither is given);
//! * multimodal configs whose language model sits under `text_config` (Gemma 3, Gemma 4, Llama 4);
//! * Gemma 4's `global_head_dim`: the head size of its full-attention layers;
//! * `sliding_window` and which layers use it (see [`ModelConfig::sliding_window`] for the rules:
//!   `layer_types`, Qwen2's `use_sliding_window` / `max_window_layers`, Gemma's alternation,
//!   Mistral's every-layer window).
//!
//! Missing required keys and impossible values are errors that name the key. Keys that are present
//! but unused and suspicious values are returned as [`Lint`] warnings.

use serde_json::{Map, Value};

use crate::rope::{Llama3Params, LongRopeParams, RopeParams, RopeScaling, YarnParams};
use crate::{Error, Result};

/// The `rope_type` values posenc understands (`ntk` is posenc's static NTK; the rest are HF's).
pub const KNOWN_ROPE_TYPES: &[&str] = &[
    "default",
    "linear",
    "dynamic",
    "yarn",
    "longrope",
    "llama3",
    "proportional",
    "ntk",
];

/// Largest accepted config text, in bytes.
pub const MAX_CONFIG_BYTES: usize = 16 << 20;

/// A warning about a config: the key it concerns and what is wrong.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Lint {
    /// The config key (dotted path for nested keys).
    pub key: String,
    /// What looks wrong, and what HF will do with it.
    pub message: String,
}

impl std::fmt::Display for Lint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// RoPE settings of one kind of attention layer.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LayerRope {
    /// `"all"` for models with one setting, else the layer type (`full_attention`, `sliding_attention`).
    pub layer_type: String,
    /// The parameters for those layers.
    pub params: RopeParams,
    /// The attention window of these layers, when they use one: a query at position `q` sees keys
    /// at `k` with `q - window < k <= q` (HF's sliding-window mask), so relative distances stay
    /// below `window` and the layer's effective context is `min(window, context)`.
    pub sliding_window: Option<usize>,
}

/// What posenc read from a `config.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelConfig {
    /// `model_type`, when present.
    pub model_type: Option<String>,
    /// Head size used for RoPE.
    pub head_dim: usize,
    /// `num_attention_heads`, when present.
    pub num_attention_heads: Option<usize>,
    /// `num_key_value_heads`, when present.
    pub num_key_value_heads: Option<usize>,
    /// `max_position_embeddings` (the advertised context).
    pub max_position_embeddings: usize,
    /// The pre-training context, when the scaling names one.
    pub original_max_position_embeddings: Option<usize>,
    /// RoPE settings per layer type (one entry for most models). A single-RoPE model whose layers
    /// mix sliding and full attention gets one entry per attention type, with the same parameters.
    pub layers: Vec<LayerRope>,
    /// `sliding_window` when at least one layer uses it (`None` when absent, `null`, turned off by
    /// `use_sliding_window: false`, or used by no layer; the last two are linted).
    ///
    /// Which layers use it, as HF decides:
    /// * `layer_types` given: its `sliding_attention` layers (except Mistral, which HF runs with the
    ///   window on every layer whatever `layer_types` says);
    /// * else `use_sliding_window: true` (Qwen2, Qwen2-VL, Qwen3): layers from `max_window_layers`
    ///   on; Qwen3-MoE: every layer;
    /// * else a per-layer RoPE entry named `sliding_attention` (Gemma 3's `rope_local_base_freq`,
    ///   per-layer `rope_parameters`);
    /// * else Gemma 2 (every other layer, the first sliding), Gemma 3 (`sliding_window_pattern`,
    ///   default 6: every 6th layer is global) and Gemma 4 (the same, last layer global);
    /// * else Mistral, Mixtral, Starcoder2, Phi-3 and PhiMoE: every layer.
    ///
    /// For other model types without `layer_types` the window is not applied and a lint says so.
    pub sliding_window: Option<usize>,
    /// Lint warnings.
    pub warnings: Vec<Lint>,
}

impl ModelConfig {
    /// The RoPE parameters of global (full-attention) layers, or of all layers.
    pub fn params(&self) -> &RopeParams {
        self.layers
            .iter()
            .find(|l| l.layer_type == "full_attention")
            .or_else(|| self.layers.first())
            .map(|l| &l.params)
            .expect("parse_config always yields at least one layer")
    }
}

fn as_f64(v: &Value, key: &str) -> Result<f64> {
    v.as_f64()
        .ok_or_else(|| Error::invalid(key, format!("a number, got {v}")))
}

fn as_usize(v: &Value, key: &str) -> Result<usize> {
    if let Some(u) = v.as_u64() {
        return usize::try_from(u)
            .map_err(|_| Error::invalid(key, "an integer that fits in memory"));
    }
    // Some configs write integers as floats (4096.0).
    match v.as_f64() {
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 1e15 => Ok(f as usize),
        // Integer literals past u64 arrive as floats: name the limit, not the type.
        Some(f) if f >= u64::MAX as f64 => Err(Error::invalid(
            key,
            format!(
                "a non-negative integer, too large (max {}), got {v}",
                u64::MAX
            ),
        )),
        _ => Err(Error::invalid(
            key,
            format!("a non-negative integer, got {v}"),
        )),
    }
}

fn get_f64(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<f64>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => as_f64(v, &format!("{path}{key}")).map(Some),
    }
}

fn get_usize(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<usize>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => as_usize(v, &format!("{path}{key}")).map(Some),
    }
}

fn require_f64(obj: &Map<String, Value>, key: &str, path: &str, rope_type: &str) -> Result<f64> {
    get_f64(obj, key, path)?.ok_or_else(|| Error::MissingKey {
        key: format!("{path}{key}"),
        expected: format!("a number, required by rope_type `{rope_type}`"),
    })
}

fn f64_list(obj: &Map<String, Value>, key: &str, path: &str, rope_type: &str) -> Result<Vec<f64>> {
    let full = format!("{path}{key}");
    match obj.get(key) {
        None | Some(Value::Null) => Err(Error::MissingKey {
            key: full,
            expected: format!("a list of numbers, required by rope_type `{rope_type}`"),
        }),
        Some(Value::Array(items)) => items.iter().map(|v| as_f64(v, &full)).collect(),
        Some(v) => Err(Error::invalid(full, format!("a list of numbers, got {v}"))),
    }
}

/// Keys each rope type reads from its block (besides `rope_type`/`type`/`rope_theta`).
fn used_keys(rope_type: &str) -> &'static [&'static str] {
    match rope_type {
        "default" => &[],
        "linear" | "dynamic" | "ntk" => &["factor"],
        "yarn" => &[
            "factor",
            "original_max_position_embeddings",
            "beta_fast",
            "beta_slow",
            "mscale",
            "mscale_all_dim",
            "attention_factor",
            "truncate",
        ],
        "llama3" => &[
            "factor",
            "low_freq_factor",
            "high_freq_factor",
            "original_max_position_embeddings",
        ],
        "longrope" => &[
            "short_factor",
            "long_factor",
            "factor",
            "attention_factor",
            "original_max_position_embeddings",
        ],
        "proportional" => &["factor", "partial_rotary_factor"],
        _ => &[],
    }
}

/// Context shared by every layer block of one config.
struct Globals {
    head_dim: usize,
    /// Gemma 4: head size of the full-attention layers.
    global_head_dim: Option<usize>,
    /// `partial_rotary_factor` / `rotary_pct` at top level (HF: wins over a block's own value).
    top_partial: Option<f64>,
    rotary_dim_override: Option<usize>,
    max_position_embeddings: usize,
    top_original: Option<usize>,
}

/// Parses a `config.json` text. Errors name the offending key; warnings are in the result.
pub fn parse_config(text: &str) -> Result<ModelConfig> {
    if text.len() > MAX_CONFIG_BYTES {
        return Err(Error::TooLarge {
            what: "config size in bytes".into(),
            value: text.len() as u64,
            cap: MAX_CONFIG_BYTES as u64,
        });
    }
    let value: Value = serde_json::from_str(text).map_err(|e| Error::parse("config.json", e))?;
    parse_config_value(&value)
}

/// Parses an already-decoded `config.json` value.
pub fn parse_config_value(value: &Value) -> Result<ModelConfig> {
    let outer = value
        .as_object()
        .ok_or_else(|| Error::invalid("config.json", "a JSON object at top level"))?;
    // Multimodal models keep the language model's settings under `text_config` (HF
    // `get_text_config`); read them there unless the top level has its own sizes.
    let root = match outer.get("text_config") {
        Some(Value::Object(text))
            if !outer.contains_key("hidden_size") && !outer.contains_key("head_dim") =>
        {
            text
        }
        _ => outer,
    };
    let mut warnings = Vec::new();
    let model_type = root
        .get("model_type")
        .or_else(|| outer.get("model_type"))
        .and_then(Value::as_str)
        .map(str::to_string);

    let num_attention_heads = get_usize(root, "num_attention_heads", "")?;
    let num_key_value_heads = get_usize(root, "num_key_value_heads", "")?;
    let head_dim = match get_usize(root, "head_dim", "")? {
        Some(h) => h,
        None => {
            let hidden = get_usize(root, "hidden_size", "")?.ok_or_else(|| Error::MissingKey {
                key: "hidden_size".into(),
                expected: "an integer (or give `head_dim`)".into(),
            })?;
            let heads = num_attention_heads.ok_or_else(|| Error::MissingKey {
                key: "num_attention_heads".into(),
                expected: "an integer (or give `head_dim`)".into(),
            })?;
            if heads == 0 {
                return Err(Error::invalid(
                    "num_attention_heads",
                    "a positive integer, got 0",
                ));
            }
            if hidden % heads != 0 {
                warnings.push(Lint {
                    key: "hidden_size".into(),
                    message: format!("{hidden} is not divisible by num_attention_heads = {heads}; HF floors the head size"),
                });
            }
            hidden / heads
        }
    };
    if head_dim == 0 {
        return Err(Error::invalid("head_dim", "a positive integer, got 0"));
    }
    if let (Some(q), Some(kv)) = (num_attention_heads, num_key_value_heads) {
        if kv == 0 || q % kv != 0 {
            return Err(Error::invalid(
                "num_key_value_heads",
                format!("a positive divisor of num_attention_heads = {q}, got {kv}"),
            ));
        }
    }

    let max_position_embeddings = match get_usize(root, "max_position_embeddings", "")? {
        Some(m) if m > 0 => m,
        Some(_) => {
            return Err(Error::invalid(
                "max_position_embeddings",
                "a positive integer, got 0",
            ))
        }
        None => {
            warnings.push(Lint {
                key: "max_position_embeddings".into(),
                message: "missing; assuming 2048 (HF's usual default)".into(),
            });
            2048
        }
    };

    let top_partial = match (
        get_f64(root, "partial_rotary_factor", "")?,
        get_f64(root, "rotary_pct", "")?,
    ) {
        (Some(p), Some(_)) => {
            warnings.push(Lint {
                key: "rotary_pct".into(),
                message:
                    "both partial_rotary_factor and rotary_pct are set; using partial_rotary_factor"
                        .into(),
            });
            Some(p)
        }
        (Some(p), None) | (None, Some(p)) => Some(p),
        (None, None) => None,
    };
    if let Some(p) = top_partial {
        if !(p > 0.0 && p <= 1.0) {
            return Err(Error::invalid(
                "partial_rotary_factor",
                format!("a number in (0, 1], got {p}"),
            ));
        }
    }
    let rotary_dim_override = get_usize(root, "rotary_dim", "")?;
    let top_original = get_usize(root, "original_max_position_embeddings", "")?;
    let global_head_dim = match get_usize(root, "global_head_dim", "")? {
        Some(0) => {
            return Err(Error::invalid(
                "global_head_dim",
                "a positive integer, got 0",
            ))
        }
        other => other,
    };

    let globals = Globals {
        head_dim,
        global_head_dim,
        top_partial,
        rotary_dim_override,
        max_position_embeddings,
        top_original,
    };

    let top_theta = get_f64(root, "rope_theta", "")?;
    let mut layers = Vec::new();
    match (root.get("rope_parameters"), root.get("rope_scaling")) {
        (Some(Value::Object(params)), legacy) => {
            if legacy.is_some_and(|v| !v.is_null()) {
                warnings.push(Lint {
                    key: "rope_scaling".into(),
                    message: "ignored: rope_parameters is present and takes precedence".into(),
                });
            }
            let per_layer = params.values().all(Value::is_object) && !params.is_empty();
            if per_layer {
                if let Some(o) = globals.top_original {
                    warnings.push(Lint {
                        key: "original_max_position_embeddings".into(),
                        message: format!("top-level value {o} is not read for per-layer rope_parameters (HF uses each block's value, else max_position_embeddings)"),
                    });
                }
                for (layer_type, block) in params {
                    let block = block.as_object().expect("checked is_object");
                    let path = format!("rope_parameters.{layer_type}.");
                    let layer = Layer {
                        per_layer: true,
                        full_attention: layer_type == "full_attention",
                    };
                    let p = parse_block(block, &path, top_theta, &globals, layer, &mut warnings)?;
                    layers.push(LayerRope {
                        layer_type: layer_type.clone(),
                        params: p,
                        sliding_window: None,
                    });
                }
            } else {
                let p = parse_block(
                    params,
                    "rope_parameters.",
                    top_theta,
                    &globals,
                    Layer::default(),
                    &mut warnings,
                )?;
                layers.push(LayerRope {
                    layer_type: "all".into(),
                    params: p,
                    sliding_window: None,
                });
            }
        }
        (Some(v), _) if !v.is_null() => {
            return Err(Error::invalid(
                "rope_parameters",
                format!("an object, got {v}"),
            ));
        }
        (_, scaling) => {
            let empty = Map::new();
            let block = match scaling {
                None | Some(Value::Null) => &empty,
                Some(Value::Object(m)) => m,
                Some(v) => {
                    return Err(Error::invalid(
                        "rope_scaling",
                        format!("an object or null, got {v}"),
                    ))
                }
            };
            let theta = top_theta.or_else(|| {
                warnings.push(Lint {
                    key: "rope_theta".into(),
                    message: "missing; using HF's default 10000".into(),
                });
                Some(10000.0)
            });
            let global = parse_block(
                block,
                "rope_scaling.",
                theta,
                &globals,
                Layer::default(),
                &mut warnings,
            )?;
            if let Some(local_base) = get_f64(root, "rope_local_base_freq", "")? {
                // Gemma 3: sliding-window layers use their own base and no scaling.
                let local = RopeParams {
                    base: local_base,
                    scaling: RopeScaling::Default,
                    ..global.clone()
                };
                local
                    .validate()
                    .map_err(|e| rename_field(e, "rope_theta", "rope_local_base_freq"))?;
                layers.push(LayerRope {
                    layer_type: "full_attention".into(),
                    params: global,
                    sliding_window: None,
                });
                layers.push(LayerRope {
                    layer_type: "sliding_attention".into(),
                    params: local,
                    sliding_window: None,
                });
            } else {
                layers.push(LayerRope {
                    layer_type: "all".into(),
                    params: global,
                    sliding_window: None,
                });
            }
        }
    }

    let original_max_position_embeddings = layers.iter().find_map(|l| match &l.params.scaling {
        RopeScaling::Yarn(y) => Some(y.original_max_position_embeddings),
        RopeScaling::Llama3(l) => Some(l.original_max_position_embeddings),
        RopeScaling::LongRope(l) => Some(l.original_max_position_embeddings),
        _ => None,
    });
    let sliding_window = apply_sliding_window(
        root,
        model_type.as_deref(),
        max_position_embeddings,
        &mut layers,
        &mut warnings,
    )?;

    Ok(ModelConfig {
        model_type,
        head_dim,
        num_attention_heads,
        num_key_value_heads,
        max_position_embeddings,
        original_max_position_embeddings,
        layers,
        sliding_window,
        warnings,
    })
}

/// Which layers a sliding window applies to.
enum Slides {
    /// No layer (the reason is already linted).
    None,
    /// Every layer.
    All,
    /// Some layers: those of type `sliding_attention`; `others` are the remaining types, in order.
    Some { others: Vec<String> },
}

impl Slides {
    /// From counts of sliding layers among `total`: none, all, or a mix of sliding and full layers.
    fn from_counts(sliding: usize, total: usize) -> Slides {
        if sliding == 0 {
            Slides::None
        } else if sliding >= total {
            Slides::All
        } else {
            Slides::Some {
                others: vec!["full_attention".into()],
            }
        }
    }
}

/// Model types whose every layer uses `sliding_window` when it is set (HF builds one
/// sliding-window mask for the whole model).
const EVERY_LAYER_SLIDES: &[&str] = &["mistral", "mixtral", "starcoder2", "phi3", "phimoe"];

/// Model types that read `max_window_layers` (HF: layers from it on slide, when
/// `use_sliding_window` is true).
const QWEN2_STYLE: &[&str] = &["qwen2", "qwen2_vl", "qwen2_5_vl", "qwen3"];

/// Reads `sliding_window`, decides which layers use it (see [`ModelConfig::sliding_window`]) and
/// sets [`LayerRope::sliding_window`] on them, splitting a single `all` entry into
/// `full_attention` and `sliding_attention` when only some layers slide. Returns the window when
/// some layer uses it.
fn apply_sliding_window(
    root: &Map<String, Value>,
    model_type: Option<&str>,
    max_position_embeddings: usize,
    layers: &mut Vec<LayerRope>,
    warnings: &mut Vec<Lint>,
) -> Result<Option<usize>> {
    let window = match root.get("sliding_window") {
        None | Some(Value::Null) => None,
        Some(v) => match as_usize(v, "sliding_window") {
            Ok(w) if w > 0 => Some(w),
            _ => {
                return Err(Error::invalid(
                    "sliding_window",
                    format!("a positive integer (tokens) or null, got {v}"),
                ))
            }
        },
    };
    let use_sliding_window = match root.get("use_sliding_window") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(v) => {
            return Err(Error::invalid(
                "use_sliding_window",
                format!("true or false, got {v}"),
            ))
        }
    };
    let layer_types: Option<Vec<String>> = match root.get("layer_types") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_string).ok_or_else(|| {
                        Error::invalid(
                            "layer_types",
                            format!("a list of strings (one per layer), got an entry {v}"),
                        )
                    })
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
    let num_hidden_layers = get_usize(root, "num_hidden_layers", "")?;
    if let (Some(types), Some(n)) = (&layer_types, num_hidden_layers) {
        if types.len() != n {
            warnings.push(Lint {
                key: "layer_types".into(),
                message: format!(
                    "{} entries, but num_hidden_layers = {n} (HF rejects the config)",
                    types.len()
                ),
            });
        }
    }
    let has_sliding_entry = layers.iter().any(|l| l.layer_type == "sliding_attention");
    let declares_sliding = has_sliding_entry
        || layer_types
            .iter()
            .flatten()
            .any(|t| t == "sliding_attention");

    let Some(w) = window else {
        if declares_sliding && !root.contains_key("sliding_window") {
            warnings.push(Lint {
                key: "sliding_window".into(),
                message: "missing although the config has sliding_attention layers; HF then uses the model class's default (4096 for Gemma 2/3 and Mistral), posenc treats those layers as full attention".into(),
            });
        }
        return Ok(None);
    };
    if use_sliding_window == Some(false) {
        warnings.push(Lint {
            key: "sliding_window".into(),
            message: format!("{w} is unused: use_sliding_window is false, so HF sets sliding_window to None and every layer attends to its full context"),
        });
        return Ok(None);
    }
    let unused = |why: String, warnings: &mut Vec<Lint>| {
        warnings.push(Lint {
            key: "sliding_window".into(),
            message: format!("{w} is unused: {why}"),
        });
        Slides::None
    };

    let slides = match (model_type, &layer_types) {
        (Some("mistral"), Some(_)) => {
            warnings.push(Lint {
                key: "layer_types".into(),
                message: "ignored: HF's Mistral applies sliding_window to every layer".into(),
            });
            Slides::All
        }
        (_, Some(types)) => {
            let sliding = types.iter().filter(|t| *t == "sliding_attention").count();
            if sliding == 0 {
                unused(
                    "layer_types has no sliding_attention layer".into(),
                    warnings,
                )
            } else if sliding == types.len() {
                Slides::All
            } else {
                let mut others: Vec<String> = Vec::new();
                for t in types {
                    if t != "sliding_attention" && !others.contains(t) {
                        others.push(t.clone());
                    }
                }
                Slides::Some { others }
            }
        }
        (Some("qwen3_moe"), None) if use_sliding_window == Some(true) => Slides::All,
        (Some(mt), None) if use_sliding_window == Some(true) && QWEN2_STYLE.contains(&mt) => {
            let first = match get_usize(root, "max_window_layers", "")? {
                Some(m) => m,
                None => {
                    warnings.push(Lint {
                        key: "max_window_layers".into(),
                        message: "missing; using HF's Qwen2 default 28".into(),
                    });
                    28
                }
            };
            match num_hidden_layers {
                Some(n) => match Slides::from_counts(n.saturating_sub(first), n) {
                    Slides::None => unused(
                        format!("max_window_layers = {first} is not below num_hidden_layers = {n}, so no layer slides"),
                        warnings,
                    ),
                    s => s,
                },
                None if first == 0 => Slides::All,
                None => {
                    warnings.push(Lint {
                        key: "num_hidden_layers".into(),
                        message: format!("missing; assuming layers from max_window_layers = {first} on use sliding_window and the ones before do not"),
                    });
                    Slides::Some {
                        others: vec!["full_attention".into()],
                    }
                }
            }
        }
        _ if has_sliding_entry => Slides::Some {
            others: layers
                .iter()
                .filter(|l| l.layer_type != "sliding_attention")
                .map(|l| l.layer_type.clone())
                .collect(),
        },
        (Some(mt @ ("gemma2" | "gemma3" | "gemma3_text" | "gemma4" | "gemma4_text")), None) => {
            let pattern = if mt == "gemma2" {
                2
            } else {
                match get_usize(root, "sliding_window_pattern", "")? {
                    Some(0) => {
                        return Err(Error::invalid(
                            "sliding_window_pattern",
                            "a positive integer, got 0",
                        ))
                    }
                    Some(p) => p,
                    None => 6,
                }
            };
            let last_global = mt.starts_with("gemma4");
            match num_hidden_layers {
                Some(n) => {
                    // HF: layer i slides unless (i + 1) % pattern == 0; Gemma 4 makes the last
                    // layer global as well.
                    let mut sliding = n - n / pattern;
                    if last_global && n % pattern != 0 {
                        sliding -= 1;
                    }
                    match Slides::from_counts(sliding, n) {
                        Slides::None => unused(
                            format!("with {n} layers and a pattern of {pattern}, no layer slides"),
                            warnings,
                        ),
                        s => s,
                    }
                }
                None if pattern == 1 && !last_global => Slides::All,
                None => {
                    warnings.push(Lint {
                        key: "num_hidden_layers".into(),
                        message: format!("missing; assuming {mt}'s mix of sliding and full layers"),
                    });
                    Slides::Some {
                        others: vec!["full_attention".into()],
                    }
                }
            }
        }
        (Some(mt), None) if EVERY_LAYER_SLIDES.contains(&mt) => Slides::All,
        (mt, None) => unused(
            format!(
                "posenc does not know which layers of model_type {} use it; add `layer_types` (sliding_attention / full_attention per layer) to have it applied",
                mt.unwrap_or("(none)")
            ),
            warnings,
        ),
    };

    match slides {
        Slides::None => return Ok(None),
        Slides::All => {
            for l in layers.iter_mut() {
                l.sliding_window = Some(w);
            }
        }
        Slides::Some { others } => {
            if let Some(l) = layers
                .iter_mut()
                .find(|l| l.layer_type == "sliding_attention")
            {
                l.sliding_window = Some(w);
            } else if layers.len() == 1 && layers[0].layer_type == "all" {
                let params = layers[0].params.clone();
                layers.clear();
                for t in others {
                    layers.push(LayerRope {
                        layer_type: t,
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
                warnings.push(Lint {
                    key: "sliding_window".into(),
                    message: format!("{w} is not applied: the sliding_attention layers have no RoPE entry (rope_parameters has {})", names.join(", ")),
                });
                return Ok(None);
            }
        }
    }
    if w >= max_position_embeddings {
        warnings.push(Lint {
            key: "sliding_window".into(),
            message: format!("{w} is not below max_position_embeddings = {max_position_embeddings}: the window limits nothing within the advertised context"),
        });
    }
    Ok(Some(w))
}

fn rename_field(e: Error, from: &str, to: &str) -> Error {
    match e {
        Error::InvalidParameter { field, expected } if field == from => Error::InvalidParameter {
            field: to.into(),
            expected,
        },
        other => other,
    }
}

/// Which block [`parse_block`] reads: one of several per-layer blocks or the only one.
#[derive(Debug, Clone, Copy, Default)]
struct Layer {
    /// One entry of a per-layer `rope_parameters`.
    per_layer: bool,
    /// The `full_attention` entry (Gemma 4 gives it its own head size).
    full_attention: bool,
}

/// Parses one scaling block (legacy `rope_scaling` or one `rope_parameters` entry).
fn parse_block(
    block: &Map<String, Value>,
    path: &str,
    top_theta: Option<f64>,
    g: &Globals,
    layer: Layer,
    warnings: &mut Vec<Lint>,
) -> Result<RopeParams> {
    let head_dim = match (layer.full_attention, g.global_head_dim) {
        (true, Some(h)) => h,
        _ => g.head_dim,
    };
    let type_key = |k: &str| -> Result<Option<String>> {
        match block.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(Error::invalid(
                format!("{path}{k}"),
                format!("a string, got {v}"),
            )),
        }
    };
    let rope_type = match (type_key("rope_type")?, type_key("type")?) {
        (Some(a), Some(b)) if a != b => {
            warnings.push(Lint {
                key: format!("{path}type"),
                message: format!(
                    "`type` = {b} disagrees with `rope_type` = {a}; HF uses rope_type"
                ),
            });
            a
        }
        (Some(a), _) => a,
        (None, Some(b)) => b,
        (None, None) if block.is_empty() => "default".to_string(),
        (None, None) => {
            return Err(Error::MissingKey {
                key: format!("{path}rope_type"),
                expected: format!("one of {}", KNOWN_ROPE_TYPES.join(", ")),
            })
        }
    };
    let rope_type = match rope_type.as_str() {
        "su" => {
            warnings.push(Lint {
                key: format!("{path}type"),
                message: "`su` is the old name of `longrope`".into(),
            });
            "longrope".to_string()
        }
        _ => rope_type,
    };
    if !KNOWN_ROPE_TYPES.contains(&rope_type.as_str()) {
        return Err(Error::UnknownRopeType {
            found: rope_type,
            known: KNOWN_ROPE_TYPES.join(", "),
        });
    }
    let rt = rope_type.as_str();

    let base = match get_f64(block, "rope_theta", path)? {
        Some(b) => b,
        None => top_theta.ok_or_else(|| Error::MissingKey {
            key: format!("{path}rope_theta"),
            expected: "a number (the RoPE base)".into(),
        })?,
    };

    // Unused keys: present in the block but not read by this rope type.
    let structural = ["rope_type", "type", "rope_theta", "partial_rotary_factor"];
    for key in block.keys() {
        if !structural.contains(&key.as_str()) && !used_keys(rt).contains(&key.as_str()) {
            warnings.push(Lint {
                key: format!("{path}{key}"),
                message: format!("present but unused by rope_type `{rt}`"),
            });
        }
    }

    let block_partial = get_f64(block, "partial_rotary_factor", path)?;
    // HF's standardization writes the top-level factor over the block's own.
    let partial = match (g.top_partial, block_partial) {
        (Some(top), Some(own)) if top != own => {
            warnings.push(Lint {
                key: format!("{path}partial_rotary_factor"),
                message: format!("{own} disagrees with the top-level value {top}; HF uses {top}"),
            });
            top
        }
        (Some(top), _) => top,
        (None, Some(own)) => own,
        (None, None) => 1.0,
    };
    if !(partial > 0.0 && partial <= 1.0) {
        return Err(Error::invalid(
            format!("{path}partial_rotary_factor"),
            format!("a number in (0, 1], got {partial}"),
        ));
    }
    let mut rotary_dim = match g.rotary_dim_override {
        Some(r) => r,
        None => (head_dim as f64 * partial) as usize,
    };
    if rotary_dim % 2 != 0 || rotary_dim == 0 {
        return Err(Error::invalid(
            "rotary_dim",
            format!(
                "an even number > 0; head_dim {head_dim} × partial_rotary_factor {partial} gives {rotary_dim}"
            ),
        ));
    }

    // HF's standardization for yarn, llama3 and longrope: a single block takes the top-level
    // value when there is one (Phi-3 keeps it there), else its own, else max_position_embeddings;
    // a per-layer block its own, else max_position_embeddings.
    let original = |warnings: &mut Vec<Lint>| -> Result<usize> {
        let inner = get_usize(block, "original_max_position_embeddings", path)?;
        let top = if layer.per_layer {
            None
        } else {
            g.top_original
        };
        Ok(match (top, inner) {
            (Some(t), Some(i)) => {
                if t != i {
                    warnings.push(Lint {
                        key: format!("{path}original_max_position_embeddings"),
                        message: format!("{i} disagrees with the top-level value {t}; HF uses {t}"),
                    });
                }
                t
            }
            (Some(t), None) => t,
            (None, Some(i)) => i,
            (None, None) => {
                warnings.push(Lint {
                    key: format!("{path}original_max_position_embeddings"),
                    message: format!(
                        "missing; HF uses max_position_embeddings = {} as the pre-training context",
                        g.max_position_embeddings
                    ),
                });
                g.max_position_embeddings
            }
        })
    };

    let factor_lint = |factor: f64, warnings: &mut Vec<Lint>| {
        if factor < 1.0 {
            warnings.push(Lint {
                key: format!("{path}factor"),
                message: format!("{factor} < 1 shrinks the context instead of extending it"),
            });
        }
    };
    let ratio_lint = |factor: f64, orig: usize, warnings: &mut Vec<Lint>| {
        let ratio = g.max_position_embeddings as f64 / orig as f64;
        if (ratio - factor).abs() > 1e-9 * factor.abs().max(1.0) {
            warnings.push(Lint {
                key: format!("{path}factor"),
                message: format!(
                    "max_position_embeddings / original_max_position_embeddings = {} / {orig} = {ratio} differs from factor = {factor}",
                    g.max_position_embeddings
                ),
            });
        }
    };

    let scaling = match rt {
        "default" => RopeScaling::Default,
        "linear" | "dynamic" | "ntk" => {
            let factor = require_f64(block, "factor", path, rt)?;
            factor_lint(factor, warnings);
            match rt {
                "linear" => RopeScaling::Linear { factor },
                "dynamic" => RopeScaling::Dynamic { factor },
                _ => RopeScaling::Ntk { factor },
            }
        }
        "yarn" => {
            let orig = original(warnings)?;
            // HF requires the key; `null` means max_position_embeddings / original.
            let factor = match block.get("factor") {
                Some(Value::Null) => g.max_position_embeddings as f64 / orig as f64,
                _ => require_f64(block, "factor", path, rt)?,
            };
            factor_lint(factor, warnings);
            ratio_lint(factor, orig, warnings);
            let mut y = YarnParams::new(factor, orig);
            // HF: `beta_fast or 32`, so 0 and null both fall back to the default.
            if let Some(b) = get_f64(block, "beta_fast", path)?.filter(|&b| b != 0.0) {
                y.beta_fast = b;
            }
            if let Some(b) = get_f64(block, "beta_slow", path)?.filter(|&b| b != 0.0) {
                y.beta_slow = b;
            }
            if y.beta_fast < y.beta_slow {
                warnings.push(Lint {
                    key: format!("{path}beta_fast"),
                    message: format!(
                        "beta_fast = {} < beta_slow = {}: the ramp runs backwards",
                        y.beta_fast, y.beta_slow
                    ),
                });
            }
            y.mscale = get_f64(block, "mscale", path)?;
            y.mscale_all_dim = get_f64(block, "mscale_all_dim", path)?;
            y.attention_factor = get_f64(block, "attention_factor", path)?;
            y.truncate = match block.get("truncate") {
                None | Some(Value::Null) => true,
                Some(Value::Bool(b)) => *b,
                Some(v) => {
                    return Err(Error::invalid(
                        format!("{path}truncate"),
                        format!("true or false, got {v}"),
                    ))
                }
            };
            if layer.per_layer && !y.truncate {
                // transformers v5 reads `truncate` from the top-level `rope_parameters` dict, which
                // for per-layer configs holds only the layer blocks, so it always truncates there.
                warnings.push(Lint {
                    key: format!("{path}truncate"),
                    message: "false here, but HF reads `truncate` only from the top level of rope_parameters, so HF truncates for this layer; posenc follows the block".into(),
                });
            }
            RopeScaling::Yarn(y)
        }
        "llama3" => {
            let factor = require_f64(block, "factor", path, rt)?;
            factor_lint(factor, warnings);
            let orig = original(warnings)?;
            ratio_lint(factor, orig, warnings);
            if orig >= g.max_position_embeddings {
                warnings.push(Lint {
                    key: format!("{path}original_max_position_embeddings"),
                    message: format!(
                        "{orig} is not below max_position_embeddings = {}: the scaling extends nothing",
                        g.max_position_embeddings
                    ),
                });
            }
            let low_freq_factor = require_f64(block, "low_freq_factor", path, rt)?;
            let high_freq_factor = require_f64(block, "high_freq_factor", path, rt)?;
            if high_freq_factor <= low_freq_factor {
                warnings.push(Lint {
                    key: format!("{path}high_freq_factor"),
                    message: format!(
                        "high_freq_factor = {high_freq_factor} is not above low_freq_factor = {low_freq_factor}: no pair is smoothly blended"
                    ),
                });
            }
            RopeScaling::Llama3(Llama3Params {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings: orig,
            })
        }
        "longrope" => {
            let short_factor = f64_list(block, "short_factor", path, rt)?;
            let long_factor = f64_list(block, "long_factor", path, rt)?;
            for (name, list) in [
                ("short_factor", &short_factor),
                ("long_factor", &long_factor),
            ] {
                if list.len() != rotary_dim / 2 {
                    warnings.push(Lint {
                        key: format!("{path}{name}"),
                        message: format!(
                            "{} entries, expected rotary_dim/2 = {}",
                            list.len(),
                            rotary_dim / 2
                        ),
                    });
                }
            }
            let factor = get_f64(block, "factor", path)?;
            let orig = original(warnings)?;
            if let Some(f) = factor {
                factor_lint(f, warnings);
                ratio_lint(f, orig, warnings);
            }
            RopeScaling::LongRope(LongRopeParams {
                short_factor,
                long_factor,
                factor,
                attention_factor: get_f64(block, "attention_factor", path)?,
                original_max_position_embeddings: orig,
            })
        }
        "proportional" => {
            let factor = get_f64(block, "factor", path)?.unwrap_or(1.0);
            // Proportional RoPE always encodes the whole head; `partial` picks how many pairs turn.
            let rope_angles = ((partial * head_dim as f64) / 2.0).floor() as usize;
            rotary_dim = head_dim - head_dim % 2;
            RopeScaling::Proportional {
                factor,
                rope_angles,
            }
        }
        _ => unreachable!("checked against KNOWN_ROPE_TYPES"),
    };
    let params = RopeParams {
        base,
        head_dim,
        rotary_dim,
        max_position_embeddings: g.max_position_embeddings,
        scaling,
    };
    // Frequency-list lengths were linted above; everything else must validate now.
    match params.validate() {
        Ok(()) => {}
        Err(Error::InvalidParameter { field, .. })
            if field == "short_factor" || field == "long_factor" => {}
        Err(Error::InvalidParameter { field, expected }) if block.contains_key(&field) => {
            return Err(Error::InvalidParameter {
                field: format!("{path}{field}"),
                expected,
            })
        }
        Err(e) => return Err(e),
    }
    Ok(params)
}
