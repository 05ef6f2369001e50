//! A grid of cells (task × scheme × seed), each trained and tested on its own and written as one
//! JSON file, so a grid can be resumed, split across machines and merged.
//!
//! Layout of a sweep directory:
//! - `sweep.json`: the [`SweepSpec`] (every cell of one directory shares it);
//! - `cells/TASK-SCHEME-sSEED.json`: one [`CellResult`] per finished cell, written atomically
//!   (a temporary file in `cells/`, then renamed), so a cell is either finished or absent;
//! - `summary.json`: the [`Summary`] over the cells present.
//!
//! A finished cell is never rerun; an interrupted one left at most a temporary file, which is
//! removed once stale ([`STALE_TEMPORARY_S`]), and the cell reruns from scratch (training is deterministic, so the result is the
//! same). `--shard I/N` runs the cells whose index in the grid order (seed, task, scheme) is
//! `I mod N`; [`merge`] gathers the cells of several directories.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::checkpoint::{read_json, write_json};
use crate::eval::{evaluate, EvalReport};
use crate::model::ModelConfig;
use crate::scheme::SchemeKind;
use crate::task::Task;
use crate::train::{train, Progress, TrainLog, TrainOptions};
use crate::{LabError, Result};

/// The grid file name.
pub const SPEC_FILE: &str = "sweep.json";
/// The cells directory.
pub const CELLS_DIR: &str = "cells";
/// The summary file name.
pub const SUMMARY_FILE: &str = "summary.json";
/// Most cells in one grid.
pub const MAX_CELLS: usize = 100_000;

/// A length is usable while the seed-mean accuracy keeps this share of its training-length value
/// (perplexity: stays within `1 / USABLE_SHARE` of it).
pub const USABLE_SHARE: f64 = 0.9;
/// Below this token accuracy at the training length a task counts as not learned.
pub const LEARNED_MIN_ACCURACY: f64 = 0.5;

/// Everything every cell of a grid shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepSpec {
    /// Schemes, in table order.
    pub schemes: Vec<SchemeKind>,
    /// Tasks, in table order.
    pub tasks: Vec<Task>,
    /// Seeds.
    pub seeds: Vec<u64>,
    /// Model width.
    pub d_model: usize,
    /// Heads.
    pub heads: usize,
    /// Layers.
    pub layers: usize,
    /// Training length.
    pub train_len: usize,
    /// Test lengths.
    pub lengths: Vec<usize>,
    /// Test sequences per length.
    pub test_rows: usize,
    /// Seed of the test problems.
    pub test_seed: u64,
    /// Optimisation.
    pub train: TrainOptions,
    /// The language-modelling text (`None`: the Rust book).
    pub text: Option<PathBuf>,
}

impl SweepSpec {
    /// Checks the grid; errors name the flag.
    pub fn validate(&self) -> Result<()> {
        for (flag, empty) in [
            ("--schemes", self.schemes.is_empty()),
            ("--tasks", self.tasks.is_empty()),
            ("--seeds", self.seeds.is_empty()),
            ("--lengths", self.lengths.is_empty()),
        ] {
            if empty {
                return Err(LabError::invalid(flag, "at least one value"));
            }
        }
        let cells = self.schemes.len() * self.tasks.len() * self.seeds.len();
        if cells > MAX_CELLS {
            return Err(LabError::invalid(
                "--seeds",
                format!("a grid of at most {MAX_CELLS} cells, got {cells}"),
            ));
        }
        if self.test_rows == 0 {
            return Err(LabError::invalid("--test-rows", "at least 1"));
        }
        self.train.validate()?;
        for c in self.cells() {
            let cfg = self.model_config(&c);
            cfg.validate()?;
        }
        Ok(())
    }

    /// Every cell, in grid order: seed, then task, then scheme (so a grid stopped early has
    /// whole seeds of every task and scheme).
    pub fn cells(&self) -> Vec<Cell> {
        let mut out = Vec::new();
        for &seed in &self.seeds {
            for &task in &self.tasks {
                for &scheme in &self.schemes {
                    out.push(Cell { task, scheme, seed });
                }
            }
        }
        out
    }

    /// The model of a cell (the learned table sized for the longest test length).
    pub fn model_config(&self, cell: &Cell) -> ModelConfig {
        ModelConfig {
            task: cell.task,
            scheme: cell.scheme,
            rope_scaling: None,
            vocab: cell.task.vocab(),
            d_model: self.d_model,
            heads: self.heads,
            layers: self.layers,
            train_len: self.train_len,
            max_len: self
                .lengths
                .iter()
                .copied()
                .max()
                .unwrap_or(self.train_len)
                .max(self.train_len),
            seed: cell.seed,
        }
    }
}

