//! Passkey retrieval (the landmark-attention test, Mohtashami & Jaggi 2023).
//!
//! The prompt is five lines joined by `\n`: the task description, a prefix of filler text, the
//! needle `The pass key is N. Remember it. N is the pass key.`, a suffix of filler text and the
//! question `What is the pass key? The pass key is`. The filler is
//! [`FILLER`] repeated with single spaces and cut at a character count, as in the original test.
//! The model answers greedily; the answer is the first integer in what it generates.
//!
//! A cell of the grid is a context length `L` (prompt tokens plus the generation budget ≤ `L`)
//! and a needle depth `d ∈ [0, 1]`: the filler before the needle is a fraction `d` of all filler
//! characters. The filler length is the largest that keeps the prompt within `L − max_new_tokens`
//! tokens. Passkeys are drawn from `1..=50000` by a generator seeded from the run's seed, the
//! cell and the trial, so a run is reproducible and cells do not share keys.

use crate::error::{Error, Result};
use crate::llama::{argmax, Llama, RopeSetup};
use crate::tokenizer::Tokenizer;
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

/// The task description line.
pub const TASK: &str = "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. I will quiz you about the important information there.";
/// The filler sentence group, repeated.
pub const FILLER: &str =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";
/// The question line; the model continues it.
pub const QUESTION: &str = "What is the pass key? The pass key is";
/// Largest passkey drawn.
pub const MAX_PASSKEY: u32 = 50_000;
/// Largest context length of a cell (the cache cap).
pub const MAX_LENGTH: usize = crate::llama::MAX_CACHE_TOKENS;

/// The needle line for `key`.
pub fn needle(key: u32) -> String {
    format!("The pass key is {key}. Remember it. {key} is the pass key.")
}

/// The first `chars` characters of [`FILLER`] repeated with single spaces.
pub fn filler(chars: usize) -> String {
    let mut s = String::with_capacity(chars + FILLER.len() + 1);
    while s.len() < chars {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(FILLER);
    }
    s.truncate(chars); // FILLER is ASCII: every index is a char boundary
    s
}

/// The full prompt with `prefix` and `suffix` filler characters around the needle.
pub fn prompt(key: u32, prefix: usize, suffix: usize) -> String {
    [
        TASK.to_string(),
        filler(prefix),
        needle(key),
        filler(suffix),
        QUESTION.to_string(),
    ]
    .join("\n")
}

/// The first run of ASCII digits in `text`, as a number (`None` if there is none or it
/// overflows `u64`).
pub fn first_integer(text: &str) -> Option<u64> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let digits: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// The passkey of one trial of one cell.
pub fn passkey(seed: u64, length: usize, depth: f64, trial: usize) -> u32 {
    let mix = seed
        ^ (length as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ depth.to_bits().wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ (trial as u64).wrapping_mul(0x1656_67B1_9E37_79F9);
    ChaCha8Rng::seed_from_u64(mix).random_range(1..=MAX_PASSKEY)
}

/// The prompt of one cell: the most filler (split at `depth`) that keeps the prompt within
/// `max_tokens` tokens. Returns the prompt's token ids.
pub fn cell_prompt(tok: &Tokenizer, key: u32, max_tokens: usize, depth: f64) -> Result<Vec<u32>> {
    fit_prompt(key, max_tokens, depth, |text| {
        let ids = tok.encode(text)?;
        Ok((ids.len(), ids))
    })
    .map(|(_, ids)| ids)
}

/// [`cell_prompt`] with any tokenizer: `count(text)` returns the number of tokens of `text`
/// (for example from a server's `/tokenize` endpoint). Returns the prompt text and its token
/// count. The same search as [`cell_prompt`], so both build the same prompt for the same counts.
pub fn cell_prompt_text(
    key: u32,
    max_tokens: usize,
    depth: f64,
    mut count: impl FnMut(&str) -> Result<usize>,
) -> Result<(String, usize)> {
    let (n, text) = fit_prompt(key, max_tokens, depth, |text| {
        Ok((count(text)?, text.to_string()))
    })?;
    Ok((text, n))
}

/// The largest filler length whose prompt fits `max_tokens` tokens; `measure(text)` returns the
/// token count of `text` and what the caller keeps of it.
fn fit_prompt<T>(
    key: u32,
    max_tokens: usize,
    depth: f64,
    mut measure: impl FnMut(&str) -> Result<(usize, T)>,
) -> Result<(usize, T)> {
    if !(0.0..=1.0).contains(&depth) {
        return Err(
            posenc::Error::invalid("depth", format!("a number in [0, 1], got {depth}")).into(),
        );
    }
    let mut build = |chars: usize| -> Result<(usize, T)> {
        let prefix = (chars as f64 * depth).round() as usize;
        measure(&prompt(key, prefix, chars - prefix))
    };
    let empty = build(0)?;
    if empty.0 > max_tokens {
        return Err(Error::Model(format!(
            "a passkey prompt needs at least {} tokens; the cell allows {max_tokens}",
            empty.0
        )));
    }
    // Largest filler length whose prompt fits (the count grows with the filler, by about one
    // token per 4-5 characters). Filler is ASCII, 8 characters per token is a safe upper end.
    let (mut lo, mut hi) = (0usize, max_tokens * 8 + 64);
    let mut best = empty;
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        let fitted = build(mid)?;
        if fitted.0 <= max_tokens {
            lo = mid;
            best = fitted;
        } else {
            hi = mid - 1;
        }
    }
    Ok(best)
}

