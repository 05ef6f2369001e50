//! One standardized `rope_parameters` block → [`RopeParams`], with the warnings transformers'
//! `validate_rope` gives (as [`LintOrigin::Hf`](super::LintOrigin) lints) and posenc's own.

use serde_json::{Map, Value};

use super::model_types::ModelType;
use super::standardize::Block;
use super::{as_usize, get_f64, Lint, KNOWN_ROPE_TYPES};
use crate::rope::{Llama3Params, LongRopeParams, RopeParams, RopeScaling, YarnParams};
use crate::{Error, Result};

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
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_f64()
                    .ok_or_else(|| Error::invalid(&full, format!("a list of numbers, got {v}")))
            })
            .collect(),
        Some(v) => Err(Error::invalid(full, format!("a list of numbers, got {v}"))),
    }
}

/// The keys HF's `_validate_<type>_rope_parameters` accepts (besides `rope_type`, `type` and
/// `partial_rotary_factor`); others draw its "Unrecognized keys" warning.
fn accepted_keys(rope_type: &str) -> &'static [&'static str] {
    match rope_type {
        "default" => &["rope_theta"],
        "linear" | "dynamic" | "ntk" => &["rope_theta", "factor"],
        "yarn" => &[
            "rope_theta",
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
            "rope_theta",
            "factor",
            "low_freq_factor",
            "high_freq_factor",
            "original_max_position_embeddings",
        ],
        "longrope" => &[
            "rope_theta",
            "short_factor",
            "long_factor",
            "factor",
            "attention_factor",
            "original_max_position_embeddings",
        ],
        "proportional" => &["rope_theta"],
        _ => &[],
    }
}

