//! Causal grouped-query attention of new tokens against a KV cache: the fast path a model runner
//! calls for prefill, decode and padded batches, with an optional probe that sees the softmax
//! weights of every query row (attention entropy, attended distance, attention sinks).
//!
//! The new queries are the last `n` of the `seq_k` cached keys (bottom-right causal alignment,
//! [`crate::attention::Causal::ByIndex`]): query `i` sees keys `0..=past + i`, `past = seq_k − n`,
//! except keys whose padding flag is `false`. Keys are given already rotated (as a cache stores
//! them), so the semantics are those of [`crate::attention::attend_positioned`] with
//! [`crate::attention::Scheme::NoPe`], [`Causal::ByIndex`](crate::attention::Causal::ByIndex) and
//! a key padding mask; that reference is the oracle of the tests.
//!
//! One job per (key/value head, block of [`QUERY_BLOCK`] queries): the queries of every head of
//! the group are stacked into one matrix, so each block multiplies its keys and values once for
//! the whole group ([`crate::kernels::gemm::gemm`]). A single new token (decode) takes dot
//! products straight from the cache, one job per key/value head. Softmax weights stay
//! unnormalized; each output row is divided by its sum at the end.
//!
//! Precision: `f32` scores and sums, [`exp_shifted`] within 4e-7 relative of `exp`; outputs are
//! within about 2e-5 of the f64 reference for values of order 1 (measured in the tests).

use rayon::prelude::*;

use crate::attention::HeadConfig;
use crate::kernels::gemm::{gemm, MatRef};
use crate::{Error, Result};

/// Query rows per attention block (bounds the score buffer to `block × keys`).
pub const QUERY_BLOCK: usize = 128;
/// Query blocks up to this many rows use dot products instead of GEMM.
const SMALL_ROWS: usize = 2;
/// Bins of [`HeadStats::distance_mass`]: distance 0, then `[2^(b-1), 2^b)` for bin `b`, the last
/// bin holding everything from 2^15 on.
pub const DISTANCE_BINS: usize = 17;
/// Cap on `n_q_heads · n · seq_k` (query/key pairs) of one call: 2^38.
pub const MAX_CACHED_PAIRS: u64 = 1 << 38;

/// The bin of [`HeadStats::distance_mass`] that a query–key distance falls in.
pub fn distance_bin(distance: usize) -> usize {
    if distance == 0 {
        0
    } else {
        ((usize::BITS - distance.leading_zeros()) as usize).min(DISTANCE_BINS - 1)
    }
}

/// Attention statistics of one head, summed over the observed queries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeadStats {
    /// Number of query rows observed.
    pub queries: u64,
    /// Sum over queries of the attention entropy `−Σ p ln p` (nats).
    pub entropy_sum: f64,
    /// Sum over queries of the mean attended distance `Σ p·(i − j)` (query index `i`, key `j`,
    /// in arrival order).
    pub distance_sum: f64,
    /// Sum over queries of the weight on the first cached token (the "attention sink").
    pub first_token_sum: f64,
    /// Sum over queries of the mean distance over the keys after the first one,
    /// `Σ_{j≥1} p_j (i − j) / Σ_{j≥1} p_j` (queries whose weight is all on the first key add 0).
    pub distance_after_first_sum: f64,
    /// Attention weight summed over queries, by distance bin ([`distance_bin`]).
    pub distance_mass: [f64; DISTANCE_BINS],
}

impl HeadStats {
    /// Adds the statistics of `o`.
    pub fn merge(&mut self, o: &HeadStats) {
        self.queries += o.queries;
        self.entropy_sum += o.entropy_sum;
        self.distance_sum += o.distance_sum;
        self.first_token_sum += o.first_token_sum;
        self.distance_after_first_sum += o.distance_after_first_sum;
        for (a, b) in self.distance_mass.iter_mut().zip(&o.distance_mass) {
            *a += b;
        }
    }