/// The Wilson score interval of `successes` out of `trials` at normal quantile `z` (1.96 for
/// 95%): `(low, high)` within `[0, 1]`; `(0, 1)` for zero trials. Unlike the normal
/// approximation it stays inside `[0, 1]` and is not empty at 0 or `trials` successes.
pub fn wilson_interval(successes: usize, trials: usize, z: f64) -> (f64, f64) {
    if trials == 0 {
        return (0.0, 1.0);
    }
    let n = trials as f64;
    let p = successes.min(trials) as f64 / n;
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// What to run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PasskeyConfig {
    /// Context lengths (tokens), each ≤ [`MAX_LENGTH`].
    pub lengths: Vec<usize>,
    /// Needle depths in `[0, 1]`.
    pub depths: Vec<f64>,
    /// Trials per cell (≥ 1).
    pub trials: usize,
    /// Seed of the passkeys.
    pub seed: u64,
    /// Greedy generation budget (10 as in the original test).
    pub max_new_tokens: usize,
}

/// One trial.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Trial {
    /// The hidden key.
    pub passkey: u32,
    /// The first integer generated, if any.
    pub answer: Option<u64>,
    /// `answer == passkey`.
    pub correct: bool,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// The generated text.
    pub generated: String,
}

/// One cell of the grid.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Cell {
    /// Context length.
    pub length: usize,
    /// Needle depth.
    pub depth: f64,
    /// Fraction of trials answered correctly.
    pub accuracy: f64,
    /// Every trial.
    pub trials: Vec<Trial>,
}

/// Result of [`run_grid`]. The field order is what the explorer reads: `lengths` labels the rows
/// of `accuracy` and `depths` its columns.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PasskeyReport {
    /// The RoPE scaling used (`none` = the model's own).
    pub scaling: String,
    /// The model's training context.
    pub context_length: usize,
    /// Trials per cell.
    pub trials: usize,
    /// Passkey seed.
    pub seed: u64,
    /// Generation budget.
    pub max_new_tokens: usize,
    /// Row labels of `accuracy`.
    pub lengths: Vec<usize>,
    /// Column labels of `accuracy`.
    pub depths: Vec<f64>,
    /// `lengths × depths` accuracy in `[0, 1]`.
    pub accuracy: Vec<Vec<f64>>,
    /// Every cell with its trials, lengths-major.
    pub cells: Vec<Cell>,
}

