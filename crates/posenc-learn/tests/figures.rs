//! The explorer's figures, the why-position demo, the predictions and the advisor, through the
//! crate's public API, checked against independent f64 formulas written here.

use posenc::relative::T5Buckets;
use posenc::sinusoidal::SinusoidalLayout;
use posenc_learn::figures::{
    decay_bound, distance_profile, nope_counting, qk_rotation, sinusoidal_similarity, walk,
    WALK_TOKENS,
};
use posenc_learn::{
    advise, check_prediction, predictions, tokenize, why_position, AdviceRequest, Arch, FactValue,
    LearnErrorKind, WhyRequest, WhyScheme,
};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn similarity_depends_on_the_offset_only() {
    for layout in [SinusoidalLayout::Interleaved, SinusoidalLayout::Concat] {
        let s = sinusoidal_similarity(48, 1000, 32, 10_000.0, layout).unwrap();
        assert_eq!(s.values.len(), 48 * 48);
        assert!(s.max_offset_deviation < 1e-5, "{}", s.max_offset_deviation);
        // Σ_i cos(Δ ω_i) / (d/2) with ω_i = 10000^(-2i/d).
        for (delta, &v) in s.by_offset.iter().enumerate() {
            let want: f64 = (0..16)
                .map(|i| (delta as f64 * 10_000f64.powf(-(2 * i) as f64 / 32.0)).cos())
                .sum::<f64>()
                / 16.0;
            assert!(close(v, want, 1e-5), "Δ {delta}: {v} vs {want}");
        }
        assert!(close(s.self_dot, 16.0, 1e-4));
    }
    assert!(sinusoidal_similarity(0, 0, 8, 1e4, SinusoidalLayout::Interleaved).is_err());
    let e = sinusoidal_similarity(10_000, 0, 8, 1e4, SinusoidalLayout::Interleaved).unwrap_err();
    assert_eq!(e.kind, LearnErrorKind::InvalidRequest);
}

#[test]
fn qk_rotation_keeps_the_dot_product_under_a_shared_shift() {
    let r = qk_rotation(64, 10_000.0, 5, 7, 19, 1234, 3, 200, 401).unwrap();
    let theta = 10_000f64.powf(-10.0 / 64.0);
    assert!(close(r.theta, theta, 1e-12));
    let rot = |v: [f64; 2], a: f64| {
        [
            v[0] * a.cos() - v[1] * a.sin(),
            v[0] * a.sin() + v[1] * a.cos(),
        ]
    };
    let (qr, kr) = (rot(r.q, 7.0 * theta), rot(r.k, 19.0 * theta));
    for c in 0..2 {
        assert!(close(r.q_rot[c], qr[c], 1e-5) && close(r.k_rot[c], kr[c], 1e-5));
    }
    let dot = qr[0] * kr[0] + qr[1] * kr[1];
    assert!(close(r.dot, dot, 1e-5) && close(r.dot_shifted, dot, 1e-4));
    // q·R(Δ)k, for every sampled offset.
    assert_eq!(r.offsets.len(), r.dots.len());
    assert_eq!((r.offsets[0], *r.offsets.last().unwrap()), (-200, 200));
    for (&o, &d) in r.offsets.iter().zip(&r.dots) {
        let k = rot(r.k, o as f64 * theta);
        assert!(close(d, r.q[0] * k[0] + r.q[1] * k[1], 1e-5), "offset {o}");
    }
    // The angle between them is (n - m)·θ plus the angle between q and k, wrapped.
    let base = r.k[1].atan2(r.k[0]) - r.q[1].atan2(r.q[0]) + 12.0 * theta;
    let wrapped = base - (base / std::f64::consts::TAU).round() * std::f64::consts::TAU;
    assert!(close(r.angle_between, wrapped, 1e-5));
    assert!(qk_rotation(64, 10_000.0, 32, 0, 0, 0, 0, 10, 10).is_err());
    assert!(qk_rotation(64, 10_000.0, 0, 3, 0, -5, 0, 10, 10).is_err());
}

#[test]
fn decay_bound_is_su_et_al_and_criterion_is_men_et_al() {
    let b = decay_bound(128, 10_000.0, 256, 257).unwrap();
    assert_eq!(b.distances, (0..=256).collect::<Vec<_>>());
    let theta: Vec<f64> = (0..64)
        .map(|i| 10_000f64.powf(-(2 * i) as f64 / 128.0))
        .collect();
    for &d in &[0usize, 1, 10, 100, 256] {
        let (mut re, mut im, mut sum) = (0.0, 0.0, 0.0);
        for t in &theta {
            re += (d as f64 * t).cos();
            im += (d as f64 * t).sin();
            sum += f64::hypot(re, im);
        }
        assert!(close(b.bound[d], sum / 64.0, 1e-4), "d {d}");
        assert!(close(b.criterion[d], re / 64.0, 1e-5), "d {d}");
    }
    // At distance 0, |S_j| = j: the mean is (64 + 1) / 2.
    assert!(close(b.bound[0], 32.5, 1e-5));
    assert!(b.bound[256] < b.bound[0] / 4.0);
    // Base 500 over 4096 positions: Men et al.'s criterion fails somewhere (head size 128).
    let small = decay_bound(128, 500.0, 4096, 64).unwrap();
    let first = small
        .criterion_first_negative
        .expect("base 500 fails over 4096");
    let direct = (0..4096).find(|&m| {
        (0..64)
            .map(|i| (m as f64 * 500f64.powf(-(2 * i) as f64 / 128.0)).cos())
            .sum::<f64>()
            < 0.0
    });
    assert_eq!(Some(first), direct);
}

