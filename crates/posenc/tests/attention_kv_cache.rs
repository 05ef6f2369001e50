//! KV cache: prefill + decode equals one full forward, left-padded batches equal unpadded
//! sequences, and K-shift equals recomputing the keys at the shifted positions.

use posenc::alibi;
use posenc::attention::{attention, AttentionOptions, HeadConfig, Mask, Scheme};
use posenc::kv_cache::{
    positions_from_padding_mask, positions_from_padding_mask_at, shift_keys, shift_keys_per_cell,
    BatchKvCache, KvCache,
};
use posenc::relative::T5Buckets;
use posenc::rope::{Precision, RopeFrequencies, RopeLayout, RopeParams, RopeScaling, YarnParams};

mod common;
use common::Rng;

/// YaRN on a partial rotary block: attention factor > 1 and pass-through dims.
fn yarn_partial(head_dim: usize, rotary_dim: usize) -> RopeFrequencies {
    RopeParams {
        base: 10000.0,
        head_dim,
        rotary_dim,
        max_position_embeddings: 4096,
        scaling: RopeScaling::Yarn(YarnParams::new(4.0, 1024)),
    }
    .frequencies(None, Precision::Exact)
    .unwrap()
}

fn schemes(heads: &HeadConfig) -> Vec<Scheme> {
    let mut rng = Rng(99);
    vec![
        Scheme::NoPe,
        Scheme::Rope {
            freqs: yarn_partial(heads.head_dim, heads.head_dim - 2),
            layout: RopeLayout::HalfSplit,
        },
        Scheme::Rope {
            freqs: yarn_partial(heads.head_dim, heads.head_dim),
            layout: RopeLayout::Interleaved,
        },
        Scheme::Alibi {
            slopes: alibi::slopes(heads.n_q_heads).unwrap(),
            symmetric: false,
        },
        Scheme::T5 {
            bias_table: rng.vec(16 * heads.n_q_heads),
            buckets: T5Buckets {
                bidirectional: false,
                num_buckets: 16,
                max_distance: 32,
            },
        },
        Scheme::Shaw {
            rel_k: rng.vec(7 * heads.head_dim),
            rel_v: rng.vec(7 * heads.head_dim),
            max_relative_position: 3,
        },
    ]
}

fn token_rows(x: &[f32], width: usize, range: std::ops::Range<usize>) -> &[f32] {
    &x[range.start * width..range.end * width]
}

#[test]
fn positions_from_padding_mask_is_cumsum_minus_one() {
    assert_eq!(
        positions_from_padding_mask(&[false, false, true, true, true]),
        vec![None, None, Some(0), Some(1), Some(2)]
    );
    assert_eq!(
        positions_from_padding_mask(&[true, false, true]),
        vec![Some(0), None, Some(1)]
    );
    assert_eq!(
        positions_from_padding_mask_at(&[false, true], 7),
        vec![None, Some(7)]
    );
    assert!(positions_from_padding_mask(&[]).is_empty());
}

/// Prefill 5 tokens, then decode 4 one at a time: every output equals the rows of one full
/// causal forward over all 9 tokens (bit for bit: same per-pair arithmetic, same key order).
#[test]
fn prefill_then_decode_equals_full_forward() {
    let heads = HeadConfig::new(4, 2, 8).unwrap();
    let (total, prefill) = (9usize, 5usize);
    let start = 3u64; // positions need not start at 0
    let mut rng = Rng(1);
    let q = rng.vec(total * heads.q_width());
    let k = rng.vec(total * heads.kv_width());
    let v = rng.vec(total * heads.kv_width());
    let pos: Vec<u64> = (start..start + total as u64).collect();
    let opts = AttentionOptions::default();
    for scheme in schemes(&heads) {
        let full = attention(
            &heads,
            &q,
            &k,
            &v,
            &pos,
            &pos,
            &scheme,
            &Mask::causal_by_position(),
            &opts,
        )
        .unwrap();
        let mut cache = KvCache::for_heads(&heads).unwrap();
        let (qw, kw) = (heads.q_width(), heads.kv_width());
        let mut steps = std::iter::once(0..prefill).collect::<Vec<_>>();
        steps.extend((prefill..total).map(|t| t..t + 1));
        for r in steps {
            let p: Vec<Option<u64>> = pos[r.clone()].iter().map(|&p| Some(p)).collect();
            let out = cache
                .forward(
                    &heads,
                    token_rows(&q, qw, r.clone()),
                    token_rows(&k, kw, r.clone()),
                    token_rows(&v, kw, r.clone()),
                    &p,
                    &scheme,
                    &opts,
                )
                .unwrap();
            assert_eq!(
                out.output,
                token_rows(&full.output, qw, r.clone()),
                "{} step {r:?}",
                scheme.name()
            );
        }
        assert_eq!(cache.len(), total);
        assert_eq!(cache.next_position(), start + total as u64);
        // The decode steps really depend on the cache (the test can fail): attending the last
        // query alone without the cached keys gives something else.
        let alone = attention(
            &heads,
            token_rows(&q, qw, total - 1..total),
            token_rows(&k, kw, total - 1..total),
            token_rows(&v, kw, total - 1..total),
            &pos[total - 1..],
            &pos[total - 1..],
            &scheme,
            &Mask::causal_by_position(),
            &opts,
        )
        .unwrap();
        assert_ne!(alone.output, token_rows(&full.output, qw, total - 1..total));
    }
}

