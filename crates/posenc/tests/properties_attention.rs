//! Property tests of the reference attention: permutation equivariance without positions, shift
//! invariance of relative schemes (and its failure for absolute ones), exactly-zero masked
//! weights, GQA as repeated-KV MHA, and errors (never panics) on malformed input.

use posenc::alibi;
use posenc::attention::{
    attention, attention_scores, AttentionOptions, Causal, HeadConfig, Mask, Scheme, SingleLayer,
};
use posenc::kv_cache::{shift_keys_per_cell, KvCache};
use posenc::learned::LearnedTable;
use posenc::relative::T5Buckets;
use posenc::rope::{Precision, RopeLayout, RopeParams, RopeScaling, YarnParams};
use posenc::sinusoidal::SinusoidalLayout;
use proptest::prelude::*;

const EPS: f64 = f32::EPSILON as f64;

/// (heads, seq_q, seq_k) with small sizes; n_kv divides n_q.
fn shape() -> impl Strategy<Value = (HeadConfig, usize, usize)> {
    (1usize..=4, 1usize..=3, 2usize..=8, 1usize..=6, 1usize..=6).prop_map(
        |(n_kv, group, head_dim, seq_q, seq_k)| {
            (
                HeadConfig::new(n_kv * group, n_kv, head_dim).unwrap(),
                seq_q,
                seq_k,
            )
        },
    )
}

fn values(n: usize) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(-2.0f32..2.0, n)
}

fn rope_scheme(head_dim: usize, yarn: bool, interleaved: bool) -> Scheme {
    let rotary_dim = head_dim - head_dim % 2;
    let scaling = if yarn {
        RopeScaling::Yarn(YarnParams::new(4.0, 1024))
    } else {
        RopeScaling::Default
    };
    let freqs = RopeParams {
        base: 10000.0,
        head_dim,
        rotary_dim,
        max_position_embeddings: 4096,
        scaling,
    }
    .frequencies(None, Precision::Exact)
    .unwrap();
    Scheme::Rope {
        freqs,
        layout: if interleaved {
            RopeLayout::Interleaved
        } else {
            RopeLayout::HalfSplit
        },
    }
}

#[derive(Debug, Clone)]
struct Case {
    heads: HeadConfig,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    qpos: Vec<u64>,
    kpos: Vec<u64>,
}

fn case() -> impl Strategy<Value = Case> {
    shape().prop_flat_map(|(heads, sq, sk)| {
        (
            values(sq * heads.q_width()),
            values(sk * heads.kv_width()),
            values(sk * heads.kv_width()),
            prop::collection::vec(0u64..=1_000_000, sq),
            prop::collection::vec(0u64..=1_000_000, sk),
        )
            .prop_map(move |(q, k, v, qpos, kpos)| Case {
                heads,
                q,
                k,
                v,
                qpos,
                kpos,
            })
    })
}

