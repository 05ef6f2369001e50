//! The ten exercises: instance generation from a seed, checking, hints from recognised mistakes.
//!
//! Every number an exercise shows or checks comes from the posenc library. A wrong numeric answer
//! is compared with what the library gives for the common wrong variants (another layout, the
//! bias after softmax, degrees, positions off by one, ...); the first variant within tolerance
//! names the mistake. Instances are drawn again (same seed, next draw) until the right answer
//! and every wrong variant are clearly apart, so a hint is never ambiguous.

use std::f64::consts::PI;

use posenc::attention::{
    add_absolute_positions, attention, attention_scores, AttentionOptions, HeadConfig, Mask, Scheme,
};
use posenc::kv_cache::{positions_from_padding_mask, BatchKvCache, KvCache};
use posenc::learned::LearnedTable;
use posenc::relative::{shaw_index, t5_bias, t5_bucket, T5Buckets};
use posenc::rope::{
    apply_rotary, apply_rotary_inverse, cos_sin_row, rotation_row, Precision, RopeFrequencies,
    RopeLayout, RopeParams, RopeScaling, YarnParams,
};
use posenc::sinusoidal::{self, SinusoidalLayout};
use posenc::{alibi, PositionEntry};
use rand::rngs::ChaCha8Rng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{RngExt, SeedableRng};
use serde_json::json;

use super::answer::{
    format_numbers, option_key, parse_choice, parse_numbers, parse_passkey_plan, Shape,
};
use super::{
    AnswerKind, Choice, Instance, LearnError, LearnErrorKind, LearnResult, OptionExplanation, Part,
    PartPrompt, Verdict, EXERCISE_COUNT,
};

/// List entry of one exercise.
pub(super) struct Summary {
    pub id: &'static str,
    pub title: &'static str,
    pub topic: &'static str,
    pub computes: &'static str,
}

/// The ten exercises, in order.
pub(super) const SUMMARIES: [Summary; 10] = [
    Summary {
        id: "sinusoidal-row",
        title: "A sinusoidal position row",
        topic: "sinusoidal",
        computes: "the sin/cos encoding of one position",
    },
    Summary {
        id: "token-plus-position",
        title: "Token + position addition",
        topic: "learned",
        computes: "token embeddings plus learned position rows (with a model's row offset)",
    },
    Summary {
        id: "relative-distances",
        title: "A relative distance matrix",
        topic: "relative",
        computes: "Shaw et al.'s clipped key - query distances",
    },
    Summary {
        id: "relative-bias",
        title: "A relative attention bias (T5 buckets)",
        topic: "relative",
        computes: "attention weights with a T5 bucket bias added to the scores",
    },
    Summary {
        id: "rope-rotation",
        title: "Apply a RoPE rotation",
        topic: "rope",
        computes: "a rotated head vector and its norm",
    },
    Summary {
        id: "rope-identity",
        title: "The RoPE relative-offset identity in 2D",
        topic: "rope",
        computes: "<R(m)q, R(n)k> and <q, R(n-m)k>",
    },
    Summary {
        id: "alibi-matrix",
        title: "Build an ALiBi matrix",
        topic: "alibi",
        computes: "the causal ALiBi bias of one head",
    },
    Summary {
        id: "learned-parameters",
        title: "Parameters of a learned position table",
        topic: "learned",
        computes: "rows x width of a real model's table",
    },
    Summary {
        id: "decode-positions",
        title: "Decode position ids with a KV cache",
        topic: "decode-positions",
        computes: "the next position id of each row of a left-padded batch",
    },
    Summary {
        id: "passkey-design",
        title: "Design a long-context position diagnostic",
        topic: "scaling",
        computes: "a passkey grid (lengths x depths) and its predicted outcome",
    },
];

// ------------------------------------------------------------------------------------------
// Parts

struct ChoiceOption {
    text: String,
    explanation: String,
    correct: bool,
    mistake: &'static str,
}

fn opt(
    text: impl Into<String>,
    explanation: impl Into<String>,
    mistake: &'static str,
) -> ChoiceOption {
    ChoiceOption {
        text: text.into(),
        explanation: explanation.into(),
        correct: false,
        mistake,
    }
}

fn right(text: impl Into<String>, explanation: impl Into<String>) -> ChoiceOption {
    ChoiceOption {
        text: text.into(),
        explanation: explanation.into(),
        correct: true,
        mistake: "",
    }
}

struct ChoicePart {
    question: String,
    options: Vec<ChoiceOption>,
}

impl ChoicePart {
    fn new(
        rng: &mut ChaCha8Rng,
        question: impl Into<String>,
        mut options: Vec<ChoiceOption>,
    ) -> Self {
        options.shuffle(rng);
        ChoicePart {
            question: question.into(),
            options,
        }
    }

    fn correct_index(&self) -> usize {
        self.options.iter().position(|o| o.correct).unwrap_or(0)
    }
}

/// What the library gives for one common mistake.
struct Variant {
    mistake: &'static str,
    hint: String,
    value: Vec<f64>,
}

fn variant(mistake: &'static str, hint: impl Into<String>, value: Vec<f64>) -> Variant {
    Variant {
        mistake,
        hint: hint.into(),
        value,
    }
}

