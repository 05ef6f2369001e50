//! Reference multi-head / grouped-query attention that applies any positional scheme exactly
//! where it enters the model, with masks kept separate from position signals.
//!
//! This is the plain, slow implementation that everything else is checked against: `f32`
//! storage, `f64` accumulation for dot products, softmax and weighted sums.
//!
//! ## Layouts
//! All buffers are flat, row-major:
//! * queries `q`: `[seq_q][n_q_heads][head_dim]`;
//! * keys `k` and values `v`: `[seq_k][n_kv_heads][head_dim]`;
//! * output: `[seq_q][n_q_heads][head_dim]` (heads concatenated; no output projection);
//! * scores and weights: `[n_q_heads][seq_q][seq_k]`;
//! * hidden states: `[seq][d_model]`; projection matrices `[d_model][out]` (`x · W`).
//!
//! Grouped-query attention ([`HeadConfig`]): `n_kv_heads` divides `n_q_heads` and query head `h`
//! reads key/value head `h / (n_q_heads / n_kv_heads)`, i.e. consecutive query heads share a
//! key/value head (Hugging Face `repeat_kv`). `n_kv_heads = n_q_heads` is multi-head attention,
//! `n_kv_heads = 1` multi-query attention.
//!
//! ## The computation
//! For query head `h`, query `i` at position `p_i` and key `j` at position `p_j`:
//!
//! ```text
//! s[h][i][j] = scale · <q'_i, k'_j> + b_h(p_j - p_i)        (scale = 1/sqrt(head_dim) by default)
//! w[h][i][·] = softmax over the keys the mask allows, 0 for every other key
//! o[i][h]    = Σ_j w[h][i][j] · v_j
//! ```
//!
//! ## Where each [`Scheme`] enters
//! * [`Scheme::NoPe`]: nowhere; only the causal mask (if any) orders the tokens.
//! * [`Scheme::Sinusoidal`] and [`Scheme::Learned`]: added to the hidden states before the
//!   q/k/v projections ([`add_absolute_positions`]; [`SingleLayer`] does this end to end). In
//!   [`attention`] itself they do nothing to `q`/`k`, but a learned scheme still checks that every
//!   position is inside its table, so a position past the table is an error on every path.
//! * [`Scheme::Rope`]: `q'_i = R(p_i) q_i`, `k'_j = R(p_j) k_j` (with the attention factor folded
//!   into cos/sin, as Hugging Face does); no bias. Other schemes use `q' = q`, `k' = k`.
//! * [`Scheme::Alibi`]: bias `b_h = -m_h · (p_i - p_j)` for `p_j <= p_i` and `0` for keys after the
//!   query (hiding those is the causal mask's job); symmetric form `-m_h · |p_i - p_j|`. Not scaled.
//! * [`Scheme::T5`]: bias `b_h = table[bucket(p_j - p_i)][h]` (Hugging Face
//!   `T5Attention._relative_position_bucket`). Not scaled; T5 itself uses `scale = 1`
//!   ([`AttentionOptions::scale`]).
//! * [`Scheme::Shaw`] (Shaw, Uszkoreit & Vaswani, 2018): with `r = clip(p_j - p_i, -k, k) + k`,
//!   the score is `scale · <q_i, k_j + a^K[r]>` and the output `Σ_j w_ij (v_j + a^V[r])`; the
//!   tables are shared by all heads, as in the paper.
//!
//! Positions are explicit per query and per key (`u64`): offsets for decoding with a cache, left
//! padding and gaps are all expressed through them. Schemes that only see `p_j - p_i` (RoPE,
//! ALiBi, T5, Shaw) give the same scores when every position is shifted by the same amount; absolute
//! schemes do not.
//!
//! ## Masks
//! A [`Mask`] says which (query, key) pairs may attend; it never carries position information
//! into the scores. A masked pair gets weight exactly `0.0` whatever its score or bias: masked
//! entries are skipped, never set to `-inf` and exponentiated. A query row whose keys are all
//! masked (e.g. a padding query) gets all-zero weights and an all-zero output.

use crate::error::{check_cap, check_finite};
use crate::learned::LearnedTable;
use crate::relative::T5Buckets;
use crate::rope::{self, RopeFrequencies, RopeLayout};
use crate::sinusoidal::{self, SinusoidalLayout};
use crate::{Error, PositionEntry, Result};

/// Cap on `n_q_heads · seq_q · seq_k` (score entries) in one call: 67,108,864.
pub const MAX_SCORE_ELEMENTS: u64 = 1 << 26;

/// Cap on any single buffer (`q`, `k`, `v`, hidden states, weight matrices), in values.
pub const MAX_BUFFER_ELEMENTS: u64 = 1 << 28;

/// Cap on the number of query heads.
pub const MAX_HEADS: usize = 4096;

/// Cap on `head_dim`.
pub const MAX_HEAD_DIM: usize = 65_536;

