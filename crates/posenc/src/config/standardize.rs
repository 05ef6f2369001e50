//! From a `config.json` object to the `rope_parameters` blocks transformers ends up with, per
//! layer type: the config class's field defaults, `convert_rope_params_to_dict` and
//! `standardize_rope_params`, with each class's quirks from [`super::model_types`]. The blocks
//! are what HF's rotary module reads; [`super::block`] turns them into [`crate::rope::RopeParams`].

use serde_json::{json, Map, Value};

use super::model_types::{HeadDimRule, ModelType, RopeShape, RotaryVariant};
use super::{as_usize, get_f64, get_usize, Lint, Provenance};
use crate::{Error, Result};

/// One standardized RoPE block and where it applies.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    /// `all`, or the layer type.
    pub layer_type: String,
    /// The standardized dict (as HF's `config.rope_parameters[...]`).
    pub map: Map<String, Value>,
    /// The user-facing prefix of its keys in error messages (`rope_scaling.`, ...).
    pub path: String,
    /// One entry of a per-layer-type dict (changes how HF reads some keys).
    pub nested: bool,
    /// Head size of these layers.
    pub head_dim: usize,
    /// Whether default RoPE ignores `partial_rotary_factor` here (Llama-style rotary module).
    pub default_ignores_partial: bool,
    /// The `original_max_position_embeddings` HF's validation sees (before a top-level value
    /// replaces the block's at compute time).
    pub original_at_validation: Option<usize>,
    /// The keys the file itself wrote in this block (the rest were filled in).
    pub own_keys: Vec<String>,
    /// GPT-J: an absolute rotated width (`rotary_dim`) instead of a fraction.
    pub rotary_dim: Option<usize>,
}

/// The sizes HF resolves before RoPE.
#[derive(Debug, Clone)]
pub(crate) struct Sizes {
    pub head_dim: usize,
    /// Gemma 4's full-attention head size.
    pub global_head_dim: Option<usize>,
    pub num_attention_heads: usize,
    pub num_key_value_heads: Option<usize>,
    pub max_position_embeddings: usize,
    /// `hidden_size // num_attention_heads` (Phi-3 checks LongRoPE lists against it).
    pub derived_head_dim: usize,
}

