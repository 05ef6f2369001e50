//! A key/value cache with an explicit position id per cell, batched left padding, and K-shift.
//!
//! ## Cells and positions
//! A [`KvCache`] holds one sequence's keys and values for one layer, one cell per token, layout
//! `[cells][n_kv_heads][head_dim]`. Each cell carries its own position id (`Option<u64>`):
//! `None` marks a padding cell, which is never attended. Keys are stored **as attention sees
//! them**: for RoPE already rotated by their cell's position (as Hugging Face caches do), so a
//! decode step rotates only the new token. Schemes that enter at the scores (ALiBi, T5) read the
//! stored positions when attending; absolute schemes have already been added to the hidden states
//! before the projections, so the cache just stores their keys.
//!
//! Prefill (many tokens) and a decode step (one token) are the same operation,
//! [`KvCache::forward`]: append the new keys/values, then attend the new queries against the whole
//! cache with a causal mask by position. Because each score depends only on the query, the key
//! and their positions, prefill followed by decode steps gives the outputs of one full forward.
//!
//! ## Batches with left padding
//! Batched generation pads shorter prompts on the left. With the attention mask `m` of one row
//! (`true` = real token), Hugging Face derives position ids `cumsum(m) - 1`, so every sequence
//! starts at position 0 whatever its padding ([`positions_from_padding_mask`]); padding cells get
//! no position here (`None`) and are excluded by the mask, so a padded row computes exactly what
//! the unpadded sequence computes. [`BatchKvCache`] keeps one [`KvCache`] per row.
//!
//! ## K-shift
//! Dropping or moving tokens inside a RoPE cache (context shifting, as llama.cpp's `K-shift`)
//! needs the cached keys at new positions. Rotations compose, `R(p + δ) = R(δ) R(p)`, so a key
//! cached at `p` becomes the key at `p + δ` by one more pure rotation by `δ`
//! ([`shift_keys`], [`shift_keys_per_cell`]): built with [`rope::rotation_row`], **without** the
//! attention factor (the cached key already carries it once), and leaving the dimensions past
//! `rotary_dim` untouched. Values do not depend on position and are not changed.

use std::ops::Range;

use crate::attention::{
    apply_query_key_scheme, attend_positioned, AttentionOptions, AttentionOutput, Causal,
    HeadConfig, Mask, Scheme, MAX_HEADS, MAX_HEAD_DIM,
};
use crate::error::check_cap;
use crate::rope::{self, RopeFrequencies, RopeLayout};
use crate::{Error, Result};

/// Cap on the number of cells of one cache.
pub const MAX_CELLS: usize = 1 << 22;

/// Cap on `cells · n_kv_heads · head_dim` for one cache (values per buffer).
pub const MAX_CACHE_ELEMENTS: u64 = 1 << 28;

/// Position ids of a left- (or otherwise) padded row: `cumsum(mask) - 1` for real tokens
/// (`mask[t] = true`), `None` for padding. `[false, false, true, true]` → `[None, None, Some(0),
/// Some(1)]`.
pub fn positions_from_padding_mask(mask: &[bool]) -> Vec<Option<u64>> {
    positions_from_padding_mask_at(mask, 0)
}

/// Like [`positions_from_padding_mask`] with real tokens numbered from `start` (the next position
/// of a cache that already holds `start` real tokens).
pub fn positions_from_padding_mask_at(mask: &[bool], start: u64) -> Vec<Option<u64>> {
    let mut next = start;
    mask.iter()
        .map(|&real| {
            real.then(|| {
                let p = next;
                next = next.saturating_add(1);
                p
            })
        })
        .collect()
}

/// Keys and values of one sequence for one layer, with a position id per cell.
#[derive(Debug, Clone, PartialEq)]
pub struct KvCache {
    n_kv_heads: usize,
    head_dim: usize,
    /// `[cells][n_kv_heads][head_dim]`, as attention sees them (RoPE applied).
    keys: Vec<f32>,
    /// `[cells][n_kv_heads][head_dim]`.
    values: Vec<f32>,
    /// One per cell; `None` = padding.
    positions: Vec<Option<u64>>,
}