impl PasskeyConfig {
    /// Checks the grid (lengths ≥ 1 and ≤ [`MAX_LENGTH`], depths in `[0, 1]`, trials ≥ 1).
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, expected: String| -> Error {
            posenc::Error::invalid(field, expected).into()
        };
        if self.lengths.is_empty() {
            return Err(bad("lengths", "at least one length".into()));
        }
        if let Some(&l) = self.lengths.iter().find(|&&l| l == 0 || l > MAX_LENGTH) {
            return Err(bad("lengths", format!("each in 1..={MAX_LENGTH}, got {l}")));
        }
        if self.depths.is_empty() {
            return Err(bad("depths", "at least one depth".into()));
        }
        if let Some(d) = self.depths.iter().find(|d| !(0.0..=1.0).contains(*d)) {
            return Err(bad("depths", format!("each in [0, 1], got {d}")));
        }
        if self.trials == 0 || self.trials > 1000 {
            return Err(bad("trials", format!("in 1..=1000, got {}", self.trials)));
        }
        if self.max_new_tokens == 0 || self.max_new_tokens > 64 {
            return Err(bad(
                "max_new_tokens",
                format!("in 1..=64, got {}", self.max_new_tokens),
            ));
        }
        Ok(())
    }
}

/// Greedy answer to `prompt` with `rope`: stops at `max_new` tokens, at `eos`, or once an
/// integer has been completed (a non-digit follows it).
pub fn answer(
    llama: &Llama,
    rope: &RopeSetup,
    tok: &Tokenizer,
    prompt: &[u32],
    max_new: usize,
    eos: Option<u32>,
) -> Result<String> {
    let n = prompt.len();
    let mut cache = llama.new_cache(n + max_new);
    let positions: Vec<u64> = (0..n as u64).collect();
    let attend = vec![true; n];
    let mut logits =
        llama.forward_rows_with(rope, prompt, &positions, &attend, &mut cache, &[n - 1])?;
    let mut out = Vec::new();
    loop {
        let next = argmax(&logits);
        if Some(next) == eos {
            break;
        }
        out.push(next);
        let text = tok.decode(&out)?;
        let done_number = text
            .find(|c: char| c.is_ascii_digit())
            .is_some_and(|s| text[s..].contains(|c: char| !c.is_ascii_digit()));
        if out.len() == max_new || done_number {
            return Ok(text);
        }
        let pos = cache.len() as u64;
        logits = llama.forward_rows_with(rope, &[next], &[pos], &[true], &mut cache, &[0])?;
    }
    tok.decode(&out)
}

