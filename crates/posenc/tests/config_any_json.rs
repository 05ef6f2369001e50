//! Structured fuzzing of the config parser (next to the coverage-guided target in `fuzz/`): real
//! configs from the shared fixtures with one field, top level or inside the scaling block, set to
//! an arbitrary JSON value, or the whole scaling block replaced by one.
//!
//! Contract: never a panic; an error is typed and names a config key (the key that was changed,
//! when the change is a value of the wrong JSON type for a key the parser reads).

mod common;

use posenc::config::parse_config_value;
use posenc::Error;
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Every key the parser reads at the top level of a config.
const TOP_KEYS: &[&str] = &[
    "model_type",
    "hidden_size",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "max_position_embeddings",
    "partial_rotary_factor",
    "rotary_pct",
    "rotary_dim",
    "original_max_position_embeddings",
    "global_head_dim",
    "rope_theta",
    "rope_parameters",
    "rope_scaling",
    "rope_local_base_freq",
    "sliding_window",
    "use_sliding_window",
    "layer_types",
    "num_hidden_layers",
    "max_window_layers",
    "sliding_window_pattern",
    "text_config",
];

/// Every key the parser reads inside a scaling block (`rope_scaling`, `rope_parameters`).
const BLOCK_KEYS: &[&str] = &[
    "rope_type",
    "type",
    "rope_theta",
    "partial_rotary_factor",
    "factor",
    "original_max_position_embeddings",
    "beta_fast",
    "beta_slow",
    "mscale",
    "mscale_all_dim",
    "attention_factor",
    "truncate",
    "low_freq_factor",
    "high_freq_factor",
    "short_factor",
    "long_factor",
];

/// Top-level integer keys the parser reads in every config (whatever else it holds).
const ALWAYS_READ_INTEGERS: &[&str] = &[
    "num_attention_heads",
    "num_key_value_heads",
    "max_position_embeddings",
    "original_max_position_embeddings",
    "num_hidden_layers",
];