impl KvCache {
    /// An empty cache for `n_kv_heads` heads of `head_dim`.
    ///
    /// Errors: a zero count or size, above [`MAX_HEADS`] or [`MAX_HEAD_DIM`].
    pub fn new(n_kv_heads: usize, head_dim: usize) -> Result<Self> {
        if n_kv_heads == 0 {
            return Err(Error::invalid("n_kv_heads", "at least 1 head"));
        }
        if head_dim == 0 {
            return Err(Error::invalid("head_dim", "at least 1"));
        }
        check_cap("n_kv_heads", n_kv_heads as u64, MAX_HEADS as u64)?;
        check_cap("head_dim", head_dim as u64, MAX_HEAD_DIM as u64)?;
        Ok(KvCache {
            n_kv_heads,
            head_dim,
            keys: Vec::new(),
            values: Vec::new(),
            positions: Vec::new(),
        })
    }

    /// An empty cache for the key/value heads of `heads`.
    pub fn for_heads(heads: &HeadConfig) -> Result<Self> {
        heads.validate()?;
        Self::new(heads.n_kv_heads, heads.head_dim)
    }

    /// Number of cells (padding included).
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// Whether the cache holds no cell.
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// Number of key/value heads.
    pub fn n_kv_heads(&self) -> usize {
        self.n_kv_heads
    }

    /// Size of one head vector.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// Cached keys, `[cells][n_kv_heads][head_dim]`, with RoPE applied.
    pub fn keys(&self) -> &[f32] {
        &self.keys
    }

    /// Cached values, `[cells][n_kv_heads][head_dim]`.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Position id of each cell (`None` = padding).
    pub fn positions(&self) -> &[Option<u64>] {
        &self.positions
    }

    /// One more than the largest position held, 0 for a cache without real cells: the position
    /// of the next token of this sequence.
    pub fn next_position(&self) -> u64 {
        self.positions
            .iter()
            .flatten()
            .max()
            .map_or(0, |p| p.saturating_add(1))
    }

