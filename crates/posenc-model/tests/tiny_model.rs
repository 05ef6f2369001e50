//! The forward pass on a tiny random Llama written as a GGUF file here, against an independent
//! naive f64 implementation of the same equations (no model download needed).

use posenc_model::gguf::GgufFile;
use posenc_model::llama::{Llama, RopeLayout};

mod common;
use common::Writer;

const DIM: usize = 8;
const HEADS: usize = 2;
const KV_HEADS: usize = 1;
const HEAD_DIM: usize = 4;
const FFN: usize = 12;
const LAYERS: usize = 2;
const VOCAB: usize = 10;
const EPS: f64 = 1e-5;
const BASE: f64 = 10_000.0;

/// Deterministic pseudo-random values in [-0.5, 0.5) (an LCG; any values do).
fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

struct Weights {
    embd: Vec<f32>,
    out_norm: Vec<f32>,
    layers: Vec<[Vec<f32>; 9]>,
}

fn weights() -> Weights {
    let kv = KV_HEADS * HEAD_DIM;
    let layers = (0..LAYERS as u64)
        .map(|l| {
            let s = 100 * (l + 1);
            [
                values(s, DIM).iter().map(|v| 1.0 + v).collect(), // attn_norm
                values(s + 1, DIM * DIM),                         // q: DIM rows of DIM
                values(s + 2, kv * DIM),                          // k
                values(s + 3, kv * DIM),                          // v
                values(s + 4, DIM * DIM),                         // o
                values(s + 5, DIM).iter().map(|v| 1.0 + v).collect(), // ffn_norm
                values(s + 6, FFN * DIM),                         // gate
                values(s + 7, FFN * DIM),                         // up
                values(s + 8, DIM * FFN),                         // down
            ]
        })
        .collect();
    Weights {
        embd: values(1, VOCAB * DIM),
        out_norm: values(2, DIM).iter().map(|v| 1.0 + v).collect(),
        layers,
    }
}

fn tiny_gguf(w: &Weights) -> GgufFile {
    let kv = (KV_HEADS * HEAD_DIM) as u64;
    let (d, f) = (DIM as u64, FFN as u64);
    let mut g = Writer::new(3);
    g.kv_str("general.architecture", "llama")
        .kv_u32("llama.block_count", LAYERS as u32)
        .kv_u32("llama.embedding_length", DIM as u32)
        .kv_u32("llama.feed_forward_length", FFN as u32)
        .kv_u32("llama.attention.head_count", HEADS as u32)
        .kv_u32("llama.attention.head_count_kv", KV_HEADS as u32)
        .kv_f32("llama.rope.freq_base", BASE as f32)
        .kv_f32("llama.attention.layer_norm_rms_epsilon", EPS as f32)
        .kv_u32("llama.context_length", 64);
    g.tensor_f32("token_embd.weight", &[d, VOCAB as u64], &w.embd);
    g.tensor_f32("output_norm.weight", &[d], &w.out_norm);
    for (i, l) in w.layers.iter().enumerate() {
        let names = [
            "attn_norm",
            "attn_q",
            "attn_k",
            "attn_v",
            "attn_output",
            "ffn_norm",
            "ffn_gate",
            "ffn_up",
            "ffn_down",
        ];
        let dims: [&[u64]; 9] = [
            &[d],
            &[d, d],
            &[d, kv],
            &[d, kv],
            &[d, d],
            &[d],
            &[d, f],
            &[d, f],
            &[f, d],
        ];
        for ((name, dims), t) in names.iter().zip(dims).zip(l.iter()) {
            g.tensor_f32(&format!("blk.{i}.{name}.weight"), dims, t);
        }
    }
    GgufFile::parse(g.build()).unwrap()
}

/// `y = W x` for a weight of `rows` rows of `x.len()` values.
fn matvec(w: &[f32], x: &[f64]) -> Vec<f64> {
    w.chunks_exact(x.len())
        .map(|r| r.iter().zip(x).map(|(a, b)| *a as f64 * b).sum())
        .collect()
}

fn rmsnorm(x: &[f64], w: &[f32]) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    x.iter()
        .zip(w)
        .map(|(v, g)| v / (ms + EPS).sqrt() * *g as f64)
        .collect()
}

/// Interleaved rotation: pair i is (2i, 2i+1), angle = pos · BASE^(−2i/HEAD_DIM) (a fractional
/// position is linear interpolation).
fn rotate(head: &mut [f64], pos: f64) {
    for i in 0..HEAD_DIM / 2 {
        let theta = pos * BASE.powf(-2.0 * i as f64 / HEAD_DIM as f64);
        let (a, b) = (head[2 * i], head[2 * i + 1]);
        head[2 * i] = a * theta.cos() - b * theta.sin();
        head[2 * i + 1] = a * theta.sin() + b * theta.cos();
    }
}