/// Parses one standardized block. `mpe` is `max_position_embeddings`.
pub(crate) fn parse_block(
    b: &Block,
    mt: &ModelType,
    mpe: usize,
    derived_head_dim: usize,
    warnings: &mut Vec<Lint>,
) -> Result<RopeParams> {
    let (map, path, head_dim) = (&b.map, b.path.as_str(), b.head_dim);
    let mut rope_type = map
        .get("rope_type")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_string();
    match rope_type.as_str() {
        "su" => {
            warnings.push(Lint::hf_error(
                format!("{path}type"),
                format!("`su` (the old name of `longrope`) is read as longrope; {} has no `su` rope type (only Phi-3 rewrites it)", mt.hf_class),
            ));
            rope_type = "longrope".into();
        }
        "ntk" => warnings.push(Lint::hf_error(
            format!("{path}rope_type"),
            "`ntk` is posenc's static NTK scaling; transformers has no such rope_type",
        )),
        "mrope" => rope_type = "default".into(), // Qwen2-VL: multimodal sections, default RoPE.
        _ => {}
    }
    if !KNOWN_ROPE_TYPES.contains(&rope_type.as_str()) {
        return Err(Error::UnknownRopeType {
            found: rope_type,
            known: KNOWN_ROPE_TYPES.join(", "),
        });
    }
    let rt = rope_type.as_str();
    let base = require_f64(map, "rope_theta", path, rt)?;

    if mt.name.starts_with("qwen2_vl") || mt.name.starts_with("qwen2_5_vl") {
        // The multimodal rotary module splits the pairs into temporal/height/width sections.
        let sections: Vec<usize> = match map.get("mrope_section") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| as_usize(v, &format!("{path}mrope_section")))
                .collect::<Result<_>>()?,
            _ => vec![16, 24, 24],
        };
        let pairs = if rt == "default" && b.default_ignores_partial {
            head_dim / 2
        } else {
            (head_dim as f64 * get_f64(map, "partial_rotary_factor", path)?.unwrap_or(1.0)) as usize
                / 2
        };
        let sum: usize = sections.iter().sum();
        if sum != pairs {
            return Err(Error::invalid(
                format!("{path}mrope_section"),
                format!("sections summing to the {pairs} rotary pairs, got {sections:?} (sum {sum}; HF fails too)"),
            ));
        }
    }
    let mut unknown: Vec<&str> = map
        .keys()
        .map(String::as_str)
        .filter(|k| {
            let structural = matches!(*k, "rope_type" | "type" | "partial_rotary_factor");
            let model_specific = (mt.phimoe_mscale && matches!(*k, "short_mscale" | "long_mscale"))
                || *k == "mrope_section";
            !(structural || model_specific || accepted_keys(rt).contains(k))
        })
        .collect();
    unknown.sort_unstable();
    for key in unknown {
        warnings.push(Lint::hf(
            format!("{path}{key}"),
            format!("unrecognized for rope_type `{rt}`, not used"),
        ));
    }

    let partial = get_f64(map, "partial_rotary_factor", path)?.unwrap_or(1.0);
    if !(partial > 0.0 && partial <= 1.0) {
        return Err(Error::invalid(
            format!("{path}partial_rotary_factor"),
            format!("a number in (0, 1], got {partial}"),
        ));
    }
    let mut rotary_dim = if let Some(r) = b.rotary_dim {
        r
    } else if rt == "default" && b.default_ignores_partial {
        if partial < 1.0 && map.contains_key("partial_rotary_factor") {
            warnings.push(Lint::posenc(
                format!("{path}partial_rotary_factor"),
                format!("{partial} is ignored: {}'s rotary module rotates the whole head for default RoPE (only scaled rope types use the factor)", mt.hf_class),
            ));
        }
        head_dim
    } else {
        (head_dim as f64 * partial) as usize
    };
    if rotary_dim == 0 {
        return Err(Error::invalid(
            format!("{path}partial_rotary_factor"),
            format!("a factor giving at least one rotated pair; head_dim {head_dim} × {partial} gives 0"),
        ));
    }
    if rotary_dim % 2 == 1 && rotary_dim < head_dim {
        warnings.push(Lint::posenc(
            format!("{path}partial_rotary_factor"),
            format!("head_dim {head_dim} × {partial} = {rotary_dim} is odd; HF rotates {} dims (arange(0, {rotary_dim}, 2) pairs)", rotary_dim + 1),
        ));
    }

    let original = || -> Result<usize> {
        let key = format!("{path}original_max_position_embeddings");
        match map.get("original_max_position_embeddings") {
            Some(v) if !v.is_null() => as_usize(v, &key),
            _ => Ok(mpe),
        }
    };
    let factor_lint = |factor: f64, warnings: &mut Vec<Lint>| {
        if factor < 1.0 {
            warnings.push(Lint::hf(
                format!("{path}factor"),
                format!("{factor} < 1: HF wants a factor >= 1 (it shrinks the context instead of extending it)"),
            ));
        }
    };

    let scaling = match rt {
        "default" => RopeScaling::Default,
        "linear" | "dynamic" | "ntk" => {
            let factor = require_f64(map, "factor", path, rt)?;
            factor_lint(factor, warnings);
            match rt {
                "linear" => RopeScaling::Linear { factor },
                "dynamic" => RopeScaling::Dynamic { factor },
                _ => RopeScaling::Ntk { factor },
            }
        }
        "yarn" => {
            let orig = original()?;
            // HF requires the key; `null` means max_position_embeddings / original.
            let factor = match map.get("factor") {
                Some(Value::Null) => mpe as f64 / orig as f64,
                _ => require_f64(map, "factor", path, rt)?,
            };
            factor_lint(factor, warnings);
            // HF checks the explicit factor against the ratio with the block's own original
            // (its validation runs before a top-level value replaces it).
            let implicit = mpe as f64 / b.original_at_validation.unwrap_or(orig) as f64;
            if implicit != factor && implicit != 1.0 {
                warnings.push(Lint::hf(
                    format!("{path}factor"),
                    format!("{factor} differs from max_position_embeddings / original_max_position_embeddings = {implicit}; HF uses the explicit factor"),
                ));
            }
            let mut y = YarnParams::new(factor, orig);
            // HF: `beta_fast or 32`, so 0 and null both fall back to the default.
            if let Some(v) = get_f64(map, "beta_fast", path)?.filter(|&v| v != 0.0) {
                y.beta_fast = v;
            }
            if let Some(v) = get_f64(map, "beta_slow", path)?.filter(|&v| v != 0.0) {
                y.beta_slow = v;
            }
            if y.beta_fast < y.beta_slow {
                warnings.push(Lint::hf(
                    format!("{path}beta_fast"),
                    format!(
                        "beta_fast = {} < beta_slow = {}: HF wants beta_fast > beta_slow (the ramp runs backwards)",
                        y.beta_fast, y.beta_slow
                    ),
                ));
            }
            y.mscale = get_f64(map, "mscale", path)?;
            y.mscale_all_dim = get_f64(map, "mscale_all_dim", path)?;
            y.attention_factor = get_f64(map, "attention_factor", path)?;
            let own_truncate = match map.get("truncate") {
                None | Some(Value::Null) => true,
                Some(Value::Bool(t)) => *t,
                Some(v) => {
                    return Err(Error::invalid(
                        format!("{path}truncate"),
                        format!("true or false, got {v}"),
                    ))
                }
            };
            y.truncate = own_truncate;
            if b.nested && !own_truncate {
                // transformers reads `truncate` from the top level of rope_parameters, which for
                // per-layer configs holds only the layer blocks: it always truncates there.
                y.truncate = true;
                warnings.push(Lint::posenc(
                    format!("{path}truncate"),
                    "false here is not read: HF reads `truncate` only from the top level of rope_parameters, so these layers truncate (posenc does as HF)",
                ));
            }
            RopeScaling::Yarn(y)
        }
        "llama3" => {
            let factor = require_f64(map, "factor", path, rt)?;
            factor_lint(factor, warnings);
            let orig = original()?;
            if orig >= mpe {
                warnings.push(Lint::hf(
                    format!("{path}original_max_position_embeddings"),
                    format!("{orig} is not below max_position_embeddings = {mpe}: the scaling extends nothing"),
                ));
            }
            let low_freq_factor = require_f64(map, "low_freq_factor", path, rt)?;
            let high_freq_factor = require_f64(map, "high_freq_factor", path, rt)?;
            if high_freq_factor <= low_freq_factor {
                warnings.push(Lint::hf(
                    format!("{path}high_freq_factor"),
                    format!("{high_freq_factor} is not above low_freq_factor = {low_freq_factor}: no pair is smoothly blended"),
                ));
            }
            RopeScaling::Llama3(Llama3Params {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings: orig,
            })
        }
        "longrope" => {
            let short_factor = f64_list(map, "short_factor", path, rt)?;
            let long_factor = f64_list(map, "long_factor", path, rt)?;
            let pairs = rotary_dim.div_ceil(2);
            // Phi-3's class checks the lists against hidden_size // num_attention_heads, not
            // head_dim, and refuses a mismatch.
            let phi3_pairs = ((derived_head_dim as f64 * partial) as usize) / 2;
            for (name, list) in [
                ("short_factor", &short_factor),
                ("long_factor", &long_factor),
            ] {
                if mt.longrope_only && list.len() != phi3_pairs {
                    return Err(Error::invalid(
                        format!("{path}{name}"),
                        format!("a list of int(hidden_size // num_attention_heads × partial_rotary_factor) // 2 = {phi3_pairs} numbers for {} (HF refuses {})", mt.hf_class, list.len()),
                    ));
                }
                if list.len() != pairs {
                    return Err(Error::invalid(
                        format!("{path}{name}"),
                        format!(
                            "a list of rotary_dim/2 = {pairs} numbers, got {} (HF fails too)",
                            list.len()
                        ),
                    ));
                }
            }
            let factor = get_f64(map, "factor", path)?;
            let orig = original()?;
            match factor {
                Some(f) => factor_lint(f, warnings),
                None => warnings.push(Lint::hf(
                    format!("{path}factor"),
                    format!("absent, so HF derives it as max_position_embeddings / original_max_position_embeddings = {mpe} / {orig}; HF recommends giving `factor` (the result is the same)"),
                )),
            }
            let (short_mscale, long_mscale) = if mt.phimoe_mscale {
                let get = |k: &str| -> Result<f64> {
                    get_f64(map, k, path)?.ok_or_else(|| Error::MissingKey {
                        key: format!("{path}{k}"),
                        expected: format!("a number, required by {} for longrope", mt.hf_class),
                    })
                };
                (Some(get("short_mscale")?), Some(get("long_mscale")?))
            } else {
                (None, None)
            };
            RopeScaling::LongRope(LongRopeParams {
                short_factor,
                long_factor,
                factor,
                attention_factor: get_f64(map, "attention_factor", path)?,
                original_max_position_embeddings: orig,
                short_mscale,
                long_mscale,
            })
        }
        "proportional" => {
            if !map.contains_key("partial_rotary_factor") {
                warnings.push(Lint::hf(
                    format!("{path}partial_rotary_factor"),
                    "absent: proportional RoPE then rotates every pair, like linear scaling (HF defaults it to 1.0)",
                ));
            }
            let factor = get_f64(map, "factor", path)?.unwrap_or(1.0);
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
        max_position_embeddings: mpe,
        scaling,
    };
    match params.validate() {
        Ok(()) => Ok(params),
        Err(Error::InvalidParameter { field, expected }) if b.own_keys.contains(&field) => {
            Err(Error::InvalidParameter {
                field: format!("{path}{field}"),
                expected,
            })
        }
        Err(e) => Err(e),
    }
}
