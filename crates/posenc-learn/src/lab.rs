//! Length-generalization curves from `posenc lab` result files, for the explorer's NoPE panel.
//!
//! `posenc lab sweep` writes one file per finished cell (`cells/TASK-SCHEME-sSEED.json`: the
//! cell, its model, training log and `eval` = {task, scheme, train_len, results: [{len,
//! token_accuracy, exact_match, ppl, tail_ppl, ...}]}) and a `summary.json` of spreads. The
//! reader takes the per-seed numbers and is tolerant of the layout: it looks, anywhere in the
//! JSON, for records with a test length (`length`, `len`, `test_len`, `eval_len` or `seq_len`)
//! and numeric metrics (see [`METRICS`]), whose `scheme`, `task` and training length are given on
//! the record or on an object around it; or a `scheme` with a `lengths` list and metric lists of
//! the same length. Records are grouped by task, metric and scheme; seeds are averaged (mean,
//! min, max). Spreads already averaged (a summary's `{mean, std, min, max}` objects) are not
//! numbers and are skipped, so a summary next to its cells is not counted twice.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Metric keys recognised, in the order a task's main metric is chosen.
pub const METRICS: [&str; 9] = [
    "accuracy",
    "exact_match",
    "sequence_accuracy",
    "token_accuracy",
    "perplexity",
    "ppl",
    "tail_ppl",
    "loss",
    "bits_per_char",
];

const LENGTH_KEYS: [&str; 5] = ["length", "len", "test_len", "eval_len", "seq_len"];
const TRAIN_KEYS: [&str; 4] = [
    "train_len",
    "train_length",
    "training_length",
    "train_seq_len",
];

/// One scheme's curve: metric against test length, over seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabCurve {
    /// The scheme.
    pub scheme: String,
    /// Test lengths, ascending.
    pub lengths: Vec<f64>,
    /// Mean over seeds at each length.
    pub mean: Vec<f64>,
    /// Smallest value over seeds.
    pub min: Vec<f64>,
    /// Largest value over seeds.
    pub max: Vec<f64>,
    /// Number of values averaged at each length.
    pub count: Vec<usize>,
}

/// The curves of one task and metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabGroup {
    /// The task (`copy`, `reverse`, ...; `"-"` when the files do not say).
    pub task: String,
    /// The metric.
    pub metric: String,
    /// Training length, when the records give one (the most common value).
    pub train_len: Option<f64>,
    /// Whether this is the task's main metric (the first of [`METRICS`] it has).
    pub primary: bool,
    /// One curve per scheme.
    pub curves: Vec<LabCurve>,
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64().filter(|x| x.is_finite())
}

fn first_num(obj: &serde_json::Map<String, Value>, keys: &[&str]) -> Option<f64> {
    keys.iter().find_map(|k| obj.get(*k).and_then(num))
}

/// A test length's bits → (the length, the values seen there).
type ByLength = BTreeMap<u64, (f64, Vec<f64>)>;

/// (task, metric, scheme) → length → values; and the training lengths seen per group.
#[derive(Default)]
struct Collected {
    values: BTreeMap<(String, String, String), ByLength>,
    train: BTreeMap<(String, String), Vec<f64>>,
}

impl Collected {
    fn push(
        &mut self,
        task: &str,
        metric: &str,
        scheme: &str,
        length: f64,
        v: f64,
        train: Option<f64>,
    ) {
        let slot = self
            .values
            .entry((task.into(), metric.into(), scheme.into()))
            .or_default()
            .entry(length.to_bits())
            .or_insert((length, Vec::new()));
        slot.1.push(v);
        if let Some(t) = train {
            self.train
                .entry((task.into(), metric.into()))
                .or_default()
                .push(t);
        }
    }
}

/// What the objects around a record say about it.
#[derive(Clone, Copy, Default)]
struct Context<'a> {
    task: Option<&'a str>,
    scheme: Option<&'a str>,
    train: Option<f64>,
}

