//! Parity against Hugging Face transformers on SmolLM2-135M-Instruct (Q4_1 GGUF dequantized to f32).
//!
//! Expected values come from `shared/fixtures/model/smollm2-reference.json`. These tests need the
//! model file: without it they FAIL and say to run `posenc model fetch`. Run them in release:
//! `cargo test --release -p posenc-model --test parity`.

use posenc_model::llama::top_k;
use posenc_model::Model;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Largest accepted |logit − HF logit| on the top-20 logits.
const LOGIT_TOL: f32 = 1e-2;

fn fixtures() -> std::path::PathBuf {
    std::env::var_os("POSENC_FIXTURES")
        .map(Into::into)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
        })
}

#[derive(Deserialize)]
struct Case {
    name: String,
    text: String,
    ids: Vec<u32>,
    top_ids: Vec<u32>,
    top_logits: Vec<f32>,
    greedy_ids: Vec<u32>,
    greedy_text: String,
    #[serde(default)]
    probe: Option<BTreeMap<String, Vec<u32>>>,
}

fn cases() -> Vec<Case> {
    let path = fixtures().join("model/smollm2-reference.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture parses")
}

fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| match Model::load_default() {
        Ok(m) => m,
        Err(e) => panic!("cannot load SmolLM2 ({e}); run `posenc model fetch` first"),
    })
}

#[test]
fn tokenizer_ids_match_hf() {
    let m = model();
    for case in cases() {
        let ids = m.tokenizer.encode(&case.text).unwrap();
        assert_eq!(ids, case.ids, "case {}", case.name);
        assert_eq!(
            m.tokenizer.decode(&ids).unwrap(),
            case.text,
            "decode, case {}",
            case.name
        );
    }
}

#[test]
fn last_position_top20_and_probes_match_hf() {
    let m = model();
    let mut worst = 0.0f32;
    for case in cases() {
        let n = case.ids.len();
        let positions: Vec<u64> = (0..n as u64).collect();
        let mut rows: Vec<usize> = vec![n - 1];
        let probe: Vec<(usize, Vec<u32>)> = case
            .probe
            .iter()
            .flatten()
            .map(|(k, v)| {
                (
                    k.parse::<usize>().expect("probe key is a position"),
                    v.clone(),
                )
            })
            .collect();
        rows.extend(probe.iter().map(|(p, _)| *p));
        let mut cache = m.llama.new_cache(n);
        let attend = vec![true; n];
        let logits = m
            .llama
            .forward_rows(&case.ids, &positions, &attend, &mut cache, &rows)
            .unwrap();
        let vocab = m.llama.config.vocab_size;
        let last = &logits[..vocab];
        let k = case.top_ids.len();
        assert_eq!(
            top_k(last, k),
            case.top_ids,
            "top-{k} ids, case {}",
            case.name
        );
        for (&id, &want) in case.top_ids.iter().zip(&case.top_logits) {
            let d = (last[id as usize] - want).abs();
            worst = worst.max(d);
            assert!(
                d <= LOGIT_TOL,
                "case {} id {id}: {} vs HF {want}",
                case.name,
                last[id as usize]
            );
        }
        for (i, (pos, want)) in probe.iter().enumerate() {
            let row = &logits[(i + 1) * vocab..(i + 2) * vocab];
            assert_eq!(
                &top_k(row, want.len()),
                want,
                "probe at {pos}, case {}",
                case.name
            );
        }
    }
    eprintln!("max |Δlogit| over top-20 logits: {worst:e}");
}

#[test]
fn greedy_continuation_matches_hf() {
    let m = model();
    for case in cases() {
        let got = m
            .llama
            .generate_greedy(&case.ids, case.greedy_ids.len(), m.eos_token)
            .unwrap();
        assert_eq!(got, case.greedy_ids, "case {}", case.name);
        assert_eq!(
            m.tokenizer.decode(&got).unwrap(),
            case.greedy_text,
            "case {}",
            case.name
        );
    }
}

