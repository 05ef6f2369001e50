//! Reference attention against independent formulas: dense f64 attention written here from the
//! definition, the ALiBi and T5 bias builders of their own modules, RoPE rotation written in f64.

use posenc::alibi;
use posenc::attention::{
    add_absolute_positions, attention, attention_scores, AttentionOptions, Causal, HeadConfig,
    Mask, Scheme, SingleLayer,
};
use posenc::learned::LearnedTable;
use posenc::relative::{shaw_output, shaw_scores, t5_bias, T5Buckets};
use posenc::rope::{Precision, RopeLayout, RopeParams};
use posenc::sinusoidal::{self, SinusoidalLayout};
use posenc::{Error, PositionEntry};

mod common;
use common::Rng;

/// Dense attention from the definition, in f64: scores (given, `[h][i][j]`), softmax over allowed
/// pairs with `-inf` for masked ones, output `Σ w v`. GQA head map `h / group`.
fn dense_reference(
    heads: &HeadConfig,
    scores: &[f64],
    allowed: &dyn Fn(usize, usize) -> bool,
    v: &[f32],
    seq_q: usize,
    seq_k: usize,
) -> (Vec<f64>, Vec<f64>) {
    let d = heads.head_dim;
    let group = heads.n_q_heads / heads.n_kv_heads;
    let mut out = vec![0.0; seq_q * heads.n_q_heads * d];
    let mut weights = vec![0.0; heads.n_q_heads * seq_q * seq_k];
    for h in 0..heads.n_q_heads {
        for i in 0..seq_q {
            let row: Vec<f64> = (0..seq_k)
                .map(|j| {
                    if allowed(i, j) {
                        scores[(h * seq_q + i) * seq_k + j]
                    } else {
                        f64::NEG_INFINITY
                    }
                })
                .collect();
            let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            if max == f64::NEG_INFINITY {
                continue;
            }
            let e: Vec<f64> = row.iter().map(|s| (s - max).exp()).collect();
            let z: f64 = e.iter().sum();
            for j in 0..seq_k {
                let w = e[j] / z;
                weights[(h * seq_q + i) * seq_k + j] = w;
                for c in 0..d {
                    out[(i * heads.n_q_heads + h) * d + c] +=
                        w * v[(j * heads.n_kv_heads + h / group) * d + c] as f64;
                }
            }
        }
    }
    (out, weights)
}

fn raw_dot_scores(
    heads: &HeadConfig,
    q: &[f32],
    k: &[f32],
    seq_q: usize,
    seq_k: usize,
    scale: f64,
) -> Vec<f64> {
    let d = heads.head_dim;
    let group = heads.n_q_heads / heads.n_kv_heads;
    let mut s = Vec::new();
    for h in 0..heads.n_q_heads {
        for i in 0..seq_q {
            for j in 0..seq_k {
                let mut acc = 0.0f64;
                for c in 0..d {
                    acc += q[(i * heads.n_q_heads + h) * d + c] as f64
                        * k[(j * heads.n_kv_heads + h / group) * d + c] as f64;
                }
                s.push(scale * acc);
            }
        }
    }
    s
}

fn assert_close(a: &[f32], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (idx, (&x, &y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x as f64 - y).abs() <= tol,
            "{what}[{idx}]: {x} vs {y} (tol {tol})"
        );
    }
}

/// f32 storage of an f64 value in [-1, 1]-ish range: half an ulp of 1 plus accumulated f64 error.
const F32_OUT_TOL: f64 = 2.0 * f32::EPSILON as f64;