/// One cell of a grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cell {
    /// Task.
    pub task: Task,
    /// Scheme.
    pub scheme: SchemeKind,
    /// Seed.
    pub seed: u64,
}

impl Cell {
    /// The cell's file stem: `TASK-SCHEME-sSEED`.
    pub fn id(&self) -> String {
        format!("{}-{}-s{}", self.task.name(), self.scheme.name(), self.seed)
    }
}

/// A finished cell (one file in `cells/`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    /// The cell.
    pub cell: Cell,
    /// The grid it belongs to.
    pub spec: SweepSpec,
    /// The model trained.
    pub model: ModelConfig,
    /// Training log.
    pub train: TrainLog,
    /// Test results by length.
    pub eval: EvalReport,
    /// Wall time of the cell (training and tests), seconds.
    pub wall_s: f64,
}

/// `I/N`: run the cells whose grid index is `I mod N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0 .. count`.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = LabError;
    fn from_str(s: &str) -> Result<Shard> {
        let bad = || {
            LabError::invalid(
                "--shard",
                format!("I/N with 0 <= I < N (for example 0/4), got `{s}`"),
            )
        };
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// What a sweep reports while it runs.
#[derive(Debug, Clone)]
pub enum SweepEvent {
    /// A cell was found finished and skipped.
    Skipped(Cell),
    /// A cell starts (its index among this run's cells, and their count).
    Started(Cell, usize, usize),
    /// A training step of the running cell.
    Step(Progress),
    /// A cell finished and was written.
    Finished(Cell, PathBuf, f64),
}

fn cell_path(dir: &Path, cell: &Cell) -> PathBuf {
    dir.join(CELLS_DIR).join(format!("{}.json", cell.id()))
}

/// Writes `sweep.json`, or checks that the one there is the same grid.
fn claim_dir(dir: &Path, spec: &SweepSpec) -> Result<()> {
    let path = dir.join(SPEC_FILE);
    if path.exists() {
        let old: SweepSpec = read_json(&path, 16 << 20)?;
        if &old != spec {
            return Err(LabError::invalid(
                "--out",
                format!("a directory of this grid; {} holds a different grid (other schemes, tasks, seeds, sizes or options): use another --out", path.display()),
            ));
        }
        return Ok(());
    }
    write_json(&path, spec)
}

/// Age past which a temporary file in `cells/` is an interrupted write (a live write lasts
/// milliseconds), seconds. Younger ones may belong to another shard writing into the same
/// directory and are left alone.
pub const STALE_TEMPORARY_S: u64 = 60;

/// Removes temporary files an interrupted run left in `cells/`.
fn remove_stale_temporaries(cells: &Path) {
    let Ok(entries) = std::fs::read_dir(cells) else {
        return;
    };
    for e in entries.flatten() {
        let stale = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() >= STALE_TEMPORARY_S);
        if stale && e.file_name().to_string_lossy().starts_with(".tmp-") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// A finished cell's result, if its file is there and belongs to this grid.
fn finished(dir: &Path, spec: &SweepSpec, cell: &Cell) -> Option<CellResult> {
    let r: CellResult = read_json(&cell_path(dir, cell), 64 << 20).ok()?;
    (r.spec == *spec && r.cell == *cell).then_some(r)
}

/// Runs one cell: trains, tests, returns the result.
pub fn run_cell(
    spec: &SweepSpec,
    cell: &Cell,
    on_step: &mut dyn FnMut(Progress),
) -> Result<CellResult> {
    let start = Instant::now();
    let cfg = spec.model_config(cell);
    let data = crate::data_source(cell.task, spec.text.as_deref(), cfg.max_len)?;
    let (model, log) = train(&cfg, &spec.train, &data, on_step)?;
    let eval = evaluate(
        &model,
        &data,
        &spec.lengths,
        spec.test_rows,
        spec.test_seed,
        &mut |_, _| {},
    )?;
    Ok(CellResult {
        cell: *cell,
        spec: spec.clone(),
        model: cfg,
        train: log,
        eval,
        wall_s: start.elapsed().as_secs_f64(),
    })
}

/// Runs the grid's cells of `shard` that are not finished in `dir`, then writes `summary.json`
/// over every finished cell there. Returns the summary.
pub fn sweep(
    spec: &SweepSpec,
    dir: &Path,
    shard: Option<Shard>,
    events: &mut dyn FnMut(SweepEvent),
) -> Result<Summary> {
    sweep_cells(
        spec,
        dir,
        &|i, _| shard.is_none_or(|s| i % s.count == s.index),
        events,
    )
}

/// [`sweep`] over the cells `select(grid index, cell)` accepts (for example a list of cell ids).
pub fn sweep_cells(
    spec: &SweepSpec,
    dir: &Path,
    select: &dyn Fn(usize, &Cell) -> bool,
    events: &mut dyn FnMut(SweepEvent),
) -> Result<Summary> {
    spec.validate()?;
    claim_dir(dir, spec)?;
    let cells_dir = dir.join(CELLS_DIR);
    std::fs::create_dir_all(&cells_dir)
        .map_err(|e| LabError::Io(format!("{}: {e}", cells_dir.display())))?;
    remove_stale_temporaries(&cells_dir);
    let mine: Vec<Cell> = spec
        .cells()
        .into_iter()
        .enumerate()
        .filter(|(i, c)| select(*i, c))
        .map(|(_, c)| c)
        .collect();
    let todo: Vec<Cell> = mine
        .iter()
        .filter(|c| {
            let done = finished(dir, spec, c).is_some();
            if done {
                events(SweepEvent::Skipped(**c));
            }
            !done
        })
        .copied()
        .collect();
    for (i, cell) in todo.iter().enumerate() {
        events(SweepEvent::Started(*cell, i, todo.len()));
        let result = run_cell(spec, cell, &mut |p| events(SweepEvent::Step(p)))?;
        let path = cell_path(dir, cell);
        write_json(&path, &result)?;
        events(SweepEvent::Finished(*cell, path, result.wall_s));
    }
    let summary = summarize(spec, &collect(dir, spec)?);
    write_json(&dir.join(SUMMARY_FILE), &summary)?;
    Ok(summary)
}

/// The finished cells of `dir` that belong to `spec`, in grid order.
pub fn collect(dir: &Path, spec: &SweepSpec) -> Result<Vec<CellResult>> {
    Ok(spec
        .cells()
        .iter()
        .filter_map(|c| finished(dir, spec, c))
        .collect())
}

/// Reads the grid of a sweep directory.
pub fn read_spec(dir: &Path) -> Result<SweepSpec> {
    read_json(&dir.join(SPEC_FILE), 16 << 20)
}

/// Merges the cells of `inputs` (sweep directories of one grid) into `out`, writes its summary
/// and returns it. A cell present in several inputs is taken from the first.
///
/// Errors: inputs of different grids, unreadable files.
pub fn merge(inputs: &[PathBuf], out: &Path) -> Result<Summary> {
    let first = inputs
        .first()
        .ok_or_else(|| LabError::invalid("merge", "at least one sweep directory"))?;
    let spec = read_spec(first)?;
    for d in &inputs[1..] {
        if read_spec(d)? != spec {
            return Err(LabError::invalid(
                "merge",
                format!(
                    "directories of one grid; {} and {} differ",
                    first.display(),
                    d.display()
                ),
            ));
        }
    }
    claim_dir(out, &spec)?;
    std::fs::create_dir_all(out.join(CELLS_DIR))
        .map_err(|e| LabError::Io(format!("{}: {e}", out.display())))?;
    for cell in spec.cells() {
        if finished(out, &spec, &cell).is_some() {
            continue;
        }
        if let Some(r) = inputs.iter().find_map(|d| finished(d, &spec, &cell)) {
            write_json(&cell_path(out, &cell), &r)?;
        }
    }
    let summary = summarize(&spec, &collect(out, &spec)?);
    write_json(&out.join(SUMMARY_FILE), &summary)?;
    Ok(summary)
}

/// Mean, sample standard deviation, min and max over seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (0 for one seed).
    pub std: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = if values.len() > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Some(Spread {
            mean,
            std: var.sqrt(),
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }
}

/// One (task, scheme) at one test length, over seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryPoint {
    /// Test length.
    pub len: usize,
    /// `len / train_len`.
    pub multiple: f64,
    /// Token accuracy (tasks).
    pub token_accuracy: Option<Spread>,
    /// Exact match per sequence (tasks).
    pub exact_match: Option<Spread>,
    /// Perplexity (language modelling).
    pub ppl: Option<Spread>,
    /// Tail perplexity (language modelling).
    pub tail_ppl: Option<Spread>,
}

/// One (task, scheme) over every length.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    /// Task.
    pub task: Task,
    /// Scheme.
    pub scheme: SchemeKind,
    /// Seeds finished.
    pub seeds: usize,
    /// By test length.
    pub points: Vec<SummaryPoint>,
    /// Whether the task was learned at the training length (token accuracy at least
    /// [`LEARNED_MIN_ACCURACY`]; always true for language modelling).
    pub learned: bool,
    /// Longest tested length up to which every tested length is usable (see [`USABLE_SHARE`]);
    /// `None` when the task was not learned.
    pub max_usable_len: Option<usize>,
    /// `max_usable_len / train_len`.
    pub extrapolation: Option<f64>,
    /// Mean training speed over seeds, tokens per second.
    pub tokens_per_s: f64,
    /// Mean final training loss.
    pub final_loss: f64,
}

