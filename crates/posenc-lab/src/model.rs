//! The model: a small decoder-only transformer (pre-norm, causal) on candle, with the position
//! signal entering where its scheme says.
//!
//! ```text
//! x = E[tokens] (+ P[0..L] for learned / sinusoidal)
//! for each layer:  x += W_o · attention(LN1(x));  x += W_2 · gelu(W_1 · LN2(x) + b_1) + b_2
//! logits = LN_f(x) · W_head
//! ```
//!
//! Attention per head, for query `i` and key `j <= i` (the causal mask):
//! `s_ij = <q'_i, k'_j>/sqrt(d_h) + b(i, j)`, `w = softmax(s)`, `o_i = Σ_j w_ij v_j`, with RoPE
//! rotating `q' = R(i) q`, `k' = R(j) k`; ALiBi and T5 giving `b`; Shaw adding
//! `<q_i, a^K[r_ij]>/sqrt(d_h)` to the score and `Σ_j w_ij a^V[r_ij]` to the output. Projections
//! have no bias (as [`posenc::attention::SingleLayer`]), the MLP has. Weights are
//! `[in][out]` (`x · W`), initialised `N(0, 0.02²)` (the residual output projections
//! `0.02/sqrt(2·layers)`), token embeddings `N(0, 1)`, a learned position table
//! `N(0, 0.5²)` ([`posenc::learned::LearnedTable::random`]), T5 and Shaw tables `N(0, 0.02²)`,
//! all from a ChaCha8 generator seeded by the run's seed.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor, Var, D};
use rand::SeedableRng;
use rand_distr::Distribution;
use serde::{Deserialize, Serialize};

use crate::scheme::{PositionTerms, SchemeKind, SchemeSetup, SHAW_MAX_RELATIVE, T5_NUM_BUCKETS};
use crate::task::Task;
use crate::{LabError, Result};

/// Caps on model sizes accepted from the command line.
pub const MAX_D_MODEL: usize = 1024;
/// Most layers.
pub const MAX_LAYERS: usize = 24;
/// Longest sequence the lab evaluates (score matrices are `heads × L²` per sequence).
pub const MAX_LEN: usize = 8192;

/// Standard deviation of the learned table's initial rows ([`posenc::learned::LearnedTable::random`]).
pub const LEARNED_INIT_STD: f32 = 0.5;

/// Everything that defines a model (saved as `config.json` next to the checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// The task it is trained on.
    pub task: Task,
    /// The position scheme.
    pub scheme: SchemeKind,
    /// RoPE scaling spec (`TYPE[:key=value,...]`, as `posenc model --rope-scaling`), `rope` only.
    #[serde(default)]
    pub rope_scaling: Option<String>,
    /// Vocabulary size.
    pub vocab: usize,
    /// Model width.
    pub d_model: usize,
    /// Attention heads.
    pub heads: usize,
    /// Layers.
    pub layers: usize,
    /// Training sequence length.
    pub train_len: usize,
    /// Rows of the learned table (the longest length it can be tested at).
    pub max_len: usize,
    /// Seed of the initial weights and of the training batches.
    pub seed: u64,
}

impl ModelConfig {
    /// Checks sizes; errors name the command-line flag.
    pub fn validate(&self) -> Result<()> {
        if self.d_model == 0 || self.d_model > MAX_D_MODEL {
            return Err(LabError::invalid(
                "--d-model",
                format!("1..={MAX_D_MODEL}, got {}", self.d_model),
            ));
        }
        if self.heads == 0 || !self.d_model.is_multiple_of(self.heads) {
            return Err(LabError::invalid(
                "--heads",
                format!(
                    "a divisor of --d-model {}, got {}",
                    self.d_model, self.heads
                ),
            ));
        }
        if !(self.d_model / self.heads).is_multiple_of(2) {
            return Err(LabError::invalid(
                "--heads",
                format!(
                    "a count that leaves an even head size (d_model / heads), got {} / {}",
                    self.d_model, self.heads
                ),
            ));
        }
        if self.layers == 0 || self.layers > MAX_LAYERS {
            return Err(LabError::invalid(
                "--layers",
                format!("1..={MAX_LAYERS}, got {}", self.layers),
            ));
        }
        if self.train_len < self.task.min_len() || self.train_len > MAX_LEN {
            return Err(LabError::invalid(
                "--train-len",
                format!(
                    "{}..={MAX_LEN} for {}, got {}",
                    self.task.min_len(),
                    self.task.name(),
                    self.train_len
                ),
            ));
        }
        if self.max_len < self.train_len || self.max_len > MAX_LEN {
            return Err(LabError::invalid(
                "--max-len",
                format!(
                    "{}..={MAX_LEN} (at least --train-len), got {}",
                    self.train_len, self.max_len
                ),
            ));
        }
        if self.rope_scaling.is_some() && self.scheme != SchemeKind::Rope {
            return Err(LabError::invalid(
                "--rope-scaling",
                format!(
                    "only with --scheme rope, got --scheme {}",
                    self.scheme.name()
                ),
            ));
        }
        self.scheme_setup().map(|_| ())
    }

