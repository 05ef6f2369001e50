//! Fast kernels: RoPE applied in place, cos/sin tables, K-shift, and the streaming kernel that
//! measures the memory-bandwidth limit they are judged against.
//!
//! Everything here has a plain counterpart elsewhere in the crate and is tested against it over
//! random sweeps (`tests/kernels.rs`):
//!
//! | fast | reference |
//! |---|---|
//! | [`rope_inplace`], [`rope_qk_inplace`] | [`rope::apply_rotary_seq`] |
//! | [`rope_table`], [`fill_rope_table`] | [`RopeTable::new`] |
//! | [`kshift_inplace`] | [`kv_cache::shift_keys_per_cell`](crate::kv_cache::shift_keys_per_cell) |
//!
//! Storage is `f32`, `half::f16` or `half::bf16` ([`Element`]); the arithmetic is always f32, and
//! in f32 with the same cos/sin row the result is bit-identical to the reference (same
//! operations, no fused multiply-add). Loops are written so that LLVM vectorizes them and are
//! compiled for AVX-512, AVX2+FMA and NEON, picked at run time (`multiversion`). Work is split
//! over rayon's threads only above [`PARALLEL_THRESHOLD`] elements, so a one-token decode step
//! runs on the calling thread with no hand-off.
//!
//! cos/sin rows come from a [`RopeTable`] (looked up by position) or are computed from
//! [`RopeFrequencies`] once per token and reused across all of its heads (and across q and k
//! in [`rope_qk_inplace`]). In `exact` precision they are computed with the angle formed and
//! reduced in f64 and a vectorized f32 polynomial (error ≤ 3e-7, see `trig.rs`); in `hf`
//! precision with the reference's float32 arithmetic.

mod element;
pub mod gemm;
pub mod hf_eager;
mod rotate;
mod stream;
mod trig;

use rayon::prelude::*;

pub use element::{Dtype, Element};
pub use stream::stream_inplace;

use crate::error::check_cap;
use crate::rope::{self, Precision, RopeFrequencies, RopeLayout, RopeTable, MAX_TABLE_ENTRIES};
use crate::{Error, Result};

/// Element count (all buffers of a call together) from which work is split across threads.
/// Below it (a decode step is ~5k elements) the call runs on the calling thread.
pub const PARALLEL_THRESHOLD: usize = 1 << 16;

/// Elements per parallel task (about 256 KiB of f32): large enough to amortize the hand-off,
/// small enough to balance two to a few dozen threads.
const TASK_ELEMENTS: usize = 1 << 18;

/// Axis order of a q or k buffer.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum AxisOrder {
    /// `(batch, seq, heads, head_dim)`: the layout of a projection's output (llama.cpp, vLLM).
    #[default]
    Bshd,
    /// `(batch, heads, seq, head_dim)`: Hugging Face after `transpose(1, 2)`, candle.
    Bhsd,
}

/// Shape of the q/k buffers of one call (the head count is given per buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QkShape {
    /// Sequences in the batch.
    pub batch: usize,
    /// Tokens per sequence.
    pub seq: usize,
    /// Dimensions per head (`rotary_dim ≤ head_dim`; the rest passes through).
    pub head_dim: usize,
    /// Axis order of the buffers.
    pub order: AxisOrder,
}

/// Where the cos/sin rows come from.
#[derive(Debug, Clone, Copy)]
pub enum CosSin<'a> {
    /// Rows of a table whose positions are consecutive (as [`RopeTable::range`] builds): the row
    /// for position `p` is row `p − positions[0]`. A position with no row is an error.
    Table(&'a RopeTable),
    /// Computed once per token from the frequencies (attention factor applied, as in the table).
    Freqs(&'a RopeFrequencies),
}

impl CosSin<'_> {
    fn pairs(&self) -> usize {
        match self {
            CosSin::Table(t) => t.pairs,
            CosSin::Freqs(f) => f.pairs(),
        }
    }
}

/// Rotates `x` (queries or keys, `heads` per token) in place at the given positions.
///
/// `positions` holds one position per token: `seq` values shared by every sequence of the
/// batch, or `batch · seq` values (row-major), e.g. `cumsum(mask) − 1` for a left-padded batch.
/// The first `rotary_dim = 2 · pairs` dims of each head rotate in `layout`; the rest are not
/// touched. On error nothing is changed.
pub fn rope_inplace<T: Element>(
    x: &mut [T],
    heads: usize,
    shape: &QkShape,
    positions: &[u64],
    rows: CosSin<'_>,
    layout: RopeLayout,
) -> Result<()> {
    check_buffer("x", x.len(), heads, shape)?;
    let plan = Plan::new(shape, positions, rows, layout)?;
    plan.run(x, heads, None)
}

