//! Our own HF fixture (scripts/hf-fixtures/rope_configs.py, tests/data/rope_hf_generated.jsonl):
//! 320 generated configs over every model type of posenc's table (and the multimodal wrappers),
//! each run through transformers 5.25's config class and the model's own rotary module under two
//! torch CPU capabilities on an AMD machine. posenc must give the same rope type, width, exact
//! inv_freq (1e-6 relative), hf-mode inv_freq bits, attention factor and hf-mode cos/sin bits
//! (compared through FNV-1a hashes of the float32 rows), with the matching `HfCpu` profile.

use posenc::config::{parse_config, LintOrigin};
use posenc::rope::{HfCpu, Precision, RopeTable};
use posenc::torch_f32::trig_backend;
use serde_json::Value;

const POSITIONS: [u64; 8] = [0, 1, 7, 100, 4095, 32767, 131071, 1048575];

fn fnv1a64(values: &[f32]) -> String {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for v in values {
        for b in v.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01B3);
        }
    }
    format!("{h:016x}")
}

fn profile(line: &Value) -> HfCpu {
    let intel = line["cpu_vendor"] == "intel";
    match (line["torch_cpu_capability"].as_str().unwrap(), intel) {
        ("AVX512", true) => HfCpu::Avx512,
        ("AVX512", false) => HfCpu::AmdAvx512,
        ("AVX2", true) => HfCpu::Avx2,
        ("AVX2", false) => HfCpu::AmdAvx2,
        _ => HfCpu::Default,
    }
}

#[test]
fn generated_configs_match_hugging_face_on_every_profile() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/rope_hf_generated.jsonl"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let skip_trig = std::env::var_os("POSENC_SKIP_MKL").is_some();
    let mut failures = Vec::new();
    let (mut lines, mut entries, mut ok, mut refused) = (0, 0, 0, 0);
    // Pairs where HF's float32 value is more than 1e-6 from its own f64 formula.
    let mut hf_float32_off = 0;
    let mut profiles = std::collections::BTreeSet::new();
    for raw in text.lines() {
        let line: Value = serde_json::from_str(raw).unwrap();
        lines += 1;
        let cpu = profile(&line);
        profiles.insert(cpu.name());
        let backend = trig_backend(cpu);
        assert!(
            backend.bit_identical() || skip_trig,
            "hf cos/sin need MKL: {backend} (scripts/install-mkl.sh, or POSENC_SKIP_MKL=1)"
        );
        let name = line["name"].as_str().unwrap();
        let config = line["config"].to_string();
        let mt = line["config"]["model_type"].as_str().unwrap_or("?");
        let at = format!("{name} ({mt}, {cpu})");
        let parsed = parse_config(&config);
        if line["status"] != "ok" {
            refused += 1;
            if let Ok(cfg) = parsed {
                if !cfg.warnings.iter().any(|w| w.origin == LintOrigin::HfError) {
                    failures.push(format!(
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
                failures.push(format!("{at}: HF accepts it, posenc rejects it: {e}"));
                continue;
            }
        };
        ok += 1;
        for (layer_type, list) in line["layers"].as_object().unwrap() {
            let layer = cfg
                .layers
                .iter()
                .find(|l| &l.layer_type == layer_type)
                .or_else(|| (layer_type == "all").then(|| cfg.layers.first()).flatten());
            let Some(layer) = layer else {
                failures.push(format!("{at}: no layer {layer_type}"));
                continue;
            };
            for e in list.as_array().unwrap() {
                entries += 1;
                let seq_len = e["seq_len"].as_u64().map(|s| s as usize);
                let at = format!("{at} {layer_type} seq_len {seq_len:?}");
                let p = &layer.params;
                if p.scaling.rope_type() != e["rope_type"].as_str().unwrap() {
                    failures.push(format!(
                        "{at}: rope_type {} != HF {}",
                        p.scaling.rope_type(),
                        e["rope_type"]
                    ));
                    continue;
                }
                let want: Vec<u32> = e["inv_freq"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap() as u32)
                    .collect();
                let hf = p.frequencies(seq_len, Precision::Hf(cpu)).unwrap();
                let exact = p.frequencies(seq_len, Precision::Exact).unwrap();
                if hf.pairs() != want.len() {
                    failures.push(format!("{at}: {} pairs != HF {}", hf.pairs(), want.len()));
                    continue;
                }
                let bits: Vec<u32> = hf.inv_freq.iter().map(|&f| (f as f32).to_bits()).collect();
                if bits != want {
                    let bad: Vec<usize> = (0..want.len()).filter(|&i| bits[i] != want[i]).collect();
                    failures.push(format!("{at}: hf inv_freq bits differ at pairs {bad:?}"));
                }
                // Exact mode is HF's formula in f64 (the generator evaluated it in torch with every
                // float32 dtype pointed at float64), and within 1e-6 of HF's float32 value except
                // where HF's own float32 arithmetic is further than that from its f64 value.
                let f64_ref: Vec<f64> = e["inv_freq_f64"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect();
                for (i, ((&x, &w), &r)) in
                    exact.inv_freq.iter().zip(&want).zip(&f64_ref).enumerate()
                {
                    let w = f32::from_bits(w) as f64;
                    if (x - r).abs() > 1e-12 * r.abs() + 1e-300 {
                        failures.push(format!("{at}: exact pair {i}: {x:e} vs HF in f64 {r:e}"));
                    }
                    if (x - w).abs() > 1e-6 * w.abs() + 1e-30 {
                        if (r - w).abs() > 1e-6 * w.abs() {
                            hf_float32_off += 1;
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
                if backend.bit_identical() {
                    let table = RopeTable::new(&hf, &POSITIONS).unwrap();
                    if fnv1a64(&table.cos) != e["cos_fnv"].as_str().unwrap() {
                        failures.push(format!("{at}: hf cos bits differ"));
                    }
                    if fnv1a64(&table.sin) != e["sin_fnv"].as_str().unwrap() {
                        failures.push(format!("{at}: hf sin bits differ"));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        lines >= 600 && ok >= 500 && entries >= 1000 && refused >= 5,
        "{lines} lines, {ok} accepted, {refused} refused, {entries} entries"
    );
    assert!(profiles.len() >= 2, "{profiles:?}");
    eprintln!("{entries} entries; {hf_float32_off} pairs where HF's float32 value is > 1e-6 from its f64 formula");
}
