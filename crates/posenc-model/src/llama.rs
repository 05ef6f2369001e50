//! A Llama-family forward pass in `f32` (SmolLM2, Llama 2/3 layouts stored as GGUF `llama`).
//!
//! Per layer, for hidden states `x` (one row per new token):
//!
//! ```text
//! h = RMSNorm(x) ⊙ attn_norm            RMSNorm(x) = x / sqrt(mean(x²) + eps)
//! q, k, v = h·Wqᵀ, h·Wkᵀ, h·Wvᵀ          (n_heads, n_kv_heads, n_kv_heads heads of head_dim)
//! q, k   = RoPE(q, pos), RoPE(k, pos)     rotation from posenc::rope, explicit position per token
//! a      = softmax(q·kᵀ / sqrt(head_dim) + mask) · v    GQA: q head h reads kv head h / (n_heads / n_kv_heads)
//! x      = x + a·Woᵀ
//! h      = RMSNorm(x) ⊙ ffn_norm
//! x      = x + (silu(h·Wgateᵀ) ⊙ h·Wupᵀ)·Wdownᵀ
//! ```
//!
//! then `logits = RMSNorm(x) ⊙ output_norm · Wₒᵤₜᵀ`, where `Wₒᵤₜ` is `output.weight` or, when the file
//! has none (tied embeddings, as in SmolLM2), `token_embd.weight`.
//!
//! # RoPE layout of GGUF `llama` weights
//! Hugging Face Llama checkpoints rotate pairs `(x[i], x[i + d/2])` ("half split", `rotate_half`).
//! llama.cpp's converter permutes the rows of `Wq` and `Wk` within each head so that HF row
//! `half·d/2 + i` lands at row `2i + half`. On the stored weights the HF pairs are therefore the
//! adjacent dims `(x[2i], x[2i+1])`, and the rotation must use the **interleaved** (GPT-J) layout,
//! as llama.cpp does. Since q and k are permuted alike, `q·k` equals the HF value (up to summation
//! order) and logits match HF. Using the half-split layout on these weights is a real bug that
//! [`RopeSetup::layout`] lets diagnostics reproduce.
//!
//! # Cache and positions
//! [`KvCache`] stores rotated keys and values in arrival order, each with its position id and a
//! padding flag. The causal mask is by arrival order (token `i` of a call sees every cached entry
//! and the new tokens `≤ i`); position ids only feed RoPE, so offsets, gaps and left padding
//! (`positions = cumsum(mask) − 1`, padding keys masked out) all work. Weight matrices stay in
//! their GGUF storage type ([`crate::quant`]); activations, caches and attention are `f32`.

use crate::error::{Error, Result};
use crate::gguf::GgufFile;
use crate::matmul::{dot, exp_shifted};
use crate::quant::QMatrix;
use posenc::kernels::gemm::{gemm, MatRef};
use posenc::rope;
use rayon::prelude::*;

pub use rope::{Precision, RopeLayout, RopeParams};

/// Most tokens a [`KvCache`] holds (keys and values for 32K tokens are ≈ 1.4 GiB for SmolLM2).
pub const MAX_CACHE_TOKENS: usize = 1 << 15;
/// Query rows per attention block (bounds the score buffer to `block × keys`).
const QUERY_BLOCK: usize = 128;
/// Query blocks up to this many rows use dot products instead of GEMM (decode steps).
const SMALL_ROWS: usize = 2;
/// Bins of [`HeadStats::distance_mass`]: distance 0, then `[2^(b-1), 2^b)` for bin `b`, the last
/// bin holding everything from 2^15 on (the cache holds at most 2^15 tokens).
pub const DISTANCE_BINS: usize = 17;

/// The bin of [`HeadStats::distance_mass`] that a query–key distance falls in.
pub fn distance_bin(distance: usize) -> usize {
    if distance == 0 {
        0
    } else {
        ((usize::BITS - distance.leading_zeros()) as usize).min(DISTANCE_BINS - 1)
    }
}

