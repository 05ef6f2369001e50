//! Relative position schemes: Shaw clipping, T5 buckets, Transformer-XL, DeBERTa log buckets.
//!
//! All four make attention depend on the **offset between query and key** rather than on absolute
//! positions, and all four act **inside attention**, on the scores before softmax (and, for Shaw,
//! also on the values) ([`ENTRY`] = [`PositionEntry::AttentionScores`]). Unless stated otherwise,
//! buffers are flat row-major slices with explicit dimensions; query `i` and key `j` are row and
//! column indices.
//!
//! ## Shaw et al. 2018 ("Self-Attention with Relative Position Representations")
//! Learned vectors `a^K_{ij} = w^K_{clip(j-i, -k, k)}` and `a^V_{ij} = w^V_{clip(j-i, -k, k)}`
//! (tables of `2k+1` rows, row index [`shaw_index`] `= clip(j-i, -k, k) + k`):
//!
//! `e_ij = q_i · (k_j + a^K_ij) / sqrt(d)`  ([`shaw_scores`]),
//! `z_i = Σ_j w_ij (v_j + a^V_ij)`  with `w = softmax(e)` ([`shaw_output`]).
//!
//! Used by the original relative Transformer, Music Transformer (with the "skewing" trick).
//!
//! ## T5 buckets (Raffel et al. 2020)
//! A learned scalar per (bucket, head) added to the scores; `relative_position = key - query` is
//! mapped to a bucket by [`t5_bucket`], exactly as Hugging Face `T5Attention._relative_position_bucket`:
//! - bidirectional (encoder): `num_buckets` is halved to `n`; keys after the query (`rp > 0`) use
//!   buckets `n ..`; `|rp|` is bucketed;
//! - causal (decoder): `n = num_buckets`, only `max(-rp, 0)` is bucketed (keys after the query
//!   share bucket 0);
//! - with `max_exact = n / 2`: distances `< max_exact` get their own bucket; larger ones get
//!   `max_exact + trunc(ln(d / max_exact) / ln(max_distance / max_exact) · (n - max_exact))`,
//!   capped at `n - 1`. Distances beyond `max_distance` all share the last bucket.
//!
//! Used by T5, mT5, Flan-T5, UL2, LongT5 (local attention), Pix2Struct, and (with different
//! sizes) UMT5.
//!
//! ## Transformer-XL (Dai et al. 2019)
//! With memory of length `mlen = klen - qlen`, query `i` sits at absolute position `mlen + i`.
//! For keys `j <= mlen + i`:
//!
//! `A_ij = (q_i + u)·k_j  +  (q_i + v)·r_{mlen+i-j}`   ("AC" + "BD"),
//!
//! where `u = r_w_bias`, `v = r_r_bias` are learned, and `r_δ = W_R · R_δ` is the (projected)
//! sinusoidal embedding of distance `δ` ([`txl_relative_embeddings`] gives the unprojected `R` in
//! the paper code's order: row `m` holds distance `klen-1-m`). The paper's code computes `BD` for
//! all rows of `r` at once and aligns it with [`rel_shift`]. Used by Transformer-XL and XLNet.
//!
//! ## DeBERTa log buckets (He et al. 2021)
//! DeBERTa-v2/v3 map `relative_position = query - key` (note: the opposite sign of T5) through
//! [`deberta_bucket`] (HF `make_log_bucket_position`): identity for `|rp| <= mid = bucket_size/2`,
//! otherwise `sign(rp) · (ceil(ln(|rp|/mid) / ln((max_position-1)/mid) · (mid-1)) + mid)`.
//! DeBERTa then uses the buckets to index content-to-position and position-to-content terms.
//!
//! ## Numerics
//! Score accumulations run in `f64` and are stored as `f32`. The T5 and DeBERTa bucket functions
//! repeat Hugging Face's float32 arithmetic, because bucket edges decided by rounding must match
//! the checkpoint's training (see [`t5_bucket`] for how this was checked).

use crate::error::check_cap;
use crate::{Error, PositionEntry, Result};

/// Relative schemes act on the attention scores (Shaw also adds to the values).
pub const ENTRY: PositionEntry = PositionEntry::AttentionScores;