#[test]
fn alibi_scores_and_outputs_match_dense_reference_with_module_bias() {
    let heads = HeadConfig::new(4, 2, 8).unwrap();
    let (seq_q, seq_k, offset) = (3usize, 7usize, 4usize);
    let mut rng = Rng(1);
    let q = rng.vec(seq_q * heads.q_width());
    let k = rng.vec(seq_k * heads.kv_width());
    let v = rng.vec(seq_k * heads.kv_width());
    let qpos: Vec<u64> = (offset..offset + seq_q).map(|p| p as u64).collect();
    let kpos: Vec<u64> = (0..seq_k as u64).collect();
    for symmetric in [false, true] {
        let slopes = alibi::slopes(4).unwrap();
        let scheme = Scheme::Alibi {
            slopes: slopes.clone(),
            symmetric,
        };
        let bias = alibi::bias(&slopes, seq_q, seq_k, offset, symmetric).unwrap();
        let scale = 1.0 / (8f64).sqrt();
        let expected: Vec<f64> = raw_dot_scores(&heads, &q, &k, seq_q, seq_k, scale)
            .iter()
            .zip(&bias)
            .map(|(s, &b)| s + b as f64)
            .collect();
        let got = attention_scores(&heads, &q, &k, &qpos, &kpos, &scheme, None).unwrap();
        assert_close(&got, &expected, 1e-6, "alibi scores");

        let mask = Mask::causal_by_position();
        let opts = AttentionOptions {
            scale: None,
            return_weights: true,
        };
        let out = attention(&heads, &q, &k, &v, &qpos, &kpos, &scheme, &mask, &opts).unwrap();
        let (o, w) = dense_reference(
            &heads,
            &expected,
            &|i, j| kpos[j] <= qpos[i],
            &v,
            seq_q,
            seq_k,
        );
        assert_close(&out.output, &o, F32_OUT_TOL, "alibi output");
        assert_close(
            out.weights.as_ref().unwrap(),
            &w,
            F32_OUT_TOL,
            "alibi weights",
        );
    }
}

#[test]
fn t5_scores_match_module_bias_for_both_directions() {
    let heads = HeadConfig::mha(3, 4).unwrap();
    let (seq_q, seq_k, offset) = (5usize, 40usize, 30usize);
    let mut rng = Rng(2);
    let q = rng.vec(seq_q * heads.q_width());
    let k = rng.vec(seq_k * heads.kv_width());
    for bidirectional in [true, false] {
        let buckets = T5Buckets {
            bidirectional,
            num_buckets: 8,
            max_distance: 20,
        };
        let table: Vec<f32> = rng.vec(8 * 3).iter().map(|x| 3.0 * x).collect();
        let scheme = Scheme::T5 {
            bias_table: table.clone(),
            buckets,
        };
        let qpos: Vec<u64> = (offset..offset + seq_q).map(|p| p as u64).collect();
        let kpos: Vec<u64> = (0..seq_k as u64).collect();
        let bias = t5_bias(&table, 3, seq_q, seq_k, offset, &buckets).unwrap();
        let expected: Vec<f64> = raw_dot_scores(&heads, &q, &k, seq_q, seq_k, 1.0)
            .iter()
            .zip(&bias)
            .map(|(s, &b)| s + b as f64)
            .collect();
        let got = attention_scores(&heads, &q, &k, &qpos, &kpos, &scheme, Some(1.0)).unwrap();
        assert_close(&got, &expected, 1e-5, "t5 scores");
    }
}