/// Attention statistics of one head of one layer, summed over the observed queries.
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
    fn merge(&mut self, o: &HeadStats) {
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
    fn add_row(&mut self, w: &[f32], inv: f32) {
        let q = w.len() - 1;
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

/// Collects [`HeadStats`] for every layer and head during [`Llama::forward_hidden`]. Only the
/// attention of a pass that is given a probe computes them; the normal path is unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionProbe {
    /// Queries whose arrival index in the cache is below this are not counted.
    pub query_from: usize,
    /// Heads per layer.
    pub n_heads: usize,
    /// `n_layers × n_heads` statistics, layer-major.
    pub stats: Vec<HeadStats>,
}

impl AttentionProbe {
    /// An empty probe for `llama` that counts queries from arrival index `query_from` on.
    pub fn new(config: &LlamaConfig, query_from: usize) -> AttentionProbe {
        AttentionProbe {
            query_from,
            n_heads: config.n_heads,
            stats: vec![HeadStats::default(); config.n_layers * config.n_heads],
        }
    }

    /// Statistics of `head` in `layer`.
    pub fn head(&self, layer: usize, head: usize) -> &HeadStats {
        &self.stats[layer * self.n_heads + head]
    }
}

/// Hyper-parameters read from `llama.*` metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    /// Number of transformer blocks.
    pub n_layers: usize,
    /// Hidden size.
    pub dim: usize,
    /// MLP inner size.
    pub ffn_dim: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (GQA groups).
    pub n_kv_heads: usize,
    /// Size of one head (`dim / n_heads`).
    pub head_dim: usize,
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: usize,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// `llama.rope.freq_base`.
    pub rope_base: f64,
    /// `llama.rope.dimension_count` (rotated dims per head).
    pub rope_dim: usize,
    /// `llama.context_length` (training context).
    pub context_length: usize,
}

/// How RoPE is applied: which frequencies, which pair layout, which arithmetic. Public so that
/// diagnostics can run the model with a wrong layout or a dropped scaling on purpose.
#[derive(Debug, Clone, PartialEq)]
pub struct RopeSetup {
    /// Base, rotated dims and scaling.
    pub params: RopeParams,
    /// Pair layout (interleaved for GGUF `llama` weights; see the module docs).
    pub layout: RopeLayout,
    /// Frequency/angle arithmetic ([`Precision::Hf`] reproduces Hugging Face's float32 tables).
    pub precision: Precision,
}

struct Layer {
    attn_norm: Vec<f32>,
    wq: QMatrix,
    wk: QMatrix,
    wv: QMatrix,
    wo: QMatrix,
    ffn_norm: Vec<f32>,
    w_gate: QMatrix,
    w_up: QMatrix,
    w_down: QMatrix,
}

/// A Llama-family model whose matrices stay in their GGUF storage type ([`QMatrix`]).
pub struct Llama {
    /// Hyper-parameters.
    pub config: LlamaConfig,
    /// RoPE used by [`Llama::forward`]; defaults to the file's base, interleaved layout, HF precision.
    pub rope: RopeSetup,
    layers: Vec<Layer>,
    token_embd: QMatrix,
    output_norm: Vec<f32>,
    /// `None` = tied to `token_embd`.
    output: Option<QMatrix>,
}

/// Keys and values of every layer with the position id and padding flag of each cached token.
#[derive(Debug, Clone)]
pub struct KvCache {
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    positions: Vec<u64>,
    attend: Vec<bool>,
    kv_dim: usize,
    max_tokens: usize,
}

impl KvCache {
    /// Number of cached tokens.
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// Position id of every cached token, in arrival order.
    pub fn positions(&self) -> &[u64] {
        &self.positions
    }

    /// Whether each cached token can be attended to (`false` = padding).
    pub fn attend_mask(&self) -> &[bool] {
        &self.attend
    }

    /// Drops every cached token after the first `len` (for re-running a suffix).
    pub fn truncate(&mut self, len: usize) {
        if len < self.len() {
            self.positions.truncate(len);
            self.attend.truncate(len);
            for k in &mut self.keys {
                k.truncate(len * self.kv_dim);
            }
            for v in &mut self.values {
                v.truncate(len * self.kv_dim);
            }
        }
    }
}