    fn width(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// Appends cells: `keys`/`values` `[positions.len()][n_kv_heads][head_dim]` as they come out of
    /// the projections. Real cells' keys get the query/key part of `scheme` at their position
    /// (RoPE rotation); padding cells are stored as given and never attended.
    ///
    /// Errors: buffers of the wrong size or non-finite, RoPE wider than `head_dim`, a learned
    /// position past the table, more than [`MAX_CELLS`] cells or [`MAX_CACHE_ELEMENTS`] values.
    pub fn append(
        &mut self,
        keys: &[f32],
        values: &[f32],
        positions: &[Option<u64>],
        scheme: &Scheme,
    ) -> Result<()> {
        let width = self.width();
        let n = positions.len();
        for (what, buf) in [("keys", keys), ("values", values)] {
            if n.checked_mul(width) != Some(buf.len()) {
                return Err(Error::shape(
                    format!("{what} [cells][n_kv_heads][head_dim]"),
                    format!("{n} × {width}"),
                    buf.len(),
                ));
            }
            if let Some(i) = buf.iter().position(|x| !x.is_finite()) {
                return Err(Error::invalid(
                    what,
                    format!("finite values, got {} at index {i}", buf[i]),
                ));
            }
        }
        let cells = self.len().saturating_add(n);
        check_cap("cache cells", cells as u64, MAX_CELLS as u64)?;
        check_cap(
            "cache cells × n_kv_heads × head_dim",
            (cells as u64).saturating_mul(width as u64),
            MAX_CACHE_ELEMENTS,
        )?;
        let real: Vec<u64> = positions.iter().flatten().copied().collect();
        scheme.check_positions(&real)?;
        let mut new_keys = keys.to_vec();
        for (chunk, p) in new_keys.chunks_exact_mut(width).zip(positions) {
            if let Some(p) = p {
                apply_query_key_scheme(chunk, self.n_kv_heads, self.head_dim, &[*p], scheme)?;
            }
        }
        self.keys.extend_from_slice(&new_keys);
        self.values.extend_from_slice(values);
        self.positions.extend_from_slice(positions);
        Ok(())
    }

    /// Attends `queries` (`[query_positions.len()][n_q_heads][head_dim]`, raw projections) to every
    /// cell. Query `i` sees cell `j` iff both have a position and the `causal` rule allows it
    /// ([`Causal::ByPosition`] compares the position ids; [`Causal::ByIndex`] treats the queries as
    /// the last cells). A padding query (`None`) gets zero output. Keys enter as cached; queries
    /// get RoPE at their positions; ALiBi/T5 biases use the cached key positions.
    ///
    /// Errors: `heads` not matching the cache, plus the errors of
    /// [`crate::attention::attention`].
    pub fn attend(
        &self,
        heads: &HeadConfig,
        queries: &[f32],
        query_positions: &[Option<u64>],
        scheme: &Scheme,
        causal: Causal,
        options: &AttentionOptions,
    ) -> Result<AttentionOutput> {
        heads.validate()?;
        if heads.n_kv_heads != self.n_kv_heads || heads.head_dim != self.head_dim {
            return Err(Error::shape(
                "heads (n_kv_heads, head_dim) of the cache",
                format!("({}, {})", self.n_kv_heads, self.head_dim),
                format!("({}, {})", heads.n_kv_heads, heads.head_dim),
            ));
        }
        let seq_q = query_positions.len();
        let seq_k = self.len();
        // Padding gets a placeholder position 0; the mask below excludes it.
        let qpos: Vec<u64> = query_positions.iter().map(|p| p.unwrap_or(0)).collect();
        let kpos: Vec<u64> = self.positions.iter().map(|p| p.unwrap_or(0)).collect();
        let cells = seq_q
            .checked_mul(seq_k)
            .ok_or_else(|| Error::invalid("queries × cells", "a size that fits in memory"))?;
        check_cap(
            "queries × cells",
            cells as u64,
            crate::attention::MAX_SCORE_ELEMENTS,
        )?;
        let mut allowed = Vec::with_capacity(cells);
        for qp in query_positions {
            allowed.extend(self.positions.iter().map(|kp| qp.is_some() && kp.is_some()));
        }
        let mask = Mask {
            causal,
            key_padding: None,
            allowed: Some(allowed),
        };
        let mut q = queries.to_vec();
        if q.len() == seq_q.saturating_mul(heads.q_width()) {
            apply_query_key_scheme(&mut q, heads.n_q_heads, heads.head_dim, &qpos, scheme)?;
        }
        attend_positioned(
            heads,
            &q,
            &self.keys,
            &self.values,
            &qpos,
            &kpos,
            scheme,
            &mask,
            options,
        )
    }

    /// One layer step, prefill or decode: [`KvCache::append`] the new `k`/`v` at `positions`, then
    /// [`KvCache::attend`] the new `q` (same positions) with a causal mask by position.
    ///
    /// Errors: as [`KvCache::append`] and [`KvCache::attend`]; on error the cache is unchanged.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &mut self,
        heads: &HeadConfig,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        positions: &[Option<u64>],
        scheme: &Scheme,
        options: &AttentionOptions,
    ) -> Result<AttentionOutput> {
        let before = self.len();
        self.append(k, v, positions, scheme)?;
        let out = self.attend(heads, q, positions, scheme, Causal::ByPosition, options);
        if out.is_err() {
            self.truncate(before);
        }
        out
    }

    /// Keeps the first `len` cells (no-op if the cache is shorter).
    pub fn truncate(&mut self, len: usize) {
        if len < self.len() {
            let width = self.width();
            self.positions.truncate(len);
            self.keys.truncate(len * width);
            self.values.truncate(len * width);
        }
    }