/// Shaw scores and outputs match the relative module's single-head formulas (queries and keys at
/// positions 0.., as that module indexes them), including clipping beyond `k`.
#[test]
fn shaw_matches_relative_module() {
    let (d, k_max, seq_q, seq_k) = (6usize, 2usize, 4usize, 7usize);
    let heads = HeadConfig::mha(1, d).unwrap();
    let mut rng = Rng(11);
    let q = rng.vec(seq_q * d);
    let k = rng.vec(seq_k * d);
    let v = rng.vec(seq_k * d);
    let rel_k = rng.vec((2 * k_max + 1) * d);
    let rel_v = rng.vec((2 * k_max + 1) * d);
    let scheme = Scheme::Shaw {
        rel_k: rel_k.clone(),
        rel_v: rel_v.clone(),
        max_relative_position: k_max,
    };
    let qpos: Vec<u64> = (0..seq_q as u64).collect();
    let kpos: Vec<u64> = (0..seq_k as u64).collect();
    let got = attention_scores(&heads, &q, &k, &qpos, &kpos, &scheme, None).unwrap();
    let want = shaw_scores(&q, &k, &rel_k, seq_q, seq_k, k_max).unwrap();
    let want64: Vec<f64> = want.iter().map(|&x| x as f64).collect();
    assert_close(&got, &want64, 4.0 * F32_OUT_TOL, "shaw scores");
    let opts = AttentionOptions {
        scale: None,
        return_weights: true,
    };
    let out = attention(
        &heads,
        &q,
        &k,
        &v,
        &qpos,
        &kpos,
        &scheme,
        &Mask::none(),
        &opts,
    )
    .unwrap();
    let w = out.weights.unwrap();
    let want = shaw_output(&w, &v, &rel_v, seq_q, seq_k, k_max).unwrap();
    let want64: Vec<f64> = want.iter().map(|&x| x as f64).collect();
    assert_close(&out.output, &want64, 4.0 * F32_OUT_TOL, "shaw output");
    // The value table matters (the test can fail): without it the output differs.
    let keys_only = Scheme::Shaw {
        rel_k,
        rel_v: Vec::new(),
        max_relative_position: k_max,
    };
    let out2 = attention(
        &heads,
        &q,
        &k,
        &v,
        &qpos,
        &kpos,
        &keys_only,
        &Mask::none(),
        &opts,
    )
    .unwrap();
    assert_eq!(out2.weights.unwrap(), w);
    assert_ne!(out2.output, out.output);
}

/// RoPE scores equal `<R(p_i) q, R(p_j) k>` with the rotation written here in f64
/// (half-split and interleaved pairing, partial rotary, YaRN attention factor).
#[test]
fn rope_scores_match_f64_rotation() {
    let head_dim = 12;
    let params = RopeParams {
        base: 10000.0,
        head_dim,
        rotary_dim: 8,
        max_position_embeddings: 4096,
        scaling: posenc::rope::RopeScaling::Yarn(posenc::rope::YarnParams::new(4.0, 1024)),
    };
    let freqs = params.frequencies(None, Precision::Exact).unwrap();
    assert!(freqs.attention_factor > 1.0);
    let heads = HeadConfig::new(2, 1, head_dim).unwrap();
    let mut rng = Rng(3);
    let (seq_q, seq_k) = (3, 5);
    let q = rng.vec(seq_q * heads.q_width());
    let k = rng.vec(seq_k * heads.kv_width());
    let qpos = [7u64, 100, 5000];
    let kpos = [0u64, 3, 99, 4000, 70_000];
    for layout in [RopeLayout::HalfSplit, RopeLayout::Interleaved] {
        let rotate = |x: &[f32], p: u64| -> Vec<f64> {
            let mut out: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            let pairs = freqs.pairs();
            for (i, &f) in freqs.inv_freq.iter().enumerate() {
                let (a, b) = match layout {
                    RopeLayout::HalfSplit => (i, i + pairs),
                    RopeLayout::Interleaved => (2 * i, 2 * i + 1),
                };
                let (s, c) = (p as f64 * f).sin_cos();
                let (s, c) = (s * freqs.attention_factor, c * freqs.attention_factor);
                out[a] = x[a] as f64 * c - x[b] as f64 * s;
                out[b] = x[a] as f64 * s + x[b] as f64 * c;
            }
            out
        };
        let scheme = Scheme::Rope {
            freqs: freqs.clone(),
            layout,
        };
        let got = attention_scores(&heads, &q, &k, &qpos, &kpos, &scheme, None).unwrap();
        let scale = 1.0 / (head_dim as f64).sqrt();
        for h in 0..2 {
            for i in 0..seq_q {
                let qi = rotate(&q[(i * 2 + h) * head_dim..][..head_dim], qpos[i]);
                for j in 0..seq_k {
                    let kj = rotate(&k[j * head_dim..][..head_dim], kpos[j]);
                    let dot: f64 = qi.iter().zip(&kj).map(|(a, b)| a * b).sum();
                    let norms: f64 = qi.iter().map(|a| a * a).sum::<f64>().sqrt()
                        * kj.iter().map(|a| a * a).sum::<f64>().sqrt();
                    let g = got[(h * seq_q + i) * seq_k + j] as f64;
                    // f32 rotation of both vectors (≈ 8.5 half-ulps relative to |q||k|) plus
                    // f32 storage of the score.
                    let tol =
                        scale * 8.0 * f32::EPSILON as f64 * norms + f32::EPSILON as f64 * g.abs();
                    assert!(
                        (g - scale * dot).abs() <= tol,
                        "{layout:?} h{h} i{i} j{j}: {g} vs {}",
                        scale * dot
                    );
                }
            }
        }
    }
}

