//! Fused (flash-attention style) CPU attention with the position signal computed inside the
//! kernel: RoPE rotation, ALiBi from the slopes, a relative (T5) bias gathered from a small
//! table, causal and padding masks, explicit positions. `f32` storage and arithmetic.
//!
//! The semantics are those of the reference [`crate::attention::attention`] (same layouts, same
//! [`Mask`], same scores `scale · <q'_i, k'_j> + b_h(p_j - p_i)`, same handling of masked pairs);
//! only the order of operations and the precision differ. [`materialized_bias_attention`] is the
//! usual framework path (build the `(heads, Lq, Lk)` bias tensor, then plain attention), kept for
//! comparison.
//!
//! ## The algorithm, and why it needs no `L²` memory
//! Work is split into tasks, one per (query head, tile of [`QUERY_TILE`] queries); rayon runs them
//! in parallel. A task keeps, for each of its queries `r`, a running maximum `m_r`, a running sum
//! `l_r` and an unnormalized output `o_r` (`head_dim` values), and walks the keys one tile of
//! [`KEY_TILE`] keys at a time:
//!
//! ```text
//! s_rj  = <scale · q'_r, k'_j> + bias(h, p_r, p_j)        for the keys j of the tile
//! s_rj  = -inf                                             where the mask forbids (r, j)
//! m'_r  = max(m_r, max_j s_rj)
//! p_rj  = exp(s_rj - m'_r)          (exactly 0 where masked: exp(-inf) = 0)
//! l_r   = l_r · exp(m_r - m'_r) + Σ_j p_rj
//! o_r   = o_r · exp(m_r - m'_r) + Σ_j p_rj · v_j
//! ```
//!
//! and ends with `out_r = o_r / l_r`. This is softmax computed online (Milakov & Gimelshein 2018;
//! FlashAttention, Dao et al. 2022): rescaling by `exp(m_r - m'_r)` makes the result the same as a
//! softmax over the whole row, yet only one `KEY_TILE × QUERY_TILE` score tile exists at a time.
//! Memory beyond the inputs and the output is therefore `O(tile²)` scratch per running task
//! (about 70 KiB for `head_dim` = 64), plus, when RoPE is applied here, one cos/sin row per query
//! and per key position (`O(L · rotary_dim)`), and for a relative bias its table
//! (`heads × span` values, `span = Lq + Lk − 1` for contiguous positions). Nothing is
//! `O(heads · Lq · Lk)`.
//!
//! Inside a task the score tile is kept transposed (`s[j][r]`: one row per key, one lane per
//! query), so the softmax bookkeeping runs across queries in SIMD lanes with no horizontal
//! reductions, the key and value rows are read in place from the caller's buffers (no packing),
//! and only the query tile is transposed (once per task).
//!
//! ## Where the position signal enters ([`Rotation`], [`FusedBias`])
//! * RoPE ([`Rotation::Rope`]): `q` and `k` are given raw; each query tile and each key tile is
//!   rotated into task scratch as it is loaded, with cos/sin rows computed once per call by
//!   [`crate::rope::cos_sin_row`] (so the rotated values are bit-identical to the reference's).
//!   For a KV-cache decode step pass keys already rotated (as a cache stores them) with
//!   [`Rotation::None`] and rotate the new query yourself, or use [`fused_attend_positioned`].
//! * ALiBi ([`FusedBias::Alibi`]): `-m_h · (p_i - p_j)` for `p_j <= p_i` and `0` after (causal
//!   form), or `-m_h · |p_i - p_j|` (symmetric), computed per score from the slopes and the exact
//!   integer distance. Not scaled.
//! * Relative / T5 ([`FusedBias::Relative`]): `table[h][clamp(p_j - p_i)]` from a
//!   [`RelativeBias`] table indexed by relative position. Not scaled.
//!
//! ## Masks
//! Causal ([`crate::attention::Causal::ByPosition`] or `ByIndex`), key padding and an arbitrary
//! boolean mask, exactly as [`Mask`] defines them. A masked pair's weight is exactly `0.0`
//! whatever its bias (the score is replaced, not added to), and a query with no allowed key gets
//! an all-zero output, as in the reference. Key tiles that the causal mask hides from a whole
//! query tile are skipped, so causal attention does about half the work.
//!
//! ## Precision
//! Scores, softmax and sums are `f32` (the reference uses `f64`). With values of order 1 the
//! output differs from the reference by a few `1e-6`: each score carries a rounding error of
//! about `head_dim · 6e-8 · |q||k| · scale`, the exponential ([`exp_f32`]) about `2e-7` relative,
//! and the sums over keys `Lk · 6e-8` relative at worst. ALiBi distances are computed exactly in
//! integers (exact in `f32` up to `2^24` = 16.7M positions apart). Because an `f32` score can
//! overflow where an `f64` one does not, inputs whose score bound
//! `scale · max‖q'‖ · max‖k'‖ + max|bias|`, or whose `Lk · max‖v‖`, exceeds [`MAX_SCORE_BOUND`]
//! are rejected (the reference accepts them).
//!
//! ## Tile kernels ([`TileKernel`])
//! The two products of a tile (`S^T = K · Q^T` and `O^T += V^T · P^T`) run either on a SIMD
//! kernel (broadcast-FMA over query lanes, compiled for AVX-512, AVX2+FMA and a generic target
//! and picked at run time by `multiversion`) or on `matrixmultiply::sgemm` per tile.
//! `BENCHMARKS.md` has the measurements; [`TileKernel::Simd`] is the default because it was faster.

use multiversion::multiversion;
use rayon::prelude::*;

use crate::attention::{AttentionOptions, Causal, HeadConfig, Mask, Scheme};
use crate::error::check_cap;
use crate::kernels::gemm::{gemm, MatRef};
use crate::relative::T5Buckets;
use crate::rope::{self, RopeFrequencies, RopeLayout};
use crate::{Error, Result};

/// Queries per task (the lanes of a score tile).
pub const QUERY_TILE: usize = 64;

/// Keys per score tile.
pub const KEY_TILE: usize = 64;

/// Cap on any one of `q`, `k`, `v` (values): 268,435,456 (1 GiB of `f32`).
pub const MAX_BUFFER_ELEMENTS: u64 = 1 << 28;

/// Cap on `n_q_heads · seq_q · seq_k` (query/key pairs, i.e. work) of one fused call:
/// 274,877,906,944 (about `2^38`: 32 heads at `L` = 92,000).
pub const MAX_FUSED_PAIRS: u64 = 1 << 38;

/// Cap on the values of a [`RelativeBias`] table (`heads · len`): 67,108,864.
pub const MAX_RELATIVE_TABLE: u64 = 1 << 26;

/// Cap on each `(heads, Lq, Lk)` tensor of [`materialized_bias_attention`]: 268,435,456 values
/// (1 GiB of `f32`; the path holds two such tensors).
pub const MAX_MATERIALIZED_ELEMENTS: u64 = 1 << 28;

/// Largest score bound (and `Lk · max‖v‖`) the `f32` kernel accepts: `1e30`, far below
/// `f32::MAX` ≈ `3.4e38`, so no intermediate of the kernel can overflow.
pub const MAX_SCORE_BOUND: f64 = 1e30;

/// Below this many multiply-adds (`2 · pairs · head_dim`) a call runs on the calling thread:
/// rayon's hand-off costs more than it saves for a short decode step.
const PARALLEL_MIN_WORK: u64 = 1 << 20;

/// How query and key vectors get their rotary position, if any.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rotation<'a> {
    /// `q` and `k` are used as given: no positional rotation, or one the caller already applied
    /// (keys from a RoPE KV cache, queries rotated by [`crate::rope::apply_rotary_seq`]).
    None,
    /// Rotate `q` at the query positions and `k` at the key positions inside the kernel, as
    /// [`crate::attention::attention`] does with [`Scheme::Rope`].
    Rope {
        /// Inverse frequencies and attention factor; `rotary_dim <= head_dim`.
        freqs: &'a RopeFrequencies,
        /// Pairing of dimensions.
        layout: RopeLayout,
    },
}

/// A bias added to the scores before softmax, computed inside the kernel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FusedBias<'a> {
    /// No bias.
    None,
    /// ALiBi from one slope per query head.
    Alibi {
        /// `n_q_heads` finite slopes.
        slopes: &'a [f64],
        /// `false`: `-m·(p_q - p_k)` for `p_k <= p_q`, `0` after; `true`: `-m·|p_q - p_k|`.
        symmetric: bool,
    },
    /// A per-head bias indexed by the relative position `p_k - p_q` (T5 and the like).
    Relative(&'a RelativeBias),
}

