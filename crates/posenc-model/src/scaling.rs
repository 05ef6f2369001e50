//! A RoPE scaling from posenc applied on top of the model's own RoPE.
//!
//! The model file fixes the base (`llama.rope.freq_base`), the rotated width and the training
//! context; a scaling only changes how frequencies are derived from them. Two ways to give one:
//!
//! * a spec string, `TYPE[:key=value,...]`, for example `yarn:factor=4,original_max_position_embeddings=8192`,
//!   `linear:factor=2`, `dynamic:factor=2` or `none`. `TYPE` is a Hugging Face `rope_type` (or
//!   posenc's `ntk`); the keys are those of the HF `rope_scaling` block of that type, values are
//!   numbers, `true`/`false` or `[lists]` of numbers. `max_position_embeddings` is the model's
//!   training context, which is also YaRN's default `original_max_position_embeddings`;
//! * a Hugging Face `config.json` ([`from_config_text`]), read by [`posenc::config`]: its scaling
//!   block and `max_position_embeddings` are used; its head size and rotated width must match the
//!   model, and a `rope_theta` it sets must equal the model's base.
//!
//! Errors are typed ([`posenc::Error`]) and name the offending key.

use crate::llama::{RopeParams, RopeSetup};
use posenc::config::{parse_config_value, Lint, KNOWN_ROPE_TYPES};
use posenc::rope::RopeScaling;
use posenc::{Error, Result};
use serde_json::{Map, Value};

/// Longest accepted spec string, in bytes.
pub const MAX_SPEC_BYTES: usize = 64 << 10;

/// The model's RoPE with `scaling` in place of its own (the model's base, width, layout and
/// precision are kept).
pub fn with_scaling(model: &RopeSetup, scaling: RopeParams) -> RopeSetup {
    RopeSetup {
        params: scaling,
        ..model.clone()
    }
}

/// Splits `a=1,b=[1,2],c=3` at the commas that are outside brackets.
fn split_pairs(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, ch) in s.char_indices() {
        match ch {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// Renames the `rope_scaling.KEY` field of a parse error to `--rope-scaling KEY`.
fn spec_field(e: Error) -> Error {
    let rename = |f: String| match f.strip_prefix("rope_scaling.") {
        Some(k) => format!("--rope-scaling {k}"),
        None => f,
    };
    match e {
        Error::InvalidParameter { field, expected } => Error::InvalidParameter {
            field: rename(field),
            expected,
        },
        Error::MissingKey { key, expected } => Error::MissingKey {
            key: rename(key),
            expected,
        },
        other => other,
    }
}

/// Parses a spec string (see the module docs) into RoPE parameters on top of `model`'s.
pub fn parse_spec(spec: &str, model: &RopeParams) -> Result<RopeParams> {
    if spec.len() > MAX_SPEC_BYTES {
        return Err(Error::TooLarge {
            what: "--rope-scaling length in bytes".into(),
            value: spec.len() as u64,
            cap: MAX_SPEC_BYTES as u64,
        });
    }
    let spec = spec.trim();
    let (kind, rest) = match spec.split_once(':') {
        Some((k, r)) => (k.trim(), Some(r)),
        None => (spec, None),
    };
    let kind = if kind == "none" { "default" } else { kind };
    if !KNOWN_ROPE_TYPES.contains(&kind) {
        return Err(Error::UnknownRopeType {
            found: kind.to_string(),
            known: format!("none, {}", KNOWN_ROPE_TYPES.join(", ")),
        });
    }
    let mut block = Map::new();
    block.insert("rope_type".into(), Value::String(kind.into()));
    let mut given = Vec::new();
    for pair in rest.map(split_pairs).unwrap_or_default() {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            Error::invalid(
                "--rope-scaling",
                format!("TYPE:key=value,key=value; `{pair}` has no `=`"),
            )
        })?;
        let key = key.trim();
        if matches!(
            key,
            "rope_type" | "type" | "rope_theta" | "partial_rotary_factor"
        ) {
            return Err(Error::invalid(
                format!("--rope-scaling {key}"),
                "not settable here: the type comes before `:`, the base and rotated width come from the model",
            ));
        }
        let value: Value = serde_json::from_str(value.trim()).map_err(|_| {
            Error::invalid(
                format!("--rope-scaling {key}"),
                format!(
                    "a number, true/false or a [list] of numbers, got `{}`",
                    value.trim()
                ),
            )
        })?;
        if block.insert(key.to_string(), value).is_some() {
            return Err(Error::invalid(
                format!("--rope-scaling {key}"),
                "given once, got it twice",
            ));
        }
        given.push(key.to_string());
    }
    let config = serde_json::json!({
        "head_dim": model.head_dim,
        "rotary_dim": model.rotary_dim,
        "rope_theta": model.base,
        "max_position_embeddings": model.max_position_embeddings,
        "rope_scaling": Value::Object(block),
    });
    let parsed = parse_config_value(&config).map_err(spec_field)?;
    // A key the type does not read is a typo or a mistake here, not a lint.
    for key in &given {
        let path = format!("rope_scaling.{key}");
        if parsed
            .warnings
            .iter()
            .any(|w| w.key == path && w.message.starts_with("unrecognized"))
        {
            return Err(Error::invalid(
                format!("--rope-scaling {key}"),
                format!("a key that rope_type `{kind}` reads"),
            ));
        }
    }
    Ok(parsed.params().clone())
}

