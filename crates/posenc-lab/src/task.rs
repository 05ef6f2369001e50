//! The tasks: seeded algorithmic problems (copy, reverse, sort, addition) and next-byte language
//! modelling on a text.
//!
//! Every algorithmic sequence is `BOS problem SEP answer`, one token per position, with a loss
//! (and accuracy) only on the answer tokens. "Length" is always the number of positions the model
//! sees, so a test at 4× the training length puts the answer at positions the model never saw.
//! Training draws the problem size uniformly from `1 ..= n_max(train_len)` (the setting of
//! Kazemnejad et al. 2023: train on instances up to a size, test on larger ones) and right-pads
//! to `train_len`; a test at length `L` uses problems of exactly `n_max(L)`, padded to `L`.
//!
//! | task | sequence | `n_max(L)` |
//! |---|---|---|
//! | copy | `BOS x1..xn SEP x1..xn` | `(L - 2) / 2` |
//! | reverse | `BOS x1..xn SEP xn..x1` | `(L - 2) / 2` |
//! | sort | `BOS x1..xn SEP sorted(x)` | `(L - 2) / 2` |
//! | addition | `BOS a + b = c`, `n`-digit `a`, `b`, `n+1`-digit `c`, every number least significant digit first (as in Kazemnejad et al.) | `(L - 4) / 3` |
//! | lm | a window of `L` bytes of the text | — |
//!
//! Digits are tokens `0..=9`; padding positions carry [`PAD`] and no loss. Language modelling is
//! over bytes (256 tokens): the first 90% of the text trains, the last 10% is held out for tests.

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::{LabError, Result};

/// `+` in addition problems.
pub const PLUS: u32 = 10;
/// `=` in addition problems.
pub const EQUALS: u32 = 11;
/// Separator between problem and answer (copy, reverse, sort).
pub const SEP: u32 = 12;
/// Beginning of sequence.
pub const BOS: u32 = 13;
/// Padding (never predicted, never a target).
pub const PAD: u32 = 14;
/// Vocabulary of the algorithmic tasks.
pub const ALGO_VOCAB: usize = 16;
/// Vocabulary of language modelling (bytes).
pub const LM_VOCAB: usize = 256;
/// Share of the text used for training (the rest is held out).
pub const LM_TRAIN_FRACTION: f64 = 0.9;

/// A task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Copy the digits after the separator.
    Copy,
    /// Write the digits in reverse order.
    Reverse,
    /// Write the digits sorted.
    Sort,
    /// Add two numbers (digits least significant first).
    Addition,
    /// Predict the next byte of a text.
    Lm,
}

/// Every task, in the order tables list them.
pub const ALL_TASKS: [Task; 5] = [
    Task::Copy,
    Task::Reverse,
    Task::Sort,
    Task::Addition,
    Task::Lm,
];

impl Task {
    /// The name used on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            Task::Copy => "copy",
            Task::Reverse => "reverse",
            Task::Sort => "sort",
            Task::Addition => "addition",
            Task::Lm => "lm",
        }
    }

    /// Parses a task name.
    pub fn parse(s: &str) -> Result<Task> {
        ALL_TASKS
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                LabError::invalid(
                    "--task",
                    format!("one of copy, reverse, sort, addition, lm; got `{s}`"),
                )
            })
    }

    /// Vocabulary size of the task's model.
    pub fn vocab(self) -> usize {
        match self {
            Task::Lm => LM_VOCAB,
            _ => ALGO_VOCAB,
        }
    }

    /// Whether the task is scored by perplexity (language modelling) rather than accuracy.
    pub fn is_lm(self) -> bool {
        self == Task::Lm
    }

    /// Largest problem size whose sequence fits in `len` positions (0 if none does).
    pub fn max_problem_size(self, len: usize) -> usize {
        match self {
            Task::Copy | Task::Reverse | Task::Sort => len.saturating_sub(2) / 2,
            Task::Addition => len.saturating_sub(4) / 3,
            Task::Lm => len,
        }
    }

    /// Smallest sequence length the task accepts (one problem of size 1).
    pub fn min_len(self) -> usize {
        match self {
            Task::Copy | Task::Reverse | Task::Sort => 4,
            Task::Addition => 7,
            Task::Lm => 2,
        }
    }
}