/// [`rope_inplace`] on queries and keys together: each token's cos/sin row is looked up or
/// computed once and applied to its `q_heads` query heads and `kv_heads` key heads.
#[allow(clippy::too_many_arguments)]
pub fn rope_qk_inplace<T: Element>(
    q: &mut [T],
    q_heads: usize,
    k: &mut [T],
    kv_heads: usize,
    shape: &QkShape,
    positions: &[u64],
    rows: CosSin<'_>,
    layout: RopeLayout,
) -> Result<()> {
    check_buffer("q", q.len(), q_heads, shape)?;
    check_buffer("k", k.len(), kv_heads, shape)?;
    let plan = Plan::new(shape, positions, rows, layout)?;
    plan.run(q, q_heads, Some((k, kv_heads)))
}

/// Builds the `exact` or `hf` table for `positions` like [`RopeTable::new`], vectorized and, above
/// [`PARALLEL_THRESHOLD`] entries, on rayon's threads. `exact` values are within 3e-7 of the
/// reference's (which is within f32 rounding of the true value); `hf` values are the reference's,
/// bit for bit.
pub fn rope_table(freqs: &RopeFrequencies, positions: &[u64]) -> Result<RopeTable> {
    let pairs = freqs.pairs();
    check_cap(
        "positions × pairs",
        positions.len() as u64 * pairs as u64,
        MAX_TABLE_ENTRIES,
    )?;
    let mut cos = vec![0.0f32; positions.len() * pairs];
    let mut sin = vec![0.0f32; positions.len() * pairs];
    fill_rope_table(freqs, positions, &mut cos, &mut sin)?;
    Ok(RopeTable {
        positions: positions.to_vec(),
        pairs,
        cos,
        sin,
    })
}

/// Fills caller-owned `cos`/`sin` buffers (`positions.len() × pairs` each, row-major) with the
/// rows of [`rope_table`]: the way to rebuild a table without allocating.
pub fn fill_rope_table(
    freqs: &RopeFrequencies,
    positions: &[u64],
    cos: &mut [f32],
    sin: &mut [f32],
) -> Result<()> {
    let pairs = freqs.pairs();
    let n = positions.len() * pairs;
    if cos.len() != n || sin.len() != n {
        return Err(Error::shape(
            "cos/sin table (positions × pairs)",
            n,
            format!("{}/{}", cos.len(), sin.len()),
        ));
    }
    if pairs == 0 {
        return Ok(());
    }
    let rows_per_task = (TASK_ELEMENTS / pairs).max(1);
    let fill = |(ps, (c, s)): (&[u64], (&mut [f32], &mut [f32]))| {
        for ((&p, c), s) in ps
            .iter()
            .zip(c.chunks_exact_mut(pairs))
            .zip(s.chunks_exact_mut(pairs))
        {
            fill_row(freqs, p as f64, c, s);
        }
    };
    if n < PARALLEL_THRESHOLD {
        fill((positions, (cos, sin)));
    } else {
        positions
            .par_chunks(rows_per_task)
            .zip(
                cos.par_chunks_mut(rows_per_task * pairs)
                    .zip(sin.par_chunks_mut(rows_per_task * pairs)),
            )
            .for_each(fill);
    }
    Ok(())
}