/// Reads the scaling of a Hugging Face `config.json` text and applies it on top of `model`'s
/// RoPE. Returns the parameters and posenc's lint warnings about the config.
pub fn from_config_text(text: &str, model: &RopeParams) -> Result<(RopeParams, Vec<Lint>)> {
    if text.len() > posenc::config::MAX_CONFIG_BYTES {
        return Err(Error::TooLarge {
            what: "config size in bytes".into(),
            value: text.len() as u64,
            cap: posenc::config::MAX_CONFIG_BYTES as u64,
        });
    }
    let mut value: Value =
        serde_json::from_str(text).map_err(|e| Error::parse("config.json", e))?;
    let root = value
        .as_object_mut()
        .ok_or_else(|| Error::invalid("config.json", "a JSON object at top level"))?;
    // The model's base unless the config sets one, which must then agree.
    let theta_keys = rope_theta_values(root);
    for (key, theta) in &theta_keys {
        if (theta - model.base).abs() > 1e-9 * model.base {
            return Err(Error::invalid(
                key.clone(),
                format!(
                    "the model's base {} (a scaling is applied on top of the model's RoPE), got {theta}",
                    model.base
                ),
            ));
        }
    }
    if theta_keys.is_empty() {
        root.insert("rope_theta".into(), serde_json::json!(model.base));
    }
    let has_head_size = root.contains_key("head_dim")
        || (root.contains_key("hidden_size") && root.contains_key("num_attention_heads"));
    if !has_head_size {
        root.insert("head_dim".into(), serde_json::json!(model.head_dim));
    }
    if !root.contains_key("max_position_embeddings") {
        root.insert(
            "max_position_embeddings".into(),
            serde_json::json!(model.max_position_embeddings),
        );
    }
    let parsed = parse_config_value(&value)?;
    let params = parsed.params().clone();
    if params.head_dim != model.head_dim {
        return Err(Error::invalid(
            "head_dim",
            format!(
                "the model's head size {}, got {}",
                model.head_dim, params.head_dim
            ),
        ));
    }
    if params.rotary_dim != model.rotary_dim {
        return Err(Error::invalid(
            "partial_rotary_factor",
            format!(
                "the model's rotated width {} dims, got {}",
                model.rotary_dim, params.rotary_dim
            ),
        ));
    }
    if parsed.layers.len() > 1 {
        return Err(Error::invalid(
            "rope_parameters",
            "one RoPE setting for every layer (the model has one kind of attention layer)",
        ));
    }
    Ok((params, parsed.warnings))
}

/// Every `rope_theta` the config sets (top level, `rope_parameters`, per layer type), by key path.
fn rope_theta_values(root: &Map<String, Value>) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    if let Some(t) = root.get("rope_theta").and_then(Value::as_f64) {
        out.push(("rope_theta".to_string(), t));
    }
    if let Some(Value::Object(p)) = root.get("rope_parameters") {
        if let Some(t) = p.get("rope_theta").and_then(Value::as_f64) {
            out.push(("rope_parameters.rope_theta".to_string(), t));
        }
        for (k, v) in p {
            if let Some(t) = v.get("rope_theta").and_then(Value::as_f64) {
                out.push((format!("rope_parameters.{k}.rope_theta"), t));
            }
        }
    }
    out
}

