//! Our own HF fixture (scripts/hf-fixtures/rope_configs.py, tests/data/rope_hf_generated.jsonl):
//! 320 generated configs over the model types of posenc's table (and multimodal wrappers), each
//! run through transformers 5.25's config class and the model's own rotary module under two
//! torch CPU capabilities on an AMD machine. posenc must give the same rope type, width, exact
//! inv_freq, hf-mode inv_freq bits, attention factor and hf-mode cos/sin bits, with the matching
//! `HfCpu` profile ([`common::hf_lines::check_lines`]).

mod common;

#[test]
fn generated_configs_match_hugging_face_on_every_profile() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/rope_hf_generated.jsonl"
    );
    let s = common::hf_lines::check_lines(&std::fs::read_to_string(path).unwrap());
    assert!(
        s.failures.is_empty(),
        "{} problems:\n{}",
        s.failures.len(),
        s.failures.join("\n")
    );
    assert!(
        s.lines >= 600 && s.ok >= 500 && s.entries >= 1000 && s.refused >= 5,
        "{s:?}"
    );
    assert!(s.profiles.len() >= 2, "{:?}", s.profiles);
    eprintln!(
        "{} entries; {} pairs where HF's float32 value is > 1e-6 from its f64 formula",
        s.entries, s.hf_float32_off
    );
}