    /// The scheme setup (parses the RoPE scaling).
    pub fn scheme_setup(&self) -> Result<SchemeSetup> {
        let rope_scaling = match &self.rope_scaling {
            None => None,
            Some(spec) => {
                let plain = crate::scheme::rope_params(
                    self.d_model / self.heads.max(1),
                    None,
                    self.train_len,
                )?;
                let parsed = posenc_model::scaling::parse_spec(spec, &plain)?;
                Some(parsed.scaling)
            }
        };
        Ok(SchemeSetup {
            kind: self.scheme,
            d_model: self.d_model,
            heads: self.heads,
            train_len: self.train_len,
            rope_scaling,
        })
    }

    /// Size of one head.
    pub fn head_dim(&self) -> usize {
        self.d_model / self.heads
    }
}

/// One transformer layer's parameters.
#[derive(Debug, Clone)]
pub struct Layer {
    ln1_w: Tensor,
    ln1_b: Tensor,
    wq: Tensor,
    wk: Tensor,
    wv: Tensor,
    wo: Tensor,
    ln2_w: Tensor,
    ln2_b: Tensor,
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
}

/// A model: its configuration and parameters (plain tensors, or the tensors of training `Var`s).
#[derive(Debug, Clone)]
pub struct Model {
    cfg: ModelConfig,
    setup: SchemeSetup,
    tok_emb: Tensor,
    /// Learned table `[max_len][d]`, T5 bias `[buckets][heads]`, Shaw `a^K` / `a^V` `[2k+1][d_h]`.
    pos: Vec<Tensor>,
    layers: Vec<Layer>,
    lnf_w: Tensor,
    lnf_b: Tensor,
    head: Tensor,
}

/// Position terms for one sequence length, as tensors (built once per length).
#[derive(Debug, Clone)]
pub struct LenTerms {
    len: usize,
    causal: Tensor,
    additive: Option<Tensor>,
    rotary: Option<(Tensor, Tensor)>,
    bias: Option<Tensor>,
    indices: Option<Tensor>,
}

/// Names of a layer's parameters, in a fixed order.
const LAYER_NAMES: [&str; 12] = [
    "ln1.w", "ln1.b", "wq", "wk", "wv", "wo", "ln2.w", "ln2.b", "w1", "b1", "w2", "b2",
];

fn pos_names(kind: SchemeKind) -> &'static [&'static str] {
    match kind {
        SchemeKind::Learned => &["pos.learned"],
        SchemeKind::T5 => &["pos.t5_bias"],
        SchemeKind::Shaw => &["pos.shaw_k", "pos.shaw_v"],
        _ => &[],
    }
}

/// Named initial values, in order: `(name, shape, values, weight decay?)`.
type InitParam = (String, Vec<usize>, Vec<f32>, bool);