/// A per-head bias table indexed by relative position `p_k - p_q`: value
/// `values[h · len + (clamp(p_k - p_q, min, max) - min)]` with `max = min + len - 1`.
///
/// Relative positions outside `[min, max]` take the edge value. That is exact for T5, whose
/// buckets saturate beyond `max_distance` ([`RelativeBias::t5`]), and for clipped schemes. For
/// queries at `o_q .. o_q + Lq` and keys at `o_k .. o_k + Lk` the relative positions are
/// `o_k - o_q - (Lq - 1) ..= o_k - o_q + Lk - 1`: a `(heads, Lq + Lk − 1)` table covers them all.
#[derive(Debug, Clone, PartialEq)]
pub struct RelativeBias {
    n_heads: usize,
    min_relative: i64,
    len: usize,
    values: Vec<f32>,
    /// Each head's row reversed, so that a kernel walking queries forward reads forward.
    reversed: Vec<f32>,
}

impl RelativeBias {
    /// A table from its values, flat `[n_heads][len]`, entry `t` of a row being relative position
    /// `min_relative + t`.
    ///
    /// Errors: `n_heads = 0`, an empty or ragged table, non-finite values, more than
    /// [`MAX_RELATIVE_TABLE`] values, `min_relative + len - 1` overflowing `i64`.
    pub fn new(n_heads: usize, min_relative: i64, values: Vec<f32>) -> Result<Self> {
        if n_heads == 0 {
            return Err(Error::invalid("n_heads", "at least 1 head"));
        }
        check_cap(
            "relative bias table values",
            values.len() as u64,
            MAX_RELATIVE_TABLE,
        )?;
        if values.is_empty() || !values.len().is_multiple_of(n_heads) {
            return Err(Error::shape(
                "relative bias table [n_heads][len]",
                format!("a positive multiple of n_heads = {n_heads}"),
                values.len(),
            ));
        }
        if let Some(i) = values.iter().position(|x| !x.is_finite()) {
            return Err(Error::invalid(
                "relative bias table",
                format!("finite values, got {} at index {i}", values[i]),
            ));
        }
        let len = values.len() / n_heads;
        min_relative
            .checked_add(len as i64 - 1)
            .ok_or_else(|| Error::invalid("min_relative", "a range that fits in i64"))?;
        let reversed = values
            .chunks_exact(len)
            .flat_map(|row| row.iter().rev().copied())
            .collect();
        Ok(RelativeBias {
            n_heads,
            min_relative,
            len,
            values,
            reversed,
        })
    }

    /// The T5 bias for relative positions `min_relative ..= max_relative`: entry `rp` of head `h`
    /// is `bias_table[bucket(rp)][h]` with [`crate::relative::t5_bucket`], the value the
    /// reference adds. `bias_table` is `relative_attention_bias.weight`, `[num_buckets][n_heads]`.
    ///
    /// Errors: bad buckets, `bias_table` not `[num_buckets][n_heads]` or not finite,
    /// `min_relative > max_relative`, a table above [`MAX_RELATIVE_TABLE`].
    pub fn t5(
        bias_table: &[f32],
        buckets: &T5Buckets,
        n_heads: usize,
        min_relative: i64,
        max_relative: i64,
    ) -> Result<Self> {
        buckets.validate()?;
        if n_heads == 0 {
            return Err(Error::invalid("n_heads", "at least 1 head"));
        }
        if bias_table.len() != buckets.num_buckets.saturating_mul(n_heads) {
            return Err(Error::shape(
                "T5 bias table [num_buckets][n_heads]",
                format!("{} × {n_heads}", buckets.num_buckets),
                bias_table.len(),
            ));
        }
        if min_relative > max_relative {
            return Err(Error::invalid(
                "min_relative",
                format!("at most max_relative = {max_relative}, got {min_relative}"),
            ));
        }
        let len = (max_relative as i128 - min_relative as i128 + 1) as u128;
        check_cap(
            "relative bias table values",
            (len.saturating_mul(n_heads as u128)).min(u64::MAX as u128) as u64,
            MAX_RELATIVE_TABLE,
        )?;
        let len = len as usize;
        let bucket_of: Vec<usize> = (0..len)
            .map(|t| {
                crate::relative::t5_bucket(
                    min_relative + t as i64,
                    buckets.bidirectional,
                    buckets.num_buckets,
                    buckets.max_distance,
                )
            })
            .collect::<Result<_>>()?;
        let mut values = Vec::with_capacity(n_heads * len);
        for h in 0..n_heads {
            values.extend(bucket_of.iter().map(|&b| bias_table[b * n_heads + h]));
        }
        Self::new(n_heads, min_relative, values)
    }

    /// The smallest exact T5 table for these positions: relative positions from
    /// `min(keys) - max(queries)` to `max(keys) - min(queries)`, clipped to
    /// `±max_distance` (buckets are constant beyond it, so clamping there is exact).
    ///
    /// Errors: as [`RelativeBias::t5`]; empty position lists give a one-entry table.
    pub fn t5_for_positions(
        bias_table: &[f32],
        buckets: &T5Buckets,
        n_heads: usize,
        query_positions: &[u64],
        key_positions: &[u64],
    ) -> Result<Self> {
        let md = buckets.max_distance.min(i64::MAX as usize) as i128;
        let (lo, hi) = relative_span(query_positions, key_positions);
        let lo = lo.clamp(-md, md) as i64;
        let hi = hi.clamp(-md, md) as i64;
        Self::t5(bias_table, buckets, n_heads, lo, hi)
    }

    /// Number of heads.
    pub fn n_heads(&self) -> usize {
        self.n_heads
    }

    /// The relative position of entry 0 of each row.
    pub fn min_relative(&self) -> i64 {
        self.min_relative
    }

    /// Entries per head.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always `false`: a table has at least one entry per head.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The table, flat `[n_heads][len]`.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// The bias of head `head` (clamped to the last head) at relative position
    /// `key_position - query_position` (clamped to the table).
    pub fn get(&self, head: usize, query_position: u64, key_position: u64) -> f32 {
        let h = head.min(self.n_heads - 1);
        let rel = key_position as i128 - query_position as i128;
        let t = (rel - self.min_relative as i128).clamp(0, self.len as i128 - 1) as usize;
        self.values[h * self.len + t]
    }
}

/// `(min(keys) - max(queries), max(keys) - min(queries))`, `(0, 0)` if either list is empty.
fn relative_span(query_positions: &[u64], key_positions: &[u64]) -> (i128, i128) {
    let (Some(qmin), Some(qmax), Some(kmin), Some(kmax)) = (
        query_positions.iter().min(),
        query_positions.iter().max(),
        key_positions.iter().min(),
        key_positions.iter().max(),
    ) else {
        return (0, 0);
    };
    (*kmin as i128 - *qmax as i128, *kmax as i128 - *qmin as i128)
}

/// Which implementation runs the two products of each tile.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum TileKernel {
    /// Broadcast-FMA loops over query lanes, multiversioned (AVX-512, AVX2+FMA, generic).
    #[default]
    Simd,
    /// `matrixmultiply::sgemm` on each tile (packs both operands on every call).
    Gemm,
}

/// Options of the fused kernel.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct FusedOptions {
    /// Multiplies `<q, k>`; `None` = `1/sqrt(head_dim)`. T5 uses `Some(1.0)`.
    pub scale: Option<f64>,
    /// The tile kernel.
    pub kernel: TileKernel,
}

impl FusedOptions {
    /// Options with this scale and the default kernel.
    pub fn with_scale(scale: Option<f64>) -> Self {
        FusedOptions {
            scale,
            kernel: TileKernel::default(),
        }
    }
}

impl From<&AttentionOptions> for FusedOptions {
    fn from(o: &AttentionOptions) -> Self {
        FusedOptions::with_scale(o.scale)
    }
}