/// The tests above can fail: the half-split layout on GGUF (interleaved) q/k weights is a real
/// bug and must change the prediction of the capital case away from HF's.
#[test]
fn half_split_layout_breaks_parity() {
    let m = model();
    let case = cases().into_iter().next().expect("at least one case");
    let n = case.ids.len();
    let positions: Vec<u64> = (0..n as u64).collect();
    let mut wrong = m.llama.rope.clone();
    wrong.layout = posenc_model::llama::RopeLayout::HalfSplit;
    let mut cache = m.llama.new_cache(n);
    let attend = vec![true; n];
    let logits = m
        .llama
        .forward_rows_with(&wrong, &case.ids, &positions, &attend, &mut cache, &[n - 1])
        .unwrap();
    let worst = case
        .top_ids
        .iter()
        .zip(&case.top_logits)
        .map(|(&id, &want)| (logits[id as usize] - want).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst > 10.0 * LOGIT_TOL,
        "half-split layout still within {worst}"
    );
}

/// Full pass vs prefill + decode agree on the correct path and disagree when decode positions
/// restart at 0 (a classic cache bug).
#[test]
fn check_decode_passes_correct_path_and_catches_wrong_positions() {
    use posenc_model::diagnostics::{check_decode, DecodePath};
    let m = model();
    let case = cases().into_iter().nth(1).expect("a second case");
    let ids = &case.ids[..64];
    let good = check_decode(&m.llama, ids, &DecodePath::correct(&m.llama, ids.len(), 32)).unwrap();
    assert!(good.pass, "correct path: max |Δ| {}", good.max_abs_diff);
    eprintln!(
        "check-decode correct path: max |Δlogit| {:e}",
        good.max_abs_diff
    );
    let mut bad_path = DecodePath::correct(&m.llama, ids.len(), 32);
    for p in bad_path.positions.iter_mut().skip(32) {
        *p -= 32;
    }
    let bad = check_decode(&m.llama, ids, &bad_path).unwrap();
    assert!(
        !bad.pass && bad.max_abs_diff > 1.0,
        "wrong positions: max |Δ| {}",
        bad.max_abs_diff
    );
}

/// Left padding as in a batched, left-padded run: padding tokens are never attended to and the
/// real tokens get positions `cumsum(mask) − 1`, so their logits equal the unpadded run's.
#[test]
fn left_padding_with_masked_keys_matches_unpadded() {
    let m = model();
    let case = cases().into_iter().next().expect("at least one case");
    let n = case.ids.len();
    let vocab = m.llama.config.vocab_size;
    let positions: Vec<u64> = (0..n as u64).collect();
    let rows: Vec<usize> = (0..n).collect();
    let mut cache = m.llama.new_cache(n);
    let plain = m
        .llama
        .forward_rows(&case.ids, &positions, &vec![true; n], &mut cache, &rows)
        .unwrap();

    let pad = 3;
    let pad_id = 2; // any valid id: padding is masked out
    let ids: Vec<u32> = std::iter::repeat_n(pad_id, pad)
        .chain(case.ids.iter().copied())
        .collect();
    let attend: Vec<bool> = (0..pad + n).map(|i| i >= pad).collect();
    // cumsum(mask) − 1, with padding slots set to 1 as HF's generate does.
    let padded_pos: Vec<u64> = (0..pad + n)
        .map(|i| if i < pad { 1 } else { (i - pad) as u64 })
        .collect();
    let rows: Vec<usize> = (pad..pad + n).collect();
    let mut cache = m.llama.new_cache(pad + n);
    let padded = m
        .llama
        .forward_rows(&ids, &padded_pos, &attend, &mut cache, &rows)
        .unwrap();
    let worst = plain
        .iter()
        .zip(&padded)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert_eq!(padded.len(), n * vocab);
    assert!(worst < 1e-3, "left-padded run differs by {worst}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
    /// Byte-level BPE is lossless: decoding the ids of any text gives the text back, and every id
    /// is inside the vocabulary.
    #[test]
    fn real_tokenizer_roundtrips_any_text(s in "\\PC{0,60}") {
        let t = &model().tokenizer;
        let ids = t.encode(&s).unwrap();
        proptest::prop_assert!(ids.iter().all(|&i| (i as usize) < t.vocab_size()));
        proptest::prop_assert_eq!(t.decode(&ids).unwrap(), s);
    }
}

/// RoPE attention scores depend only on position differences, so shifting every position by the
/// same offset leaves the logits unchanged (up to float rounding of the angles).
#[test]
fn shifting_all_positions_leaves_logits_unchanged() {
    let m = model();
    let case = cases().into_iter().next().expect("at least one case");
    let n = case.ids.len();
    let mut rope = m.llama.rope.clone();
    rope.precision = posenc::rope::Precision::Exact;
    let attend = vec![true; n];
    let run = |offset: u64| {
        let positions: Vec<u64> = (offset..offset + n as u64).collect();
        let mut cache = m.llama.new_cache(n);
        m.llama
            .forward_rows_with(&rope, &case.ids, &positions, &attend, &mut cache, &[n - 1])
            .unwrap()
    };
    let base = run(0);
    let shifted = run(1000);
    let worst = base
        .iter()
        .zip(&shifted)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < LOGIT_TOL, "shift by 1000 changed logits by {worst}");
    assert_eq!(top_k(&base, 20), top_k(&shifted, 20));
}

