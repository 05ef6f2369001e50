//! Training lowers the loss; evaluation of a saved checkpoint is deterministic; a RoPE scaling
//! reaches the model.

use posenc_lab::eval::evaluate;
use posenc_lab::model::ModelConfig;
use posenc_lab::scheme::{SchemeKind, ALL_SCHEMES};
use posenc_lab::task::{DataSource, Task};
use posenc_lab::train::{train, TrainOptions};

fn tiny(task: Task, scheme: SchemeKind) -> ModelConfig {
    ModelConfig {
        task,
        scheme,
        rope_scaling: None,
        vocab: task.vocab(),
        d_model: 32,
        heads: 4,
        layers: 1,
        train_len: 16,
        max_len: 64,
        seed: 3,
    }
}

fn opts(steps: usize) -> TrainOptions {
    TrainOptions {
        steps,
        batch: 16,
        lr: 3e-3,
        warmup: 2,
        log_every: 1,
        ..TrainOptions::default()
    }
}

#[test]
fn twenty_steps_lower_the_loss_for_every_scheme() {
    let data = DataSource::algorithmic(Task::Copy).unwrap();
    for scheme in ALL_SCHEMES {
        let (_, log) = train(&tiny(Task::Copy, scheme), &opts(20), &data, &mut |_| {}).unwrap();
        let first: f64 = log.loss_curve[..3].iter().map(|p| p.1).sum::<f64>() / 3.0;
        let last: f64 = log.loss_curve[17..].iter().map(|p| p.1).sum::<f64>() / 3.0;
        assert_eq!(log.loss_curve.len(), 20);
        assert!(
            last < first - 0.1,
            "{scheme:?}: loss {first:.3} -> {last:.3}"
        );
        assert!(log.tokens_per_s > 0.0);
    }
}

#[test]
fn language_modelling_loss_falls_on_a_text() {
    let text = "the quick brown fox jumps over the lazy dog. ".repeat(60);
    let data = DataSource::text(&text, 64).unwrap();
    let (_, log) = train(
        &tiny(Task::Lm, SchemeKind::Rope),
        &opts(20),
        &data,
        &mut |_| {},
    )
    .unwrap();
    assert!(
        log.loss_curve[19].1 < log.loss_curve[0].1 - 0.5,
        "{:?}",
        log.loss_curve
    );
}

#[test]
fn eval_of_a_saved_checkpoint_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    for scheme in [
        SchemeKind::Learned,
        SchemeKind::T5,
        SchemeKind::Shaw,
        SchemeKind::Rope,
    ] {
        let cfg = tiny(Task::Reverse, scheme);
        let data = DataSource::algorithmic(Task::Reverse).unwrap();
        let (model, log) = train(&cfg, &opts(5), &data, &mut |_| {}).unwrap();
        let sub = dir.path().join(scheme.name());
        posenc_lab::checkpoint::save(&sub, &model, Some(&log)).unwrap();
        let lengths = [16, 32, 64];
        let in_memory = evaluate(&model, &data, &lengths, 24, 7, &mut |_, _| {}).unwrap();
        let a = evaluate(
            &posenc_lab::checkpoint::load(&sub).unwrap(),
            &data,
            &lengths,
            24,
            7,
            &mut |_, _| {},
        )
        .unwrap();
        let b = evaluate(
            &posenc_lab::checkpoint::load(&sub).unwrap(),
            &data,
            &lengths,
            24,
            7,
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(a, b, "{scheme:?}");
        assert_eq!(
            a, in_memory,
            "{scheme:?}: the checkpoint round trip changed the model"
        );
        assert_eq!(posenc_lab::checkpoint::load_log(&sub).unwrap(), log);
        assert_eq!(a.results.len(), 3);
        assert!(a
            .results
            .iter()
            .all(|r| r.predictions > 0 && r.token_accuracy.is_some()));
    }
}

#[test]
fn the_same_seed_trains_the_same_model() {
    let data = DataSource::algorithmic(Task::Addition).unwrap();
    let cfg = tiny(Task::Addition, SchemeKind::Alibi);
    let (_, a) = train(&cfg, &opts(6), &data, &mut |_| {}).unwrap();
    let (_, b) = train(&cfg, &opts(6), &data, &mut |_| {}).unwrap();
    assert_eq!(a.loss_curve, b.loss_curve);
    let (_, c) = train(
        &ModelConfig { seed: 4, ..cfg },
        &opts(6),
        &data,
        &mut |_| {},
    )
    .unwrap();
    assert_ne!(a.loss_curve, c.loss_curve);
}

#[test]
fn a_rope_scaling_changes_long_lengths_only_as_its_formula_says() {
    let data = DataSource::algorithmic(Task::Copy).unwrap();
    let cfg = tiny(Task::Copy, SchemeKind::Rope);
    let (model, _) = train(&cfg, &opts(5), &data, &mut |_| {}).unwrap();
    let scaled_cfg = ModelConfig {
        rope_scaling: Some("linear:factor=4".into()),
        ..cfg.clone()
    };
    let scaled = posenc_lab::model::Model::from_named(scaled_cfg, &model.named()).unwrap();
    let plain = evaluate(&model, &data, &[64], 16, 1, &mut |_, _| {}).unwrap();
    let with = evaluate(&scaled, &data, &[64], 16, 1, &mut |_, _| {}).unwrap();
    assert_ne!(plain.results[0].nll, with.results[0].nll);
    for spec in ["linear:factr=4", "linear:factor=4,factr=2", "warp:factor=2"] {
        let bad = ModelConfig {
            rope_scaling: Some(spec.into()),
            ..cfg.clone()
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(
            err.contains("--rope-scaling") || err.contains("warp"),
            "{spec}: {err}"
        );
    }
    let not_rope = ModelConfig {
        scheme: SchemeKind::Alibi,
        rope_scaling: Some("linear:factor=2".into()),
        ..cfg
    };
    assert!(not_rope
        .validate()
        .unwrap_err()
        .to_string()
        .contains("--rope-scaling"));
}

#[test]
fn a_learned_table_keeps_its_unseen_rows() {
    let data = DataSource::algorithmic(Task::Copy).unwrap();
    let cfg = tiny(Task::Copy, SchemeKind::Learned);
    let (fresh, _, _) = posenc_lab::model::Model::init(&cfg).unwrap();
    let (trained, _) = train(&cfg, &opts(10), &data, &mut |_| {}).unwrap();
    let before = &fresh.position_parameters().unwrap()[0];
    let after = &trained.position_parameters().unwrap()[0];
    let d = cfg.d_model;
    // Rows 0..train_len moved; rows past the training length are bit-for-bit the initial ones.
    assert_ne!(before[..16 * d], after[..16 * d]);
    assert_eq!(before[16 * d..], after[16 * d..]);
    // And they are posenc's seeded table.
    let table = posenc::learned::LearnedTable::random(
        64,
        d,
        3 ^ 0x5EED_7AB1E,
        posenc_lab::model::LEARNED_INIT_STD,
    )
    .unwrap();
    assert_eq!(table.data(), &before[..]);
}