/// Re-rotates cached keys in place by one signed position delta per cell (K-shift).
///
/// `keys` is `(cells, kv_heads, head_dim)` as a KV cache stores them; cell `c` is rotated by
/// `deltas[c]` positions (a pure rotation, [`rope::rotation_row`]: the attention factor already
/// folded into the keys is not applied again); cells with delta 0 are left bit-identical, and
/// dims past `rotary_dim` are not touched. One cos/sin row is computed per distinct delta.
pub fn kshift_inplace<T: Element>(
    keys: &mut [T],
    kv_heads: usize,
    head_dim: usize,
    deltas: &[i64],
    freqs: &RopeFrequencies,
    layout: RopeLayout,
) -> Result<()> {
    let width = kv_heads
        .checked_mul(head_dim)
        .filter(|&w| w > 0)
        .ok_or_else(|| Error::invalid("kv_heads × head_dim", "a positive size"))?;
    if deltas.len().checked_mul(width) != Some(keys.len()) {
        return Err(Error::shape(
            "keys (cells × kv_heads × head_dim)",
            format!("{} × {kv_heads} × {head_dim}", deltas.len()),
            keys.len(),
        ));
    }
    check_rotary_dim(freqs.rotary_dim(), head_dim)?;
    let pairs = freqs.pairs();
    // One row per distinct non-zero delta; each cell then finds its row by binary search.
    let mut distinct: Vec<i64> = deltas.iter().copied().filter(|&d| d != 0).collect();
    distinct.sort_unstable();
    distinct.dedup();
    if pairs == 0 || distinct.is_empty() {
        return Ok(());
    }
    let mut cos = vec![0.0f32; distinct.len() * pairs];
    let mut sin = vec![0.0f32; distinct.len() * pairs];
    for ((&d, c), s) in distinct
        .iter()
        .zip(cos.chunks_exact_mut(pairs))
        .zip(sin.chunks_exact_mut(pairs))
    {
        trig::cos_sin_row(&freqs.inv_freq, d as f64, 1.0, c, s);
    }
    let cells_per_task = (TASK_ELEMENTS / width).max(1);
    let work = |(ds, cells): (&[i64], &mut [T])| {
        let mut scratch = Scratch::new();
        let mut last: Option<(i64, usize)> = None;
        for (&d, cell) in ds.iter().zip(cells.chunks_exact_mut(width)) {
            if d == 0 {
                continue;
            }
            let r = match last {
                Some((ld, r)) if ld == d => r,
                _ => {
                    let r = distinct.binary_search(&d).unwrap_or(0);
                    last = Some((d, r));
                    r
                }
            };
            let (c, s) = (&cos[r * pairs..][..pairs], &sin[r * pairs..][..pairs]);
            rotate_vectors(cell, head_dim, c, s, layout, &mut scratch);
        }
    };
    if keys.len() < PARALLEL_THRESHOLD {
        work((deltas, keys));
    } else {
        deltas
            .par_chunks(cells_per_task)
            .zip(keys.par_chunks_mut(cells_per_task * width))
            .for_each(work);
    }
    Ok(())
}

/// One row in the frequencies' precision (exact: fast f64-reduced path; hf: the reference).
fn fill_row(freqs: &RopeFrequencies, x: f64, cos: &mut [f32], sin: &mut [f32]) {
    match freqs.precision {
        Precision::Exact => trig::cos_sin_row(&freqs.inv_freq, x, freqs.attention_factor, cos, sin),
        Precision::Hf(_) | Precision::HfPolar(_) => {
            // Buffers are sized by the caller; the reference cannot fail here.
            let _ = rope::cos_sin_row(freqs, x as u64, cos, sin);
        }
    }
}

fn check_rotary_dim(rotary_dim: usize, head_dim: usize) -> Result<()> {
    if rotary_dim > head_dim {
        return Err(Error::invalid(
            "rotary_dim",
            format!("at most head_dim = {head_dim}, got {rotary_dim}"),
        ));
    }
    Ok(())
}

fn check_buffer(what: &str, len: usize, heads: usize, shape: &QkShape) -> Result<()> {
    if heads == 0 || shape.head_dim == 0 {
        return Err(Error::invalid(
            format!("{what} heads × head_dim"),
            "a positive size",
        ));
    }
    let expected = [shape.batch, shape.seq, heads, shape.head_dim]
        .iter()
        .try_fold(1usize, |a, &b| a.checked_mul(b));
    if expected != Some(len) {
        return Err(Error::shape(
            format!("{what} (batch × seq × heads × head_dim)"),
            format!(
                "{} × {} × {heads} × {}",
                shape.batch, shape.seq, shape.head_dim
            ),
            len,
        ));
    }
    Ok(())
}

/// f32 scratch for widening f16/bf16 head vectors. It lives in a thread-local buffer that grows
/// once per thread, so a decode step does not allocate (f32 never touches it).
struct Scratch;

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Scratch {
    fn new() -> Self {
        Scratch
    }

    /// Runs `f` with `n` floats of this thread's scratch.
    fn with<R>(&mut self, n: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
        SCRATCH.with(|cell| {
            let mut buf = cell.borrow_mut();
            if buf.len() < n {
                buf.resize(n, 0.0);
            }
            f(&mut buf[..n])
        })
    }
}