struct NumericPart {
    question: String,
    shape: Shape,
    integer: bool,
    tolerance: f64,
    expected: Vec<f64>,
    variants: Vec<Variant>,
    /// When the first `n` values are right but the rest are not: (n, mistake, hint).
    partial: Option<(usize, &'static str, String)>,
    generic_hint: String,
    feedback: String,
}

/// Exercise 10's plan: how the scheme predicts the outcome.
#[derive(Clone, PartialEq)]
enum PasskeyScheme {
    Learned { table: LearnedTable },
    Rope { train: u64 },
    Yarn { original: u64, factor: f64 },
    Alibi { window: f64 },
}

struct PasskeyPart {
    question: String,
    scheme: PasskeyScheme,
    train: u64,
    target: u64,
    rule: String,
    feedback: String,
}

impl PasskeyPart {
    /// Whether the position encoding allows retrieval at this length and depth (`false`: it
    /// rules it out).
    fn allows(&self, length: u64, depth: f64) -> bool {
        match &self.scheme {
            // The last token sits at position length - 1: it needs a row of the table.
            PasskeyScheme::Learned { table } => table.lookup(length - 1).is_ok(),
            PasskeyScheme::Rope { train } => length <= *train,
            PasskeyScheme::Yarn { original, factor } => {
                (length as f64) <= factor * *original as f64
            }
            PasskeyScheme::Alibi { window } => {
                (1.0 - depth) * (length.saturating_sub(1)) as f64 <= *window
            }
        }
    }
}

enum NumberPart {
    Numeric(NumericPart),
    Passkey(PasskeyPart),
}

/// A built instance with its answer key.
pub(super) struct Built {
    exercise: u32,
    seed: u64,
    setup: String,
    data: serde_json::Value,
    a: ChoicePart,
    b: NumberPart,
    c: ChoicePart,
}

// ------------------------------------------------------------------------------------------
// Building and checking

fn rng_for(exercise: u32, seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ u64::from(exercise).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Whether every variant is far from the right answer and from every other variant.
fn distinguishable(p: &NumericPart) -> bool {
    // Integer answers (tolerance 0) differ by at least 1; real ones by a margin over the tolerance.
    let (apart, pairwise) = if p.tolerance == 0.0 {
        (0.5, 0.5)
    } else {
        (10.0 * p.tolerance, 3.0 * p.tolerance)
    };
    p.variants
        .iter()
        .all(|v| max_abs_diff(&v.value, &p.expected) > apart)
        && p.variants.iter().enumerate().all(|(i, v)| {
            p.variants[i + 1..]
                .iter()
                .all(|w| max_abs_diff(&v.value, &w.value) > pairwise)
        })
}

/// Builds exercise `n` for `seed`, drawing again until the hints are unambiguous.
pub(super) fn build(exercise: u32, seed: u64) -> LearnResult<Built> {
    build_checked(exercise, seed).map(|(b, _)| b)
}

/// [`build`], and whether the instance was unambiguous without dropping coinciding variants.
fn build_checked(exercise: u32, seed: u64) -> LearnResult<(Built, bool)> {
    if !(1..=EXERCISE_COUNT).contains(&exercise) {
        return Err(LearnError::new(
            LearnErrorKind::UnknownExercise,
            format!("invalid exercise: expected 1..={EXERCISE_COUNT}, got {exercise}"),
        ));
    }
    let mut rng = rng_for(exercise, seed);
    let mut last = None;
    for _ in 0..64 {
        let built = match exercise {
            1 => ex1_sinusoidal_row(&mut rng),
            2 => ex2_token_plus_position(&mut rng),
            3 => ex3_relative_distances(&mut rng),
            4 => ex4_relative_bias(&mut rng),
            5 => ex5_rope_rotation(&mut rng),
            6 => ex6_rope_identity(&mut rng),
            7 => ex7_alibi_matrix(&mut rng),
            8 => ex8_learned_parameters(&mut rng),
            9 => ex9_decode_positions(&mut rng),
            _ => ex10_passkey_design(&mut rng),
        }?;
        let ok = match &built.b {
            NumberPart::Numeric(p) => distinguishable(p),
            NumberPart::Passkey(_) => true,
        };
        if ok {
            return Ok((Built { seed, ..built }, true));
        }
        last = Some(built);
    }
    // Not reached for the sizes drawn here (tests check seeds 0..50); keep the first of any
    // variants that coincide rather than fail.
    let mut built = last.ok_or_else(|| LearnError::new(LearnErrorKind::Library, "no instance"))?;
    if let NumberPart::Numeric(p) = &mut built.b {
        let expected = p.expected.clone();
        let tol = p.tolerance;
        let mut kept: Vec<Variant> = Vec::new();
        for v in p.variants.drain(..) {
            if max_abs_diff(&v.value, &expected) > tol
                && kept.iter().all(|k| max_abs_diff(&k.value, &v.value) > tol)
            {
                kept.push(v);
            }
        }
        p.variants = kept;
    }
    Ok((Built { seed, ..built }, false))
}

fn choice_prompt(part: Part, c: &ChoicePart) -> PartPrompt {
    PartPrompt {
        part,
        question: c.question.clone(),
        answer_kind: AnswerKind::Choice,
        answer_format: format!(
            "one letter, A..{}",
            option_key(c.options.len().saturating_sub(1))
        ),
        choices: c
            .options
            .iter()
            .enumerate()
            .map(|(i, o)| Choice {
                key: option_key(i),
                text: o.text.clone(),
            })
            .collect(),
        shape: None,
        tolerance: None,
    }
}

impl Built {
    fn summary(&self) -> &'static Summary {
        &SUMMARIES[(self.exercise as usize)
            .saturating_sub(1)
            .min(SUMMARIES.len() - 1)]
    }

    pub(super) fn instance(&self) -> Instance {
        let s = self.summary();
        let b = match &self.b {
            NumberPart::Numeric(p) => PartPrompt {
                part: Part::B,
                question: p.question.clone(),
                answer_kind: if p.integer && p.shape == Shape::Scalar {
                    AnswerKind::Integer
                } else {
                    match p.shape {
                        Shape::Scalar => AnswerKind::Number,
                        Shape::Vector(_) => AnswerKind::Vector,
                        Shape::Matrix(..) => AnswerKind::Matrix,
                    }
                },
                answer_format: if p.integer && p.shape == Shape::Scalar {
                    "one integer".into()
                } else {
                    p.shape.describe()
                },
                choices: vec![],
                shape: Some(p.shape.dims()),
                tolerance: Some(p.tolerance),
            },
            NumberPart::Passkey(p) => PartPrompt {
                part: Part::B,
                question: p.question.clone(),
                answer_kind: AnswerKind::PasskeyPlan,
                answer_format: "`lengths | depths | predictions`, predictions 1 (retrieved) or 0 \
                                (not) as rows (one per length) separated by `;`, for example \
                                `1024,4096,16384 | 0,0.5,1 | 1,1,1;1,1,1;0,0,0`; or JSON \
                                {\"lengths\": [..], \"depths\": [..], \"predict\": [[..]]}"
                    .into(),
                choices: vec![],
                shape: None,
                tolerance: None,
            },
        };
        Instance {
            exercise: self.exercise,
            seed: self.seed,
            id: s.id.to_string(),
            title: s.title.to_string(),
            setup: self.setup.clone(),
            data: self.data.clone(),
            parts: vec![
                choice_prompt(Part::A, &self.a),
                b,
                choice_prompt(Part::C, &self.c),
            ],
        }
    }

    fn verdict(&self, part: Part) -> Verdict {
        Verdict {
            exercise: self.exercise,
            seed: self.seed,
            part,
            correct: false,
            mistake: None,
            hint: None,
            feedback: None,
            max_error: None,
            tolerance: None,
            explanations: vec![],
        }
    }

    pub(super) fn check(&self, part: Part, answer: &str) -> LearnResult<Verdict> {
        let mut v = self.verdict(part);
        match part {
            Part::A | Part::C => {
                let c = if part == Part::A { &self.a } else { &self.c };
                let i = parse_choice(answer, c.options.len())?;
                let chosen = &c.options[i];
                if chosen.correct {
                    v.correct = true;
                    v.feedback = Some(format!("Right. {}", chosen.explanation));
                    v.explanations = c
                        .options
                        .iter()
                        .enumerate()
                        .map(|(k, o)| OptionExplanation {
                            key: option_key(k),
                            text: o.text.clone(),
                            correct: o.correct,
                            explanation: o.explanation.clone(),
                        })
                        .collect();
                } else {
                    v.mistake = Some(chosen.mistake.to_string());
                    v.hint = Some(format!("Not {}: {}", option_key(i), chosen.explanation));
                }
            }
            Part::B => match &self.b {
                NumberPart::Numeric(p) => check_numeric(p, answer, &mut v)?,
                NumberPart::Passkey(p) => check_passkey(p, answer, &mut v)?,
            },
        }
        Ok(v)
    }

    pub(super) fn solution(&self, part: Part) -> String {
        match part {
            Part::A => option_key(self.a.correct_index()),
            Part::C => option_key(self.c.correct_index()),
            Part::B => match &self.b {
                NumberPart::Numeric(p) => format_numbers(&p.expected, p.shape),
                NumberPart::Passkey(p) => {
                    let mut lengths = vec![p.train / 2, p.train, 2 * p.train, p.target];
                    if let PasskeyScheme::Yarn { original, factor } = &p.scheme {
                        lengths.push((factor * *original as f64) as u64);
                    }
                    lengths.retain(|&l| l >= 1 && l <= p.target);
                    lengths.sort_unstable();
                    lengths.dedup();
                    let depths = [0.0, 0.5, 1.0];
                    let rows: Vec<String> = lengths
                        .iter()
                        .map(|&l| {
                            depths
                                .iter()
                                .map(|&d| if p.allows(l, d) { "1" } else { "0" })
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .collect();
                    format!(
                        "{} | {} | {}",
                        lengths
                            .iter()
                            .map(u64::to_string)
                            .collect::<Vec<_>>()
                            .join(","),
                        depths.map(|d| d.to_string()).join(","),
                        rows.join(";")
                    )
                }
            },
        }
    }
}

fn position_in(shape: Shape, index: usize) -> String {
    match shape {
        Shape::Matrix(_, c) if c > 0 => format!("row {}, column {}", index / c + 1, index % c + 1),
        Shape::Scalar => "the value".into(),
        _ => format!("value {}", index + 1),
    }
}

fn check_numeric(p: &NumericPart, answer: &str, v: &mut Verdict) -> LearnResult<()> {
    let values = parse_numbers(answer, p.shape, p.integer)?;
    let err = max_abs_diff(&values, &p.expected);
    v.max_error = Some(err);
    v.tolerance = Some(p.tolerance);
    if err <= p.tolerance {
        v.correct = true;
        v.feedback = Some(p.feedback.clone());
        return Ok(());
    }
    if let Some(var) = p
        .variants
        .iter()
        .find(|var| max_abs_diff(&values, &var.value) <= p.tolerance)
    {
        v.mistake = Some(var.mistake.to_string());
        v.hint = Some(var.hint.clone());
        return Ok(());
    }
    if let Some((n, mistake, hint)) = &p.partial {
        let n = (*n).min(values.len());
        if max_abs_diff(&values[..n], &p.expected[..n]) <= p.tolerance {
            v.mistake = Some(mistake.to_string());
            v.hint = Some(hint.clone());
            return Ok(());
        }
    }
    let wrong: Vec<usize> = values
        .iter()
        .zip(&p.expected)
        .enumerate()
        .filter(|(_, (a, e))| (*a - *e).abs() > p.tolerance)
        .map(|(i, _)| i)
        .collect();
    let first = wrong.first().copied().unwrap_or(0);
    v.hint = Some(format!(
        "{} of {} values are off by more than {} (the first: {}, where you wrote {}). {}",
        wrong.len(),
        values.len(),
        p.tolerance,
        position_in(p.shape, first),
        values.get(first).copied().unwrap_or(f64::NAN),
        p.generic_hint
    ));
    Ok(())
}

fn check_passkey(p: &PasskeyPart, answer: &str, v: &mut Verdict) -> LearnResult<()> {
    let plan = parse_passkey_plan(answer)?;
    let mut fail = |mistake: &str, hint: String| {
        v.mistake = Some(mistake.to_string());
        v.hint = Some(hint);
    };
    if plan.lengths.len() < 3 {
        fail(
            "too_few_lengths",
            "Test at least 3 lengths: one well inside the training window, one at its edge and \
             one or more beyond it."
                .into(),
        );
        return Ok(());
    }
    if !plan.lengths.iter().any(|&l| l <= p.train) {
        fail(
            "no_length_inside_training",
            format!(
                "None of your lengths is inside the training window (<= {}): without a length \
                 the model surely handles you cannot tell a position failure from a model that \
                 never retrieves.",
                p.train
            ),
        );
        return Ok(());
    }
    if !plan.lengths.iter().any(|&l| l > p.train && l <= p.target) {
        fail(
            "no_length_beyond_training",
            format!(
                "None of your lengths lies beyond the training window and within the target \
                 ({} < length <= {}): the grid cannot show how the scheme behaves where it \
                 matters.",
                p.train, p.target
            ),
        );
        return Ok(());
    }
    let min_d = plan.depths.iter().copied().fold(f64::INFINITY, f64::min);
    let max_d = plan
        .depths
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    if plan.depths.len() < 3 || min_d > 0.1 || max_d < 0.9 {
        fail(
            "depths_not_spread",
            "Use at least 3 depths covering the context: one near the start (<= 0.1), one near \
             the end (>= 0.9) and one between. Schemes that decay with distance fail only for \
             passkeys far from the question, i.e. at small depths."
                .into(),
        );
        return Ok(());
    }
    // Which cells the position encoding rules out; the others it allows (the model may still
    // miss them for other reasons: the measured SmolLM2 grids in results/ do).
    let allowed: Vec<Vec<bool>> = plan
        .lengths
        .iter()
        .map(|&l| plan.depths.iter().map(|&d| p.allows(l, d)).collect())
        .collect();
    let cell = |li: usize, di: usize| (plan.lengths[li], plan.depths[di]);
    // Predicting from the training length alone is the classic mistake for the two schemes whose
    // limit is not the training length.
    let by_train_length: Vec<Vec<bool>> = plan
        .lengths
        .iter()
        .map(|&l| vec![l <= p.train; plan.depths.len()])
        .collect();
    if plan.predict == by_train_length && plan.predict != allowed {
        match p.scheme {
            PasskeyScheme::Alibi { .. } => {
                fail(
                    "predicted_by_length",
                    format!(
                        "You predicted from the length alone. ALiBi runs at any length; what it \
                         limits is the distance from the question back to the passkey, which \
                         depends on the depth. The rule for this model: {}",
                        p.rule
                    ),
                );
                return Ok(());
            }
            PasskeyScheme::Yarn { .. } => {
                fail(
                    "ignored_scaling",
                    format!(
                        "You predicted failure right past the original training length, as for \
                         unscaled RoPE: YaRN stretches the usable window. The rule for this \
                         model: {}",
                        p.rule
                    ),
                );
                return Ok(());
            }
            _ => {}
        }
    }
    let missed_failure = allowed
        .iter()
        .zip(&plan.predict)
        .enumerate()
        .find_map(|(li, (a, pr))| {
            a.iter()
                .zip(pr)
                .position(|(&ok, &said)| !ok && said)
                .map(|di| cell(li, di))
        });
    if let Some((length, depth)) = missed_failure {
        let all_pass = plan.predict.iter().flatten().all(|&x| x);
        let (mistake, lead) = if all_pass {
            (
                "assumed_extrapolation",
                "You predicted that every test passes, i.e. that the scheme extrapolates to every \
                 length and distance you test."
                    .to_string(),
            )
        } else {
            (
                "missed_position_failure",
                format!(
                    "You predicted retrieval at length {length}, depth {depth}, where the position \
                     encoding rules it out."
                ),
            )
        };
        fail(
            mistake,
            format!("{lead} The rule for this model: {}", p.rule),
        );
        return Ok(());
    }
    let ruled_out_row = allowed
        .iter()
        .zip(&plan.predict)
        .enumerate()
        .find_map(|(li, (a, pr))| {
            let some_allowed = a.iter().any(|&ok| ok);
            let none_said = !a.iter().zip(pr).any(|(&ok, &said)| ok && said);
            (some_allowed && none_said).then_some(li)
        });
    if let Some(li) = ruled_out_row {
        let length = plan.lengths[li];
        let (mistake, lead) = match p.scheme {
            PasskeyScheme::Yarn { .. } if length > p.train => (
                "ignored_scaling",
                "You predicted failure at every depth right past the original training length, \
                 as for unscaled RoPE: YaRN stretches the usable window."
                    .to_string(),
            ),
            PasskeyScheme::Alibi { .. } if length > p.train => (
                "predicted_by_length",
                "You predicted from the length alone. ALiBi runs at any length; what it limits is \
                 the distance from the question back to the passkey, which depends on the depth."
                    .to_string(),
            ),
            _ => (
                "row_ruled_out",
                format!(
                    "At length {length} you predicted failure at every depth, but the position \
                     encoding allows retrieval there at some depth."
                ),
            ),
        };
        fail(
            mistake,
            format!(
                "{lead} The rule for this model: {} Look again at length {length}.",
                p.rule
            ),
        );
        return Ok(());
    }
    v.correct = true;
    let misses_allowed = allowed
        .iter()
        .zip(&plan.predict)
        .any(|(a, pr)| a.iter().zip(pr).any(|(&ok, &said)| ok && !said));
    v.feedback = Some(if misses_allowed {
        format!(
            "{} Your 0s where the position encoding allows retrieval are not graded wrong: a \
             model can miss a passkey for other reasons. {MEASURED_PASSKEY}",
            p.feedback
        )
    } else {
        format!("{} {MEASURED_PASSKEY}", p.feedback)
    });
    Ok(())
}

/// What the repository's own passkey runs show about depth (results/README.md).
const MEASURED_PASSKEY: &str = "Measured in this repository (results/README.md): SmolLM2-135M, \
    inside its 8192-token training context, missed the passkey at depth 1 from 2048 tokens on \
    (it paraphrases the key instead of copying it: not a position failure) and at depth 0 at \
    8192 (results/passkey.json); with YaRN x4 it lost depth 0.5 at 4096 and 8192 but answered \
    depth 0 at 16384 (results/passkey-yarn.json, one trial per cell). Depth matters in practice; \
    what the position encoding decides is where retrieval cannot work at all.";

// ------------------------------------------------------------------------------------------
// Shared pieces

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn fmt_vec(v: &[f64]) -> String {
    format!(
        "[{}]",
        v.iter()
            .map(|x| format!("{x}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn fmt_rows(v: &[f64], cols: usize) -> String {
    v.chunks(cols.max(1))
        .map(fmt_vec)
        .collect::<Vec<_>>()
        .join("; ")
}

fn rows_json(v: &[f64], cols: usize) -> serde_json::Value {
    json!(v
        .chunks(cols.max(1))
        .map(|r| r.to_vec())
        .collect::<Vec<_>>())
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

fn tenths(rng: &mut ChaCha8Rng, lo: i32, hi: i32, n: usize) -> Vec<f64> {
    (0..n)
        .map(|_| f64::from(rng.random_range(lo..=hi)) / 10.0)
        .collect()
}

fn ints(rng: &mut ChaCha8Rng, lo: i32, hi: i32, n: usize) -> Vec<f64> {
    (0..n)
        .map(|_| f64::from(rng.random_range(lo..=hi)))
        .collect()
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, xs: &[T]) -> T {
    *xs.choose(rng).expect("non-empty list")
}

/// Part (a): where position enters. The right option is the library's `ENTRY` for the scheme;
/// `how` says, for the right option, how this scheme acts at that point.
fn entry_part(rng: &mut ChaCha8Rng, scheme: &str, entry: PositionEntry, how: &str) -> ChoicePart {
    let options = [
        (
            PositionEntry::HiddenStates,
            "Added to the token embeddings once, before the first layer: each token carries its \
             absolute position",
            "sinusoidal and learned tables enter here: a vector is added to the input, so every \
             later layer sees the absolute position mixed into the content.",
            "entry_hidden_states",
        ),
        (
            PositionEntry::QueryKey,
            "Rotates the queries and keys inside every attention layer, so each score depends \
             on the query-key offset only (relative)",
            "RoPE enters here: q and k of every layer are rotated by an angle proportional to \
             their position, so q.k depends on the offset only; values are not rotated.",
            "entry_query_key",
        ),
        (
            PositionEntry::AttentionScores,
            "Acts inside attention on the query-key offset: a term that depends on the offset is \
             added to each score, before softmax (relative)",
            "ALiBi, T5 and Shaw enter here: ALiBi adds -m*distance to the score, T5 a learned \
             bias per distance bucket, Shaw learned vectors for the clipped offset to the keys \
             (a term q.a_K in the score) and to the values; nothing is added to the hidden \
             states.",
            "entry_attention_scores",
        ),
        (
            PositionEntry::Nowhere,
            "Nowhere: no positional signal at all, only the causal mask orders the tokens",
            "NoPE enters nowhere: a bidirectional layer without position is \
             permutation-equivariant; a decoder still gets order from its causal mask.",
            "entry_nowhere",
        ),
    ];
    let options = options
        .into_iter()
        .map(|(e, text, expl, mistake)| ChoiceOption {
            text: text.to_string(),
            explanation: if e == entry {
                format!("Right: {how} (position {}).", e.describe())
            } else {
                format!("{expl} The {scheme} scheme enters somewhere else.")
            },
            correct: e == entry,
            mistake,
        })
        .collect();
    ChoicePart::new(
        rng,
        format!(
            "State the scheme ({scheme}): where does position enter the model, and is it absolute \
             or relative?"
        ),
        options,
    )
}

/// How RoPE enters (part a's explanation).
const ROPE_HOW: &str =
    "RoPE rotates the query and the key of every layer by an angle proportional \
                        to their position, so q.k depends only on the offset; values pass through";

/// How ALiBi enters (part a's explanation).
const ALIBI_HOW: &str = "ALiBi adds -m*(i - j) to the score of query i and key j, before softmax: \
                         a fixed linear penalty on the distance, one slope m per head";

/// How a learned table enters (part a's explanation).
const LEARNED_HOW: &str = "the table's row for each position is added to the token embedding \
                           before the first layer; past the last row there is nothing to add";

fn sin_row(p: f64, dim: usize, base: f64, layout: SinusoidalLayout) -> LearnResult<Vec<f64>> {
    Ok(f64s(&sinusoidal::row(p, dim, base, layout)?))
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// Swaps each (even, odd) pair: cos where sin belongs and back.
fn swap_pairs(v: &[f64]) -> Vec<f64> {
    let mut out = v.to_vec();
    for pair in out.chunks_exact_mut(2) {
        pair.swap(0, 1);
    }
    out
}

// ------------------------------------------------------------------------------------------
// 1. Sinusoidal row

fn ex1_sinusoidal_row(rng: &mut ChaCha8Rng) -> LearnResult<Built> {
    let p = f64::from(rng.random_range(2..=40u32));
    let dim = pick(rng, &[4usize, 6, 8]);
    let base = 10_000.0;
    let il = SinusoidalLayout::Interleaved;
    let expected = sin_row(p, dim, base, il)?;
    let freqs = sinusoidal::frequencies(dim, base, il)?;
    let slowest = 2.0 * PI / freqs.last().copied().unwrap_or(1.0);
    let variants = vec![
        variant(
            "concat_layout",
            "You wrote all the sines first and then all the cosines: that is the concatenated \
             [sin | cos] layout (Marian, Pegasus). This table is interleaved: sin, cos, sin, cos, ...",
            sin_row(p, dim, base, SinusoidalLayout::Concat)?,
        ),
        variant(
            "sin_cos_swapped",
            "You used cos where sin belongs: column 2i holds sin(p*w_i) and column 2i+1 holds \
             cos(p*w_i).",
            swap_pairs(&expected),
        ),
        variant(
            "degrees",
            "You used degrees: the angle p*w_i is in radians (sin(2) means 2 radians).",
            sin_row(p * PI / 180.0, dim, base, il)?,
        ),
        variant(
            "exponent_i_over_d",
            "Your frequencies are base^(-i/d): pair i uses w_i = base^(-2i/d) (the exponent counts \
             dimensions, two per pair).",
            sin_row(p, dim, base.sqrt(), il)?,
        ),
        variant(
            "off_by_one",
            format!(
                "Off by one: you computed the row of position {} (counting from 1). Positions \
                 start at 0, so position {p} is row {p}.",
                p - 1.0
            ),
            sin_row(p - 1.0, dim, base, il)?,
        ),
        variant(
            "off_by_one",
            format!("Off by one: you computed the row of position {}.", p + 1.0),
            sin_row(p + 1.0, dim, base, il)?,
        ),
    ];
    let pe = |q: f64| sin_row(q, dim, base, il);
    let d_near = dot(&pe(5.0)?, &pe(3.0)?);
    let d_far = dot(&pe(1005.0)?, &pe(1003.0)?);
    let b = NumericPart {
        question: format!(
            "Compute the encoding of position p = {p}: the {dim} values of its row (angles in \
             radians)."
        ),
        shape: Shape::Vector(dim),
        integer: false,
        tolerance: 1e-3,
        expected: expected.clone(),
        variants,
        partial: None,
        generic_hint: "Check the frequencies w_i = 10000^(-2i/d) and that each pair is \
                       (sin(p*w_i), cos(p*w_i))."
            .into(),
        feedback: format!(
            "Right: posenc::sinusoidal::row({p}, {dim}, 10000, Interleaved) = {}. The first pair \
             turns once every 2*pi = 6.28 positions, the slowest once every {:.0} positions.",
            fmt_vec(&expected.iter().map(|&x| round4(x)).collect::<Vec<_>>()),
            slowest
        ),
    };
    let c = ChoicePart::new(
        rng,
        "A decoder was trained on sequences up to length L with this table. What happens past L?",
        vec![
            right(
                "Rows exist for every position, but the model has only learned to read rows \
                 0..L-1: past L it sees phase combinations it never saw, and quality usually drops",
                format!(
                    "The table is defined everywhere, the network's use of it is not: each row is \
                     a unique code (the slowest column here has a wavelength of {slowest:.0} \
                     positions), and rows past L are new inputs."
                ),
            ),
            opt(
                "Sine and cosine are periodic, so the model handles any length as well as the \
                 trained ones",
                format!(
                    "only the fast columns repeat within a sequence; the whole row never repeats \
                     (its slowest column has a wavelength of {slowest:.0} positions), so long \
                     positions are inputs the network has never seen."
                ),
                "periodic_means_generalises",
            ),
            opt(
                "Attention scores depend only on the distance i - j, as with RoPE",
                format!(
                    "PE(i).PE(j) alone depends only on i - j (posenc: PE(5).PE(3) = {d_near:.6}, \
                     PE(1005).PE(1003) = {d_far:.6}), but the table is added to the token \
                     embeddings and projected by W_q and W_k, which mixes content and absolute \
                     position: the scores are not shift-invariant."
                ),
                "confused_with_relative",
            ),
            opt(
                "A position past the training length raises an error",
                "that is a learned table (looking up a row past its last one fails); a \
                 sinusoidal row exists for every real position.",
                "confused_with_learned",
            ),
        ],
    );
    Ok(Built {
        exercise: 1,
        seed: 0,
        setup: format!(
            "A sinusoidal position table (Vaswani et al., interleaved layout): with d = {dim} and \
             w_i = 10000^(-2i/d), column 2i of row p holds sin(p*w_i) and column 2i+1 holds \
             cos(p*w_i)."
        ),
        data: json!({"position": p, "dim": dim, "base": base, "layout": "interleaved",
                     "frequencies": freqs}),
        a: entry_part(
            rng,
            "sinusoidal",
            sinusoidal::ENTRY,
            "the sin/cos row of each position is added to its token embedding before the first \
             layer, so later layers see absolute positions mixed into the content",
        ),
        b: NumberPart::Numeric(b),
        c,
    })
}

// ------------------------------------------------------------------------------------------
// 2. Token + position (learned table with a model's row offset)

fn ex2_token_plus_position(rng: &mut ChaCha8Rng) -> LearnResult<Built> {
    const ROWS: usize = 10;
    const DIM: usize = 4;
    const T: usize = 3;
    let offset = pick(rng, &[0u64, 2]);
    let start = rng.random_range(1..=3u64);
    let table_vals = tenths(rng, -9, 9, ROWS * DIM);
    let tokens = tenths(rng, -9, 9, T * DIM);
    let table = LearnedTable::new(ROWS, DIM, f32s(&table_vals))?;
    let scheme = Scheme::Learned(table.clone());
    let add = |positions: &[u64]| -> LearnResult<Vec<f64>> {
        let mut h = f32s(&tokens);
        add_absolute_positions(&mut h, positions, &scheme)?;
        Ok(f64s(&h))
    };
    let rows_for = |first: u64| -> Vec<u64> { (0..T as u64).map(|t| first + t).collect() };
    let expected = add(&rows_for(start + offset))?;
    let mut variants = vec![
        variant(
            "forgot_position",
            "You gave back the token embeddings unchanged: the position row must be added to \
             each token.",
            tokens.clone(),
        ),
        variant(
            "ignored_start",
            format!(
                "You numbered these tokens from 0, but they follow {start} earlier tokens: their \
                 positions are {start}, {}, {}.",
                start + 1,
                start + 2
            ),
            add(&rows_for(offset))?,
        ),
        variant(
            "off_by_one",
            "Off by one: each token read the row just before its own.",
            add(&rows_for(start + offset - 1))?,
        ),
        variant(
            "off_by_one",
            "Off by one: each token read the row just after its own.",
            add(&rows_for(start + offset + 1))?,
        ),
        variant(
            "same_position",
            "Every token got the same position row: each token gets the row of its own position.",
            add(&[start + offset; T])?,
        ),
    ];
    if offset > 0 {
        variants.push(variant(
            "forgot_offset",
            format!(
                "You forgot the model's row offset: position p reads row p + {offset} in this \
                 (OPT-style) table."
            ),
            add(&rows_for(start))?,
        ));
    }
    let style = if offset > 0 {
        format!(
            "The table is OPT-style: position p reads row p + {offset} (Hugging Face's \
             OPTLearnedPositionalEmbedding keeps {offset} extra rows)."
        )
    } else {
        "Position p reads row p (BERT / GPT-2 style).".to_string()
    };
    let missing = table
        .lookup(ROWS as u64)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    let b = NumericPart {
        question: format!(
            "The {T} tokens below sit at positions {start}, {}, {} ({start} tokens came before \
             them). Compute the input of the first layer: the {T} x {DIM} matrix of token \
             embedding + position embedding.",
            start + 1,
            start + 2
        ),
        shape: Shape::Matrix(T, DIM),
        integer: false,
        tolerance: 1e-3,
        expected: expected.clone(),
        variants,
        partial: None,
        generic_hint: "Add to each token row the table row of its position, element by element."
            .into(),
        feedback: format!(
            "Right: posenc::attention::add_absolute_positions with this table gives {}. Every later \
             layer sees position only through these sums.",
            fmt_rows(&expected.iter().map(|&x| round4(x)).collect::<Vec<_>>(), DIM)
        ),
    };
    let c = ChoicePart::new(
        rng,
        format!(
            "This table has {ROWS} rows. What happens when the model gets a token whose row would \
             be {ROWS} or more?"
        ),
        vec![
            right(
                "There is no row for it: the position cannot be encoded, and the table must be \
                 extended and the model fine-tuned",
                format!(
                    "A learned table has exactly the rows it was trained with. posenc refuses \
                     rather than clamping: lookup({ROWS}) gives \"{missing}\". Hugging Face raises \
                     an index error."
                ),
            ),
            opt(
                "Positions past the end reuse the last row, and the model works as before",
                format!(
                    "clamping would give several tokens the same position; posenc returns an \
                     error instead (\"{missing}\")."
                ),
                "assumed_clamping",
            ),
            opt(
                "The model extrapolates the learned rows smoothly, like a sinusoid",
                "learned rows are free parameters with no formula, so nothing defines the next \
                 row. Stretching the table by interpolation gives rows the model was never \
                 trained on.",
                "assumed_extrapolation",
            ),
            opt(
                "Nothing changes, because position only matters in the first layer",
                "position enters only at the first layer, but stays mixed into the hidden states \
                 of every later layer; and without a row there is nothing to add.",
                "first_layer_only",
            ),
        ],
    );
    Ok(Built {
        exercise: 2,
        seed: 0,
        setup: format!(
            "A learned absolute position table with {ROWS} rows of width {DIM} is added to the \
             token embeddings. {style} Table rows (row 0 first): {}. Token embeddings: {}.",
            fmt_rows(&table_vals, DIM),
            fmt_rows(&tokens, DIM)
        ),
        data: json!({"table": rows_json(&table_vals, DIM), "tokens": rows_json(&tokens, DIM),
                     "row_offset": offset, "first_position": start}),
        a: entry_part(rng, "learned absolute", posenc::learned::ENTRY, LEARNED_HOW),
        b: NumberPart::Numeric(b),
        c,
    })
}

// ------------------------------------------------------------------------------------------
// 3. Relative distances (Shaw clipping)

fn ex3_relative_distances(rng: &mut ChaCha8Rng) -> LearnResult<Built> {
    let len = rng.random_range(4..=5usize);
    let k = rng.random_range(1..=2usize);
    let matrix = |kk: usize, shift: bool, flip: bool| -> Vec<f64> {
        let mut out = Vec::with_capacity(len * len);
        for i in 0..len as i64 {
            for j in 0..len as i64 {
                let (q, key) = if flip { (j, i) } else { (i, j) };
                let idx = shaw_index(q, key, kk) as f64;
                out.push(if shift { idx - kk as f64 } else { idx });
            }
        }
        out
    };
    let expected = matrix(k, true, false);
    let variants = vec![
        variant(
            "sign_flipped",
            "Sign of key-query flipped: you wrote query - key. Shaw et al. use key - query, so \
             keys after the query are positive.",
            matrix(k, true, true),
        ),
        variant(
            "no_clipping",
            format!("You forgot to clip: every distance is limited to -{k}..{k}."),
            matrix(len, true, false),
        ),
        variant(
            "row_index",
            format!(
                "You wrote the table row index clip(j - i) + {k} (what shaw_index returns), not \
                 the distance itself."
            ),
            matrix(k, false, false),
        ),
        variant(
            "sign_flipped",
            "Two mistakes: the sign is flipped (use key - query) and the distances are not clipped.",
            matrix(len, true, true),
        ),
    ];
    let far = shaw_index(0, 100, k);
    let near_edge = shaw_index(0, k as i64, k);
    let b = NumericPart {
        question: format!(
            "Write the {len} x {len} matrix of clipped relative positions clip(j - i, -{k}, {k}): \
             row i = query position, column j = key position, both 0..{}.",
            len - 1
        ),
        shape: Shape::Matrix(len, len),
        integer: true,
        tolerance: 0.0,
        expected: expected.clone(),
        variants,
        partial: None,
        generic_hint: "Entry (i, j) is the key position minus the query position, then limited \
                       to the range."
            .into(),
        feedback: format!(
            "Right: posenc::relative::shaw_index_matrix gives these plus {k}, the row of each \
             pair in the 2k+1 = {} learned vectors a^K and a^V.",
            2 * k + 1
        ),
    };
    let c = ChoicePart::new(
        rng,
        format!(
            "Shaw et al. clip distances at k (here {k}). A model trained on short sequences is run \
             on long ones. What happens?"
        ),
        vec![
            right(
                "It runs at any length: every distance beyond k uses the edge vector, so far \
                 tokens are just 'far'; only distances up to k are told apart",
                format!(
                    "Clipping gives every distance a vector: posenc shaw_index(0, 100, {k}) = \
                     {far} = shaw_index(0, {k}, {k}) = {near_edge}."
                ),
            ),
            opt(
                "It fails past the training length because long distances have no vector",
                "clipping guarantees a vector for every distance: the edge row.",
                "assumed_no_vector",
            ),
            opt(
                "It tells any two distances apart, since each has its own vector",
                format!("distances beyond {k} share one vector (row {far})."),
                "ignored_clipping",
            ),
            opt(
                "It is an absolute scheme in disguise",
                format!(
                    "it depends only on j - i: shaw_index(3, 5, {k}) = {} = shaw_index(103, 105, \
                     {k}) = {}.",
                    shaw_index(3, 5, k),
                    shaw_index(103, 105, k)
                ),
                "confused_absolute",
            ),
        ],
    );
    Ok(Built {
        exercise: 3,
        seed: 0,
        setup: format!(
            "Shaw et al. (2018) give each clipped distance clip(j - i, -k, k) its own learned \
             vectors, added to the keys and values inside attention. Here k = {k} and {len} tokens."
        ),
        data: json!({"len": len, "k": k}),
        a: entry_part(
            rng,
            "Shaw relative",
            posenc::relative::ENTRY,
            "Shaw et al. add learned vectors a_K and a_V for the clipped offset clip(j - i, -k, \
             k) to the key and the value inside attention: the score of query i and key j gains \
             q_i.a_K, a term that depends only on the offset, and the output gains the weighted \
             a_V; nothing is added to the hidden states",
        ),
        b: NumberPart::Numeric(b),
        c,
    })
}

// ------------------------------------------------------------------------------------------
// 4. T5 bucket bias added to the scores

fn ex4_relative_bias(rng: &mut ChaCha8Rng) -> LearnResult<Built> {
    const L: usize = 3;
    const D: usize = 2;
    let buckets = T5Buckets {
        bidirectional: true,
        num_buckets: 8,
        max_distance: 16,
    };
    let q = ints(rng, -2, 2, L * D);
    let k = ints(rng, -2, 2, L * D);
    let table = tenths(rng, -20, 20, buckets.num_buckets);
    let heads = HeadConfig::mha(1, D)?;
    let t5 = Scheme::T5 {
        bias_table: f32s(&table),
        buckets,
    };
    let zeros = vec![0.0f32; L * D];
    let pos: Vec<u64> = (0..L as u64).collect();
    let rev: Vec<u64> = pos.iter().rev().copied().collect();
    let weights = |scheme: &Scheme, qp: &[u64], scale: Option<f64>| -> LearnResult<Vec<f64>> {
        let out = attention(
            &heads,
            &f32s(&q),
            &f32s(&k),
            &zeros,
            qp,
            qp,
            scheme,
            &Mask::none(),
            &AttentionOptions {
                scale,
                return_weights: true,
            },
        )?;
        Ok(f64s(&out.weights.unwrap_or_default()))
    };
    let expected = weights(&t5, &pos, Some(1.0))?;
    let bias = f64s(&t5_bias(&f32s(&table), 1, L, L, 0, &buckets)?);
    let plain = weights(&Scheme::NoPe, &pos, Some(1.0))?;
    let after: Vec<f64> = plain.iter().zip(&bias).map(|(w, b)| w + b).collect();
    let scores = f64s(&attention_scores(
        &heads,
        &f32s(&q),
        &f32s(&k),
        &pos,
        &pos,
        &t5,
        Some(1.0),
    )?);
    let variants = vec![
        variant(
            "bias_after_softmax",
            "You added the bias after softmax: the bias goes into the scores, then softmax \
             (weights always sum to 1 per row).",
            after,
        ),
        variant(
            "sign_flipped",
            "Sign of key-query flipped: T5 buckets relative_position = key - query (keys after the \
             query use the upper buckets).",
            // Reversed positions turn key - query into query - key for the same tokens.
            weights(&t5, &rev, Some(1.0))?,
        ),
        variant(
            "scaled_scores",
            "You scaled q.k by 1/sqrt(d): T5 does not (its scale is 1).",
            weights(&t5, &pos, None)?,
        ),
        variant(
            "forgot_bias",
            "You left out the position bias: these are the weights of q.k alone.",
            plain,
        ),
        variant(
            "no_softmax",
            "These are the biased scores; the question asks for the weights: apply softmax to \
             each row.",
            scores,
        ),
    ];
    let bucket_of: Vec<(i64, usize)> = (-(L as i64 - 1)..=(L as i64 - 1))
        .map(|rp| Ok((rp, t5_bucket(rp, true, 8, 16)?)))
        .collect::<LearnResult<_>>()?;
    let bucket_text = bucket_of
        .iter()
        .map(|(rp, b)| format!("{rp:+} -> {b}"))
        .collect::<Vec<_>>()
        .join(", ");
    let far_a = t5_bucket(16, true, 8, 16)?;
    let far_b = t5_bucket(1000, true, 8, 16)?;
    let b = NumericPart {
        question: format!(
            "Compute the {L} x {L} attention weights: score(i, j) = q_i.k_j + bias[bucket(j - i)], \
             softmax over each row (no mask)."
        ),
        shape: Shape::Matrix(L, L),
        integer: false,
        tolerance: 1e-3,
        expected: expected.clone(),
        variants,
        partial: None,
        generic_hint: "Build the 3 x 3 scores first (dot product plus the bias of the pair's \
                       bucket), then exponentiate and normalise each row."
            .into(),
        feedback: format!(
            "Right: posenc::attention::attention with Scheme::T5 and scale 1 gives {}.",
            fmt_rows(&expected.iter().map(|&x| round4(x)).collect::<Vec<_>>(), L)
        ),
    };
    let c = ChoicePart::new(
        rng,
        "T5 buckets distances logarithmically up to max_distance (16 here, 128 in T5). What does \
         that mean on long inputs?",
        vec![
            right(
                "Every distance >= max_distance shares one bucket: the model runs at any length \
                 but cannot tell far distances apart; near distances get exact buckets",
                format!(
                    "posenc: bucket(+16) = {far_a} = bucket(+1000) = {far_b} with these settings."
                ),
            ),
            opt(
                "Inputs longer than the training length cannot be processed: their distances \
                 have no bucket",
                format!("every distance has a bucket: far ones share the last (bucket {far_b})."),
                "assumed_no_bucket",
            ),
            opt(
                "Each distance has its own learned bias, so positions are as precise at 1000 \
                 tokens as at 3",
                "only distances below max_exact get their own bucket; larger ones are grouped \
                 logarithmically and everything past max_distance is one bucket.",
                "ignored_log_buckets",
            ),
            opt(
                "The bias is added after softmax, so it only rescales the weights",
                format!(
                    "it is added to the scores before softmax (position {}).",
                    posenc::relative::ENTRY.describe()
                ),
                "bias_after_softmax",
            ),
        ],
    );
    Ok(Built {
        exercise: 4,
        seed: 0,
        setup: format!(
            "One T5 encoder head (bidirectional buckets, num_buckets = 8, max_distance = 16) with \
             head size {D}. T5 does not scale scores by 1/sqrt(d). Queries q (rows): {}. Keys k: \
             {}. Bias per bucket 0..7: {}. Bucket of each relative position j - i (T5's \
             bucketing, computed by posenc): {bucket_text}.",
            fmt_rows(&q, D),
            fmt_rows(&k, D),
            fmt_vec(&table)
        ),
        data: json!({"q": rows_json(&q, D), "k": rows_json(&k, D), "bias_table": table,
                     "buckets": buckets,
                     "bucket_of_relative_position":
                         bucket_of.iter().map(|(rp, b)| json!({"relative_position": rp, "bucket": b}))
                             .collect::<Vec<_>>()}),
        a: entry_part(
            rng,
            "T5 relative bias",
            posenc::relative::ENTRY,
            "T5 adds one learned number per bucket of the offset j - i to each score, before \
             softmax",
        ),
        b: NumberPart::Numeric(b),
        c,
    })
}

// ------------------------------------------------------------------------------------------
// 5. RoPE rotation and norm

fn rope_freqs(head_dim: usize) -> LearnResult<RopeFrequencies> {
    Ok(RopeParams::new(10_000.0, head_dim)?.frequencies(None, Precision::Exact)?)
}

/// The same frequencies read as degrees per position (the "used degrees" mistake).
fn degree_freqs(f: &RopeFrequencies) -> RopeFrequencies {
    RopeFrequencies {
        inv_freq: f.inv_freq.iter().map(|w| w * PI / 180.0).collect(),
        ..f.clone()
    }
}

/// Rotates `x` by `position` with the library; `swap` exchanges the cos and sin rows.
fn rotate(
    x: &[f64],
    position: i64,
    freqs: &RopeFrequencies,
    layout: RopeLayout,
    swap: bool,
) -> LearnResult<Vec<f64>> {
    let n = freqs.pairs();
    let (mut c, mut s) = (vec![0.0f32; n], vec![0.0f32; n]);
    if position >= 0 {
        cos_sin_row(freqs, position as u64, &mut c, &mut s)?;
    } else {
        rotation_row(freqs, position, &mut c, &mut s)?;
    }
    if swap {
        std::mem::swap(&mut c, &mut s);
    }
    let mut v = f32s(x);
    apply_rotary(&mut v, &c, &s, layout)?;
    Ok(f64s(&v))
}

fn with_norm(mut v: Vec<f64>) -> Vec<f64> {
    let n = norm(&v);
    v.push(n);
    v
}

fn nonzero_ints(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
    loop {
        let v = ints(rng, -3, 3, n);
        if v.iter().filter(|x| **x != 0.0).count() >= n.div_ceil(2) {
            return v;
        }
    }
}

fn ex5_rope_rotation(rng: &mut ChaCha8Rng) -> LearnResult<Built> {
    const D: usize = 4;
    let x = nonzero_ints(rng, D);
    let p = rng.random_range(2..=20i64);
    let freqs = rope_freqs(D)?;
    let hs = RopeLayout::HalfSplit;
    let rotated = rotate(&x, p, &freqs, hs, false)?;
    let expected = with_norm(rotated.clone());
    let inverse = {
        let n = freqs.pairs();
        let (mut c, mut s) = (vec![0.0f32; n], vec![0.0f32; n]);
        cos_sin_row(&freqs, p as u64, &mut c, &mut s)?;
        let mut v = f32s(&x);
        apply_rotary_inverse(&mut v, &c, &s, hs)?;
        f64s(&v)
    };
    let variants = vec![
        variant(
            "interleaved_layout",
            "You used the interleaved layout, pairing (x0, x1) and (x2, x3) (GPT-J, Meta's Llama \
             code). Hugging Face's half-split layout pairs x[i] with x[i + d/2]: (x0, x2) and (x1, x3).",
            with_norm(rotate(&x, p, &freqs, RopeLayout::Interleaved, false)?),
        ),
        variant(
            "rotation_sign_flipped",
            "You rotated by -p*theta: the rotation is (a cos - b sin, a sin + b cos).",
            with_norm(inverse),
        ),
        variant(
            "sin_cos_swapped",
            "You used sin where cos belongs: (a, b) -> (a cos(phi) - b sin(phi), a sin(phi) + b cos(phi)).",
            with_norm(rotate(&x, p, &freqs, hs, true)?),
        ),
        variant(
            "degrees",
            "You used degrees: the angle p*theta_i is in radians.",
            with_norm(rotate(&x, p, &degree_freqs(&freqs), hs, false)?),
        ),
        variant(
            "off_by_one",
            format!("Off by one: you rotated to position {} instead of {p}.", p - 1),
            with_norm(rotate(&x, p - 1, &freqs, hs, false)?),
        ),
        variant(
            "off_by_one",
            format!("Off by one: you rotated to position {} instead of {p}.", p + 1),
            with_norm(rotate(&x, p + 1, &freqs, hs, false)?),
        ),
    ];
    let n0 = norm(&x);
    let n1 = norm(&rotated);
    let n_far = norm(&rotate(&x, 100_000, &freqs, hs, false)?);
    let b = NumericPart {
        question: format!(
            "Rotate x = {} to position p = {p} and give the rotated vector followed by its norm \
             ({} numbers).",
            fmt_vec(&x),
            D + 1
        ),
        shape: Shape::Vector(D + 1),
        integer: false,
        tolerance: 1e-3,
        expected: expected.clone(),
        variants,
        partial: Some((
            D,
            "norm_not_preserved",
            format!(
                "The rotated vector is right but its norm is not: compute sqrt of the sum of \
                 squares. A rotation preserves the norm, so it equals the norm of x ({n0:.4})."
            ),
        )),
        generic_hint: "Pair i = (x[i], x[i+2]) turns by the angle p*theta_i: (a, b) -> \
                       (a cos - b sin, a sin + b cos)."
            .into(),
        feedback: format!(
            "Right: posenc::rope::apply_rotary gives {}; norm before {n0:.6}, after {n1:.6} (a \
             rotation changes angles, not lengths).",
            fmt_vec(&rotated.iter().map(|&v| round4(v)).collect::<Vec<_>>())
        ),
    };
    let c = ChoicePart::new(
        rng,
        "RoPE rotations preserve the norms of q and k. What follows for the model?",
        vec![
            right(
                "Position changes only the angles between q and k, not their lengths: content \
                 strength is kept and position acts as a phase in the score",
                format!(
                    "Each pair contributes |q_i||k_i|cos(phase + (n - m)theta_i): posenc gives \
                     |x| = {n0:.6}, |R({p})x| = {n1:.6}, |R(100000)x| = {n_far:.6}."
                ),
            ),
            opt(
                "Far-away tokens get shorter keys, which is how RoPE makes attention decay with \
                 distance",
                format!(
                    "|R(p)k| = |k| at every p (posenc: {n0:.6} at 0, {n_far:.6} at 100000); any \
                     decay with distance comes from averaging many rotating pairs, not from \
                     shrinking vectors."
                ),
                "norm_decay",
            ),
            opt(
                "Values are rotated too, so the outputs carry position directly",
                format!(
                    "only q and k are rotated (position {}); values pass through.",
                    posenc::rope::ENTRY.describe()
                ),
                "values_rotated",
            ),
            opt(
                "Since norms do not change, the scores do not depend on position",
                "the angle between R(m)q and R(n)k changes with n - m, and with it the score.",
                "no_position",
            ),
        ],
    );
    Ok(Built {
        exercise: 5,
        seed: 0,
        setup: format!(
            "RoPE with head size {D}, base 10000: inverse frequencies theta = {} (posenc). \
             Hugging Face's half-split layout: pair i is (x[i], x[i + {}]), rotated by the angle \
             p*theta_i: (a, b) -> (a cos - b sin, a sin + b cos).",
            fmt_vec(&freqs.inv_freq),
            D / 2
        ),
        data: json!({"x": x, "position": p, "inv_freq": freqs.inv_freq, "layout": "half_split"}),
        a: entry_part(rng, "RoPE", posenc::rope::ENTRY, ROPE_HOW),
        b: NumberPart::Numeric(b),
        c,
    })
}

// ------------------------------------------------------------------------------------------
// 6. RoPE identity in 2D

fn ex6_rope_identity(rng: &mut ChaCha8Rng) -> LearnResult<Built> {
    const D: usize = 2;
    let q = nonzero_ints(rng, D);
    let k = nonzero_ints(rng, D);
    let m = rng.random_range(0..=12i64);
    let mut n = rng.random_range(0..=12i64);
    if n == m {
        n = (m + 3) % 13;
    }
    let freqs = rope_freqs(D)?;
    let hs = RopeLayout::HalfSplit;
    let heads = HeadConfig::mha(1, D)?;
    let rope = Scheme::Rope {
        freqs: freqs.clone(),
        layout: hs,
    };
    let lib_score = |pm: u64, pn: u64| -> LearnResult<f64> {
        let s = attention_scores(&heads, &f32s(&q), &f32s(&k), &[pm], &[pn], &rope, Some(1.0))?;
        Ok(s.first().copied().map(f64::from).unwrap_or(f64::NAN))
    };
    let score = |f: &RopeFrequencies, swap: bool| -> LearnResult<f64> {
        Ok(dot(
            &rotate(&q, m, f, hs, swap)?,
            &rotate(&k, n, f, hs, swap)?,
        ))
    };
    let offset = |f: &RopeFrequencies, delta: i64, swap: bool| -> LearnResult<f64> {
        Ok(dot(&q, &rotate(&k, delta, f, hs, swap)?))
    };
    let s1 = lib_score(m as u64, n as u64)?;
    let s2 = offset(&freqs, n - m, false)?;
    let expected = vec![s1, s2];
    let deg = degree_freqs(&freqs);
    let variants = vec![
        variant(
            "sign_flipped",
            format!(
                "Sign of key-query flipped: your second score rotates k by m - n = {}. The \
                 identity uses the key's offset from the query, n - m = {}.",
                m - n,
                n - m
            ),
            vec![s1, offset(&freqs, m - n, false)?],
        ),
        variant(
            "degrees",
            "You used degrees: theta = 1 means 1 radian per position.",
            vec![score(&deg, false)?, offset(&deg, n - m, false)?],
        ),
        variant(
            "sin_cos_swapped",
            "You used cos where sin belongs in the rotation matrix [[cos, -sin], [sin, cos]].",
            vec![score(&freqs, true)?, offset(&freqs, n - m, true)?],
        ),
        variant(
            "forgot_offset_rotation",
            "Your second score is q.k without rotation: rotate k by the offset n - m first.",
            vec![s1, dot(&q, &k)],
        ),
    ];
    let s_far = lib_score(m as u64 + 1000, n as u64 + 1000)?;
    let s_rev = offset(&freqs, m - n, false)?;
    let b = NumericPart {
        question: format!(
            "With q = {}, k = {}, m = {m}, n = {n}: compute s1 = <R(m)q, R(n)k> and s2 = <q, \
             R(n - m)k>. Answer: s1, s2.",
            fmt_vec(&q),
            fmt_vec(&k)
        ),
        shape: Shape::Vector(2),
        integer: false,
        tolerance: 1e-3,
        expected,
        variants,
        partial: None,
        generic_hint: "R(a) = [[cos a, -sin a], [sin a, cos a]] with a = position * theta and \
                       theta = 1; both numbers should be equal."
            .into(),
        feedback: format!(
            "Right: s1 = s2 = {s1:.6}. posenc::attention::attention_scores with RoPE gives \
             {s_far:.6} at ({}, {}): same offset, same score.",
            m + 1000,
            n + 1000
        ),
    };
    let c = ChoicePart::new(
        rng,
        "<R(m)q, R(n)k> = <q, R(n - m)k> for every m and n. What does this buy an LLM?",
        vec![
            right(
                "Scores depend only on the offset n - m: a pattern learned at one place works \
                 everywhere, and cached keys rotated once stay valid as the sequence grows",
                format!(
                    "posenc: score at ({m}, {n}) = {s1:.6}, at ({}, {}) = {s_far:.6}.",
                    m + 1000,
                    n + 1000
                ),
            ),
            opt(
                "Any distance works without training, so RoPE models extrapolate to any length",
                "offsets larger than any seen in training give angles the slow pairs never \
                 reached; models degrade past their training length unless scaled (PI, NTK, YaRN).",
                "assumed_extrapolation",
            ),
            opt(
                "Cached keys must be re-rotated at every decode step because the query moved",
                "the key is rotated once by its own position; the query's rotation supplies the \
                 rest (that is the identity).",
                "rerotate_cache",
            ),
            opt(
                "The model can no longer tell which token comes first",
                format!(
                    "the offset is signed: <q, R(n - m)k> = {s2:.6} but <q, R(m - n)k> = \
                     {s_rev:.6} here."
                ),
                "sign_lost",
            ),
        ],
    );
    Ok(Built {
        exercise: 6,
        seed: 0,
        setup: format!(
            "One RoPE pair (head size 2, base 10000, so theta = {} rad per position). R(a) \
             rotates a 2-vector by the angle a*theta: R(a) = [[cos, -sin], [sin, cos]].",
            freqs.inv_freq.first().copied().unwrap_or(f64::NAN)
        ),
        data: json!({"q": q, "k": k, "m": m, "n": n, "theta": freqs.inv_freq}),
        a: entry_part(rng, "RoPE", posenc::rope::ENTRY, ROPE_HOW),
        b: NumberPart::Numeric(b),
        c,
    })
}

// ------------------------------------------------------------------------------------------
// 7. ALiBi matrix

fn ex7_alibi_matrix(rng: &mut ChaCha8Rng) -> LearnResult<Built> {
    let heads = pick(rng, &[4usize, 6, 8, 12, 16]);
    let h = rng.random_range(0..heads);
    let len = rng.random_range(3..=5usize);
    let slopes = alibi::slopes(heads)?;
    let per = len * len;
    let head_bias = |s: &[f64], symmetric: bool, head: usize| -> LearnResult<Vec<f64>> {
        let all = alibi::bias(s, len, len, 0, symmetric)?;
        Ok(f64s(all.get(head * per..(head + 1) * per).unwrap_or(&[])))
    };
    let m = slopes[h];
    let expected = head_bias(&slopes, false, h)?;
    let negated: Vec<f64> = slopes.iter().map(|s| -s).collect();
    let mut variants = vec![
        variant(
            "sign_flipped",
            "Bias sign flipped: ALiBi subtracts m*(i - j), so farther keys get more negative \
             scores.",
            head_bias(&negated, false, h)?,
        ),
        variant(
            "symmetric",
            "You filled the keys after the query with -m*|i - j| (the symmetric encoder form). \
             In the causal form those entries are 0: hiding them is the causal mask's job.",
            head_bias(&slopes, true, h)?,
        ),
    ];
    for other in [h.wrapping_sub(1), h + 1] {
        if let Some(&s) = slopes.get(other) {
            variants.push(variant(
                "wrong_head",
                format!(
                    "You used the slope of head {other}: heads count from 0, and head 0 has the \
                     largest slope."
                ),
                head_bias(&[s], false, 0)?,
            ));
        }
    }
    let window = |s: f64| alibi::effective_window(s, 0.01);
    let last = slopes.last().copied().unwrap_or(m);
    let (w_first, w_last, w_h) = (window(slopes[0])?, window(last)?, window(m)?);
    let b = NumericPart {
        question: format!(
            "Write the causal ALiBi bias of head h = {h} (of {heads} heads) for {len} tokens: row \
             i = query, column j = key; entries for keys after the query are 0."
        ),
        shape: Shape::Matrix(len, len),
        integer: false,
        tolerance: 1e-4,
        expected,
        variants,
        partial: None,
        generic_hint: "Find head h's slope m first, then entry (i, j) is -m*(i - j) for j <= i."
            .into(),
        feedback: format!(
            "Right: posenc::alibi::bias. Head {h}'s slope is m = {m}; its bias reaches ln(0.01) \
             (1% of the weight) at {w_h:.0} tokens (posenc::alibi::effective_window)."
        ),
    };
    let c = ChoicePart::new(
        rng,
        "ALiBi subtracts m * distance from each score. What does this mean for long-context \
         retrieval?",
        vec![
            right(
                "Far keys are penalised linearly: even the flattest head loses a key far back, so \
                 facts far from the question are hard to retrieve although any length runs",
                format!(
                    "With {heads} heads the flattest slope is {last}: a key {w_last:.0} tokens \
                     back gets 1% of the weight of an equal-score key at distance 0."
                ),
            ),
            opt(
                "ALiBi cannot run past its training length",
                "it runs at any length: the bias is defined for every distance (which is why its \
                 perplexity extrapolates).",
                "assumed_length_limit",
            ),
            opt(
                "All heads look equally far",
                format!(
                    "slopes form a geometric sequence: head 0 (m = {}) reaches 1% at {w_first:.0} \
                     tokens, the last head (m = {last}) at {w_last:.0}.",
                    slopes[0]
                ),
                "same_slopes",
            ),
            opt(
                "The bias is added after softmax, so far tokens keep their weight",
                format!(
                    "it is added to the scores before softmax (position {}): that turns -m*d \
                     into a factor e^(-m*d) on the weight.",
                    alibi::ENTRY.describe()
                ),
                "bias_after_softmax",
            ),
        ],
    );
    Ok(Built {
        exercise: 7,
        seed: 0,
        setup: format!(
            "ALiBi (Press et al.) adds -m_h*(i - j) to the score of query i and key j <= i. \
             Slopes: for n heads with n a power of two, head h (from 0) has m_h = 2^(-8(h+1)/n). \
             Otherwise, with p the largest power of two below n: the p slopes of the p-head rule, \
             then every other slope (the 1st, 3rd, ...) of the 2p-head rule until n slopes. Here \
             n = {heads}."
        ),
        data: json!({"heads": heads, "head": h, "len": len}),
        a: entry_part(rng, "ALiBi", alibi::ENTRY, ALIBI_HOW),
        b: NumberPart::Numeric(b),
        c,
    })
}

// ------------------------------------------------------------------------------------------
// 8. Learned table parameter count

fn ex8_learned_parameters(rng: &mut ChaCha8Rng) -> LearnResult<Built> {
    let (style, offset, vocab) = pick(
        rng,
        &[
            ("BERT", 0usize, 30_522usize),
            ("GPT-2", 0, 50_257),
            ("OPT", 2, 50_272),
        ],
    );
    let max_pos = pick(rng, &[128usize, 256, 512, 1024, 2048]);
    let dim = pick(rng, &[64usize, 128, 256, 512, 768, 1024]);
    let rows = max_pos + offset;
    // Parameters of one row (posenc's LearnedTable::parameter_count), times the rows: building
    // the full tables (a vocabulary-sized one for a wrong variant) would allocate up to 200 MB.
    let per_row = LearnedTable::new(1, dim, vec![0.0; dim])?.parameter_count() as f64;
    let count = |r: usize, _d: usize| -> LearnResult<f64> { Ok(per_row * r as f64) };
    let expected = count(rows, dim)?;
    let mut variants = vec![
        variant(
            "counted_bias",
            "You counted bias parameters (or one row too many): a position table is a lookup \
             (nn.Embedding) with exactly one row per position and no bias.",
            vec![expected + dim as f64],
        ),
        variant(
            "counted_token_embeddings",
            "You also counted the token embeddings (vocabulary x width): only the position table \
             is asked for.",
            vec![count(rows + vocab, dim)?],
        ),
        variant(
            "rows_only",
            "You counted rows only: each row holds a vector of the model width.",
            vec![rows as f64],
        ),
        variant(
            "off_by_one",
            "Off by one row: count the rows exactly.",
            vec![count(rows - 1, dim)?],
        ),
    ];
    if offset > 0 {
        variants.push(variant(
            "forgot_offset",
            format!(
                "You forgot OPT's {offset} extra rows: the table has max_position_embeddings + \
                 {offset} rows."
            ),
            vec![count(max_pos, dim)?],
        ));
    }
    let table = LearnedTable::new(rows, 1, vec![0.0; rows])?;
    let missing = table
        .lookup(rows as u64)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    let tok = count(vocab, dim)?;
    let style_text = if offset > 0 {
        format!(
            " OPT's learned positional embedding keeps {offset} extra rows: it is an embedding of \
             max_position_embeddings + {offset} rows (Hugging Face OPTLearnedPositionalEmbedding)."
        )
    } else {
        String::new()
    };
    let b = NumericPart {
        question: "How many trainable parameters does the position table have?".into(),
        shape: Shape::Scalar,
        integer: true,
        tolerance: 0.0,
        expected: vec![expected],
        variants,
        partial: None,
        generic_hint: "A learned table is rows x width numbers.".into(),
        feedback: format!(
            "Right: posenc::learned::LearnedTable::parameter_count() = {rows} x {dim} = \
             {expected}, {:.1}% of the token embeddings ({vocab} x {dim} = {tok}).",
            100.0 * expected / tok
        ),
    };
    let c = ChoicePart::new(
        rng,
        "Why did LLMs move away from learned absolute tables?",
        vec![
            right(
                "The table fixes the longest context at training time and only its trained rows \
                 mean anything; parameter-free schemes (RoPE, ALiBi) can at least run and be \
                 scaled past the training length",
                format!(
                    "Here the last row is {}: posenc's lookup({rows}) gives \"{missing}\".",
                    rows - 1
                ),
            ),
            opt(
                "Looking up a row is too slow",
                "a lookup copies one row per token; cost is not the issue.",
                "speed",
            ),
            opt(
                "A learned table cannot represent token order",
                "it can: each position has its own vector; BERT and GPT-2 work well inside their \
                 tables.",
                "no_order",
            ),
            opt(
                "They need a bias per position, which doubles the parameters",
                format!("there is no bias: the parameters are exactly rows x width = {expected}."),
                "counted_bias",
            ),
        ],
    );
    Ok(Built {
        exercise: 8,
        seed: 0,
        setup: format!(
            "A model in the style of {style}: max_position_embeddings = {max_pos}, hidden size {dim}, \
             vocabulary {vocab}. Positions come from a learned table added to the token \
             embeddings.{style_text}"
        ),
        data: json!({"style": style, "max_position_embeddings": max_pos, "hidden_size": dim,
                     "vocab_size": vocab, "row_offset": offset}),
        a: entry_part(rng, "learned absolute", posenc::learned::ENTRY, LEARNED_HOW),
        b: NumberPart::Numeric(b),
        c,
    })
}

// ------------------------------------------------------------------------------------------
// 9. Decode positions with a KV cache

/// Runs a left-padded batch through posenc's BatchKvCache: prefill, `steps` decode steps, one
/// more step; returns the positions of that last step and the final caches.
fn decode_positions(
    lengths: &[usize],
    steps: usize,
    count_padding: bool,
) -> LearnResult<(Vec<f64>, BatchKvCache)> {
    let heads = HeadConfig::mha(1, 2)?;
    let scheme = Scheme::Rope {
        freqs: rope_freqs(2)?,
        layout: RopeLayout::HalfSplit,
    };
    let batch = lengths.len();
    let width = lengths.iter().copied().max().unwrap_or(0);
    let mut cache = BatchKvCache::new(batch, &heads)?;
    let mask: Vec<bool> = lengths
        .iter()
        .flat_map(|&l| (0..width).map(move |t| count_padding || t >= width - l))
        .collect();
    let opts = AttentionOptions::default();
    let qkv = |n: usize| -> Vec<f32> { (0..n * 2).map(|i| 0.1 * (i % 7) as f32).collect() };
    cache.forward(
        &heads,
        &qkv(batch * width),
        &qkv(batch * width),
        &qkv(batch * width),
        &mask,
        &scheme,
        &opts,
    )?;
    let one = vec![true; batch];
    let mut last = Vec::new();
    for _ in 0..=steps {
        let out = cache.forward(
            &heads,
            &qkv(batch),
            &qkv(batch),
            &qkv(batch),
            &one,
            &scheme,
            &opts,
        )?;
        last = out
            .positions
            .iter()
            .map(|p| p.map_or(f64::NAN, |p| p as f64))
            .collect();
    }
    Ok((last, cache))
}

fn ex9_decode_positions(rng: &mut ChaCha8Rng) -> LearnResult<Built> {
    let batch = pick(rng, &[2usize, 3]);
    let mut lengths: Vec<usize> = (1..=7).collect();
    lengths.shuffle(rng);
    lengths.truncate(batch);
    let steps = rng.random_range(0..=3usize);
    let width = lengths.iter().copied().max().unwrap_or(1);
    let (expected, _) = decode_positions(&lengths, steps, false)?;
    let (no_cumsum, _) = decode_positions(&lengths, steps, true)?;
    let fresh = positions_from_padding_mask(&[true])
        .first()
        .copied()
        .flatten()
        .unwrap_or(0) as f64;
    let variants = vec![
        variant(
            "no_cumsum",
            "Left padding without cumsum: you numbered the padding too, so every row continues \
             from the padded width. Position ids are cumsum(mask) - 1: padding gets no position \
             and each row starts at 0 at its first real token.",
            no_cumsum,
        ),
        variant(
            "off_by_one",
            "Off by one: decode positions start at the prefix length. A row with L real tokens \
             (positions 0..L-1) gives its next token position L.",
            expected.iter().map(|p| p - 1.0).collect(),
        ),
        variant(
            "off_by_one",
            "Off by one: the next token's position equals the number of real tokens before it, \
             not one more.",
            expected.iter().map(|p| p + 1.0).collect(),
        ),
        variant(
            "all_zero",
            "Decode positions all 0: a decode call that builds position ids from its own length \
             (arange(1)) gives every new token position 0. Continue from the cache.",
            vec![fresh; batch],
        ),
    ];
    // What a wrong position does: the last token of row 0, decoded at 0 instead of its position.
    let diff = {
        let heads = HeadConfig::mha(1, 2)?;
        let scheme = Scheme::Rope {
            freqs: rope_freqs(2)?,
            layout: RopeLayout::HalfSplit,
        };
        let l = lengths[0];
        let vals: Vec<f32> = (0..2 * l)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) / 4.0)
            .collect();
        let positions: Vec<Option<u64>> = (0..l as u64).map(Some).collect();
        let mut base = KvCache::new(1, 2)?;
        base.forward(
            &heads,
            &vals,
            &vals,
            &vals,
            &positions,
            &scheme,
            &AttentionOptions::default(),
        )?;
        let tok = [0.7f32, -1.3];
        let mut right_c = base.clone();
        let right_o = right_c.forward(
            &heads,
            &tok,
            &tok,
            &tok,
            &[Some(l as u64 + 40)],
            &scheme,
            &AttentionOptions::default(),
        )?;
        let mut wrong_c = base;
        let wrong_o = wrong_c.forward(
            &heads,
            &tok,
            &tok,
            &tok,
            &[Some(0)],
            &scheme,
            &AttentionOptions::default(),
        )?;
        max_abs_diff(&f64s(&right_o.output), &f64s(&wrong_o.output))
    };
    let masks: Vec<String> = lengths
        .iter()
        .map(|&l| {
            (0..width)
                .map(|t| if t >= width - l { "1" } else { "0" })
                .collect::<Vec<_>>()
                .join("")
        })
        .collect();
    let b = NumericPart {
        question: format!(
            "Which position id does the next decode token of each row get? Answer {batch} \
             integers, row 0 first."
        ),
        shape: Shape::Vector(batch),
        integer: true,
        tolerance: 0.0,
        expected: expected.clone(),
        variants,
        partial: None,
        generic_hint: "Count the real tokens each row already holds (prompt plus decoded tokens)."
            .into(),
        feedback: format!(
            "Right: posenc::kv_cache::BatchKvCache gave positions {}: each row continues from its \
             own count of real tokens (KvCache::next_position), whatever its padding.",
            fmt_vec(&expected)
        ),
    };
    let c = ChoicePart::new(
        rng,
        "What happens if a RoPE model with a KV cache decodes with wrong position ids (say all 0)?",
        vec![
            right(
                "Nothing fails: the new token's query and key are rotated to the wrong angle, so \
                 its output silently differs from a full forward pass and generation degrades",
                format!(
                    "posenc, one head: decoding a token at position 0 instead of its position \
                     changes its attention output by up to {diff:.4}, with no error."
                ),
            ),
            opt(
                "The cache raises an error because the positions do not match its length",
                "position ids are free inputs: posenc's KvCache accepts any ids (gaps and repeats \
                 are legal, as K-shift needs), and so does Hugging Face.",
                "expects_error",
            ),
            opt(
                "Only ALiBi and T5 models are affected; RoPE keeps positions in the keys",
                "RoPE rotates the new query and key by the position it is given; a wrong id is a \
                 wrong rotation.",
                "rope_immune",
            ),
            opt(
                "Left padding is the real problem; pad on the right and positions take care of \
                 themselves",
                "with cumsum positions and padding masked, a left-padded row computes exactly what \
                 the unpadded sequence computes; right padding would put new tokens after padding.",
                "padding_side",
            ),
        ],
    );
    Ok(Built {
        exercise: 9,
        seed: 0,
        setup: format!(
            "A batch of {batch} prompts of lengths {} is left-padded to width {width} and prefilled \
             together into a KV cache (RoPE); attention masks (1 = real token): {}. Position ids \
             come from the mask, as in Hugging Face: cumsum(mask) - 1. Then {steps} decode steps \
             ran, one new token per row each.",
            fmt_vec(&lengths.iter().map(|&l| l as f64).collect::<Vec<_>>()),
            masks.join(", ")
        ),
        data: json!({"lengths": lengths, "padded_width": width, "decode_steps_done": steps,
                     "attention_masks": masks}),
        a: entry_part(
            rng,
            "RoPE (with a KV cache)",
            posenc::rope::ENTRY,
            ROPE_HOW,
        ),
        b: NumberPart::Numeric(b),
        c,
    })
}

// ------------------------------------------------------------------------------------------
// 10. Passkey design

fn ex10_passkey_design(rng: &mut ChaCha8Rng) -> LearnResult<Built> {
    let train = pick(rng, &[1024u64, 2048, 4096]);
    let kind = rng.random_range(0..4u32);
    let (scheme, target, name, entry, description, rule, data) = match kind {
        0 => {
            let table = LearnedTable::new(train as usize, 1, vec![0.0; train as usize])?;
            let err = table
                .lookup(train)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            (
                PasskeyScheme::Learned { table },
                4 * train,
                "learned absolute",
                posenc::learned::ENTRY,
                format!("a GPT-2-style decoder with a learned position table of {train} rows"),
                format!(
                    "a learned table has no row past {} (posenc: \"{err}\"), so no test longer \
                     than {train} tokens can even run, at any depth; inside the table the position \
                     encoding does not stand in the way.",
                    train - 1
                ),
                json!({"scheme": "learned", "rows": train}),
            )
        }
        1 => {
            let params = RopeParams {
                max_position_embeddings: train as usize,
                ..RopeParams::new(10_000.0, 64)?
            };
            let report = posenc::diagnostics::pair_report(
                &params,
                train as usize,
                4 * train as usize,
                None,
            )?;
            let incomplete = report.iter().filter(|r| r.incomplete_in_original).count();
            (
                PasskeyScheme::Rope { train },
                4 * train,
                "RoPE",
                posenc::rope::ENTRY,
                format!("a decoder with RoPE (base 10000, head size 64), trained on {train} tokens, no scaling"),
                format!(
                    "unscaled RoPE sees, past {train} tokens, relative angles its slow pairs never \
                     reached in training ({incomplete} of 32 pairs do not even complete one turn \
                     within {train} positions), so past {train} tokens retrieval is ruled out at \
                     any depth (every query also attends to keys at unseen distances: the measured \
                     unscaled SmolLM2 perplexity jumps from 9 to 976 past its training context, \
                     results/perplexity.json); up to {train} tokens position allows it."
                ),
                json!({"scheme": "rope", "base": 10000, "head_dim": 64, "train_len": train}),
            )
        }
        2 => {
            let factor = pick(rng, &[2.0f64, 4.0]);
            let y = YarnParams::new(factor, train as usize);
            let params = RopeParams {
                max_position_embeddings: (factor * train as f64) as usize,
                scaling: RopeScaling::Yarn(y.clone()),
                ..RopeParams::new(10_000.0, 64)?
            };
            let f = params.frequencies(None, Precision::Exact)?;
            let extended = y.factor * y.original_max_position_embeddings as f64;
            (
                PasskeyScheme::Yarn {
                    original: train,
                    factor,
                },
                2 * extended as u64,
                "RoPE + YaRN",
                posenc::rope::ENTRY,
                format!(
                    "a decoder with RoPE (base 10000, head size 64) trained on {train} tokens, then \
                     extended with YaRN factor {factor} (and fine-tuned)"
                ),
                format!(
                    "YaRN with factor {factor} interpolates the slow pairs so that {extended} \
                     positions map into the trained range (attention factor {:.4}); up to \
                     {extended} tokens position allows retrieval, past it retrieval is ruled out at \
                     any depth.",
                    f.attention_factor
                ),
                json!({"scheme": "yarn", "base": 10000, "head_dim": 64,
                       "original_max_position_embeddings": train, "factor": factor}),
            )
        }
        _ => {
            let slopes = alibi::slopes(8)?;
            let flattest = slopes.last().copied().unwrap_or(1.0);
            let window = alibi::effective_window(flattest, 0.01)?;
            (
                PasskeyScheme::Alibi { window },
                4 * train,
                "ALiBi",
                alibi::ENTRY,
                format!("a decoder with ALiBi (8 heads), trained on {train} tokens"),
                format!(
                    "ALiBi runs at any length, but each head multiplies the weight of a key d \
                     tokens back by e^(-m d); the flattest head (m = {flattest}) reaches 1% at \
                     {window:.1} tokens. Retrieval is ruled out where the distance (1 - depth) * \
                     (length - 1) exceeds {window:.1}, at any length; below it position allows it."
                ),
                json!({"scheme": "alibi", "heads": 8, "slopes": slopes, "train_len": train,
                       "window_1_percent": window}),
            )
        }
    };
    let part = PasskeyPart {
        question: format!(
            "Design a passkey test for this model up to {target} tokens and predict its outcome. \
             Pick at least 3 lengths (at least one inside the training window, at least one \
             beyond it up to {target}) and at least 3 depths covering the context (one <= 0.1, \
             one >= 0.9), then predict 1 (passkey retrieved) or 0 (not) for every length and \
             depth. A cell the position encoding rules out must be 0; in a row where it allows \
             retrieval, predict 1 at some depth (a model may still miss other depths for reasons \
             other than position)."
        ),
        scheme,
        train,
        target,
        rule: rule.clone(),
        feedback: format!("Right. {rule}"),
    };
    let c = ChoicePart::new(
        rng,
        "A model passes every passkey test up to its advertised context. What does that establish?",
        vec![
            right(
                "That it can find one planted string at those lengths and depths: a necessary \
                 check, not proof that it uses long context well; also check decode positions, \
                 perplexity and real tasks",
                "A passkey test catches the position failures (no table row, unseen RoPE angles, \
                 ALiBi's decay), not reasoning over long inputs.",
            ),
            opt(
                "That it uses its whole context as well as a short one",
                "finding one string is far easier than using everything in a long context; \
                 passing is necessary, not sufficient.",
                "overclaim",
            ),
            opt(
                "Nothing: passkey tests say nothing about position encodings",
                "they catch exactly the typical failures: a learned table errors past its rows, \
                 unscaled RoPE fails past its training length, ALiBi loses far passkeys.",
                "dismiss",
            ),
            opt(
                "That the position encoding extrapolates to any length",
                "only to the lengths tested; past them nothing is known.",
                "extrapolates",
            ),
        ],
    );
    Ok(Built {
        exercise: 10,
        seed: 0,
        setup: format!(
            "The model: {description}. A passkey test hides a random number at a depth (the \
             fraction of the context before it: 0 = first token, 1 = last) in filler text of a \
             given length and asks for it at the end, so the passkey is about (1 - depth) * \
             (length - 1) tokens from the question. Target context: {target} tokens."
        ),
        data: json!({"model": data, "train_len": train, "target_len": target}),
        a: entry_part(
            rng,
            name,
            entry,
            match kind {
                0 => LEARNED_HOW,
                1 | 2 => ROPE_HOW,
                _ => ALIBI_HOW,
            },
        ),
        b: NumberPart::Passkey(part),
        c,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_instance_is_distinguishable_for_seeds_0_to_50() {
        for n in 1..=EXERCISE_COUNT {
            for seed in 0..50 {
                let (b, first_pass) = build_checked(n, seed).unwrap();
                assert!(first_pass, "exercise {n} seed {seed}: variants coincide");
                if let NumberPart::Numeric(p) = &b.b {
                    assert!(distinguishable(p), "exercise {n} seed {seed}");
                    assert!(!p.variants.is_empty());
                }
            }
        }
    }
}