    /// Removes the cells in `cells` (later cells move down; their positions are unchanged: use
    /// [`shift_keys`] to close the gap).
    ///
    /// Errors: a range outside `0..len` or reversed.
    pub fn remove(&mut self, cells: Range<usize>) -> Result<()> {
        self.check_range(&cells)?;
        let width = self.width();
        self.positions.drain(cells.clone());
        self.keys.drain(cells.start * width..cells.end * width);
        self.values.drain(cells.start * width..cells.end * width);
        Ok(())
    }

    fn check_range(&self, cells: &Range<usize>) -> Result<()> {
        if cells.start > cells.end || cells.end > self.len() {
            return Err(Error::invalid(
                "cells",
                format!(
                    "a range inside 0..{}, got {}..{}",
                    self.len(),
                    cells.start,
                    cells.end
                ),
            ));
        }
        Ok(())
    }
}

/// Re-rotates the cached RoPE keys of `cells` by `delta` positions and adds `delta` to their
/// position ids: the keys become (up to f32 rounding) what RoPE would give at `p + delta`.
///
/// The rotation is [`rope::rotation_row`] (angle `δ·θ_i`, no attention factor: the cached key
/// already carries it); dimensions past `rotary_dim` are not touched, values not changed, padding
/// cells skipped.
///
/// Errors: a range outside the cache, `rotary_dim > head_dim`, a new position below 0 or above
/// `u64::MAX`; on error nothing is changed.
pub fn shift_keys(
    cache: &mut KvCache,
    cells: Range<usize>,
    delta: i64,
    freqs: &RopeFrequencies,
    layout: RopeLayout,
) -> Result<()> {
    cache.check_range(&cells)?;
    let mut deltas = vec![0i64; cache.len()];
    deltas[cells].iter_mut().for_each(|d| *d = delta);
    shift_keys_per_cell(cache, &deltas, freqs, layout)
}

/// [`shift_keys`] with one delta per cell (`deltas.len() == cache.len()`; `0` leaves a cell
/// bit-identical).
///
/// Errors: as [`shift_keys`], and `deltas` of the wrong length.
pub fn shift_keys_per_cell(
    cache: &mut KvCache,
    deltas: &[i64],
    freqs: &RopeFrequencies,
    layout: RopeLayout,
) -> Result<()> {
    if deltas.len() != cache.len() {
        return Err(Error::shape(
            "deltas (one per cell)",
            cache.len(),
            deltas.len(),
        ));
    }
    if freqs.rotary_dim() > cache.head_dim {
        return Err(Error::invalid(
            "rotary_dim",
            format!(
                "at most head_dim = {}, got {}",
                cache.head_dim,
                freqs.rotary_dim()
            ),
        ));
    }
    // Check every new position before changing anything.
    let mut new_positions = cache.positions.clone();
    for (p, &d) in new_positions.iter_mut().zip(deltas) {
        if let Some(pos) = p {
            *pos = pos.checked_add_signed(d).ok_or_else(|| {
                Error::invalid(
                    "delta",
                    format!("a shift keeping position {pos} inside 0..=u64::MAX, got {d}"),
                )
            })?;
        }
    }
    let width = cache.width();
    let pairs = freqs.pairs();
    let mut cos = vec![0.0f32; pairs];
    let mut sin = vec![0.0f32; pairs];
    let mut current: Option<i64> = None;
    for ((chunk, &d), p) in cache
        .keys
        .chunks_exact_mut(width)
        .zip(deltas)
        .zip(&cache.positions)
    {
        if d == 0 || p.is_none() {
            continue;
        }
        if current != Some(d) {
            rope::rotation_row(freqs, d, &mut cos, &mut sin)?;
            current = Some(d);
        }
        rope::apply_rotary_heads(chunk, cache.n_kv_heads, cache.head_dim, &cos, &sin, layout)?;
    }
    cache.positions = new_positions;
    Ok(())
}

