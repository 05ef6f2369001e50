//! One training step of the same small decoder-only transformer (pre-norm, causal, no position
//! signal, GELU MLP, cross-entropy, AdamW) in candle and in burn, timed in interleaved rounds.
//! Activations are `[batch·len][d]` matrices between layers, as in `posenc-lab`.
//!
//! `cargo run --release -- [--batch 32] [--seq 64] [--d-model 64] [--layers 2] [--vocab 16]
//! [--rounds 5] [--steps 5] [--warmup 5]`
//!
//! Each round runs the three frameworks one after another in a rotating order (so none always
//! runs first or last), and records wall time and the process's CPU time
//! (`CLOCK_PROCESS_CPUTIME_ID`, all threads) per step. CPU time per step equal to wall time per
//! step on an idle core says the framework used one thread; on a loaded machine CPU time is the
//! steadier measure of the work a step costs.

use std::time::Instant;

#[derive(Clone, Copy, Debug)]
struct Size {
    vocab: usize,
    d: usize,
    heads: usize,
    layers: usize,
    seq: usize,
    batch: usize,
}

fn tokens(s: &Size) -> (Vec<u32>, Vec<u32>) {
    // A fixed pseudo-random batch; targets are the inputs shifted by one.
    let mut x = 12345u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % s.vocab as u64) as u32
    };
    let all: Vec<u32> = (0..s.batch * (s.seq + 1)).map(|_| next()).collect();
    let mut inp = Vec::new();
    let mut tgt = Vec::new();
    for b in 0..s.batch {
        let row = &all[b * (s.seq + 1)..(b + 1) * (s.seq + 1)];
        inp.extend_from_slice(&row[..s.seq]);
        tgt.extend_from_slice(&row[1..]);
    }
    (inp, tgt)
}

mod with_candle {
    use super::Size;
    use candle_core::{DType, Device, Module, Tensor, D};
    use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};

    // candle-nn's fused layer_norm and softmax_last_dim have no backward pass; the composed
    // ops (`layer_norm_slow`, `softmax`) do.
    struct Ln(Tensor, Tensor);
    impl Ln {
        fn new(d: usize, vb: VarBuilder) -> candle_core::Result<Ln> {
            Ok(Ln(
                vb.get_with_hints(d, "w", candle_nn::Init::Const(1.0))?,
                vb.get_with_hints(d, "b", candle_nn::Init::Const(0.0))?,
            ))
        }
        fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
            candle_nn::ops::layer_norm_slow(x, &self.0, &self.1, 1e-5)
        }
    }

    struct Layer {
        ln1: Ln,
        qkv: candle_nn::Linear,
        proj: candle_nn::Linear,
        ln2: Ln,
        up: candle_nn::Linear,
        down: candle_nn::Linear,
    }

    pub struct Run {
        emb: candle_nn::Embedding,
        layers: Vec<Layer>,
        ln_f: Ln,
        head: candle_nn::Linear,
        opt: AdamW,
        mask: Tensor,
        inp: Tensor,
        tgt: Tensor,
        s: Size,
    }

    impl Run {
        pub fn new(s: Size, inp: &[u32], tgt: &[u32]) -> candle_core::Result<Run> {
            let dev = Device::Cpu;
            let vm = VarMap::new();
            let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
            let d = s.d;
            let emb = candle_nn::embedding(s.vocab, d, vb.pp("emb"))?;
            let mut layers = Vec::new();
            for l in 0..s.layers {
                let vb = vb.pp(format!("l{l}"));
                layers.push(Layer {
                    ln1: Ln::new(d, vb.pp("ln1"))?,
                    qkv: candle_nn::linear(d, 3 * d, vb.pp("qkv"))?,
                    proj: candle_nn::linear(d, d, vb.pp("proj"))?,
                    ln2: Ln::new(d, vb.pp("ln2"))?,
                    up: candle_nn::linear(d, 4 * d, vb.pp("up"))?,
                    down: candle_nn::linear(4 * d, d, vb.pp("down"))?,
                });
            }
            let ln_f = Ln::new(d, vb.pp("lnf"))?;
            let head = candle_nn::linear(d, s.vocab, vb.pp("head"))?;
            let opt = AdamW::new(
                vm.all_vars(),
                ParamsAdamW {
                    lr: 1e-3,
                    ..Default::default()
                },
            )?;
            let mask: Vec<f32> = (0..s.seq * s.seq)
                .map(|i| {
                    if i % s.seq > i / s.seq {
                        f32::NEG_INFINITY
                    } else {
                        0.0
                    }
                })
                .collect();
            let mask = Tensor::from_vec(mask, (s.seq, s.seq), &dev)?;
            let inp = Tensor::from_slice(inp, (s.batch, s.seq), &dev)?;
            let tgt = Tensor::from_slice(tgt, s.batch * s.seq, &dev)?;
            Ok(Run {
                emb,
                layers,
                ln_f,
                head,
                opt,
                mask,
                inp,
                tgt,
                s,
            })
        }

        pub fn step(&mut self) -> candle_core::Result<f32> {
            let s = self.s;
            let (b, l, d, h) = (s.batch, s.seq, s.d, s.heads);
            let hd = d / h;
            let mut x = self.emb.forward(&self.inp)?.reshape((b * l, d))?;
            for layer in &self.layers {
                let y = layer.ln1.forward(&x)?;
                let qkv = layer.qkv.forward(&y)?.reshape((b, l, 3, h, hd))?;
                let q = qkv
                    .narrow(2, 0, 1)?
                    .squeeze(2)?
                    .transpose(1, 2)?
                    .contiguous()?;
                let k = qkv
                    .narrow(2, 1, 1)?
                    .squeeze(2)?
                    .transpose(1, 2)?
                    .contiguous()?;
                let v = qkv
                    .narrow(2, 2, 1)?
                    .squeeze(2)?
                    .transpose(1, 2)?
                    .contiguous()?;
                let att = (q.matmul(&k.t()?)? * (1.0 / (hd as f64).sqrt()))?;
                let att = att.broadcast_add(&self.mask)?;
                let att = candle_nn::ops::softmax(&att, D::Minus1)?;
                let o = att.matmul(&v)?.transpose(1, 2)?.reshape((b * l, d))?;
                x = (x + layer.proj.forward(&o)?)?;
                let y = layer.ln2.forward(&x)?;
                x = (x + layer.down.forward(&layer.up.forward(&y)?.gelu()?)?)?;
            }
            let logits = self.head.forward(&self.ln_f.forward(&x)?)?;
            let loss =
                candle_nn::loss::cross_entropy(&logits.reshape((b * l, s.vocab))?, &self.tgt)?;
            self.opt.backward_step(&loss)?;
            loss.to_scalar::<f32>()
        }
    }
}