#[test]
fn gqa_equals_mha_with_repeated_kv_heads_and_mha_is_gqa_with_equal_heads() {
    let (nq, nkv, d, seq) = (6usize, 2usize, 4usize, 5usize);
    let gqa = HeadConfig::new(nq, nkv, d).unwrap();
    let mha = HeadConfig::mha(nq, d).unwrap();
    assert_eq!(mha, HeadConfig::new(nq, nq, d).unwrap());
    let mut rng = Rng(4);
    let q = rng.vec(seq * gqa.q_width());
    let k = rng.vec(seq * gqa.kv_width());
    let v = rng.vec(seq * gqa.kv_width());
    // repeat_kv: query head h reads kv head h / 3.
    let repeat = |x: &[f32]| -> Vec<f32> {
        let mut out = Vec::new();
        for t in 0..seq {
            for h in 0..nq {
                let src = (t * nkv + h / (nq / nkv)) * d;
                out.extend_from_slice(&x[src..src + d]);
            }
        }
        out
    };
    let (k_rep, v_rep) = (repeat(&k), repeat(&v));
    let pos: Vec<u64> = (10..10 + seq as u64).collect();
    let freqs = RopeParams::new(10000.0, d)
        .unwrap()
        .frequencies(None, Precision::Exact)
        .unwrap();
    let opts = AttentionOptions {
        scale: None,
        return_weights: true,
    };
    for scheme in [
        Scheme::NoPe,
        Scheme::Rope {
            freqs,
            layout: RopeLayout::HalfSplit,
        },
        Scheme::Alibi {
            slopes: alibi::slopes(nq).unwrap(),
            symmetric: false,
        },
    ] {
        let mask = Mask::causal_by_position();
        let a = attention(&gqa, &q, &k, &v, &pos, &pos, &scheme, &mask, &opts).unwrap();
        let b = attention(&mha, &q, &k_rep, &v_rep, &pos, &pos, &scheme, &mask, &opts).unwrap();
        assert_eq!(a, b, "{}", scheme.name());
    }
}

#[test]
fn masked_weights_are_exactly_zero_whatever_the_bias() {
    // Huge T5 bias entries: masked pairs would dominate if they leaked into the softmax.
    let heads = HeadConfig::mha(2, 4).unwrap();
    let buckets = T5Buckets {
        bidirectional: true,
        num_buckets: 8,
        max_distance: 16,
    };
    let mut table = vec![-1e30f32; 16];
    // Bucket 0 (distance 0) gets a large positive bias, everything else huge negative.
    table[0] = 1e30;
    table[1] = 1e30;
    let scheme = Scheme::T5 {
        bias_table: table,
        buckets,
    };
    let seq = 6;
    let mut rng = Rng(5);
    let q = rng.vec(seq * 8);
    let k = rng.vec(seq * 8);
    let v = rng.vec(seq * 8);
    let pos: Vec<u64> = (0..seq as u64).collect();
    // Diagonal masked out, plus key 2 padded.
    let allowed: Vec<bool> = (0..seq * seq).map(|x| x / seq != x % seq).collect();
    let mut padding = vec![true; seq];
    padding[2] = false;
    let mask = Mask::none().with_allowed(allowed).with_key_padding(padding);
    let opts = AttentionOptions {
        scale: None,
        return_weights: true,
    };
    let out = attention(&heads, &q, &k, &v, &pos, &pos, &scheme, &mask, &opts).unwrap();
    let w = out.weights.unwrap();
    for h in 0..2 {
        for i in 0..seq {
            let row = &w[(h * seq + i) * seq..][..seq];
            for (j, &x) in row.iter().enumerate() {
                if i == j || j == 2 {
                    assert_eq!(x.to_bits(), 0.0f32.to_bits(), "h{h} i{i} j{j}");
                }
                assert!(x.is_finite());
            }
            let sum: f64 = row.iter().map(|&x| x as f64).sum();
            assert!((sum - 1.0).abs() < 1e-6, "row sum {sum}");
        }
    }
    assert!(out.output.iter().all(|x| x.is_finite()));
}