fn head_norms(c: &Case, h: usize, i: usize, j: usize) -> f64 {
    let d = c.heads.head_dim;
    let qo = (i * c.heads.n_q_heads + h) * d;
    let ko = (j * c.heads.n_kv_heads + c.heads.kv_head(h)) * d;
    let n = |x: &[f32]| x.iter().map(|&a| a as f64 * a as f64).sum::<f64>().sqrt();
    n(&c.q[qo..qo + d]) * n(&c.k[ko..ko + d])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// NoPE without a mask: permuting the tokens permutes the outputs. The softmax sums run in
    /// another order, so f32 outputs may differ by an ulp of the largest |v|: tolerance 2ε·max|v|.
    #[test]
    fn nope_is_permutation_equivariant(
        (heads, seq) in (1usize..=3, 1usize..=3, 1usize..=6, 1usize..=7)
            .prop_map(|(kv, g, d, s)| (HeadConfig::new(kv * g, kv, d).unwrap(), s)),
        seed in any::<u64>(),
        positions_seed in prop::collection::vec(0u64..1000, 7),
    ) {
        let mut state = seed;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        };
        let q: Vec<f32> = (0..seq * heads.q_width()).map(|_| next()).collect();
        let k: Vec<f32> = (0..seq * heads.kv_width()).map(|_| next()).collect();
        let v: Vec<f32> = (0..seq * heads.kv_width()).map(|_| next()).collect();
        // A permutation from the seed (Fisher–Yates).
        let mut perm: Vec<usize> = (0..seq).collect();
        for i in (1..seq).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            perm.swap(i, (state >> 33) as usize % (i + 1));
        }
        let gather = |x: &[f32], w: usize| -> Vec<f32> {
            perm.iter().flat_map(|&t| x[t * w..(t + 1) * w].to_vec()).collect()
        };
        let pos = &positions_seed[..seq];
        let ppos: Vec<u64> = perm.iter().map(|&t| pos[t]).collect();
        let opts = AttentionOptions::default();
        let a = attention(&heads, &q, &k, &v, pos, pos, &Scheme::NoPe, &Mask::none(), &opts).unwrap();
        let b = attention(
            &heads, &gather(&q, heads.q_width()), &gather(&k, heads.kv_width()),
            &gather(&v, heads.kv_width()), &ppos, &ppos, &Scheme::NoPe, &Mask::none(), &opts,
        ).unwrap();
        let vmax = v.iter().fold(0.0f64, |m, &x| m.max(x.abs() as f64));
        let expected = gather(&a.output, heads.q_width());
        for (x, y) in b.output.iter().zip(&expected) {
            prop_assert!((x - y).abs() as f64 <= 2.0 * EPS * vmax, "{} vs {}", x, y);
        }
    }

    /// Shifting every position by the same offset leaves ALiBi, T5 and Shaw scores bit-identical
    /// (their term sees only `p_k - p_q`, computed exactly) and RoPE scores equal within f32 rounding:
    /// each RoPE score is within 8.5u·a²·|q||k|·scale of the exact one (see properties_rope), so
    /// two of them differ by at most 17u ≈ 8.5ε, plus the f32 storage of both; we allow
    /// 10ε·a²·|q||k|·scale.
    #[test]
    fn relative_schemes_are_shift_invariant(
        c in case(),
        offset in 0u64..=1_000_000,
        yarn in any::<bool>(),
        interleaved in any::<bool>(),
        symmetric in any::<bool>(),
        bidirectional in any::<bool>(),
        table_seed in prop::collection::vec(-5.0f32..5.0, 32 * 12),
    ) {
        let shifted = |p: &[u64]| p.iter().map(|&x| x + offset).collect::<Vec<_>>();
        let (qs, ks) = (shifted(&c.qpos), shifted(&c.kpos));
        let h = &c.heads;
        let exact = [
            Scheme::Alibi { slopes: alibi::slopes(h.n_q_heads).unwrap(), symmetric },
            Scheme::T5 {
                bias_table: table_seed[..32 * h.n_q_heads].to_vec(),
                buckets: T5Buckets { bidirectional, num_buckets: 32, max_distance: 128 },
            },
            Scheme::Shaw {
                rel_k: table_seed[..9 * h.head_dim].to_vec(),
                rel_v: vec![],
                max_relative_position: 4,
            },
        ];
        for scheme in &exact {
            let a = attention_scores(h, &c.q, &c.k, &c.qpos, &c.kpos, scheme, None).unwrap();
            let b = attention_scores(h, &c.q, &c.k, &qs, &ks, scheme, None).unwrap();
            prop_assert_eq!(a, b, "{}", scheme.name());
        }
        let rope = rope_scheme(h.head_dim, yarn, interleaved);
        let factor = match &rope { Scheme::Rope { freqs, .. } => freqs.attention_factor, _ => 1.0 };
        let scale = 1.0 / (h.head_dim as f64).sqrt();
        let a = attention_scores(h, &c.q, &c.k, &c.qpos, &c.kpos, &rope, None).unwrap();
        let b = attention_scores(h, &c.q, &c.k, &qs, &ks, &rope, None).unwrap();
        let (sq, sk) = (c.qpos.len(), c.kpos.len());
        for hh in 0..h.n_q_heads {
            for i in 0..sq {
                for j in 0..sk {
                    let idx = (hh * sq + i) * sk + j;
                    // Odd head_dim: the last dim passes through unscaled; factor >= 1 bounds it.
                    let tol = 10.0 * EPS * factor * factor * scale * head_norms(&c, hh, i, j);
                    prop_assert!(((a[idx] - b[idx]) as f64).abs() <= tol,
                        "rope h{} i{} j{}: {} vs {} (tol {:e})", hh, i, j, a[idx], b[idx], tol);
                }
            }
        }
    }

    /// Whatever the mask and however large the biases, masked weights are exactly 0.0, rows with
    /// an allowed key sum to 1 (f32 rounding of each weight: ≤ seq_k·u), and rows with none are
    /// all zero with zero output.
    #[test]
    fn masked_weights_are_exactly_zero(
        c in case(),
        mask_bits in prop::collection::vec(any::<bool>(), 36),
        padding_bits in prop::collection::vec(any::<bool>(), 6),
        slope_scale in prop_oneof![Just(1.0f64), Just(1e6), Just(1e300)],
        causal in prop_oneof![Just(Causal::None), Just(Causal::ByPosition), Just(Causal::ByIndex)],
    ) {
        let (sq, sk) = (c.qpos.len(), c.kpos.len());
        let mask = Mask { causal, ..Mask::none() }
            .with_allowed(mask_bits[..sq * sk].to_vec())
            .with_key_padding(padding_bits[..sk].to_vec());
        let slopes: Vec<f64> = alibi::slopes(c.heads.n_q_heads).unwrap()
            .iter().map(|m| m * slope_scale).collect();
        let scheme = Scheme::Alibi { slopes, symmetric: true };
        let opts = AttentionOptions { scale: None, return_weights: true };
        let out = attention(&c.heads, &c.q, &c.k, &c.v, &c.qpos, &c.kpos, &scheme, &mask, &opts)
            .unwrap();
        let w = out.weights.unwrap();
        let d = c.heads.head_dim;
        for h in 0..c.heads.n_q_heads {
            for i in 0..sq {
                let row = &w[(h * sq + i) * sk..][..sk];
                let mut any = false;
                for (j, &x) in row.iter().enumerate() {
                    if mask.allows(i, j, sq, sk, c.qpos[i], c.kpos[j]) {
                        any = true;
                        prop_assert!((0.0..=1.0).contains(&x));
                    } else {
                        prop_assert_eq!(x.to_bits(), 0.0f32.to_bits());
                    }
                }
                let sum: f64 = row.iter().map(|&x| x as f64).sum();
                if any {
                    prop_assert!((sum - 1.0).abs() <= sk as f64 * EPS, "sum {}", sum);
                } else {
                    prop_assert_eq!(sum, 0.0);
                    let o = &out.output[(i * c.heads.n_q_heads + h) * d..][..d];
                    prop_assert!(o.iter().all(|&x| x == 0.0));
                }
            }
        }
        prop_assert!(out.output.iter().all(|x| x.is_finite()));
    }

    /// GQA equals MHA over key/value heads repeated `group` times (HF `repeat_kv`), bit for bit.
    #[test]
    fn gqa_equals_mha_with_repeated_kv(c in case(), rope in any::<bool>()) {
        let h = c.heads;
        let mha = HeadConfig::mha(h.n_q_heads, h.head_dim).unwrap();
        let d = h.head_dim;
        let repeat = |x: &[f32]| -> Vec<f32> {
            let mut out = Vec::new();
            for t in 0..c.kpos.len() {
                for qh in 0..h.n_q_heads {
                    let o = (t * h.n_kv_heads + h.kv_head(qh)) * d;
                    out.extend_from_slice(&x[o..o + d]);
                }
            }
            out
        };
        let scheme = if rope { rope_scheme(d, false, false) } else { Scheme::NoPe };
        let opts = AttentionOptions { scale: None, return_weights: true };
        let mask = Mask::causal_by_position();
        let a = attention(&h, &c.q, &c.k, &c.v, &c.qpos, &c.kpos, &scheme, &mask, &opts).unwrap();
        let b = attention(&mha, &c.q, &repeat(&c.k), &repeat(&c.v), &c.qpos, &c.kpos, &scheme, &mask, &opts)
            .unwrap();
        prop_assert_eq!(a, b);
    }

    /// Arbitrary sizes never panic: the call succeeds exactly when every length fits.
    #[test]
    fn malformed_inputs_error_and_never_panic(
        n_q in 0usize..5, n_kv in 0usize..5, d in 0usize..5,
        q_len in 0usize..50, k_len in 0usize..50, v_len in 0usize..50,
        sq in 0usize..4, sk in 0usize..4,
        pad_len in prop::option::of(0usize..5),
        allowed_len in prop::option::of(0usize..13),
        causal in prop_oneof![Just(Causal::None), Just(Causal::ByPosition), Just(Causal::ByIndex)],
        n_slopes in 0usize..5,
    ) {
        let heads = HeadConfig { n_q_heads: n_q, n_kv_heads: n_kv, head_dim: d };
        let q = vec![0.5f32; q_len];
        let k = vec![0.25f32; k_len];
        let v = vec![1.0f32; v_len];
        let qpos: Vec<u64> = (0..sq as u64).collect();
        let kpos: Vec<u64> = (0..sk as u64).collect();
        let mut mask = Mask { causal, ..Mask::none() };
        if let Some(n) = pad_len { mask = mask.with_key_padding(vec![true; n]); }
        if let Some(n) = allowed_len { mask = mask.with_allowed(vec![true; n]); }
        let heads_ok = n_q > 0 && n_kv > 0 && d > 0 && n_q % n_kv == 0;
        let sizes_ok = heads_ok
            && q_len == sq * n_q * d
            && k_len == sk * n_kv * d
            && v_len == k_len
            && pad_len.is_none_or(|n| n == sk)
            && allowed_len.is_none_or(|n| n == sq * sk);
        let opts = AttentionOptions::default();
        for scheme in [
            Scheme::NoPe,
            Scheme::Alibi { slopes: vec![0.5; n_slopes], symmetric: false },
        ] {
            let ok = sizes_ok && match &scheme {
                Scheme::Alibi { slopes, .. } => slopes.len() == n_q,
                _ => true,
            };
            let r = attention(&heads, &q, &k, &v, &qpos, &kpos, &scheme, &mask, &opts);
            prop_assert_eq!(r.is_ok(), ok, "{:?}", r);
            if let Ok(out) = r {
                prop_assert_eq!(out.output.len(), q_len);
            }
            let s = attention_scores(&heads, &q, &k, &qpos, &kpos, &scheme, None);
            prop_assert_eq!(s.is_ok(), heads_ok && q_len == sq * n_q * d && k_len == sk * n_kv * d
                && match &scheme { Scheme::Alibi { slopes, .. } => slopes.len() == n_q, _ => true });
        }
        // The cache path too.
        if let Ok(mut cache) = KvCache::new(n_kv, d) {
            let cells = k_len.checked_div(n_kv * d).unwrap_or(0);
            let positions: Vec<Option<u64>> = (0..cells as u64).map(Some).collect();
            let appended = cache.append(&k, &v, &positions, &Scheme::NoPe);
            prop_assert_eq!(appended.is_ok(), k_len == cells * n_kv * d && v_len == k_len);
            let _ = cache.attend(&heads, &q, &[Some(0)], &Scheme::NoPe, causal, &opts);
            let freqs = RopeParams::new(10000.0, 2).unwrap().frequencies(None, Precision::Exact).unwrap();
            // The first cell is at position 0: shifting it by -1 must fail (and not panic);
            // so must a rotary block wider than the head.
            let deltas = vec![-1i64; cache.len()];
            let shifted = shift_keys_per_cell(&mut cache, &deltas, &freqs, RopeLayout::HalfSplit);
            prop_assert_eq!(shifted.is_err(), !cache.is_empty() || d < 2);
        }
    }
}

