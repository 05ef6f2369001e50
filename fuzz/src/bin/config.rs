//! `config.json` text → `posenc::config::parse_config`, then everything the CLI and the server do
//! with a config that parsed: frequencies and cos/sin rows of every layer, the `posenc inspect`
//! report and its text, and the `--rope-config` path of `posenc model`.
//! Contract: a typed error or a result, never a panic (debug assertions and overflow checks on).

use posenc::config::parse_config;
use posenc::rope::{Precision, RopeParams, RopeTable};

/// Largest rotary width whose inspection the target runs (inspection is O(pairs × context) and
/// the report prints one row per pair; wider heads are still parsed and get frequencies).
const MAX_INSPECTED_PAIRS: usize = 1024;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let Ok(cfg) = parse_config(text) else {
            return;
        };
        assert!(!cfg.layers.is_empty(), "a parsed config has a layer");
        let _ = cfg.params();
        for layer in &cfg.layers {
            let p = &layer.params;
            for seq in [
                None,
                Some(1),
                Some(p.max_position_embeddings.saturating_mul(4)),
            ] {
                for precision in ["exact", "hf"] {
                    let precision: Precision = precision.parse().expect("known precision");
                    if let Ok(freqs) = p.frequencies(seq, precision) {
                        let _ = RopeTable::new(&freqs, &[0, 1, 4095, u32::MAX as u64]);
                    }
                }
            }
        }
        if cfg
            .layers
            .iter()
            .all(|l| l.params.rotary_dim / 2 <= MAX_INSPECTED_PAIRS)
        {
            // A small work budget: the search itself is the diagnostics module's, fuzzed
            // through the shapes it is given here.
            let options = posenc::diagnostics::InspectOptions {
                work_budget: 4096,
                ..Default::default()
            };
            if let Ok(report) = posenc::diagnostics::InspectReport::new(&cfg, options) {
                let _ = report.to_text();
            }
        }
        // `posenc model --rope-config`: the config's scaling on top of SmolLM2-135M's RoPE.
        if let Ok(mut model) = RopeParams::new(100_000.0, 64) {
            model.max_position_embeddings = 8192;
            let _ = posenc_model::scaling::from_config_text(text, &model);
        }
    });
}