/// Reads the sizes with the class's defaults.
pub(crate) fn sizes(
    root: &Map<String, Value>,
    mt: &ModelType,
    warnings: &mut Vec<Lint>,
    defaults: &mut Provenance,
) -> Result<Sizes> {
    let default_of = |_: &str| format!("{} default", mt.name);
    // GPTJConfig's attribute_map: hidden_size, num_attention_heads and max_position_embeddings
    // live under the GPT-2 names.
    let alias = |key: &'static str| -> &'static str {
        match (mt.shape, key) {
            (RopeShape::GptJ, "hidden_size") => "n_embd",
            (RopeShape::GptJ, "num_attention_heads") => "n_head",
            (RopeShape::GptJ, "max_position_embeddings") => "n_positions",
            _ => key,
        }
    };
    let hidden = match get_usize(root, alias("hidden_size"), "")? {
        Some(h) => h,
        None => {
            defaults.insert("hidden_size".into(), default_of("hidden_size"));
            mt.hidden_size
        }
    };
    let heads = match get_usize(root, alias("num_attention_heads"), "")? {
        Some(h) => h,
        None => {
            defaults.insert("num_attention_heads".into(), default_of("heads"));
            mt.num_attention_heads
        }
    };
    if heads == 0 {
        return Err(Error::invalid(
            "num_attention_heads",
            "a positive integer, got 0",
        ));
    }
    let num_key_value_heads = get_usize(root, "num_key_value_heads", "")?;
    if let Some(kv) = num_key_value_heads {
        if kv == 0 || heads % kv != 0 {
            warnings.push(Lint::posenc(
                "num_key_value_heads",
                format!("{kv} is not a positive divisor of num_attention_heads = {heads}: grouped-query attention cannot share key/value heads evenly (HF loads the config, the model would fail)"),
            ));
        }
    }
    if hidden % heads != 0 && mt.checks_divisible {
        warnings.push(Lint::hf_error(
            "hidden_size",
            format!("{hidden} is not a multiple of num_attention_heads = {heads}; {} refuses it (posenc floors the head size)", mt.hf_class),
        ));
    }
    let derived = hidden / heads;
    let file_head_dim = get_usize(root, "head_dim", "")?;
    let head_dim = match mt.head_dim {
        HeadDimRule::Derived | HeadDimRule::NoneUnlessGiven => file_head_dim.unwrap_or(derived),
        HeadDimRule::Fixed(n) => match file_head_dim {
            Some(h) => h,
            None => {
                defaults.insert("head_dim".into(), default_of("head_dim"));
                n
            }
        },
        HeadDimRule::QkRope { file_wins } => {
            let qk = match get_usize(root, "qk_rope_head_dim", "")? {
                Some(q) => q,
                None => {
                    defaults.insert("qk_rope_head_dim".into(), default_of("qk_rope_head_dim"));
                    64
                }
            };
            match (file_head_dim, file_wins) {
                (Some(h), true) => h,
                (Some(h), false) => {
                    warnings.push(Lint::posenc(
                        "head_dim",
                        format!("{h} is not read: {} sets the rotary head size to qk_rope_head_dim = {qk}", mt.hf_class),
                    ));
                    qk
                }
                (None, _) => qk,
            }
        }
        HeadDimRule::Property => {
            if let Some(h) = file_head_dim {
                warnings.push(Lint::hf_error(
                    "head_dim",
                    format!("{} has no settable head_dim (it is hidden_size // num_attention_heads = {derived}); HF fails on the key, posenc ignores {h}", mt.hf_class),
                ));
            }
            derived
        }
    };
    if head_dim == 0 {
        return Err(Error::invalid("head_dim", "a positive integer, got 0"));
    }
    let global_head_dim = if matches!(mt.shape, RopeShape::Gemma4) {
        Some(match get_usize(root, "global_head_dim", "")? {
            Some(0) => {
                return Err(Error::invalid(
                    "global_head_dim",
                    "a positive integer, got 0",
                ))
            }
            Some(g) => g,
            None => {
                defaults.insert("global_head_dim".into(), default_of("global_head_dim"));
                512
            }
        })
    } else {
        if root.contains_key("global_head_dim") {
            warnings.push(Lint::posenc(
                "global_head_dim",
                format!("not read by {} (only Gemma 4 has it)", mt.hf_class),
            ));
        }
        None
    };
    let max_position_embeddings = match get_usize(root, alias("max_position_embeddings"), "")? {
        Some(m) if m > 0 => m,
        Some(_) => {
            return Err(Error::invalid(
                "max_position_embeddings",
                "a positive integer, got 0",
            ))
        }
        None => {
            defaults.insert(
                "max_position_embeddings".into(),
                default_of("max_position_embeddings"),
            );
            mt.max_position_embeddings
        }
    };
    Ok(Sizes {
        head_dim,
        global_head_dim,
        num_attention_heads: heads,
        num_key_value_heads,
        max_position_embeddings,
        derived_head_dim: derived,
    })
}

/// A JSON object, `None` for absent or null, or an error naming the key.
fn object<'a>(root: &'a Map<String, Value>, key: &str) -> Result<Option<&'a Map<String, Value>>> {
    match root.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(v) => Err(Error::invalid(key, format!("an object or null, got {v}"))),
    }
}

/// Whether `map` is a per-layer-type dict: every value an object and every key a layer type.
fn is_nested(map: &Map<String, Value>, layer_types: &[String]) -> bool {
    !map.is_empty()
        && map.values().all(Value::is_object)
        && map.keys().all(|k| {
            layer_types.iter().any(|t| t == k)
                || matches!(
                    k.as_str(),
                    "full_attention" | "sliding_attention" | "chunked_attention"
                )
        })
}

/// The rope types for which HF fills in `original_max_position_embeddings`.
fn names_original(rope_type: &str) -> bool {
    matches!(rope_type, "llama3" | "yarn" | "longrope")
}

