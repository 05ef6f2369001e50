//! Temporary stand-in for `posenc::rope` (same names and shapes) until it lands on main.
#![allow(missing_docs, dead_code)]

use posenc::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RopeLayout {
    #[default]
    HalfSplit,
    Interleaved,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    Exact,
    Hf,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    Default,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RopeParams {
    pub base: f64,
    pub head_dim: usize,
    pub rotary_dim: usize,
    pub max_position_embeddings: usize,
    pub scaling: RopeScaling,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RopeFrequencies {
    pub inv_freq: Vec<f64>,
    pub attention_factor: f64,
    pub precision: Precision,
}

impl RopeFrequencies {
    pub fn pairs(&self) -> usize {
        self.inv_freq.len()
    }
}

impl RopeParams {
    pub fn new(base: f64, head_dim: usize) -> Result<Self> {
        Ok(RopeParams {
            base,
            head_dim,
            rotary_dim: head_dim,
            max_position_embeddings: 2048,
            scaling: RopeScaling::Default,
        })
    }

    pub fn frequencies(
        &self,
        _seq_len: Option<usize>,
        precision: Precision,
    ) -> Result<RopeFrequencies> {
        let d = self.rotary_dim;
        let inv_freq = (0..d / 2)
            .map(|i| match precision {
                Precision::Exact => self.base.powf(-((2 * i) as f64) / d as f64),
                Precision::Hf => {
                    (1.0f32 / (self.base as f32).powf((2 * i) as f32 / d as f32)) as f64
                }
            })
            .collect();
        Ok(RopeFrequencies {
            inv_freq,
            attention_factor: 1.0,
            precision,
        })
    }
}

pub fn cos_sin_row(
    freqs: &RopeFrequencies,
    position: u64,
    cos: &mut [f32],
    sin: &mut [f32],
) -> Result<()> {
    for ((c, s), &f) in cos.iter_mut().zip(sin.iter_mut()).zip(&freqs.inv_freq) {
        let angle = match freqs.precision {
            Precision::Exact => position as f64 * f,
            Precision::Hf => (position as f32 * f as f32) as f64,
        };
        *c = angle.cos() as f32;
        *s = angle.sin() as f32;
    }
    Ok(())
}

pub fn apply_rotary_heads(
    x: &mut [f32],
    n_heads: usize,
    head_dim: usize,
    cos: &[f32],
    sin: &[f32],
    layout: RopeLayout,
) -> Result<()> {
    if n_heads * head_dim != x.len() {
        return Err(Error::shape("heads", n_heads * head_dim, x.len()));
    }
    let pairs = cos.len();
    for head in x.chunks_exact_mut(head_dim) {
        for i in 0..pairs {
            let (ia, ib) = match layout {
                RopeLayout::HalfSplit => (i, i + pairs),
                RopeLayout::Interleaved => (2 * i, 2 * i + 1),
            };
            let (a, b) = (head[ia], head[ib]);
            head[ia] = a * cos[i] - b * sin[i];
            head[ib] = a * sin[i] + b * cos[i];
        }
    }
    Ok(())
}
