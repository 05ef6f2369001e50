//! Hand-picked configs, at least one per model type of posenc's table, each pinning down one
//! rule of that type's transformers config class (scripts/hf-fixtures/model_type_cases.py: every
//! line says `why`), checked like the generated fixture ([`common::hf_lines::check_lines`]).

use posenc::config::model_types::{MODEL_TYPES, WRAPPERS};

mod common;

#[test]
fn every_model_type_rule_matches_hugging_face() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/rope_hf_model_types.jsonl"
    );
    let s = common::hf_lines::check_lines(&std::fs::read_to_string(path).unwrap());
    assert!(
        s.failures.is_empty(),
        "{} problems:\n{}",
        s.failures.len(),
        s.failures.join("\n")
    );
    // Every row of the table is exercised, directly or through its wrapper (GPT-J has no rotary
    // module with frequencies to compare; config_parse.rs checks it).
    for m in MODEL_TYPES.iter().filter(|m| m.name != "gptj") {
        let through_wrapper = WRAPPERS
            .iter()
            .any(|w| w.text == m.name && s.model_types.contains(w.name));
        assert!(
            s.model_types.contains(m.name) || through_wrapper,
            "no case for {}",
            m.name
        );
    }
    assert_eq!(s.refused, 0, "{s:?}");
    assert!(s.profiles.len() >= 2);
}