fn meta_usize(g: &GgufFile, key: &str) -> Result<usize> {
    g.get(key)
        .and_then(|v| v.as_u64())
        .and_then(|v| usize::try_from(v).ok())
        .ok_or_else(|| {
            Error::Model(format!(
                "metadata `{key}` is missing or not an unsigned integer"
            ))
        })
}

fn meta_f64(g: &GgufFile, key: &str) -> Result<f64> {
    g.get(key)
        .and_then(|v| v.as_f64())
        .ok_or_else(|| Error::Model(format!("metadata `{key}` is missing or not a number")))
}

impl LlamaConfig {
    /// Reads and validates the hyper-parameters (`general.architecture` must be `llama`).
    pub fn from_gguf(g: &GgufFile) -> Result<LlamaConfig> {
        let arch = g
            .get("general.architecture")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        if arch != "llama" {
            return Err(Error::Model(format!(
                "general.architecture = {arch:?}; only \"llama\" is supported"
            )));
        }
        let dim = meta_usize(g, "llama.embedding_length")?;
        let n_heads = meta_usize(g, "llama.attention.head_count")?;
        let n_kv_heads = match g.get("llama.attention.head_count_kv") {
            Some(_) => meta_usize(g, "llama.attention.head_count_kv")?,
            None => n_heads,
        };
        if n_heads == 0 || n_kv_heads == 0 || dim % n_heads != 0 || n_heads % n_kv_heads != 0 {
            return Err(Error::Model(format!(
                "heads do not fit: dim {dim}, {n_heads} heads, {n_kv_heads} kv heads"
            )));
        }
        let head_dim = dim / n_heads;
        let rope_dim = match g.get("llama.rope.dimension_count") {
            Some(_) => meta_usize(g, "llama.rope.dimension_count")?,
            None => head_dim,
        };
        if rope_dim % 2 != 0 || rope_dim > head_dim {
            return Err(Error::Model(format!(
                "rope dimension {rope_dim} must be even and ≤ head_dim {head_dim}"
            )));
        }
        let token_embd = g
            .tensor("token_embd.weight")
            .ok_or_else(|| Error::Model("tensor `token_embd.weight` is missing".into()))?;
        let vocab_size = token_embd.dims.get(1).copied().unwrap_or(0) as usize;
        let cfg = LlamaConfig {
            n_layers: meta_usize(g, "llama.block_count")?,
            dim,
            ffn_dim: meta_usize(g, "llama.feed_forward_length")?,
            n_heads,
            n_kv_heads,
            head_dim,
            vocab_size,
            rms_eps: meta_f64(g, "llama.attention.layer_norm_rms_epsilon")? as f32,
            rope_base: match g.get("llama.rope.freq_base") {
                Some(_) => meta_f64(g, "llama.rope.freq_base")?,
                None => 10_000.0,
            },
            rope_dim,
            context_length: meta_usize(g, "llama.context_length").unwrap_or(2048),
        };
        if !(cfg.rms_eps.is_finite() && cfg.rms_eps > 0.0) {
            return Err(Error::Model(format!(
                "RMSNorm epsilon {} must be > 0",
                cfg.rms_eps
            )));
        }
        Ok(cfg)
    }

    fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }
}

