//! Reading RoPE settings from a Hugging Face `config.json` exactly as transformers does, and
//! linting them.
//!
//! transformers never reads `config.json` alone: `CONFIG_MAPPING[model_type]` picks a config
//! class whose field defaults and standardization fill in what the file leaves out, and the
//! model's rotary module decides which values it uses. posenc reproduces that from a table of
//! model types ([`model_types::MODEL_TYPES`], one row per transformers class, with the class
//! named): the base, partial-rotary and head-size defaults, legacy key names (`rotary_pct`,
//! `rotary_emb_base`), which layers a legacy `rope_scaling` applies to (Gemma 3 and OLMo 3: full
//! attention only), per-layer-type RoPE (Gemma 3/4, OLMo 3), Phi-3's longrope rewrites, gpt-oss's
//! default YaRN, and the default layer-type patterns. Values taken from a class default rather
//! than the file are listed in [`ModelConfig::defaults`]. A `model_type` posenc does not know (or
//! none) gets the Llama rules and a lint that says so. Multimodal configs are read through their
//! `text_config` as HF's `get_text_config` does.
//!
//! Accepted spellings: legacy `rope_theta` plus an optional `rope_scaling` block whose kind is
//! `rope_type` or (older) `type`; transformers v5 `rope_parameters`, flat or one block per layer
//! type. As in HF, a non-empty `rope_scaling` replaces `rope_parameters`, values inside the block
//! win over top-level `rope_theta`/`partial_rotary_factor`, and a top-level
//! `original_max_position_embeddings` replaces the block's for llama3/yarn/longrope.
//!
//! Missing required keys and values HF cannot use are errors that name the key. Lints
//! ([`Lint`]) say whether transformers warns too ([`LintOrigin::Hf`], with HF's meaning), refuses
//! the file ([`LintOrigin::HfError`], for the few configs posenc accepts anyway), or whether the
//! lint is posenc's own ([`LintOrigin::Posenc`]).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::rope::{RopeLayout, RopeParams};
use crate::{Error, Result};

mod block;
pub mod model_types;
mod sliding;
mod standardize;

use model_types::ModelType;

/// Values that come from a config class's defaults: key → where the value comes from.
pub type Provenance = BTreeMap<String, String>;

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

/// Who raises a [`Lint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LintOrigin {
    /// transformers warns about this too (same meaning).
    Hf,
    /// transformers refuses this config (posenc accepts it on purpose, or to say more).
    HfError,
    /// posenc's own check; transformers says nothing.
    Posenc,
}

/// A warning about a config: the key it concerns, what is wrong, and whether HF says so too.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Lint {
    /// The config key (dotted path for nested keys).
    pub key: String,
    /// What looks wrong, and what HF will do with it.
    pub message: String,
    /// Whether transformers warns too, refuses the file, or says nothing.
    pub origin: LintOrigin,
}

impl Lint {
    /// posenc's own lint.
    pub fn posenc(key: impl Into<String>, message: impl Into<String>) -> Lint {
        Lint {
            key: key.into(),
            message: message.into(),
            origin: LintOrigin::Posenc,
        }
    }

    /// A warning transformers gives as well.
    pub fn hf(key: impl Into<String>, message: impl Into<String>) -> Lint {
        Lint {
            key: key.into(),
            message: message.into(),
            origin: LintOrigin::Hf,
        }
    }

    /// A config transformers refuses.
    pub fn hf_error(key: impl Into<String>, message: impl Into<String>) -> Lint {
        Lint {
            key: key.into(),
            message: message.into(),
            origin: LintOrigin::HfError,
        }
    }
}

impl std::fmt::Display for Lint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let note = match self.origin {
            LintOrigin::Hf => "HF warns too",
            LintOrigin::HfError => "HF refuses this config",
            LintOrigin::Posenc => "posenc lint",
        };
        write!(f, "{}: {} ({note})", self.key, self.message)
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
    /// `model_type` of the text model, when the config names one (for a multimodal wrapper, the
    /// text config class's type, for example `gemma3_text`).
    pub model_type: Option<String>,
    /// The transformers config class whose rules were applied (`LlamaConfig` for unknown types).
    pub hf_class: String,
    /// How the model pairs dimensions (Cohere, DeepSeek, GPT-J and Llama 4 interleave).
    pub layout: RopeLayout,
    /// The rotary module works with complex numbers (`torch.polar`): hf-mode cos/sin then come
    /// from libm, not MKL ([`ModelConfig::hf_precision`]).
    pub complex_rotary: bool,
    /// Layers (0-based) without any RoPE: SmolLM3 and Llama 4 every 4th layer, Cohere 2 its
    /// full-attention layers. Empty when every layer has RoPE or the layer count is unknown.
    pub layers_without_rope: Vec<usize>,
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
    /// Values that come from the model type's config-class defaults rather than from the file:
    /// key → where the value comes from (for example `"rope_theta": "gemma3_text default"`).
    pub defaults: std::collections::BTreeMap<String, String>,
    /// Lint warnings.
    pub warnings: Vec<Lint>,
}