/// Fused attention with the semantics of [`crate::attention::attention`]: `q` and `k` as they
/// come out of the projections, the scheme applied where it enters. Returns the output
/// `[seq_q][n_q_heads][head_dim]` (weights are never formed).
///
/// Schemes: [`Scheme::NoPe`], [`Scheme::Sinusoidal`] (nothing to do here), [`Scheme::Learned`]
/// (positions checked against the table), [`Scheme::Rope`] (rotated in the kernel),
/// [`Scheme::Alibi`] and [`Scheme::T5`] (biases in the kernel; T5 through
/// [`RelativeBias::t5_for_positions`]). [`Scheme::Shaw`] adds vector terms per pair and is not
/// supported here.
///
/// Errors (never panics): as [`fused_attention_with`], plus an invalid scheme and
/// [`Scheme::Shaw`].
#[allow(clippy::too_many_arguments)]
pub fn fused_attention(
    heads: &HeadConfig,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    query_positions: &[u64],
    key_positions: &[u64],
    scheme: &Scheme,
    mask: &Mask,
    options: &FusedOptions,
) -> Result<Vec<f32>> {
    fused_scheme(
        heads,
        q,
        k,
        v,
        query_positions,
        key_positions,
        scheme,
        mask,
        options,
        true,
    )
}

/// Fused attention with the semantics of [`crate::attention::attend_positioned`]: `q` and `k`
/// already carry the query/key part of the scheme (RoPE keys as a KV cache stores them), so only
/// the score bias of `scheme` is applied. The decode step of a cached model is this call with one
/// query.
///
/// Errors: as [`fused_attention`].
#[allow(clippy::too_many_arguments)]
pub fn fused_attend_positioned(
    heads: &HeadConfig,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    query_positions: &[u64],
    key_positions: &[u64],
    scheme: &Scheme,
    mask: &Mask,
    options: &FusedOptions,
) -> Result<Vec<f32>> {
    fused_scheme(
        heads,
        q,
        k,
        v,
        query_positions,
        key_positions,
        scheme,
        mask,
        options,
        false,
    )
}

#[allow(clippy::too_many_arguments)]
fn fused_scheme(
    heads: &HeadConfig,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    query_positions: &[u64],
    key_positions: &[u64],
    scheme: &Scheme,
    mask: &Mask,
    options: &FusedOptions,
    rotate: bool,
) -> Result<Vec<f32>> {
    scheme.validate(heads)?;
    scheme.check_positions(query_positions)?;
    scheme.check_positions(key_positions)?;
    let table;
    let (rotation, bias) = match scheme {
        Scheme::NoPe | Scheme::Sinusoidal { .. } | Scheme::Learned(_) => {
            (Rotation::None, FusedBias::None)
        }
        Scheme::Rope { freqs, layout } if rotate => (
            Rotation::Rope {
                freqs,
                layout: *layout,
            },
            FusedBias::None,
        ),
        Scheme::Rope { .. } => (Rotation::None, FusedBias::None),
        Scheme::Alibi { slopes, symmetric } => (
            Rotation::None,
            FusedBias::Alibi {
                slopes,
                symmetric: *symmetric,
            },
        ),
        Scheme::T5 {
            bias_table,
            buckets,
        } => {
            table = RelativeBias::t5_for_positions(
                bias_table,
                buckets,
                heads.n_q_heads,
                query_positions,
                key_positions,
            )?;
            (Rotation::None, FusedBias::Relative(&table))
        }
        Scheme::Shaw { .. } => {
            return Err(Error::invalid(
                "scheme",
                "nope, sinusoidal, learned, rope, alibi or t5 for fused attention \
                 (shaw adds per-pair vectors; use posenc::attention::attention)",
            ))
        }
    };
    fused_attention_with(
        heads,
        q,
        k,
        v,
        query_positions,
        key_positions,
        rotation,
        bias,
        mask,
        options,
    )
}

/// The fused kernel itself: output `[seq_q][n_q_heads][head_dim]` of attention over `q`
/// (`[seq_q][n_q_heads][head_dim]`), `k` and `v` (`[seq_k][n_kv_heads][head_dim]`), queries at
/// `query_positions`, keys at `key_positions`, with `rotation`, `bias` and `mask` applied in the
/// kernel (see the module docs for the algorithm and its memory).
///
/// Errors (never panics): invalid heads; buffers not matching the positions and heads, or
/// non-finite; masks of the wrong size; ALiBi slopes not one finite value per query head; a
/// relative table with a head count other than `n_q_heads`; `rotary_dim > head_dim` or
/// non-finite frequencies; a non-finite scale; sizes above [`MAX_BUFFER_ELEMENTS`] or
/// [`MAX_FUSED_PAIRS`]; inputs whose scores could overflow `f32` ([`MAX_SCORE_BOUND`]).
#[allow(clippy::too_many_arguments)]
pub fn fused_attention_with(
    heads: &HeadConfig,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    query_positions: &[u64],
    key_positions: &[u64],
    rotation: Rotation<'_>,
    bias: FusedBias<'_>,
    mask: &Mask,
    options: &FusedOptions,
) -> Result<Vec<f32>> {
    let plan = Plan::new(
        heads,
        q,
        k,
        v,
        query_positions,
        key_positions,
        rotation,
        bias,
        mask,
        options,
    )?;
    Ok(plan.run())
}

/// Result of [`materialized_bias_attention`].
#[derive(Debug, Clone, PartialEq)]
pub struct MaterializedAttention {
    /// `[seq_q][n_q_heads][head_dim]`.
    pub output: Vec<f32>,
    /// Bytes of the `(heads, Lq, Lk)` bias tensor (bias and mask combined, `-inf` where masked).
    pub bias_bytes: usize,
    /// Bytes of the `(heads, Lq, Lk)` score/weight tensor.
    pub scores_bytes: usize,
}

/// Attention the way most frameworks add a position bias, for comparison with the fused kernel:
/// build the additive `(heads, Lq, Lk)` tensor (the bias, `-inf` where the mask forbids),
/// compute all scores `scale · Q Kᵀ` into a second `(heads, Lq, Lk)` tensor with one GEMM per head
/// (`matrixmultiply`), add the bias, softmax each row in place, multiply by `V`. Heads run in
/// parallel; RoPE rotates copies of `q` and `k` first. Same results as the fused kernel (a row
/// with no allowed key gets a zero output) but `2 · heads · Lq · Lk · 4` bytes of tensors.
///
/// Errors: as [`fused_attention_with`], and either tensor above [`MAX_MATERIALIZED_ELEMENTS`].
#[allow(clippy::too_many_arguments)]
pub fn materialized_bias_attention(
    heads: &HeadConfig,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    query_positions: &[u64],
    key_positions: &[u64],
    rotation: Rotation<'_>,
    bias: FusedBias<'_>,
    mask: &Mask,
    options: &FusedOptions,
) -> Result<MaterializedAttention> {
    let plan = Plan::new(
        heads,
        q,
        k,
        v,
        query_positions,
        key_positions,
        rotation,
        bias,
        mask,
        options,
    )?;
    let elements = (heads.n_q_heads as u64)
        .saturating_mul(plan.seq_q as u64)
        .saturating_mul(plan.seq_k as u64);
    check_cap(
        "n_q_heads × seq_q × seq_k (materialized)",
        elements,
        MAX_MATERIALIZED_ELEMENTS,
    )?;
    Ok(plan.run_materialized())
}

// ---------------------------------------------------------------------------------------------
// Checked inputs

/// cos/sin rows per query and per key position (`[len][pairs]`, attention factor applied).
struct RopeRows {
    pairs: usize,
    layout: RopeLayout,
    q_cos: Vec<f32>,
    q_sin: Vec<f32>,
    /// `None` when the key positions are the query positions (self-attention): reuse the q rows.
    k_rows: Option<(Vec<f32>, Vec<f32>)>,
}

impl RopeRows {
    fn build(
        freqs: &RopeFrequencies,
        layout: RopeLayout,
        query_positions: &[u64],
        key_positions: &[u64],
    ) -> Result<Self> {
        let pairs = freqs.pairs();
        let rows = |positions: &[u64]| -> Result<(Vec<f32>, Vec<f32>)> {
            let mut cos = vec![0.0f32; positions.len() * pairs];
            let mut sin = vec![0.0f32; positions.len() * pairs];
            if pairs > 0 {
                cos.par_chunks_mut(pairs)
                    .zip(sin.par_chunks_mut(pairs))
                    .zip(positions.par_iter())
                    .with_min_len(256)
                    .try_for_each(|((c, s), &p)| rope::cos_sin_row(freqs, p, c, s))?;
            }
            Ok((cos, sin))
        };
        let (q_cos, q_sin) = rows(query_positions)?;
        let k_rows = if key_positions == query_positions {
            None
        } else {
            Some(rows(key_positions)?)
        };
        Ok(RopeRows {
            pairs,
            layout,
            q_cos,
            q_sin,
            k_rows,
        })
    }

    fn query_row(&self, i: usize) -> (&[f32], &[f32]) {
        let o = i * self.pairs;
        (
            &self.q_cos[o..o + self.pairs],
            &self.q_sin[o..o + self.pairs],
        )
    }