/// A left-padded batch (prefill + 3 decode steps) computes, row by row, exactly what each
/// unpadded sequence computes alone; padding rows give zeros.
#[test]
fn left_padded_batch_equals_unpadded_sequences() {
    let heads = HeadConfig::new(2, 1, 6).unwrap();
    let lens = [5usize, 2, 4];
    let width = *lens.iter().max().unwrap();
    let decode = 3usize;
    let (qw, kw) = (heads.q_width(), heads.kv_width());
    let opts = AttentionOptions {
        scale: None,
        return_weights: true,
    };
    let mut rng = Rng(2);
    // Per sequence: all its tokens (prompt + decoded).
    let seqs: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = lens
        .iter()
        .map(|&n| {
            let t = n + decode;
            (rng.vec(t * qw), rng.vec(t * kw), rng.vec(t * kw))
        })
        .collect();
    for scheme in schemes(&heads) {
        // Unpadded: each sequence through its own cache.
        let mut alone: Vec<Vec<f32>> = Vec::new();
        for (&n, (q, k, v)) in lens.iter().zip(&seqs) {
            let mut cache = KvCache::for_heads(&heads).unwrap();
            let mut out = Vec::new();
            let mut steps = std::iter::once(0..n).collect::<Vec<_>>();
            steps.extend((n..n + decode).map(|t| t..t + 1));
            for r in steps {
                let p: Vec<Option<u64>> = r.clone().map(|t| Some(t as u64)).collect();
                let o = cache
                    .forward(
                        &heads,
                        token_rows(q, qw, r.clone()),
                        token_rows(k, kw, r.clone()),
                        token_rows(v, kw, r.clone()),
                        &p,
                        &scheme,
                        &opts,
                    )
                    .unwrap();
                out.extend(o.output);
            }
            alone.push(out);
        }
        // Batched: prompts left-padded to `width` with garbage (must not matter).
        let mut batch = BatchKvCache::new(lens.len(), &heads).unwrap();
        let (mut bq, mut bk, mut bv, mut mask) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (&n, (q, k, v)) in lens.iter().zip(&seqs) {
            let pad = width - n;
            bq.extend(vec![7.0f32; pad * qw]);
            bk.extend(vec![-9.0f32; pad * kw]);
            bv.extend(vec![100.0f32; pad * kw]);
            bq.extend_from_slice(token_rows(q, qw, 0..n));
            bk.extend_from_slice(token_rows(k, kw, 0..n));
            bv.extend_from_slice(token_rows(v, kw, 0..n));
            mask.extend((0..width).map(|t| t >= pad));
        }
        let pre = batch
            .forward(&heads, &bq, &bk, &bv, &mask, &scheme, &opts)
            .unwrap();
        let mut expected_positions = Vec::new();
        for &n in &lens {
            expected_positions
                .extend((0..width).map(|t| (t >= width - n).then(|| (t + n - width) as u64)));
        }
        assert_eq!(pre.positions, expected_positions);
        for (b, &n) in lens.iter().enumerate() {
            let pad = width - n;
            let row = &pre.output[b * width * qw..(b + 1) * width * qw];
            assert!(
                row[..pad * qw].iter().all(|&x| x == 0.0),
                "{} padding",
                scheme.name()
            );
            assert_eq!(
                &row[pad * qw..],
                &alone[b][..n * qw],
                "{} row {b}",
                scheme.name()
            );
        }
        // Padding keys get weight exactly 0.
        let w = pre.weights.unwrap();
        for (b, &n) in lens.iter().enumerate() {
            let pad = width - n;
            for h in 0..heads.n_q_heads {
                for i in 0..width {
                    let r = &w[((b * heads.n_q_heads + h) * width + i) * width..][..width];
                    assert!(r[..pad].iter().all(|&x| x == 0.0));
                }
            }
        }
        for step in 0..decode {
            let (mut sq, mut sk, mut sv) = (Vec::new(), Vec::new(), Vec::new());
            for (&n, (q, k, v)) in lens.iter().zip(&seqs) {
                let t = n + step;
                sq.extend_from_slice(token_rows(q, qw, t..t + 1));
                sk.extend_from_slice(token_rows(k, kw, t..t + 1));
                sv.extend_from_slice(token_rows(v, kw, t..t + 1));
            }
            let out = batch
                .forward(
                    &heads,
                    &sq,
                    &sk,
                    &sv,
                    &vec![true; lens.len()],
                    &scheme,
                    &opts,
                )
                .unwrap();
            for (b, &n) in lens.iter().enumerate() {
                let t = n + step;
                assert_eq!(out.positions[b], Some(t as u64));
                assert_eq!(
                    &out.output[b * qw..(b + 1) * qw],
                    token_rows(&alone[b], qw, t..t + 1),
                    "{} row {b} decode {step}",
                    scheme.name()
                );
            }
        }
    }
}

