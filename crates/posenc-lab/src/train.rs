//! Training: AdamW on the masked next-token loss, linear warm-up then cosine decay, gradient
//! clipping, a loss curve and the measured speed.

use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::model::{masked_nll, Model, ModelConfig};
use crate::task::{Batch, DataSource};
use crate::{LabError, Result};

/// Most training steps accepted.
pub const MAX_STEPS: usize = 10_000_000;
/// Largest batch accepted.
pub const MAX_BATCH: usize = 4096;

/// Optimisation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    /// Optimiser steps.
    pub steps: usize,
    /// Sequences per step.
    pub batch: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Linear warm-up steps (then cosine decay to 10% of the peak).
    pub warmup: usize,
    /// AdamW weight decay of the matrices (embeddings, position tables, norms and biases get none,
    /// so unseen rows of a learned table stay as initialised).
    pub weight_decay: f64,
    /// Global gradient-norm clip.
    pub clip: f64,
    /// Loss recorded every this many steps (the mean since the last record).
    pub log_every: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            steps: 1000,
            batch: 32,
            lr: 1e-3,
            warmup: 50,
            weight_decay: 0.01,
            clip: 1.0,
            log_every: 10,
        }
    }
}

impl TrainOptions {
    /// Checks the settings; errors name the flag.
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 || self.steps > MAX_STEPS {
            return Err(LabError::invalid(
                "--steps",
                format!("1..={MAX_STEPS}, got {}", self.steps),
            ));
        }
        if self.batch == 0 || self.batch > MAX_BATCH {
            return Err(LabError::invalid(
                "--batch",
                format!("1..={MAX_BATCH}, got {}", self.batch),
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr < 1.0) {
            return Err(LabError::invalid(
                "--lr",
                format!("a number in (0, 1), got {}", self.lr),
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(LabError::invalid(
                "--weight-decay",
                format!("a number >= 0, got {}", self.weight_decay),
            ));
        }
        if !(self.clip.is_finite() && self.clip > 0.0) {
            return Err(LabError::invalid(
                "--clip",
                format!("a number > 0, got {}", self.clip),
            ));
        }
        if self.log_every == 0 {
            return Err(LabError::invalid("--log-every", "at least 1"));
        }
        Ok(())
    }

    /// Learning rate at `step` (0-based).
    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.lr * (step + 1) as f64 / self.warmup as f64;
        }
        let span = (self.steps - self.warmup).max(1) as f64;
        let t = ((step - self.warmup) as f64 / span).min(1.0);
        self.lr * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
    }
}

/// The training log (saved as `train-log.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainLog {
    /// `(step, mean loss over the steps since the previous point)`; the step is 1-based.
    pub loss_curve: Vec<(usize, f64)>,
    /// Loss of the last recorded point.
    pub final_loss: f64,
    /// Steps run.
    pub steps: usize,
    /// Training tokens processed (`steps · batch · train_len`).
    pub tokens: u64,
    /// Wall time of the loop, seconds.
    pub wall_s: f64,
    /// `tokens / wall_s`.
    pub tokens_per_s: f64,
    /// Parameters of the model.
    pub parameters: usize,
    /// Threads the tensor library used.
    pub threads: usize,
    /// The options used.
    pub options: TrainOptions,
}

/// What a progress callback sees after each step.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Steps done.
    pub step: usize,
    /// Total steps.
    pub steps: usize,
    /// Loss of this step.
    pub loss: f64,
}

/// Batch tensors: inputs `[B][L]`, targets `[B·L]`, weights `[B·L]`.
pub fn batch_tensors(batch: &Batch) -> Result<(Tensor, Tensor, Tensor)> {
    let dev = &Device::Cpu;
    Ok((
        Tensor::from_slice(&batch.inputs, (batch.rows, batch.len), dev)?,
        Tensor::from_slice(&batch.targets, batch.rows * batch.len, dev)?,
        Tensor::from_slice(&batch.weights, batch.rows * batch.len, dev)?,
    ))
}

/// Scales every gradient so that their global norm is at most `clip`; returns the norm.
fn clip_gradients(
    grads: &mut candle_core::backprop::GradStore,
    vars: &[&Var],
    clip: f64,
) -> Result<f64> {
    let mut sq = 0.0f64;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            sq += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
        }
    }
    let norm = sq.sqrt();
    if !norm.is_finite() {
        return Err(LabError::Diverged(format!("gradient norm {norm}")));
    }
    if norm > clip {
        let f = clip / norm;
        for v in vars {
            if let Some(g) = grads.remove(v.as_tensor()) {
                grads.insert(v.as_tensor(), (g * f)?);
            }
        }
    }
    Ok(norm)
}

/// Trains a model from scratch on `data`; `progress` is called after every step.
///
/// Deterministic for a given configuration, options and data (batches come from a ChaCha8
/// generator seeded by `cfg.seed`).
pub fn train(
    cfg: &ModelConfig,
    opts: &TrainOptions,
    data: &DataSource,
    progress: &mut dyn FnMut(Progress),
) -> Result<(Model, TrainLog)> {
    cfg.validate()?;
    opts.validate()?;
    if data.task() != cfg.task {
        return Err(LabError::invalid("--task", "the data source's task"));
    }
    let (model, decay, no_decay) = Model::init(cfg)?;
    let params = |wd: f64| ParamsAdamW {
        lr: opts.lr,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: wd,
    };
    let mut opt_decay = AdamW::new(decay.clone(), params(opts.weight_decay))?;
    let mut opt_plain = AdamW::new(no_decay.clone(), params(0.0))?;
    let all: Vec<&Var> = decay.iter().chain(no_decay.iter()).collect();
    let terms = model.terms(cfg.train_len)?;
    // A stream of its own for the batches, so changing the init does not change the data.
    let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(0xDA7A));
    let mut curve = Vec::new();
    let (mut acc, mut acc_n) = (0.0f64, 0usize);
    let start = Instant::now();
    for step in 0..opts.steps {
        let batch = data.train_batch(opts.batch, cfg.train_len, &mut rng);
        let (x, y, w) = batch_tensors(&batch)?;
        let logits = model.forward(&x, &terms)?;
        let loss = masked_nll(&logits, &y, &w)?;
        let value = f64::from(loss.to_scalar::<f32>()?);
        if !value.is_finite() {
            return Err(LabError::Diverged(format!(
                "loss {value} at step {}",
                step + 1
            )));
        }
        let mut grads = loss.backward()?;
        clip_gradients(&mut grads, &all, opts.clip)?;
        let lr = opts.lr_at(step);
        opt_decay.set_learning_rate(lr);
        opt_plain.set_learning_rate(lr);
        opt_decay.step(&grads)?;
        opt_plain.step(&grads)?;
        acc += value;
        acc_n += 1;
        if (step + 1) % opts.log_every == 0 || step + 1 == opts.steps {
            curve.push((step + 1, acc / acc_n as f64));
            acc = 0.0;
            acc_n = 0;
        }
        progress(Progress {
            step: step + 1,
            steps: opts.steps,
            loss: value,
        });
    }
    let wall_s = start.elapsed().as_secs_f64();
    let tokens = (opts.steps * opts.batch * cfg.train_len) as u64;
    let log = TrainLog {
        final_loss: curve.last().map(|c| c.1).unwrap_or(f64::NAN),
        loss_curve: curve,
        steps: opts.steps,
        tokens,
        wall_s,
        tokens_per_s: tokens as f64 / wall_s.max(1e-9),
        parameters: model.parameter_count(),
        threads: candle_core::utils::get_num_threads(),
        options: opts.clone(),
    };
    Ok((model, log))
}