fn walk(v: &Value, ctx: Context<'_>, out: &mut Collected, depth: usize) {
    if depth > 12 {
        return;
    }
    match v {
        Value::Array(items) => {
            for x in items {
                walk(x, ctx, out, depth + 1);
            }
        }
        Value::Object(obj) => {
            let str_of = |k: &str| obj.get(k).and_then(Value::as_str);
            let ctx = Context {
                task: str_of("task").or(ctx.task),
                scheme: str_of("scheme").or(ctx.scheme),
                train: first_num(obj, &TRAIN_KEYS).or(ctx.train),
            };
            let task = ctx.task.unwrap_or("-");
            if let Some(scheme) = ctx.scheme {
                if let Some(length) = first_num(obj, &LENGTH_KEYS) {
                    for m in METRICS {
                        if let Some(x) = obj.get(m).and_then(num) {
                            out.push(task, m, scheme, length, x, ctx.train);
                        }
                    }
                    return;
                }
                if let Some(lengths) = obj.get("lengths").and_then(Value::as_array) {
                    let lengths: Vec<Option<f64>> = lengths.iter().map(num).collect();
                    let mut found = false;
                    for m in METRICS {
                        let Some(vals) = obj.get(m).and_then(Value::as_array) else {
                            continue;
                        };
                        if vals.len() != lengths.len() {
                            continue;
                        }
                        for (l, x) in lengths.iter().zip(vals) {
                            if let (Some(l), Some(x)) = (l, num(x)) {
                                out.push(task, m, scheme, *l, x, ctx.train);
                                found = true;
                            }
                        }
                    }
                    if found {
                        return;
                    }
                }
            }
            for x in obj.values() {
                walk(x, ctx, out, depth + 1);
            }
        }
        _ => {}
    }
}