mod with_burn {
    use super::Size;
    use burn::module::Module;
    use burn::nn::loss::CrossEntropyLossConfig;
    use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
    use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
    use burn::tensor::{activation, Device, Int, Tensor, TensorData};

    #[derive(Module, Debug)]
    pub struct Layer {
        ln1: LayerNorm,
        qkv: Linear,
        proj: Linear,
        ln2: LayerNorm,
        up: Linear,
        down: Linear,
    }

    #[derive(Module, Debug)]
    pub struct Model {
        emb: Embedding,
        layers: Vec<Layer>,
        ln_f: LayerNorm,
        head: Linear,
    }

    pub struct Run {
        model: Option<Model>,
        opt: ModuleOptimizer,
        mask: Tensor<2>,
        inp: Tensor<2, Int>,
        tgt: Tensor<1, Int>,
        s: Size,
    }

    impl Run {
        pub fn new(s: Size, dev: Device, inp: &[u32], tgt: &[u32]) -> Run {
            let d = s.d;
            let layers = (0..s.layers)
                .map(|_| Layer {
                    ln1: LayerNormConfig::new(d).init(&dev),
                    qkv: LinearConfig::new(d, 3 * d).init(&dev),
                    proj: LinearConfig::new(d, d).init(&dev),
                    ln2: LayerNormConfig::new(d).init(&dev),
                    up: LinearConfig::new(d, 4 * d).init(&dev),
                    down: LinearConfig::new(4 * d, d).init(&dev),
                })
                .collect();
            let model = Model {
                emb: EmbeddingConfig::new(s.vocab, d).init(&dev),
                layers,
                ln_f: LayerNormConfig::new(d).init(&dev),
                head: LinearConfig::new(d, s.vocab).init(&dev),
            };
            let mask: Vec<f32> = (0..s.seq * s.seq)
                .map(|i| if i % s.seq > i / s.seq { -1e9 } else { 0.0 })
                .collect();
            let mask = Tensor::<2>::from_data(TensorData::new(mask, [s.seq, s.seq]), &dev);
            let inp: Vec<i64> = inp.iter().map(|&t| t as i64).collect();
            let tgt: Vec<i64> = tgt.iter().map(|&t| t as i64).collect();
            let inp = Tensor::<2, Int>::from_data(TensorData::new(inp, [s.batch, s.seq]), &dev);
            let tgt = Tensor::<1, Int>::from_data(TensorData::new(tgt, [s.batch * s.seq]), &dev);
            let opt: ModuleOptimizer = AdamWConfig::new().init();
            Run {
                model: Some(model),
                opt,
                mask,
                inp,
                tgt,
                s,
            }
        }