    /// Adds one query row of attention weights over keys `0..w.len()`, normalized by `inv`
    /// (probability `w[j]·inv`); the query is key `w.len() − 1`.
    pub fn add_row(&mut self, w: &[f32], inv: f32) {
        let Some(q) = w.len().checked_sub(1) else {
            return;
        };
        let (mut ent, mut dist) = (0.0f64, 0.0f64);
        for (j, &wj) in w.iter().enumerate() {
            let pj = wj * inv;
            if pj > 0.0 {
                let pj = pj as f64;
                ent -= pj * pj.ln();
                dist += pj * (q - j) as f64;
                self.distance_mass[distance_bin(q - j)] += pj;
            }
        }
        let first = (w.first().copied().unwrap_or(0.0) * inv) as f64;
        let rest = 1.0 - first;
        self.queries += 1;
        self.entropy_sum += ent;
        self.distance_sum += dist;
        self.first_token_sum += first;
        if rest > 1e-9 {
            self.distance_after_first_sum += (dist - first * q as f64) / rest;
        }
    }
}

/// What a probe collects: statistics per query head of the rows whose query index (in arrival
/// order, `past + i`) is at least `query_from`.
#[derive(Debug)]
pub struct Probe<'a> {
    /// Queries before this arrival index are not counted.
    pub query_from: usize,
    /// One entry per query head; the rows are added to them.
    pub stats: &'a mut [HeadStats],
}