#[test]
fn all_masked_rows_give_zero_output_and_zero_weights() {
    let heads = HeadConfig::mha(2, 3).unwrap();
    let mut rng = Rng(6);
    let (seq_q, seq_k) = (3, 4);
    let q = rng.vec(seq_q * 6);
    let k = rng.vec(seq_k * 6);
    let v: Vec<f32> = rng.vec(seq_k * 6).iter().map(|x| x + 5.0).collect();
    // Query positions before every key: causal by position masks everything for query 0.
    let qpos = [0u64, 12, 13];
    let kpos = [10u64, 11, 12, 13];
    let opts = AttentionOptions {
        scale: None,
        return_weights: true,
    };
    let out = attention(
        &heads,
        &q,
        &k,
        &v,
        &qpos,
        &kpos,
        &Scheme::Alibi {
            slopes: vec![0.5, 0.25],
            symmetric: false,
        },
        &Mask::causal_by_position(),
        &opts,
    )
    .unwrap();
    assert!(out.output[..6].iter().all(|&x| x == 0.0));
    assert!(out.output[6..].iter().all(|&x| x != 0.0));
    let w = out.weights.unwrap();
    for h in 0..2 {
        assert!(w[(h * seq_q) * seq_k..][..seq_k].iter().all(|&x| x == 0.0));
    }
    // Every key padded: every row zero.
    let out = attention(
        &heads,
        &q,
        &k,
        &v,
        &qpos,
        &kpos,
        &Scheme::NoPe,
        &Mask::none().with_key_padding(vec![false; seq_k]),
        &opts,
    )
    .unwrap();
    assert!(out.output.iter().all(|&x| x == 0.0));
}

#[test]
fn causal_by_index_equals_causal_by_position_for_contiguous_positions() {
    let heads = HeadConfig::new(4, 1, 4).unwrap();
    let mut rng = Rng(7);
    let (seq_q, seq_k) = (3, 8);
    let q = rng.vec(seq_q * heads.q_width());
    let k = rng.vec(seq_k * heads.kv_width());
    let v = rng.vec(seq_k * heads.kv_width());
    // Queries are the last 3 of 8 tokens at 100..108.
    let kpos: Vec<u64> = (100..108).collect();
    let qpos = &kpos[5..];
    let opts = AttentionOptions {
        scale: None,
        return_weights: true,
    };
    let scheme = Scheme::NoPe;
    let a = attention(
        &heads,
        &q,
        &k,
        &v,
        qpos,
        &kpos,
        &scheme,
        &Mask::causal_by_index(),
        &opts,
    )
    .unwrap();
    let b = attention(
        &heads,
        &q,
        &k,
        &v,
        qpos,
        &kpos,
        &scheme,
        &Mask::causal_by_position(),
        &opts,
    )
    .unwrap();
    assert_eq!(a, b);
    // And causal differs from no mask (the test can fail).
    let c = attention(
        &heads,
        &q,
        &k,
        &v,
        qpos,
        &kpos,
        &scheme,
        &Mask::none(),
        &opts,
    )
    .unwrap();
    assert_ne!(a.output, c.output);
    let m = Mask::causal_by_index();
    assert!(m.allows(0, 5, 3, 8, 0, 0));
    assert!(!m.allows(0, 6, 3, 8, 0, 0));
    assert_eq!(m.causal, Causal::ByIndex);
}