        pub fn step(&mut self) -> f32 {
            let s = self.s;
            let (b, l, d, h) = (s.batch, s.seq, s.d, s.heads);
            let hd = d / h;
            let model = self.model.take().expect("model");
            let mut x = model.emb.forward(self.inp.clone()).reshape([b * l, d]);
            for layer in &model.layers {
                let y = layer.ln1.forward(x.clone());
                let qkv = layer.qkv.forward(y).reshape([b, l, 3, h, hd]);
                let part = |i: usize| -> Tensor<4> {
                    qkv.clone()
                        .narrow(2, i, 1)
                        .reshape([b, l, h, hd])
                        .swap_dims(1, 2)
                };
                let (q, k, v) = (part(0), part(1), part(2));
                let att = q
                    .matmul(k.swap_dims(2, 3))
                    .mul_scalar(1.0 / (hd as f64).sqrt());
                let att = att + self.mask.clone().unsqueeze::<4>();
                let att = activation::softmax(att, 3);
                let o = att.matmul(v).swap_dims(1, 2).reshape([b * l, d]);
                x = x + layer.proj.forward(o);
                let y = layer.ln2.forward(x.clone());
                x = x + layer.down.forward(activation::gelu(layer.up.forward(y)));
            }
            let logits = model.head.forward(model.ln_f.forward(x));
            let loss = CrossEntropyLossConfig::new()
                .init(&logits.device())
                .forward(logits.reshape([b * l, s.vocab]), self.tgt.clone());
            let value: f32 = loss.clone().into_scalar::<f32>();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            self.model = Some(self.opt.step(1e-3, model, grads));
            value
        }
    }
}

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

/// CPU time of the whole process (every thread), seconds.
fn cpu_s() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to write.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime");
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

fn min_median(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    let med = if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    };
    (v[0], med)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let s = Size {
        vocab: arg(&args, "--vocab", 16),
        d: arg(&args, "--d-model", 64),
        heads: 4,
        layers: arg(&args, "--layers", 2),
        seq: arg(&args, "--seq", 64),
        batch: arg(&args, "--batch", 32),
    };
    let rounds = arg(&args, "--rounds", 5);
    let steps = arg(&args, "--steps", 5);
    let warmup = arg(&args, "--warmup", 5);
    let (inp, tgt) = tokens(&s);
    let mut c = with_candle::Run::new(s, &inp, &tgt).expect("candle");
    let mut flex = with_burn::Run::new(s, burn::tensor::Device::flex().autodiff(), &inp, &tgt);
    #[allow(deprecated)] // ndarray is measured next to its successor flex
    let mut nd = with_burn::Run::new(s, burn::tensor::Device::ndarray().autodiff(), &inp, &tgt);
    let names = ["candle 0.11", "burn 0.22 flex", "burn 0.22 ndarray"];
    let mut run = |f: usize| -> f32 {
        match f {
            0 => c.step().expect("candle step"),
            1 => flex.step(),
            _ => nd.step(),
        }
    };
    // Warm-up (allocations, thread pools, caches).
    for _ in 0..warmup {
        for f in 0..3 {
            run(f);
        }
    }
    let mut wall = vec![Vec::new(); 3];
    let mut cpu = vec![Vec::new(); 3];
    let mut last = [0f32; 3];
    for r in 0..rounds {
        for k in 0..3 {
            let f = (r + k) % 3;
            let (t, c0) = (Instant::now(), cpu_s());
            for _ in 0..steps {
                last[f] = run(f);
            }
            wall[f].push(t.elapsed().as_secs_f64() * 1e3 / steps as f64);
            cpu[f].push((cpu_s() - c0) * 1e3 / steps as f64);
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "size {s:?}, warm-up {warmup} steps each, {rounds} interleaved rounds (rotating order) of {steps} steps, RAYON_NUM_THREADS={}, load average {}",
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "unset".into()),
        load.trim()
    );
    let tok = (s.batch * s.seq) as f64;
    let (_, wc) = min_median(wall[0].clone());
    let (_, cc) = min_median(cpu[0].clone());
    println!("framework            wall ms/step min / median (x candle)   CPU ms/step min / median (x candle)   tokens/s (median wall)  last loss");
    for f in 0..3 {
        let (wmin, wmed) = min_median(wall[f].clone());
        let (cmin, cmed) = min_median(cpu[f].clone());
        println!(
            "{:<20} {wmin:8.2} / {wmed:8.2} ({:.2}x)            {cmin:8.2} / {cmed:8.2} ({:.2}x)            {:8.0}  {:.3}",
            names[f],
            wmed / wc,
            cmed / cc,
            tok / wmed * 1e3,
            last[f]
        );
    }
}
