//! Each scheme's attention layer in the lab (candle tensors, the code the model trains with)
//! against posenc's reference attention (`posenc::attention::SingleLayer`, f64 accumulation), on
//! random weights, random position parameters and random hidden states.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};
use posenc::attention::{AttentionOptions, HeadConfig, Mask, SingleLayer};
use posenc_lab::model::{Model, ModelConfig};
use posenc_lab::scheme::ALL_SCHEMES;
use posenc_lab::task::Task;
use rand::SeedableRng;
use rand_distr::Distribution;

fn random(n: usize, std: f64, rng: &mut rand::rngs::ChaCha8Rng) -> Vec<f32> {
    let d = rand_distr::Normal::new(0.0, std).unwrap();
    (0..n).map(|_| d.sample(rng) as f32).collect()
}

#[test]
fn every_scheme_matches_the_reference_attention() {
    for scheme in ALL_SCHEMES {
        for (seed, len, d_model, heads) in [
            (1u64, 7usize, 32usize, 4usize),
            (2, 40, 48, 3),
            (3, 23, 64, 8),
        ] {
            let cfg = ModelConfig {
                task: Task::Copy,
                scheme,
                rope_scaling: None,
                vocab: Task::Copy.vocab(),
                d_model,
                heads,
                layers: 1,
                train_len: 16,
                max_len: 64,
                seed,
            };
            let (model, _, _) = Model::init(&cfg).unwrap();
            // Larger random weights and position parameters than the initialisation, so every
            // term (bias, relative tables, rotation) moves the attention weights visibly.
            let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(seed * 7919 + scheme as u64);
            let mut named: BTreeMap<String, Tensor> = model.named();
            for (name, t) in named.iter_mut() {
                if name.starts_with("pos.")
                    || name.ends_with(".wq")
                    || name.ends_with(".wk")
                    || name.ends_with(".wv")
                {
                    let std = if name.starts_with("pos.") { 0.7 } else { 0.35 };
                    *t = Tensor::from_vec(
                        random(t.elem_count(), std, &mut rng),
                        t.dims(),
                        &Device::Cpu,
                    )
                    .unwrap();
                }
            }
            let model = Model::from_named(cfg.clone(), &named).unwrap();
            let hidden = random(len * d_model, 1.0, &mut rng);

            let lab = model.layer0_attention(&hidden, len).unwrap();

            let [wq, wk, wv] = model.layer0_projections().unwrap();
            let reference_scheme = model
                .setup()
                .to_reference_scheme(len, &model.position_parameters().unwrap())
                .unwrap();
            let layer = SingleLayer::new(
                HeadConfig::mha(heads, d_model / heads).unwrap(),
                d_model,
                wq,
                wk,
                wv,
                reference_scheme,
            )
            .unwrap();
            let positions: Vec<u64> = (0..len as u64).collect();
            let reference = layer
                .forward(
                    &hidden,
                    &positions,
                    &Mask::causal_by_position(),
                    &AttentionOptions::default(),
                )
                .unwrap()
                .output;

            assert_eq!(lab.len(), reference.len());
            let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
            let worst = lab
                .iter()
                .zip(&reference)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(
                scale > 0.1,
                "{scheme:?}: a degenerate test (max |output| {scale})"
            );
            assert!(worst <= 2e-5 * scale.max(1.0), "{scheme:?} seed {seed} len {len}: max |lab - reference| = {worst} (outputs up to {scale})");
        }
    }
}

/// The position terms differ between schemes: the check above would catch a scheme whose
/// signal is dropped (its output would equal NoPE's).
#[test]
fn schemes_change_the_output() {
    let len = 20;
    let mut outputs = Vec::new();
    for scheme in ALL_SCHEMES {
        let cfg = ModelConfig {
            task: Task::Copy,
            scheme,
            rope_scaling: None,
            vocab: 16,
            d_model: 32,
            heads: 4,
            layers: 1,
            train_len: 16,
            max_len: 32,
            seed: 5,
        };
        let (model, _, _) = Model::init(&cfg).unwrap();
        let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(11);
        let hidden = random(len * 32, 1.0, &mut rng);
        outputs.push((scheme, model.layer0_attention(&hidden, len).unwrap()));
    }
    let nope = &outputs[0].1;
    for (scheme, out) in &outputs[1..] {
        let diff = out
            .iter()
            .zip(nope)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff > 1e-6, "{scheme:?} gives NoPE's output");
    }
}