    fn key_row(&self, j: usize) -> (&[f32], &[f32]) {
        let o = j * self.pairs;
        match &self.k_rows {
            None => (
                &self.q_cos[o..o + self.pairs],
                &self.q_sin[o..o + self.pairs],
            ),
            Some((c, s)) => (&c[o..o + self.pairs], &s[o..o + self.pairs]),
        }
    }

    /// Rotates `x` in place (same arithmetic as [`crate::rope::apply_rotary`]).
    #[inline(always)]
    fn rotate(&self, x: &mut [f32], cos: &[f32], sin: &[f32]) {
        let pairs = self.pairs;
        match self.layout {
            RopeLayout::HalfSplit => {
                let (lo, hi) = x.split_at_mut(pairs);
                for (((a, b), &c), &s) in lo.iter_mut().zip(hi.iter_mut()).zip(cos).zip(sin) {
                    let (x0, x1) = (*a, *b);
                    *a = x0 * c - x1 * s;
                    *b = x0 * s + x1 * c;
                }
            }
            RopeLayout::Interleaved => {
                for ((ab, &c), &s) in x.chunks_exact_mut(2).zip(cos).zip(sin) {
                    let (x0, x1) = (ab[0], ab[1]);
                    ab[0] = x0 * c - x1 * s;
                    ab[1] = x0 * s + x1 * c;
                }
            }
        }
    }
}

enum BiasPlan<'a> {
    None,
    Alibi { slopes: &'a [f64], symmetric: bool },
    Relative(&'a RelativeBias),
}

struct Plan<'a> {
    heads: HeadConfig,
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    qpos: &'a [u64],
    kpos: &'a [u64],
    seq_q: usize,
    seq_k: usize,
    scale: f32,
    bias: BiasPlan<'a>,
    rope: Option<RopeRows>,
    mask: &'a Mask,
    kernel: TileKernel,
    key_tiles: Vec<KeyTile>,
}

/// What is known about one tile of keys, once per call.
#[derive(Debug, Clone, Copy)]
struct KeyTile {
    start: usize,
    len: usize,
    pos_min: u64,
    pos_max: u64,
    /// Every key of the tile is padding.
    all_padding: bool,
}

/// Checks the size and finiteness of a `[rows][width]` buffer and returns the largest Euclidean
/// norm of its `head_dim`-value vectors, in one parallel pass (it is also the overflow bound).
fn check_buffer(
    what: &str,
    buf: &[f32],
    rows: usize,
    width: usize,
    head_dim: usize,
) -> Result<f64> {
    let expected = rows
        .checked_mul(width)
        .ok_or_else(|| Error::invalid(what, "a size that fits in memory"))?;
    check_cap(what, expected as u64, MAX_BUFFER_ELEMENTS)?;
    if buf.len() != expected {
        return Err(Error::shape(
            what,
            format!("{rows} × {width} = {expected}"),
            buf.len(),
        ));
    }
    let norm = max_norm(buf, head_dim);
    if !norm.is_finite() {
        if let Some(i) = buf.iter().position(|x| !x.is_finite()) {
            return Err(Error::invalid(
                what,
                format!("finite values, got {} at index {i}", buf[i]),
            ));
        }
    }
    Ok(norm)
}

/// Largest Euclidean norm of the `width`-value vectors of `buf`, in f64 (finite f32 squares
/// cannot overflow f64), `+inf` if any value is not finite.
fn max_norm(buf: &[f32], width: usize) -> f64 {
    let width = width.max(1);
    buf.par_chunks(width * 4096)
        .map(|rows| max_norm_rows(rows, width))
        .reduce(|| 0.0, f64::max)
}

#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
fn max_norm_rows(rows: &[f32], width: usize) -> f64 {
    let mut max = 0.0f64;
    for row in rows.chunks(width) {
        // Eight independent sums, so the adds do not wait on each other.
        let mut acc = [0.0f64; 8];
        let mut chunks = row.chunks_exact(8);
        for c in &mut chunks {
            for (a, &x) in acc.iter_mut().zip(c) {
                *a += f64::from(x) * f64::from(x);
            }
        }
        let tail: f64 = chunks
            .remainder()
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum();
        let n = (acc.iter().sum::<f64>() + tail).sqrt();
        max = if n.is_finite() {
            if n > max {
                n
            } else {
                max
            }
        } else {
            f64::INFINITY
        };
    }
    max
}

