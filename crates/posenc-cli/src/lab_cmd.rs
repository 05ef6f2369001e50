//! `posenc lab`: train small transformers with each position scheme and test them past their
//! training length. The work is done by the posenc-lab crate; this module parses arguments and
//! renders tables and figures.

use std::path::{Path, PathBuf};

use anyhow::Context;
use posenc_lab::eval::{evaluate, EvalReport};
use posenc_lab::model::ModelConfig;
use posenc_lab::scheme::{SchemeKind, ALL_SCHEMES};
use posenc_lab::sweep::{self, headline, Shard, Summary, SweepEvent, SweepSpec};
use posenc_lab::task::{Task, ALL_TASKS};
use posenc_lab::train::TrainOptions;

use crate::model_cmd::progress_bar;
use crate::plots;

/// Arguments of `posenc lab`.
#[derive(clap::Args)]
pub struct LabArgs {
    #[command(subcommand)]
    command: LabCommand,
}

#[derive(clap::Subcommand)]
enum LabCommand {
    /// Train one model and save it (model.safetensors, config.json, train-log.json).
    Train(TrainArgs),
    /// Test a saved model at several lengths (accuracy or perplexity by length).
    Eval(EvalArgs),
    /// Run a grid of (task, scheme, seed) cells: resumable, shardable; writes a table and a plot.
    Sweep(SweepArgs),
    /// Merge the cells of several sweep directories of one grid; writes the table and the plot.
    Merge(MergeArgs),
}

fn parse_scheme(s: &str) -> Result<SchemeKind, String> {
    SchemeKind::parse(s).map_err(|_| format!("one of {}", ALL_SCHEMES.map(|k| k.name()).join(", ")))
}

fn parse_task(s: &str) -> Result<Task, String> {
    Task::parse(s).map_err(|_| format!("one of {}", ALL_TASKS.map(|t| t.name()).join(", ")))
}

fn parse_list<T>(s: &str, one: fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| one(p.trim()))
        .collect()
}

fn parse_schemes(s: &str) -> Result<Vec<SchemeKind>, String> {
    if s == "all" {
        return Ok(ALL_SCHEMES.to_vec());
    }
    parse_list(s, parse_scheme)
}

fn parse_tasks(s: &str) -> Result<Vec<Task>, String> {
    parse_list(s, parse_task)
}

fn parse_usize(s: &str) -> Result<usize, String> {
    s.parse().map_err(|_| format!("a whole number, got `{s}`"))
}

fn parse_usizes(s: &str) -> Result<Vec<usize>, String> {
    parse_list(s, parse_usize)
}

fn parse_u64s(s: &str) -> Result<Vec<u64>, String> {
    parse_list(s, |p| {
        p.parse::<u64>()
            .map_err(|_| format!("whole numbers, got `{p}`"))
    })
}

fn parse_shard(s: &str) -> Result<Shard, String> {
    s.parse::<Shard>()
        .map_err(|_| format!("I/N with 0 <= I < N (for example 0/4), got `{s}`"))
}

/// Model size and optimisation flags shared by `train` and `sweep`.
#[derive(clap::Args, Clone)]
struct SizeArgs {
    /// Training sequence length (positions).
    #[arg(long, default_value_t = 32, value_parser = parse_usize)]
    train_len: usize,
    /// Layers.
    #[arg(long, default_value_t = 2, value_parser = parse_usize)]
    layers: usize,
    /// Model width.
    #[arg(long, default_value_t = 64, value_parser = parse_usize)]
    d_model: usize,
    /// Attention heads (d_model / heads must be even).
    #[arg(long, default_value_t = 4, value_parser = parse_usize)]
    heads: usize,
    /// Optimiser steps.
    #[arg(long, default_value_t = 1000, value_parser = parse_usize)]
    steps: usize,
    /// Sequences per step.
    #[arg(long, default_value_t = 32, value_parser = parse_usize)]
    batch: usize,
    /// Peak learning rate (warm-up, then cosine decay to 10%).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Warm-up steps.
    #[arg(long, default_value_t = 50, value_parser = parse_usize)]
    warmup: usize,
    /// AdamW weight decay of the weight matrices.
    #[arg(long, default_value_t = 0.01)]
    weight_decay: f64,
    /// Text for `--task lm` (HTML is stripped). Default: the Rust book from the toolchain docs.
    #[arg(long)]
    text: Option<PathBuf>,
}