/// A batch: `rows` sequences of `len` input tokens, the target at every position (the next
/// token) and a weight (1 where the position is scored, 0 elsewhere). Flat, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Number of sequences.
    pub rows: usize,
    /// Positions per sequence.
    pub len: usize,
    /// Input tokens `[rows][len]`.
    pub inputs: Vec<u32>,
    /// Next-token targets `[rows][len]` (PAD where unscored).
    pub targets: Vec<u32>,
    /// 1.0 where a target is scored, 0.0 elsewhere `[rows][len]`.
    pub weights: Vec<f32>,
}

impl Batch {
    fn with_capacity(rows: usize, len: usize) -> Batch {
        Batch {
            rows: 0,
            len,
            inputs: Vec::with_capacity(rows * len),
            targets: Vec::with_capacity(rows * len),
            weights: Vec::with_capacity(rows * len),
        }
    }

    /// Appends one sequence: `seq` is the full token sequence (`BOS ... answer`), of which the
    /// last `answer` tokens are scored; padded to `self.len` positions.
    fn push_problem(&mut self, seq: &[u32], answer: usize) {
        debug_assert!(seq.len() <= self.len + 1);
        let n = seq.len();
        for p in 0..self.len {
            self.inputs.push(seq.get(p).copied().unwrap_or(PAD));
            // Position p predicts token p + 1.
            let target = seq.get(p + 1).copied();
            let scored = target.is_some() && p + 1 >= n - answer;
            self.targets.push(target.unwrap_or(PAD));
            self.weights.push(if scored { 1.0 } else { 0.0 });
        }
        self.rows += 1;
    }

    /// Appends one language-modelling window of `len + 1` tokens (every position scored).
    fn push_window(&mut self, window: &[u32]) {
        self.inputs.extend_from_slice(&window[..self.len]);
        self.targets.extend_from_slice(&window[1..=self.len]);
        self.weights.extend(std::iter::repeat_n(1.0, self.len));
        self.rows += 1;
    }
}

/// One problem of size `n` as a token sequence, and how many of its last tokens are the answer.
pub fn problem(task: Task, n: usize, rng: &mut ChaCha8Rng) -> (Vec<u32>, usize) {
    let digits = |rng: &mut ChaCha8Rng, n: usize| -> Vec<u32> {
        (0..n).map(|_| rng.random_range(0..10u32)).collect()
    };
    match task {
        Task::Copy | Task::Reverse | Task::Sort => {
            let x = digits(rng, n);
            let mut answer = x.clone();
            match task {
                Task::Reverse => answer.reverse(),
                Task::Sort => answer.sort_unstable(),
                _ => {}
            }
            let mut seq = Vec::with_capacity(2 * n + 2);
            seq.push(BOS);
            seq.extend_from_slice(&x);
            seq.push(SEP);
            seq.extend_from_slice(&answer);
            (seq, n)
        }
        Task::Addition => {
            // Least significant digit first, as written and as answered.
            let a = digits(rng, n);
            let b = digits(rng, n);
            let mut c = Vec::with_capacity(n + 1);
            let mut carry = 0;
            for i in 0..n {
                let s = a[i] + b[i] + carry;
                c.push(s % 10);
                carry = s / 10;
            }
            c.push(carry);
            let mut seq = Vec::with_capacity(3 * n + 4);
            seq.push(BOS);
            seq.extend_from_slice(&a);
            seq.push(PLUS);
            seq.extend_from_slice(&b);
            seq.push(EQUALS);
            seq.extend_from_slice(&c);
            (seq, n + 1)
        }
        Task::Lm => (Vec::new(), 0),
    }
}

/// Where batches come from: a task generator, or a text for language modelling.
#[derive(Debug, Clone)]
pub struct DataSource {
    task: Task,
    /// Training bytes (language modelling only).
    train: Vec<u32>,
    /// Held-out bytes (language modelling only).
    held_out: Vec<u32>,
}

impl DataSource {
    /// An algorithmic task (not `lm`).
    pub fn algorithmic(task: Task) -> Result<DataSource> {
        if task.is_lm() {
            return Err(LabError::invalid(
                "--task",
                "lm needs a text (DataSource::text)",
            ));
        }
        Ok(DataSource {
            task,
            train: Vec::new(),
            held_out: Vec::new(),
        })
    }

