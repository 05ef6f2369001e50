//! Predict-then-reveal questions of the explorer: one per key figure, in the order of the course
//! (why → sinusoidal → learned → relative → RoPE → ALiBi → NoPE → long context → real model).
//!
//! The page asks the question before it draws the figure; [`check_prediction`] grades the
//! learner's choice and returns the explanation, with numbers computed by posenc where the answer
//! is a computation, and citing the committed measurements (results/README.md) for the real
//! model.

use posenc::alibi;
use posenc::diagnostics::{pair_report, Band};
use posenc::relative::t5_bucket;
use posenc::rope::{Llama3Params, Precision, RopeParams, RopeScaling};
use posenc::sinusoidal::{self, SinusoidalLayout};
use serde::{Deserialize, Serialize};

use super::{LearnError, LearnErrorKind, LearnResult};

/// One option of a prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionOption {
    /// The letter.
    pub key: String,
    /// The text.
    pub text: String,
}

/// A question asked before a figure is drawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Stable identifier (`why-permutation`, `rope-pair-decay`, ...).
    pub id: String,
    /// The page panel it belongs to (`why`, `sinusoidal`, ...).
    pub panel: String,
    /// The figure it hides until answered (the figure's `data-fig` name).
    pub figure: String,
    /// The question.
    pub question: String,
    /// The options.
    pub options: Vec<PredictionOption>,
}

/// The graded answer to a prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionVerdict {
    /// The prediction.
    pub id: String,
    /// The choice given.
    pub choice: String,
    /// Whether it is right.
    pub correct: bool,
    /// The right option's letter.
    pub answer: String,
    /// What the figure shows, and why.
    pub explanation: String,
}

struct Entry {
    prediction: Prediction,
    answer: &'static str,
    explanation: String,
}

fn entry(
    id: &str,
    panel: &str,
    figure: &str,
    question: &str,
    options: &[&str],
    answer: &'static str,
    explanation: String,
) -> Entry {
    Entry {
        prediction: Prediction {
            id: id.into(),
            panel: panel.into(),
            figure: figure.into(),
            question: question.into(),
            options: options
                .iter()
                .enumerate()
                .map(|(i, t)| PredictionOption {
                    key: ((b'A' + i as u8) as char).to_string(),
                    text: (*t).into(),
                })
                .collect(),
        },
        answer,
        explanation,
    }
}