impl SizeArgs {
    fn options(&self) -> TrainOptions {
        TrainOptions {
            steps: self.steps,
            batch: self.batch,
            lr: self.lr,
            warmup: self.warmup,
            weight_decay: self.weight_decay,
            ..TrainOptions::default()
        }
    }
}

#[derive(clap::Args)]
struct TrainArgs {
    /// Position scheme.
    #[arg(long, value_parser = parse_scheme)]
    scheme: SchemeKind,
    /// RoPE scaling, `TYPE[:key=value,...]` as for `posenc model` (`linear:factor=4`, `yarn:factor=4`);
    /// the training length is the original context. `--scheme rope` only.
    #[arg(long)]
    rope_scaling: Option<String>,
    /// Task.
    #[arg(long, value_parser = parse_task)]
    task: Task,
    #[command(flatten)]
    size: SizeArgs,
    /// Rows of the learned table: the longest length the model can be tested at (default 16 × --train-len).
    #[arg(long, value_parser = parse_usize)]
    max_len: Option<usize>,
    /// Seed of the weights and the training batches.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Directory for the checkpoint and the training log.
    #[arg(long)]
    out: PathBuf,
    /// Print the training log as JSON (no progress bar).
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct EvalArgs {
    /// A directory written by `posenc lab train`.
    dir: PathBuf,
    /// Test lengths (default: 1, 2, 4, 8, 16 × the training length, up to the learned table).
    #[arg(long, value_parser = parse_usizes)]
    lengths: Option<::std::vec::Vec<usize>>,
    /// Test sequences per length (language modelling: held-out windows, at most this many).
    #[arg(long, default_value_t = 128, value_parser = parse_usize)]
    rows: usize,
    /// Seed of the test problems (the same for every model, so they are comparable).
    #[arg(long, default_value_t = 1234)]
    test_seed: u64,
    /// Test with this RoPE scaling instead of the one trained with (`none` for none).
    #[arg(long)]
    rope_scaling: Option<String>,
    /// Text for language modelling (default: the one trained on, the Rust book).
    #[arg(long)]
    text: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct SweepArgs {
    /// Schemes (comma-separated, or `all`).
    #[arg(long, default_value = "all", value_parser = parse_schemes)]
    schemes: ::std::vec::Vec<SchemeKind>,
    /// Tasks (comma-separated).
    #[arg(long, default_value = "copy,reverse,addition,lm", value_parser = parse_tasks)]
    tasks: ::std::vec::Vec<Task>,
    /// Seeds (comma-separated).
    #[arg(long, default_value = "0,1,2", value_parser = parse_u64s)]
    seeds: ::std::vec::Vec<u64>,
    #[command(flatten)]
    size: SizeArgs,
    /// Test lengths as multiples of --train-len (comma-separated).
    #[arg(long, default_value = "1,2,4,8", value_parser = parse_usizes)]
    multiples: ::std::vec::Vec<usize>,
    /// Test sequences per length.
    #[arg(long, default_value_t = 128, value_parser = parse_usize)]
    test_rows: usize,
    /// Seed of the test problems.
    #[arg(long, default_value_t = 1234)]
    test_seed: u64,
    /// Run only the cells whose grid index is I mod N (0 <= I < N), for splitting a grid.
    #[arg(long, value_parser = parse_shard)]
    shard: Option<Shard>,
    /// Run only these cells (comma-separated ids as `--plan` lists them, e.g. `lm-alibi-s0`).
    #[arg(long, value_delimiter = ',', conflicts_with = "shard")]
    cells: Option<Vec<String>>,
    /// The sweep directory (cells/, sweep.json, summary.*).
    #[arg(long, required_unless_present = "plan")]
    out: Option<PathBuf>,
    /// Print the grid's cells as JSON (`{"count", "cells": [{"index", "id", ...}]}`) and run nothing.
    #[arg(long)]
    plan: bool,
    /// Print the summary as JSON (no progress bar).
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct MergeArgs {
    /// Sweep directories of one grid.
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `posenc lab`.
pub fn run(args: LabArgs) -> anyhow::Result<i32> {
    match args.command {
        LabCommand::Train(a) => run_train(a),
        LabCommand::Eval(a) => run_eval(a),
        LabCommand::Sweep(a) => run_sweep(a),
        LabCommand::Merge(a) => run_merge(a),
    }
}

fn run_train(a: TrainArgs) -> anyhow::Result<i32> {
    let cfg = ModelConfig {
        task: a.task,
        scheme: a.scheme,
        rope_scaling: a.rope_scaling.clone(),
        vocab: a.task.vocab(),
        d_model: a.size.d_model,
        heads: a.size.heads,
        layers: a.size.layers,
        train_len: a.size.train_len,
        max_len: a
            .max_len
            .unwrap_or(16 * a.size.train_len)
            .min(posenc_lab::model::MAX_LEN),
        seed: a.seed,
    };
    cfg.validate()?;
    let opts = a.size.options();
    opts.validate()?;
    let data = posenc_lab::data_source(
        cfg.task,
        a.size.text.as_deref(),
        cfg.max_len.min(cfg.train_len * 16),
    )?;
    let bar = progress_bar(
        opts.steps,
        &format!("train {} {}", cfg.task.name(), cfg.scheme.name()),
        a.json,
    );
    let (model, log) = posenc_lab::train::train(&cfg, &opts, &data, &mut |p| {
        bar.set_position(p.step as u64);
        if p.step % 10 == 0 {
            bar.set_message(format!(
                "train {} {} loss {:.3}",
                cfg.task.name(),
                cfg.scheme.name(),
                p.loss
            ));
        }
    })?;
    bar.finish_and_clear();
    let weights = posenc_lab::checkpoint::save(&a.out, &model, Some(&log))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&log)?);
    } else {
        println!(
            "trained {} on {} ({} parameters, train length {}): final loss {:.4}, {:.0} tokens/s, {:.1} s",
            cfg.scheme.name(),
            cfg.task.name(),
            log.parameters,
            cfg.train_len,
            log.final_loss,
            log.tokens_per_s,
            log.wall_s
        );
        println!(
            "wrote {} (and config.json, train-log.json)",
            weights.display()
        );
    }
    Ok(0)
}

fn run_eval(a: EvalArgs) -> anyhow::Result<i32> {
    let mut model = posenc_lab::checkpoint::load(&a.dir)
        .with_context(|| format!("loading {}", a.dir.display()))?;
    if let Some(spec) = &a.rope_scaling {
        let mut cfg = model.config().clone();
        cfg.rope_scaling = (spec != "none").then(|| spec.clone());
        model = posenc_lab::model::Model::from_named(cfg, &model.named())?;
    }
    let cfg = model.config().clone();
    let lengths = match &a.lengths {
        Some(l) => l.clone(),
        None => [1, 2, 4, 8, 16]
            .iter()
            .map(|m| m * cfg.train_len)
            .filter(|&l| l <= cfg.max_len.max(cfg.train_len) || cfg.scheme != SchemeKind::Learned)
            .collect(),
    };
    if lengths.is_empty() {
        anyhow::bail!("invalid --lengths: at least one length");
    }
    let longest = lengths.iter().copied().max().unwrap_or(cfg.train_len);
    let data = posenc_lab::data_source(cfg.task, a.text.as_deref(), longest)?;
    let bar = progress_bar(lengths.len(), "eval", a.json);
    let report = evaluate(
        &model,
        &data,
        &lengths,
        a.rows,
        a.test_seed,
        &mut |done, _| bar.set_position(done as u64),
    )?;
    bar.finish_and_clear();
    posenc_lab::checkpoint::write_json(&a.dir.join("eval.json"), &report)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render_eval(&report));
        println!("wrote {}", a.dir.join("eval.json").display());
    }
    Ok(0)
}