#[test]
fn scheme_entries_match_the_modules() {
    let freqs = RopeParams::new(10000.0, 4)
        .unwrap()
        .frequencies(None, Precision::Exact)
        .unwrap();
    let cases = [
        (Scheme::NoPe, PositionEntry::Nowhere),
        (
            Scheme::Sinusoidal {
                layout: SinusoidalLayout::Interleaved,
                base: 10000.0,
            },
            sinusoidal::ENTRY,
        ),
        (
            Scheme::Learned(LearnedTable::random(4, 4, 0, 1.0).unwrap()),
            posenc::learned::ENTRY,
        ),
        (
            Scheme::Rope {
                freqs,
                layout: RopeLayout::HalfSplit,
            },
            posenc::rope::ENTRY,
        ),
        (
            Scheme::Alibi {
                slopes: vec![0.5],
                symmetric: false,
            },
            alibi::ENTRY,
        ),
        (
            Scheme::T5 {
                bias_table: vec![0.0; 8],
                buckets: T5Buckets {
                    bidirectional: true,
                    num_buckets: 8,
                    max_distance: 16,
                },
            },
            posenc::relative::ENTRY,
        ),
        (
            Scheme::Shaw {
                rel_k: vec![0.0; 12],
                rel_v: vec![],
                max_relative_position: 1,
            },
            posenc::relative::ENTRY,
        ),
    ];
    for (scheme, entry) in cases {
        assert_eq!(scheme.entry(), entry, "{}", scheme.name());
    }
}

#[test]
fn add_absolute_positions_adds_the_module_rows() {
    let (seq, d) = (3usize, 6usize);
    let mut rng = Rng(8);
    let hidden = rng.vec(seq * d);
    let positions = [0u64, 5, 9];
    let mut h = hidden.clone();
    let scheme = Scheme::Sinusoidal {
        layout: SinusoidalLayout::Concat,
        base: 10000.0,
    };
    add_absolute_positions(&mut h, &positions, &scheme).unwrap();
    for (t, &p) in positions.iter().enumerate() {
        let pe = sinusoidal::row(p as f64, d, 10000.0, SinusoidalLayout::Concat).unwrap();
        for c in 0..d {
            assert_eq!(h[t * d + c], hidden[t * d + c] + pe[c]);
        }
    }
    let table = LearnedTable::random(10, d, 3, 1.0).unwrap();
    let mut h = hidden.clone();
    add_absolute_positions(&mut h, &positions, &Scheme::Learned(table.clone())).unwrap();
    for (t, &p) in positions.iter().enumerate() {
        let row = table.lookup(p).unwrap();
        for c in 0..d {
            assert_eq!(h[t * d + c], hidden[t * d + c] + row[c]);
        }
    }
    // Schemes that enter elsewhere leave hidden states alone.
    let mut h = hidden.clone();
    add_absolute_positions(&mut h, &positions, &Scheme::NoPe).unwrap();
    assert_eq!(h, hidden);
}

#[test]
fn learned_position_past_the_table_errors_on_every_path() {
    let (d, max) = (4usize, 8usize);
    let table = LearnedTable::random(max, d, 1, 1.0).unwrap();
    let scheme = Scheme::Learned(table);
    let heads = HeadConfig::mha(1, 2).unwrap();
    let mut rng = Rng(9);
    let w = rng.vec(d * 2);
    let layer = SingleLayer::new(heads, d, w.clone(), w.clone(), w, scheme.clone()).unwrap();
    let hidden = rng.vec(2 * d);
    let opts = AttentionOptions::default();
    let ok = [6u64, 7];
    let bad = [7u64, 8];
    assert!(layer.forward(&hidden, &ok, &Mask::none(), &opts).is_ok());
    let past = Error::PositionOutOfRange {
        position: 8,
        max_positions: max,
    };
    assert_eq!(
        layer.forward(&hidden, &bad, &Mask::none(), &opts),
        Err(past.clone())
    );
    assert_eq!(layer.scores(&hidden, &bad, None), Err(past.clone()));
    let mut h = hidden.clone();
    assert_eq!(
        add_absolute_positions(&mut h, &bad, &scheme),
        Err(past.clone())
    );
    // The attention call itself checks positions against the table too.
    let q = rng.vec(2 * 2);
    assert_eq!(
        attention(&heads, &q, &q, &q, &bad, &ok, &scheme, &Mask::none(), &opts),
        Err(past.clone())
    );
    assert_eq!(
        attention(&heads, &q, &q, &q, &ok, &bad, &scheme, &Mask::none(), &opts),
        Err(past)
    );
}