/// Result of one [`BatchKvCache::forward`] step.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchOutput {
    /// `[batch][seq][n_q_heads][head_dim]`; zero rows for padding tokens.
    pub output: Vec<f32>,
    /// Position id given to each new token, `[batch][seq]` (`None` = padding).
    pub positions: Vec<Option<u64>>,
    /// When asked for: `[batch][n_q_heads][seq][cells]` (all rows hold the same number of cells).
    pub weights: Option<Vec<f32>>,
}

/// One [`KvCache`] per row of a batch; every step appends the same number of cells to each row
/// (a rectangular, padded block), so all caches have the same length.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchKvCache {
    caches: Vec<KvCache>,
}

impl BatchKvCache {
    /// `batch` empty caches.
    ///
    /// Errors: `batch = 0`, invalid heads.
    pub fn new(batch: usize, heads: &HeadConfig) -> Result<Self> {
        if batch == 0 {
            return Err(Error::invalid("batch", "at least 1 row"));
        }
        check_cap("batch", batch as u64, MAX_CELLS as u64)?;
        let cache = KvCache::for_heads(heads)?;
        Ok(BatchKvCache {
            caches: vec![cache; batch],
        })
    }

    /// Number of rows.
    pub fn batch(&self) -> usize {
        self.caches.len()
    }

    /// The cache of each row.
    pub fn caches(&self) -> &[KvCache] {
        &self.caches
    }

    /// One step for the whole batch: `q` `[batch][seq][n_q_heads][head_dim]`, `k`/`v`
    /// `[batch][seq][n_kv_heads][head_dim]`, `attention_mask` `[batch][seq]` (`true` = real token,
    /// `false` = padding, typically on the left of the prompt). Real tokens of row `b` get
    /// positions `next_position(b) + cumsum(mask) - 1` ([`positions_from_padding_mask_at`]);
    /// then each row runs [`KvCache::forward`].
    ///
    /// Errors: buffers of the wrong size (`seq` is `attention_mask.len() / batch`), plus the
    /// errors of [`KvCache::forward`]; on error no cache is changed.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &mut self,
        heads: &HeadConfig,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        attention_mask: &[bool],
        scheme: &Scheme,
        options: &AttentionOptions,
    ) -> Result<BatchOutput> {
        heads.validate()?;
        let batch = self.batch();
        if !attention_mask.len().is_multiple_of(batch) {
            return Err(Error::shape(
                "attention_mask [batch][seq]",
                format!("a multiple of batch = {batch}"),
                attention_mask.len(),
            ));
        }
        let seq = attention_mask.len() / batch;
        let qw = seq.saturating_mul(heads.q_width());
        let kw = seq.saturating_mul(heads.kv_width());
        for (what, buf, w) in [("q", q, qw), ("k", k, kw), ("v", v, kw)] {
            if batch.checked_mul(w) != Some(buf.len()) {
                return Err(Error::shape(
                    format!("{what} [batch][seq][heads][head_dim]"),
                    format!("{batch} × {w}"),
                    buf.len(),
                ));
            }
        }
        let mut updated = self.caches.clone();
        let mut output = Vec::with_capacity(q.len());
        let mut positions = Vec::with_capacity(attention_mask.len());
        let mut weights = options.return_weights.then(Vec::new);
        for (b, cache) in updated.iter_mut().enumerate() {
            let row_mask = &attention_mask[b * seq..(b + 1) * seq];
            let pos = positions_from_padding_mask_at(row_mask, cache.next_position());
            let out = cache.forward(
                heads,
                &q[b * qw..(b + 1) * qw],
                &k[b * kw..(b + 1) * kw],
                &v[b * kw..(b + 1) * kw],
                &pos,
                scheme,
                options,
            )?;
            output.extend_from_slice(&out.output);
            if let (Some(all), Some(w)) = (weights.as_mut(), out.weights) {
                all.extend_from_slice(&w);
            }
            positions.extend_from_slice(&pos);
        }
        self.caches = updated;
        Ok(BatchOutput {
            output,
            positions,
            weights,
        })
    }
}