fn render_eval(r: &EvalReport) -> String {
    let mut s = format!(
        "{} on {} (train length {}{})\n",
        r.scheme.name(),
        r.task.name(),
        r.train_len,
        r.rope_scaling
            .as_deref()
            .map(|x| format!(", rope scaling {x}"))
            .unwrap_or_default()
    );
    if r.task.is_lm() {
        s += &format!(
            "{:>7} {:>6} {:>9} {:>9} {:>9}\n",
            "length", "×train", "windows", "ppl", "tail ppl"
        );
        for p in &r.results {
            s += &format!(
                "{:>7} {:>6.1} {:>9} {:>9.3} {:>9.3}\n",
                p.len,
                p.multiple,
                p.sequences,
                p.ppl,
                p.tail_ppl.unwrap_or(f64::NAN)
            );
        }
    } else {
        s += &format!(
            "{:>7} {:>6} {:>9} {:>9} {:>9}\n",
            "length", "×train", "sequences", "token acc", "exact"
        );
        for p in &r.results {
            s += &format!(
                "{:>7} {:>6.1} {:>9} {:>9.3} {:>9.3}\n",
                p.len,
                p.multiple,
                p.sequences,
                p.token_accuracy.unwrap_or(f64::NAN),
                p.exact_match.unwrap_or(f64::NAN)
            );
        }
    }
    s
}