/// Head counts and size of an attention layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct HeadConfig {
    /// Number of query heads.
    pub n_q_heads: usize,
    /// Number of key/value heads; must divide `n_q_heads`.
    pub n_kv_heads: usize,
    /// Size of one head vector.
    pub head_dim: usize,
}

impl HeadConfig {
    /// A validated configuration (see [`HeadConfig::validate`]).
    pub fn new(n_q_heads: usize, n_kv_heads: usize, head_dim: usize) -> Result<Self> {
        let heads = HeadConfig {
            n_q_heads,
            n_kv_heads,
            head_dim,
        };
        heads.validate()?;
        Ok(heads)
    }

    /// Multi-head attention: as many key/value heads as query heads.
    pub fn mha(n_heads: usize, head_dim: usize) -> Result<Self> {
        Self::new(n_heads, n_heads, head_dim)
    }

    /// Errors: a zero count or size, `n_kv_heads` not dividing `n_q_heads`, above [`MAX_HEADS`] or
    /// [`MAX_HEAD_DIM`].
    pub fn validate(&self) -> Result<()> {
        if self.n_q_heads == 0 {
            return Err(Error::invalid("n_q_heads", "at least 1 head"));
        }
        if self.n_kv_heads == 0 {
            return Err(Error::invalid("n_kv_heads", "at least 1 head"));
        }
        if self.head_dim == 0 {
            return Err(Error::invalid("head_dim", "at least 1"));
        }
        check_cap("n_q_heads", self.n_q_heads as u64, MAX_HEADS as u64)?;
        check_cap("head_dim", self.head_dim as u64, MAX_HEAD_DIM as u64)?;
        if !self.n_q_heads.is_multiple_of(self.n_kv_heads) {
            return Err(Error::invalid(
                "n_kv_heads",
                format!(
                    "a divisor of n_q_heads = {}, got {}",
                    self.n_q_heads, self.n_kv_heads
                ),
            ));
        }
        Ok(())
    }

    /// Query heads per key/value head: `n_q_heads / n_kv_heads`.
    pub fn group_size(&self) -> usize {
        self.n_q_heads / self.n_kv_heads.max(1)
    }

    /// The key/value head read by query head `q_head`: `q_head / group_size`.
    pub fn kv_head(&self, q_head: usize) -> usize {
        q_head / self.group_size().max(1)
    }

    /// Values per token of `q` (and of the output): `n_q_heads · head_dim`.
    pub fn q_width(&self) -> usize {
        self.n_q_heads * self.head_dim
    }

    /// Values per token of `k` and `v`: `n_kv_heads · head_dim`.
    pub fn kv_width(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }
}

/// Causal masking, if any.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Causal {
    /// No causal constraint.
    #[default]
    None,
    /// Key `j` is visible to query `i` iff `key_positions[j] <= query_positions[i]`. Right with a
    /// cache, with left padding and with any explicit positions.
    ByPosition,
    /// Key `j` is visible to query `i` iff `j <= i + (seq_k - seq_q)`: the queries are the last
    /// `seq_q` of the keys (bottom-right alignment, as in Hugging Face and FlashAttention).
    ByIndex,
}

/// Which (query, key) pairs may attend. The three parts are combined with AND.
///
/// Positions never enter through the mask (apart from [`Causal::ByPosition`], which only compares
/// them), and a mask never changes a score: it only removes pairs from the softmax.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mask {
    /// Causal constraint.
    pub causal: Causal,
    /// Key padding mask, `[seq_k]`, `true` = a real key, `false` = padding (never attended).
    pub key_padding: Option<Vec<bool>>,
    /// Arbitrary boolean mask, `[seq_q][seq_k]`, `true` = may attend.
    pub allowed: Option<Vec<bool>>,
}

impl Mask {
    /// No masking: every query sees every key.
    pub fn none() -> Self {
        Mask::default()
    }

    /// Causal by positions ([`Causal::ByPosition`]).
    pub fn causal_by_position() -> Self {
        Mask {
            causal: Causal::ByPosition,
            ..Mask::default()
        }
    }

    /// Causal by index ([`Causal::ByIndex`]).
    pub fn causal_by_index() -> Self {
        Mask {
            causal: Causal::ByIndex,
            ..Mask::default()
        }
    }

    /// Adds a key padding mask, `[seq_k]`, `true` = real key.
    pub fn with_key_padding(mut self, key_padding: Vec<bool>) -> Self {
        self.key_padding = Some(key_padding);
        self
    }

    /// Adds an arbitrary boolean mask, `[seq_q][seq_k]`, `true` = may attend.
    pub fn with_allowed(mut self, allowed: Vec<bool>) -> Self {
        self.allowed = Some(allowed);
        self
    }

