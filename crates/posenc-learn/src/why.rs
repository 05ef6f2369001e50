//! The "why position" demo: one toy attention head (the library's reference attention layer,
//! seeded weights) over two sentences, with or without a positional scheme, and whether the
//! outputs of the second sentence are the first one's outputs permuted.
//!
//! Each word's embedding is drawn from a seed derived from the word itself, so a sentence's
//! numbers never depend on the other sentence; punctuation marks are tokens of their own
//! (`"man."` is `man` then `.`), so punctuation does not make two words differ.

use posenc::alibi;
use posenc::attention::{AttentionOptions, HeadConfig, Mask, Scheme, SingleLayer};
use posenc::learned::LearnedTable;
use posenc::relative::T5Buckets;
use posenc::rope::{Precision, RopeLayout, RopeParams};
use posenc::sinusoidal::SinusoidalLayout;
use serde::{Deserialize, Serialize};

use super::{LearnError, LearnErrorKind, LearnResult};

/// Most tokens (words and punctuation marks) per sentence.
pub const MAX_WORDS: usize = 16;

/// Width of the toy head (model width = head size).
const DIM: usize = 8;

/// The positional scheme of the demo head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WhyScheme {
    /// No positional signal, no mask.
    None,
    /// Sinusoidal table added to the embeddings.
    Sinusoidal,
    /// Seeded learned table added to the embeddings.
    Learned,
    /// RoPE on queries and keys.
    Rope,
    /// ALiBi bias on the scores (symmetric, one head).
    Alibi,
    /// T5 bucket bias on the scores (seeded table).
    T5,
}

impl WhyScheme {
    /// Every scheme, in the page's order.
    pub const ALL: [WhyScheme; 6] = [
        WhyScheme::None,
        WhyScheme::Sinusoidal,
        WhyScheme::Learned,
        WhyScheme::Rope,
        WhyScheme::Alibi,
        WhyScheme::T5,
    ];

    /// The lowercase name (`none`, `sinusoidal`, ...).
    pub fn name(self) -> &'static str {
        match self {
            WhyScheme::None => "none",
            WhyScheme::Sinusoidal => "sinusoidal",
            WhyScheme::Learned => "learned",
            WhyScheme::Rope => "rope",
            WhyScheme::Alibi => "alibi",
            WhyScheme::T5 => "t5",
        }
    }
}

impl std::str::FromStr for WhyScheme {
    type Err = LearnError;
    fn from_str(s: &str) -> LearnResult<Self> {
        WhyScheme::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| {
                LearnError::new(
                    LearnErrorKind::InvalidRequest,
                    format!(
                        "invalid scheme: expected one of none, sinusoidal, learned, rope, alibi, \
                         t5, got `{s}`"
                    ),
                )
            })
    }
}

/// What the demo is asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhyRequest {
    /// The scheme of the head.
    pub scheme: WhyScheme,
    /// Sentence A.
    pub a: String,
    /// Sentence B.
    pub b: String,
    /// Seed of the projection matrices and word embeddings.
    pub seed: u64,
}

/// The head run over one sentence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhyRun {
    /// Lowercased tokens (words and punctuation marks).
    pub tokens: Vec<String>,
    /// Attention weights, `[query][key]`.
    pub weights: Vec<Vec<f32>>,
    /// Output of each token, `[token][DIM]`.
    pub outputs: Vec<Vec<f32>>,
}

/// A token of A and the same token (same occurrence) in B.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WordMatch {
    /// Index in A.
    pub a: usize,
    /// Index in B.
    pub b: usize,
    /// Largest |output_A - output_B| over the dimensions.
    pub max_abs_diff: f64,
}

/// The demo's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhyPosition {
    /// The scheme.
    pub scheme: WhyScheme,
    /// Width of the head.
    pub dim: usize,
    /// Sentence A.
    pub a: WhyRun,
    /// Sentence B.
    pub b: WhyRun,
    /// Whether B is a reordering of A's tokens.
    pub same_words: bool,
    /// Each token of A matched with the same token in B (empty unless `same_words`).
    pub matches: Vec<WordMatch>,
    /// Largest difference over the matches.
    pub max_abs_diff: Option<f64>,
    /// Whether B's outputs are exactly A's, permuted (largest difference below 1e-9).
    pub is_permutation: Option<bool>,
}