fn run_sweep(a: SweepArgs) -> anyhow::Result<i32> {
    let train_len = a.size.train_len;
    let mut lengths: Vec<usize> = a.multiples.iter().map(|m| m * train_len).collect();
    lengths.sort_unstable();
    lengths.dedup();
    if lengths.first() == Some(&0) {
        anyhow::bail!("invalid --multiples: whole numbers >= 1");
    }
    let spec = SweepSpec {
        schemes: a.schemes.clone(),
        tasks: a.tasks.clone(),
        seeds: a.seeds.clone(),
        d_model: a.size.d_model,
        heads: a.size.heads,
        layers: a.size.layers,
        train_len,
        lengths,
        test_rows: a.test_rows,
        test_seed: a.test_seed,
        train: a.size.options(),
        text: a.size.text.clone(),
    };
    if a.plan {
        spec.validate()?;
        let cells: Vec<serde_json::Value> = spec
            .cells()
            .iter()
            .enumerate()
            .map(|(i, c)| serde_json::json!({"index": i, "id": c.id(), "task": c.task, "scheme": c.scheme, "seed": c.seed}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"count": cells.len(), "cells": cells})
        );
        return Ok(0);
    }
    let out = a.out.clone().context("--out is required")?;
    let steps = spec.train.steps;
    let bar = progress_bar(steps, "sweep", a.json);
    let quiet = a.json;
    // A line per cell: above the bar on a terminal, on stderr otherwise (a log file).
    let say = |line: String| {
        if quiet {
            return;
        }
        if bar.is_hidden() {
            eprintln!("{line}");
        } else {
            bar.println(line);
        }
    };
    if let Some(ids) = &a.cells {
        let known: Vec<String> = spec.cells().iter().map(|c| c.id()).collect();
        if let Some(bad) = ids.iter().find(|id| !known.contains(id)) {
            anyhow::bail!("invalid --cells: ids of this grid's cells (see --plan), got `{bad}`");
        }
    }
    let shard = a.shard;
    let only = a.cells.clone();
    let select = move |i: usize, c: &sweep::Cell| match (&only, shard) {
        (Some(ids), _) => ids.contains(&c.id()),
        (None, Some(s)) => i % s.count == s.index,
        (None, None) => true,
    };
    let summary = sweep::sweep_cells(&spec, &out, &select, &mut |e| match e {
        SweepEvent::Skipped(c) => say(format!("{}: finished before, skipped", c.id())),
        SweepEvent::Started(c, i, n) => {
            bar.reset();
            bar.set_message(format!("cell {}/{} {}", i + 1, n, c.id()));
        }
        SweepEvent::Step(p) => bar.set_position(p.step as u64),
        SweepEvent::Finished(c, path, wall) => say(format!(
            "{}: {:.1} s, wrote {}",
            c.id(),
            wall,
            path.display()
        )),
    })?;
    bar.finish_and_clear();
    report_summary(&spec, &summary, &out, a.json)
}

fn run_merge(a: MergeArgs) -> anyhow::Result<i32> {
    let summary = sweep::merge(&a.dirs, &a.out)?;
    let spec = sweep::read_spec(&a.out)?;
    report_summary(&spec, &summary, &a.out, a.json)
}

fn report_summary(
    spec: &SweepSpec,
    summary: &Summary,
    out: &Path,
    json: bool,
) -> anyhow::Result<i32> {
    let table = render_summary(spec, summary);
    let md = out.join("summary.md");
    posenc_lab::checkpoint::write_atomic(&md, table.as_bytes())?;
    let figs = plots::report_written(summary_figure(summary, &out.join("summary")), json);
    if json {
        println!("{}", serde_json::to_string_pretty(summary)?);
    } else {
        print!("{table}");
        println!("wrote {}", md.display());
        let _ = figs;
    }
    Ok(0)
}

fn fmt_spread(s: Option<&sweep::Spread>, digits: usize) -> String {
    match s {
        Some(s) => format!("{:.digits$} ± {:.digits$}", s.mean, s.std),
        None => "–".into(),
    }
}