/// A short name of a scaling for reports: `none`, `linear x2`, `yarn x4 (orig 8192)`, ...
pub fn describe(params: &RopeParams) -> String {
    match &params.scaling {
        RopeScaling::Default => "none".into(),
        RopeScaling::Linear { factor } => format!("linear x{factor}"),
        RopeScaling::Ntk { factor } => format!("ntk x{factor}"),
        RopeScaling::Dynamic { factor } => format!("dynamic x{factor}"),
        RopeScaling::Yarn(y) => format!(
            "yarn x{} (orig {})",
            y.factor, y.original_max_position_embeddings
        ),
        RopeScaling::Llama3(l) => format!(
            "llama3 x{} (orig {})",
            l.factor, l.original_max_position_embeddings
        ),
        RopeScaling::LongRope(l) => {
            format!("longrope (orig {})", l.original_max_position_embeddings)
        }
        RopeScaling::Proportional { factor, .. } => format!("proportional x{factor}"),
    }
}

/// The context length a scaling aims at ([`RopeParams::contexts`], the rule every report uses).
pub fn target_context(params: &RopeParams) -> usize {
    params.contexts().target
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> RopeParams {
        let mut p = RopeParams::new(100_000.0, 64).unwrap();
        p.max_position_embeddings = 8192;
        p
    }

    #[test]
    fn yarn_spec_gives_yarn_on_the_model_base() {
        let p = parse_spec(
            "yarn:factor=4,original_max_position_embeddings=8192",
            &model(),
        )
        .unwrap();
        assert_eq!(p.base, 100_000.0);
        assert_eq!(p.rotary_dim, 64);
        match p.scaling {
            RopeScaling::Yarn(y) => {
                assert_eq!(y.factor, 4.0);
                assert_eq!(y.original_max_position_embeddings, 8192);
                assert_eq!(y.beta_fast, 32.0);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            target_context(&parse_spec("yarn:factor=4", &model()).unwrap()),
            32768
        );
    }

    #[test]
    fn every_simple_kind_parses() {
        for (spec, want) in [
            ("none", RopeScaling::Default),
            ("linear:factor=2", RopeScaling::Linear { factor: 2.0 }),
            ("ntk:factor=2", RopeScaling::Ntk { factor: 2.0 }),
            ("dynamic:factor=3", RopeScaling::Dynamic { factor: 3.0 }),
        ] {
            assert_eq!(parse_spec(spec, &model()).unwrap().scaling, want, "{spec}");
        }
        let lists = format!(
            "longrope:short_factor=[{}],long_factor=[{}]",
            vec!["1"; 32].join(","),
            vec!["2"; 32].join(",")
        );
        assert!(matches!(
            parse_spec(&lists, &model()).unwrap().scaling,
            RopeScaling::LongRope(_)
        ));
    }

    fn field(e: Error) -> String {
        match e {
            Error::InvalidParameter { field, .. } => field,
            Error::MissingKey { key, .. } => key,
            Error::UnknownRopeType { found, .. } => format!("type {found}"),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn bad_specs_name_the_key() {
        let m = model();
        for (spec, want) in [
            ("yarn:factor=4,factr=4", "--rope-scaling factr"),
            // A misspelt required key is reported as the required key that is missing.
            ("yarn:factr=4", "--rope-scaling factor"),
            ("yarn:factor=-1", "--rope-scaling factor"),
            ("yarn:factor=abc", "--rope-scaling factor"),
            ("linear", "--rope-scaling factor"),
            ("linear:factor=2,factor=3", "--rope-scaling factor"),
            ("linear:factor", "--rope-scaling"),
            ("linear:factor=2,rope_theta=10", "--rope-scaling rope_theta"),
            ("warp:factor=2", "type warp"),
            (
                "yarn:factor=4,beta_fast=0.0,beta_slow=-1",
                "--rope-scaling beta_slow",
            ),
        ] {
            let e = parse_spec(spec, &m).expect_err(spec);
            assert_eq!(field(e), want, "{spec}");
        }
    }

    #[test]
    fn config_file_scaling_must_fit_the_model() {
        let m = model();
        let (p, _) = from_config_text(
            r#"{"rope_scaling": {"rope_type": "linear", "factor": 2}}"#,
            &m,
        )
        .unwrap();
        assert_eq!(p.scaling, RopeScaling::Linear { factor: 2.0 });
        assert_eq!(p.base, 100_000.0);
        let e = from_config_text(
            r#"{"rope_theta": 10000, "rope_scaling": {"rope_type": "linear", "factor": 2}}"#,
            &m,
        )
        .unwrap_err();
        assert_eq!(field(e), "rope_theta");
        let e = from_config_text(r#"{"head_dim": 128, "rope_scaling": null}"#, &m).unwrap_err();
        assert_eq!(field(e), "head_dim");
        let e = from_config_text(
            r#"{"rope_scaling": {"rope_type": "yarn", "factor": "x"}}"#,
            &m,
        )
        .unwrap_err();
        assert_eq!(field(e), "rope_scaling.factor");
    }
}