fn entries() -> LearnResult<Vec<Entry>> {
    let sin_wl: Vec<f64> = sinusoidal::frequencies(64, 10_000.0, SinusoidalLayout::Interleaved)?
        .iter()
        .map(|w| std::f64::consts::TAU / w)
        .collect();
    let slopes = alibi::slopes(8)?;
    let (first, last) = (slopes[0], slopes[slopes.len() - 1]);
    let w_first = alibi::effective_window(first, 0.01)?;
    let w_last = alibi::effective_window(last, 0.01)?;
    let b200 = t5_bucket(-200, false, 32, 128)?;
    let b2000 = t5_bucket(-2000, false, 32, 128)?;
    let rope = RopeParams::new(10_000.0, 64)?.frequencies(None, Precision::Exact)?;
    let wl = rope.wavelengths();
    let llama3 = RopeParams {
        max_position_embeddings: 8192 * 8,
        scaling: RopeScaling::Llama3(Llama3Params {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192,
        }),
        ..RopeParams::new(500_000.0, 128)?
    };
    let bands = pair_report(&llama3, 8192, 8192 * 8, None)?;
    let count = |b: Band| bands.iter().filter(|r| r.band == b).count();
    let llama3_bands = (
        count(Band::Unchanged),
        count(Band::Blended),
        count(Band::Interpolated),
    );
    Ok(vec![
        entry(
            "why-permutation",
            "why",
            "outs",
            "With no position signal, is each word's output in \"the man bit the dog\" different \
             from the same word's output in \"the dog bit the man\"?",
            &[
                "Yes: the word order changes what each word attends to",
                "No: B's outputs are A's outputs, only permuted",
            ],
            "B",
            "Attention is a weighted average over a set: permute the inputs and the outputs are \
             permuted the same way, so each word gets exactly the same vector in both sentences \
             (the difference is 0). Any scheme breaks this."
                .into(),
        ),
        entry(
            "walk-rope-entry",
            "walk",
            "stages",
            "In the four-token walk with RoPE, at which step does position enter?",
            &[
                "Added to the token embeddings before the projections",
                "q and k are rotated after the projections; v is not",
                "A bias is added to the scores",
            ],
            "B",
            "RoPE acts on queries and keys inside attention, after W_q and W_k: the embeddings \
             and the values carry no position. Switch the scheme to sinusoidal to see position \
             enter at step 2, or to ALiBi to see it enter at step 6."
                .into(),
        ),
        entry(
            "sin-fast-dims",
            "sinusoidal",
            "heat",
            "Which dimensions of a sinusoidal table (d = 64) still change visibly between \
             positions 4000 and 4001?",
            &[
                "The first ones (fast pairs)",
                "The last ones (slow pairs)",
                "All of them equally",
            ],
            "A",
            format!(
                "Pair i turns with wavelength 2π·10000^(2i/d): pair 0 every {:.1} positions, pair \
                 31 every {:.0}. Fast pairs change at every step; slow ones look constant over \
                 thousands of positions and tell far-apart positions apart.",
                sin_wl[0], sin_wl[31]
            ),
        ),
        entry(
            "sin-similarity",
            "sinusoidal",
            "sim",
            "What does the PE(i)·PE(j) similarity matrix look like?",
            &[
                "A bright diagonal, and the same values along every diagonal: it depends only on \
                 i − j",
                "Brighter towards large positions",
                "No structure: the table looks random",
            ],
            "A",
            "PE(i)·PE(j) = Σ_k cos((i − j)·ω_k): a function of i − j alone. That is why relative \
             position is readable from absolute sinusoids: a fixed linear map takes PE(p) to \
             PE(p + k) for every p."
                .into(),
        ),
        entry(
            "learned-resize",
            "learned",
            "resized",
            "Stretching a learned table by interpolation to twice its rows: does it add \
             information?",
            &[
                "No: new rows are blends of neighbouring trained rows",
                "Yes: interpolation learns the missing positions",
            ],
            "A",
            "Linear interpolation places each new row between two old ones; nothing new is \
             learned, and the spacing between positions is squeezed, so a model needs \
             fine-tuning to use the stretched table."
                .into(),
        ),
        entry(
            "t5-far-buckets",
            "relative",
            "buckets",
            "A causal T5 head (32 buckets, max_distance 128): how many different biases can it \
             give to keys 200 and 2000 tokens back?",
            &[
                "One: both fall in the last bucket",
                "Two: every distance has its own bucket",
                "It depends on the sentence",
            ],
            "A",
            format!(
                "Both distances are beyond max_distance = 128, so both map to bucket {b200} = \
                 {b2000} (posenc's t5_bucket): T5 cannot tell 200 from 2000 tokens back."
            ),
        ),
        entry(
            "rope-shift",
            "rope",
            "qk2d",
            "Rotate q to position m and k to position n; now move both by the same s. What \
             happens to q·k?",
            &["It stays the same", "It grows with s", "It shrinks with s"],
            "A",
            "Rotating both vectors by the same extra angle s·θ keeps the angle between them: q·k \
             depends on n − m only. The check below the plot computes it in float32: the \
             difference is rounding."
                .into(),
        ),
        entry(
            "rope-pair-decay",
            "rope",
            "decay",
            "As the distance Δ grows, what does a single pair's cos(Δ·θ_i) do?",
            &[
                "It decays towards 0 (high-frequency pairs decay fastest)",
                "It oscillates between −1 and 1 for ever; only the mean over pairs decays",
                "It stays at 1",
            ],
            "B",
            format!(
                "One pair is a pure rotation: cos(Δθ_i) keeps amplitude 1 at every distance (pair \
                 0 repeats every {:.1} positions, pair 31 every {:.0}). Only the average over \
                 pairs with different frequencies decays, because the cosines fall out of phase. \
                 The common phrase \"decays for high-frequency pairs\" is wrong: fast pairs \
                 oscillate fastest, they do not decay.",
                wl[0], wl[31]
            ),
        ),
        entry(
            "rope-bound",
            "rope",
            "bound",
            "Su et al.'s bound on |q·k|, (1/(d/2)) Σ_j |S_j|, as the distance grows:",
            &[
                "Decays (with wiggles), and never reaches 0",
                "Grows",
                "Is flat",
            ],
            "A",
            "The partial sums S_j of e^{iΔθ_k} lose coherence as Δ grows, so the bound decays, \
             with ripples. It bounds |q·k| only up to max|h_{i+1} − h_i|: it says long distances \
             can score less, not that they do. Men et al.'s criterion asks more: that Σ cos(mθ_i) \
             stays ≥ 0 for every m below the context, which fails for a small base."
                .into(),
        ),
        entry(
            "alibi-far-head",
            "alibi",
            "slopes",
            "Eight ALiBi heads: which one can still attend furthest back?",
            &[
                "Head 0, with the largest slope",
                "The last head, with the smallest slope",
                "All equally: they share one bias",
            ],
            "B",
            format!(
                "Head h adds −m_h·distance. Head 0 (m = {first}) keeps 1% of a key's weight at \
                 {w_first:.1} tokens, head 7 (m = {last}) at {w_last:.0} tokens: on one scale \
                 the first head's bias is {:.0}× steeper.",
                first / last
            ),
        ),
        entry(
            "nope-counting",
            "nope",
            "count",
            "A causal head with no position encoding, uniform attention and v = 1 on the first \
             token only: what does position i output?",
            &[
                "The same value at every position: without position there is nothing to read",
                "1/(i+1): it counts the keys it can see, so it knows its position",
            ],
            "B",
            "Under the causal mask query i averages i+1 values, one of which is 1: the output is \
             1/(i+1). The mask alone breaks the permutation symmetry, which is why decoders \
             without any position encoding (NoPE) still learn order."
                .into(),
        ),
        entry(
            "distance-unbounded",
            "compare",
            "profile",
            "Which scheme's score change with distance keeps growing without limit?",
            &["ALiBi", "T5 buckets", "RoPE"],
            "A",
            "ALiBi's −m·distance is linear and unbounded; T5's bias is constant past \
             max_distance; RoPE's q·k oscillates within ±|q||k|."
                .into(),
        ),
        entry(
            "llama3-bands",
            "longctx",
            "wl",
            "Llama 3 scaling ×8 over 8192 training tokens (head dim 128, base 500000): which \
             pairs does it change?",
            &[
                "All of them: every wavelength is multiplied by 8",
                "Only the slow pairs: short wavelengths are kept, long ones stretched ×8, a band \
                 in between blended",
                "Only the fast pairs",
            ],
            "B",
            format!(
                "Llama 3 keeps every pair whose wavelength is under 8192/4 = 2048 tokens, divides \
                 the frequency of every pair whose wavelength is over 8192/1 by 8, and blends the \
                 {} pairs in between: here {} pairs unchanged, {} blended, {} interpolated \
                 (posenc's pair report). Local order (fast pairs) stays as trained. Position \
                 interpolation (PI, linear) is the scaling that changes every pair: switch to it.",
                llama3_bands.1, llama3_bands.0, llama3_bands.1, llama3_bands.2
            ),
        ),
        entry(
            "model-passkey-depth",
            "model",
            "passkey",
            "SmolLM2-135M, inside its 8192-token training context: is the passkey found at every \
             depth?",
            &[
                "Yes, at every depth and length up to 8192",
                "No: depth 1 (right before the question) fails from 2048 tokens on",
                "No: the middle (depth 0.5) fails first",
            ],
            "B",
            "Measured (results/passkey.json, 2 trials per cell): depth 0.5 was found at every \
             length up to 8192; depth 1 fails from 2048 tokens on, with or without scaling. The \
             model describes the key instead of copying it (\"a magical number that is used in \
             magic\"): a paraphrase, not a position failure, since 2048 is well inside 8192. \
             Depth 0 at 8192 (about 8170 tokens back) also fails."
                .into(),
        ),
        entry(
            "model-yarn-window",
            "model",
            "passkey-yarn",
            "With YaRN ×4, the same model at 4096 and 8192 tokens (inside its training window): \
             is the depth-0.5 passkey still found?",
            &[
                "Yes: inside the window YaRN changes nothing",
                "No: the stretched slow pairs cost the middle depth there",
            ],
            "B",
            "Measured (results/passkey-yarn.json, one trial per cell): YaRN ×4 reached 16384 \
             tokens (depths 0 and 0.5 answered there) but lost depth 0.5 at 4096 and 8192, which \
             the unscaled model answered. Stretching the slow pairs changes the model inside the \
             window too: YaRN is not free at short contexts."
                .into(),
        ),
        entry(
            "model-linear-cost",
            "model",
            "perplexity",
            "Without fine-tuning, what does linear interpolation ×4 do to SmolLM2's perplexity?",
            &[
                "Little: it only matters past 8192 tokens",
                "It ruins the model at every length",
                "It improves short contexts",
            ],
            "B",
            "Measured (results/perplexity.json): whole-window perplexity 66–80 with linear ×4 \
             against 7–9 unscaled, at every length. Squeezing every position by 4 moves the fast \
             pairs, which encode local order, to angles never seen in training. Unscaled RoPE \
             breaks past 8192 instead (tail perplexity 8.99 → 43.1 at 12288 → 976 at 16384), \
             while NTK, dynamic NTK and YaRN keep improving to 16384."
                .into(),
        ),
        entry(
            "model-sink",
            "model",
            "attention-stats",
            "Do SmolLM2's first layers already put much weight on the first token (an attention \
             sink)?",
            &[
                "Yes, from layer 0 on",
                "No: the sink appears from about layer 12 on",
            ],
            "B",
            "Measured (results/attention-stats.json): the weight on the first token is 0.006 on \
             average in layers 0–2, 0.057 in layers 3–11 and 0.464 in layers 12–29; layer 18 \
             head 8 puts 0.9997 of its weight on token 0."
                .into(),
        ),
    ])
}

/// Every prediction, in course order (without the answers).
pub fn predictions() -> LearnResult<Vec<Prediction>> {
    Ok(entries()?.into_iter().map(|e| e.prediction).collect())
}

/// Grades `choice` (a letter) for prediction `id`.
///
/// Errors: [`LearnErrorKind::InvalidRequest`] for an unknown id, [`LearnErrorKind::MalformedAnswer`]
/// for a letter that is not one of its options.
pub fn check_prediction(id: &str, choice: &str) -> LearnResult<PredictionVerdict> {
    let all = entries()?;
    let Some(e) = all.into_iter().find(|e| e.prediction.id == id) else {
        return Err(LearnError::new(
            LearnErrorKind::InvalidRequest,
            format!("invalid prediction id: `{id}` is not one of the explorer's predictions"),
        ));
    };
    let choice = choice.trim().to_ascii_uppercase();
    if !e.prediction.options.iter().any(|o| o.key == choice) {
        return Err(LearnError::malformed(format!(
            "expected one of {}, got `{choice}`",
            e.prediction
                .options
                .iter()
                .map(|o| o.key.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(PredictionVerdict {
        id: id.into(),
        correct: choice == e.answer,
        choice,
        answer: e.answer.into(),
        explanation: e.explanation,
    })
}
