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
use crate::quant::QMatrix;
use posenc::attention::HeadConfig;
use posenc::cached_attention::{cached_attention, Probe};
use posenc::kernels::{self, AxisOrder, CosSin, QkShape};
use posenc::rope;
use rayon::prelude::*;

pub use posenc::cached_attention::{distance_bin, HeadStats, DISTANCE_BINS};
pub use rope::{Precision, RopeLayout, RopeParams};

/// Most tokens a [`KvCache`] holds (keys and values for 32K tokens are ≈ 1.4 GiB for SmolLM2).
pub const MAX_CACHE_TOKENS: usize = 1 << 15;
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

/// Values of `general.architecture` the runner loads: Llama-family decoders with RMSNorm, SwiGLU
/// and RoPE (`qwen2` adds q/k/v biases and uses the half-split rotation).
pub const SUPPORTED_ARCHITECTURES: [&str; 3] = ["llama", "mistral", "qwen2"];

/// Hyper-parameters read from `ARCH.*` metadata (`ARCH` = `general.architecture`).
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
    /// q/k/v biases (Qwen2); `None` for Llama, whose projections have none.
    bq: Option<Vec<f32>>,
    bk: Option<Vec<f32>>,
    bv: Option<Vec<f32>>,
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
        if !SUPPORTED_ARCHITECTURES.contains(&arch) {
            return Err(Error::Model(format!(
                "general.architecture = {arch:?} is not supported (supported: {})",
                SUPPORTED_ARCHITECTURES.join(", ")
            )));
        }
        let key = |k: &str| format!("{arch}.{k}");
        let dim = meta_usize(g, &key("embedding_length"))?;
        let n_heads = meta_usize(g, &key("attention.head_count"))?;
        let n_kv_heads = match g.get(&key("attention.head_count_kv")) {
            Some(_) => meta_usize(g, &key("attention.head_count_kv"))?,
            None => n_heads,
        };
        if n_heads == 0 || n_kv_heads == 0 || dim % n_heads != 0 || n_heads % n_kv_heads != 0 {
            return Err(Error::Model(format!(
                "heads do not fit: dim {dim}, {n_heads} heads, {n_kv_heads} kv heads"
            )));
        }
        let head_dim = dim / n_heads;
        let rope_dim = match g.get(&key("rope.dimension_count")) {
            Some(_) => meta_usize(g, &key("rope.dimension_count"))?,
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
            n_layers: meta_usize(g, &key("block_count"))?,
            dim,
            ffn_dim: meta_usize(g, &key("feed_forward_length"))?,
            n_heads,
            n_kv_heads,
            head_dim,
            vocab_size,
            rms_eps: meta_f64(g, &key("attention.layer_norm_rms_epsilon"))? as f32,
            rope_base: match g.get(&key("rope.freq_base")) {
                Some(_) => meta_f64(g, &key("rope.freq_base"))?,
                None => 10_000.0,
            },
            rope_dim,
            context_length: meta_usize(g, &key("context_length")).unwrap_or(2048),
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
        crate::gguf_check::check_model_file(g)?;
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
                let bias = |s: &str, len: usize| -> Result<Option<Vec<f32>>> {
                    let name = format!("blk.{i}.{s}.bias");
                    match g.tensor(&name) {
                        Some(_) => Ok(Some(load(&name, &[len])?)),
                        None => Ok(None),
                    }
                };
                Ok(Layer {
                    attn_norm: load(&p("attn_norm"), &[d])?,
                    wq: matrix(&p("attn_q"), d, d)?,
                    wk: matrix(&p("attn_k"), d, kv)?,
                    wv: matrix(&p("attn_v"), d, kv)?,
                    bq: bias("attn_q", d)?,
                    bk: bias("attn_k", kv)?,
                    bv: bias("attn_v", kv)?,
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
            // llama.cpp's converter permutes Wq/Wk of `llama` files (see the module docs); Qwen2
            // files keep Hugging Face's order and rotate half-split (llama.cpp's NEOX mode).
            layout: if g.get("general.architecture").and_then(|v| v.as_str()) == Some("qwen2") {
                RopeLayout::HalfSplit
            } else {
                RopeLayout::Interleaved
            },
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
        // One table of cos/sin rows for the positions of this call when they span a short
        // range (the usual case: consecutive positions), else rows computed per token by the
        // kernel. Either way the rows are the reference's (`rope::cos_sin_row`), bit for bit.
        let min_pos = positions.iter().copied().min().unwrap_or(0);
        let span = max_pos - min_pos;
        let table = if span <= 2 * n as u64 + 64 {
            let range: Vec<u64> = (min_pos..=max_pos).collect();
            Some(kernels::rope_table(&freqs, &range)?)
        } else {
            None
        };
        let rows = match &table {
            Some(t) => CosSin::Table(t),
            None => CosSin::Freqs(&freqs),
        };
        let shape = QkShape {
            batch: 1,
            seq: n,
            head_dim: c.head_dim,
            order: AxisOrder::Bshd,
        };
        // Dry-run the rotation once so shape errors surface before the cache is touched.
        {
            let mut probe = vec![0.0f32; c.head_dim];
            let one = QkShape { seq: 1, ..shape };
            kernels::rope_inplace(
                &mut probe,
                1,
                &one,
                &positions[..1],
                rows,
                rope_setup.layout,
            )?;
        }

        let d = c.dim;
        let heads = HeadConfig::new(c.n_heads, c.n_kv_heads, c.head_dim)?;
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
            let mut v = layer.wv.matmul(&h, n);
            for (y, b) in [
                (&mut q, &layer.bq),
                (&mut k, &layer.bk),
                (&mut v, &layer.bv),
            ] {
                if let Some(b) = b {
                    for row in y.chunks_exact_mut(b.len()) {
                        add_in_place(row, b);
                    }
                }
            }
            kernels::rope_qk_inplace(
                &mut q,
                c.n_heads,
                &mut k,
                c.n_kv_heads,
                &shape,
                positions,
                rows,
                rope_setup.layout,
            )?;
            cache.keys[li].extend_from_slice(&k);
            cache.values[li].extend_from_slice(&v);
            let layer_probe = probe.as_deref_mut().map(|p| Probe {
                query_from: p.query_from,
                stats: &mut p.stats[li * c.n_heads..(li + 1) * c.n_heads],
            });
            let attn = cached_attention(
                &heads,
                &q,
                &cache.keys[li],
                &cache.values[li],
                Some(&cache.attend),
                layer_probe,
            )?;
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