    /// Errors: a key padding mask not of length `seq_k`, an arbitrary mask not of `seq_q · seq_k`.
    pub fn validate(&self, seq_q: usize, seq_k: usize) -> Result<()> {
        if let Some(kp) = &self.key_padding {
            if kp.len() != seq_k {
                return Err(Error::shape("key_padding mask [seq_k]", seq_k, kp.len()));
            }
        }
        if let Some(a) = &self.allowed {
            let expected = seq_q
                .checked_mul(seq_k)
                .ok_or_else(|| Error::invalid("seq_q × seq_k", "a size that fits in memory"))?;
            if a.len() != expected {
                return Err(Error::shape(
                    "allowed mask [seq_q][seq_k]",
                    format!("{seq_q} × {seq_k} = {expected}"),
                    a.len(),
                ));
            }
        }
        Ok(())
    }

    /// Whether query `i` (at `query_position`) may attend key `j` (at `key_position`), for
    /// `seq_q` queries and `seq_k` keys. Indices outside the masks count as masked.
    pub fn allows(
        &self,
        i: usize,
        j: usize,
        seq_q: usize,
        seq_k: usize,
        query_position: u64,
        key_position: u64,
    ) -> bool {
        let causal_ok = match self.causal {
            Causal::None => true,
            Causal::ByPosition => key_position <= query_position,
            // j <= i + (seq_k - seq_q), without going negative.
            Causal::ByIndex => (j as u128) + (seq_q as u128) <= (i as u128) + (seq_k as u128),
        };
        let padding_ok = match &self.key_padding {
            None => true,
            Some(kp) => kp.get(j).copied().unwrap_or(false),
        };
        let allowed_ok = match &self.allowed {
            None => true,
            Some(a) => i
                .checked_mul(seq_k)
                .and_then(|r| r.checked_add(j))
                .and_then(|idx| a.get(idx))
                .copied()
                .unwrap_or(false),
        };
        causal_ok && padding_ok && allowed_ok
    }
}

/// A positional scheme as plain data, with everything needed to apply it.
#[derive(Debug, Clone, PartialEq)]
pub enum Scheme {
    /// No positional signal (NoPE): order comes from the causal mask only.
    NoPe,
    /// Sinusoidal table ([`crate::sinusoidal`]) added to the hidden states.
    Sinusoidal {
        /// Column order and frequency ladder.
        layout: SinusoidalLayout,
        /// Base of the frequency ladder (10000 in Vaswani et al.).
        base: f64,
    },
    /// Learned absolute table ([`crate::learned`]) added to the hidden states; its `dim` must be
    /// the model's `d_model`, and positions must be below its `max_positions`.
    Learned(LearnedTable),
    /// Rotary embeddings ([`crate::rope`]) applied to queries and keys at their positions.
    Rope {
        /// Inverse frequencies, attention factor and precision; `rotary_dim <= head_dim`.
        freqs: RopeFrequencies,
        /// Pairing of dimensions.
        layout: RopeLayout,
    },
    /// ALiBi ([`crate::alibi`]) biases added to the scores.
    Alibi {
        /// One slope per query head (`n_q_heads` values).
        slopes: Vec<f64>,
        /// `false`: `-m·(p_q - p_k)` for keys at or before the query, `0` after (decoders).
        /// `true`: `-m·|p_q - p_k|` (encoders).
        symmetric: bool,
    },
    /// T5 bucketed relative bias ([`crate::relative`]) added to the scores.
    T5 {
        /// `relative_attention_bias.weight`, flat `[num_buckets][n_q_heads]`.
        bias_table: Vec<f32>,
        /// Direction, bucket count and maximum distance.
        buckets: T5Buckets,
    },
    /// Shaw et al. (2018) relative representations ([`crate::relative`]), shared by all heads:
    /// with `r = clip(p_k - p_q, -k, k) + k`, the score gains `scale · <q', rel_k[r]>` and the
    /// output gains `Σ_j w_j · rel_v[r]`.
    Shaw {
        /// `a^K` table, flat `[2k + 1][head_dim]`.
        rel_k: Vec<f32>,
        /// `a^V` table, flat `[2k + 1][head_dim]`, or empty for keys-only Shaw.
        rel_v: Vec<f32>,
        /// The clipping distance `k`.
        max_relative_position: usize,
    },
}

impl Scheme {
    /// Where this scheme enters the model.
    pub fn entry(&self) -> PositionEntry {
        match self {
            Scheme::NoPe => PositionEntry::Nowhere,
            Scheme::Sinusoidal { .. } | Scheme::Learned(_) => PositionEntry::HiddenStates,
            Scheme::Rope { .. } => PositionEntry::QueryKey,
            Scheme::Alibi { .. } | Scheme::T5 { .. } | Scheme::Shaw { .. } => {
                PositionEntry::AttentionScores
            }
        }
    }