/// Causal GQA attention of the `n = q.len() / (n_q_heads·head_dim)` new queries (already rotated,
/// `[n][n_q_heads][head_dim]`) against `seq_k ≥ n` cached keys and values
/// (`[seq_k][n_kv_heads][head_dim]`, the last `n` being the new tokens'). `key_padding[j] = false`
/// hides key `j` from every query (`None`: every key is real). Scale `1/sqrt(head_dim)`.
/// Returns `[n][n_q_heads][head_dim]`; a query with no visible key gets zeros.
///
/// Errors (never panics): buffer sizes that do not match `heads`, `seq_k < n`, a padding mask or
/// probe of the wrong length, more than [`MAX_CACHED_PAIRS`] pairs.
pub fn cached_attention(
    heads: &HeadConfig,
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    key_padding: Option<&[bool]>,
    probe: Option<Probe<'_>>,
) -> Result<Vec<f32>> {
    heads.validate()?;
    let (d, kv, hd) = (heads.q_width(), heads.kv_width(), heads.head_dim);
    if !q.len().is_multiple_of(d) {
        return Err(Error::shape(
            "q [n][n_q_heads][head_dim]",
            "a multiple of q width",
            q.len(),
        ));
    }
    if !keys.len().is_multiple_of(kv) || values.len() != keys.len() {
        return Err(Error::shape(
            "keys/values [seq_k][n_kv_heads][head_dim]",
            format!("equal multiples of {kv}"),
            format!("{}/{}", keys.len(), values.len()),
        ));
    }
    let (n, seq_k) = (q.len() / d, keys.len() / kv);
    if seq_k < n {
        return Err(Error::shape("cached keys (≥ new queries)", n, seq_k));
    }
    if let Some(p) = key_padding {
        if p.len() != seq_k {
            return Err(Error::shape("key padding [seq_k]", seq_k, p.len()));
        }
    }
    if let Some(p) = &probe {
        if p.stats.len() != heads.n_q_heads {
            return Err(Error::shape(
                "probe stats [n_q_heads]",
                heads.n_q_heads,
                p.stats.len(),
            ));
        }
    }
    crate::error::check_cap(
        "n_q_heads × new queries × cached keys",
        (heads.n_q_heads as u64)
            .saturating_mul(n as u64)
            .saturating_mul(seq_k as u64),
        MAX_CACHED_PAIRS,
    )?;
    if n == 0 {
        return Ok(Vec::new());
    }
    let past = seq_k - n;
    let group = heads.n_q_heads / heads.n_kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let mask = key_padding.filter(|a| a.iter().any(|&x| !x));
    if n == 1 && probe.is_none() {
        return Ok(attention_one(heads, q, past, keys, values, mask, scale));
    }
    let blocks = n.div_ceil(QUERY_BLOCK);
    let query_from = probe.as_ref().map(|p| p.query_from);
    let jobs: Vec<(usize, usize)> = (0..heads.n_kv_heads)
        .flat_map(|g| (0..blocks).map(move |b| (g, b)))
        .collect();
    type Job = (usize, usize, Vec<f32>, Option<Vec<HeadStats>>);
    let results: Vec<Job> = jobs
        .into_par_iter()
        .map(|(g, b)| {
            let i0 = b * QUERY_BLOCK;
            let i1 = (i0 + QUERY_BLOCK).min(n);
            // Row r = i·group + t holds query i0 + i of head g·group + t.
            let rows = (i1 - i0) * group;
            let n_keys = past + i1;
            let mut qa = vec![0.0f32; rows * hd];
            for (i, dst) in qa.chunks_exact_mut(group * hd).enumerate() {
                let src = (i0 + i) * d + g * group * hd;
                dst.copy_from_slice(&q[src..src + group * hd]);
            }
            let mut scores = vec![0.0f32; rows * n_keys];
            if i1 - i0 <= SMALL_ROWS {
                // Decode-sized blocks: dot products straight from the cache (a GEMM would first
                // copy the keys).
                for (row, qr) in scores.chunks_exact_mut(n_keys).zip(qa.chunks_exact(hd)) {
                    for (j, s) in row.iter_mut().enumerate() {
                        *s = dot(qr, &keys[j * kv + g * hd..j * kv + (g + 1) * hd]);
                    }
                }
            } else {
                let a = MatRef::row_major(&qa, rows, hd);
                let kt = MatRef {
                    data: keys,
                    offset: g * hd,
                    rows: hd,
                    cols: n_keys,
                    rs: 1,
                    cs: kv,
                };
                gemm(a, kt, &mut scores, n_keys, false).expect("block shapes are consistent");
            }
            let mut stats = query_from.map(|_| vec![HeadStats::default(); group]);
            let mut inv = vec![0.0f32; rows];
            for (r, row) in scores.chunks_exact_mut(n_keys).enumerate() {
                let visible = past + i0 + r / group + 1;
                let (live, hidden) = row.split_at_mut(visible);
                hidden.fill(0.0);
                inv[r] = softmax_unnormalized(live, scale, mask);
                if let (Some(st), Some(from)) = (stats.as_mut(), query_from) {
                    if visible > from {
                        st[r % group].add_row(live, inv[r]);
                    }
                }
            }
            let mut out = vec![0.0f32; rows * hd];
            if i1 - i0 <= SMALL_ROWS {
                for (o, p) in out.chunks_exact_mut(hd).zip(scores.chunks_exact(n_keys)) {
                    for (j, &pj) in p.iter().enumerate() {
                        let vj = &values[j * kv + g * hd..j * kv + (g + 1) * hd];
                        for (a, &b) in o.iter_mut().zip(vj) {
                            *a += pj * b;
                        }
                    }
                }
            } else {
                let pa = MatRef::row_major(&scores, rows, n_keys);
                let vb = MatRef {
                    data: values,
                    offset: g * hd,
                    rows: n_keys,
                    cols: hd,
                    rs: kv,
                    cs: 1,
                };
                gemm(pa, vb, &mut out, hd, false).expect("block shapes are consistent");
            }
            for (o, &f) in out.chunks_exact_mut(hd).zip(&inv) {
                for v in o.iter_mut() {
                    *v *= f;
                }
            }
            (g, i0, out, stats)
        })
        .collect();
    let mut attn = vec![0.0f32; n * d];
    let mut probe = probe;
    for (g, i0, out, stats) in results {
        if let (Some(p), Some(st)) = (probe.as_mut(), stats) {
            for (t, s) in st.iter().enumerate() {
                p.stats[g * group + t].merge(s);
            }
        }
        // Out row i·group + t is query i0 + i of head g·group + t: the group's heads are adjacent.
        for (i, src) in out.chunks_exact(group * hd).enumerate() {
            let dst = (i0 + i) * d + g * group * hd;
            attn[dst..dst + group * hd].copy_from_slice(src);
        }
    }
    Ok(attn)
}