/// The file's `rope_type` of a block (`rope_type`, else the legacy `type`, else `default`).
fn rope_type_of(map: &Map<String, Value>) -> Option<String> {
    map.get("rope_type")
        .or_else(|| map.get("type"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Everything [`rope_blocks`] needs from the file besides the sizes.
pub(crate) struct Inputs<'a> {
    pub root: &'a Map<String, Value>,
    pub mt: &'a ModelType,
    pub sizes: &'a Sizes,
    /// Layer types (file or class default); empty when unknown.
    pub layer_types: &'a [String],
}

/// The standardized blocks, one per layer type with its own RoPE (or one `all` block).
pub(crate) fn rope_blocks(
    inputs: &Inputs,
    warnings: &mut Vec<Lint>,
    defaults: &mut Provenance,
) -> Result<Vec<Block>> {
    let Inputs {
        root,
        mt,
        sizes,
        layer_types,
    } = *inputs;
    let default_of = |_: &str| format!("{} default", mt.name);
    let scaling = object(root, "rope_scaling")?;
    let params = object(root, "rope_parameters")?;
    let mpe = sizes.max_position_embeddings;

    // The base and the rotated fraction the class reads at top level.
    let file_theta = get_f64(root, mt.theta_key, "")?;
    let theta = file_theta.unwrap_or(mt.theta);
    let file_partial = get_f64(root, mt.partial_key, "")?;
    let partial = file_partial.or(mt.partial_default);
    for (key, read) in [
        ("rope_theta", mt.theta_key),
        ("rotary_emb_base", mt.theta_key),
        ("partial_rotary_factor", mt.partial_key),
        ("rotary_pct", mt.partial_key),
    ] {
        if key != read && root.get(key).is_some_and(|v| !v.is_null()) {
            warnings.push(Lint::posenc(
                key,
                format!(
                    "not read by {} (it reads `{read}`); HF ignores it",
                    mt.hf_class
                ),
            ));
        }
    }
    let top_original = get_usize(root, "original_max_position_embeddings", "")?;

    let mut blocks = match mt.shape {
        RopeShape::Single => {
            let (source, path) = match (scaling.filter(|m| !m.is_empty()), params) {
                (Some(s), p) => {
                    if p.is_some() {
                        warnings.push(Lint::posenc(
                            "rope_parameters",
                            "ignored: a non-empty rope_scaling replaces rope_parameters in HF",
                        ));
                    }
                    (Some(s.clone()), "rope_scaling.")
                }
                (None, Some(p)) => (Some(p.clone()), "rope_parameters."),
                (None, None) => (None, "rope_scaling."),
            };
            let source = match source {
                Some(s) => s,
                None if mt.default_yarn => {
                    defaults.insert(
                        "rope_scaling".into(),
                        format!(
                            "{} default (yarn, factor 32, original 4096, no truncation)",
                            mt.name
                        ),
                    );
                    json!({"rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0,
                           "truncate": false, "original_max_position_embeddings": 4096})
                    .as_object()
                    .cloned()
                    .unwrap_or_default()
                }
                None => Map::new(),
            };
            if is_nested(&source, layer_types) {
                source
                    .into_iter()
                    .map(|(lt, b)| Block {
                        path: format!("{path}{lt}."),
                        map: b.as_object().cloned().unwrap_or_default(),
                        nested: true,
                        head_dim: sizes.head_dim,
                        default_ignores_partial: mt.rotary == RotaryVariant::Llama,
                        original_at_validation: None,
                        own_keys: Vec::new(),
                        rotary_dim: None,
                        layer_type: lt,
                    })
                    .collect()
            } else {
                vec![Block {
                    layer_type: "all".into(),
                    map: source,
                    path: path.into(),
                    nested: false,
                    head_dim: sizes.head_dim,
                    default_ignores_partial: mt.rotary == RotaryVariant::Llama,
                    original_at_validation: None,
                    own_keys: Vec::new(),
                    rotary_dim: None,
                }]
            }
        }
        RopeShape::PerLayerLegacyOnFull {
            sliding_theta_key,
            sliding_theta,
        } => {
            let mut start = params.cloned().unwrap_or_default();
            let nested = is_nested(&start, layer_types);
            if !start.is_empty() && !nested {
                warnings.push(Lint::posenc(
                    "rope_parameters",
                    format!("a flat rope_parameters is ignored by {}: it reads one block per layer type (full_attention, sliding_attention); both get default RoPE", mt.hf_class),
                ));
            }
            let mut take = |lt: &str| -> Map<String, Value> {
                match start.remove(lt) {
                    Some(Value::Object(m)) => m,
                    _ => Map::new(),
                }
            };
            let mut full = take("full_attention");
            let mut sliding = take("sliding_attention");
            let had_full = !full.is_empty();
            if params.is_none() {
                // The class starts from `{"rope_type": "default"}` per layer type.
                full.insert("rope_type".into(), json!("default"));
                sliding.insert("rope_type".into(), json!("default"));
            }
            if let Some(s) = scaling {
                // Merged into the full-attention layers only; a legacy `type` does not replace
                // the `rope_type` already there.
                if let (Some(t), None) = (s.get("type").and_then(Value::as_str), s.get("rope_type"))
                {
                    if full.get("rope_type").and_then(Value::as_str) == Some("default")
                        && t != "default"
                    {
                        warnings.push(Lint::posenc(
                            "rope_scaling.type",
                            format!("`{t}` is ignored: {} starts its full_attention block with rope_type `default` and the legacy `type` key does not replace it, so HF runs these layers with default RoPE; spell it `rope_type`", mt.hf_class),
                        ));
                    }
                }
                for (k, v) in s {
                    full.insert(k.clone(), v.clone());
                }
            }
            if !full.contains_key("rope_theta") {
                if file_theta.is_none() {
                    defaults.insert(
                        if had_full {
                            "rope_parameters.full_attention.rope_theta".into()
                        } else {
                            "rope_theta".into()
                        },
                        default_of("theta"),
                    );
                }
                full.insert("rope_theta".into(), json!(theta));
            }
            if !sliding.contains_key("rope_theta") {
                let local = match sliding_theta_key {
                    Some(k) => get_f64(root, k, "")?,
                    None => None,
                };
                if local.is_none() {
                    defaults.insert(
                        sliding_theta_key
                            .unwrap_or("rope_parameters.sliding_attention.rope_theta")
                            .into(),
                        format!("{} default for sliding layers", mt.name),
                    );
                }
                sliding.insert("rope_theta".into(), json!(local.unwrap_or(sliding_theta)));
            }
            let (full_path, sliding_path) = if had_full || nested {
                (
                    "rope_parameters.full_attention.",
                    "rope_parameters.sliding_attention.",
                )
            } else {
                ("rope_scaling.", "rope_local_base_freq/")
            };
            let mut out = Vec::new();
            for (lt, map, path) in [
                ("full_attention", full, full_path),
                ("sliding_attention", sliding, sliding_path),
            ] {
                if !layer_types.is_empty() && !layer_types.iter().any(|t| t == lt) {
                    continue;
                }
                out.push(Block {
                    layer_type: lt.into(),
                    map,
                    path: path.into(),
                    nested: true,
                    head_dim: sizes.head_dim,
                    default_ignores_partial: true,
                    original_at_validation: None,
                    own_keys: Vec::new(),
                    rotary_dim: None,
                });
            }
            out
        }
        RopeShape::GptJ => {
            for key in [
                "rope_theta",
                "rope_scaling",
                "rope_parameters",
                "partial_rotary_factor",
            ] {
                if root.get(key).is_some_and(|v| !v.is_null()) {
                    warnings.push(Lint::posenc(
                        key,
                        "not read by GPTJConfig: GPT-J's RoPE is fixed in the model code (base 10000, rotary_dim dims)",
                    ));
                }
            }
            let rotary_dim = match root.get("rotary_dim") {
                None => {
                    defaults.insert("rotary_dim".into(), "gptj default".into());
                    64
                }
                Some(Value::Null) => {
                    warnings.push(Lint::hf_error(
                        "rotary_dim",
                        "null: GPTJConfig type-checks it as an int (the rotary module would use hidden_size)",
                    ));
                    sizes.head_dim
                }
                Some(v) => as_usize(v, "rotary_dim")?,
            };
            let mut map = Map::new();
            map.insert("rope_type".into(), json!("default"));
            map.insert("rope_theta".into(), json!(10_000.0));
            let head = sizes.head_dim;
            if rotary_dim > head {
                return Err(Error::invalid(
                    "rotary_dim",
                    format!(
                        "at most the head size hidden_size / n_head = {head}, got {rotary_dim}"
                    ),
                ));
            }
            vec![Block {
                layer_type: "all".into(),
                map,
                path: String::new(),
                nested: false,
                head_dim: head,
                default_ignores_partial: false,
                original_at_validation: None,
                own_keys: Vec::new(),
                rotary_dim: Some(rotary_dim),
            }]
        }
        RopeShape::Gemma4 => {
            if scaling.is_some() {
                return Err(Error::invalid(
                    "rope_scaling",
                    "absent for gemma4_text: HF's Gemma4TextConfig replaces its per-layer rope_parameters with a legacy rope_scaling block and then fails (KeyError 'full_attention'); give rope_parameters with full_attention and sliding_attention blocks",
                ));
            }
            if file_theta.is_some() {
                warnings.push(Lint::posenc(
                    "rope_theta",
                    "not read by Gemma4TextConfig: each rope_parameters block has its own rope_theta",
                ));
            }
            let map = match params {
                Some(p) => {
                    if !is_nested(p, layer_types) {
                        return Err(Error::invalid(
                            "rope_parameters",
                            "one block per layer type for gemma4_text (full_attention, sliding_attention): HF fails on a flat block",
                        ));
                    }
                    p.clone()
                }
                None => {
                    defaults.insert("rope_parameters".into(), default_of("rope_parameters"));
                    json!({
                        "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
                        "full_attention": {"rope_type": "proportional", "partial_rotary_factor": 0.25, "rope_theta": 1_000_000.0},
                    })
                    .as_object()
                    .cloned()
                    .unwrap_or_default()
                }
            };
            let mut out = Vec::new();
            for lt in ["full_attention", "sliding_attention"] {
                let wanted = layer_types.is_empty() || layer_types.iter().any(|t| t == lt);
                match map.get(lt) {
                    Some(Value::Object(b)) if wanted => out.push(Block {
                        layer_type: lt.into(),
                        map: b.clone(),
                        path: format!("rope_parameters.{lt}."),
                        nested: true,
                        head_dim: if lt == "full_attention" {
                            sizes.global_head_dim.unwrap_or(sizes.head_dim)
                        } else {
                            sizes.head_dim
                        },
                        default_ignores_partial: true,
                        original_at_validation: None,
                        own_keys: Vec::new(),
                        rotary_dim: None,
                    }),
                    None if wanted => {
                        return Err(Error::MissingKey {
                            key: format!("rope_parameters.{lt}"),
                            expected: "a RoPE block for these layers (HF fails without it)".into(),
                        })
                    }
                    _ => {}
                }
            }
            out
        }
    };

    for b in &mut blocks {
        standardize_block(
            b,
            mt,
            theta,
            file_theta.is_none(),
            partial,
            top_original,
            mpe,
            warnings,
            defaults,
        )?;
    }
    Ok(blocks)
}

/// `standardize_rope_params` for one block, with the class's quirks.
#[allow(clippy::too_many_arguments)]
fn standardize_block(
    b: &mut Block,
    mt: &ModelType,
    theta: f64,
    theta_defaulted: bool,
    partial: Option<f64>,
    top_original: Option<usize>,
    mpe: usize,
    warnings: &mut Vec<Lint>,
    defaults: &mut Provenance,
) -> Result<()> {
    b.own_keys = b.map.keys().cloned().collect();
    let map = &mut b.map;
    let mut rope_type = rope_type_of(map).unwrap_or_else(|| "default".into());
    if let Some(v) = map.get("rope_type").or_else(|| map.get("type")) {
        if !v.is_string() && !v.is_null() {
            let key = if map.contains_key("rope_type") {
                "rope_type"
            } else {
                "type"
            };
            return Err(Error::invalid(
                format!("{}{key}", b.path),
                format!("a string, got {v}"),
            ));
        }
    }
    if let (Some(a), Some(t)) = (
        map.get("rope_type").and_then(Value::as_str),
        map.get("type").and_then(Value::as_str),
    ) {
        if a != t {
            warnings.push(Lint::posenc(
                format!("{}type", b.path),
                format!("`type` = {t} disagrees with `rope_type` = {a}; HF uses rope_type"),
            ));
        }
    }
    if mt.longrope_only {
        if matches!(rope_type.as_str(), "su" | "yarn") {
            if rope_type == "yarn" {
                warnings.push(Lint::posenc(
                    format!("{}type", b.path),
                    format!(
                        "`yarn` is read as longrope by {} (the old Phi-3 spelling)",
                        mt.hf_class
                    ),
                ));
            }
            rope_type = "longrope".into();
        } else if rope_type != "default" && rope_type != "longrope" {
            return Err(Error::invalid(
                format!("{}rope_type", b.path),
                format!(
                    "`default` or `longrope` for {} (HF refuses `{rope_type}`)",
                    mt.hf_class
                ),
            ));
        }
    }
    map.insert("rope_type".into(), json!(rope_type));
    if !map.contains_key("rope_theta") {
        if theta_defaulted && !b.nested {
            defaults.insert("rope_theta".into(), format!("{} default", mt.name));
        }
        map.insert("rope_theta".into(), json!(theta));
    }
    if let Some(p) = partial {
        if !map.contains_key("partial_rotary_factor") {
            map.insert("partial_rotary_factor".into(), json!(p));
        }
    }
    if names_original(&rope_type) {
        let block_value = map.get("original_max_position_embeddings").cloned();
        let own = match &block_value {
            Some(v) if !v.is_null() => Some(as_usize(
                v,
                &format!("{}original_max_position_embeddings", b.path),
            )?),
            _ => None,
        };
        b.original_at_validation = Some(match (mt.original_field, b.nested) {
            (Some(f), false) if !(mt.block_original_wins && own.is_some()) => {
                top_original.unwrap_or(f)
            }
            _ => own.unwrap_or(mpe),
        });
        let path = format!("{}original_max_position_embeddings", b.path);
        if b.nested {
            if block_value.is_none() {
                defaults.insert(path, "max_position_embeddings (HF's default)".into());
                map.insert("original_max_position_embeddings".into(), json!(mpe));
            }
            if let Some(o) = top_original {
                warnings.push(Lint::posenc(
                    "original_max_position_embeddings",
                    format!("top-level value {o} is not read for per-layer rope_parameters (HF uses each block's value, else max_position_embeddings)"),
                ));
            }
        } else {
            let top = if mt.block_original_wins && block_value.is_some() {
                None
            } else {
                top_original.or(mt.original_field)
            };
            match (top, &block_value) {
                (Some(t), Some(v)) => {
                    let v = as_usize(v, &path)?;
                    if v != t {
                        warnings.push(Lint::posenc(
                            path,
                            format!("{v} is replaced by the top-level value {t} (HF computes with the top-level one)"),
                        ));
                    }
                    map.insert("original_max_position_embeddings".into(), json!(t));
                }
                (Some(t), None) => {
                    if top_original.is_none() {
                        defaults.insert(
                            "original_max_position_embeddings".into(),
                            format!("{} default", mt.name),
                        );
                    }
                    map.insert("original_max_position_embeddings".into(), json!(t));
                }
                (None, Some(_)) => {}
                (None, None) => {
                    defaults.insert(path, "max_position_embeddings (HF's default)".into());
                    map.insert("original_max_position_embeddings".into(), json!(mpe));
                }
            }
        }
    }
    Ok(())
}