    /// A short name: `nope`, `sinusoidal`, `learned`, `rope`, `alibi`, `t5`, `shaw`.
    pub fn name(&self) -> &'static str {
        match self {
            Scheme::NoPe => "nope",
            Scheme::Sinusoidal { .. } => "sinusoidal",
            Scheme::Learned(_) => "learned",
            Scheme::Rope { .. } => "rope",
            Scheme::Alibi { .. } => "alibi",
            Scheme::T5 { .. } => "t5",
            Scheme::Shaw { .. } => "shaw",
        }
    }

    /// Checks the scheme against a layer: ALiBi needs one finite slope per query head, T5 a
    /// `[num_buckets][n_q_heads]` table and valid buckets, RoPE `rotary_dim <= head_dim` and
    /// finite frequencies and factor, sinusoidal a finite base, Shaw `[2k + 1][head_dim]` tables
    /// (`rel_v` may be empty) of finite values.
    pub fn validate(&self, heads: &HeadConfig) -> Result<()> {
        heads.validate()?;
        match self {
            Scheme::NoPe | Scheme::Learned(_) => Ok(()),
            Scheme::Sinusoidal { base, .. } => check_finite("base", *base).map(|_| ()),
            Scheme::Rope { freqs, .. } => {
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
                check_finite("attention_factor", freqs.attention_factor).map(|_| ())
            }
            Scheme::Alibi { slopes, .. } => {
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
                Ok(())
            }
            Scheme::Shaw {
                rel_k,
                rel_v,
                max_relative_position,
            } => {
                let rows = max_relative_position
                    .checked_mul(2)
                    .and_then(|r| r.checked_add(1))
                    .ok_or_else(|| {
                        Error::invalid("max_relative_position", "a size that fits in memory")
                    })?;
                check_buffer("Shaw rel_k [2k+1][head_dim]", rel_k, rows, heads.head_dim)?;
                if !rel_v.is_empty() {
                    check_buffer("Shaw rel_v [2k+1][head_dim]", rel_v, rows, heads.head_dim)?;
                }
                Ok(())
            }
            Scheme::T5 {
                bias_table,
                buckets,
            } => {
                buckets.validate()?;
                let expected = buckets.num_buckets.saturating_mul(heads.n_q_heads);
                if bias_table.len() != expected {
                    return Err(Error::shape(
                        "T5 bias table [num_buckets][n_q_heads]",
                        format!("{} × {} = {expected}", buckets.num_buckets, heads.n_q_heads),
                        bias_table.len(),
                    ));
                }
                if let Some(b) = bias_table.iter().find(|b| !b.is_finite()) {
                    return Err(Error::invalid(
                        "bias_table",
                        format!("finite values, got {b}"),
                    ));
                }
                Ok(())
            }
        }
    }

    /// The bias this scheme adds to the score of query head `head` (query at `query_position`,
    /// key at `key_position`), in `f64`: the ALiBi or T5 term, `0` for every other scheme (Shaw's
    /// score term depends on the query vector and is added inside [`attention`]).
    ///
    /// Errors: `head` past the slopes or table, invalid T5 buckets.
    pub fn score_bias(&self, head: usize, query_position: u64, key_position: u64) -> Result<f64> {
        match self {
            Scheme::Alibi { slopes, symmetric } => {
                let m = *slopes.get(head).ok_or_else(|| {
                    Error::shape("ALiBi slopes", format!("> {head}"), slopes.len())
                })?;
                // Distance query - key, exact in i128, then f64.
                let d = query_position as i128 - key_position as i128;
                let b = if *symmetric {
                    -m * d.unsigned_abs() as f64
                } else if d >= 0 {
                    -m * d as f64
                } else {
                    0.0
                };
                Ok(b)
            }
            Scheme::T5 {
                bias_table,
                buckets,
            } => {
                let heads = bias_table
                    .len()
                    .checked_div(buckets.num_buckets)
                    .unwrap_or(0);
                if head >= heads {
                    return Err(Error::shape(
                        "T5 bias table heads",
                        format!("> {head}"),
                        heads,
                    ));
                }
                // key - query, saturated to i64 (buckets saturate long before that).
                let rp = (key_position as i128 - query_position as i128)
                    .clamp(i64::MIN as i128, i64::MAX as i128) as i64;
                let bucket = crate::relative::t5_bucket(
                    rp,
                    buckets.bidirectional,
                    buckets.num_buckets,
                    buckets.max_distance,
                )?;
                bias_table
                    .get(bucket * heads + head)
                    .map(|&b| f64::from(b))
                    .ok_or_else(|| {
                        Error::shape("T5 bias table", bucket * heads + head, bias_table.len())
                    })
            }
            _ => Ok(0.0),
        }
    }

    /// Checks that the scheme can encode every position: for a learned table, each must be below
    /// `max_positions` ([`Error::PositionOutOfRange`] otherwise). Other schemes accept any `u64`.
    pub fn check_positions(&self, positions: &[u64]) -> Result<()> {
        if let Scheme::Learned(table) = self {
            for &p in positions {
                table.lookup(p)?;
            }
        }
        Ok(())
    }
}