impl Llama {
    /// Loads a model: reads the config, keeps every matrix in its storage type (`Q4_0`, `Q4_1`,
    /// `Q8_0` as stored, float types as `f32`) and dequantizes the norm vectors to `f32`.
    pub fn from_gguf(g: &GgufFile) -> Result<Llama> {
        let config = LlamaConfig::from_gguf(g)?;
        let c = &config;
        let info = |name: &str, dims: &[usize]| -> Result<&crate::gguf::TensorInfo> {
            let info = g
                .tensor(name)
                .ok_or_else(|| Error::Model(format!("tensor `{name}` is missing")))?;
            let want: Vec<u64> = dims.iter().map(|&d| d as u64).collect();
            if info.dims != want {
                return Err(Error::Model(format!(
                    "tensor `{name}` has shape {:?}, expected {want:?}",
                    info.dims
                )));
            }
            Ok(info)
        };
        let load = |name: &str, dims: &[usize]| -> Result<Vec<f32>> {
            info(name, dims)?;
            g.dequantize(name)
        };
        // `ne = [cols, rows]`: a matrix of `rows` output features.
        let matrix = |name: &str, cols: usize, rows: usize| -> Result<QMatrix> {
            let t = info(name, &[cols, rows])?;
            QMatrix::from_raw(name, t.ggml_type, rows, cols, g.tensor_bytes(t)?)
        };
        let (d, kv, f) = (c.dim, c.kv_dim(), c.ffn_dim);
        let layers = (0..c.n_layers)
            .into_par_iter()
            .map(|i| {
                let p = |s: &str| format!("blk.{i}.{s}.weight");
                Ok(Layer {
                    attn_norm: load(&p("attn_norm"), &[d])?,
                    wq: matrix(&p("attn_q"), d, d)?,
                    wk: matrix(&p("attn_k"), d, kv)?,
                    wv: matrix(&p("attn_v"), d, kv)?,
                    wo: matrix(&p("attn_output"), d, d)?,
                    ffn_norm: load(&p("ffn_norm"), &[d])?,
                    w_gate: matrix(&p("ffn_gate"), d, f)?,
                    w_up: matrix(&p("ffn_up"), d, f)?,
                    w_down: matrix(&p("ffn_down"), f, d)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let token_embd = matrix("token_embd.weight", d, c.vocab_size)?;
        let output_norm = load("output_norm.weight", &[d])?;
        let output = match g.tensor("output.weight") {
            Some(_) => Some(matrix("output.weight", d, c.vocab_size)?),
            None => None,
        };
        let mut params = RopeParams::new(c.rope_base, c.head_dim)?;
        params.rotary_dim = c.rope_dim;
        params.max_position_embeddings = c.context_length;
        let rope = RopeSetup {
            params,
            layout: RopeLayout::Interleaved,
            precision: Precision::hf(),
        };
        Ok(Llama {
            config,
            rope,
            layers,
            token_embd,
            output_norm,
            output,
        })
    }

    /// An empty cache sized for this model, holding at most `max_tokens` tokens
    /// (capped at [`MAX_CACHE_TOKENS`]).
    pub fn new_cache(&self, max_tokens: usize) -> KvCache {
        let n = self.config.n_layers;
        KvCache {
            keys: vec![Vec::new(); n],
            values: vec![Vec::new(); n],
            positions: Vec::new(),
            attend: Vec::new(),
            kv_dim: self.config.kv_dim(),
            max_tokens: max_tokens.min(MAX_CACHE_TOKENS),
        }
    }

    /// Runs `tokens` at `positions` after what `cache` holds, appends them to the cache and returns
    /// the logits of the last token (`vocab_size` values).
    pub fn forward(
        &self,
        tokens: &[u32],
        positions: &[u64],
        cache: &mut KvCache,
    ) -> Result<Vec<f32>> {
        let attend = vec![true; tokens.len()];
        let last = tokens
            .len()
            .checked_sub(1)
            .ok_or_else(|| posenc::Error::shape("tokens", ">= 1", 0))?;
        self.forward_rows(tokens, positions, &attend, cache, &[last])
    }

    /// The general forward pass. `attend[i] = false` marks token `i` as padding: no later token
    /// attends to it (its own row is still computed). Returns the logits of the new tokens listed
    /// in `logit_rows` (indices into `tokens`), concatenated: `logit_rows.len() × vocab_size`.
    pub fn forward_rows(
        &self,
        tokens: &[u32],
        positions: &[u64],
        attend: &[bool],
        cache: &mut KvCache,
        logit_rows: &[usize],
    ) -> Result<Vec<f32>> {
        self.forward_rows_with(&self.rope, tokens, positions, attend, cache, logit_rows)
    }

    /// [`Llama::forward_rows`] with an explicit RoPE setup instead of [`Llama::rope`] (lets
    /// diagnostics run one path of a comparison with a deliberately wrong rotation).
    pub fn forward_rows_with(
        &self,
        rope_setup: &RopeSetup,
        tokens: &[u32],
        positions: &[u64],
        attend: &[bool],
        cache: &mut KvCache,
        logit_rows: &[usize],
    ) -> Result<Vec<f32>> {
        let h = self.forward_hidden(
            rope_setup, tokens, positions, attend, cache, logit_rows, None,
        )?;
        Ok(self.logits_from_hidden(&h))
    }

    /// The output head: logits (`rows × vocab_size`) of final hidden states that
    /// [`Llama::forward_hidden`] returned (`rows × dim`, already normalized).
    pub fn logits_from_hidden(&self, hidden: &[f32]) -> Vec<f32> {
        let c = &self.config;
        let rows = hidden.len() / c.dim;
        let head = self.output.as_ref().unwrap_or(&self.token_embd);
        head.matmul(hidden, rows)
    }

    /// The forward pass up to the output head: returns the final RMS-normalized hidden states
    /// (`rows.len() × dim`) of the new tokens listed in `rows`, so that callers needing logits
    /// at many positions can apply [`Llama::logits_from_hidden`] in chunks. With a `probe`,
    /// attention statistics of every layer and head are added to it.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_hidden(
        &self,
        rope_setup: &RopeSetup,
        tokens: &[u32],
        positions: &[u64],
        attend: &[bool],
        cache: &mut KvCache,
        logit_rows: &[usize],
        mut probe: Option<&mut AttentionProbe>,
    ) -> Result<Vec<f32>> {
        let c = &self.config;
        let n = tokens.len();
        if positions.len() != n {
            return Err(posenc::Error::shape("positions", n, positions.len()).into());
        }
        if attend.len() != n {
            return Err(posenc::Error::shape("attend mask", n, attend.len()).into());
        }
        if cache.kv_dim != c.kv_dim() || cache.keys.len() != c.n_layers {
            return Err(posenc::Error::shape(
                "kv cache",
                "a cache from this model's new_cache",
                "another shape",
            )
            .into());
        }
        if let Some(p) = probe.as_deref() {
            if p.n_heads != c.n_heads || p.stats.len() != c.n_layers * c.n_heads {
                return Err(posenc::Error::shape(
                    "attention probe",
                    "a probe from AttentionProbe::new for this model",
                    "another shape",
                )
                .into());
            }
        }
        let past = cache.len();
        if past + n > cache.max_tokens {
            return Err(posenc::Error::TooLarge {
                what: "cached tokens".into(),
                value: (past + n) as u64,
                cap: cache.max_tokens as u64,
            }
            .into());
        }
        if let Some(&t) = tokens.iter().find(|&&t| t as usize >= c.vocab_size) {
            return Err(
                posenc::Error::invalid("token id", format!("< {}, got {t}", c.vocab_size)).into(),
            );
        }
        if let Some(&r) = logit_rows.iter().find(|&&r| r >= n) {
            return Err(posenc::Error::invalid("logit row", format!("< {n}, got {r}")).into());
        }
        if n == 0 {
            return Ok(Vec::new());
        }

        // RoPE rows for every new token. Dynamic scalings see the largest position of this call,
        // as Hugging Face's `dynamic_rope_update` does.
        let max_pos = positions.iter().copied().max().unwrap_or(0);
        let seq_len = usize::try_from(max_pos).ok().and_then(|p| p.checked_add(1));
        let freqs = rope_setup
            .params
            .frequencies(seq_len, rope_setup.precision)?;
        let pairs = freqs.pairs();
        let mut cos = vec![0.0f32; n * pairs];
        let mut sin = vec![0.0f32; n * pairs];
        if pairs > 0 {
            for ((&p, cr), sr) in positions
                .iter()
                .zip(cos.chunks_exact_mut(pairs))
                .zip(sin.chunks_exact_mut(pairs))
            {
                rope::cos_sin_row(&freqs, p, cr, sr)?;
            }
        }
        // Dry-run the rotation once so shape errors surface before the cache is touched.
        if n > 0 {
            let mut probe = vec![0.0f32; c.head_dim];
            rope::apply_rotary_heads(
                &mut probe,
                1,
                c.head_dim,
                &cos[..pairs],
                &sin[..pairs],
                rope_setup.layout,
            )?;
        }

        let (d, kv) = (c.dim, c.kv_dim());
        let mut x = vec![0.0f32; n * d];
        for (row, &t) in x.chunks_exact_mut(d).zip(tokens) {
            self.token_embd
                .dequantize_rows(t as usize, t as usize + 1, row);
        }
        cache.positions.extend_from_slice(positions);
        cache.attend.extend_from_slice(attend);

        for (li, layer) in self.layers.iter().enumerate() {
            let h = rms_norm(&x, &layer.attn_norm, c.rms_eps);
            let mut q = layer.wq.matmul(&h, n);
            let mut k = layer.wk.matmul(&h, n);
            let v = layer.wv.matmul(&h, n);
            for i in 0..n {
                let (cr, sr) = (
                    &cos[i * pairs..(i + 1) * pairs],
                    &sin[i * pairs..(i + 1) * pairs],
                );
                rope::apply_rotary_heads(
                    &mut q[i * d..(i + 1) * d],
                    c.n_heads,
                    c.head_dim,
                    cr,
                    sr,
                    rope_setup.layout,
                )?;
                rope::apply_rotary_heads(
                    &mut k[i * kv..(i + 1) * kv],
                    c.n_kv_heads,
                    c.head_dim,
                    cr,
                    sr,
                    rope_setup.layout,
                )?;
            }
            cache.keys[li].extend_from_slice(&k);
            cache.values[li].extend_from_slice(&v);
            let attn = attention(
                c,
                &q,
                n,
                past,
                &cache.keys[li],
                &cache.values[li],
                &cache.attend,
                probe.as_deref_mut().map(|p| (li, p)),
            );
            let o = layer.wo.matmul(&attn, n);
            add_in_place(&mut x, &o);
            let h = rms_norm(&x, &layer.ffn_norm, c.rms_eps);
            let mut gate = layer.w_gate.matmul(&h, n);
            let up = layer.w_up.matmul(&h, n);
            for (g, u) in gate.iter_mut().zip(&up) {
                *g = *g / (1.0 + (-*g).exp()) * u;
            }
            let down = layer.w_down.matmul(&gate, n);
            add_in_place(&mut x, &down);
        }

        let mut sel = Vec::with_capacity(logit_rows.len() * d);
        for &r in logit_rows {
            sel.extend_from_slice(&x[r * d..(r + 1) * d]);
        }
        Ok(rms_norm(&sel, &self.output_norm, c.rms_eps))
    }

    /// Greedy continuation: prefills `prompt` at positions `0..` into a fresh cache, then decodes one
    /// token at a time. Stops after `max_new` tokens or after emitting `stop` (which is included).
    pub fn generate_greedy(
        &self,
        prompt: &[u32],
        max_new: usize,
        stop: Option<u32>,
    ) -> Result<Vec<u32>> {
        let mut cache = self.new_cache(prompt.len() + max_new);
        let positions: Vec<u64> = (0..prompt.len() as u64).collect();
        let mut logits = self.forward(prompt, &positions, &mut cache)?;
        let mut out = Vec::new();
        while out.len() < max_new {
            let next = argmax(&logits);
            out.push(next);
            if Some(next) == stop || out.len() == max_new {
                break;
            }
            let pos = cache.len() as u64;
            logits = self.forward(&[next], &[pos], &mut cache)?;
        }
        Ok(out)
    }
}

/// Index of the largest value (the first one at a tie; 0 for an empty slice).
pub fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

/// Indices of the `k` largest values, largest first (ties by lower index).
pub fn top_k(v: &[f32], k: usize) -> Vec<u32> {
    let mut idx: Vec<u32> = (0..v.len() as u32).collect();
    idx.sort_by(|&a, &b| v[b as usize].total_cmp(&v[a as usize]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

fn add_in_place(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// Row-wise RMSNorm: `x / sqrt(mean(x²) + eps) ⊙ weight` (mean accumulated in f64).
fn rms_norm(x: &[f32], weight: &[f32], eps: f32) -> Vec<f32> {
    let d = weight.len();
    let mut out = vec![0.0f32; x.len()];
    for (o, r) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
        let ms = r.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / d as f64;
        let inv = 1.0 / (ms as f32 + eps).sqrt();
        for ((o, &v), &w) in o.iter_mut().zip(r).zip(weight) {
            *o = w * (v * inv);
        }
    }
    out
}

/// Causal GQA attention of `n` new query rows (already rotated) against `past + n` cached keys.
/// Returns `n × dim`. With a probe (layer index, probe), the statistics of every query row at or
/// after `probe.query_from` are added to that layer's heads.
///
/// One job per (key/value head, block of queries): the queries of every head of the group are
/// stacked into one matrix, so each block multiplies (and packs) its keys and values once for
/// the whole group. Softmax weights stay unnormalized; each output row is divided by its sum at
/// the end (a probe reads the weights times that factor, so it changes nothing in the result).
#[allow(clippy::too_many_arguments)]
fn attention(
    c: &LlamaConfig,
    q: &[f32],
    n: usize,
    past: usize,
    keys: &[f32],
    values: &[f32],
    attend: &[bool],
    probe: Option<(usize, &mut AttentionProbe)>,
) -> Vec<f32> {
    let (d, kv, hd) = (c.dim, c.kv_dim(), c.head_dim);
    let group = c.n_heads / c.n_kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let blocks = n.div_ceil(QUERY_BLOCK);
    let has_padding = attend.iter().any(|&a| !a);
    let mask = has_padding.then_some(attend);
    if n == 1 && probe.is_none() {
        return attention_one(c, q, past, keys, values, mask);
    }
    let query_from = probe.as_ref().map(|(_, p)| p.query_from);
    let jobs: Vec<(usize, usize)> = (0..c.n_kv_heads)
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
                let a = MatRef {
                    data: &qa,
                    offset: 0,
                    rows,
                    cols: hd,
                    rs: hd,
                    cs: 1,
                };
                let kt = MatRef {
                    data: keys,
                    offset: g * hd,
                    rows: hd,
                    cols: n_keys,
                    rs: 1,
                    cs: kv,
                };
                gemm(a, kt, &mut scores, n_keys, false).expect("attention block shapes");
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
                let pa = MatRef {
                    data: &scores,
                    offset: 0,
                    rows,
                    cols: n_keys,
                    rs: n_keys,
                    cs: 1,
                };
                let vb = MatRef {
                    data: values,
                    offset: g * hd,
                    rows: n_keys,
                    cols: hd,
                    rs: kv,
                    cs: 1,
                };
                gemm(pa, vb, &mut out, hd, false).expect("attention block shapes");
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
        if let (Some((layer, p)), Some(st)) = (probe.as_mut(), stats) {
            for (t, s) in st.iter().enumerate() {
                p.stats[*layer * c.n_heads + g * group + t].merge(s);
            }
        }
        // Out row i·group + t is query i0 + i of head g·group + t: the group's heads are adjacent.
        for (i, src) in out.chunks_exact(group * hd).enumerate() {
            let dst = (i0 + i) * d + g * group * hd;
            attn[dst..dst + group * hd].copy_from_slice(src);
        }
    }
    attn
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
    c: &LlamaConfig,
    q: &[f32],
    past: usize,
    keys: &[f32],
    values: &[f32],
    attend: Option<&[bool]>,
) -> Vec<f32> {
    let (kv, hd) = (c.kv_dim(), c.head_dim);
    let group = c.n_heads / c.n_kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let n_keys = past + 1;
    let parts: Vec<Vec<f32>> = (0..c.n_kv_heads)
        .into_par_iter()
        .map(|g| {
            // The group's query heads are adjacent in the token's query row.
            let qg = &q[g * group * hd..(g + 1) * group * hd];
            let mut scores = vec![0.0f32; group * n_keys];
            for j in 0..n_keys {
                let kj = &keys[j * kv + g * hd..j * kv + (g + 1) * hd];
                for (t, qt) in qg.chunks_exact(hd).enumerate() {
                    scores[t * n_keys + j] = dot(qt, kj);
                }
            }
            let inv: Vec<f32> = scores
                .chunks_exact_mut(n_keys)
                .map(|row| softmax_unnormalized(row, scale, attend))
                .collect();
            let mut out = vec![0.0f32; group * hd];
            for j in 0..n_keys {
                let vj = &values[j * kv + g * hd..j * kv + (g + 1) * hd];
                for (t, o) in out.chunks_exact_mut(hd).enumerate() {
                    let p = scores[t * n_keys + j];
                    for (a, &b) in o.iter_mut().zip(vj) {
                        *a += p * b;
                    }
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(n_heads: usize, n_kv_heads: usize, head_dim: usize) -> LlamaConfig {
        LlamaConfig {
            n_layers: 1,
            dim: n_heads * head_dim,
            ffn_dim: 4,
            n_heads,
            n_kv_heads,
            head_dim,
            vocab_size: 4,
            rms_eps: 1e-5,
            rope_base: 10_000.0,
            rope_dim: head_dim,
            context_length: 64,
        }
    }

    /// Plain f64 causal GQA attention with masked keys.
    fn naive(
        c: &LlamaConfig,
        q: &[f32],
        n: usize,
        past: usize,
        keys: &[f32],
        values: &[f32],
        attend: &[bool],
    ) -> Vec<f64> {
        let (d, kv, hd) = (c.dim, c.kv_dim(), c.head_dim);
        let group = c.n_heads / c.n_kv_heads;
        let mut out = vec![0.0; n * d];
        for i in 0..n {
            for h in 0..c.n_heads {
                let g = h / group;
                let qi = &q[i * d + h * hd..i * d + (h + 1) * hd];
                let visible: Vec<usize> = (0..=past + i).filter(|&j| attend[j]).collect();
                if visible.is_empty() {
                    continue;
                }
                let s: Vec<f64> = visible
                    .iter()
                    .map(|&j| {
                        let kj = &keys[j * kv + g * hd..j * kv + (g + 1) * hd];
                        qi.iter()
                            .zip(kj)
                            .map(|(a, b)| *a as f64 * *b as f64)
                            .sum::<f64>()
                            / (hd as f64).sqrt()
                    })
                    .collect();
                let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = s.iter().map(|v| (v - m).exp()).sum();
                for (&j, sv) in visible.iter().zip(&s) {
                    let p = (sv - m).exp() / z;
                    for t in 0..hd {
                        out[i * d + h * hd + t] += p * values[j * kv + g * hd + t] as f64;
                    }
                }
            }
        }
        out
    }

    /// The blocked attention (GEMM blocks, dot-product blocks, one-token decode, padding) against
    /// the plain reference over a seeded sweep of shapes.
    #[test]
    fn attention_matches_naive_over_shapes() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let shapes = [
            (1, 0),
            (1, 37),
            (2, 5),
            (3, 0),
            (QUERY_BLOCK, 0),
            (QUERY_BLOCK + 1, 3),
            (2 * QUERY_BLOCK + 2, 0),
            (300, 17),
        ];
        for (case, &(n, past)) in shapes.iter().enumerate() {
            for &(heads, kv_heads, hd) in &[(4, 2, 8), (3, 3, 4), (6, 1, 16)] {
                let c = config(heads, kv_heads, hd);
                let total = past + n;
                let q: Vec<f32> = (0..n * c.dim).map(|_| 3.0 * next()).collect();
                let keys: Vec<f32> = (0..total * c.kv_dim()).map(|_| 3.0 * next()).collect();
                let values: Vec<f32> = (0..total * c.kv_dim()).map(|_| next()).collect();
                // Odd cases: left padding (the first keys masked, some rows see nothing).
                let pad = if case % 2 == 1 { total.min(4) } else { 0 };
                let attend: Vec<bool> = (0..total).map(|j| j >= pad).collect();
                let got = attention(&c, &q, n, past, &keys, &values, &attend, None);
                let want = naive(&c, &q, n, past, &keys, &values, &attend);
                let worst = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (*a as f64 - b).abs())
                    .fold(0.0, f64::max);
                assert!(
                    worst < 2e-5,
                    "n {n} past {past} heads {heads}/{kv_heads} hd {hd}: {worst}"
                );
            }
        }
    }
}
