//! The posenc learning path: ten exercises, walkthroughs, an advisor, the why-position demo and
//! the explorer's teaching figures, all computed by the posenc library.
//!
//! Everything here is pure logic (no I/O). The public functions return serde-serializable
//! structs, so the `posenc` command line prints them and the web explorer (`posenc serve`) serves
//! them as they are (see `API.md` beside this crate):
//!
//! * [`list_exercises`]: the ten exercises;
//! * [`instance`]: a fresh instance of exercise `n` for a seed (small sizes, numbers drawn from a
//!   ChaCha8 generator, so a seed gives the same instance everywhere);
//! * [`check`]: checks an answer to one part, returns a [`Verdict`] whose hint is computed from the
//!   learner's answer: it is compared with what the library gives for the common wrong variants
//!   (interleaved layout, bias after softmax, degrees, off-by-one positions, ...);
//! * [`solution`]: an answer [`check`] accepts (for "show me" buttons and tests);
//! * [`explain`]: a walkthrough of one topic with numbers computed by posenc;
//! * [`advise`]: a recommended scheme and scaling for a training and a target length;
//! * [`why_position`]: a toy attention head over two word orders, with and without a scheme;
//! * [`figures`]: the numbers behind the explorer's teaching figures (PE·PE similarity, q/k
//!   rotation in 2-D, RoFormer's decay bound, score change with distance, NoPE's counting head,
//!   the four-token walk);
//! * [`predictions`] and [`check_prediction`]: the predict-then-reveal questions of the explorer;
//! * [`lab`]: length-generalization curves read from `posenc lab` result files.
//!
//! Every exercise has three parts: (a) where position enters (multiple choice, the right option is
//! the scheme's `ENTRY` constant in the library), (b) a numeric example checked against the
//! library within a stated tolerance, (c) the consequence for an LLM (multiple choice, every option
//! explained).

#![warn(missing_docs)]

mod advisor;
mod answer;
mod exercises;
pub mod figures;
pub mod lab;
mod predictions;
mod walkthrough;
mod why;

use serde::{Deserialize, Serialize};

pub use advisor::{
    advise, Advice, AdviceRequest, Arch, Diagnostic, Fact, FactValue, Reason, ScalingAdvice,
    DEFAULT_HEAD_DIM, MAX_ADVISE_LEN, MAX_HEAD_DIM,
};
pub use predictions::{
    check_prediction, predictions, Prediction, PredictionOption, PredictionVerdict,
};
pub use walkthrough::{explain, topics, Matrix, Section, Value, Walkthrough, TOPICS};
pub use why::{
    tokenize, why_position, WhyPosition, WhyRequest, WhyRun, WhyScheme, WordMatch, MAX_WORDS,
};

/// Number of exercises.
pub const EXERCISE_COUNT: u32 = 10;

/// What went wrong in a learning-path call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LearnErrorKind {
    /// Exercise number outside `1..=10`.
    UnknownExercise,
    /// Walkthrough topic not in [`TOPICS`].
    UnknownTopic,
    /// The answer could not be read (wrong format, wrong shape, not a number, unknown option).
    MalformedAnswer,
    /// Bad request arguments (for example a zero training length for the advisor).
    InvalidRequest,
    /// The library rejected a computation (should not happen for generated instances).
    Library,
}

/// Error of the learning-path functions: a kind (for HTTP status codes) and a one-line message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct LearnError {
    /// What kind of error.
    pub kind: LearnErrorKind,
    /// One line for the user.
    pub message: String,
}

impl LearnError {
    /// An error of `kind` with `message`.
    pub fn new(kind: LearnErrorKind, message: impl Into<String>) -> Self {
        LearnError {
            kind,
            message: message.into(),
        }
    }

    /// A malformed answer.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(LearnErrorKind::MalformedAnswer, message)
    }
}

impl From<posenc::Error> for LearnError {
    fn from(e: posenc::Error) -> Self {
        LearnError::new(LearnErrorKind::Library, format!("posenc: {e}"))
    }
}

/// Result type of this crate.
pub type LearnResult<T> = std::result::Result<T, LearnError>;

/// One of the three parts of an exercise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    /// (a) where position enters / absolute or relative: multiple choice.
    A,
    /// (b) a numeric example.
    B,
    /// (c) the consequence for an LLM: multiple choice.
    C,
}

impl Part {
    /// All parts in order.
    pub const ALL: [Part; 3] = [Part::A, Part::B, Part::C];

    /// `"a"`, `"b"` or `"c"`.
    pub fn letter(self) -> &'static str {
        match self {
            Part::A => "a",
            Part::B => "b",
            Part::C => "c",
        }
    }
}

impl std::str::FromStr for Part {
    type Err = LearnError;
    fn from_str(s: &str) -> LearnResult<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "a" => Ok(Part::A),
            "b" => Ok(Part::B),
            "c" => Ok(Part::C),
            _ => Err(LearnError::new(
                LearnErrorKind::InvalidRequest,
                format!("invalid part: expected a, b or c, got `{s}`"),
            )),
        }
    }
}