/// Unnormalized softmax of `scores · scale` in place: `exp((s − max)·scale)`, 0 for keys whose
/// `attend` flag is false. Returns `1 / sum` of the weights (0 when no key is visible, and then
/// every weight is 0).
fn softmax_unnormalized(scores: &mut [f32], scale: f32, attend: Option<&[bool]>) -> f32 {
    if let Some(attend) = attend {
        for (s, &a) in scores.iter_mut().zip(attend) {
            if !a {
                *s = f32::NEG_INFINITY;
            }
        }
    }
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        // Nothing visible (a padding row at the start).
        scores.fill(0.0);
        return 0.0;
    }
    let mut sum = exp_shifted(scores, max, scale);
    if let Some(attend) = attend {
        for (s, &a) in scores.iter_mut().zip(attend) {
            if !a {
                sum -= *s;
                *s = 0.0;
            }
        }
    }
    1.0 / sum
}

/// Attention of one new token (decode). One job per key/value head: each cached key and value
/// row is read once and used by every query head of its group.
fn attention_one(
    heads: &HeadConfig,
    q: &[f32],
    past: usize,
    keys: &[f32],
    values: &[f32],
    attend: Option<&[bool]>,
    scale: f32,
) -> Vec<f32> {
    let (kv, hd) = (heads.kv_width(), heads.head_dim);
    let group = heads.n_q_heads / heads.n_kv_heads;
    let n_keys = past + 1;
    let parts: Vec<Vec<f32>> = (0..heads.n_kv_heads)
        .into_par_iter()
        .map(|g| {
            // The group's query heads are adjacent in the token's query row.
            let qg = &q[g * group * hd..(g + 1) * group * hd];
            let mut scores = vec![0.0f32; group * n_keys];
            decode_scores(qg, keys, kv, g * hd, hd, n_keys, &mut scores);
            let inv: Vec<f32> = scores
                .chunks_exact_mut(n_keys)
                .map(|row| softmax_unnormalized(row, scale, attend))
                .collect();
            let mut out = vec![0.0f32; group * hd];
            decode_values(&scores, values, kv, g * hd, hd, n_keys, &mut out);
            for (o, &f) in out.chunks_exact_mut(hd).zip(&inv) {
                for v in o.iter_mut() {
                    *v *= f;
                }
            }
            out
        })
        .collect();
    parts.concat()
}

/// `scores[t][j] = <q_t, k_j>` for the query heads `t` of one group against cached keys
/// `keys[j·kv + off ..][..hd]`. One compiled body per instruction set, with the dot product
/// inlined (a call per 64-value product through the dispatcher cost as much as the product).
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn decode_scores(
    qg: &[f32],
    keys: &[f32],
    kv: usize,
    off: usize,
    hd: usize,
    n_keys: usize,
    scores: &mut [f32],
) {
    for j in 0..n_keys {
        let kj = &keys[j * kv + off..j * kv + off + hd];
        for (t, qt) in qg.chunks_exact(hd).enumerate() {
            scores[t * n_keys + j] = dot_inline(qt, kj);
        }
    }
}

/// `out[t] += Σ_j scores[t][j] · v_j` for one group (values `values[j·kv + off ..][..hd]`).
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn decode_values(
    scores: &[f32],
    values: &[f32],
    kv: usize,
    off: usize,
    hd: usize,
    n_keys: usize,
    out: &mut [f32],
) {
    for j in 0..n_keys {
        let vj = &values[j * kv + off..j * kv + off + hd];
        for (t, o) in out.chunks_exact_mut(hd).enumerate() {
            let p = scores[t * n_keys + j];
            for (a, &b) in o.iter_mut().zip(vj) {
                *a += p * b;
            }
        }
    }
}

