//! Checks lines of our own HF fixtures (tests/data/rope_hf_*.jsonl, made by
//! scripts/hf-fixtures/): each line a config and what transformers' config class and the
//! model's rotary module computed for it on one CPU profile.

use posenc::config::{parse_config, LintOrigin};
use posenc::rope::{HfCpu, Precision, RopeTable};
use posenc::torch_f32::trig_backend;
use serde_json::Value;

const POSITIONS: [u64; 8] = [0, 1, 7, 100, 4095, 32767, 131071, 1048575];

pub fn fnv1a64(values: &[f32]) -> String {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for v in values {
        for b in v.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01B3);
        }
    }
    format!("{h:016x}")
}

pub fn profile(line: &Value) -> HfCpu {
    let intel = line["cpu_vendor"] == "intel";
    match (line["torch_cpu_capability"].as_str().unwrap(), intel) {
        ("AVX512", true) => HfCpu::Avx512,
        ("AVX512", false) => HfCpu::AmdAvx512,
        ("AVX2", true) => HfCpu::Avx2,
        ("AVX2", false) => HfCpu::AmdAvx2,
        _ => HfCpu::Default,
    }
}

/// What [`check_lines`] saw.
#[derive(Debug, Default)]
pub struct Summary {
    /// Mismatches, one line each.
    pub failures: Vec<String>,
    /// Lines read.
    pub lines: usize,
    /// Layer entries compared.
    pub entries: usize,
    /// Configs HF accepted (and posenc too).
    pub ok: usize,
    /// Configs HF refused.
    pub refused: usize,
    /// CPU profiles seen.
    pub profiles: std::collections::BTreeSet<&'static str>,
    /// Pairs where HF's float32 value is more than 1e-6 from its own f64 formula.
    pub hf_float32_off: usize,
    /// Model types seen (the outer `model_type`).
    pub model_types: std::collections::BTreeSet<String>,
}

/// Compares every line of `text` with posenc: rope type, width, exact inv_freq (HF's formula in
/// f64 within 1e-12; HF's float32 value within 1e-6 unless HF's own float32 error is larger),
/// hf-mode inv_freq bits, attention factor and hf-mode cos/sin bits (FNV-1a of the rows).
pub fn check_lines(text: &str) -> Summary {
    let skip_trig = std::env::var_os("POSENC_SKIP_MKL").is_some();
    let mut sum = Summary::default();
    for raw in text.lines() {
        let line: Value = serde_json::from_str(raw).unwrap();
        sum.lines += 1;
        let cpu = profile(&line);
        sum.profiles.insert(cpu.name());
        let backend = trig_backend(cpu);
        assert!(
            backend.bit_identical() || skip_trig,
            "hf cos/sin need MKL: {backend} (scripts/install-mkl.sh, or POSENC_SKIP_MKL=1)"
        );
        let name = line["name"].as_str().unwrap();
        let config = line["config"].to_string();
        let mt = line["config"]["model_type"].as_str().unwrap_or("?");
        sum.model_types.insert(mt.to_string());
        let at = format!("{name} ({mt}, {cpu})");
        let parsed = parse_config(&config);
        if line["status"] != "ok" {
            sum.refused += 1;
            if let Ok(cfg) = parsed {
                if !cfg.warnings.iter().any(|w| w.origin == LintOrigin::HfError) {
                    sum.failures.push(format!(
                        "{at}: HF refuses it ({}), posenc accepts it without saying so",
                        line["error"]
                    ));
                }
            }
            continue;
        }
        let cfg = match parsed {
            Ok(c) => c,
            Err(e) if e.to_string().contains("HF accepts") => continue,
            Err(e) => {
                sum.failures
                    .push(format!("{at}: HF accepts it, posenc rejects it: {e}"));
                continue;
            }
        };
        sum.ok += 1;
        for (layer_type, list) in line["layers"].as_object().unwrap() {
            let layer = cfg
                .layers
                .iter()
                .find(|l| &l.layer_type == layer_type)
                .or_else(|| (layer_type == "all").then(|| cfg.layers.first()).flatten());
            let Some(layer) = layer else {
                sum.failures.push(format!("{at}: no layer {layer_type}"));
                continue;
            };
            for e in list.as_array().unwrap() {
                sum.entries += 1;
                check_entry(
                    &mut sum,
                    &format!("{at} {layer_type}"),
                    &layer.params,
                    cfg.hf_precision(cpu),
                    backend.bit_identical(),
                    e,
                );
            }
        }
    }
    sum
}

fn check_entry(
    sum: &mut Summary,
    at: &str,
    p: &posenc::rope::RopeParams,
    precision: Precision,
    trig: bool,
    e: &Value,
) {
    let seq_len = e["seq_len"].as_u64().map(|s| s as usize);
    let at = format!("{at} seq_len {seq_len:?}");
    let failures = &mut sum.failures;
    if p.scaling.rope_type() != e["rope_type"].as_str().unwrap() {
        failures.push(format!(
            "{at}: rope_type {} != HF {}",
            p.scaling.rope_type(),
            e["rope_type"]
        ));
        return;
    }
    let want: Vec<u32> = e["inv_freq"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let hf = p.frequencies(seq_len, precision).unwrap();
    let exact = p.frequencies(seq_len, Precision::Exact).unwrap();
    if hf.pairs() != want.len() {
        failures.push(format!("{at}: {} pairs != HF {}", hf.pairs(), want.len()));
        return;
    }
    let bits: Vec<u32> = hf.inv_freq.iter().map(|&f| (f as f32).to_bits()).collect();
    if bits != want {
        let bad: Vec<usize> = (0..want.len()).filter(|&i| bits[i] != want[i]).collect();
        failures.push(format!("{at}: hf inv_freq bits differ at pairs {bad:?}"));
    }
    // Exact mode is HF's formula in f64 (the generator evaluated it in torch with every float32
    // dtype pointed at float64), and within 1e-6 of HF's float32 value except where HF's own
    // float32 arithmetic is further than that from its f64 value.
    let f64_ref: Vec<f64> = e["inv_freq_f64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    for (i, ((&x, &w), &r)) in exact.inv_freq.iter().zip(&want).zip(&f64_ref).enumerate() {
        let w = f32::from_bits(w) as f64;
        if (x - r).abs() > 1e-12 * r.abs() + 1e-300 {
            failures.push(format!("{at}: exact pair {i}: {x:e} vs HF in f64 {r:e}"));
        }
        if (x - w).abs() > 1e-6 * w.abs() + 1e-30 {
            if (r - w).abs() > 1e-6 * w.abs() {
                sum.hf_float32_off += 1;
            } else {
                failures.push(format!("{at}: exact pair {i}: {x:e} vs HF {w:e}"));
            }
        }
    }
    let want_af = e["attention_factor"].as_f64().unwrap();
    if (hf.attention_factor - want_af).abs() > 1e-6 * want_af.abs().max(1.0) {
        failures.push(format!(
            "{at}: attention factor {} != HF {want_af}",
            hf.attention_factor
        ));
    }
    if trig {
        let table = RopeTable::new(&hf, &POSITIONS).unwrap();
        if fnv1a64(&table.cos) != e["cos_fnv"].as_str().unwrap() {
            failures.push(format!("{at}: hf cos bits differ"));
        }
        if fnv1a64(&table.sin) != e["sin_fnv"].as_str().unwrap() {
            failures.push(format!("{at}: hf sin bits differ"));
        }
    }
}