/// The curves found in the result files `docs` (each a parsed JSON file), grouped by task and
/// metric, schemes sorted by name.
pub fn lab_curves(docs: &[Value]) -> Vec<LabGroup> {
    let mut c = Collected::default();
    for d in docs {
        walk(d, Context::default(), &mut c, 0);
    }
    let mut groups: BTreeMap<(String, String), Vec<LabCurve>> = BTreeMap::new();
    for ((task, metric, scheme), by_len) in c.values {
        let mut curve = LabCurve {
            scheme,
            lengths: vec![],
            mean: vec![],
            min: vec![],
            max: vec![],
            count: vec![],
        };
        let mut points: Vec<(f64, Vec<f64>)> = by_len.into_values().collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (l, vals) in points {
            curve.lengths.push(l);
            curve
                .mean
                .push(vals.iter().sum::<f64>() / vals.len() as f64);
            curve
                .min
                .push(vals.iter().copied().fold(f64::INFINITY, f64::min));
            curve
                .max
                .push(vals.iter().copied().fold(f64::NEG_INFINITY, f64::max));
            curve.count.push(vals.len());
        }
        groups.entry((task, metric)).or_default().push(curve);
    }
    let rank = |m: &str| {
        METRICS
            .iter()
            .position(|x| *x == m)
            .unwrap_or(METRICS.len())
    };
    let mut out: Vec<LabGroup> = groups
        .into_iter()
        .map(|((task, metric), curves)| {
            let train_len = c.train.get(&(task.clone(), metric.clone())).and_then(|ts| {
                let mut counts: BTreeMap<u64, (f64, usize)> = BTreeMap::new();
                for t in ts {
                    counts.entry(t.to_bits()).or_insert((*t, 0)).1 += 1;
                }
                counts.into_values().max_by_key(|(_, n)| *n).map(|(t, _)| t)
            });
            LabGroup {
                task,
                metric,
                train_len,
                primary: false,
                curves,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        a.task
            .cmp(&b.task)
            .then(rank(&a.metric).cmp(&rank(&b.metric)))
    });
    for i in 0..out.len() {
        out[i].primary = i == 0 || out[i - 1].task != out[i].task;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_and_list_layouts_group_and_average_over_seeds() {
        let rows = json!({"cells": [
            {"scheme": "nope", "task": "copy", "seed": 0, "train_len": 32, "length": 64, "accuracy": 0.5},
            {"scheme": "nope", "task": "copy", "seed": 1, "train_len": 32, "length": 64, "accuracy": 0.7},
            {"scheme": "rope", "task": "copy", "seed": 0, "train_len": 32, "length": 32, "accuracy": 1.0},
        ]});
        let lists = json!({"task": "copy", "train_len": 32,
            "results": [{"scheme": "alibi", "lengths": [32, 64], "accuracy": [1.0, 0.9]}]});
        let g = lab_curves(&[rows, lists]);
        assert_eq!(g.len(), 1);
        assert_eq!(
            (g[0].task.as_str(), g[0].metric.as_str(), g[0].train_len),
            ("copy", "accuracy", Some(32.0))
        );
        let nope = g[0].curves.iter().find(|c| c.scheme == "nope").unwrap();
        assert_eq!(nope.lengths, [64.0]);
        assert!((nope.mean[0] - 0.6).abs() < 1e-12 && nope.min[0] == 0.5 && nope.max[0] == 0.7);
        assert_eq!(nope.count, [2]);
        let alibi = g[0].curves.iter().find(|c| c.scheme == "alibi").unwrap();
        assert_eq!(alibi.mean, [1.0, 0.9]);
        assert!(lab_curves(&[json!({"unrelated": [1, 2]})]).is_empty());
    }

    #[test]
    fn posenc_lab_cell_files_are_read_and_their_summary_is_not_counted_twice() {
        let cell = |scheme: &str, seed: u64, em: [f64; 2]| {
            json!({"cell": {"task": "copy", "scheme": scheme, "seed": seed},
                   "spec": {"schemes": ["nope", "rope"], "tasks": ["copy"], "train_len": 32},
                   "model": {"layers": 2, "d_model": 64},
                   "eval": {"task": "copy", "scheme": scheme, "train_len": 32, "test_seed": 1,
                            "results": [
                              {"len": 32, "multiple": 1.0, "token_accuracy": 1.0, "exact_match": em[0], "nll": 0.1, "ppl": 1.1, "tail_ppl": null},
                              {"len": 64, "multiple": 2.0, "token_accuracy": 0.8, "exact_match": em[1], "nll": 0.9, "ppl": 2.4, "tail_ppl": null}]},
                   "wall_s": 12.0})
        };
        let summary = json!({"train_len": 32, "lengths": [32, 64], "rows": [{"task": "copy", "scheme": "nope", "seeds": 2,
            "points": [{"len": 32, "multiple": 1.0, "exact_match": {"mean": 0.9, "std": 0.1, "min": 0.8, "max": 1.0}}]}]});
        let g = lab_curves(&[
            cell("nope", 0, [1.0, 0.5]),
            cell("nope", 1, [0.8, 0.3]),
            cell("rope", 0, [1.0, 0.0]),
            summary,
        ]);
        let primary: Vec<_> = g.iter().filter(|x| x.primary).collect();
        assert_eq!(primary.len(), 1);
        assert_eq!(
            (primary[0].task.as_str(), primary[0].metric.as_str()),
            ("copy", "exact_match")
        );
        assert_eq!(primary[0].train_len, Some(32.0));
        let nope = primary[0]
            .curves
            .iter()
            .find(|c| c.scheme == "nope")
            .unwrap();
        assert_eq!(nope.count, [2, 2], "the summary's spread is not a value");
        assert!((nope.mean[1] - 0.4).abs() < 1e-12);
        assert!(g.iter().any(|x| x.metric == "token_accuracy" && !x.primary));
    }
}