/// The body of [`dot`], inlined into callers compiled for a wider instruction set.
#[inline(always)]
fn dot_inline(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Dot product with 16 independent accumulators (vectorizes; order differs from a plain sum).
/// Compiled for AVX-512 and AVX2 as well as the baseline, picked at run time.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512vl+avx2+fma",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    dot_inline(a, b)
}

/// Replaces every `s` by `exp((s − max)·scale)` and returns the sum of the results
/// (`max ≥ s` and `scale > 0`, so every argument is ≤ 0; `−∞` gives ≈1e-38, not 0).
///
/// `exp` by range reduction: `x = k·ln2 + r` with `k = round(x / ln2)`, `|r| ≤ ln2/2`, Cody–Waite
/// split of ln2, degree-7 Taylor polynomial for `e^r` (truncation error < 3e-9 relative), and `2^k`
/// written into the exponent bits. Arguments are clamped to `[−87, 0]`, so `2^k` stays normal.
/// Relative error about 2e-7 (a few ulp), checked against f64 `exp` in the tests. Plain
/// arithmetic that the compiler vectorizes (libm's `expf` is a scalar call).
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512vl+avx2+fma",
    "x86_64+avx2+fma",
    "x86_64+avx"
))]
pub fn exp_shifted(scores: &mut [f32], max: f32, scale: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // Cody–Waite: LN2_HI has 9 significant bits, so k·LN2_HI is exact for |k| < 2^15.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4; // ln 2 − LN2_HI
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding and subtracting rounds to an integer
    let mut acc = [0.0f32; 16];
    let exp = |s: f32| -> f32 {
        let x = ((s - max) * scale).clamp(-87.0, 0.0);
        // t's mantissa holds k: its bits minus ROUND's bits are k (|k| ≤ 126 < 2^22). Integer
        // bit arithmetic instead of a float-to-int cast keeps the loop vectorized.
        let t = x * LOG2E + ROUND;
        let k = t - ROUND;
        let r = x - k * LN2_HI - k * LN2_LO;
        let p = 1.0
            + r * (1.0
                + r * (0.5
                    + r * (1.0 / 6.0
                        + r * (1.0 / 24.0
                            + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
        let k_int = t.to_bits().wrapping_sub(ROUND.to_bits());
        let two_k = f32::from_bits(k_int.wrapping_add(127) << 23);
        p * two_k
    };
    let mut chunks = scores.chunks_exact_mut(16);
    for c in &mut chunks {
        for i in 0..16 {
            c[i] = exp(c[i]);
            acc[i] += c[i];
        }
    }
    let mut tail = 0.0f32;
    for v in chunks.into_remainder() {
        *v = exp(*v);
        tail += *v;
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::{attend_positioned, AttentionOptions, Causal, Mask, Scheme};
    use proptest::prelude::*;

    #[test]
    fn exp_shifted_matches_f64_exp_over_random_arguments() {
        // Seeded sweep over the whole clamped range, plus the edges.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        for trial in 0..200 {
            let n = 1 + trial % 67;
            let scale = 0.01 + 2.0 * next();
            let max = 50.0 * (next() - 0.5);
            let mut s: Vec<f32> = (0..n).map(|_| max - 90.0 / scale * next()).collect();
            if trial == 0 {
                s[0] = max;
            }
            let want: Vec<f64> = s
                .iter()
                .map(|&v| (((v - max) * scale).max(-87.0) as f64).exp())
                .collect();
            let sum = exp_shifted(&mut s, max, scale);
            for (g, w) in s.iter().zip(&want) {
                assert!((*g as f64 - w).abs() <= 4e-7 * w, "{g} vs {w}");
            }
            let want_sum: f64 = want.iter().sum();
            assert!((sum as f64 - want_sum).abs() <= 1e-6 * want_sum);
        }
        let mut s = [f32::NEG_INFINITY, 0.0];
        exp_shifted(&mut s, 0.0, 1.0);
        assert!(s[0] > 0.0 && s[0] < 1e-37 && s[1] == 1.0);
    }

    fn heads_strategy() -> impl Strategy<Value = HeadConfig> {
        prop_oneof![
            Just(HeadConfig {
                n_q_heads: 4,
                n_kv_heads: 2,
                head_dim: 8
            }),
            Just(HeadConfig {
                n_q_heads: 3,
                n_kv_heads: 3,
                head_dim: 4
            }),
            Just(HeadConfig {
                n_q_heads: 6,
                n_kv_heads: 1,
                head_dim: 16
            }),
            Just(HeadConfig {
                n_q_heads: 9,
                n_kv_heads: 3,
                head_dim: 64
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Against the f64 reference (`attend_positioned`, NoPE, causal by index, key padding):
        /// one-token decode, dot-product blocks, GEMM blocks across the block boundary, left
        /// padding that leaves some rows with no key; the probe's weights against the
        /// reference's. Tolerance 2e-5 (f32 scores of |q·k| ≤ ~50, measured ≤ 5e-6).
        #[test]
        fn cached_attention_matches_reference(heads in heads_strategy(),
                                              n in prop_oneof![Just(1usize), 2usize..6, 120usize..300],
                                              past in 0usize..40, pad in 0usize..6,
                                              seed in any::<u64>()) {
            let mut state = seed | 1;
            let mut next = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            };
            let seq_k = past + n;
            let q: Vec<f32> = (0..n * heads.q_width()).map(|_| 3.0 * next()).collect();
            let k: Vec<f32> = (0..seq_k * heads.kv_width()).map(|_| 3.0 * next()).collect();
            let v: Vec<f32> = (0..seq_k * heads.kv_width()).map(|_| next()).collect();
            let attend: Vec<bool> = (0..seq_k).map(|j| j >= pad.min(seq_k)).collect();
            let mut stats = vec![HeadStats::default(); heads.n_q_heads];
            let with_probe = n > 1;
            let probe = with_probe.then(|| Probe { query_from: 0, stats: &mut stats });
            let got = cached_attention(&heads, &q, &k, &v, Some(&attend), probe).unwrap();
            let qpos: Vec<u64> = (past as u64..seq_k as u64).collect();
            let kpos: Vec<u64> = (0..seq_k as u64).collect();
            let mask = Mask { causal: Causal::ByIndex, key_padding: Some(attend.clone()), allowed: None };
            let opts = AttentionOptions { scale: None, return_weights: true };
            let want = attend_positioned(&heads, &q, &k, &v, &qpos, &kpos, &Scheme::NoPe, &mask, &opts).unwrap();
            for (a, b) in got.iter().zip(&want.output) {
                prop_assert!((a - b).abs() < 2e-5, "{a} vs {b}");
            }
            if with_probe {
                // First-token mass per head from the reference weights [h][i][j].
                let w = want.weights.unwrap();
                for h in 0..heads.n_q_heads {
                    let first: f64 = (0..n).map(|i| w[(h * n + i) * seq_k] as f64).sum();
                    let visible_rows = (0..n).filter(|&i| (0..=past + i).any(|j| attend[j])).count();
                    prop_assert_eq!(stats[h].queries, n as u64);
                    prop_assert!((stats[h].first_token_sum - first).abs() < 1e-4 * (1 + visible_rows) as f64,
                        "head {h}: {} vs {first}", stats[h].first_token_sum);
                }
            }
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        let heads = HeadConfig {
            n_q_heads: 2,
            n_kv_heads: 1,
            head_dim: 4,
        };
        let q = vec![0.0; 8];
        let k = vec![0.0; 4];
        assert!(cached_attention(&heads, &q[..7], &k, &k, None, None).is_err());
        assert!(cached_attention(&heads, &q, &k, &k[..3], None, None).is_err());
        assert!(cached_attention(&heads, &q, &k, &k, Some(&[true, true]), None).is_err());
        let two_q = vec![0.0; 16];
        assert!(cached_attention(&heads, &two_q, &k, &k, None, None).is_err());
        assert!(cached_attention(&heads, &q, &k, &k, None, None).is_ok());
    }
}