/// Cap on the number of elements of any matrix built here (`len_q * len_k`, times heads or
/// `dim` where they apply): 67,108,864.
pub const MAX_ELEMENTS: u64 = 67_108_864;

/// Cap on `num_buckets` for T5 and `bucket_size` for DeBERTa: 65,536.
pub const MAX_BUCKETS: usize = 65_536;

fn check_elements(what: &str, dims: &[usize]) -> Result<()> {
    let n = dims
        .iter()
        .fold(1u64, |acc, &d| acc.saturating_mul(d as u64));
    check_cap(what, n, MAX_ELEMENTS)
}

fn check_len(what: &str, buf: &[f32], expected: usize, shape: &str) -> Result<()> {
    if buf.len() == expected {
        Ok(())
    } else {
        Err(Error::shape(
            what,
            format!("{expected} values ({shape})"),
            buf.len(),
        ))
    }
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum()
}

// ---------------------------------------------------------------------------------------------
// Shaw

/// Row of the Shaw tables for a (query, key) pair: `clip(key - query, -k, k) + k`, in `0 ..= 2k`.
///
/// Computed in `i128`, so any `i64` positions are safe. (If `k > usize::MAX / 2` the result
/// saturates at `usize::MAX`; no table that large can exist.)
pub fn shaw_index(query: i64, key: i64, k: usize) -> usize {
    let k = k as i128;
    let rel = (i128::from(key) - i128::from(query)).clamp(-k, k);
    usize::try_from(rel + k).unwrap_or(usize::MAX)
}

/// [`shaw_index`] for queries `0 .. len_q` and keys `0 .. len_k`, flat `[len_q][len_k]`.
///
/// Errors: `len_q * len_k` above [`MAX_ELEMENTS`].
pub fn shaw_index_matrix(len_q: usize, len_k: usize, k: usize) -> Result<Vec<usize>> {
    check_elements("len_q * len_k", &[len_q, len_k])?;
    let mut out = Vec::with_capacity(len_q * len_k);
    for i in 0..len_q {
        out.extend((0..len_k).map(|j| shaw_index(i as i64, j as i64, k)));
    }
    Ok(out)
}

fn check_shaw_k(k: usize) -> Result<usize> {
    // 2k+1 table rows; the cap keeps that count representable and sane.
    if (k as u64) >= MAX_ELEMENTS {
        return Err(Error::TooLarge {
            what: "k".into(),
            value: k as u64,
            cap: MAX_ELEMENTS - 1,
        });
    }
    Ok(2 * k + 1)
}

/// Shaw attention logits for one head: `e_ij = q_i · (k_j + a^K_ij) / sqrt(dim)`, flat
/// `[len_q][len_k]`, with `a^K_ij = rel_k[shaw_index(i, j, k)]`.
///
/// Shapes: `q` `[len_q][dim]`, `keys` `[len_k][dim]`, `rel_k` `[2k+1][dim]`; `dim` is taken from
/// `rel_k.len() / (2k+1)`. No mask is applied.
///
/// Errors: buffer lengths that do not match, `dim == 0`, sizes above the caps.
pub fn shaw_scores(
    q: &[f32],
    keys: &[f32],
    rel_k: &[f32],
    len_q: usize,
    len_k: usize,
    k: usize,
) -> Result<Vec<f32>> {
    let rows = check_shaw_k(k)?;
    let dim = rel_k.len() / rows;
    if dim == 0 {
        return Err(Error::invalid(
            "rel_k",
            format!("a [{rows}][dim] table with dim >= 1"),
        ));
    }
    check_len("rel_k", rel_k, rows * dim, &format!("[2k+1 = {rows}][dim]"))?;
    check_elements("len_q * len_k * dim", &[len_q, len_k, dim])?;
    check_len(
        "q",
        q,
        len_q * dim,
        &format!("[len_q = {len_q}][dim = {dim}]"),
    )?;
    check_len(
        "keys",
        keys,
        len_k * dim,
        &format!("[len_k = {len_k}][dim = {dim}]"),
    )?;
    let scale = 1.0 / (dim as f64).sqrt();
    let mut out = Vec::with_capacity(len_q * len_k);
    for (i, qi) in q.chunks_exact(dim).enumerate() {
        for (j, kj) in keys.chunks_exact(dim).enumerate() {
            let r = shaw_index(i as i64, j as i64, k);
            let a = &rel_k[r * dim..(r + 1) * dim];
            let e: f64 = qi
                .iter()
                .zip(kj.iter().zip(a))
                .map(|(&x, (&y, &z))| f64::from(x) * (f64::from(y) + f64::from(z)))
                .sum();
            out.push((e * scale) as f32);
        }
    }
    Ok(out)
}