impl<'a> Plan<'a> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        heads: &HeadConfig,
        q: &'a [f32],
        k: &'a [f32],
        v: &'a [f32],
        query_positions: &'a [u64],
        key_positions: &'a [u64],
        rotation: Rotation<'_>,
        bias: FusedBias<'a>,
        mask: &'a Mask,
        options: &FusedOptions,
    ) -> Result<Self> {
        heads.validate()?;
        let seq_q = query_positions.len();
        let seq_k = key_positions.len();
        let d = heads.head_dim;
        let q_norm = check_buffer(
            "q [seq_q][n_q_heads][head_dim]",
            q,
            seq_q,
            heads.q_width(),
            d,
        )?;
        let k_norm = check_buffer(
            "k [seq_k][n_kv_heads][head_dim]",
            k,
            seq_k,
            heads.kv_width(),
            d,
        )?;
        // ‖v_j‖ >= max|v_j|: a bound for the overflow check below.
        let v_max = check_buffer(
            "v [seq_k][n_kv_heads][head_dim]",
            v,
            seq_k,
            heads.kv_width(),
            d,
        )?;
        let pairs = (heads.n_q_heads as u64)
            .saturating_mul(seq_q as u64)
            .saturating_mul(seq_k as u64);
        check_cap("n_q_heads × seq_q × seq_k", pairs, MAX_FUSED_PAIRS)?;
        mask.validate(seq_q, seq_k)?;
        let scale = options
            .scale
            .unwrap_or_else(|| 1.0 / (heads.head_dim as f64).sqrt());
        if !scale.is_finite() {
            return Err(Error::invalid(
                "scale",
                format!("a finite number, got {scale}"),
            ));
        }

        let mut rope_factor = 1.0f64;
        let rope = match rotation {
            Rotation::None => None,
            Rotation::Rope { freqs, layout } => {
                if freqs.rotary_dim() > heads.head_dim {
                    return Err(Error::invalid(
                        "rotary_dim",
                        format!(
                            "at most head_dim = {}, got {}",
                            heads.head_dim,
                            freqs.rotary_dim()
                        ),
                    ));
                }
                if let Some(f) = freqs.inv_freq.iter().find(|f| !f.is_finite()) {
                    return Err(Error::invalid(
                        "inv_freq",
                        format!("finite values, got {f}"),
                    ));
                }
                if !freqs.attention_factor.is_finite() {
                    return Err(Error::invalid(
                        "attention_factor",
                        format!("a finite number, got {}", freqs.attention_factor),
                    ));
                }
                // cos/sin rows carry the factor, rounded to f32: allow a hair above it.
                rope_factor = freqs.attention_factor.abs().max(1.0) * (1.0 + 1e-6);
                Some(RopeRows::build(
                    freqs,
                    layout,
                    query_positions,
                    key_positions,
                )?)
            }
        };

        let (lo, hi) = relative_span(query_positions, key_positions);
        let (bias, max_abs_bias) = match bias {
            FusedBias::None => (BiasPlan::None, 0.0),
            FusedBias::Alibi { slopes, symmetric } => {
                if slopes.len() != heads.n_q_heads {
                    return Err(Error::shape(
                        "ALiBi slopes (one per query head)",
                        heads.n_q_heads,
                        slopes.len(),
                    ));
                }
                if let Some(m) = slopes.iter().find(|m| !m.is_finite()) {
                    return Err(Error::invalid("slopes", format!("finite values, got {m}")));
                }
                let m_max = slopes.iter().fold(0.0f64, |a, m| a.max(m.abs()));
                // Largest |p_q - p_k| that gets a non-zero bias.
                let dist = if symmetric { (-lo).max(hi) } else { -lo }.max(0) as f64;
                (BiasPlan::Alibi { slopes, symmetric }, m_max * dist)
            }
            FusedBias::Relative(table) => {
                if table.n_heads != heads.n_q_heads {
                    return Err(Error::shape(
                        "relative bias table heads (= n_q_heads)",
                        heads.n_q_heads,
                        table.n_heads,
                    ));
                }
                let m = table
                    .values
                    .iter()
                    .fold(0.0f64, |a, &b| a.max(f64::from(b).abs()));
                (BiasPlan::Relative(table), m)
            }
        };

        // Overflow guard: |score| <= scale·‖q'‖·‖k'‖ + |bias| (Cauchy–Schwarz, also for every
        // partial sum of the dot product); the unnormalized output is at most Lk·max|v|.
        let bound = scale.abs() * q_norm * k_norm * rope_factor * rope_factor + max_abs_bias;
        let fits = bound <= MAX_SCORE_BOUND && v_max * seq_k as f64 <= MAX_SCORE_BOUND;
        if !fits {
            return Err(Error::invalid(
                "q, k, v",
                format!(
                    "magnitudes whose f32 scores stay below {MAX_SCORE_BOUND:e} (score bound \
                     {bound:e}, seq_k × max|v| = {:e}); use posenc::attention::attention (f64)",
                    v_max * seq_k as f64
                ),
            ));
        }

        let key_tiles = (0..seq_k.div_ceil(KEY_TILE))
            .map(|t| {
                let start = t * KEY_TILE;
                let len = KEY_TILE.min(seq_k - start);
                let pos = &key_positions[start..start + len];
                KeyTile {
                    start,
                    len,
                    pos_min: pos.iter().copied().min().unwrap_or(0),
                    pos_max: pos.iter().copied().max().unwrap_or(0),
                    all_padding: mask
                        .key_padding
                        .as_ref()
                        .is_some_and(|kp| kp[start..start + len].iter().all(|&real| !real)),
                }
            })
            .collect();

        Ok(Plan {
            heads: *heads,
            q,
            k,
            v,
            qpos: query_positions,
            kpos: key_positions,
            seq_q,
            seq_k,
            scale: scale as f32,
            bias,
            rope,
            mask,
            kernel: options.kernel,
            key_tiles,
        })
    }

    fn run(&self) -> Vec<f32> {
        let nq = self.heads.n_q_heads;
        let d = self.heads.head_dim;
        let qw = self.heads.q_width();
        let mut out = vec![0.0f32; self.seq_q * qw];
        if self.seq_q == 0 || self.seq_k == 0 {
            return out;
        }
        let work = 2 * (nq as u64) * (self.seq_q as u64) * (self.seq_k as u64) * (d as u64);
        let chunk_len = QUERY_TILE * qw;
        let query_tile = |qt: usize, chunk: &mut [f32], ws: &mut Workspace, tile: &mut [f32]| {
            let i0 = qt * QUERY_TILE;
            let rows = chunk.len() / qw;
            for h in 0..nq {
                self.task(h, i0, rows, ws, tile);
                scatter(chunk, tile, rows, nq, h, d);
            }
        };
        if work < PARALLEL_MIN_WORK {
            let mut ws = Workspace::new(d);
            let mut tile = vec![0.0f32; QUERY_TILE * d];
            for (qt, chunk) in out.chunks_mut(chunk_len).enumerate() {
                query_tile(qt, chunk, &mut ws, &mut tile);
            }
        } else if self.seq_q > QUERY_TILE * 4 {
            // Enough query tiles to keep every thread busy: one task per query tile, all heads.
            out.par_chunks_mut(chunk_len).enumerate().for_each_init(
                || (Workspace::new(d), vec![0.0f32; QUERY_TILE * d]),
                |(ws, tile), (qt, chunk)| query_tile(qt, chunk, ws, tile),
            );
        } else {
            // Few query tiles (short prompts, decode steps): one task per (head, query tile).
            out.par_chunks_mut(chunk_len)
                .enumerate()
                .for_each(|(qt, chunk)| {
                    let i0 = qt * QUERY_TILE;
                    let rows = chunk.len() / qw;
                    let tiles: Vec<Vec<f32>> = (0..nq)
                        .into_par_iter()
                        .map_init(
                            || Workspace::new(d),
                            |ws, h| {
                                let mut tile = vec![0.0f32; rows * d];
                                self.task(h, i0, rows, ws, &mut tile);
                                tile
                            },
                        )
                        .collect();
                    for (h, tile) in tiles.iter().enumerate() {
                        scatter(chunk, tile, rows, nq, h, d);
                    }
                });
        }
        out
    }

    /// One task: query head `h`, queries `i0 .. i0 + rows`; writes `rows × head_dim` values.
    fn task(&self, h: usize, i0: usize, rows: usize, ws: &mut Workspace, out: &mut [f32]) {
        run_task(self, h, i0, rows, ws, out);
    }
}

/// Copies a `[rows][head_dim]` tile of head `h` into `[rows][n_q_heads][head_dim]`.
fn scatter(chunk: &mut [f32], tile: &[f32], rows: usize, nq: usize, h: usize, d: usize) {
    for r in 0..rows {
        let o = (r * nq + h) * d;
        chunk[o..o + d].copy_from_slice(&tile[r * d..r * d + d]);
    }
}

/// Per-task scratch: `O(QUERY_TILE · KEY_TILE + QUERY_TILE · head_dim)` values.
struct Workspace {
    /// Scaled, rotated queries, transposed: `[head_dim][QUERY_TILE]`.
    qt: Vec<f32>,
    /// Scores, then weights, transposed: `[KEY_TILE][QUERY_TILE]`.
    s: Vec<f32>,
    /// Unnormalized output, transposed: `[head_dim][QUERY_TILE]`.
    ot: Vec<f32>,
    /// Rotated key rows of the current tile, `[KEY_TILE][head_dim]` (RoPE only).
    k_rot: Vec<f32>,
    /// One query vector being rotated.
    q_row: Vec<f32>,
}

impl Workspace {
    fn new(d: usize) -> Self {
        Workspace {
            qt: vec![0.0; d * QUERY_TILE],
            s: vec![0.0; KEY_TILE * QUERY_TILE],
            ot: vec![0.0; d * QUERY_TILE],
            k_rot: vec![0.0; KEY_TILE * d],
            q_row: vec![0.0; d],
        }
    }
}

/// How a (query tile, key tile) pair is masked, before key padding (handled per key row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TileMask {
    /// No pair is allowed: skip the tile.
    Empty,
    /// Every pair passes the causal and arbitrary masks.
    Full,
    /// Decide pair by pair.
    Partial,
}

fn classify(plan: &Plan, i0: usize, rows: usize, qmin: u64, qmax: u64, kt: &KeyTile) -> TileMask {
    if kt.all_padding {
        return TileMask::Empty;
    }
    let causal = match plan.mask.causal {
        Causal::None => TileMask::Full,
        Causal::ByPosition => {
            if kt.pos_min > qmax {
                TileMask::Empty
            } else if kt.pos_max <= qmin {
                TileMask::Full
            } else {
                TileMask::Partial
            }
        }
        Causal::ByIndex => {
            // Allowed iff j + seq_q <= i + seq_k.
            let (sq, sk) = (plan.seq_q as u128, plan.seq_k as u128);
            let (j0, j1) = (kt.start as u128, (kt.start + kt.len - 1) as u128);
            let (ia, ib) = (i0 as u128, (i0 + rows - 1) as u128);
            if j0 + sq > ib + sk {
                TileMask::Empty
            } else if j1 + sq <= ia + sk {
                TileMask::Full
            } else {
                TileMask::Partial
            }
        }
    };
    if causal == TileMask::Full && plan.mask.allowed.is_some() {
        TileMask::Partial
    } else {
        causal
    }
}

// ---------------------------------------------------------------------------------------------
// The task kernel

/// `e^x` for `x <= 0` in `f32`, to about 2 ulp; exactly `0.0` below -87 (including `-inf`, the
/// masked score). Cody–Waite reduction `x = n·ln 2 + r`, a degree-6 polynomial for `e^r`
/// (Cephes `expf` coefficients) and `2^n` built from the exponent bits; branch-free, so loops
/// over it vectorize.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    exp_f32_impl::<false>(x)
}

#[inline(always)]
fn fmadd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