/// Runs every trial of every cell. `progress(done, total)` is called after each trial.
pub fn run_grid(
    llama: &Llama,
    rope: &RopeSetup,
    tok: &Tokenizer,
    eos: Option<u32>,
    config: &PasskeyConfig,
    mut progress: impl FnMut(usize, usize),
) -> Result<PasskeyReport> {
    config.validate()?;
    let total = config.lengths.len() * config.depths.len() * config.trials;
    let mut done = 0;
    let mut cells = Vec::new();
    let mut accuracy = Vec::new();
    for &length in &config.lengths {
        let budget = length.checked_sub(config.max_new_tokens).filter(|&b| b > 0);
        let budget = budget.ok_or_else(|| {
            Error::from(posenc::Error::invalid(
                "lengths",
                format!(
                    "each > max_new_tokens = {}, got {length}",
                    config.max_new_tokens
                ),
            ))
        })?;
        let mut row = Vec::new();
        for &depth in &config.depths {
            let mut trials = Vec::new();
            for t in 0..config.trials {
                let key = passkey(config.seed, length, depth, t);
                let ids = cell_prompt(tok, key, budget, depth)?;
                let generated = answer(llama, rope, tok, &ids, config.max_new_tokens, eos)?;
                let ans = first_integer(&generated);
                trials.push(Trial {
                    passkey: key,
                    answer: ans,
                    correct: ans == Some(u64::from(key)),
                    prompt_tokens: ids.len(),
                    generated,
                });
                done += 1;
                progress(done, total);
            }
            let acc = trials.iter().filter(|t| t.correct).count() as f64 / trials.len() as f64;
            row.push(acc);
            cells.push(Cell {
                length,
                depth,
                accuracy: acc,
                trials,
            });
        }
        accuracy.push(row);
    }
    Ok(PasskeyReport {
        scaling: crate::scaling::describe(&rope.params),
        context_length: llama.config.context_length,
        trials: config.trials,
        seed: config.seed,
        max_new_tokens: config.max_new_tokens,
        lengths: config.lengths.clone(),
        depths: config.depths.clone(),
        accuracy,
        cells,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_has_the_five_landmark_lines() {
        let p = prompt(4242, 30, 10);
        let lines: Vec<&str> = p.split('\n').collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[0], TASK);
        assert_eq!(lines[1], "The grass is green. The sky is");
        assert_eq!(
            lines[2],
            "The pass key is 4242. Remember it. 4242 is the pass key."
        );
        assert_eq!(lines[3], "The grass ");
        assert_eq!(lines[4], "What is the pass key? The pass key is");
    }

    #[test]
    fn filler_repeats_with_single_spaces_and_cuts_at_chars() {
        assert_eq!(filler(0), "");
        let two = filler(FILLER.len() * 2 + 1);
        assert_eq!(two, format!("{FILLER} {FILLER}"));
        let f = filler(1000);
        assert_eq!(f.len(), 1000);
        assert!(f.starts_with(&format!("{FILLER} The grass")));
    }

    #[test]
    fn first_integer_takes_the_first_digit_run() {
        assert_eq!(first_integer(" 12345. Remember"), Some(12345));
        assert_eq!(first_integer("is 7 and 8"), Some(7));
        assert_eq!(first_integer("no digits here"), None);
        assert_eq!(first_integer("x0042y"), Some(42));
        assert_eq!(first_integer("99999999999999999999999"), None);
        assert_eq!(first_integer(""), None);
    }

    #[test]
    fn passkeys_are_reproducible_in_range_and_differ_across_trials() {
        let keys: Vec<u32> = (0..50).map(|t| passkey(7, 1024, 0.5, t)).collect();
        assert!(keys.iter().all(|&k| (1..=MAX_PASSKEY).contains(&k)));
        assert_eq!(
            keys,
            (0..50)
                .map(|t| passkey(7, 1024, 0.5, t))
                .collect::<Vec<_>>()
        );
        let mut distinct = keys.clone();
        distinct.sort();
        distinct.dedup();
        assert!(distinct.len() > 40);
        assert_ne!(passkey(7, 1024, 0.5, 0), passkey(8, 1024, 0.5, 0));
    }

    #[test]
    fn wilson_matches_the_closed_form_at_known_points() {
        // 0/5 and 5/5 at z = 1.96: upper (lower) bound z²/(n + z²) from the closed form.
        let z = 1.96f64;
        let edge = z * z / (5.0 + z * z);
        let (lo, hi) = wilson_interval(0, 5, z);
        assert_eq!(lo, 0.0);
        assert!((hi - edge).abs() < 1e-12, "{hi} vs {edge}");
        let (lo, hi) = wilson_interval(5, 5, z);
        assert!((lo - (1.0 - edge)).abs() < 1e-12 && hi == 1.0);
        // 50/100: centre 0.5, symmetric, narrower than 0.1 each side.
        let (lo, hi) = wilson_interval(50, 100, z);
        assert!((lo + hi - 1.0).abs() < 1e-12 && hi - 0.5 < 0.1 && hi - 0.5 > 0.09);
        assert_eq!(wilson_interval(0, 0, z), (0.0, 1.0));
    }

    #[test]
    fn bad_grids_are_rejected_with_the_field() {
        let ok = PasskeyConfig {
            lengths: vec![512],
            depths: vec![0.0, 1.0],
            trials: 1,
            seed: 0,
            max_new_tokens: 10,
        };
        assert!(ok.validate().is_ok());
        for (cfg, field) in [
            (
                PasskeyConfig {
                    lengths: vec![],
                    ..ok.clone()
                },
                "lengths",
            ),
            (
                PasskeyConfig {
                    lengths: vec![MAX_LENGTH + 1],
                    ..ok.clone()
                },
                "lengths",
            ),
            (
                PasskeyConfig {
                    depths: vec![1.5],
                    ..ok.clone()
                },
                "depths",
            ),
            (
                PasskeyConfig {
                    depths: vec![f64::NAN],
                    ..ok.clone()
                },
                "depths",
            ),
            (
                PasskeyConfig {
                    trials: 0,
                    ..ok.clone()
                },
                "trials",
            ),
        ] {
            let e = cfg.validate().unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
    }
}
