//! Relative schemes: Shaw, T5 buckets (against the HF fixture), Transformer-XL, DeBERTa.

use posenc::relative::{self, T5Buckets};
use posenc::{Error, PositionEntry};
use proptest::prelude::*;

mod common;
use common::fixtures;

/// Deterministic pseudo-random values in [-1, 1) for test inputs.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}

#[test]
fn relative_entry_is_attention_scores() {
    assert_eq!(relative::ENTRY, PositionEntry::AttentionScores);
}

// ------------------------------------------------------------------------------------------
// T5

#[test]
fn t5_buckets_match_hf_fixture_exactly() {
    let path = fixtures().join("t5/buckets.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let cases: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert!(!cases.is_empty());
    let mut checked = 0;
    for case in &cases {
        let bidirectional = case["bidirectional"].as_bool().unwrap();
        let num_buckets = case["num_buckets"].as_u64().unwrap() as usize;
        let max_distance = case["max_distance"].as_u64().unwrap() as usize;
        let lo = case["relative_positions"][0].as_i64().unwrap();
        let hi = case["relative_positions"][1].as_i64().unwrap();
        let buckets = case["buckets"].as_array().unwrap();
        assert_eq!(buckets.len() as i64, hi - lo + 1);
        for (rp, want) in (lo..=hi).zip(buckets) {
            let got = relative::t5_bucket(rp, bidirectional, num_buckets, max_distance).unwrap();
            assert_eq!(
                got as u64,
                want.as_u64().unwrap(),
                "rp {rp} bidirectional {bidirectional}"
            );
            checked += 1;
        }
        // The matrix form agrees: row i, key j has rp = j - i.
        let cfg = T5Buckets {
            bidirectional,
            num_buckets,
            max_distance,
        };
        let m = relative::t5_bucket_matrix(1, (hi + 1) as usize, (-lo) as usize, &cfg).unwrap();
        for (j, b) in m.iter().enumerate() {
            assert_eq!(*b as u64, buckets[j].as_u64().unwrap());
        }
    }
    assert_eq!(checked, 2 * 1201);
}

#[test]
fn t5_bucket_properties() {
    for (num_buckets, max_distance) in
        [(32usize, 128usize), (64, 256), (16, 64), (8, 20), (33, 128)]
    {
        for bidirectional in [true, false] {
            let cfg = T5Buckets {
                bidirectional,
                num_buckets,
                max_distance,
            };
            let b = |rp: i64| {
                relative::t5_bucket(rp, bidirectional, num_buckets, max_distance).unwrap()
            };
            let n = if bidirectional {
                num_buckets / 2
            } else {
                num_buckets
            };
            let max_exact = (n / 2) as i64;
            let mut prev = 0;
            for d in 0..3 * max_distance as i64 {
                let back = b(-d); // key before the query, distance d
                assert!(back < n, "{cfg:?} d {d}");
                assert!(back >= prev, "monotone in distance: {cfg:?} d {d}");
                prev = back;
                if d < max_exact {
                    assert_eq!(back, d as usize, "exact buckets below max_exact");
                }
                if d >= max_distance as i64 {
                    assert_eq!(back, n - 1, "saturates past max_distance");
                }
                if d > 0 {
                    if bidirectional {
                        assert_eq!(b(d), back + n, "future keys mirror past keys, offset by n");
                    } else {
                        assert_eq!(b(d), 0, "causal: future keys share bucket 0");
                    }
                }
            }
            // Every bucket below n is used (log buckets cover the range without gaps).
            let mut seen = vec![false; n];
            for d in 0..=max_distance as i64 {
                seen[b(-d)] = true;
            }
            assert!(seen.iter().all(|&s| s), "{cfg:?}");
        }
    }
    // Extreme positions do not overflow.
    assert_eq!(relative::t5_bucket(i64::MIN, true, 32, 128).unwrap(), 15);
    assert_eq!(relative::t5_bucket(i64::MAX, true, 32, 128).unwrap(), 31);
    assert_eq!(relative::t5_bucket(i64::MIN, false, 32, 128).unwrap(), 31);
}

#[test]
fn t5_validates_parameters() {
    for (bidirectional, nb, md) in [
        (true, 3, 128),
        (true, 0, 128),
        (false, 1, 128),
        (true, 32, 8),
        (false, 32, 16),
    ] {
        let r = relative::t5_bucket(-5, bidirectional, nb, md);
        assert!(
            matches!(r, Err(Error::InvalidParameter { .. })),
            "{bidirectional} {nb} {md}: {r:?}"
        );
    }
    assert!(relative::t5_bucket(-5, true, 4, 2).is_ok());
    assert!(relative::t5_bucket(-5, false, 2, 2).is_ok());
    assert!(matches!(
        relative::t5_bucket(0, true, 1 << 20, 1 << 30),
        Err(Error::TooLarge { .. })
    ));
}

#[test]
fn t5_bias_looks_up_table_per_head() {
    let cfg = T5Buckets {
        bidirectional: true,
        num_buckets: 32,
        max_distance: 128,
    };
    let heads = 3;
    let table: Vec<f32> = (0..32 * heads).map(|k| k as f32).collect(); // table[b][h] = b*heads + h
    let (lq, lk, off) = (4, 9, 3);
    let bias = relative::t5_bias(&table, heads, lq, lk, off, &cfg).unwrap();
    assert_eq!(bias.len(), heads * lq * lk);
    for h in 0..heads {
        for i in 0..lq {
            for j in 0..lk {
                let b = relative::t5_bucket(j as i64 - (off + i) as i64, true, 32, 128).unwrap();
                assert_eq!(bias[(h * lq + i) * lk + j], (b * heads + h) as f32);
            }
        }
    }
    assert!(matches!(
        relative::t5_bias(&table[1..], heads, 2, 2, 0, &cfg),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        relative::t5_bias(&table, 0, 2, 2, 0, &cfg),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(matches!(
        relative::t5_bias(&table, heads, 1 << 13, 1 << 13, 0, &cfg),
        Err(Error::TooLarge { .. })
    ));
}

// ------------------------------------------------------------------------------------------
// Shaw

#[test]
fn shaw_index_clips() {
    assert_eq!(relative::shaw_index(5, 5, 3), 3);
    assert_eq!(relative::shaw_index(5, 7, 3), 5);
    assert_eq!(relative::shaw_index(5, 100, 3), 6);
    assert_eq!(relative::shaw_index(5, 0, 3), 0);
    assert_eq!(relative::shaw_index(5, 3, 3), 1);
    assert_eq!(relative::shaw_index(i64::MIN, i64::MAX, 4), 8);
    assert_eq!(relative::shaw_index(i64::MAX, i64::MIN, 4), 0);
    assert_eq!(relative::shaw_index(0, 0, 0), 0);
}

/// Direct Shaw logits with an explicit a_ij, written independently of the library.
fn shaw_direct_scores(
    q: &[f32],
    k: &[f32],
    rk: &[f32],
    lq: usize,
    lk: usize,
    d: usize,
    clip: i64,
) -> Vec<f64> {
    let mut e = vec![0.0; lq * lk];
    for i in 0..lq {
        for j in 0..lk {
            let rel = ((j as i64 - i as i64).max(-clip).min(clip) + clip) as usize;
            let s: f64 = (0..d)
                .map(|c| {
                    f64::from(q[i * d + c]) * (f64::from(k[j * d + c]) + f64::from(rk[rel * d + c]))
                })
                .sum();
            e[i * lk + j] = s / (d as f64).sqrt();
        }
    }
    e
}

#[test]
fn shaw_scores_and_output_match_direct_formula() {
    for (lq, lk, d, clip) in [
        (5usize, 7usize, 4usize, 2usize),
        (6, 6, 3, 0),
        (3, 10, 8, 20),
    ] {
        let rows = 2 * clip + 1;
        let (q, k, v) = (values(lq * d, 1), values(lk * d, 2), values(lk * d, 3));
        let (rk, rv) = (values(rows * d, 4), values(rows * d, 5));
        let e = relative::shaw_scores(&q, &k, &rk, lq, lk, clip).unwrap();
        // Use the scores themselves as the weights: shaw_output does not need them normalised.
        let z = relative::shaw_output(&e, &v, &rv, lq, lk, clip).unwrap();
        let we = shaw_direct_scores(&q, &k, &rk, lq, lk, d, clip as i64);
        for (a, b) in e.iter().zip(&we) {
            assert!((f64::from(*a) - b).abs() <= 1e-6 * (1.0 + b.abs()));
        }
        // Recompute z directly from the f32 weights that shaw_output was given.
        for i in 0..lq {
            for c in 0..d {
                let want: f64 = (0..lk)
                    .map(|j| {
                        let c_ = clip as i64;
                        let r = ((j as i64 - i as i64).max(-c_).min(c_) + c_) as usize;
                        f64::from(e[i * lk + j])
                            * (f64::from(v[j * d + c]) + f64::from(rv[r * d + c]))
                    })
                    .sum();
                assert!((f64::from(z[i * d + c]) - want).abs() <= 1e-6 * (1.0 + want.abs()));
            }
        }
    }
}

#[test]
fn shaw_validates_lengths() {
    let (q, k, rk) = (values(8, 1), values(12, 2), values(20, 3)); // d = 4, clip 2
    assert!(relative::shaw_scores(&q, &k, &rk, 2, 3, 2).is_ok());
    assert!(matches!(
        relative::shaw_scores(&q[1..], &k, &rk, 2, 3, 2),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        relative::shaw_scores(&q, &k, &rk, 2, 4, 2),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        relative::shaw_scores(&q, &k, &rk[1..], 2, 3, 2),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        relative::shaw_scores(&q, &k, &[], 2, 3, 2),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(matches!(
        relative::shaw_output(&q[..5], &k, &rk, 2, 3, 2),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        relative::shaw_scores(&q, &k, &rk, 2, 3, usize::MAX),
        Err(Error::TooLarge { .. })
    ));
    assert!(matches!(
        relative::shaw_index_matrix(1 << 14, 1 << 14, 2),
        Err(Error::TooLarge { .. })
    ));
}

// ------------------------------------------------------------------------------------------
// Transformer-XL

/// The pad–reshape–slice trick, by index arithmetic on the padded buffer (independent of the
/// library's buffer handling): out[t] = padded[t + rows], padded[r][0] = 0, padded[r][c+1] = x[r][c].
fn rel_shift_by_index(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..rows * cols)
        .map(|t| {
            let u = t + rows;
            let (r, c) = (u / (cols + 1), u % (cols + 1));
            if c == 0 {
                0.0
            } else {
                x[r * cols + c - 1]
            }
        })
        .collect()
}

#[test]
fn rel_shift_small_example() {
    // rows 2, cols 3: out[i][j] = x[i][j + 1 - i] for j <= i + 1.
    let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let out = relative::rel_shift(&x, 2, 3).unwrap();
    assert_eq!(out[0], 2.0); // (0,0) <- x[0][1]
    assert_eq!(out[1], 3.0); // (0,1) <- x[0][2]
    assert_eq!(out[3], 4.0); // (1,0) <- x[1][0]
    assert_eq!(out[4], 5.0); // (1,1) <- x[1][1]
    assert_eq!(out[5], 6.0); // (1,2) <- x[1][2]
    assert!(matches!(
        relative::rel_shift(&x, 2, 2),
        Err(Error::Shape { .. })
    ));
}

#[test]
fn txl_relative_embeddings_are_reversed_concat_rows() {
    let (klen, d) = (6, 8);
    let r = relative::txl_relative_embeddings(klen, d).unwrap();
    for m in 0..klen {
        let want = posenc::sinusoidal::row(
            (klen - 1 - m) as f64,
            d,
            10_000.0,
            posenc::sinusoidal::SinusoidalLayout::Concat,
        )
        .unwrap();
        assert_eq!(&r[m * d..(m + 1) * d], &want[..]);
    }
    assert!(relative::txl_relative_embeddings(4, 7).is_err());
}

#[test]
fn txl_scores_match_direct_formula() {
    for (lq, lk, d) in [(4usize, 4usize, 8usize), (3, 7, 6), (1, 5, 4), (5, 9, 2)] {
        let (q, k) = (values(lq * d, 11), values(lk * d, 12));
        let (u, v) = (values(d, 13), values(d, 14));
        let rel = relative::txl_relative_embeddings(lk, d).unwrap();
        let got = relative::txl_scores(&q, &k, &rel, &u, &v, lq, lk).unwrap();
        let mlen = lk - lq;
        for i in 0..lq {
            for j in 0..lk {
                let g = f64::from(got[i * lk + j]);
                if j > mlen + i {
                    assert_eq!(g, 0.0);
                    continue;
                }
                let dist = mlen + i - j;
                // Row of R for distance `dist`: klen-1-dist; equivalently the sinusoid at `dist`.
                let r = posenc::sinusoidal::row(
                    dist as f64,
                    d,
                    10_000.0,
                    posenc::sinusoidal::SinusoidalLayout::Concat,
                )
                .unwrap();
                let want: f64 = (0..d)
                    .map(|c| {
                        let qc = f64::from(q[i * d + c]);
                        (qc + f64::from(u[c])) * f64::from(k[j * d + c])
                            + (qc + f64::from(v[c])) * f64::from(r[c])
                    })
                    .sum();
                assert!(
                    (g - want).abs() <= 2e-6 * (1.0 + want.abs()),
                    "lq {lq} lk {lk} i {i} j {j}: {g} vs {want}"
                );
            }
        }
    }
    let (q, k, u, v) = (values(8, 1), values(8, 2), values(4, 3), values(4, 4));
    let rel = relative::txl_relative_embeddings(2, 4).unwrap();
    assert!(matches!(
        relative::txl_scores(&q, &k[..4], &rel[..4], &u, &v, 2, 1),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(matches!(
        relative::txl_scores(&q, &k, &rel, &u, &v[..3], 2, 2),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        relative::txl_scores(&q, &k, &rel, &[], &[], 2, 2),
        Err(Error::InvalidParameter { .. })
    ));
}

// ------------------------------------------------------------------------------------------
// DeBERTa

#[test]
fn deberta_bucket_properties() {
    for (bucket_size, max_position) in [(256usize, 512usize), (64, 128), (8, 20)] {
        let mid = (bucket_size / 2) as i64;
        let b = |rp: i64| relative::deberta_bucket(rp, bucket_size, max_position).unwrap();
        for rp in -mid..=mid {
            assert_eq!(b(rp), rp, "identity for |rp| <= mid");
        }
        let mut prev = b(0);
        for rp in 1..4 * max_position as i64 {
            let x = b(rp);
            assert_eq!(b(-rp), -x, "odd symmetry");
            assert!(x >= prev, "monotone");
            prev = x;
            if rp > mid {
                // Independent f64 closed form, away from integer edges where f32/f64 may round apart.
                let y = (rp as f64 / mid as f64).ln()
                    / ((max_position - 1) as f64 / mid as f64).ln()
                    * (mid - 1) as f64;
                if (y - y.round()).abs() > 1e-4 {
                    assert_eq!(
                        x,
                        y.ceil() as i64 + mid,
                        "bucket_size {bucket_size} rp {rp}"
                    );
                }
            }
        }
        // At |rp| = max_position - 1 the log term is exactly mid - 1: the last bucket 2·mid - 1.
        assert_eq!(b(max_position as i64 - 1), 2 * mid - 1);
    }
    assert!(relative::deberta_bucket(i64::MIN, 256, 512).unwrap() < 0);
    assert!(relative::deberta_bucket(0, 1, 512).is_err());
    assert!(relative::deberta_bucket(0, 256, 129).is_err());
    assert!(relative::deberta_bucket(0, 256, 130).is_ok());
}

#[test]
fn deberta_matrix_is_bucket_of_query_minus_key() {
    let m = relative::deberta_relative_positions(5, 300, 256, 512).unwrap();
    for i in 0..5 {
        for j in 0..300 {
            assert_eq!(
                m[i * 300 + j],
                relative::deberta_bucket(i as i64 - j as i64, 256, 512).unwrap()
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn rel_shift_equals_direct_indexing(rows in 1usize..12, extra in 0usize..8, seed in any::<u64>()) {
        let cols = rows + extra;
        let x = values(rows * cols, seed);
        let out = relative::rel_shift(&x, rows, cols).unwrap();
        prop_assert_eq!(&out, &rel_shift_by_index(&x, rows, cols));
        for i in 0..rows {
            for j in 0..=(i + cols - rows).min(cols - 1) {
                prop_assert_eq!(out[i * cols + j], x[i * cols + j + rows - 1 - i]);
            }
        }
    }

    #[test]
    fn rel_shift_any_shape_matches_index_formula(rows in 0usize..10, cols in 0usize..10, seed in any::<u64>()) {
        let x = values(rows * cols, seed);
        prop_assert_eq!(relative::rel_shift(&x, rows, cols).unwrap(), rel_shift_by_index(&x, rows, cols));
    }

    #[test]
    fn t5_buckets_depend_only_on_key_minus_query(
        lq in 1usize..12, lk in 1usize..40, off in 0usize..300, shift in 0usize..300,
        bidirectional in any::<bool>(),
    ) {
        let cfg = T5Buckets { bidirectional, num_buckets: 32, max_distance: 128 };
        let a = relative::t5_bucket_matrix(lq, lk, off, &cfg).unwrap();
        // Shifting queries and keys together changes nothing: keys shifted by `shift` are
        // columns `shift ..` of a wider matrix whose queries start at off + shift.
        let b = relative::t5_bucket_matrix(lq, lk + shift, off + shift, &cfg).unwrap();
        for i in 0..lq {
            for j in 0..lk {
                prop_assert_eq!(a[i * lk + j], b[i * (lk + shift) + j + shift]);
                if i + 1 < lq && j + 1 < lk {
                    prop_assert_eq!(a[i * lk + j], a[(i + 1) * lk + j + 1]);
                }
            }
        }
    }

    #[test]
    fn shaw_depends_only_on_key_minus_query(lq in 1usize..8, lk in 1usize..8, clip in 0usize..5, d in 1usize..5, seed in any::<u64>()) {
        // Same query vector at every position and same key vector at every position: the
        // scores then depend on position only through a_ij, i.e. through j - i.
        let rows = 2 * clip + 1;
        let qv = values(d, seed);
        let kv = values(d, seed ^ 1);
        let q: Vec<f32> = (0..lq).flat_map(|_| qv.clone()).collect();
        let k: Vec<f32> = (0..lk).flat_map(|_| kv.clone()).collect();
        let rk = values(rows * d, seed ^ 2);
        let e = relative::shaw_scores(&q, &k, &rk, lq, lk, clip).unwrap();
        let idx = relative::shaw_index_matrix(lq, lk, clip).unwrap();
        for i in 0..lq {
            for j in 0..lk {
                prop_assert_eq!(idx[i * lk + j], relative::shaw_index(i as i64, j as i64, clip));
                if i + 1 < lq && j + 1 < lk {
                    prop_assert_eq!(e[i * lk + j], e[(i + 1) * lk + j + 1]);
                    prop_assert_eq!(idx[i * lk + j], idx[(i + 1) * lk + j + 1]);
                }
            }
        }
    }
}