/// Tolerance for comparing a twice-rotated f32 pair with a once-rotated one, relative to the
/// pair's norm after rotation: each f32 rotation is off by at most about 3 half-ulps per
/// component (cos/sin rounding, product, sum), ≈ 4.25 half-ulps for the pair; the shifted key has
/// two rotations, the recomputed one one: ≈ 12.75 half-ulps ≈ 6.4 ε. We allow 8 ε.
const SHIFT_TOL: f64 = 8.0 * f32::EPSILON as f64;

fn rope_keys(
    k: &[f32],
    n_kv: usize,
    d: usize,
    positions: &[u64],
    freqs: &RopeFrequencies,
    layout: RopeLayout,
) -> Vec<f32> {
    let mut out = k.to_vec();
    posenc::rope::apply_rotary_seq(&mut out, n_kv, d, positions, freqs, layout).unwrap();
    out
}

fn assert_pairs_close(a: &[f32], b: &[f32], d: usize, freqs: &RopeFrequencies, layout: RopeLayout) {
    let pairs = freqs.pairs();
    for (ha, hb) in a.chunks_exact(d).zip(b.chunks_exact(d)) {
        for i in 0..pairs {
            let (x, y) = match layout {
                RopeLayout::HalfSplit => (i, i + pairs),
                RopeLayout::Interleaved => (2 * i, 2 * i + 1),
            };
            let norm = (hb[x] as f64).hypot(hb[y] as f64);
            let err = (ha[x] as f64 - hb[x] as f64).hypot(ha[y] as f64 - hb[y] as f64);
            assert!(
                err <= SHIFT_TOL * norm,
                "pair {i}: err {err:e} > {:e}",
                SHIFT_TOL * norm
            );
        }
    }
}