/// The Shaw table rows `(rel_k[r], rel_v[r])` for a (query, key) pair, `r = clip(p_k - p_q, -k,
/// k) + k`; `None` for other schemes. Tables must have been validated for `head_dim`.
fn shaw_rows(
    scheme: &Scheme,
    head_dim: usize,
    query_position: u64,
    key_position: u64,
) -> Option<(&[f32], Option<&[f32]>)> {
    let Scheme::Shaw {
        rel_k,
        rel_v,
        max_relative_position,
    } = scheme
    else {
        return None;
    };
    let k = *max_relative_position as i128;
    let rel = (key_position as i128 - query_position as i128).clamp(-k, k);
    let r = usize::try_from(rel + k).ok()?;
    let start = r.checked_mul(head_dim)?;
    let end = start.checked_add(head_dim)?;
    Some((rel_k.get(start..end)?, rel_v.get(start..end)))
}

/// Options of [`attention`].
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct AttentionOptions {
    /// Multiplies `<q, k>`; `None` = `1/sqrt(head_dim)`. T5 uses `Some(1.0)`.
    pub scale: Option<f64>,
    /// Also return the weights `[n_q_heads][seq_q][seq_k]`.
    pub return_weights: bool,
}

impl AttentionOptions {
    /// The scale in force for `head_dim`.
    pub fn scale_for(&self, head_dim: usize) -> f64 {
        self.scale
            .unwrap_or_else(|| 1.0 / (head_dim.max(1) as f64).sqrt())
    }
}

/// Result of [`attention`].
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionOutput {
    /// `[seq_q][n_q_heads][head_dim]`.
    pub output: Vec<f32>,
    /// `[n_q_heads][seq_q][seq_k]` when asked for; masked pairs are exactly `0.0`.
    pub weights: Option<Vec<f32>>,
}

fn check_buffer(what: &str, buf: &[f32], rows: usize, width: usize) -> Result<()> {
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
    if let Some(i) = buf.iter().position(|x| !x.is_finite()) {
        return Err(Error::invalid(
            what,
            format!("finite values, got {} at index {i}", buf[i]),
        ));
    }
    Ok(())
}

/// Applies the query/key part of a scheme in place: RoPE rotates each token of `x`
/// (`[positions.len()][n_heads][head_dim]`) by its position; every other scheme leaves `x` as is.
///
/// Errors: `x` not of `positions.len() · n_heads · head_dim` values, `rotary_dim > head_dim`.
pub fn apply_query_key_scheme(
    x: &mut [f32],
    n_heads: usize,
    head_dim: usize,
    positions: &[u64],
    scheme: &Scheme,
) -> Result<()> {
    let width = n_heads
        .checked_mul(head_dim)
        .filter(|&w| w > 0)
        .ok_or_else(|| Error::invalid("heads × head_dim", "a positive size"))?;
    if positions.len().checked_mul(width) != Some(x.len()) {
        return Err(Error::shape(
            "x [seq][heads][head_dim]",
            format!("{} × {width}", positions.len()),
            x.len(),
        ));
    }
    if let Scheme::Rope { freqs, layout } = scheme {
        rope::apply_rotary_seq(x, n_heads, head_dim, positions, freqs, *layout)?;
    }
    Ok(())
}

/// Copies of `q` and `k` with the query/key part of `scheme` applied ([`apply_query_key_scheme`]).
fn query_key_with_scheme(
    heads: &HeadConfig,
    q: &[f32],
    k: &[f32],
    query_positions: &[u64],
    key_positions: &[u64],
    scheme: &Scheme,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let mut q = q.to_vec();
    let mut k = k.to_vec();
    apply_query_key_scheme(
        &mut q,
        heads.n_q_heads,
        heads.head_dim,
        query_positions,
        scheme,
    )?;
    apply_query_key_scheme(
        &mut k,
        heads.n_kv_heads,
        heads.head_dim,
        key_positions,
        scheme,
    )?;
    Ok((q, k))
}

struct Checked {
    seq_q: usize,
    seq_k: usize,
}

fn check_inputs(
    heads: &HeadConfig,
    q: &[f32],
    k: &[f32],
    query_positions: &[u64],
    key_positions: &[u64],
    scheme: &Scheme,
) -> Result<Checked> {
    heads.validate()?;
    scheme.validate(heads)?;
    let seq_q = query_positions.len();
    let seq_k = key_positions.len();
    check_buffer("q [seq_q][n_q_heads][head_dim]", q, seq_q, heads.q_width())?;
    check_buffer(
        "k [seq_k][n_kv_heads][head_dim]",
        k,
        seq_k,
        heads.kv_width(),
    )?;
    let elements = (heads.n_q_heads as u64)
        .saturating_mul(seq_q as u64)
        .saturating_mul(seq_k as u64);
    check_cap("n_q_heads × seq_q × seq_k", elements, MAX_SCORE_ELEMENTS)?;
    scheme.check_positions(query_positions)?;
    scheme.check_positions(key_positions)?;
    Ok(Checked { seq_q, seq_k })
}