    /// Language modelling on `text` (bytes), split 90/10 into training and held-out parts.
    /// Errors: a text too short for `max_len + 1` held-out bytes.
    pub fn text(text: &str, max_len: usize) -> Result<DataSource> {
        let bytes: Vec<u32> = text.bytes().map(u32::from).collect();
        let cut = (bytes.len() as f64 * LM_TRAIN_FRACTION) as usize;
        let (train, held_out) = bytes.split_at(cut);
        if held_out.len() < max_len + 1 || train.len() < max_len + 1 {
            return Err(LabError::invalid(
                "--text",
                format!(
                    "a text whose held-out 10% holds at least {} bytes (the longest test length + 1); this one has {} bytes",
                    max_len + 1,
                    bytes.len()
                ),
            ));
        }
        Ok(DataSource {
            task: Task::Lm,
            train: train.to_vec(),
            held_out: held_out.to_vec(),
        })
    }

    /// The task.
    pub fn task(&self) -> Task {
        self.task
    }

    /// A training batch of `rows` sequences of `len` positions, from `rng`.
    pub fn train_batch(&self, rows: usize, len: usize, rng: &mut ChaCha8Rng) -> Batch {
        let mut batch = Batch::with_capacity(rows, len);
        if self.task.is_lm() {
            for _ in 0..rows {
                let start = rng.random_range(0..=self.train.len() - len - 1);
                batch.push_window(&self.train[start..start + len + 1]);
            }
        } else {
            let n_max = self.task.max_problem_size(len).max(1);
            for _ in 0..rows {
                let n = rng.random_range(1..=n_max);
                let (seq, answer) = problem(self.task, n, rng);
                batch.push_problem(&seq, answer);
            }
        }
        batch
    }

    /// The test set at length `len`: `rows` problems of size `n_max(len)` generated from
    /// `seed` (so every model is tested on the same problems), or up to `rows` non-overlapping
    /// held-out windows of `len` predictions.
    pub fn test_batch(&self, rows: usize, len: usize, seed: u64) -> Batch {
        let mut batch = Batch::with_capacity(rows, len);
        if self.task.is_lm() {
            let windows = (self.held_out.len() - 1) / len;
            for w in 0..windows.min(rows) {
                batch.push_window(&self.held_out[w * len..w * len + len + 1]);
            }
        } else {
            let mut rng =
                ChaCha8Rng::seed_from_u64(seed ^ (len as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let n = self.task.max_problem_size(len).max(1);
            for _ in 0..rows {
                let (seq, answer) = problem(self.task, n, &mut rng);
                batch.push_problem(&seq, answer);
            }
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addition_is_right_with_carries() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for n in 1..12 {
            let (seq, answer) = problem(Task::Addition, n, &mut rng);
            assert_eq!(seq.len(), 3 * n + 4);
            assert_eq!(answer, n + 1);
            let num = |d: &[u32]| d.iter().rev().fold(0u128, |acc, &x| acc * 10 + x as u128);
            let a = num(&seq[1..1 + n]);
            let b = num(&seq[2 + n..2 + 2 * n]);
            let c = num(&seq[3 + 2 * n..]);
            assert_eq!(a + b, c, "{seq:?}");
        }
    }

    #[test]
    fn problems_fill_the_length_and_score_only_the_answer() {
        for task in [Task::Copy, Task::Reverse, Task::Sort, Task::Addition] {
            let src = DataSource::algorithmic(task).unwrap();
            for len in [16usize, 33, 64] {
                let b = src.test_batch(3, len, 7);
                let n = task.max_problem_size(len);
                let answer = if task == Task::Addition { n + 1 } else { n };
                for r in 0..3 {
                    let w = &b.weights[r * len..(r + 1) * len];
                    assert_eq!(w.iter().sum::<f32>() as usize, answer, "{task:?} {len}");
                    // The sequence fits: the last scored position is inside the window.
                    let seq_len = if task == Task::Addition {
                        3 * n + 4
                    } else {
                        2 * n + 2
                    };
                    assert!(seq_len <= len + 1);
                }
            }
        }
    }

    #[test]
    fn reverse_and_sort_answers() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (seq, n) = problem(Task::Reverse, 5, &mut rng);
        let x: Vec<u32> = seq[1..6].to_vec();
        let mut r = x.clone();
        r.reverse();
        assert_eq!(&seq[7..], &r[..]);
        assert_eq!(n, 5);
        let (seq, _) = problem(Task::Sort, 6, &mut rng);
        assert!(seq[8..].windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn test_sets_are_seeded() {
        let src = DataSource::algorithmic(Task::Copy).unwrap();
        assert_eq!(src.test_batch(4, 32, 9), src.test_batch(4, 32, 9));
        assert_ne!(
            src.test_batch(4, 32, 9).inputs,
            src.test_batch(4, 32, 10).inputs
        );
    }
}