/// Rotates the contiguous head vectors of `xs` (`head_dim` each) by one row.
#[inline]
fn rotate_vectors<T: Element>(
    xs: &mut [T],
    head_dim: usize,
    cos: &[f32],
    sin: &[f32],
    layout: RopeLayout,
    scratch: &mut Scratch,
) {
    let rd = 2 * cos.len();
    if let Some(xs) = T::as_f32_mut(xs) {
        rotate::rotate_many(xs, head_dim, cos, sin, layout);
        return;
    }
    if let Some(bits) = T::as_bf16_bits_mut(xs) {
        rotate::rotate_many_bf16(bits, head_dim, cos, sin, layout);
        return;
    }
    if T::fused_rotate(xs, head_dim, cos, sin, layout) {
        return;
    }
    if rd == head_dim {
        // Full rotary: the vectors are contiguous, so widen, rotate and narrow them in one pass
        // each (one conversion call per token instead of two per head).
        scratch.with(xs.len(), |buf| {
            T::widen(xs, buf);
            rotate::rotate_many(buf, head_dim, cos, sin, layout);
            T::narrow(buf, xs);
        });
        return;
    }
    // Partial rotary: convert only the rotary block of each head (pass-through dims keep their
    // bits, NaN payloads included).
    scratch.with(rd, |buf| {
        for x in xs.chunks_exact_mut(head_dim) {
            T::widen(&x[..rd], buf);
            rotate::rotate(buf, cos, sin, layout);
            T::narrow(buf, &mut x[..rd]);
        }
    });
}

/// Where the rows of one call come from once positions are checked.
enum Rows<'a> {
    /// `table` rows, row of position `p` is `p - start`.
    Table { table: &'a RopeTable, start: u64 },
    /// Computed per token.
    Freqs(&'a RopeFrequencies),
    /// Computed up front, one row per token (batch · seq rows).
    PerToken { cos: Vec<f32>, sin: Vec<f32> },
}

struct Plan<'a> {
    rows: Rows<'a>,
    positions: &'a [u64],
    shape: QkShape,
    pairs: usize,
    layout: RopeLayout,
}

impl<'a> Plan<'a> {
    fn new(
        shape: &QkShape,
        positions: &'a [u64],
        rows: CosSin<'a>,
        layout: RopeLayout,
    ) -> Result<Self> {
        let tokens = shape.batch.saturating_mul(shape.seq);
        if positions.len() != shape.seq && positions.len() != tokens {
            return Err(Error::shape(
                "positions (seq or batch × seq)",
                format!("{} or {tokens}", shape.seq),
                positions.len(),
            ));
        }
        let pairs = rows.pairs();
        check_rotary_dim(2 * pairs, shape.head_dim)?;
        let rows = match rows {
            CosSin::Table(table) => {
                if table.cos.len() != table.len() * pairs || table.sin.len() != table.cos.len() {
                    return Err(Error::shape(
                        "table cos/sin (rows × pairs)",
                        table.len() * pairs,
                        format!("{}/{}", table.cos.len(), table.sin.len()),
                    ));
                }
                let start = table.positions.first().copied().unwrap_or(0);
                for &p in positions {
                    let ok = p
                        .checked_sub(start)
                        .and_then(|i| usize::try_from(i).ok())
                        .and_then(|i| table.positions.get(i))
                        == Some(&p);
                    if !ok {
                        return Err(Error::invalid(
                            "positions",
                            format!(
                                "positions with a row in the table (consecutive rows from {start}, {} rows), got {p}",
                                table.len()
                            ),
                        ));
                    }
                }
                Rows::Table { table, start }
            }
            CosSin::Freqs(f) if shape.order == AxisOrder::Bhsd && shape.seq > 1 && pairs > 0 => {
                // Heads are not adjacent in this order: compute each token's row once, up front.
                let toks = positions.len();
                check_cap(
                    "tokens × pairs",
                    toks as u64 * pairs as u64,
                    MAX_TABLE_ENTRIES,
                )?;
                let mut cos = vec![0.0; toks * pairs];
                let mut sin = vec![0.0; toks * pairs];
                fill_rope_table(f, positions, &mut cos, &mut sin)?;
                Rows::PerToken { cos, sin }
            }
            CosSin::Freqs(f) => Rows::Freqs(f),
        };
        Ok(Plan {
            rows,
            positions,
            shape: *shape,
            pairs,
            layout,
        })
    }

    /// Position of token `t` of sequence `b`, and the index of its per-token row.
    #[inline]
    fn token(&self, b: usize, t: usize) -> (u64, usize) {
        let i = if self.positions.len() == self.shape.seq {
            t
        } else {
            b * self.shape.seq + t
        };
        (self.positions[i], i)
    }