/// Shaw attention output for one head: `z_i = Σ_j w_ij (v_j + a^V_ij)`, flat `[len_q][dim_v]`,
/// with `a^V_ij = rel_v[shaw_index(i, j, k)]`.
///
/// Shapes: `weights` `[len_q][len_k]` (the softmax of the scores, not checked to sum to one),
/// `values` `[len_k][dim_v]`, `rel_v` `[2k+1][dim_v]`; `dim_v` is taken from `rel_v`.
///
/// Errors: buffer lengths that do not match, `dim_v == 0`, sizes above the caps.
pub fn shaw_output(
    weights: &[f32],
    values: &[f32],
    rel_v: &[f32],
    len_q: usize,
    len_k: usize,
    k: usize,
) -> Result<Vec<f32>> {
    let rows = check_shaw_k(k)?;
    let dim = rel_v.len() / rows;
    if dim == 0 {
        return Err(Error::invalid(
            "rel_v",
            format!("a [{rows}][dim_v] table with dim_v >= 1"),
        ));
    }
    check_len(
        "rel_v",
        rel_v,
        rows * dim,
        &format!("[2k+1 = {rows}][dim_v]"),
    )?;
    check_elements("len_q * len_k * dim_v", &[len_q, len_k, dim])?;
    check_len(
        "weights",
        weights,
        len_q * len_k,
        &format!("[len_q = {len_q}][len_k = {len_k}]"),
    )?;
    check_len(
        "values",
        values,
        len_k * dim,
        &format!("[len_k = {len_k}][dim_v = {dim}]"),
    )?;
    let mut out = Vec::with_capacity(len_q * dim);
    let mut acc = vec![0.0f64; dim];
    for i in 0..len_q {
        acc.iter_mut().for_each(|a| *a = 0.0);
        for (j, vj) in values.chunks_exact(dim).enumerate() {
            let w = f64::from(weights[i * len_k + j]);
            let r = shaw_index(i as i64, j as i64, k);
            let a = &rel_v[r * dim..(r + 1) * dim];
            for ((s, &v), &av) in acc.iter_mut().zip(vj).zip(a) {
                *s += w * (f64::from(v) + f64::from(av));
            }
        }
        out.extend(acc.iter().map(|&s| s as f32));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// T5

/// T5 bucketing parameters, as in a T5 `config.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct T5Buckets {
    /// `true` for encoder self-attention, `false` for decoder self-attention.
    pub bidirectional: bool,
    /// `relative_attention_num_buckets` (32 in T5).
    pub num_buckets: usize,
    /// `relative_attention_max_distance` (128 in T5).
    pub max_distance: usize,
}

impl T5Buckets {
    /// Checks the parameters: with `n = num_buckets / 2` (bidirectional) or `num_buckets`
    /// (causal) and `max_exact = n / 2`, requires `max_exact >= 1` (so `num_buckets >= 4`
    /// bidirectional, `>= 2` causal), `num_buckets <=` [`MAX_BUCKETS`], and
    /// `max_distance > max_exact` (otherwise HF divides by `ln(1) = 0` or a negative log).
    /// An odd `num_buckets` is allowed, as in HF (bidirectional then never uses the last bucket).
    pub fn validate(&self) -> Result<()> {
        if self.num_buckets > MAX_BUCKETS {
            return Err(Error::TooLarge {
                what: "num_buckets".into(),
                value: self.num_buckets as u64,
                cap: MAX_BUCKETS as u64,
            });
        }
        let n = if self.bidirectional {
            self.num_buckets / 2
        } else {
            self.num_buckets
        };
        let max_exact = n / 2;
        if max_exact == 0 {
            let min = if self.bidirectional { 4 } else { 2 };
            return Err(Error::invalid(
                "num_buckets",
                format!(
                    "at least {min} (bidirectional = {}), got {}",
                    self.bidirectional, self.num_buckets
                ),
            ));
        }
        if self.max_distance <= max_exact {
            return Err(Error::invalid(
                "max_distance",
                format!(
                    "greater than max_exact = {max_exact}, got {}",
                    self.max_distance
                ),
            ));
        }
        Ok(())
    }

    /// Number of bucket rows a bias table needs: `num_buckets`.
    pub fn num_rows(&self) -> usize {
        self.num_buckets
    }
}

/// The T5 bucket of `relative_position = key - query`, exactly as Hugging Face
/// `T5Attention._relative_position_bucket` (see the module docs for the formula).
///
/// The log branch repeats HF's float32 arithmetic: `d as f32 / max_exact`, float32 `ln`, divided
/// by `ln(max_distance / max_exact)` computed in f64 then rounded to f32 (torch turns the Python
/// float scalar into the tensor's dtype), times `n - max_exact` in f32, truncated toward zero.
/// Checked against the shared fixture (every relative position in -600..=600 for both
/// directions, T5's 32/128): this float32 path and an all-f64 path both match every case there
/// (bucket edges at powers of two are exact in both because `ln(2^k) = k·ln 2` survives rounding);
/// float32 is kept because it is HF's arithmetic. The two disagree for some other sizes, where
/// the real-valued log term is exactly an integer: for example causal `num_buckets = 9`,
/// `max_distance = 128`, `rp = -8` gives `ln 2 / ln 32 · 5 = 1` exactly; float64 rounds it to
/// `0.999..` (bucket 4) while float32 lands on `1` (bucket 5, the exact answer). A scan of
/// `num_buckets` 4..=130, `max_distance` 3..=300 and a few larger, `|rp| <= 3000` found 210 such
/// disagreements, all in sizes no released T5 uses.
///
/// Errors: parameters rejected by [`T5Buckets::validate`].
pub fn t5_bucket(
    relative_position: i64,
    bidirectional: bool,
    num_buckets: usize,
    max_distance: usize,
) -> Result<usize> {
    let cfg = T5Buckets {
        bidirectional,
        num_buckets,
        max_distance,
    };
    cfg.validate()?;
    Ok(t5_bucket_unchecked(relative_position, &cfg))
}

fn t5_bucket_unchecked(relative_position: i64, cfg: &T5Buckets) -> usize {
    let (n, offset, distance) = if cfg.bidirectional {
        let n = cfg.num_buckets / 2;
        let offset = if relative_position > 0 { n } else { 0 };
        (n, offset, relative_position.unsigned_abs())
    } else {
        (cfg.num_buckets, 0, relative_position.min(0).unsigned_abs())
    };
    let max_exact = n / 2;
    if distance < max_exact as u64 {
        return offset + distance as usize;
    }
    let log_ratio = (cfg.max_distance as f64 / max_exact as f64).ln() as f32;
    let x = (distance as f32 / max_exact as f32).ln() / log_ratio * (n - max_exact) as f32;
    // `x >= 0` here; `as usize` truncates toward zero like torch's `.to(long)` and saturates.
    let large = max_exact.saturating_add(x as usize);
    offset + large.min(n - 1)
}

/// [`t5_bucket`] for queries at absolute positions `query_offset + i` (`i < len_q`) and keys at
/// `0 .. len_k`, flat `[len_q][len_k]` (HF `compute_bias` with a cache of `query_offset` tokens).
///
/// Errors: bad parameters, `len_q * len_k` above [`MAX_ELEMENTS`].
pub fn t5_bucket_matrix(
    len_q: usize,
    len_k: usize,
    query_offset: usize,
    cfg: &T5Buckets,
) -> Result<Vec<usize>> {
    cfg.validate()?;
    check_elements("len_q * len_k", &[len_q, len_k])?;
    let mut out = Vec::with_capacity(len_q * len_k);
    for i in 0..len_q {
        let query = query_offset as i128 + i as i128;
        out.extend((0..len_k).map(|j| {
            let rp = (j as i128 - query).clamp(i64::MIN as i128, i64::MAX as i128) as i64;
            t5_bucket_unchecked(rp, cfg)
        }));
    }
    Ok(out)
}

/// The T5 position bias, flat `[heads][len_q][len_k]`: `bias[h][i][j] = bias_table[b][h]` with
/// `b` the bucket of `j - (query_offset + i)`.
///
/// `bias_table` is `relative_attention_bias.weight`, shape `[num_buckets][heads]`. The bias is
/// added to the raw scores before softmax; T5 does not scale scores by `1/sqrt(d)`.
///
/// Errors: bad parameters, `bias_table.len() != num_buckets * heads`, `heads == 0`,
/// `heads * len_q * len_k` above [`MAX_ELEMENTS`].
pub fn t5_bias(
    bias_table: &[f32],
    heads: usize,
    len_q: usize,
    len_k: usize,
    query_offset: usize,
    cfg: &T5Buckets,
) -> Result<Vec<f32>> {
    cfg.validate()?;
    if heads == 0 {
        return Err(Error::invalid("heads", "at least 1"));
    }
    check_elements("heads * len_q * len_k", &[heads, len_q, len_k])?;
    check_len(
        "bias_table",
        bias_table,
        cfg.num_buckets.saturating_mul(heads),
        &format!("[num_buckets = {}][heads = {heads}]", cfg.num_buckets),
    )?;
    let buckets = t5_bucket_matrix(len_q, len_k, query_offset, cfg)?;
    let mut out = Vec::with_capacity(heads * len_q * len_k);
    for h in 0..heads {
        out.extend(buckets.iter().map(|&b| bias_table[b * heads + h]));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Transformer-XL

/// The Transformer-XL "relative shift", by the paper code's pad–reshape–slice trick.
///
/// `x` is `[rows][cols]` with column `m` holding the term for relative distance `cols-1-m`
/// (`rows = qlen`, `cols = klen`). The trick: prepend a zero column (`[rows][cols+1]`), view the
/// buffer as `[cols+1][rows]`, drop its first row, and view the rest as `[rows][cols]`.
/// Result: for `j <= i + (cols - rows)`, `out[i][j] = x[i][j + rows - 1 - i]`, i.e. the term for
/// distance `(cols - rows) + i - j`. The other entries (keys after the query) hold wrapped-around
/// values from the next row or zeros and must be masked, as Transformer-XL does.
///
/// Errors: `x.len() != rows * cols`, `rows * cols` above [`MAX_ELEMENTS`].
pub fn rel_shift(x: &[f32], rows: usize, cols: usize) -> Result<Vec<f32>> {
    check_elements("rows * cols", &[rows, cols.saturating_add(1)])?;
    check_len(
        "x",
        x,
        rows * cols,
        &format!("[rows = {rows}][cols = {cols}]"),
    )?;
    let mut padded = Vec::with_capacity(rows * (cols + 1));
    if cols > 0 {
        for r in x.chunks_exact(cols) {
            padded.push(0.0);
            padded.extend_from_slice(r);
        }
    } else {
        padded.resize(rows, 0.0);
    }
    // Dropping the first row of the [cols+1][rows] view drops the first `rows` values.
    Ok(padded.split_off(rows))
}

/// Transformer-XL's sinusoidal relative embeddings `R`, flat `[klen][dim]`, in the paper code's
/// order: row `m` encodes distance `klen - 1 - m` (`pos_seq = arange(klen-1, -1, -1)`), with
/// `[sin | cos]` halves and frequencies `10000^(-2i/dim)` (the [`crate::sinusoidal`] `Concat`
/// layout).
///
/// Errors: as [`crate::sinusoidal::table`].
pub fn txl_relative_embeddings(klen: usize, dim: usize) -> Result<Vec<f32>> {
    use crate::sinusoidal::{row, table, SinusoidalLayout};
    // Validate sizes through `table` with zero rows first, then build rows in reverse order.
    table(0, dim, 10_000.0, SinusoidalLayout::Concat)?;
    check_cap(
        "klen * dim",
        (klen as u64).saturating_mul(dim as u64),
        crate::sinusoidal::MAX_TABLE_ELEMENTS,
    )?;
    let mut out = Vec::with_capacity(klen * dim);
    for m in 0..klen {
        out.extend(row(
            (klen - 1 - m) as f64,
            dim,
            10_000.0,
            SinusoidalLayout::Concat,
        )?);
    }
    Ok(out)
}

/// Transformer-XL attention scores for one head, `AC + BD`, flat `[len_q][len_k]`, unscaled
/// (the paper's `A^rel`; the code multiplies by `1/sqrt(d)` afterwards):
///
/// `AC[i][j] = (q_i + u)·k_j`, `BD[i][j] = (q_i + v)·rel[j + len_q - 1 - i]`
/// (the embedding of distance `mlen + i - j`, `mlen = len_k - len_q`).
///
/// `BD` is computed for every row of `rel` and aligned with [`rel_shift`], as in the paper's code.
/// Entries with `j > mlen + i` (keys after the query) have no meaning and are set to `0.0`; mask
/// them. Shapes: `q` `[len_q][d]`, `keys` `[len_k][d]`, `rel` `[len_k][d]` (projected relative
/// embeddings `W_R·R`, row `m` ↔ distance `len_k-1-m`; see [`txl_relative_embeddings`]), `u` =
/// `r_w_bias` and `v` = `r_r_bias` of length `d`.
///
/// Errors: `len_q > len_k`, `d == 0`, buffer lengths that do not match, sizes above the caps.
pub fn txl_scores(
    q: &[f32],
    keys: &[f32],
    rel: &[f32],
    u: &[f32],
    v: &[f32],
    len_q: usize,
    len_k: usize,
) -> Result<Vec<f32>> {
    let dim = u.len();
    if dim == 0 {
        return Err(Error::invalid("u", "a vector of length d >= 1"));
    }
    if len_q > len_k {
        return Err(Error::invalid(
            "len_q",
            format!("at most len_k = {len_k} (queries are the last len_q keys), got {len_q}"),
        ));
    }
    check_elements("len_q * len_k * d", &[len_q, len_k, dim])?;
    check_len("v", v, dim, "[d]")?;
    check_len(
        "q",
        q,
        len_q * dim,
        &format!("[len_q = {len_q}][d = {dim}]"),
    )?;
    check_len(
        "keys",
        keys,
        len_k * dim,
        &format!("[len_k = {len_k}][d = {dim}]"),
    )?;
    check_len(
        "rel",
        rel,
        len_k * dim,
        &format!("[len_k = {len_k}][d = {dim}]"),
    )?;
    let mlen = len_k - len_q;
    let mut bd_raw = Vec::with_capacity(len_q * len_k);
    let mut scores = Vec::with_capacity(len_q * len_k);
    let mut qu = vec![0.0f32; dim];
    let mut qv = vec![0.0f32; dim];
    for qi in q.chunks_exact(dim) {
        // q + u and q + v in f32, as the model adds the biases to the f32 query.
        for (((a, b), &x), (&bu, &bv)) in qu
            .iter_mut()
            .zip(qv.iter_mut())
            .zip(qi)
            .zip(u.iter().zip(v))
        {
            *a = x + bu;
            *b = x + bv;
        }
        scores.extend(keys.chunks_exact(dim).map(|kj| dot(&qu, kj)));
        bd_raw.extend(rel.chunks_exact(dim).map(|r| dot(&qv, r) as f32));
    }
    let bd = rel_shift(&bd_raw, len_q, len_k)?;
    let mut out = Vec::with_capacity(len_q * len_k);
    for i in 0..len_q {
        for j in 0..len_k {
            let idx = i * len_k + j;
            out.push(if j <= mlen + i {
                (scores[idx] + f64::from(bd[idx])) as f32
            } else {
                0.0
            });
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// DeBERTa

fn check_deberta(bucket_size: usize, max_position: usize) -> Result<()> {
    if bucket_size > MAX_BUCKETS {
        return Err(Error::TooLarge {
            what: "bucket_size".into(),
            value: bucket_size as u64,
            cap: MAX_BUCKETS as u64,
        });
    }
    if bucket_size < 2 {
        return Err(Error::invalid(
            "bucket_size",
            format!("at least 2 (mid = bucket_size / 2 >= 1), got {bucket_size}"),
        ));
    }
    let mid = bucket_size / 2;
    if max_position <= mid + 1 {
        return Err(Error::invalid(
            "max_position",
            format!("greater than bucket_size / 2 + 1 = {} (so ln((max_position-1)/mid) > 0), got {max_position}", mid + 1),
        ));
    }
    Ok(())
}

/// DeBERTa's log bucket of `relative_position = query - key` (HF `make_log_bucket_position`).
///
/// With `mid = bucket_size / 2`: identity for `|rp| <= mid`; otherwise
/// `sign(rp) · (ceil(ln(|rp|/mid) / ln((max_position-1)/mid) · (mid-1)) + mid)`, computed in
/// float32 like HF (`abs/mid` and both logs in f32; `(max_position-1)/mid` is a Python float
/// rounded to f32 by `torch.tensor`). DeBERTa-v2/v3 use `bucket_size = position_buckets = 256`,
/// `max_position = max_relative_positions = 512`.
///
/// Errors: `bucket_size < 2` or above [`MAX_BUCKETS`], `max_position <= bucket_size/2 + 1`.
pub fn deberta_bucket(
    relative_position: i64,
    bucket_size: usize,
    max_position: usize,
) -> Result<i64> {
    check_deberta(bucket_size, max_position)?;
    Ok(deberta_bucket_unchecked(
        relative_position,
        bucket_size,
        max_position,
    ))
}

fn deberta_bucket_unchecked(
    relative_position: i64,
    bucket_size: usize,
    max_position: usize,
) -> i64 {
    let mid = bucket_size / 2;
    let abs = relative_position.unsigned_abs();
    if abs <= mid as u64 {
        return relative_position;
    }
    let denom = ((max_position - 1) as f64 / mid as f64) as f32;
    let x = (abs as f32 / mid as f32).ln() / denom.ln() * (mid - 1) as f32;
    let magnitude = (x.ceil() as i64).saturating_add(mid as i64);
    relative_position.signum() * magnitude
}

/// [`deberta_bucket`] of `i - j` for queries `0 .. len_q` and keys `0 .. len_k`, flat
/// `[len_q][len_k]` (HF `build_relative_position` with bucketing on).
///
/// Errors: bad parameters, `len_q * len_k` above [`MAX_ELEMENTS`].
pub fn deberta_relative_positions(
    len_q: usize,
    len_k: usize,
    bucket_size: usize,
    max_position: usize,
) -> Result<Vec<i64>> {
    check_deberta(bucket_size, max_position)?;
    check_elements("len_q * len_k", &[len_q, len_k])?;
    let mut out = Vec::with_capacity(len_q * len_k);
    for i in 0..len_q {
        out.extend(
            (0..len_k)
                .map(|j| deberta_bucket_unchecked(i as i64 - j as i64, bucket_size, max_position)),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Quick look at where float32 and float64 T5 arithmetic disagree (kept as a test so the
    /// claim in the docs stays checked): none for T5's own 32/128.
    fn t5_bucket_f64(rp: i64, cfg: &T5Buckets) -> usize {
        let (n, offset, d) = if cfg.bidirectional {
            let n = cfg.num_buckets / 2;
            (n, if rp > 0 { n } else { 0 }, rp.unsigned_abs())
        } else {
            (cfg.num_buckets, 0, rp.min(0).unsigned_abs())
        };
        let me = n / 2;
        if d < me as u64 {
            return offset + d as usize;
        }
        let x = (d as f64 / me as f64).ln() / (cfg.max_distance as f64 / me as f64).ln()
            * (n - me) as f64;
        offset + (me + x as usize).min(n - 1)
    }

    #[test]
    fn t5_integer_log_term_lands_on_the_exact_bucket() {
        // ln(8/4) / ln(128/4) * (9 - 4) = ln 2 / (5 ln 2) * 5 = 1 exactly: bucket 4 + 1.
        let cfg = T5Buckets {
            bidirectional: false,
            num_buckets: 9,
            max_distance: 128,
        };
        assert_eq!(t5_bucket_unchecked(-8, &cfg), 5);
        assert_eq!(
            t5_bucket_f64(-8, &cfg),
            4,
            "f64 falls just below the integer"
        );
    }

    #[test]
    fn t5_f32_and_f64_agree_for_t5_sizes() {
        for bidirectional in [true, false] {
            let cfg = T5Buckets {
                bidirectional,
                num_buckets: 32,
                max_distance: 128,
            };
            for rp in -5000..=5000 {
                assert_eq!(
                    t5_bucket_unchecked(rp, &cfg),
                    t5_bucket_f64(rp, &cfg),
                    "rp {rp} {cfg:?}"
                );
            }
        }
    }
}