/// A score must be finite: an overflowing bias (say an ALiBi slope of 1e300 over a long
/// distance) or scale is reported instead of turning the softmax into NaN.
fn check_score(s: f64, h: usize, i: usize, j: usize) -> Result<f64> {
    if s.is_finite() {
        Ok(s)
    } else {
        Err(Error::invalid(
            "scores",
            format!(
                "finite scores; got {s} for head {h}, query {i}, key {j} (bias or scale too large)"
            ),
        ))
    }
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum()
}

/// Query head `h` of token `i` (`q` already checked to be `[seq_q][n_q_heads][head_dim]`).
fn q_head<'a>(heads: &HeadConfig, q: &'a [f32], i: usize, h: usize) -> &'a [f32] {
    let d = heads.head_dim;
    let o = (i * heads.n_q_heads + h) * d;
    &q[o..o + d]
}

/// The key/value head read by query head `h`, of token `j` (`[seq_k][n_kv_heads][head_dim]`).
fn kv_head_of<'a>(heads: &HeadConfig, kv: &'a [f32], j: usize, h: usize) -> &'a [f32] {
    let d = heads.head_dim;
    let o = (j * heads.n_kv_heads + heads.kv_head(h)) * d;
    &kv[o..o + d]
}

/// Scores `s[h][i][j] = scale · <q'_i, k'_j> + b_h(p_j - p_i)` for every pair, flat
/// `[n_q_heads][seq_q][seq_k]`, before any mask (masks are separate) and before softmax.
/// `q`/`k` are raw: RoPE is applied here as in [`attention`].
///
/// Errors: as [`attention`].
pub fn attention_scores(
    heads: &HeadConfig,
    q: &[f32],
    k: &[f32],
    query_positions: &[u64],
    key_positions: &[u64],
    scheme: &Scheme,
    scale: Option<f64>,
) -> Result<Vec<f32>> {
    let Checked { seq_q, seq_k } =
        check_inputs(heads, q, k, query_positions, key_positions, scheme)?;
    let scale = AttentionOptions {
        scale,
        return_weights: false,
    }
    .scale_for(heads.head_dim);
    check_finite("scale", scale)?;
    let (q, k) = query_key_with_scheme(heads, q, k, query_positions, key_positions, scheme)?;
    let mut out = Vec::with_capacity(heads.n_q_heads * seq_q * seq_k);
    for h in 0..heads.n_q_heads {
        for (i, &pq) in query_positions.iter().enumerate() {
            for (j, &pk) in key_positions.iter().enumerate() {
                let b = scheme.score_bias(h, pq, pk)?;
                let qh = q_head(heads, &q, i, h);
                let mut s = scale * dot(qh, kv_head_of(heads, &k, j, h)) + b;
                if let Some((a_k, _)) = shaw_rows(scheme, heads.head_dim, pq, pk) {
                    s += scale * dot(qh, a_k);
                }
                out.push(check_score(s, h, i, j)? as f32);
            }
        }
    }
    Ok(out)
}

/// Reference attention with `q`, `k`, `v` as they come out of the projections.
///
/// Applies the query/key part of `scheme` ([`apply_query_key_scheme`]: RoPE rotates `q` at
/// `query_positions` and `k` at `key_positions`), then [`attend_positioned`]. Absolute schemes
/// must already have been added to the hidden states ([`add_absolute_positions`]); here they only
/// check the positions.
///
/// Errors (never panics): invalid heads or scheme, buffers not matching
/// `[seq][heads][head_dim]` with `seq` = the number of positions, `v` not the shape of `k`,
/// non-finite values, masks of the wrong size, a learned position past the table
/// ([`Error::PositionOutOfRange`]), sizes above [`MAX_SCORE_ELEMENTS`] / [`MAX_BUFFER_ELEMENTS`],
/// a score that overflows `f64` (an unmasked pair whose bias or scale is too large).
#[allow(clippy::too_many_arguments)]
pub fn attention(
    heads: &HeadConfig,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    query_positions: &[u64],
    key_positions: &[u64],
    scheme: &Scheme,
    mask: &Mask,
    options: &AttentionOptions,
) -> Result<AttentionOutput> {
    check_inputs(heads, q, k, query_positions, key_positions, scheme)?;
    let (q, k) = query_key_with_scheme(heads, q, k, query_positions, key_positions, scheme)?;
    attend_positioned(
        heads,
        &q,
        &k,
        v,
        query_positions,
        key_positions,
        scheme,
        mask,
        options,
    )
}