/// How an answer to a part is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerKind {
    /// One option letter (`A`, `B`, ...).
    Choice,
    /// One real number.
    Number,
    /// One integer (thousands separators `,` and `_` allowed).
    Integer,
    /// A list of numbers: `1,2,3`, `1 2 3` or JSON `[1,2,3]`.
    Vector,
    /// Rows of numbers: `1,2;3,4` or JSON `[[1,2],[3,4]]`.
    Matrix,
    /// Exercise 10's passkey plan: `lengths | depths | predictions`, or a JSON object
    /// `{"lengths": [..], "depths": [..], "predict": [[..], ..]}`.
    PasskeyPlan,
}

/// One option of a multiple-choice part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// The letter to answer with.
    pub key: String,
    /// The option text.
    pub text: String,
}

/// The prompt of one part of an instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartPrompt {
    /// Which part.
    pub part: Part,
    /// The question.
    pub question: String,
    /// How the answer is written.
    pub answer_kind: AnswerKind,
    /// The answer format in words.
    pub answer_format: String,
    /// Options of a multiple-choice part (empty otherwise).
    pub choices: Vec<Choice>,
    /// Expected shape of a numeric answer: `[]` scalar, `[n]` vector, `[rows, cols]` matrix.
    pub shape: Option<Vec<usize>>,
    /// Largest accepted absolute error of each number (0 = exact), for numeric parts.
    pub tolerance: Option<f64>,
}

/// A generated instance of one exercise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// Exercise number, 1..=10.
    pub exercise: u32,
    /// The seed it was generated from.
    pub seed: u64,
    /// Short identifier (for example `sinusoidal-row`).
    pub id: String,
    /// Title.
    pub title: String,
    /// The setting, in a few sentences (includes the given numbers).
    pub setup: String,
    /// The given numbers as JSON (vectors, matrices, sizes).
    pub data: serde_json::Value,
    /// Parts a, b, c.
    pub parts: Vec<PartPrompt>,
}

/// One exercise in the list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExerciseSummary {
    /// Exercise number, 1..=10.
    pub exercise: u32,
    /// Short identifier.
    pub id: String,
    /// Title.
    pub title: String,
    /// The `posenc explain` topic that teaches it.
    pub topic: String,
    /// What part (b) asks for, in one line.
    pub computes: String,
}

/// The explanation of one option of a multiple-choice part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptionExplanation {
    /// The option letter.
    pub key: String,
    /// The option text.
    pub text: String,
    /// Whether it is the right option.
    pub correct: bool,
    /// Why it is right or wrong.
    pub explanation: String,
}

/// The result of checking one answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Exercise number.
    pub exercise: u32,
    /// Instance seed.
    pub seed: u64,
    /// Which part.
    pub part: Part,
    /// Whether the answer is right.
    pub correct: bool,
    /// Identifier of the recognised mistake (for example `interleaved_layout`,
    /// `bias_after_softmax`, `off_by_one`), `None` when right or not recognised.
    pub mistake: Option<String>,
    /// For a wrong answer: a hint computed from it (names the mistake when recognised).
    pub hint: Option<String>,
    /// For a right answer: what to take away, with numbers from the library.
    pub feedback: Option<String>,
    /// Numeric parts: the largest absolute error of the answer.
    pub max_error: Option<f64>,
    /// Numeric parts: the tolerance it was checked with.
    pub tolerance: Option<f64>,
    /// Multiple-choice parts answered right: every option explained.
    pub explanations: Vec<OptionExplanation>,
}

/// The ten exercises.
pub fn list_exercises() -> Vec<ExerciseSummary> {
    exercises::SUMMARIES
        .iter()
        .enumerate()
        .map(|(i, s)| ExerciseSummary {
            exercise: i as u32 + 1,
            id: s.id.to_string(),
            title: s.title.to_string(),
            topic: s.topic.to_string(),
            computes: s.computes.to_string(),
        })
        .collect()
}

/// A fresh instance of exercise `exercise` (1..=10) for `seed`: the same seed always gives the same
/// instance.
///
/// Errors: [`LearnErrorKind::UnknownExercise`].
pub fn instance(exercise: u32, seed: u64) -> LearnResult<Instance> {
    Ok(exercises::build(exercise, seed)?.instance())
}

/// Checks `answer` to `part` of the instance `(exercise, seed)`.
///
/// A wrong answer is `Ok` with `correct = false` and a hint; an answer that cannot be read is
/// `Err` with [`LearnErrorKind::MalformedAnswer`].
pub fn check(exercise: u32, seed: u64, part: Part, answer: &str) -> LearnResult<Verdict> {
    exercises::build(exercise, seed)?.check(part, answer)
}

/// An answer to `part` of `(exercise, seed)` that [`check`] accepts.
pub fn solution(exercise: u32, seed: u64, part: Part) -> LearnResult<String> {
    Ok(exercises::build(exercise, seed)?.solution(part))
}