/// Keys each rope type reads from its block and the JSON type it expects there.
fn block_reads(rope_type: &str) -> &'static [(&'static str, Kind)] {
    use Kind::*;
    match rope_type {
        "linear" | "dynamic" => &[("factor", Number)],
        "yarn" => &[
            ("factor", Number),
            ("original_max_position_embeddings", Integer),
            ("beta_fast", Number),
            ("beta_slow", Number),
            ("mscale", Number),
            ("mscale_all_dim", Number),
            ("attention_factor", Number),
            ("truncate", Bool),
        ],
        "llama3" => &[
            ("factor", Number),
            ("low_freq_factor", Number),
            ("high_freq_factor", Number),
            ("original_max_position_embeddings", Integer),
        ],
        "longrope" => &[
            ("short_factor", List),
            ("long_factor", List),
            ("factor", Number),
            ("attention_factor", Number),
            ("original_max_position_embeddings", Integer),
        ],
        _ => &[],
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Integer,
    Number,
    Bool,
    List,
}

/// A JSON value of a type the parser does not accept for a key of kind `kind`.
fn wrong_type(kind: Kind) -> impl Strategy<Value = Value> {
    let text = prop_oneof![
        Just(Value::String(String::new())),
        Just(Value::String("4096".into())),
        "[a-z0-9_.]{1,12}".prop_map(Value::String),
    ];
    let object = Just(serde_json::json!({"factor": 2.0}));
    match kind {
        Kind::Integer | Kind::Number => prop_oneof![
            text,
            object,
            Just(Value::Bool(true)),
            Just(serde_json::json!([1]))
        ]
        .boxed(),
        Kind::Bool => prop_oneof![text, object, Just(serde_json::json!(1))].boxed(),
        Kind::List => prop_oneof![text, object, Just(serde_json::json!(1.5))].boxed(),
    }
}

/// Any JSON value: numbers at the edges (huge, tiny, negative, subnormal, past u64), strings
/// that are rope types or keys, and nested arrays and objects of those.
fn any_json() -> impl Strategy<Value = Value> {
    let number = prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop_oneof![
            Just(0.0),
            Just(-0.0),
            Just(1.0),
            Just(0.5),
            Just(2.5e-308),
            Just(5e-324),
            Just(1e308),
            Just(-1e308),
            Just(1e20),
            Just(4096.0),
            any::<f64>().prop_filter("finite", |f| f.is_finite()),
        ]
        .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
    ];
    let word = prop_oneof![
        Just("default"),
        Just("linear"),
        Just("dynamic"),
        Just("yarn"),
        Just("llama3"),
        Just("longrope"),
        Just("su"),
        Just("proportional"),
        Just("ntk"),
        Just("sliding_attention"),
        Just("full_attention"),
        Just(""),
        Just("\u{0}"),
    ]
    .prop_map(|s| Value::String(s.to_string()));
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number,
        word,
        "\\PC{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        let key = prop_oneof![
            proptest::sample::select(BLOCK_KEYS).prop_map(str::to_string),
            proptest::sample::select(TOP_KEYS).prop_map(str::to_string),
            "[a-z_]{1,10}",
        ];
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(key, inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

fn fixture_configs() -> Vec<(String, Value)> {
    common::rope_fixture_names()
        .into_iter()
        .map(|name| {
            let path = common::fixtures()
                .join("rope")
                .join(format!("{name}.config.json"));
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (name, serde_json::from_str(&text).expect("fixture is JSON"))
        })
        .collect()
}

/// The key an error names.
fn named_field(e: &Error) -> String {
    match e {
        Error::InvalidParameter { field, .. } => field.clone(),
        Error::MissingKey { key, .. } => key.clone(),
        Error::UnknownRopeType { .. } => "rope_type".into(),
        Error::TooLarge { what, .. } => what.clone(),
        Error::Parse { what, .. } => what.clone(),
        other => panic!("a config error of an unexpected kind: {other:?}"),
    }
}

/// Whether `field` names a config key: its last dotted segment is a key the parser reads (or the
/// document itself).
fn names_a_key(field: &str) -> bool {
    let last = field.rsplit('.').next().unwrap_or(field);
    field == "config.json" || TOP_KEYS.contains(&last) || BLOCK_KEYS.contains(&last)
}

fn check(config: &Value) -> Result<(), TestCaseError> {
    let result = std::panic::catch_unwind(|| parse_config_value(config));
    let parsed = match result {
        Ok(parsed) => parsed,
        Err(_) => return Err(TestCaseError::fail(format!("panic on {config}"))),
    };
    if let Err(e) = &parsed {
        let field = named_field(e);
        prop_assert!(names_a_key(&field), "`{field}` names no config key: {e}");
    } else if let Ok(cfg) = &parsed {
        prop_assert!(!cfg.layers.is_empty());
    }
    Ok(())
}

fn rope_type_of(block: &Value) -> Option<&str> {
    block
        .get("rope_type")
        .or_else(|| block.get("type"))
        .and_then(Value::as_str)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn any_value_in_any_field_is_a_typed_error_or_a_config(
        which in any::<proptest::sample::Index>(),
        top in any::<bool>(),
        key in proptest::sample::select(TOP_KEYS.iter().chain(BLOCK_KEYS).copied().collect::<Vec<_>>()),
        value in any_json(),
    ) {
        let configs = fixture_configs();
        let (_, mut config) = configs[which.index(configs.len())].clone();
        let root = config.as_object_mut().expect("object");
        match root.get_mut("rope_scaling") {
            Some(Value::Object(block)) if !top => { block.insert(key.to_string(), value); }
            _ => { root.insert(key.to_string(), value); }
        }
        check(&config)?;
    }

    #[test]
    fn any_scaling_block_is_a_typed_error_or_a_config(
        which in any::<proptest::sample::Index>(),
        v5 in any::<bool>(),
        block in any_json(),
    ) {
        let configs = fixture_configs();
        let (_, mut config) = configs[which.index(configs.len())].clone();
        let root = config.as_object_mut().expect("object");
        root.remove("rope_scaling");
        root.insert(if v5 { "rope_parameters" } else { "rope_scaling" }.into(), block);
        check(&config)?;
    }

    #[test]
    fn a_wrong_json_type_in_a_read_top_level_key_is_named(
        which in any::<proptest::sample::Index>(),
        key in proptest::sample::select(ALWAYS_READ_INTEGERS),
        value in wrong_type(Kind::Integer),
    ) {
        let configs = fixture_configs();
        let (name, mut config) = configs[which.index(configs.len())].clone();
        config.as_object_mut().expect("object").insert(key.to_string(), value.clone());
        match parse_config_value(&config) {
            Ok(_) => prop_assert!(false, "{name}: `{key}` = {value} accepted"),
            Err(e) => prop_assert_eq!(named_field(&e), key, "{}: {}", name, e),
        }
    }

    #[test]
    fn a_wrong_json_type_in_a_read_block_key_is_named(
        which in any::<proptest::sample::Index>(),
        pick in any::<proptest::sample::Index>(),
        wrong in any::<proptest::sample::Index>(),
    ) {
        let configs: Vec<(String, Value)> = fixture_configs()
            .into_iter()
            .filter(|(_, c)| c.get("rope_scaling").and_then(rope_type_of).is_some_and(|t| !block_reads(t).is_empty()))
            .collect();
        prop_assume!(!configs.is_empty());
        let (name, mut config) = configs[which.index(configs.len())].clone();
        let rope_type = rope_type_of(&config["rope_scaling"]).expect("filtered").to_string();
        let reads = block_reads(&rope_type);
        let (key, kind) = reads[pick.index(reads.len())];
        // One wrong value per kind, chosen by index (a strategy per kind would need boxing here).
        let values: Vec<Value> = match kind {
            Kind::Integer | Kind::Number => vec!["4096".into(), Value::Bool(true), serde_json::json!([1]), serde_json::json!({})],
            Kind::Bool => vec!["true".into(), serde_json::json!(1), serde_json::json!([true])],
            Kind::List => vec!["1.0".into(), serde_json::json!(1.5), serde_json::json!({"0": 1.0})],
        };
        let value = values[wrong.index(values.len())].clone();
        config["rope_scaling"].as_object_mut().expect("block").insert(key.into(), value.clone());
        match parse_config_value(&config) {
            Ok(_) => prop_assert!(false, "{name}: rope_scaling.{key} = {value} accepted"),
            Err(e) => prop_assert_eq!(named_field(&e), format!("rope_scaling.{key}"), "{}: {}", name, e),
        }
    }
}

/// Integers past u64 are reported as too large, with the limit, not as "not an integer".
#[test]
fn integers_past_u64_are_too_large_with_the_limit() {
    let (_, mut config) = fixture_configs().remove(0);
    config["max_position_embeddings"] = serde_json::from_str("99999999999999999999999").unwrap();
    let e = parse_config_value(&config).unwrap_err();
    assert_eq!(named_field(&e), "max_position_embeddings");
    assert!(
        e.to_string()
            .contains(&format!("too large (max {})", u64::MAX)),
        "{e}"
    );
}