#[test]
fn shift_keys_equals_recomputing_at_shifted_positions() {
    let (n_kv, d, rotary) = (2usize, 10usize, 6usize);
    let heads = HeadConfig::new(2, n_kv, d).unwrap();
    let freqs = yarn_partial(d, rotary);
    assert!(
        freqs.attention_factor > 1.0,
        "factor must not be re-applied"
    );
    let mut rng = Rng(3);
    let cells = 8usize;
    let k = rng.vec(cells * n_kv * d);
    let v = rng.vec(cells * n_kv * d);
    let pos: Vec<u64> = vec![0, 1, 2, 500, 501, 502, 70_000, 999_990];
    for layout in [RopeLayout::HalfSplit, RopeLayout::Interleaved] {
        let scheme = Scheme::Rope {
            freqs: freqs.clone(),
            layout,
        };
        for delta in [-2i64, 7, -500, 123_456] {
            let mut cache = KvCache::for_heads(&heads).unwrap();
            let opt: Vec<Option<u64>> = pos.iter().map(|&p| Some(p)).collect();
            cache.append(&k, &v, &opt, &scheme).unwrap();
            let before = cache.clone();
            // Shift cells 3..8 (positions 500.. survive a -500 shift).
            shift_keys(&mut cache, 3..8, delta, &freqs, layout).unwrap();
            let shifted_pos: Vec<u64> = pos
                .iter()
                .enumerate()
                .map(|(c, &p)| {
                    if c >= 3 {
                        p.checked_add_signed(delta).unwrap()
                    } else {
                        p
                    }
                })
                .collect();
            assert_eq!(
                cache.positions(),
                shifted_pos.iter().map(|&p| Some(p)).collect::<Vec<_>>()
            );
            let recomputed = rope_keys(&k, n_kv, d, &shifted_pos, &freqs, layout);
            assert_pairs_close(cache.keys(), &recomputed, d, &freqs, layout);
            // Unshifted cells, dims past rotary_dim and values: bit-identical.
            let w = n_kv * d;
            assert_eq!(&cache.keys()[..3 * w], &before.keys()[..3 * w]);
            for (a, b) in cache
                .keys()
                .chunks_exact(d)
                .zip(before.keys().chunks_exact(d))
            {
                let (ta, tb): (Vec<u32>, Vec<u32>) = (
                    a[rotary..].iter().map(|x| x.to_bits()).collect(),
                    b[rotary..].iter().map(|x| x.to_bits()).collect(),
                );
                assert_eq!(ta, tb);
            }
            assert_eq!(cache.values(), before.values());
            // The shift did something (the test can fail).
            assert_ne!(&cache.keys()[3 * w..], &before.keys()[3 * w..]);
        }
    }
}

/// After removing cells and shifting the rest back (llama.cpp-style context shift), attention
/// over the cache equals attention with keys recomputed at the new positions, to f32 tolerance.
#[test]
fn context_shift_attention_matches_recomputed_keys() {
    let heads = HeadConfig::new(4, 2, 8).unwrap();
    let freqs = yarn_partial(8, 8);
    let layout = RopeLayout::HalfSplit;
    let scheme = Scheme::Rope {
        freqs: freqs.clone(),
        layout,
    };
    let mut rng = Rng(4);
    let n = 12usize;
    let (qw, kw) = (heads.q_width(), heads.kv_width());
    let k = rng.vec(n * kw);
    let v = rng.vec(n * kw);
    let q = rng.vec(qw);
    let mut cache = KvCache::for_heads(&heads).unwrap();
    let pos: Vec<Option<u64>> = (0..n as u64).map(Some).collect();
    cache.append(&k, &v, &pos, &scheme).unwrap();
    // Drop cells 2..6, then move cells 6.. (now 2..) back by 4 positions.
    cache.remove(2..6).unwrap();
    shift_keys(&mut cache, 2..8, -4, &freqs, layout).unwrap();
    let new_pos: Vec<u64> = (0..8).collect();
    assert_eq!(
        cache.positions(),
        new_pos.iter().map(|&p| Some(p)).collect::<Vec<_>>()
    );
    let kept_k: Vec<f32> = [&k[..2 * kw], &k[6 * kw..]].concat();
    let kept_v: Vec<f32> = [&v[..2 * kw], &v[6 * kw..]].concat();
    let opts = AttentionOptions {
        scale: None,
        return_weights: true,
    };
    let got = cache
        .attend(
            &heads,
            &q,
            &[Some(8)],
            &scheme,
            posenc::attention::Causal::ByPosition,
            &opts,
        )
        .unwrap();
    let want = attention(
        &heads,
        &q,
        &kept_k,
        &kept_v,
        &[8],
        &new_pos,
        &scheme,
        &Mask::causal_by_position(),
        &opts,
    )
    .unwrap();
    // Keys differ by ≤ 8ε relative (see SHIFT_TOL); scores by ≤ 8ε·|q||k|·scale ≈ 1e-6 here,
    // so weights and outputs (|v| ≤ 1) move by a few 1e-6 at most.
    for (a, b) in got.output.iter().zip(&want.output) {
        assert!((a - b).abs() <= 1e-5, "{a} vs {b}");
    }
    for (a, b) in got
        .weights
        .unwrap()
        .iter()
        .zip(want.weights.as_ref().unwrap())
    {
        assert!((a - b).abs() <= 1e-5, "{a} vs {b}");
    }
}