fn init_params(cfg: &ModelConfig) -> Result<Vec<InitParam>> {
    let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut normal = |n: usize, std: f64| -> Vec<f32> {
        let dist = rand_distr::Normal::new(0.0, std).expect("a finite positive std");
        (0..n).map(|_| dist.sample(&mut rng) as f32).collect()
    };
    let (d, v, hd) = (cfg.d_model, cfg.vocab, cfg.head_dim());
    let resid = 0.02 / (2.0 * cfg.layers as f64).sqrt();
    let mut out: Vec<InitParam> = Vec::new();
    out.push(("tok_emb".into(), vec![v, d], normal(v * d, 1.0), false));
    match cfg.scheme {
        SchemeKind::Learned => {
            // posenc's seeded table; a different stream from the weights.
            let table = posenc::learned::LearnedTable::random(
                cfg.max_len,
                d,
                cfg.seed ^ 0x5EED_7AB1E,
                LEARNED_INIT_STD,
            )?;
            out.push((
                "pos.learned".into(),
                vec![cfg.max_len, d],
                table.data().to_vec(),
                false,
            ));
        }
        SchemeKind::T5 => out.push((
            "pos.t5_bias".into(),
            vec![T5_NUM_BUCKETS, cfg.heads],
            normal(T5_NUM_BUCKETS * cfg.heads, 0.02),
            false,
        )),
        SchemeKind::Shaw => {
            let rows = 2 * SHAW_MAX_RELATIVE + 1;
            out.push((
                "pos.shaw_k".into(),
                vec![rows, hd],
                normal(rows * hd, 0.02),
                false,
            ));
            out.push((
                "pos.shaw_v".into(),
                vec![rows, hd],
                normal(rows * hd, 0.02),
                false,
            ));
        }
        _ => {}
    }
    for l in 0..cfg.layers {
        let p = |n: &str| format!("layers.{l}.{n}");
        out.push((p("ln1.w"), vec![d], vec![1.0; d], false));
        out.push((p("ln1.b"), vec![d], vec![0.0; d], false));
        out.push((p("wq"), vec![d, d], normal(d * d, 0.02), true));
        out.push((p("wk"), vec![d, d], normal(d * d, 0.02), true));
        out.push((p("wv"), vec![d, d], normal(d * d, 0.02), true));
        out.push((p("wo"), vec![d, d], normal(d * d, resid), true));
        out.push((p("ln2.w"), vec![d], vec![1.0; d], false));
        out.push((p("ln2.b"), vec![d], vec![0.0; d], false));
        out.push((p("w1"), vec![d, 4 * d], normal(4 * d * d, 0.02), true));
        out.push((p("b1"), vec![4 * d], vec![0.0; 4 * d], false));
        out.push((p("w2"), vec![4 * d, d], normal(4 * d * d, resid), true));
        out.push((p("b2"), vec![d], vec![0.0; d], false));
    }
    out.push(("ln_f.w".into(), vec![d], vec![1.0; d], false));
    out.push(("ln_f.b".into(), vec![d], vec![0.0; d], false));
    out.push(("head".into(), vec![d, v], normal(d * v, 0.02), true));
    Ok(out)
}

/// `x [n][in] · w [in][out]`.
fn lin(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    x.matmul(w)
}

fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    // The composed form: candle-nn's fused layer_norm has no backward pass.
    candle_nn::ops::layer_norm_slow(x, w, b, 1e-5)
}

/// Half-split rotation of `x [B][H][L][d_h]` by `cos`, `sin` `[L][d_h/2]` (posenc's
/// `apply_rotary` with [`posenc::rope::RopeLayout::HalfSplit`], as tensor ops so it has a gradient).
fn rotate(x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
    let half = x.dim(D::Minus1)? / 2;
    let a = x.narrow(D::Minus1, 0, half)?;
    let b = x.narrow(D::Minus1, half, half)?;
    let ra = (a.broadcast_mul(cos)? - b.broadcast_mul(sin)?)?;
    let rb = (a.broadcast_mul(sin)? + b.broadcast_mul(cos)?)?;
    Tensor::cat(&[ra, rb], D::Minus1)
}

impl Model {
    /// A freshly initialised model, and the trainable variables split into those with weight
    /// decay (matrices) and those without (embeddings, position tables, norms, biases).
    pub fn init(cfg: &ModelConfig) -> Result<(Model, Vec<Var>, Vec<Var>)> {
        cfg.validate()?;
        let mut named = BTreeMap::new();
        let (mut decay, mut no_decay) = (Vec::new(), Vec::new());
        for (name, shape, values, wd) in init_params(cfg)? {
            let var = Var::from_tensor(&Tensor::from_vec(values, shape, &Device::Cpu)?)?;
            named.insert(name, var.as_tensor().clone());
            if wd {
                decay.push(var)
            } else {
                no_decay.push(var)
            }
        }
        Ok((Model::from_named(cfg.clone(), &named)?, decay, no_decay))
    }