impl ModelConfig {
    /// The `hf` precision that reproduces this model's rotary module on `cpu`:
    /// [`Precision::HfPolar`](crate::rope::Precision::HfPolar) for complex-number modules, else
    /// [`Precision::Hf`](crate::rope::Precision::Hf).
    pub fn hf_precision(&self, cpu: crate::rope::HfCpu) -> crate::rope::Precision {
        if self.complex_rotary {
            crate::rope::Precision::HfPolar(cpu)
        } else {
            crate::rope::Precision::Hf(cpu)
        }
    }

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

pub(crate) fn as_f64(v: &Value, key: &str) -> Result<f64> {
    v.as_f64()
        .ok_or_else(|| Error::invalid(key, format!("a number, got {v}")))
}

pub(crate) fn as_usize(v: &Value, key: &str) -> Result<usize> {
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

pub(crate) fn get_f64(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<f64>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => as_f64(v, &format!("{path}{key}")).map(Some),
    }
}

pub(crate) fn get_usize(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<usize>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => as_usize(v, &format!("{path}{key}")).map(Some),
    }
}

/// Integer fields of the config classes that HF type-checks (an integral float like `4096.0` is
/// refused).
const INT_FIELDS: &[&str] = &[
    "hidden_size",
    "num_attention_heads",
    "num_key_value_heads",
    "num_hidden_layers",
    "max_position_embeddings",
    "head_dim",
    "intermediate_size",
    "vocab_size",
    "sliding_window",
    "max_window_layers",
    "global_head_dim",
    "qk_rope_head_dim",
];

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

/// The language model's settings (borrowed, or merged for Qwen2-VL) and its model type.
type TextRoot<'a> = (std::borrow::Cow<'a, Map<String, Value>>, Option<String>);

/// The object holding the language model's settings, and its model type, as HF's
/// `get_text_config` and the wrapper classes pick them.
fn text_root<'a>(outer: &'a Map<String, Value>, warnings: &mut Vec<Lint>) -> Result<TextRoot<'a>> {
    use std::borrow::Cow;
    let outer_type = outer.get("model_type").and_then(Value::as_str);
    let text = match outer.get("text_config") {
        None | Some(Value::Null) => None,
        Some(Value::Object(t)) => Some(t),
        Some(v) => {
            return Err(Error::invalid(
                "text_config",
                format!("an object or null, got {v}"),
            ))
        }
    };
    let inner_type = text
        .and_then(|t| t.get("model_type"))
        .and_then(Value::as_str);
    if let Some(w) = outer_type.and_then(model_types::wrapper) {
        let text_type = if w.text_type_from_file {
            inner_type.unwrap_or(w.text).to_string()
        } else {
            if let Some(t) = inner_type.filter(|t| *t != w.text) {
                warnings.push(Lint::posenc(
                    "text_config.model_type",
                    format!(
                        "`{t}` is not read: the {} wrapper always uses {} for its text model",
                        w.name, w.text
                    ),
                ));
            }
            w.text.to_string()
        };
        let root = match text {
            Some(t) if w.flat_text_keys => {
                // Qwen2-VL: text keys at top level move into text_config (top level wins for
                // keys text_config lacks).
                let mut merged = t.clone();
                for (k, v) in outer {
                    if k != "text_config" && k != "vision_config" && !merged.contains_key(k) {
                        merged.insert(k.clone(), v.clone());
                    }
                }
                Cow::Owned(merged)
            }
            Some(t) => Cow::Borrowed(t),
            None if w.flat_text_keys => Cow::Borrowed(outer),
            None => {
                warnings.push(Lint::posenc(
                    "text_config",
                    format!(
                        "missing: the {} wrapper's text model then has all its class defaults",
                        w.name
                    ),
                ));
                Cow::Owned(Map::new())
            }
        };
        return Ok((root, Some(text_type)));
    }
    // Not a known wrapper: a text_config holds the language model unless the top level has its
    // own sizes.
    match text {
        Some(t) if !outer.contains_key("hidden_size") && !outer.contains_key("head_dim") => Ok((
            Cow::Borrowed(t),
            inner_type.or(outer_type).map(str::to_string),
        )),
        _ => Ok((Cow::Borrowed(outer), outer_type.map(str::to_string))),
    }
}

