//! The command line's value parsers, one per input: the first byte picks the parser, the rest is
//! the argument text. `--positions` (`posenc rope`), `--range` and `--layout` (`posenc t5-buckets`,
//! `posenc sinusoidal`), `--rope-scaling` (`posenc model ...`), `--precision`, and the answers of
//! `posenc learn N --part P --answer TEXT` (every exercise and part, seed from the second byte).
//! Contract: a typed error or a value, never a panic; a value that parsed is what the text says.

use posenc::rope::{Precision, RopeParams};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Some((&which, rest)) = data.split_first() else {
            return;
        };
        let Ok(text) = std::str::from_utf8(rest) else {
            return;
        };
        match which % 6 {
            0 => {
                if let Ok(positions) = cli::core_cmds::parse_positions(text) {
                    assert!(!positions.is_empty());
                    let shown: Vec<String> = positions.iter().map(u64::to_string).collect();
                    let kept: Vec<&str> = text
                        .split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .collect();
                    let kept: Vec<String> = kept
                        .iter()
                        .map(|p| {
                            p.trim_start_matches('+')
                                .trim_start_matches('0')
                                .to_string()
                        })
                        .map(|p| if p.is_empty() { "0".into() } else { p })
                        .collect();
                    assert_eq!(shown, kept, "positions are the integers written");
                }
            }
            1 => {
                if let Ok((a, b)) = cli::tables::parse_range(text) {
                    assert!(a <= b);
                }
            }
            2 => {
                let _ = cli::tables::parse_layout(text);
                let _ = text.parse::<Precision>();
            }
            3 => {
                if let Ok(mut model) = RopeParams::new(100_000.0, 64) {
                    model.max_position_embeddings = 8192;
                    if let Ok(p) = posenc_model::scaling::parse_spec(text, &model) {
                        assert_eq!(p.base, model.base, "a scaling keeps the model's base");
                        let _ = posenc_model::scaling::describe(&p);
                        let _ = posenc_model::scaling::target_context(&p);
                        let _ = p.frequencies(Some(16_384), Precision::Exact);
                    }
                }
            }
            _ => {
                // `posenc learn`: exercise from the text's length, part and seed from its bytes.
                let exercise = (text.len() as u32 % posenc_learn::EXERCISE_COUNT) + 1;
                let part = ["a", "b", "c"][which as usize % 3];
                let seed = u64::from(rest.first().copied().unwrap_or(0));
                if let Ok(part) = part.parse::<posenc_learn::Part>() {
                    let _ = posenc_learn::check(exercise, seed, part, text);
                }
            }
        }
    });
}