#[test]
fn distance_profile_curves_follow_their_formulas() {
    let t5 = T5Buckets {
        bidirectional: false,
        num_buckets: 32,
        max_distance: 128,
    };
    let p = distance_profile(2000, 2001, 64, 10_000.0, 8, t5, 1).unwrap();
    let curve = |name: &str| p.curves.iter().find(|c| c.scheme == name).unwrap();
    assert!(curve("nope").values.iter().all(|&v| v == 0.0));
    let alibi: Vec<_> = p.curves.iter().filter(|c| c.scheme == "alibi").collect();
    assert_eq!(alibi.len(), 8);
    for (h, c) in alibi.iter().enumerate() {
        let m = 2f64.powf(-8.0 * (h + 1) as f64 / 8.0);
        for (&d, &v) in p.distances.iter().zip(&c.values) {
            assert!(
                close(v, -m * d as f64, 1e-9 * d as f64 + 1e-12),
                "head {h} d {d}"
            );
        }
    }
    // T5: zero at distance 0 and one value for every distance past max_distance.
    let t = &curve("t5").values;
    assert_eq!(t[0], 0.0);
    assert!(t[200..].iter().all(|&v| v == t[200]));
    let rope = &curve("rope").values;
    let sin = &curve("sinusoidal").values;
    for (i, &d) in p.distances.iter().enumerate() {
        let want: f64 = (0..32)
            .map(|k| (d as f64 * 10_000f64.powf(-(2 * k) as f64 / 64.0)).cos() - 1.0)
            .sum::<f64>()
            / 8.0;
        assert!(
            close(rope[i], want, 1e-4) && close(sin[i], want, 1e-3),
            "d {d}"
        );
    }
    assert_eq!(p.conventions.len(), 5);
}

#[test]
fn nope_counting_head_outputs_one_over_the_count() {
    let c = nope_counting(20).unwrap();
    for i in 0..20 {
        assert_eq!(c.visible_keys[i], i + 1);
        assert!(close(c.causal_output[i], 1.0 / (i + 1) as f64, 1e-6));
        assert!(close(c.position_read[i], i as f64, 1e-3));
        assert!(close(c.bidirectional_output[i], 1.0 / 20.0, 1e-6));
    }
    assert!(nope_counting(0).is_err());
}

#[test]
fn walk_scheme_enters_at_its_step_only() {
    for (scheme, step) in [
        ("sinusoidal", "position"),
        ("learned", "position"),
        ("rope", "rotate"),
        ("alibi", "bias"),
        ("t5", "bias"),
    ] {
        let w = walk(scheme, 3).unwrap();
        assert_eq!(w.tokens, WALK_TOKENS);
        let entering: Vec<&str> = w
            .stages
            .iter()
            .filter(|s| s.scheme_enters)
            .map(|s| s.step.as_str())
            .collect();
        assert_eq!(entering, [step], "{scheme}");
        // Softmax rows sum to 1 and masked keys get 0.
        let weights = &w
            .stages
            .iter()
            .find(|s| s.step == "softmax")
            .unwrap()
            .matrices[0];
        for (i, row) in weights.rows.iter().enumerate() {
            assert!(close(row.iter().sum::<f64>(), 1.0, 1e-5));
            assert!(row[i + 1..].iter().all(|&x| x == 0.0));
        }
    }
    let nope = walk("nope", 3).unwrap();
    assert!(nope.stages.iter().all(|s| !s.scheme_enters));
    // ALiBi's bias matrix is -0.5·(i - j) on and below the diagonal.
    let alibi = walk("alibi", 3).unwrap();
    let bias = &alibi
        .stages
        .iter()
        .find(|s| s.step == "bias")
        .unwrap()
        .matrices[0];
    assert_eq!(bias.rows[3][0], -1.5);
    assert!(walk("xpos", 0).is_err());
}

fn why(scheme: WhyScheme, a: &str, b: &str) -> posenc_learn::WhyPosition {
    why_position(&WhyRequest {
        scheme,
        a: a.into(),
        b: b.into(),
        seed: 7,
    })
    .unwrap()
}