/// Attention for queries and keys that already carry the query/key part of the scheme (RoPE
/// keys as a KV cache stores them); only the score bias of `scheme` is applied here.
///
/// For each head `h` and query `i`: scores over the keys the mask allows, softmax in `f64` with
/// the row maximum subtracted, output `Σ_j w_j v_j` accumulated in `f64`. Masked pairs are
/// skipped (weight exactly `0.0`); a row with no allowed key gets zero weights and zero output.
///
/// Errors: as [`attention`].
#[allow(clippy::too_many_arguments)]
pub fn attend_positioned(
    heads: &HeadConfig,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    query_positions: &[u64],
    key_positions: &[u64],
    scheme: &Scheme,
    mask: &Mask,
    options: &AttentionOptions,
) -> Result<AttentionOutput> {
    let Checked { seq_q, seq_k } =
        check_inputs(heads, q, k, query_positions, key_positions, scheme)?;
    check_buffer(
        "v [seq_k][n_kv_heads][head_dim]",
        v,
        seq_k,
        heads.kv_width(),
    )?;
    mask.validate(seq_q, seq_k)?;
    let scale = options.scale_for(heads.head_dim);
    check_finite("scale", scale)?;

    let d = heads.head_dim;
    let mut output = vec![0.0f32; seq_q * heads.q_width()];
    let mut weights = options
        .return_weights
        .then(|| vec![0.0f32; heads.n_q_heads * seq_q * seq_k]);
    // Allowed keys of the current row and their scores (f64).
    let mut row: Vec<(usize, f64)> = Vec::with_capacity(seq_k);
    let mut acc = vec![0.0f64; d];
    for h in 0..heads.n_q_heads {
        for (i, &pq) in query_positions.iter().enumerate() {
            row.clear();
            for (j, &pk) in key_positions.iter().enumerate() {
                if mask.allows(i, j, seq_q, seq_k, pq, pk) {
                    let b = scheme.score_bias(h, pq, pk)?;
                    let qh = q_head(heads, q, i, h);
                    let mut s = scale * dot(qh, kv_head_of(heads, k, j, h)) + b;
                    if let Some((a_k, _)) = shaw_rows(scheme, heads.head_dim, pq, pk) {
                        s += scale * dot(qh, a_k);
                    }
                    row.push((j, check_score(s, h, i, j)?));
                }
            }
            // All keys masked: zero weights and zero output (left as initialised).
            let Some(max) = row.iter().map(|&(_, s)| s).reduce(f64::max) else {
                continue;
            };
            let mut sum = 0.0f64;
            for (_, s) in row.iter_mut() {
                *s = (*s - max).exp();
                sum += *s;
            }
            // sum >= 1 (the maximum contributes exp(0) = 1).
            acc.iter_mut().for_each(|a| *a = 0.0);
            for &(j, e) in &row {
                let w = e / sum;
                for (a, &x) in acc.iter_mut().zip(kv_head_of(heads, v, j, h)) {
                    *a += w * f64::from(x);
                }
                if let Some((_, Some(a_v))) =
                    shaw_rows(scheme, d, query_positions[i], key_positions[j])
                {
                    for (a, &x) in acc.iter_mut().zip(a_v) {
                        *a += w * f64::from(x);
                    }
                }
                if let Some(ws) = weights.as_mut() {
                    ws[(h * seq_q + i) * seq_k + j] = w as f32;
                }
            }
            let oo = (i * heads.n_q_heads + h) * d;
            for (o, &a) in output[oo..oo + d].iter_mut().zip(&acc) {
                *o = a as f32;
            }
        }
    }
    Ok(AttentionOutput { output, weights })
}