    /// A model from named tensors (a checkpoint).
    ///
    /// Errors: a missing tensor or one of the wrong shape.
    pub fn from_named(cfg: ModelConfig, named: &BTreeMap<String, Tensor>) -> Result<Model> {
        cfg.validate()?;
        let expected: BTreeMap<String, Vec<usize>> = init_params(&cfg)?
            .into_iter()
            .map(|(n, s, _, _)| (n, s))
            .collect();
        let get = |name: &str| -> Result<Tensor> {
            let t = named
                .get(name)
                .ok_or_else(|| LabError::Checkpoint(format!("tensor `{name}` is missing")))?;
            let want = &expected[name];
            if t.dims() != want.as_slice() {
                return Err(LabError::Checkpoint(format!(
                    "tensor `{name}` has shape {:?}, expected {want:?}",
                    t.dims()
                )));
            }
            Ok(t.to_dtype(DType::F32)?)
        };
        let layers = (0..cfg.layers)
            .map(|l| {
                let t: Vec<Tensor> = LAYER_NAMES
                    .iter()
                    .map(|n| get(&format!("layers.{l}.{n}")))
                    .collect::<Result<_>>()?;
                let [ln1_w, ln1_b, wq, wk, wv, wo, ln2_w, ln2_b, w1, b1, w2, b2]: [Tensor; 12] = t
                    .try_into()
                    .map_err(|_| LabError::Checkpoint("layer tensors".into()))?;
                Ok(Layer {
                    ln1_w,
                    ln1_b,
                    wq,
                    wk,
                    wv,
                    wo,
                    ln2_w,
                    ln2_b,
                    w1,
                    b1,
                    w2,
                    b2,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let pos = pos_names(cfg.scheme)
            .iter()
            .map(|n| get(n))
            .collect::<Result<Vec<_>>>()?;
        Ok(Model {
            setup: cfg.scheme_setup()?,
            tok_emb: get("tok_emb")?,
            pos,
            layers,
            lnf_w: get("ln_f.w")?,
            lnf_b: get("ln_f.b")?,
            head: get("head")?,
            cfg,
        })
    }

    /// Every parameter by name (what a checkpoint stores).
    pub fn named(&self) -> BTreeMap<String, Tensor> {
        let mut out = BTreeMap::new();
        out.insert("tok_emb".to_string(), self.tok_emb.clone());
        for (n, t) in pos_names(self.cfg.scheme).iter().zip(&self.pos) {
            out.insert(n.to_string(), t.clone());
        }
        for (l, layer) in self.layers.iter().enumerate() {
            let ts = [
                &layer.ln1_w,
                &layer.ln1_b,
                &layer.wq,
                &layer.wk,
                &layer.wv,
                &layer.wo,
                &layer.ln2_w,
                &layer.ln2_b,
                &layer.w1,
                &layer.b1,
                &layer.w2,
                &layer.b2,
            ];
            for (n, t) in LAYER_NAMES.iter().zip(ts) {
                out.insert(format!("layers.{l}.{n}"), t.clone());
            }
        }
        out.insert("ln_f.w".into(), self.lnf_w.clone());
        out.insert("ln_f.b".into(), self.lnf_b.clone());
        out.insert("head".into(), self.head.clone());
        out
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The scheme setup.
    pub fn setup(&self) -> &SchemeSetup {
        &self.setup
    }

    /// Number of parameters.
    pub fn parameter_count(&self) -> usize {
        self.named().values().map(|t| t.elem_count()).sum()
    }

    /// The trained position parameters as flat `f32` (see [`SchemeSetup::to_reference_scheme`]).
    pub fn position_parameters(&self) -> Result<Vec<Vec<f32>>> {
        self.pos
            .iter()
            .map(|t| Ok(t.flatten_all()?.to_vec1::<f32>()?))
            .collect()
    }

    /// The position terms of sequences of `len` positions.
    ///
    /// Errors: `len` past the learned table or above [`MAX_LEN`]; errors of posenc's schemes.
    pub fn terms(&self, len: usize) -> Result<LenTerms> {
        if len == 0 || len > MAX_LEN {
            return Err(LabError::invalid(
                "--lengths",
                format!("lengths in 1..={MAX_LEN}, got {len}"),
            ));
        }
        if self.cfg.scheme == SchemeKind::Learned && len > self.cfg.max_len {
            return Err(LabError::invalid(
                "--lengths",
                format!("at most the learned table's {} rows (train with a larger --max-len), got {len}", self.cfg.max_len),
            ));
        }
        let dev = &Device::Cpu;
        let mask: Vec<f32> = (0..len * len)
            .map(|i| {
                if i % len > i / len {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        let mut t = LenTerms {
            len,
            causal: Tensor::from_vec(mask, (len, len), dev)?,
            additive: None,
            rotary: None,
            bias: None,
            indices: None,
        };
        match self.setup.terms(len)? {
            PositionTerms::None => {}
            PositionTerms::Additive(table) => {
                t.additive = Some(Tensor::from_vec(table, (len, self.cfg.d_model), dev)?)
            }
            PositionTerms::Rotary { cos, sin, .. } => {
                let half = self.cfg.head_dim() / 2;
                t.rotary = Some((
                    Tensor::from_vec(cos, (len, half), dev)?,
                    Tensor::from_vec(sin, (len, half), dev)?,
                ));
            }
            PositionTerms::Bias { bias, .. } => {
                t.bias = Some(Tensor::from_vec(bias, (self.cfg.heads, len, len), dev)?)
            }
            PositionTerms::Indices(idx) => t.indices = Some(Tensor::from_vec(idx, len * len, dev)?),
        }
        Ok(t)
    }

    /// Token embeddings plus the absolute position term: `[B·L][d]`.
    fn embed(&self, tokens: &Tensor, terms: &LenTerms) -> Result<Tensor> {
        let (b, l) = tokens.dims2()?;
        let d = self.cfg.d_model;
        let x = self.tok_emb.index_select(&tokens.flatten_all()?, 0)?;
        Ok(self.add_absolute(x, b, l, d, terms)?)
    }

    fn add_absolute(
        &self,
        x: Tensor,
        b: usize,
        l: usize,
        d: usize,
        terms: &LenTerms,
    ) -> candle_core::Result<Tensor> {
        let pe = match (self.cfg.scheme, &terms.additive) {
            (SchemeKind::Learned, _) => Some(self.pos[0].narrow(0, 0, l)?),
            (_, Some(table)) => Some(table.clone()),
            _ => None,
        };
        match pe {
            Some(pe) => x
                .reshape((b, l, d))?
                .broadcast_add(&pe)?
                .reshape((b * l, d)),
            None => Ok(x),
        }
    }

    /// Multi-head attention of `y [B·L][d]` with layer `layer`'s projections; heads
    /// concatenated, before the output projection: `[B·L][d]`.
    fn attention(
        &self,
        y: &Tensor,
        layer: &Layer,
        b: usize,
        terms: &LenTerms,
    ) -> candle_core::Result<Tensor> {
        let (l, h, hd) = (terms.len, self.cfg.heads, self.cfg.head_dim());
        let split = |w: &Tensor| -> candle_core::Result<Tensor> {
            lin(y, w)?
                .reshape((b, l, h, hd))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (mut q, mut k, v) = (split(&layer.wq)?, split(&layer.wk)?, split(&layer.wv)?);
        if let Some((cos, sin)) = &terms.rotary {
            q = rotate(&q, cos, sin)?;
            k = rotate(&k, cos, sin)?;
        }
        let scale = 1.0 / (hd as f64).sqrt();
        let mut scores = (q.matmul(&k.t()?)? * scale)?;
        // Shaw: E[i][j] = a[r_ij], then per query row i a [B·H][d_h] × [d_h][L] product.
        let shaw = match (self.cfg.scheme, &terms.indices) {
            (SchemeKind::Shaw, Some(idx)) => {
                let ek = self.pos[0].index_select(idx, 0)?.reshape((l, l, hd))?;
                let ev = self.pos[1].index_select(idx, 0)?.reshape((l, l, hd))?;
                let qi = q
                    .permute((2, 0, 1, 3))?
                    .contiguous()?
                    .reshape((l, b * h, hd))?;
                let rel = qi.matmul(&ek.transpose(1, 2)?.contiguous()?)?; // [L][B·H][L]
                let rel = rel.reshape((l, b, h, l))?.permute((1, 2, 0, 3))?;
                scores = (scores + (rel * scale)?)?;
                Some(ev)
            }
            _ => None,
        };
        if let Some(bias) = &terms.bias {
            scores = scores.broadcast_add(bias)?;
        }
        if let (SchemeKind::T5, Some(idx)) = (self.cfg.scheme, &terms.indices) {
            let bias = self.pos[0]
                .index_select(idx, 0)?
                .t()?
                .contiguous()?
                .reshape((h, l, l))?;
            scores = scores.broadcast_add(&bias)?;
        }
        let scores = scores.broadcast_add(&terms.causal)?;
        let w = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let mut o = w.matmul(&v)?; // [B][H][L][d_h]
        if let Some(ev) = shaw {
            let wi = w
                .permute((2, 0, 1, 3))?
                .contiguous()?
                .reshape((l, b * h, l))?;
            let rel = wi
                .matmul(&ev)?
                .reshape((l, b, h, hd))?
                .permute((1, 2, 0, 3))?;
            o = (o + rel)?;
        }
        o.transpose(1, 2)?.contiguous()?.reshape((b * l, h * hd))
    }

    /// Logits `[B·L][vocab]` for `tokens [B][L]` (`terms` built for `L`).
    pub fn forward(&self, tokens: &Tensor, terms: &LenTerms) -> Result<Tensor> {
        let (b, l) = tokens.dims2()?;
        if l != terms.len {
            return Err(LabError::invalid(
                "tokens",
                format!("{} positions (the terms' length), got {l}", terms.len),
            ));
        }
        let mut x = self.embed(tokens, terms)?;
        for layer in &self.layers {
            let y = layer_norm(&x, &layer.ln1_w, &layer.ln1_b)?;
            let a = self.attention(&y, layer, b, terms)?;
            x = (x + lin(&a, &layer.wo)?)?;
            let y = layer_norm(&x, &layer.ln2_w, &layer.ln2_b)?;
            let m = lin(&y, &layer.w1)?.broadcast_add(&layer.b1)?.gelu()?;
            x = (x + lin(&m, &layer.w2)?.broadcast_add(&layer.b2)?)?;
        }
        let x = layer_norm(&x, &self.lnf_w, &self.lnf_b)?;
        Ok(lin(&x, &self.head)?)
    }

    /// Layer 0's attention applied to `hidden [L][d]` directly (absolute position term added,
    /// no normalisation, no output projection): the computation of
    /// [`posenc::attention::SingleLayer::forward`] with causal masking, using the same code as
    /// [`Model::forward`]. Returns `[L][heads·d_h]`. For checking the lab against the reference.
    pub fn layer0_attention(&self, hidden: &[f32], len: usize) -> Result<Vec<f32>> {
        let d = self.cfg.d_model;
        if hidden.len() != len * d {
            return Err(LabError::invalid(
                "hidden",
                format!("{len} × {d} values, got {}", hidden.len()),
            ));
        }
        let terms = self.terms(len)?;
        let x = Tensor::from_vec(hidden.to_vec(), (len, d), &Device::Cpu)?;
        let x = self.add_absolute(x, 1, len, d, &terms)?;
        let o = self.attention(&x, &self.layers[0], 1, &terms)?;
        Ok(o.flatten_all()?.to_vec1::<f32>()?)
    }

    /// Layer 0's `W_q`, `W_k`, `W_v` as flat `[d][d]` (for the reference check).
    pub fn layer0_projections(&self) -> Result<[Vec<f32>; 3]> {
        let l = &self.layers[0];
        let f = |t: &Tensor| -> Result<Vec<f32>> { Ok(t.flatten_all()?.to_vec1::<f32>()?) };
        Ok([f(&l.wq)?, f(&l.wk)?, f(&l.wv)?])
    }
}

/// Mean of `-log p(target)` over the scored positions, and the log-probabilities' argmax hits.
pub fn masked_nll(logits: &Tensor, targets: &Tensor, weights: &Tensor) -> Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let picked = logp.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?;
    let total = weights.sum_all()?.to_scalar::<f32>()?.max(1.0);
    Ok(((picked * weights)?.sum_all()?.neg()? / f64::from(total))?)
}