#[test]
fn shift_per_cell_skips_padding_and_zero_deltas_and_checks_bounds() {
    let (n_kv, d) = (1usize, 4usize);
    let freqs = RopeParams::new(10000.0, d)
        .unwrap()
        .frequencies(None, Precision::Exact)
        .unwrap();
    let layout = RopeLayout::Interleaved;
    let scheme = Scheme::Rope {
        freqs: freqs.clone(),
        layout,
    };
    let mut rng = Rng(5);
    let k = rng.vec(4 * d);
    let v = rng.vec(4 * d);
    let mut cache = KvCache::new(n_kv, d).unwrap();
    cache
        .append(&k, &v, &[None, Some(0), Some(5), Some(6)], &scheme)
        .unwrap();
    let before = cache.clone();
    shift_keys_per_cell(&mut cache, &[3, 0, 2, -6], &freqs, layout).unwrap();
    assert_eq!(cache.positions(), &[None, Some(0), Some(7), Some(0)]);
    assert_eq!(&cache.keys()[..2 * d], &before.keys()[..2 * d]);
    let recomputed = rope_keys(&k[2 * d..], n_kv, d, &[7, 0], &freqs, layout);
    assert_pairs_close(&cache.keys()[2 * d..], &recomputed, d, &freqs, layout);
    // Errors leave the cache unchanged.
    let snapshot = cache.clone();
    assert!(shift_keys_per_cell(&mut cache, &[0, -1, 0, 0], &freqs, layout).is_err());
    assert!(shift_keys_per_cell(&mut cache, &[0, 0], &freqs, layout).is_err());
    assert!(shift_keys(&mut cache, 2..9, 1, &freqs, layout).is_err());
    let wide = RopeParams::new(10000.0, 8)
        .unwrap()
        .frequencies(None, Precision::Exact)
        .unwrap();
    assert!(shift_keys(&mut cache, 0..4, 1, &wide, layout).is_err());
    assert_eq!(cache, snapshot);
}

#[test]
fn kv_cache_errors_on_malformed_input() {
    let heads = HeadConfig::new(4, 2, 4).unwrap();
    assert!(KvCache::new(0, 4).is_err());
    assert!(KvCache::new(2, 0).is_err());
    assert!(KvCache::new(usize::MAX, 2).is_err());
    assert!(KvCache::new(2, usize::MAX).is_err());
    assert!(BatchKvCache::new(0, &heads).is_err());
    let mut cache = KvCache::for_heads(&heads).unwrap();
    let kv = vec![0.5f32; 2 * 8];
    let opts = AttentionOptions::default();
    let s = Scheme::NoPe;
    assert!(cache
        .append(&kv[1..], &kv, &[Some(0), Some(1)], &s)
        .is_err());
    assert!(cache.append(&kv, &kv, &[Some(0)], &s).is_err());
    let mut nan = kv.clone();
    nan[0] = f32::NAN;
    assert!(cache.append(&kv, &nan, &[Some(0), Some(1)], &s).is_err());
    assert!(cache.is_empty());
    cache.append(&kv, &kv, &[Some(0), Some(1)], &s).unwrap();
    // Heads that do not match the cache; queries of the wrong size.
    let other = HeadConfig::new(4, 4, 4).unwrap();
    let q = vec![0.1f32; 16];
    assert!(cache
        .attend(&other, &q, &[Some(1)], &s, Default::default(), &opts)
        .is_err());
    assert!(cache
        .attend(&heads, &q[1..], &[Some(1)], &s, Default::default(), &opts)
        .is_err());
    // forward failing in attend leaves the cache as it was.
    assert!(cache
        .forward(&heads, &q[1..], &kv[..8], &kv[..8], &[Some(2)], &s, &opts)
        .is_err());
    assert_eq!(cache.len(), 2);
    assert!(cache.remove(1..3).is_err());
    // A padding query gets zeros.
    let out = cache
        .attend(&heads, &q, &[None], &s, Default::default(), &opts)
        .unwrap();
    assert!(out.output.iter().all(|&x| x == 0.0));
    // Batch: mask not a multiple of batch, buffers of the wrong size.
    let mut batch = BatchKvCache::new(2, &heads).unwrap();
    assert!(batch
        .forward(&heads, &q, &kv[..8], &kv[..8], &[true; 3], &s, &opts)
        .is_err());
    assert!(batch
        .forward(&heads, &q, &kv[..8], &kv[..8], &[true; 2], &s, &opts)
        .is_err());
    assert!(batch.caches().iter().all(KvCache::is_empty));
}