#[test]
fn why_position_permutes_without_position_and_not_with_it() {
    let none = why(
        WhyScheme::None,
        "the dog bit the man.",
        "The man bit the dog.",
    );
    assert!(
        none.same_words,
        "punctuation must not make the words differ"
    );
    assert_eq!(none.a.tokens.last().unwrap(), ".");
    assert_eq!(none.is_permutation, Some(true));
    for s in [
        WhyScheme::Sinusoidal,
        WhyScheme::Learned,
        WhyScheme::Rope,
        WhyScheme::Alibi,
        WhyScheme::T5,
    ] {
        assert_eq!(
            why(s, "the dog bit the man", "the man bit the dog").is_permutation,
            Some(false)
        );
    }
    // A's numbers do not depend on B.
    let x = why(
        WhyScheme::Rope,
        "the dog bit the man",
        "the man bit the dog",
    );
    let y = why(WhyScheme::Rope, "the dog bit the man", "a cat saw a bird");
    assert_eq!(x.a, y.a);
    assert!(!y.same_words && y.matches.is_empty() && y.is_permutation.is_none());
    let err = why_position(&WhyRequest {
        scheme: WhyScheme::None,
        a: "...".repeat(10),
        b: "x".into(),
        seed: 0,
    })
    .unwrap_err();
    assert_eq!(err.kind, LearnErrorKind::InvalidRequest);
    assert!(why_position(&WhyRequest {
        scheme: WhyScheme::None,
        a: " ".into(),
        b: "x".into(),
        seed: 0
    })
    .is_err());
    assert_eq!(tokenize("Man."), ["man", "."]);
    assert_eq!("rope".parse::<WhyScheme>().unwrap(), WhyScheme::Rope);
    assert!("xpos".parse::<WhyScheme>().is_err());
}

#[test]
fn every_prediction_has_an_answer_and_an_explanation() {
    let list = predictions().unwrap();
    assert!(list.len() >= 15);
    let mut ids: Vec<&str> = list.iter().map(|p| p.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), list.len(), "ids are unique");
    for p in &list {
        let verdicts: Vec<_> = p
            .options
            .iter()
            .map(|o| check_prediction(&p.id, &o.key).unwrap())
            .collect();
        assert_eq!(verdicts.iter().filter(|v| v.correct).count(), 1, "{}", p.id);
        assert!(verdicts.iter().all(|v| v.explanation.len() > 40));
        assert!(!p.question.is_empty() && !p.panel.is_empty() && !p.figure.is_empty());
    }
    let rope = check_prediction("rope-pair-decay", "a").unwrap();
    assert!(!rope.correct && rope.explanation.contains("wrong"));
    assert_eq!(
        check_prediction("nope", "A").unwrap_err().kind,
        LearnErrorKind::InvalidRequest
    );
    assert_eq!(
        check_prediction("why-permutation", "Z").unwrap_err().kind,
        LearnErrorKind::MalformedAnswer
    );
}

#[test]
fn advise_states_its_head_size_and_answers_yes_no_questions_with_booleans() {
    let req = |head_dim| AdviceRequest {
        train_len: 4096,
        target_len: 16_384,
        arch: Arch::Decoder,
        kv_cache: true,
        retrieval: false,
        head_dim,
    };
    let a = advise(&req(64)).unwrap();
    assert!(a
        .facts
        .iter()
        .any(|f| f.name.contains("head size") && f.value == FactValue::Number(64.0)));
    assert!(a
        .facts
        .iter()
        .any(|f| matches!(f.value, FactValue::Flag(_))));
    assert!(a.reasons.iter().any(|r| r.text.contains("head size 64")));
    let b128 = advise(&req(128)).unwrap();
    let bound = |a: &posenc_learn::Advice| {
        a.facts
            .iter()
            .find(|f| f.name.starts_with("Men et al."))
            .map(|f| f.value)
    };
    assert_ne!(
        bound(&a),
        bound(&b128),
        "the bound depends on the head size"
    );
    // Checks of the user's own setup never run posenc's bundled model.
    for d in &a.diagnostics {
        assert!(!d.command.starts_with("posenc model"), "{}", d.command);
    }
    assert_eq!(FactValue::Flag(true).to_string(), "yes");
    assert_eq!(
        serde_json::to_value(FactValue::Flag(false)).unwrap(),
        serde_json::json!(false)
    );
    assert_eq!(
        advise(&req(63)).unwrap_err().kind,
        LearnErrorKind::InvalidRequest
    );
    // A request without a head size (older clients) deserializes with the default.
    let r: AdviceRequest = serde_json::from_str(
        r#"{"train_len": 1, "target_len": 2, "arch": "decoder", "kv_cache": false, "retrieval": false}"#,
    )
    .unwrap();
    assert_eq!(r.head_dim, 128);
}