#[inline(always)]
fn exp_f32_impl<const FMA: bool>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that n · LN2_HI is exact for |n| < 2^9.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 · 2^23: adding and subtracting it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    // Comparisons rather than `max`/`clamp`: no NaN can reach here, and a plain select is
    // cheaper than NaN-aware min/max. Callers pass x <= 0.
    let xc = if x > -87.0 { x } else { -87.0 };
    let t = fmadd::<FMA>(xc, LOG2E, ROUND);
    let n = t - ROUND;
    let r = fmadd::<FMA>(n, -LN2_LO, fmadd::<FMA>(n, -LN2_HI, xc));
    let mut p = 1.987_569_1e-4f32;
    p = fmadd::<FMA>(p, r, 1.398_2e-3);
    p = fmadd::<FMA>(p, r, 8.333_452e-3);
    p = fmadd::<FMA>(p, r, 4.166_579_6e-2);
    p = fmadd::<FMA>(p, r, 1.666_666_5e-1);
    p = fmadd::<FMA>(p, r, 0.5);
    let y = fmadd::<FMA>(p, r * r, r) + 1.0;
    // `t`'s low mantissa bits hold n (t = 1.5·2^23 + n): 2^n's bits are (n + 127) << 23, built
    // with integer ops only (a float-to-int `as` would add saturation code to every lane).
    // n in [-126, 0]: 2^n is a normal float.
    let two_n = f32::from_bits(t.to_bits().wrapping_sub(0x4B40_0000 - 127) << 23);
    if x < -87.0 {
        0.0
    } else {
        y * two_n
    }
}

#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
fn run_task(plan: &Plan, h: usize, i0: usize, rows: usize, ws: &mut Workspace, out: &mut [f32]) {
    multiversion::target::match_target! {
        // Few queries (decode steps): narrow lane blocks, so no work on empty lanes.
        "x86_64+avx512f" => if rows <= 16 {
            task_body::<true, 8, 16>(plan, h, i0, rows, ws, out)
        } else {
            task_body::<true, 4, 64>(plan, h, i0, rows, ws, out)
        },
        "x86_64+fma" => if rows <= 8 {
            task_body::<true, 4, 8>(plan, h, i0, rows, ws, out)
        } else {
            task_body::<true, 2, 32>(plan, h, i0, rows, ws, out)
        },
        _ => task_body::<false, 2, 32>(plan, h, i0, rows, ws, out),
    }
}

/// The body of a task. `FMA`: fused multiply-add available; `KR` key rows (and output rows) per
/// register block; `CW` query lanes per register block (a divisor of [`QUERY_TILE`]).
#[inline(always)]
fn task_body<const FMA: bool, const KR: usize, const CW: usize>(
    plan: &Plan,
    h: usize,
    i0: usize,
    rows: usize,
    ws: &mut Workspace,
    out: &mut [f32],
) {
    let d = plan.heads.head_dim;
    let nq = plan.heads.n_q_heads;
    let g = plan.heads.kv_head(h);
    let kv_w = plan.heads.kv_width();
    let qpos = &plan.qpos[i0..i0 + rows];
    let qmin = qpos.iter().copied().min().unwrap_or(0);
    let qmax = qpos.iter().copied().max().unwrap_or(0);
    let q_contiguous = qpos.windows(2).all(|w| w[1] == w[0].wrapping_add(1));
    // Lanes the SIMD products compute: the real queries rounded up to a register block.
    let lanes = match plan.kernel {
        TileKernel::Simd => rows.div_ceil(CW) * CW,
        TileKernel::Gemm => QUERY_TILE,
    };

    // Load the query tile: rotate, scale, transpose to [d][QUERY_TILE]; padding lanes are 0.
    ws.qt.fill(0.0);
    for r in 0..rows {
        let i = i0 + r;
        let src = &plan.q[(i * nq + h) * d..(i * nq + h) * d + d];
        ws.q_row.copy_from_slice(src);
        if let Some(rope) = &plan.rope {
            let (c, s) = rope.query_row(i);
            rope.rotate(&mut ws.q_row, c, s);
        }
        for (p, &x) in ws.q_row.iter().enumerate() {
            ws.qt[p * QUERY_TILE + r] = x * plan.scale;
        }
    }

    let mut m = [f32::NEG_INFINITY; QUERY_TILE];
    let mut l = [0.0f32; QUERY_TILE];
    ws.ot.fill(0.0);

    for kt in &plan.key_tiles {
        let state = classify(plan, i0, rows, qmin, qmax, kt);
        if state == TileMask::Empty {
            continue;
        }
        let (j0, len) = (kt.start, kt.len);
        // Key rows of the tile: in place, or rotated into scratch.
        let (k_base, k_stride): (&[f32], usize) = match &plan.rope {
            None => (&plan.k[j0 * kv_w + g * d..], kv_w),
            Some(rope) => {
                for jj in 0..len {
                    let j = j0 + jj;
                    let row = &mut ws.k_rot[jj * d..jj * d + d];
                    row.copy_from_slice(&plan.k[j * kv_w + g * d..j * kv_w + g * d + d]);
                    let (c, s) = rope.key_row(j);
                    rope.rotate(row, c, s);
                }
                (&ws.k_rot[..], d)
            }
        };
        let v_base = &plan.v[j0 * kv_w + g * d..];

        // S^T = K · Q^T: [len][QUERY_TILE].
        match plan.kernel {
            TileKernel::Simd => {
                scores_t::<FMA, KR, CW>(k_base, k_stride, len, d, lanes, &ws.qt, &mut ws.s)
            }
            TileKernel::Gemm => gemm_scores_t(k_base, k_stride, len, d, &ws.qt, &mut ws.s),
        }

        // Bias and mask, one key row at a time (lanes = queries).
        for jj in 0..len {
            let j = j0 + jj;
            let pk = plan.kpos[j];
            let row = &mut ws.s[jj * QUERY_TILE..(jj + 1) * QUERY_TILE];
            if plan.mask.key_padding.as_ref().is_some_and(|kp| !kp[j]) {
                row.fill(f32::NEG_INFINITY);
                continue;
            }
            add_bias_row(plan, h, qpos, q_contiguous, pk, row);
            if state == TileMask::Partial {
                for (r, s) in row[..rows].iter_mut().enumerate() {
                    let i = i0 + r;
                    if !plan
                        .mask
                        .allows(i, j, plan.seq_q, plan.seq_k, plan.qpos[i], pk)
                    {
                        *s = f32::NEG_INFINITY;
                    }
                }
            }
            row[rows..lanes].fill(f32::NEG_INFINITY);
        }

        // Lanes past `lanes` are never read: the products and the output skip them.
        match lanes {
            8 => online_softmax_tile::<FMA, 8>(&mut ws.s, len, &mut m, &mut l, &mut ws.ot, d),
            16 => online_softmax_tile::<FMA, 16>(&mut ws.s, len, &mut m, &mut l, &mut ws.ot, d),
            32 => online_softmax_tile::<FMA, 32>(&mut ws.s, len, &mut m, &mut l, &mut ws.ot, d),
            _ => online_softmax_tile::<FMA, QUERY_TILE>(
                &mut ws.s, len, &mut m, &mut l, &mut ws.ot, d,
            ),
        }

        // O^T += V^T · P^T.
        match plan.kernel {
            TileKernel::Simd => pv_t::<FMA, KR, CW>(v_base, kv_w, len, d, lanes, &ws.s, &mut ws.ot),
            TileKernel::Gemm => gemm_pv_t(v_base, kv_w, len, d, &ws.s, &mut ws.ot),
        }
    }

    // Normalize and transpose back; a query with no allowed key gets zeros, as the reference.
    for r in 0..rows {
        let inv = if l[r] > 0.0 { 1.0 / l[r] } else { 0.0 };
        for p in 0..d {
            out[r * d + p] = ws.ot[p * QUERY_TILE + r] * inv;
        }
    }
}

/// `[0.0, 1.0, .., QUERY_TILE - 1]`: lane offsets as floats (no int-to-float conversion per lane).
const LANE_INDEX: [f32; QUERY_TILE] = {
    let mut a = [0.0f32; QUERY_TILE];
    let mut i = 0;
    while i < QUERY_TILE {
        a[i] = i as f32;
        i += 1;
    }
    a
};

