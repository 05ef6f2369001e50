//! Length-generalization curves from `posenc lab` result files, for the explorer's NoPE panel.
//!
//! The reader is tolerant of the file layout: it looks, anywhere in the JSON, for records that
//! name a `scheme` and a test length (`length`, `len`, `test_len`, `eval_len` or `seq_len`) with
//! numeric metrics (`accuracy`, `exact_match`, `sequence_accuracy`, `token_accuracy`,
//! `perplexity`, `ppl`, `loss`), or a `scheme` with a `lengths` list and metric lists of the same
//! length. Records are grouped by task, metric and scheme; seeds are averaged (mean, min, max).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Metric keys recognised, best first.
pub const METRICS: [&str; 8] = [
    "accuracy",
    "exact_match",
    "sequence_accuracy",
    "token_accuracy",
    "perplexity",
    "ppl",
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
    /// One curve per scheme.
    pub curves: Vec<LabCurve>,
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64().filter(|x| x.is_finite())
}

fn first_num(obj: &serde_json::Map<String, Value>, keys: &[&str]) -> Option<f64> {
    keys.iter().find_map(|k| obj.get(*k).and_then(num))
}

fn text(obj: &serde_json::Map<String, Value>, key: &str) -> Option<String> {
    match obj.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// (task, metric, scheme) → length → values; and the training lengths seen per group.
#[derive(Default)]
struct Collected {
    values: BTreeMap<(String, String, String), BTreeMap<u64, (f64, Vec<f64>)>>,
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

fn walk(v: &Value, task: Option<&str>, train: Option<f64>, out: &mut Collected, depth: usize) {
    if depth > 12 {
        return;
    }
    match v {
        Value::Array(items) => {
            for x in items {
                walk(x, task, train, out, depth + 1);
            }
        }
        Value::Object(obj) => {
            let task_here = text(obj, "task");
            let task = task_here.as_deref().or(task);
            let train = first_num(obj, &TRAIN_KEYS).or(train);
            if let Some(scheme) = text(obj, "scheme") {
                let t = task.unwrap_or("-");
                if let Some(length) = first_num(obj, &LENGTH_KEYS) {
                    for m in METRICS {
                        if let Some(x) = obj.get(m).and_then(num) {
                            out.push(t, m, &scheme, length, x, train);
                        }
                    }
                    return;
                }
                if let Some(lengths) = obj.get("lengths").and_then(Value::as_array) {
                    let lengths: Vec<Option<f64>> = lengths.iter().map(num).collect();
                    for m in METRICS {
                        let Some(vals) = obj.get(m).and_then(Value::as_array) else {
                            continue;
                        };
                        if vals.len() != lengths.len() {
                            continue;
                        }
                        for (l, x) in lengths.iter().zip(vals) {
                            if let (Some(l), Some(x)) = (l, num(x)) {
                                out.push(t, m, &scheme, *l, x, train);
                            }
                        }
                    }
                    return;
                }
            }
            for x in obj.values() {
                walk(x, task, train, out, depth + 1);
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
        walk(d, None, None, &mut c, 0);
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
    groups
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
                curves,
            }
        })
        .collect()
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
}