/// The summary as Markdown: one table per task (headline metric mean ± std over seeds by
/// length), then the "train length, max usable length, extrapolation" table.
fn render_summary(spec: &SweepSpec, s: &Summary) -> String {
    let mut out = format!(
        "Grid: {} of {} cells finished; {} layers, d_model {}, {} heads, train length {}, {} steps of {} sequences, lr {}; {} test sequences per length; mean ± std over seeds.\n\n",
        s.cells_done, s.cells_total, spec.layers, spec.d_model, spec.heads, spec.train_len, spec.train.steps, spec.train.batch, spec.train.lr, spec.test_rows
    );
    for &task in &spec.tasks {
        let rows: Vec<&sweep::SummaryRow> = s.rows.iter().filter(|r| r.task == task).collect();
        if rows.is_empty() {
            continue;
        }
        let (metric, digits) = if task.is_lm() {
            ("perplexity (bytes)", 3)
        } else {
            ("token accuracy / exact match", 2)
        };
        out += &format!("### {} — {metric}\n\n| scheme | seeds |", task.name());
        for l in &s.lengths {
            out += &format!(" {l} ({}×) |", l / s.train_len.max(1));
        }
        out += "\n|---|---|";
        out += &"---|".repeat(s.lengths.len());
        out += "\n";
        for r in rows {
            out += &format!("| {} | {} |", r.scheme.name(), r.seeds);
            for p in &r.points {
                if task.is_lm() {
                    out += &format!(" {} |", fmt_spread(p.ppl.as_ref(), digits));
                } else {
                    out += &format!(
                        " {} / {} |",
                        fmt_spread(p.token_accuracy.as_ref(), digits),
                        fmt_spread(p.exact_match.as_ref(), digits)
                    );
                }
            }
            out += "\n";
        }
        out += "\n";
    }
    out += &format!(
        "### Train length, max usable length, extrapolation\n\nA length is usable while the seed-mean token accuracy keeps {:.0}% of its value at the training length (perplexity: stays within {:.0}% above it); max usable length is the longest tested length up to which every tested length is usable; \"not learned\": token accuracy below {:.0}% at the training length.\n\n| task | scheme | train length | max usable length | extrapolation | tokens/s (training) |\n|---|---|---|---|---|---|\n",
        100.0 * sweep::USABLE_SHARE,
        100.0 * (1.0 / sweep::USABLE_SHARE - 1.0),
        100.0 * sweep::LEARNED_MIN_ACCURACY
    );
    for r in &s.rows {
        let (usable, ext) = match (r.max_usable_len, r.extrapolation) {
            (Some(l), Some(e)) => (l.to_string(), format!("{e:.0}×")),
            _ if !r.learned => ("not learned".into(), "–".into()),
            _ => ("< train length".into(), "–".into()),
        };
        out += &format!(
            "| {} | {} | {} | {usable} | {ext} | {:.0} |\n",
            r.task.name(),
            r.scheme.name(),
            s.train_len,
            r.tokens_per_s
        );
    }
    out
}

fn summary_figure(s: &Summary, base: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut tasks: Vec<Task> = s.rows.iter().map(|r| r.task).collect();
    tasks.dedup();
    let panels: Vec<plots::BandPanel> = tasks
        .iter()
        .map(|&task| plots::BandPanel {
            title: if task.is_lm() {
                "lm: perplexity".into()
            } else {
                format!("{}: token accuracy", task.name())
            },
            series: s
                .rows
                .iter()
                .filter(|r| r.task == task)
                .map(|r| {
                    let pts = r
                        .points
                        .iter()
                        .filter_map(|p| headline(p).map(|h| (p.len as f64, h.mean, h.min, h.max)))
                        .collect();
                    let colour = ALL_SCHEMES.iter().position(|k| *k == r.scheme).unwrap_or(0);
                    (r.scheme.name().to_string(), colour, pts)
                })
                .collect(),
            x_desc: "test length".into(),
            y_desc: if task.is_lm() {
                "perplexity".into()
            } else {
                "token accuracy".into()
            },
            log_y: task.is_lm(),
            marker: Some((s.train_len as f64, format!("train length {}", s.train_len))),
        })
        .collect();
    let width = 420 * panels.len().max(1) as u32;
    plots::band_charts(
        base,
        "posenc lab: metric by test length (mean over seeds, bars: min–max)",
        &panels,
        (width, 440),
    )
}