/// Hidden states → projections → scores, through [`SingleLayer`]: shifting all positions changes
/// the scores of absolute schemes (sinusoidal, learned) and leaves those of RoPE (to f32
/// tolerance) and ALiBi (exactly) unchanged.
#[test]
fn absolute_schemes_change_under_shift_relative_ones_do_not() {
    let heads = HeadConfig::new(2, 1, 4).unwrap();
    let d_model = 8;
    let seq = 5;
    let mut state = 12345u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let w_q: Vec<f32> = (0..d_model * heads.q_width()).map(|_| next()).collect();
    let w_k: Vec<f32> = (0..d_model * heads.kv_width()).map(|_| next()).collect();
    let w_v: Vec<f32> = (0..d_model * heads.kv_width()).map(|_| next()).collect();
    let hidden: Vec<f32> = (0..seq * d_model).map(|_| next()).collect();
    let layer = |scheme: Scheme| {
        SingleLayer::new(
            heads,
            d_model,
            w_q.clone(),
            w_k.clone(),
            w_v.clone(),
            scheme,
        )
        .unwrap()
    };
    let pos: Vec<u64> = (0..seq as u64).collect();
    let max_diff = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max)
    };
    for offset in [1u64, 3, 40] {
        let shifted: Vec<u64> = pos.iter().map(|p| p + offset).collect();
        for scheme in [
            Scheme::Sinusoidal {
                layout: SinusoidalLayout::Interleaved,
                base: 10000.0,
            },
            Scheme::Learned(LearnedTable::random(64, d_model, 7, 1.0).unwrap()),
        ] {
            let l = layer(scheme);
            let a = l.scores(&hidden, &pos, None).unwrap();
            let b = l.scores(&hidden, &shifted, None).unwrap();
            assert!(
                max_diff(&a, &b) > 1e-3,
                "{} offset {offset}: scores did not change",
                l.scheme().name()
            );
        }
        let l = layer(rope_scheme(4, false, false));
        let a = l.scores(&hidden, &pos, None).unwrap();
        let b = l.scores(&hidden, &shifted, None).unwrap();
        // Per score: 10ε·scale·|q_h||k_h| (see relative_schemes_are_shift_invariant), with the
        // norms of the projected (unrotated; rotation keeps them) q and k.
        let (q, k, _) = l.project(&hidden, &pos).unwrap();
        let norm = |x: &[f32]| x.iter().map(|&a| a as f64 * a as f64).sum::<f64>().sqrt();
        for h in 0..heads.n_q_heads {
            for i in 0..seq {
                for j in 0..seq {
                    let idx = (h * seq + i) * seq + j;
                    let tol = 10.0
                        * EPS
                        * 0.5
                        * norm(&q[(i * 2 + h) * 4..][..4])
                        * norm(&k[j * 4..][..4]);
                    assert!(
                        ((a[idx] - b[idx]) as f64).abs() <= tol,
                        "rope {idx}: {} vs {}",
                        a[idx],
                        b[idx]
                    );
                }
            }
        }
        assert!(max_diff(&a, &b) < 1e-3);
        let l = layer(Scheme::Alibi {
            slopes: alibi::slopes(2).unwrap(),
            symmetric: false,
        });
        assert_eq!(
            l.scores(&hidden, &pos, None).unwrap(),
            l.scores(&hidden, &shifted, None).unwrap()
        );
    }
}