/// Adds an absolute scheme to hidden states `[positions.len()][d_model]` in place:
/// `hidden[t] += PE(positions[t])`, with `d_model = hidden.len() / positions.len()`.
/// Sinusoidal rows come from [`sinusoidal::row`], learned rows from [`LearnedTable::lookup`]
/// (whose `dim` must equal `d_model`). Other schemes do not enter here and leave `hidden` as is.
///
/// Errors: `hidden` not a whole number of rows, a learned position past the table
/// ([`Error::PositionOutOfRange`]), a table width other than `d_model`, sinusoidal parameters
/// rejected by [`sinusoidal::row`].
pub fn add_absolute_positions(
    hidden: &mut [f32],
    positions: &[u64],
    scheme: &Scheme,
) -> Result<()> {
    if positions.is_empty() {
        if hidden.is_empty() {
            return Ok(());
        }
        return Err(Error::shape(
            "hidden [seq][d_model]",
            "0 values for 0 positions",
            hidden.len(),
        ));
    }
    if !hidden.len().is_multiple_of(positions.len()) || hidden.is_empty() {
        return Err(Error::shape(
            "hidden [seq][d_model]",
            format!("a positive multiple of seq = {}", positions.len()),
            hidden.len(),
        ));
    }
    let d_model = hidden.len() / positions.len();
    match scheme {
        Scheme::Sinusoidal { layout, base } => {
            for (row, &p) in hidden.chunks_exact_mut(d_model).zip(positions) {
                let pe = sinusoidal::row(p as f64, d_model, *base, *layout)?;
                for (x, e) in row.iter_mut().zip(pe) {
                    *x += e;
                }
            }
        }
        Scheme::Learned(table) => {
            if table.dim() != d_model {
                return Err(Error::shape(
                    "learned table dim (= d_model)",
                    d_model,
                    table.dim(),
                ));
            }
            for (row, &p) in hidden.chunks_exact_mut(d_model).zip(positions) {
                for (x, &e) in row.iter_mut().zip(table.lookup(p)?) {
                    *x += e;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// A toy attention layer for end-to-end checks of every scheme:
/// `hidden (+ absolute PE) → q = h·W_q, k = h·W_k, v = h·W_v → attention`.
///
/// No output projection, no normalisation: just enough for absolute schemes to reach the scores
/// the way they do in a real model.
#[derive(Debug, Clone, PartialEq)]
pub struct SingleLayer {
    heads: HeadConfig,
    d_model: usize,
    w_q: Vec<f32>,
    w_k: Vec<f32>,
    w_v: Vec<f32>,
    scheme: Scheme,
}

impl SingleLayer {
    /// A layer from its projection matrices: `w_q` is `[d_model][n_q_heads · head_dim]`, `w_k` and
    /// `w_v` are `[d_model][n_kv_heads · head_dim]`.
    ///
    /// Errors: invalid heads or scheme, `d_model = 0`, matrices of the wrong size or with
    /// non-finite values, a learned table whose `dim` is not `d_model`.
    pub fn new(
        heads: HeadConfig,
        d_model: usize,
        w_q: Vec<f32>,
        w_k: Vec<f32>,
        w_v: Vec<f32>,
        scheme: Scheme,
    ) -> Result<Self> {
        scheme.validate(&heads)?;
        if d_model == 0 {
            return Err(Error::invalid("d_model", "at least 1"));
        }
        check_buffer(
            "w_q [d_model][n_q_heads·head_dim]",
            &w_q,
            d_model,
            heads.q_width(),
        )?;
        check_buffer(
            "w_k [d_model][n_kv_heads·head_dim]",
            &w_k,
            d_model,
            heads.kv_width(),
        )?;
        check_buffer(
            "w_v [d_model][n_kv_heads·head_dim]",
            &w_v,
            d_model,
            heads.kv_width(),
        )?;
        if let Scheme::Learned(table) = &scheme {
            if table.dim() != d_model {
                return Err(Error::shape(
                    "learned table dim (= d_model)",
                    d_model,
                    table.dim(),
                ));
            }
        }
        Ok(SingleLayer {
            heads,
            d_model,
            w_q,
            w_k,
            w_v,
            scheme,
        })
    }

    /// The head configuration.
    pub fn heads(&self) -> &HeadConfig {
        &self.heads
    }

    /// The model width.
    pub fn d_model(&self) -> usize {
        self.d_model
    }

    /// The positional scheme.
    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    /// `(q, k, v)` for hidden states `[positions.len()][d_model]`: absolute positions added first
    /// ([`add_absolute_positions`]), then the projections (f64 accumulation). RoPE is not applied
    /// here (it is applied inside [`attention`]).
    ///
    /// Errors: `hidden` of the wrong size or non-finite, a learned position past the table.
    pub fn project(
        &self,
        hidden: &[f32],
        positions: &[u64],
    ) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        check_buffer(
            "hidden [seq][d_model]",
            hidden,
            positions.len(),
            self.d_model,
        )?;
        let mut h = hidden.to_vec();
        add_absolute_positions(&mut h, positions, &self.scheme)?;
        let project = |w: &[f32], out_width: usize| -> Vec<f32> {
            let mut out = Vec::with_capacity(positions.len() * out_width);
            for row in h.chunks_exact(self.d_model) {
                for c in 0..out_width {
                    let s: f64 = row
                        .iter()
                        .enumerate()
                        .map(|(r, &x)| f64::from(x) * f64::from(w[r * out_width + c]))
                        .sum();
                    out.push(s as f32);
                }
            }
            out
        };
        Ok((
            project(&self.w_q, self.heads.q_width()),
            project(&self.w_k, self.heads.kv_width()),
            project(&self.w_v, self.heads.kv_width()),
        ))
    }

    /// Self-attention over hidden states `[positions.len()][d_model]` at `positions`; output
    /// `[seq][n_q_heads][head_dim]`.
    ///
    /// Errors: as [`SingleLayer::project`] and [`attention`].
    pub fn forward(
        &self,
        hidden: &[f32],
        positions: &[u64],
        mask: &Mask,
        options: &AttentionOptions,
    ) -> Result<AttentionOutput> {
        let (q, k, v) = self.project(hidden, positions)?;
        attention(
            &self.heads,
            &q,
            &k,
            &v,
            positions,
            positions,
            &self.scheme,
            mask,
            options,
        )
    }

    /// Pre-softmax scores `[n_q_heads][seq][seq]` of self-attention ([`attention_scores`]).
    ///
    /// Errors: as [`SingleLayer::forward`].
    pub fn scores(
        &self,
        hidden: &[f32],
        positions: &[u64],
        scale: Option<f64>,
    ) -> Result<Vec<f32>> {
        let (q, k, _) = self.project(hidden, positions)?;
        attention_scores(
            &self.heads,
            &q,
            &k,
            positions,
            positions,
            &self.scheme,
            scale,
        )
    }
}