/// The whole check-decode suite on a short sequence: both correct comparisons agree within f32
/// tolerance and every injected bug is detected (scaling_dropped with the default YaRN x4 is not a
/// no-op: it changes the frequencies at any length).
#[test]
fn decode_suite_agrees_on_correct_paths_and_detects_every_bug() {
    use posenc_model::diagnostics::{decode_suite, CheckKind};
    let m = model();
    let case = cases().into_iter().nth(1).expect("a second case");
    let ids = &case.ids[..24];
    let suite = decode_suite(&m.llama, ids, 18, |_, _| {}).unwrap();
    for c in &suite.checks {
        eprintln!(
            "{:<22} {:?} max |Δlogit| {:.3e} top-1 {}/{}",
            c.name, c.kind, c.max_abs_diff, c.top1_agree, c.compared
        );
        match c.kind {
            CheckKind::Correct => assert!(c.within_tolerance, "{} drifts", c.name),
            CheckKind::Bug => assert!(!c.within_tolerance && !c.no_op, "{} not detected", c.name),
            CheckKind::Info => {}
        }
    }
    let names: Vec<&str> = suite.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "decode",
            "padded_batch",
            "decode_position_zero",
            "decode_off_by_one",
            "half_split_layout",
            "shared_position_row",
            "scaling_dropped",
            "shared_arange_row"
        ]
    );
    assert!(suite.pass);
    // The arange row is a per-row shift: RoPE cannot see it.
    assert!(suite.checks[7].within_tolerance);
}

/// Passkey prompts fill the cell (one more filler character would not fit) and the model finds
/// the key in a short context.
#[test]
fn passkey_cell_fills_the_budget_and_short_context_is_answered() {
    use posenc_model::passkey::{answer, cell_prompt, first_integer, prompt};
    let m = model();
    let t = &m.tokenizer;
    for &(budget, depth) in &[(246usize, 0.5f64), (300, 0.0), (300, 1.0)] {
        let ids = cell_prompt(t, 31337, budget, depth).unwrap();
        assert!(ids.len() <= budget);
        let text = t.decode(&ids).unwrap();
        assert!(text.contains("The pass key is 31337. Remember it. 31337 is the pass key."));
        let filler = text.len() - prompt(31337, 0, 0).len();
        let prefix = (filler as f64 * depth).round() as usize;
        // Two more characters of filler (split the same way) would exceed the budget.
        let more = prompt(31337, prefix + 1, filler + 1 - prefix);
        assert!(
            t.encode(&more).unwrap().len() > budget || filler == 0,
            "budget {budget}"
        );
    }
    assert!(
        cell_prompt(t, 1, 20, 0.5).is_err(),
        "a prompt cannot fit in 20 tokens"
    );
    let ids = cell_prompt(t, 27182, 246, 0.5).unwrap();
    let out = answer(&m.llama, &m.llama.rope, t, &ids, 10, m.eos_token).unwrap();
    assert_eq!(first_integer(&out), Some(27182), "generated {out:?}");
}