/// Adds the bias of key position `pk` for every query lane of `row` (`rows` real lanes).
#[inline(always)]
fn add_bias_row(plan: &Plan, h: usize, qpos: &[u64], q_contiguous: bool, pk: u64, row: &mut [f32]) {
    let rows = qpos.len();
    match plan.bias {
        BiasPlan::None => {}
        BiasPlan::Alibi { slopes, symmetric } => {
            let m64 = slopes[h];
            // Distance p_q - p_k of lane 0; lane r adds r when the queries are contiguous.
            let t0 = qpos[0] as i128 - pk as i128;
            if q_contiguous && t0.abs() + (QUERY_TILE as i128) < (1 << 24) {
                let neg_m = -(m64 as f32);
                let t0 = t0 as f32;
                if symmetric {
                    for (s, &r) in row[..rows].iter_mut().zip(&LANE_INDEX) {
                        // Exact: integers below 2^24.
                        *s += neg_m * (t0 + r).abs();
                    }
                } else {
                    for (s, &r) in row[..rows].iter_mut().zip(&LANE_INDEX) {
                        let dist = t0 + r;
                        *s += neg_m * if dist > 0.0 { dist } else { 0.0 };
                    }
                }
            } else {
                for (s, &pq) in row[..rows].iter_mut().zip(qpos) {
                    let dist = pq as i128 - pk as i128;
                    let b = if symmetric {
                        -m64 * dist.unsigned_abs() as f64
                    } else if dist >= 0 {
                        -m64 * dist as f64
                    } else {
                        0.0
                    };
                    *s += b as f32;
                }
            }
        }
        BiasPlan::Relative(table) => {
            let len = table.len as i128;
            let min = table.min_relative as i128;
            // Relative position p_k - p_q of lane 0; lane r has it minus r when contiguous.
            let rel0 = pk as i128 - qpos[0] as i128;
            let t0 = rel0 - min;
            if q_contiguous && t0 < len && t0 - (rows as i128 - 1) >= 0 {
                // Entries t0, t0-1, ..: forward in the reversed row, from len-1-t0.
                let start = h * table.len + (len - 1 - t0) as usize;
                for (s, &b) in row[..rows]
                    .iter_mut()
                    .zip(&table.reversed[start..start + rows])
                {
                    *s += b;
                }
            } else {
                let vals = &table.values[h * table.len..(h + 1) * table.len];
                for (s, &pq) in row[..rows].iter_mut().zip(qpos) {
                    let t = (pk as i128 - pq as i128 - min).clamp(0, len - 1) as usize;
                    *s += vals[t];
                }
            }
        }
    }
}

/// One online-softmax step over a transposed score tile `s` (`len` key rows of
/// [`QUERY_TILE`] lanes; masked entries `-inf`). Turns `s` into weights, updates the running
/// maxima `m` and sums `l`, and rescales the output accumulator `ot`.
#[inline(always)]
fn online_softmax_tile<const FMA: bool, const LANES: usize>(
    s: &mut [f32],
    len: usize,
    m: &mut [f32; QUERY_TILE],
    l: &mut [f32; QUERY_TILE],
    ot: &mut [f32],
    d: usize,
) {
    let mut tile_max = [f32::NEG_INFINITY; LANES];
    for row in s[..len * QUERY_TILE].chunks_exact(QUERY_TILE) {
        for (t, &x) in tile_max.iter_mut().zip(&row[..LANES]) {
            *t = if x > *t { x } else { *t };
        }
    }
    let mut new_max = [0.0f32; LANES];
    let mut alpha = [0.0f32; LANES];
    for r in 0..LANES {
        let nm = if tile_max[r] > m[r] {
            tile_max[r]
        } else {
            m[r]
        };
        // Nothing allowed yet for this query: any finite reference keeps every weight 0.
        let nm_safe = if nm == f32::NEG_INFINITY { 0.0 } else { nm };
        alpha[r] = exp_f32_impl::<FMA>(m[r] - nm_safe);
        new_max[r] = nm_safe;
        m[r] = nm;
    }
    let mut sum = [0.0f32; LANES];
    for row in s[..len * QUERY_TILE].chunks_exact_mut(QUERY_TILE) {
        for ((x, &nm), acc) in row[..LANES].iter_mut().zip(&new_max).zip(sum.iter_mut()) {
            *x = exp_f32_impl::<FMA>(*x - nm);
            *acc += *x;
        }
    }
    for r in 0..LANES {
        l[r] = l[r] * alpha[r] + sum[r];
    }
    if alpha.iter().any(|&a| a != 1.0) {
        for orow in ot[..d * QUERY_TILE].chunks_exact_mut(QUERY_TILE) {
            for (o, &a) in orow[..LANES].iter_mut().zip(&alpha) {
                *o *= a;
            }
        }
    }
}

/// `s[jj][r] = Σ_p k[jj][p] · qt[p][r]` for `jj < len`, `r < lanes` (key row `jj` at `k[jj · stride..]`).
/// Register blocks of `KR` keys × `CW` query lanes; the remaining keys one at a time.
#[inline(always)]
fn scores_t<const FMA: bool, const KR: usize, const CW: usize>(
    k: &[f32],
    stride: usize,
    len: usize,
    d: usize,
    lanes: usize,
    qt: &[f32],
    s: &mut [f32],
) {
    let full = len / KR * KR;
    let mut jj = 0;
    while jj < full {
        scores_block::<FMA, KR, CW>(k, stride, jj, d, lanes, qt, s);
        jj += KR;
    }
    while jj < len {
        scores_block::<FMA, 1, CW>(k, stride, jj, d, lanes, qt, s);
        jj += 1;
    }
}

#[inline(always)]
fn scores_block<const FMA: bool, const KR: usize, const CW: usize>(
    k: &[f32],
    stride: usize,
    jj: usize,
    d: usize,
    lanes: usize,
    qt: &[f32],
    s: &mut [f32],
) {
    let krows: [&[f32]; KR] = std::array::from_fn(|x| &k[(jj + x) * stride..(jj + x) * stride + d]);
    for c0 in (0..lanes).step_by(CW) {
        let mut acc = [[0.0f32; CW]; KR];
        for p in 0..d {
            let qrow = &qt[p * QUERY_TILE + c0..p * QUERY_TILE + c0 + CW];
            for x in 0..KR {
                let kv = krows[x][p];
                for (a, &qv) in acc[x].iter_mut().zip(qrow) {
                    *a = fmadd::<FMA>(kv, qv, *a);
                }
            }
        }
        for (x, a) in acc.iter().enumerate() {
            let o = (jj + x) * QUERY_TILE + c0;
            s[o..o + CW].copy_from_slice(a);
        }
    }
}

/// `ot[c][r] += Σ_jj v[jj][c] · s[jj][r]` for `jj < len`, `r < lanes` (value row `jj` at `v[jj · stride..]`).
#[inline(always)]
fn pv_t<const FMA: bool, const KR: usize, const CW: usize>(
    v: &[f32],
    stride: usize,
    len: usize,
    d: usize,
    lanes: usize,
    s: &[f32],
    ot: &mut [f32],
) {
    let full = d / KR * KR;
    let mut c = 0;
    while c < full {
        pv_block::<FMA, KR, CW>(v, stride, len, c, lanes, s, ot);
        c += KR;
    }
    while c < d {
        pv_block::<FMA, 1, CW>(v, stride, len, c, lanes, s, ot);
        c += 1;
    }
}

#[inline(always)]
fn pv_block<const FMA: bool, const CR: usize, const CW: usize>(
    v: &[f32],
    stride: usize,
    len: usize,
    c: usize,
    lanes: usize,
    s: &[f32],
    ot: &mut [f32],
) {
    for c0 in (0..lanes).step_by(CW) {
        let mut acc = [[0.0f32; CW]; CR];
        for (x, a) in acc.iter_mut().enumerate() {
            let o = (c + x) * QUERY_TILE + c0;
            a.copy_from_slice(&ot[o..o + CW]);
        }
        for jj in 0..len {
            let prow = &s[jj * QUERY_TILE + c0..jj * QUERY_TILE + c0 + CW];
            let vrow = &v[jj * stride + c..jj * stride + c + CR];
            for x in 0..CR {
                let b = vrow[x];
                for (a, &pv) in acc[x].iter_mut().zip(prow) {
                    *a = fmadd::<FMA>(b, pv, *a);
                }
            }
        }
        for (x, a) in acc.iter().enumerate() {
            let o = (c + x) * QUERY_TILE + c0;
            ot[o..o + CW].copy_from_slice(a);
        }
    }
}

/// [`scores_t`] through `matrixmultiply::sgemm`: `S^T (len × QT) = K (len × d) · Q^T (d × QT)`.
fn gemm_scores_t(k: &[f32], stride: usize, len: usize, d: usize, qt: &[f32], s: &mut [f32]) {
    // Bounds the unsafe call relies on: every element it reads or writes is inside the slices.
    let k_need = (len - 1) * stride + d;
    if len == 0 || k.len() < k_need || qt.len() < d * QUERY_TILE || s.len() < len * QUERY_TILE {
        return;
    }
    let a = MatRef {
        data: k,
        offset: 0,
        rows: len,
        cols: d,
        rs: stride,
        cs: 1,
    };
    let b = MatRef::row_major(qt, d, QUERY_TILE);
    // Shapes were checked above, so the wrapper cannot refuse them.
    let _ = gemm(a, b, s, QUERY_TILE, false);
}