#[test]
fn malformed_inputs_return_errors() {
    let heads = HeadConfig::mha(2, 4).unwrap();
    let mut rng = Rng(10);
    let q = rng.vec(3 * 8);
    let k = rng.vec(3 * 8);
    let pos = [0u64, 1, 2];
    let opts = AttentionOptions::default();
    let none = Mask::none();
    let run = |heads: &HeadConfig,
               q: &[f32],
               k: &[f32],
               v: &[f32],
               qp: &[u64],
               kp: &[u64],
               s: &Scheme,
               m: &Mask| { attention(heads, q, k, v, qp, kp, s, m, &opts) };
    assert!(run(&heads, &q, &k, &k, &pos, &pos, &Scheme::NoPe, &none).is_ok());
    // Construction errors.
    assert!(HeadConfig::new(0, 1, 4).is_err());
    assert!(HeadConfig::new(4, 0, 4).is_err());
    assert!(HeadConfig::new(4, 3, 4).is_err());
    assert!(HeadConfig::new(4, 2, 0).is_err());
    assert!(HeadConfig::new(1 << 20, 1, 4).is_err());
    // Hand-built invalid configs are caught by the attention call.
    for bad in [
        HeadConfig {
            n_q_heads: 0,
            n_kv_heads: 0,
            head_dim: 4,
        },
        HeadConfig {
            n_q_heads: 3,
            n_kv_heads: 2,
            head_dim: 4,
        },
        HeadConfig {
            n_q_heads: 2,
            n_kv_heads: 2,
            head_dim: 0,
        },
    ] {
        assert!(run(&bad, &q, &k, &k, &pos, &pos, &Scheme::NoPe, &none).is_err());
    }
    // Wrong lengths.
    assert!(run(&heads, &q[1..], &k, &k, &pos, &pos, &Scheme::NoPe, &none).is_err());
    assert!(run(&heads, &q, &k[1..], &k, &pos, &pos, &Scheme::NoPe, &none).is_err());
    assert!(run(&heads, &q, &k, &k[1..], &pos, &pos, &Scheme::NoPe, &none).is_err());
    assert!(run(&heads, &q, &k, &k, &pos[..2], &pos, &Scheme::NoPe, &none).is_err());
    assert!(run(&heads, &q, &k, &k, &pos, &pos[..2], &Scheme::NoPe, &none).is_err());
    // Non-finite values.
    let mut nan = q.clone();
    nan[3] = f32::NAN;
    assert!(run(&heads, &nan, &k, &k, &pos, &pos, &Scheme::NoPe, &none).is_err());
    // Masks of the wrong size.
    let m = Mask::none().with_key_padding(vec![true; 2]);
    assert!(run(&heads, &q, &k, &k, &pos, &pos, &Scheme::NoPe, &m).is_err());
    let m = Mask::none().with_allowed(vec![true; 8]);
    assert!(run(&heads, &q, &k, &k, &pos, &pos, &Scheme::NoPe, &m).is_err());
    // Schemes that do not fit the layer.
    let s = Scheme::Alibi {
        slopes: vec![0.5],
        symmetric: false,
    };
    assert!(run(&heads, &q, &k, &k, &pos, &pos, &s, &none).is_err());
    let s = Scheme::Alibi {
        slopes: vec![0.5, f64::NAN],
        symmetric: false,
    };
    assert!(run(&heads, &q, &k, &k, &pos, &pos, &s, &none).is_err());
    let buckets = T5Buckets {
        bidirectional: true,
        num_buckets: 8,
        max_distance: 16,
    };
    let s = Scheme::T5 {
        bias_table: vec![0.0; 8],
        buckets,
    };
    assert!(run(&heads, &q, &k, &k, &pos, &pos, &s, &none).is_err());
    let bad_buckets = T5Buckets {
        bidirectional: true,
        num_buckets: 2,
        max_distance: 16,
    };
    let s = Scheme::T5 {
        bias_table: vec![0.0; 4],
        buckets: bad_buckets,
    };
    assert!(run(&heads, &q, &k, &k, &pos, &pos, &s, &none).is_err());
    let s = Scheme::Shaw {
        rel_k: vec![0.0; 3 * 4],
        rel_v: vec![],
        max_relative_position: 1,
    };
    assert!(run(&heads, &q, &k, &k, &pos, &pos, &s, &none).is_ok());
    let s = Scheme::Shaw {
        rel_k: vec![0.0; 3 * 4],
        rel_v: vec![0.0; 5],
        max_relative_position: 1,
    };
    assert!(run(&heads, &q, &k, &k, &pos, &pos, &s, &none).is_err());
    let s = Scheme::Shaw {
        rel_k: vec![0.0; 2 * 4],
        rel_v: vec![],
        max_relative_position: 1,
    };
    assert!(run(&heads, &q, &k, &k, &pos, &pos, &s, &none).is_err());
    let s = Scheme::Shaw {
        rel_k: vec![],
        rel_v: vec![],
        max_relative_position: usize::MAX,
    };
    assert!(run(&heads, &q, &k, &k, &pos, &pos, &s, &none).is_err());
    let wide = RopeParams::new(10000.0, 8)
        .unwrap()
        .frequencies(None, Precision::Exact)
        .unwrap();
    let s = Scheme::Rope {
        freqs: wide,
        layout: RopeLayout::HalfSplit,
    };
    assert!(run(&heads, &q, &k, &k, &pos, &pos, &s, &none).is_err());
    // A bias that overflows f64 (slope 1e300 over 1e10 positions) is an error, not NaN.
    let s = Scheme::Alibi {
        slopes: vec![1e300, 1e300],
        symmetric: true,
    };
    let far = [0u64, 1, 10_000_000_000];
    assert!(run(&heads, &q, &k, &k, &pos, &far, &s, &none).is_err());
    assert!(attention_scores(&heads, &q, &k, &pos, &far, &s, None).is_err());
    // ... unless the mask removes the far key.
    let m = Mask::none().with_key_padding(vec![true, true, false]);
    assert!(run(&heads, &q, &k, &k, &pos, &far, &s, &m).is_ok());
    let opts_bad = AttentionOptions {
        scale: Some(f64::INFINITY),
        return_weights: false,
    };
    assert!(attention(
        &heads,
        &q,
        &k,
        &k,
        &pos,
        &pos,
        &Scheme::NoPe,
        &none,
        &opts_bad
    )
    .is_err());
    // Absolute positions: hidden not a whole number of rows, learned width mismatch.
    let mut h = vec![0.0f32; 7];
    let sin = Scheme::Sinusoidal {
        layout: SinusoidalLayout::Interleaved,
        base: 10000.0,
    };
    assert!(add_absolute_positions(&mut h, &pos, &sin).is_err());
    assert!(add_absolute_positions(&mut h, &[], &sin).is_err());
    let mut h = vec![0.0f32; 9];
    let learned = Scheme::Learned(LearnedTable::random(4, 4, 0, 1.0).unwrap());
    assert!(add_absolute_positions(&mut h, &pos, &learned).is_err());
    // SingleLayer with wrong matrices or table width.
    let w = vec![0.1f32; 4 * 8];
    assert!(SingleLayer::new(
        heads,
        4,
        w.clone(),
        w.clone(),
        w[1..].to_vec(),
        Scheme::NoPe
    )
    .is_err());
    assert!(SingleLayer::new(heads, 0, vec![], vec![], vec![], Scheme::NoPe).is_err());
    let learned5 = Scheme::Learned(LearnedTable::random(4, 5, 0, 1.0).unwrap());
    assert!(SingleLayer::new(heads, 4, w.clone(), w.clone(), w.clone(), learned5).is_err());
    let layer = SingleLayer::new(heads, 4, w.clone(), w.clone(), w, Scheme::NoPe).unwrap();
    assert!(layer.forward(&[0.0; 11], &pos, &none, &opts).is_err());
}
