//! Where the model looks: attention entropy and attended distance per layer and head.
//!
//! One forward pass over a text with an [`AttentionProbe`] attached. For each query `i` (arrival
//! index; queries before `query_from` are skipped) and head with weights `p_j` over keys `j ≤ i`:
//!
//! * entropy `−Σ p_j ln p_j` (nats): 0 when one key takes all the weight, `ln(i + 1)` when uniform;
//! * mean attended distance `Σ p_j (i − j)`;
//! * weight on the first token `p_0` (the "attention sink" many models develop), and the mean
//!   distance over the other keys, `Σ_{j≥1} p_j (i − j) / Σ_{j≥1} p_j` (the sink sits at distance
//!   `i` and otherwise dominates the mean);
//! * the attention weight by distance bin (`0`, `1`, `2-3`, `4-7`, ...).
//!
//! Each is averaged over queries. A uniform causal attention over the same queries is given as a
//! baseline (`uniform_entropy`, `uniform_mean_distance`).

use crate::error::{Error, Result};
use crate::llama::{AttentionProbe, Llama, RopeSetup, DISTANCE_BINS};

/// Labels of the distance bins: `0`, `1`, `2-3`, ..., `32768+`.
pub fn distance_bin_labels() -> Vec<String> {
    (0..DISTANCE_BINS)
        .map(|b| match b {
            0 => "0".to_string(),
            1 => "1".to_string(),
            b if b == DISTANCE_BINS - 1 => format!("{}+", 1usize << (b - 1)),
            b => format!("{}-{}", 1usize << (b - 1), (1usize << b) - 1),
        })
        .collect()
}

/// Distance histogram of one head.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HeadDistances {
    /// Layer index.
    pub layer: usize,
    /// Head index.
    pub head: usize,
    /// Mean attention weight per distance bin (sums to 1).
    pub distance_mass: Vec<f64>,
}

/// Result of [`attention_stats`]. Field order is what the explorer reads: `layers` labels rows,
/// `heads` the columns of the `layers × heads` tables, `distance_bins` the columns of
/// `distance_mass_by_layer`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AttentionStatsReport {
    /// Where the text came from.
    pub source: String,
    /// Tokens run.
    pub tokens: usize,
    /// First query counted.
    pub query_from: usize,
    /// The RoPE scaling used.
    pub scaling: String,
    /// Row labels (layer index).
    pub layers: Vec<usize>,
    /// Column labels (query head index).
    pub heads: Vec<usize>,
    /// Mean entropy (nats), `layers × heads`.
    pub entropy: Vec<Vec<f64>>,
    /// Mean attended distance (tokens), `layers × heads`.
    pub mean_distance: Vec<Vec<f64>>,
    /// Mean weight on the first token, `layers × heads`.
    pub first_token_weight: Vec<Vec<f64>>,
    /// Mean attended distance over the keys after the first, `layers × heads`.
    pub mean_distance_after_first: Vec<Vec<f64>>,
    /// Entropy of uniform causal attention over the same queries.
    pub uniform_entropy: f64,
    /// Mean distance of uniform causal attention over the same queries.
    pub uniform_mean_distance: f64,
    /// Column labels of `distance_mass_by_layer` (bins up to the longest distance in the text).
    pub distance_bins: Vec<String>,
    /// Mean attention weight per distance bin, averaged over the heads of each layer.
    pub distance_mass_by_layer: Vec<Vec<f64>>,
    /// Per head histograms.
    pub heads_detail: Vec<HeadDistances>,
}

/// Runs `tokens` at positions `0..n` with `rope` and gathers the statistics.
pub fn attention_stats(
    llama: &Llama,
    rope: &RopeSetup,
    tokens: &[u32],
    query_from: usize,
    source: &str,
) -> Result<AttentionStatsReport> {
    let n = tokens.len();
    if n == 0 || query_from >= n {
        return Err(Error::Model(format!(
            "attention-stats needs more than query_from = {query_from} tokens, got {n}"
        )));
    }
    let c = &llama.config;
    let mut probe = AttentionProbe::new(c, query_from);
    let positions: Vec<u64> = (0..n as u64).collect();
    let mut cache = llama.new_cache(n);
    llama.forward_hidden(
        rope,
        tokens,
        &positions,
        &vec![true; n],
        &mut cache,
        &[],
        Some(&mut probe),
    )?;
    let table = |f: &dyn Fn(&crate::llama::HeadStats) -> f64| -> Vec<Vec<f64>> {
        (0..c.n_layers)
            .map(|l| {
                (0..c.n_heads)
                    .map(|h| {
                        let s = probe.head(l, h);
                        f(s) / s.queries.max(1) as f64
                    })
                    .collect()
            })
            .collect()
    };
    let entropy = table(&|s| s.entropy_sum);
    let mean_distance = table(&|s| s.distance_sum);
    let first_token_weight = table(&|s| s.first_token_sum);
    let mean_distance_after_first = table(&|s| s.distance_after_first_sum);
    let bins = crate::llama::distance_bin(n - 1) + 1;
    let mut heads_detail = Vec::new();
    let mut by_layer = Vec::new();
    for l in 0..c.n_layers {
        let mut layer = vec![0.0; bins];
        for h in 0..c.n_heads {
            let s = probe.head(l, h);
            let mass: Vec<f64> = s.distance_mass[..bins]
                .iter()
                .map(|m| m / s.queries.max(1) as f64)
                .collect();
            for (a, b) in layer.iter_mut().zip(&mass) {
                *a += b / c.n_heads as f64;
            }
            heads_detail.push(HeadDistances {
                layer: l,
                head: h,
                distance_mass: mass,
            });
        }
        by_layer.push(layer);
    }
    let queries = (n - query_from) as f64;
    let uniform_entropy = (query_from..n).map(|i| ((i + 1) as f64).ln()).sum::<f64>() / queries;
    let uniform_mean_distance = (query_from..n).map(|i| i as f64 / 2.0).sum::<f64>() / queries;
    Ok(AttentionStatsReport {
        source: source.to_string(),
        tokens: n,
        query_from,
        scaling: crate::scaling::describe(&rope.params),
        layers: (0..c.n_layers).collect(),
        heads: (0..c.n_heads).collect(),
        entropy,
        mean_distance,
        first_token_weight,
        mean_distance_after_first,
        uniform_entropy,
        uniform_mean_distance,
        distance_bins: distance_bin_labels()[..bins].to_vec(),
        distance_mass_by_layer: by_layer,
        heads_detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llama::distance_bin;

    #[test]
    fn bins_and_labels_agree() {
        let labels = distance_bin_labels();
        assert_eq!(labels.len(), DISTANCE_BINS);
        assert_eq!(&labels[..4], &["0", "1", "2-3", "4-7"]);
        assert_eq!(labels[DISTANCE_BINS - 1], "32768+");
        for d in [0usize, 1, 2, 3, 4, 7, 8, 1000, 32767, 32768, 1 << 20] {
            let b = distance_bin(d);
            let label = &labels[b];
            let ok = match label.split_once('-') {
                Some((lo, hi)) => {
                    (lo.parse::<usize>().unwrap()..=hi.parse::<usize>().unwrap()).contains(&d)
                }
                None if label.ends_with('+') => d >= label.trim_end_matches('+').parse().unwrap(),
                None => d == label.parse::<usize>().unwrap(),
            };
            assert!(ok, "distance {d} in bin {b} ({label})");
        }
    }
}