/// [`pv_t`] through `matrixmultiply::sgemm`: `O^T (d × QT) += V^T (d × len) · P^T (len × QT)`.
fn gemm_pv_t(v: &[f32], stride: usize, len: usize, d: usize, s: &[f32], ot: &mut [f32]) {
    let v_need = (len - 1) * stride + d;
    if len == 0 || v.len() < v_need || s.len() < len * QUERY_TILE || ot.len() < d * QUERY_TILE {
        return;
    }
    let a = MatRef {
        data: v,
        offset: 0,
        rows: d,
        cols: len,
        rs: 1,
        cs: stride,
    };
    let b = MatRef::row_major(s, len, QUERY_TILE);
    let _ = gemm(a, b, ot, QUERY_TILE, true);
}

// ---------------------------------------------------------------------------------------------
// The materialized path

impl Plan<'_> {
    /// Row `i` of head `h` of the additive tensor: the bias, then `-inf` where masked. Plain
    /// loops over the row (vectorizable), as a framework's tensor ops would be.
    fn bias_row(&self, h: usize, i: usize, row: &mut [f32]) {
        let pq = self.qpos[i];
        match self.bias {
            BiasPlan::None => row.fill(0.0),
            BiasPlan::Alibi { slopes, symmetric } => {
                let m = slopes[h];
                for (b, &pk) in row.iter_mut().zip(self.kpos) {
                    let dist = pq as f64 - pk as f64;
                    let dist = if symmetric {
                        dist.abs()
                    } else if dist > 0.0 {
                        dist
                    } else {
                        0.0
                    };
                    *b = (-m * dist) as f32;
                }
            }
            BiasPlan::Relative(table) => {
                for (b, &pk) in row.iter_mut().zip(self.kpos) {
                    *b = table.get(h, pq, pk);
                }
            }
        }
        match self.mask.causal {
            Causal::None => {}
            Causal::ByPosition => {
                for (b, &pk) in row.iter_mut().zip(self.kpos) {
                    if pk > pq {
                        *b = f32::NEG_INFINITY;
                    }
                }
            }
            Causal::ByIndex => {
                // Allowed iff j + seq_q <= i + seq_k.
                let first_hidden = (i + self.seq_k + 1).saturating_sub(self.seq_q);
                if first_hidden < row.len() {
                    row[first_hidden..].fill(f32::NEG_INFINITY);
                }
            }
        }
        if let Some(kp) = &self.mask.key_padding {
            for (b, &real) in row.iter_mut().zip(kp) {
                if !real {
                    *b = f32::NEG_INFINITY;
                }
            }
        }
        if let Some(allowed) = &self.mask.allowed {
            let a = &allowed[i * self.seq_k..(i + 1) * self.seq_k];
            for (b, &ok) in row.iter_mut().zip(a) {
                if !ok {
                    *b = f32::NEG_INFINITY;
                }
            }
        }
    }

    fn run_materialized(&self) -> MaterializedAttention {
        let (nq, d) = (self.heads.n_q_heads, self.heads.head_dim);
        let (sq, sk) = (self.seq_q, self.seq_k);
        let (qw, kw) = (self.heads.q_width(), self.heads.kv_width());
        let plane = sq * sk;
        let mut output = vec![0.0f32; sq * qw];
        let mut bias = vec![0.0f32; nq * plane];
        let mut scores = vec![0.0f32; nq * plane];
        let (bias_bytes, scores_bytes) = (bias.len() * 4, scores.len() * 4);
        if sq == 0 || sk == 0 {
            return MaterializedAttention {
                output,
                bias_bytes,
                scores_bytes,
            };
        }
        // Framework style: rotated copies of q and k, scale folded into q.
        let mut q = self.q.to_vec();
        let mut k = self.k.to_vec();
        if let Some(rope) = &self.rope {
            for (i, tok) in q.chunks_exact_mut(qw).enumerate() {
                let (c, s) = rope.query_row(i);
                for head in tok.chunks_exact_mut(d) {
                    rope.rotate(head, c, s);
                }
            }
            for (j, tok) in k.chunks_exact_mut(kw).enumerate() {
                let (c, s) = rope.key_row(j);
                for head in tok.chunks_exact_mut(d) {
                    rope.rotate(head, c, s);
                }
            }
        }
        q.iter_mut().for_each(|x| *x *= self.scale);

        bias.par_chunks_mut(sk).enumerate().for_each(|(hi, row)| {
            let (h, i) = (hi / sq, hi % sq);
            self.bias_row(h, i, row);
        });

        let head_outputs: Vec<Vec<f32>> = scores
            .par_chunks_mut(plane)
            .zip(bias.par_chunks(plane))
            .enumerate()
            .map(|(h, (sc, bi))| {
                let g = self.heads.kv_head(h);
                let a = MatRef {
                    data: &q,
                    offset: h * d,
                    rows: sq,
                    cols: d,
                    rs: qw,
                    cs: 1,
                };
                let b = MatRef {
                    data: &k,
                    offset: g * d,
                    rows: d,
                    cols: sk,
                    rs: 1,
                    cs: kw,
                };
                // In bounds by the checked shapes.
                let _ = gemm(a, b, sc, sk, false);
                for (srow, brow) in sc.chunks_exact_mut(sk).zip(bi.chunks_exact(sk)) {
                    for (s, &b) in srow.iter_mut().zip(brow) {
                        *s += b;
                    }
                    softmax_row(srow);
                }
                let mut o = vec![0.0f32; sq * d];
                let a = MatRef::row_major(sc, sq, sk);
                let b = MatRef {
                    data: self.v,
                    offset: g * d,
                    rows: sk,
                    cols: d,
                    rs: kw,
                    cs: 1,
                };
                let _ = gemm(a, b, &mut o, d, false);
                o
            })
            .collect();
        for (h, o) in head_outputs.iter().enumerate() {
            scatter(&mut output, o, sq, nq, h, d);
        }
        MaterializedAttention {
            output,
            bias_bytes,
            scores_bytes,
        }
    }
}

/// Softmax of one row in place; `-inf` entries get 0, a row of only `-inf` becomes all zeros.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
fn softmax_row(row: &mut [f32]) {
    let mut lanes = [f32::NEG_INFINITY; 16];
    let mut chunks = row.chunks_exact(16);
    for c in &mut chunks {
        for (a, &x) in lanes.iter_mut().zip(c) {
            *a = if x > *a { x } else { *a };
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(&lanes)
        .fold(f32::NEG_INFINITY, |a, &x| a.max(x));
    if max == f32::NEG_INFINITY {
        row.fill(0.0);
        return;
    }
    let mut sums = [0.0f32; 16];
    let mut chunks = row.chunks_exact_mut(16);
    for c in &mut chunks {
        for (a, x) in sums.iter_mut().zip(c.iter_mut()) {
            *x = exp_f32_impl::<false>(*x - max);
            *a += *x;
        }
    }
    let mut sum: f32 = sums.iter().sum();
    for x in chunks.into_remainder() {
        *x = exp_f32_impl::<false>(*x - max);
        sum += *x;
    }
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|x| *x *= inv);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_f64_within_a_few_ulp() {
        let mut worst = 0.0f64;
        let n = 200_000;
        for t in 0..=n {
            let x = -87.0f32 * t as f32 / n as f32;
            let want = (x as f64).exp();
            let got = exp_f32(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            let got_fma = exp_f32_impl::<true>(x) as f64;
            worst = worst.max(((got_fma - want) / want).abs());
        }
        // 2.5e-7 ≈ 2 ulp of f32.
        assert!(worst < 2.5e-7, "worst relative error {worst:e}");
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-87.5), 0.0);
        assert_eq!(exp_f32(0.0), 1.0);
    }

    #[test]
    fn relative_table_clamps_at_its_edges() {
        let t = RelativeBias::new(2, -1, vec![1.0, 2.0, 3.0, 10.0, 20.0, 30.0]).unwrap();
        assert_eq!(t.get(0, 5, 5), 2.0);
        assert_eq!(t.get(0, 5, 0), 1.0);
        assert_eq!(t.get(1, 5, 6), 30.0);
        assert_eq!(t.get(1, 0, 100), 30.0);
        assert!(RelativeBias::new(2, 0, vec![1.0; 3]).is_err());
        assert!(RelativeBias::new(0, 0, vec![1.0; 3]).is_err());
        assert!(RelativeBias::new(1, i64::MAX, vec![1.0; 3]).is_err());
    }
}