    /// Calls `f` with the row of token `(b, t)`; `buf` holds computed rows.
    #[inline]
    fn with_row<R>(
        &self,
        b: usize,
        t: usize,
        buf: &mut (Vec<f32>, Vec<f32>),
        f: impl FnOnce(&[f32], &[f32]) -> R,
    ) -> R {
        let (p, i) = self.token(b, t);
        let n = self.pairs;
        match &self.rows {
            Rows::Table { table, start } => {
                let r = (p - start) as usize * n;
                f(&table.cos[r..r + n], &table.sin[r..r + n])
            }
            Rows::PerToken { cos, sin } => f(&cos[i * n..(i + 1) * n], &sin[i * n..(i + 1) * n]),
            Rows::Freqs(freqs) => {
                buf.0.resize(n, 0.0);
                buf.1.resize(n, 0.0);
                fill_row(freqs, p as f64, &mut buf.0, &mut buf.1);
                f(&buf.0, &buf.1)
            }
        }
    }

    fn run<T: Element>(
        &self,
        x: &mut [T],
        heads: usize,
        k: Option<(&mut [T], usize)>,
    ) -> Result<()> {
        if self.pairs == 0 || x.is_empty() {
            return Ok(());
        }
        let total = x.len() + k.as_ref().map_or(0, |(k, _)| k.len());
        let parallel = total >= PARALLEL_THRESHOLD;
        // With one token per sequence both orders are the same memory layout; the token-major
        // path handles all heads of a token with one row look-up (the decode step).
        match self.shape.order {
            _ if self.shape.seq == 1 => self.run_bshd(x, heads, k, parallel),
            AxisOrder::Bshd => self.run_bshd(x, heads, k, parallel),
            AxisOrder::Bhsd => {
                self.run_bhsd(x, heads, parallel);
                if let Some((k, kv_heads)) = k {
                    self.run_bhsd(k, kv_heads, parallel);
                }
            }
        }
        Ok(())
    }

    /// Tokens are contiguous: one task per run of tokens, one row per token for all its heads.
    fn run_bshd<T: Element>(
        &self,
        x: &mut [T],
        heads: usize,
        k: Option<(&mut [T], usize)>,
        parallel: bool,
    ) {
        let d = self.shape.head_dim;
        let (xw, (k, kw)) = (heads * d, k.map_or((None, 0), |(k, h)| (Some(k), h * d)));
        let per_task = (TASK_ELEMENTS / (xw + kw)).max(1);
        let work = |first: usize, xs: &mut [T], ks: Option<&mut [T]>| {
            let mut buf = (Vec::new(), Vec::new());
            let mut scratch = Scratch::new();
            let mut ks = ks.map(|k| k.chunks_exact_mut(kw));
            for (j, xt) in xs.chunks_exact_mut(xw).enumerate() {
                let tok = first + j;
                let (b, t) = (tok / self.shape.seq, tok % self.shape.seq);
                let kt = ks.as_mut().and_then(|it| it.next());
                self.with_row(b, t, &mut buf, |c, s| {
                    rotate_vectors(xt, d, c, s, self.layout, &mut scratch);
                    if let Some(kt) = kt {
                        rotate_vectors(kt, d, c, s, self.layout, &mut scratch);
                    }
                });
            }
        };
        match (parallel, k) {
            (false, k) => work(0, x, k),
            (true, None) => x
                .par_chunks_mut(per_task * xw)
                .enumerate()
                .for_each(|(i, xs)| work(i * per_task, xs, None)),
            (true, Some(k)) => x
                .par_chunks_mut(per_task * xw)
                .zip(k.par_chunks_mut(per_task * kw))
                .enumerate()
                .for_each(|(i, (xs, ks))| work(i * per_task, xs, Some(ks))),
        }
    }

    /// Each (sequence, head) plane holds `seq` consecutive vectors; tasks cover runs of vectors.
    fn run_bhsd<T: Element>(&self, x: &mut [T], heads: usize, parallel: bool) {
        let d = self.shape.head_dim;
        let seq = self.shape.seq;
        let per_task = (TASK_ELEMENTS / d).max(1);
        let work = |first: usize, xs: &mut [T]| {
            let mut buf = (Vec::new(), Vec::new());
            let mut scratch = Scratch::new();
            for (j, v) in xs.chunks_exact_mut(d).enumerate() {
                let vi = first + j;
                let (plane, t) = (vi / seq, vi % seq);
                self.with_row(plane / heads, t, &mut buf, |c, s| {
                    rotate_vectors(v, d, c, s, self.layout, &mut scratch)
                });
            }
        };
        if parallel {
            x.par_chunks_mut(per_task * d)
                .enumerate()
                .for_each(|(i, xs)| work(i * per_task, xs));
        } else {
            work(0, x);
        }
    }
}