/// Naive f64 forward pass over the whole sequence; logits of every position.
fn reference(w: &Weights, tokens: &[u32], positions: &[u64]) -> Vec<Vec<f64>> {
    let positions: Vec<f64> = positions.iter().map(|&p| p as f64).collect();
    reference_with_probs(w, tokens, &positions).0
}

/// Attention weights `[layer][head][query][key ≤ query]`.
type Probs = Vec<Vec<Vec<Vec<f64>>>>;

/// [`reference`] at real-valued positions, also returning every attention weight.
fn reference_with_probs(w: &Weights, tokens: &[u32], positions: &[f64]) -> (Vec<Vec<f64>>, Probs) {
    let n = tokens.len();
    let mut probs: Probs = vec![vec![vec![Vec::new(); n]; HEADS]; LAYERS];
    let mut x: Vec<Vec<f64>> = tokens
        .iter()
        .map(|&t| {
            w.embd[t as usize * DIM..(t as usize + 1) * DIM]
                .iter()
                .map(|&v| v as f64)
                .collect()
        })
        .collect();
    for (li, l) in w.layers.iter().enumerate() {
        let h: Vec<Vec<f64>> = x.iter().map(|r| rmsnorm(r, &l[0])).collect();
        let mut q: Vec<Vec<f64>> = h.iter().map(|r| matvec(&l[1], r)).collect();
        let mut k: Vec<Vec<f64>> = h.iter().map(|r| matvec(&l[2], r)).collect();
        let v: Vec<Vec<f64>> = h.iter().map(|r| matvec(&l[3], r)).collect();
        for i in 0..n {
            for head in q[i].chunks_exact_mut(HEAD_DIM) {
                rotate(head, positions[i]);
            }
            for head in k[i].chunks_exact_mut(HEAD_DIM) {
                rotate(head, positions[i]);
            }
        }
        for i in 0..n {
            let mut attn = vec![0.0; DIM];
            for hq in 0..HEADS {
                let g = hq * KV_HEADS / HEADS;
                let qh = &q[i][hq * HEAD_DIM..(hq + 1) * HEAD_DIM];
                let scores: Vec<f64> = (0..=i)
                    .map(|j| {
                        let kh = &k[j][g * HEAD_DIM..(g + 1) * HEAD_DIM];
                        qh.iter().zip(kh).map(|(a, b)| a * b).sum::<f64>()
                            / (HEAD_DIM as f64).sqrt()
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = scores.iter().map(|s| (s - m).exp()).sum();
                for (j, s) in scores.iter().enumerate() {
                    let p = (s - m).exp() / z;
                    probs[li][hq][i].push(p);
                    for t in 0..HEAD_DIM {
                        attn[hq * HEAD_DIM + t] += p * v[j][g * HEAD_DIM + t];
                    }
                }
            }
            let o = matvec(&l[4], &attn);
            for (a, b) in x[i].iter_mut().zip(o) {
                *a += b;
            }
        }
        for r in x.iter_mut() {
            let h = rmsnorm(r, &l[5]);
            let gate = matvec(&l[6], &h);
            let up = matvec(&l[7], &h);
            let act: Vec<f64> = gate
                .iter()
                .zip(&up)
                .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            for (a, b) in r.iter_mut().zip(matvec(&l[8], &act)) {
                *a += b;
            }
        }
    }
    let logits = x
        .iter()
        .map(|r| matvec(&w.embd, &rmsnorm(r, &w.out_norm)))
        .collect();
    (logits, probs)
}

fn max_diff(a: &[f32], b: &[Vec<f64>]) -> f64 {
    let flat: Vec<f64> = b.iter().flatten().copied().collect();
    assert_eq!(a.len(), flat.len());
    a.iter()
        .zip(&flat)
        .map(|(x, y)| (*x as f64 - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn forward_matches_naive_f64_reference() {
    let w = weights();
    let mut llama = Llama::from_gguf(&tiny_gguf(&w)).unwrap();
    llama.rope.precision = posenc::rope::Precision::Exact;
    let tokens = [3u32, 1, 4, 1, 5, 9, 2, 6];
    // Non-contiguous positions: the runner must use the ids it is given.
    let positions = [0u64, 1, 2, 5, 6, 40, 41, 100];
    let rows: Vec<usize> = (0..tokens.len()).collect();
    let mut cache = llama.new_cache(16);
    let got = llama
        .forward_rows(&tokens, &positions, &[true; 8], &mut cache, &rows)
        .unwrap();
    let want = reference(&w, &tokens, &positions);
    let d = max_diff(&got, &want);
    assert!(d < 1e-4, "max |Δlogit| vs f64 reference: {d}");

    // Half-split layout on the same weights is a different model.
    llama.rope.layout = RopeLayout::HalfSplit;
    let mut cache = llama.new_cache(16);
    let wrong = llama
        .forward_rows(&tokens, &positions, &[true; 8], &mut cache, &rows)
        .unwrap();
    assert!(max_diff(&wrong, &want) > 1e-3);
}

#[test]
fn prefill_plus_decode_equals_full_pass() {
    let w = weights();
    let llama = Llama::from_gguf(&tiny_gguf(&w)).unwrap();
    let tokens = [7u32, 0, 3, 3, 8, 1];
    let positions: Vec<u64> = (0..6).collect();
    let mut cache = llama.new_cache(6);
    let full = llama
        .forward_rows(&tokens, &positions, &[true; 6], &mut cache, &[3, 4, 5])
        .unwrap();
    let mut cache = llama.new_cache(6);
    let mut steps = llama
        .forward(&tokens[..4], &positions[..4], &mut cache)
        .unwrap();
    for i in 4..6 {
        steps.extend(
            llama
                .forward(&tokens[i..=i], &positions[i..=i], &mut cache)
                .unwrap(),
        );
    }
    assert_eq!(cache.len(), 6);
    assert_eq!(cache.positions(), &positions[..]);
    let d = full
        .iter()
        .zip(&steps)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        d < 1e-5,
        "prefill + decode differs from the full pass by {d}"
    );
}

#[test]
fn bad_inputs_are_errors_and_leave_the_cache_alone() {
    let w = weights();
    let llama = Llama::from_gguf(&tiny_gguf(&w)).unwrap();
    let mut cache = llama.new_cache(4);
    assert!(
        llama.forward(&[1, 2], &[0], &mut cache).is_err(),
        "positions length"
    );
    assert!(
        llama.forward(&[VOCAB as u32], &[0], &mut cache).is_err(),
        "token id"
    );
    assert!(llama.forward(&[], &[], &mut cache).is_err(), "empty");
    assert!(
        llama
            .forward(&[1; 5], &[0, 1, 2, 3, 4], &mut cache)
            .is_err(),
        "cache cap"
    );
    assert!(
        llama
            .forward_rows(&[1], &[0], &[true], &mut cache, &[1])
            .is_err(),
        "logit row"
    );
    assert!(
        llama
            .forward_rows(&[1], &[0], &[], &mut cache, &[0])
            .is_err(),
        "mask length"
    );
    assert!(cache.is_empty());
    llama
        .forward(&[1, 2, 3, 4], &[0, 1, 2, 3], &mut cache)
        .unwrap();
    assert!(llama.forward(&[1], &[4], &mut cache).is_err(), "full cache");
    assert_eq!(cache.len(), 4);
}

#[test]
fn missing_tensor_and_wrong_shape_are_errors() {
    let w = weights();
    let good = tiny_gguf(&w);
    let mut g = good.clone();
    g.tensors.retain(|t| t.name != "blk.1.ffn_up.weight");
    assert!(Llama::from_gguf(&g)
        .err()
        .unwrap()
        .to_string()
        .contains("blk.1.ffn_up.weight"));
    let mut g = good;
    if let Some(t) = g
        .tensors
        .iter_mut()
        .find(|t| t.name == "blk.0.attn_q.weight")
    {
        t.dims = vec![DIM as u64, 4];
    }
    assert!(Llama::from_gguf(&g)
        .err()
        .unwrap()
        .to_string()
        .contains("shape"));
}

/// The attention probe's statistics equal those computed from the naive reference's weights.
#[test]
#[allow(clippy::needless_range_loop)]
fn attention_probe_matches_reference_weights() {
    use posenc_model::llama::{distance_bin, AttentionProbe, DISTANCE_BINS};
    let w = weights();
    let mut llama = Llama::from_gguf(&tiny_gguf(&w)).unwrap();
    llama.rope.precision = posenc::rope::Precision::Exact;
    let tokens = [3u32, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5];
    let n = tokens.len();
    let positions: Vec<u64> = (0..n as u64).collect();
    let query_from = 3;
    let mut probe = AttentionProbe::new(&llama.config, query_from);
    let mut cache = llama.new_cache(n);
    let rope = llama.rope.clone();
    llama
        .forward_hidden(
            &rope,
            &tokens,
            &positions,
            &[true; 11],
            &mut cache,
            &[],
            Some(&mut probe),
        )
        .unwrap();
    let pos_f: Vec<f64> = positions.iter().map(|&p| p as f64).collect();
    let (_, probs) = reference_with_probs(&w, &tokens, &pos_f);
    for l in 0..LAYERS {
        for h in 0..HEADS {
            let s = probe.head(l, h);
            assert_eq!(s.queries, (n - query_from) as u64);
            let (mut ent, mut dist, mut first, mut after) = (0.0, 0.0, 0.0, 0.0);
            let mut mass = [0.0f64; DISTANCE_BINS];
            for i in query_from..n {
                let p = &probs[l][h][i];
                ent -= p
                    .iter()
                    .filter(|&&v| v > 0.0)
                    .map(|v| v * v.ln())
                    .sum::<f64>();
                dist += p
                    .iter()
                    .enumerate()
                    .map(|(j, v)| v * (i - j) as f64)
                    .sum::<f64>();
                first += p[0];
                after += p
                    .iter()
                    .enumerate()
                    .skip(1)
                    .map(|(j, v)| v * (i - j) as f64)
                    .sum::<f64>()
                    / p[1..].iter().sum::<f64>();
                for (j, v) in p.iter().enumerate() {
                    mass[distance_bin(i - j)] += v;
                }
            }
            assert!(
                (s.entropy_sum - ent).abs() < 1e-4,
                "entropy {l}/{h}: {} vs {ent}",
                s.entropy_sum
            );
            assert!((s.distance_sum - dist).abs() < 1e-4, "distance {l}/{h}");
            assert!(
                (s.first_token_sum - first).abs() < 1e-5,
                "first token {l}/{h}"
            );
            assert!(
                (s.distance_after_first_sum - after).abs() < 1e-3,
                "distance after first {l}/{h}"
            );
            for (a, b) in s.distance_mass.iter().zip(&mass) {
                assert!((a - b).abs() < 1e-5, "distance mass {l}/{h}");
            }
        }
    }
    // Attaching a probe does not change the computation.
    let mut cache = llama.new_cache(n);
    let plain = llama
        .forward_hidden(
            &rope,
            &tokens,
            &positions,
            &[true; 11],
            &mut cache,
            &[n - 1],
            None,
        )
        .unwrap();
    let mut cache = llama.new_cache(n);
    let mut probe = AttentionProbe::new(&llama.config, 0);
    let probed = llama
        .forward_hidden(
            &rope,
            &tokens,
            &positions,
            &[true; 11],
            &mut cache,
            &[n - 1],
            Some(&mut probe),
        )
        .unwrap();
    assert_eq!(plain, probed);
}

/// Perplexity per length and scaling from `perplexity_curves` (which reuses prefixes of longer
/// runs) equals exp(mean NLL) of the naive reference run on each window separately.
#[test]
fn perplexity_curves_match_reference_windows() {
    use posenc_model::perplexity::{perplexity_curves, PerplexityConfig};
    let w = weights();
    let mut llama = Llama::from_gguf(&tiny_gguf(&w)).unwrap();
    llama.rope.precision = posenc::rope::Precision::Exact;
    let text: Vec<u32> = values(77, 60)
        .iter()
        .map(|v| ((v + 0.5) * VOCAB as f32) as u32 % VOCAB as u32)
        .collect();
    let mut linear = llama.rope.clone();
    linear.params.scaling = posenc::rope::RopeScaling::Linear { factor: 2.0 };
    let scalings = vec![
        ("none".to_string(), llama.rope.clone()),
        ("linear x2".to_string(), linear),
    ];
    let config = PerplexityConfig {
        lengths: vec![8, 16, 32],
        windows: 2,
        tail: 4,
    };
    let report = perplexity_curves(&llama, &scalings, &text, "test", &config, |_, _| {}).unwrap();
    assert_eq!(report.window_starts, config.window_starts(text.len()));
    // Static scalings: one run per scaling and window, at the longest length.
    assert_eq!(report.runs.len(), 2 * 2);
    for (si, factor) in [1.0f64, 2.0].iter().enumerate() {
        for (li, &l) in config.lengths.iter().enumerate() {
            let (mut sum, mut count, mut tsum, mut tcount) = (0.0, 0, 0.0, 0);
            for &start in &report.window_starts {
                let win = &text[start..start + l];
                let pos: Vec<f64> = (0..l).map(|p| p as f64 / factor).collect();
                let (logits, _) = reference_with_probs(&w, win, &pos);
                for i in 0..l - 1 {
                    let row = &logits[i];
                    let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
                    let nll = lse - row[win[i + 1] as usize];
                    sum += nll;
                    count += 1;
                    if i + 1 >= l - config.tail {
                        tsum += nll;
                        tcount += 1;
                    }
                }
            }
            let want = (sum / count as f64).exp();
            let want_tail = (tsum / tcount as f64).exp();
            let got = report.ppl[si][li];
            let got_tail = report.tail_ppl[si][li];
            assert!(
                (got - want).abs() < 1e-4 * want,
                "ppl {si}/{l}: {got} vs {want}"
            );
            assert!(
                (got_tail - want_tail).abs() < 1e-4 * want_tail,
                "tail {si}/{l}: {got_tail} vs {want_tail}"
            );
        }
    }
    // The two scalings are different models on these windows.
    assert!((report.ppl[0][2] - report.ppl[1][2]).abs() > 1e-6);
}