/// The table of a grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Training length.
    pub train_len: usize,
    /// Test lengths.
    pub lengths: Vec<usize>,
    /// Cells in the grid.
    pub cells_total: usize,
    /// Cells finished.
    pub cells_done: usize,
    /// One row per (task, scheme) with at least one finished seed.
    pub rows: Vec<SummaryRow>,
    /// Wall time of every finished cell added up, seconds.
    pub cell_wall_s: f64,
}

impl Summary {
    /// The rows without timings (equal for equal results, however the grid was run).
    pub fn metrics(&self) -> Vec<SummaryRow> {
        self.rows
            .iter()
            .map(|r| SummaryRow {
                tokens_per_s: 0.0,
                ..r.clone()
            })
            .collect()
    }
}

/// The headline metric of a point: token accuracy, or perplexity for language modelling.
pub fn headline(p: &SummaryPoint) -> Option<&Spread> {
    p.token_accuracy.as_ref().or(p.ppl.as_ref())
}

/// Summarises finished cells by (task, scheme) and length.
pub fn summarize(spec: &SweepSpec, cells: &[CellResult]) -> Summary {
    let mut rows = Vec::new();
    for &task in &spec.tasks {
        for &scheme in &spec.schemes {
            let mine: Vec<&CellResult> = cells
                .iter()
                .filter(|c| c.cell.task == task && c.cell.scheme == scheme)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let points: Vec<SummaryPoint> = spec
                .lengths
                .iter()
                .map(|&len| {
                    let at: Vec<&crate::eval::LengthResult> = mine
                        .iter()
                        .filter_map(|c| c.eval.results.iter().find(|r| r.len == len))
                        .collect();
                    let pick = |f: &dyn Fn(&crate::eval::LengthResult) -> Option<f64>| {
                        Spread::of(&at.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
                    };
                    SummaryPoint {
                        len,
                        multiple: len as f64 / spec.train_len as f64,
                        token_accuracy: pick(&|r| r.token_accuracy),
                        exact_match: pick(&|r| r.exact_match),
                        ppl: if task.is_lm() {
                            pick(&|r| Some(r.ppl))
                        } else {
                            None
                        },
                        tail_ppl: pick(&|r| r.tail_ppl),
                    }
                })
                .collect();
            let (learned, max_usable_len) = usable(task, spec.train_len, &points);
            let n = mine.len() as f64;
            rows.push(SummaryRow {
                task,
                scheme,
                seeds: mine.len(),
                learned,
                extrapolation: max_usable_len.map(|l| l as f64 / spec.train_len as f64),
                max_usable_len,
                points,
                tokens_per_s: mine.iter().map(|c| c.train.tokens_per_s).sum::<f64>() / n,
                final_loss: mine.iter().map(|c| c.train.final_loss).sum::<f64>() / n,
            });
        }
    }
    Summary {
        train_len: spec.train_len,
        lengths: spec.lengths.clone(),
        cells_total: spec.cells().len(),
        cells_done: cells.len(),
        rows,
        cell_wall_s: cells.iter().map(|c| c.wall_s).sum(),
    }
}

/// Whether the task was learned, and the longest usable length (every tested length from the
/// training length up to it usable).
fn usable(task: Task, train_len: usize, points: &[SummaryPoint]) -> (bool, Option<usize>) {
    let mut sorted: Vec<&SummaryPoint> = points.iter().filter(|p| p.len >= train_len).collect();
    sorted.sort_by_key(|p| p.len);
    let Some(base) = sorted.first().and_then(|p| headline(p)).map(|s| s.mean) else {
        return (false, None);
    };
    let learned = task.is_lm() || base >= LEARNED_MIN_ACCURACY;
    if !learned {
        return (false, None);
    }
    let mut best = None;
    for p in sorted {
        let Some(m) = headline(p).map(|s| s.mean) else {
            break;
        };
        let ok = if task.is_lm() {
            m <= base / USABLE_SHARE
        } else {
            m >= base * USABLE_SHARE
        };
        if !ok {
            break;
        }
        best = Some(p.len);
    }
    (true, best)
}