/// Parses an already-decoded `config.json` value.
pub fn parse_config_value(value: &Value) -> Result<ModelConfig> {
    let outer = value
        .as_object()
        .ok_or_else(|| Error::invalid("config.json", "a JSON object at top level"))?;
    let mut warnings = Vec::new();
    let mut defaults = Provenance::new();
    let (root, model_type) = text_root(outer, &mut warnings)?;
    let root: &Map<String, Value> = &root;
    let mt: &ModelType = match model_type.as_deref() {
        Some(name) => model_types::lookup(name).unwrap_or_else(|| {
            warnings.push(Lint::posenc(
                "model_type",
                format!("`{name}` is not in posenc's table of transformers config classes; using LlamaConfig's rules (defaults, keys read), which may not be what HF does for it"),
            ));
            model_types::llama()
        }),
        None => {
            warnings.push(Lint::posenc(
                "model_type",
                "missing; using LlamaConfig's rules (HF itself needs model_type to pick a config class)",
            ));
            model_types::llama()
        }
    };
    for &key in INT_FIELDS {
        if let Some(Value::Number(n)) = root.get(key) {
            if n.is_f64() && n.as_f64().is_some_and(|f| f.fract() == 0.0) {
                warnings.push(Lint::hf_error(
                    key,
                    format!("{n} is a float; HF's {} type-checks this field and refuses floats (posenc reads it as an integer)", mt.hf_class),
                ));
            }
        }
    }
    for key in ["rope_local_base_freq"] {
        if root.contains_key(key)
            && !matches!(
                mt.shape,
                model_types::RopeShape::PerLayerLegacyOnFull {
                    sliding_theta_key: Some(_),
                    ..
                }
            )
        {
            warnings.push(Lint::posenc(
                key,
                format!(
                    "not read by {} (Gemma 3 has it); set model_type to have it applied",
                    mt.hf_class
                ),
            ));
        }
    }

    let sizes = standardize::sizes(root, mt, &mut warnings, &mut defaults)?;
    let plan = sliding::layer_plan(root, mt, &mut warnings, &mut defaults)?;
    let inputs = standardize::Inputs {
        root,
        mt,
        sizes: &sizes,
        layer_types: &plan.type_names(),
    };
    let blocks = standardize::rope_blocks(&inputs, &mut warnings, &mut defaults)?;
    let mpe = sizes.max_position_embeddings;
    let mut layers = Vec::new();
    for b in &blocks {
        if mt.head_dim == model_types::HeadDimRule::NoneUnlessGiven
            && root.get("head_dim").is_none_or(|v| v.is_null())
            && matches!(
                b.map.get("rope_type").and_then(Value::as_str),
                Some("dynamic" | "yarn" | "longrope")
            )
        {
            warnings.push(Lint::hf_error(
                "head_dim",
                format!("missing: {}'s head_dim stays None and HF's {} RoPE fails on it (posenc uses hidden_size // num_attention_heads)", mt.hf_class, b.map.get("rope_type").and_then(Value::as_str).unwrap_or("")),
            ));
        }
        let params = block::parse_block(b, mt, mpe, sizes.derived_head_dim, &mut warnings)?;
        layers.push(LayerRope {
            layer_type: b.layer_type.clone(),
            params,
            sliding_window: None,
        });
    }
    let sliding_window = sliding::apply_window(&plan, mpe, &mut layers, &mut warnings);
    let layers_without_rope = plan.layers_without_rope(mt);
    let original_max_position_embeddings = layers.iter().find_map(|l| match &l.params.scaling {
        crate::rope::RopeScaling::Yarn(y) => Some(y.original_max_position_embeddings),
        crate::rope::RopeScaling::Llama3(l) => Some(l.original_max_position_embeddings),
        crate::rope::RopeScaling::LongRope(l) => Some(l.original_max_position_embeddings),
        _ => None,
    });
    Ok(ModelConfig {
        model_type,
        hf_class: mt.hf_class.to_string(),
        layout: mt.layout,
        complex_rotary: mt.complex_rotary,
        layers_without_rope,
        head_dim: sizes.head_dim,
        num_attention_heads: Some(sizes.num_attention_heads),
        num_key_value_heads: sizes.num_key_value_heads,
        max_position_embeddings: mpe,
        original_max_position_embeddings,
        layers,
        sliding_window,
        defaults,
        warnings,
    })
}