/// Lowercased words (letters, digits, inner apostrophes and hyphens) and punctuation marks, one
/// token each.
pub fn tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let inner = (c == '\'' || c == '-')
            && !word.is_empty()
            && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric());
        if c.is_alphanumeric() || inner {
            word.extend(c.to_lowercase());
            continue;
        }
        if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        if !c.is_whitespace() {
            out.push(c.to_string());
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// FNV-1a of the word: a seed that depends on the word alone (stable across runs and platforms).
fn word_seed(word: &str) -> u64 {
    word.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn scheme_for(kind: WhyScheme, seed: u64) -> LearnResult<Scheme> {
    Ok(match kind {
        WhyScheme::None => Scheme::NoPe,
        WhyScheme::Sinusoidal => Scheme::Sinusoidal {
            layout: SinusoidalLayout::Interleaved,
            base: 10_000.0,
        },
        WhyScheme::Learned => Scheme::Learned(LearnedTable::random(
            MAX_WORDS,
            DIM,
            seed.wrapping_add(4),
            1.0,
        )?),
        WhyScheme::Rope => Scheme::Rope {
            freqs: RopeParams::new(10_000.0, DIM)?.frequencies(None, Precision::Exact)?,
            layout: RopeLayout::HalfSplit,
        },
        WhyScheme::Alibi => Scheme::Alibi {
            slopes: vec![alibi::slopes(8)?[0]],
            symmetric: true,
        },
        WhyScheme::T5 => Scheme::T5 {
            bias_table: LearnedTable::random(32, 1, seed.wrapping_add(5), 1.0)?
                .data()
                .to_vec(),
            buckets: T5Buckets {
                bidirectional: true,
                num_buckets: 32,
                max_distance: 128,
            },
        },
    })
}

/// Runs the demo head over both sentences.
///
/// Errors: [`LearnErrorKind::InvalidRequest`] when a sentence has no token or more than
/// [`MAX_WORDS`].
pub fn why_position(req: &WhyRequest) -> LearnResult<WhyPosition> {
    let ta = tokenize(&req.a);
    let tb = tokenize(&req.b);
    for (name, t) in [("a", &ta), ("b", &tb)] {
        if t.is_empty() || t.len() > MAX_WORDS {
            return Err(LearnError::new(
                LearnErrorKind::InvalidRequest,
                format!(
                    "invalid {name}: each sentence needs 1..={MAX_WORDS} tokens (words and \
                     punctuation marks), got {}",
                    t.len()
                ),
            ));
        }
    }
    let seed = req.seed;
    let weight = |k: u64| -> LearnResult<Vec<f32>> {
        Ok(LearnedTable::random(DIM, DIM, seed.wrapping_add(k), 0.5)?
            .data()
            .to_vec())
    };
    let layer = SingleLayer::new(
        HeadConfig::mha(1, DIM)?,
        DIM,
        weight(1)?,
        weight(2)?,
        weight(3)?,
        scheme_for(req.scheme, seed)?,
    )?;
    let options = AttentionOptions {
        scale: None,
        return_weights: true,
    };
    let run = |tokens: &[String]| -> LearnResult<WhyRun> {
        let n = tokens.len();
        let mut hidden = Vec::with_capacity(n * DIM);
        for t in tokens {
            let emb = LearnedTable::random(1, DIM, seed ^ word_seed(t), 1.0)?;
            hidden.extend_from_slice(emb.data());
        }
        let positions: Vec<u64> = (0..n as u64).collect();
        let out = layer.forward(&hidden, &positions, &Mask::none(), &options)?;
        let w = out.weights.unwrap_or_default();
        Ok(WhyRun {
            tokens: tokens.to_vec(),
            weights: w.chunks(n).map(<[f32]>::to_vec).collect(),
            outputs: out.output.chunks(DIM).map(<[f32]>::to_vec).collect(),
        })
    };
    let ra = run(&ta)?;
    let rb = run(&tb)?;
    let mut sorted_a = ta.clone();
    let mut sorted_b = tb.clone();
    sorted_a.sort();
    sorted_b.sort();
    let same_words = sorted_a == sorted_b;
    let mut matches = Vec::new();
    if same_words {
        for (i, t) in ta.iter().enumerate() {
            let occurrence = ta[..i].iter().filter(|x| *x == t).count();
            let Some(j) = tb
                .iter()
                .enumerate()
                .filter(|(_, x)| *x == t)
                .nth(occurrence)
                .map(|(j, _)| j)
            else {
                continue;
            };
            let d = ra.outputs[i]
                .iter()
                .zip(&rb.outputs[j])
                .map(|(&x, &y)| (f64::from(x) - f64::from(y)).abs())
                .fold(0.0, f64::max);
            matches.push(WordMatch {
                a: i,
                b: j,
                max_abs_diff: d,
            });
        }
    }
    let max_abs_diff = matches.iter().map(|m| m.max_abs_diff).reduce(f64::max);
    Ok(WhyPosition {
        scheme: req.scheme,
        dim: DIM,
        a: ra,
        b: rb,
        same_words,
        matches,
        max_abs_diff,
        is_permutation: max_abs_diff.map(|d| d < 1e-9),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punctuation_is_its_own_token() {
        assert_eq!(tokenize("The man."), ["the", "man", "."]);
        assert_eq!(
            tokenize("don't re-run, ok?"),
            ["don't", "re-run", ",", "ok", "?"]
        );
        assert_eq!(tokenize("  "), Vec::<String>::new());
    }
}
