//! The exercise checkers, through the module's public functions, for seeds 0..50: the right
//! answer (computed here with independent f64 formulas from the instance's data) is accepted, and
//! the common wrong answers (also computed here) are rejected with the right mistake named.

use posenc_learn::{check, instance, solution, LearnErrorKind, Part};
use serde_json::Value as J;

const SEEDS: u64 = 50;

fn data(n: u32, seed: u64) -> J {
    serde_json::to_value(instance(n, seed).unwrap()).unwrap()["data"].clone()
}

fn f(v: &J) -> f64 {
    v.as_f64().unwrap()
}

fn vecf(v: &J) -> Vec<f64> {
    v.as_array().unwrap().iter().map(f).collect()
}

fn rows(v: &J) -> Vec<Vec<f64>> {
    v.as_array().unwrap().iter().map(vecf).collect()
}

/// Formats as text (`1,2;3,4`) or JSON, alternating with the seed so both forms are exercised.
fn fmt(values: &[f64], cols: usize, seed: u64) -> String {
    let rows: Vec<Vec<f64>> = values.chunks(cols.max(1)).map(|r| r.to_vec()).collect();
    if seed.is_multiple_of(2) {
        rows.iter()
            .map(|r| {
                r.iter()
                    .map(|x| format!("{x:.6}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect::<Vec<_>>()
            .join(";")
    } else if rows.len() == 1 {
        serde_json::to_string(&rows[0]).unwrap()
    } else {
        serde_json::to_string(&rows).unwrap()
    }
}

fn assert_right(n: u32, seed: u64, part: Part, answer: &str) {
    let v = check(n, seed, part, answer).unwrap();
    assert!(
        v.correct,
        "exercise {n} seed {seed} part {part:?}: `{answer}` rejected: {:?}",
        v.hint
    );
}

fn assert_mistake(n: u32, seed: u64, part: Part, answer: &str, mistake: &str) {
    let v = check(n, seed, part, answer).unwrap();
    assert!(
        !v.correct,
        "exercise {n} seed {seed}: wrong `{answer}` accepted"
    );
    assert_eq!(
        v.mistake.as_deref(),
        Some(mistake),
        "exercise {n} seed {seed}: `{answer}` hint: {:?}",
        v.hint
    );
    assert!(v.hint.as_deref().is_some_and(|h| !h.is_empty()));
}

/// Checks a list of (answer values, expected mistake) for part b.
fn check_b(n: u32, seed: u64, cols: usize, right: &[f64], wrongs: &[(Vec<f64>, &str)]) {
    assert_right(n, seed, Part::B, &fmt(right, cols, seed));
    for (w, m) in wrongs {
        assert_mistake(n, seed, Part::B, &fmt(w, cols, seed), m);
    }
}

// ------------------------------------------------------------------------------------------
// Part (a): the right option is the library's ENTRY; every other option names its entry.

fn entry_keyword(e: posenc::PositionEntry) -> (&'static str, &'static str) {
    use posenc::PositionEntry::*;
    match e {
        HiddenStates => ("token embeddings once", "entry_hidden_states"),
        QueryKey => ("Rotates the queries", "entry_query_key"),
        AttentionScores => ("Acts inside attention", "entry_attention_scores"),
        Nowhere => ("Nowhere", "entry_nowhere"),
    }
}

fn expected_entry(n: u32, seed: u64) -> posenc::PositionEntry {
    match n {
        1 => posenc::sinusoidal::ENTRY,
        2 | 8 => posenc::learned::ENTRY,
        3 | 4 => posenc::relative::ENTRY,
        5 | 6 | 9 => posenc::rope::ENTRY,
        7 => posenc::alibi::ENTRY,
        _ => match data(n, seed)["model"]["scheme"].as_str().unwrap() {
            "learned" => posenc::learned::ENTRY,
            "alibi" => posenc::alibi::ENTRY,
            _ => posenc::rope::ENTRY,
        },
    }
}

#[test]
fn part_a_accepts_the_library_entry_and_names_the_confusion() {
    use posenc::PositionEntry::*;
    for n in 1..=10 {
        for seed in 0..SEEDS {
            let inst = instance(n, seed).unwrap();
            let want = expected_entry(n, seed);
            for c in &inst.parts[0].choices {
                let entry = [HiddenStates, QueryKey, AttentionScores, Nowhere]
                    .into_iter()
                    .find(|e| c.text.contains(entry_keyword(*e).0))
                    .expect("every option describes one entry");
                if entry == want {
                    assert_right(n, seed, Part::A, &c.key);
                } else {
                    assert_mistake(n, seed, Part::A, &c.key, entry_keyword(entry).1);
                }
            }
        }
    }
}

#[test]
fn part_c_accepts_one_option_and_explains_the_others() {
    for n in 1..=10 {
        for seed in 0..SEEDS {
            let inst = instance(n, seed).unwrap();
            let right = solution(n, seed, Part::C).unwrap();
            let v = check(n, seed, Part::C, &right.to_lowercase()).unwrap();
            assert!(v.correct);
            assert_eq!(v.explanations.len(), inst.parts[2].choices.len());
            assert!(v.explanations.iter().all(|e| !e.explanation.is_empty()));
            for c in inst.parts[2].choices.iter().filter(|c| c.key != right) {
                let w = check(n, seed, Part::C, &c.key).unwrap();
                assert!(!w.correct && w.mistake.is_some() && w.hint.is_some());
            }
        }
    }
}

#[test]
fn solutions_are_accepted_for_every_part() {
    for n in 1..=10 {
        for seed in 0..SEEDS {
            for part in Part::ALL {
                assert_right(n, seed, part, &solution(n, seed, part).unwrap());
            }
        }
    }
}

#[test]
fn malformed_answers_are_errors_not_verdicts() {
    for (n, part, answer) in [
        (1, Part::B, "1,2"),
        (2, Part::B, "1,2,3;4,5,6"),
        (3, Part::B, "[[1,2],[3]]"),
        (8, Part::B, "12.5"),
        (1, Part::A, "Z"),
        (10, Part::B, "1024 | 0"),
        (5, Part::B, "nan,1,2,3,4"),
    ] {
        let e = check(n, 0, part, answer).unwrap_err();
        assert_eq!(e.kind, LearnErrorKind::MalformedAnswer, "{answer}: {e}");
    }
    assert_eq!(
        instance(11, 0).unwrap_err().kind,
        LearnErrorKind::UnknownExercise
    );
    assert_eq!(
        instance(0, 0).unwrap_err().kind,
        LearnErrorKind::UnknownExercise
    );
}

#[test]
fn instances_depend_only_on_the_seed() {
    for n in 1..=10 {
        assert_eq!(instance(n, 7).unwrap(), instance(n, 7).unwrap());
    }
    assert_ne!(instance(1, 1).unwrap().data, instance(1, 2).unwrap().data);
}

// ------------------------------------------------------------------------------------------
// Part (b), exercise by exercise.

fn sinusoid(
    p: f64,
    d: usize,
    base: f64,
    concat: bool,
    swap: bool,
    deg: bool,
    half_exp: bool,
) -> Vec<f64> {
    let h = d / 2;
    let mut out = vec![0.0; d];
    for i in 0..h {
        let e = if half_exp {
            i as f64 / d as f64
        } else {
            2.0 * i as f64 / d as f64
        };
        let mut a = p * base.powf(-e);
        if deg {
            a *= std::f64::consts::PI / 180.0;
        }
        let (s, c) = if swap {
            (a.cos(), a.sin())
        } else {
            (a.sin(), a.cos())
        };
        let (si, ci) = if concat {
            (i, h + i)
        } else {
            (2 * i, 2 * i + 1)
        };
        out[si] = s;
        out[ci] = c;
    }
    out
}

#[test]
fn ex1_sinusoidal_row() {
    for seed in 0..SEEDS {
        let d = data(1, seed);
        let p = f(&d["position"]);
        let dim = d["dim"].as_u64().unwrap() as usize;
        let row = |p, concat, swap, deg, half| sinusoid(p, dim, 10_000.0, concat, swap, deg, half);
        check_b(
            1,
            seed,
            dim,
            &row(p, false, false, false, false),
            &[
                (row(p, true, false, false, false), "concat_layout"),
                (row(p, false, true, false, false), "sin_cos_swapped"),
                (row(p, false, false, true, false), "degrees"),
                (row(p, false, false, false, true), "exponent_i_over_d"),
                (row(p - 1.0, false, false, false, false), "off_by_one"),
            ],
        );
    }
}

#[test]
fn ex2_token_plus_position() {
    for seed in 0..SEEDS {
        let d = data(2, seed);
        let table = rows(&d["table"]);
        let tokens = rows(&d["tokens"]);
        let offset = d["row_offset"].as_u64().unwrap() as usize;
        let start = d["first_position"].as_u64().unwrap() as usize;
        let add = |rows_of: &dyn Fn(usize) -> usize| -> Vec<f64> {
            tokens
                .iter()
                .enumerate()
                .flat_map(|(t, tok)| {
                    tok.iter()
                        .zip(&table[rows_of(t)])
                        .map(|(a, b)| a + b)
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let mut wrongs = vec![
            (tokens.concat(), "forgot_position"),
            (add(&|t| t + offset), "ignored_start"),
            (add(&|t| start + t + offset + 1), "off_by_one"),
            (add(&|_| start + offset), "same_position"),
        ];
        if offset > 0 {
            wrongs.push((add(&|t| start + t), "forgot_offset"));
        }
        check_b(2, seed, 4, &add(&|t| start + t + offset), &wrongs);
    }
}

#[test]
fn ex3_relative_distances() {
    for seed in 0..SEEDS {
        let d = data(3, seed);
        let len = d["len"].as_u64().unwrap() as i64;
        let k = d["k"].as_u64().unwrap() as i64;
        let m = |clip: i64, flip: bool, add: i64| -> Vec<f64> {
            let mut out = vec![];
            for i in 0..len {
                for j in 0..len {
                    let r = if flip { i - j } else { j - i };
                    out.push((r.clamp(-clip, clip) + add) as f64);
                }
            }
            out
        };
        check_b(
            3,
            seed,
            len as usize,
            &m(k, false, 0),
            &[
                (m(k, true, 0), "sign_flipped"),
                (m(len, false, 0), "no_clipping"),
                (m(k, false, k), "row_index"),
            ],
        );
    }
}

fn softmax_rows(s: &[f64], n: usize) -> Vec<f64> {
    s.chunks(n)
        .flat_map(|r| {
            let mx = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = r.iter().map(|x| (x - mx).exp()).collect();
            let sum: f64 = e.iter().sum();
            e.into_iter().map(move |x| x / sum)
        })
        .collect()
}

#[test]
fn ex4_t5_bias_weights() {
    // HF T5 bucket for num_buckets 8, bidirectional, max_distance 16, in f64.
    let bucket = |rp: i64| -> usize {
        let (n, off) = (4usize, if rp > 0 { 4 } else { 0 });
        let d = rp.unsigned_abs() as f64;
        let max_exact = (n / 2) as f64;
        if d < max_exact {
            return off + d as usize;
        }
        let large = max_exact
            + ((d / max_exact).ln() / (16.0 / max_exact).ln() * (n as f64 - max_exact)).trunc();
        off + (large as usize).min(n - 1)
    };
    for seed in 0..SEEDS {
        let d = data(4, seed);
        let (q, k) = (rows(&d["q"]), rows(&d["k"]));
        let table = vecf(&d["bias_table"]);
        let n = q.len();
        let dot = |i: usize, j: usize| q[i][0] * k[j][0] + q[i][1] * k[j][1];
        let scores = |scale: f64, flip: bool, bias: bool| -> Vec<f64> {
            let mut s = vec![];
            for i in 0..n {
                for j in 0..n {
                    let rp = if flip {
                        i as i64 - j as i64
                    } else {
                        j as i64 - i as i64
                    };
                    s.push(scale * dot(i, j) + if bias { table[bucket(rp)] } else { 0.0 });
                }
            }
            s
        };
        let right = softmax_rows(&scores(1.0, false, true), n);
        let bias_only: Vec<f64> = scores(0.0, false, true);
        let after: Vec<f64> = softmax_rows(&scores(1.0, false, false), n)
            .iter()
            .zip(&bias_only)
            .map(|(w, b)| w + b)
            .collect();
        check_b(
            4,
            seed,
            n,
            &right,
            &[
                (after, "bias_after_softmax"),
                (softmax_rows(&scores(1.0, true, true), n), "sign_flipped"),
                (
                    softmax_rows(&scores(0.5f64.sqrt(), false, true), n),
                    "scaled_scores",
                ),
                (softmax_rows(&scores(1.0, false, false), n), "forgot_bias"),
                (scores(1.0, false, true), "no_softmax"),
            ],
        );
    }
}

/// Rotates 2-D pairs of `x`; `pairs[i] = (a, b)` indices; `swap` exchanges cos and sin.
fn rot(x: &[f64], pairs: &[(usize, usize)], angles: &[f64], swap: bool) -> Vec<f64> {
    let mut out = x.to_vec();
    for (&(ia, ib), &t) in pairs.iter().zip(angles) {
        let (s, c) = if swap {
            (t.cos(), t.sin())
        } else {
            (t.sin(), t.cos())
        };
        let (a, b) = (x[ia], x[ib]);
        out[ia] = a * c - b * s;
        out[ib] = a * s + b * c;
    }
    out
}

fn with_norm(mut v: Vec<f64>) -> Vec<f64> {
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.push(n);
    v
}

#[test]
fn ex5_rope_rotation() {
    let theta = [1.0, 10_000f64.powf(-0.5)];
    for seed in 0..SEEDS {
        let d = data(5, seed);
        let x = vecf(&d["x"]);
        let p = f(&d["position"]);
        let hs = [(0, 2), (1, 3)];
        let angles = |p: f64, k: f64| [p * theta[0] * k, p * theta[1] * k];
        let r = |pairs: &[(usize, usize)], p: f64, k: f64, swap| {
            with_norm(rot(&x, pairs, &angles(p, k), swap))
        };
        let right = r(&hs, p, 1.0, false);
        let mut bad_norm = right.clone();
        bad_norm[4] += 1.0;
        check_b(
            5,
            seed,
            5,
            &right,
            &[
                (r(&[(0, 1), (2, 3)], p, 1.0, false), "interleaved_layout"),
                (r(&hs, p, -1.0, false), "rotation_sign_flipped"),
                (r(&hs, p, 1.0, true), "sin_cos_swapped"),
                (r(&hs, p, std::f64::consts::PI / 180.0, false), "degrees"),
                (r(&hs, p + 1.0, 1.0, false), "off_by_one"),
                (bad_norm, "norm_not_preserved"),
            ],
        );
    }
}

#[test]
fn ex6_rope_identity() {
    for seed in 0..SEEDS {
        let d = data(6, seed);
        let (q, k) = (vecf(&d["q"]), vecf(&d["k"]));
        let (m, n) = (f(&d["m"]), f(&d["n"]));
        let r = |v: &[f64], a: f64, swap| rot(v, &[(0, 1)], &[a], swap);
        let dot = |a: &[f64], b: &[f64]| a[0] * b[0] + a[1] * b[1];
        let s = |unit: f64, swap| dot(&r(&q, m * unit, swap), &r(&k, n * unit, swap));
        let o = |delta: f64, unit: f64, swap| dot(&q, &r(&k, delta * unit, swap));
        let deg = std::f64::consts::PI / 180.0;
        let s1 = s(1.0, false);
        check_b(
            6,
            seed,
            2,
            &[s1, o(n - m, 1.0, false)],
            &[
                (vec![s1, o(m - n, 1.0, false)], "sign_flipped"),
                (vec![s(deg, false), o(n - m, deg, false)], "degrees"),
                (vec![s(1.0, true), o(n - m, 1.0, true)], "sin_cos_swapped"),
                (vec![s1, dot(&q, &k)], "forgot_offset_rotation"),
            ],
        );
    }
}

/// ALiBi slopes by the paper's rule, written out independently.
fn slopes(n: usize) -> Vec<f64> {
    let p = 1usize << (usize::BITS - 1 - n.leading_zeros());
    let rule = |k: usize| (0..k).map(move |h| 2f64.powf(-8.0 * (h + 1) as f64 / k as f64));
    let mut s: Vec<f64> = rule(p).collect();
    s.extend(rule(2 * p).step_by(2).take(n - p));
    s
}

#[test]
fn ex7_alibi_matrix() {
    for seed in 0..SEEDS {
        let d = data(7, seed);
        let heads = d["heads"].as_u64().unwrap() as usize;
        let h = d["head"].as_u64().unwrap() as usize;
        let len = d["len"].as_u64().unwrap() as i64;
        let s = slopes(heads);
        let m = |slope: f64, sym: bool| -> Vec<f64> {
            let mut out = vec![];
            for i in 0..len {
                for j in 0..len {
                    let dist = (i - j) as f64;
                    out.push(if sym {
                        -slope * dist.abs()
                    } else if j <= i {
                        -slope * dist
                    } else {
                        0.0
                    });
                }
            }
            out
        };
        let mut wrongs = vec![
            (m(-s[h], false), "sign_flipped"),
            (m(s[h], true), "symmetric"),
        ];
        if h + 1 < heads {
            wrongs.push((m(s[h + 1], false), "wrong_head"));
        }
        check_b(7, seed, len as usize, &m(s[h], false), &wrongs);
    }
}

#[test]
fn ex8_learned_parameters() {
    for seed in 0..SEEDS {
        let d = data(8, seed);
        let mp = d["max_position_embeddings"].as_u64().unwrap();
        let dim = d["hidden_size"].as_u64().unwrap();
        let vocab = d["vocab_size"].as_u64().unwrap();
        let off = d["row_offset"].as_u64().unwrap();
        let rows = mp + off;
        let ans = |x: u64| x.to_string();
        assert_right(8, seed, Part::B, &ans(rows * dim));
        // Thousands separators are accepted.
        let grouped = (rows * dim)
            .to_string()
            .as_bytes()
            .rchunks(3)
            .rev()
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(",");
        assert_right(8, seed, Part::B, &grouped);
        let mut wrongs = vec![
            (rows * dim + dim, "counted_bias"),
            ((rows + vocab) * dim, "counted_token_embeddings"),
            (rows, "rows_only"),
            ((rows - 1) * dim, "off_by_one"),
        ];
        if off > 0 {
            wrongs.push((mp * dim, "forgot_offset"));
        }
        for (w, m) in wrongs {
            assert_mistake(8, seed, Part::B, &ans(w), m);
        }
    }
}

#[test]
fn ex9_decode_positions() {
    for seed in 0..SEEDS {
        let d = data(9, seed);
        let lengths: Vec<f64> = vecf(&d["lengths"]);
        let steps = f(&d["decode_steps_done"]);
        let width = f(&d["padded_width"]);
        let right: Vec<f64> = lengths.iter().map(|l| l + steps).collect();
        let b = lengths.len();
        check_b(
            9,
            seed,
            b,
            &right,
            &[
                (vec![width + steps; b], "no_cumsum"),
                (right.iter().map(|p| p - 1.0).collect(), "off_by_one"),
                (right.iter().map(|p| p + 1.0).collect(), "off_by_one"),
                (vec![0.0; b], "all_zero"),
            ],
        );
    }
}

#[test]
fn ex10_passkey_design() {
    for seed in 0..SEEDS {
        let d = data(10, seed);
        let model = &d["model"];
        let train = d["train_len"].as_u64().unwrap();
        let target = d["target_len"].as_u64().unwrap();
        let scheme = model["scheme"].as_str().unwrap().to_string();
        let window = model["slopes"]
            .as_array()
            .map(|s| -(0.01f64.ln()) / f(s.last().unwrap()))
            .unwrap_or(0.0);
        let factor = model["factor"].as_f64().unwrap_or(1.0);
        let passes = |l: u64, depth: f64| -> bool {
            match scheme.as_str() {
                "learned" | "rope" => l <= train,
                "yarn" => l as f64 <= factor * train as f64,
                _ => (1.0 - depth) * (l - 1) as f64 <= window,
            }
        };
        let plan = |lengths: &[u64], depths: &[f64], pred: &dyn Fn(u64, f64) -> bool| -> String {
            let preds: Vec<String> = lengths
                .iter()
                .map(|&l| {
                    depths
                        .iter()
                        .map(|&x| if pred(l, x) { "1" } else { "0" })
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .collect();
            format!(
                "{} | {} | {}",
                lengths
                    .iter()
                    .map(|l| l.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                depths
                    .iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                preds.join(";")
            )
        };
        let lengths = [train / 2, train, 2 * train, target];
        let depths = [0.0, 0.5, 1.0];
        assert_right(10, seed, Part::B, &plan(&lengths, &depths, &passes));
        // JSON form of the same plan.
        let json = serde_json::json!({
            "lengths": lengths,
            "depths": depths,
            "predict": lengths.iter().map(|&l| depths.iter().map(|&x| u8::from(passes(l, x))).collect::<Vec<_>>()).collect::<Vec<_>>()
        });
        assert_right(10, seed, Part::B, &json.to_string());
        assert_mistake(
            10,
            seed,
            Part::B,
            &plan(&lengths, &depths, &|_, _| true),
            "assumed_extrapolation",
        );
        assert_mistake(
            10,
            seed,
            Part::B,
            &plan(&[train / 4, train / 2, train], &depths, &passes),
            "no_length_beyond_training",
        );
        assert_mistake(
            10,
            seed,
            Part::B,
            &plan(&[2 * train, 3 * train, target], &depths, &passes),
            "no_length_inside_training",
        );
        assert_mistake(
            10,
            seed,
            Part::B,
            &plan(&lengths, &[0.4, 0.5, 0.6], &passes),
            "depths_not_spread",
        );
        assert_mistake(
            10,
            seed,
            Part::B,
            &plan(&lengths[..2], &depths, &passes),
            "too_few_lengths",
        );
        let by_train = |l: u64, _: f64| l <= train;
        match scheme.as_str() {
            "alibi" => assert_mistake(
                10,
                seed,
                Part::B,
                &plan(&lengths, &depths, &by_train),
                "predicted_by_length",
            ),
            "yarn" => assert_mistake(
                10,
                seed,
                Part::B,
                &plan(&lengths, &depths, &by_train),
                "ignored_scaling",
            ),
            _ => {
                // Retrieval predicted past the limit, at the depth nearest the question.
                let by_depth = |l: u64, x: f64| passes(l, x) || x == 1.0;
                assert_mistake(
                    10,
                    seed,
                    Part::B,
                    &plan(&lengths, &depths, &by_depth),
                    "missed_position_failure",
                );
            }
        }
        // A whole row predicted to fail where position allows retrieval.
        let row_out = |l: u64, x: f64| passes(l, x) && l != lengths[0];
        let v = check(10, seed, Part::B, &plan(&lengths, &depths, &row_out)).unwrap();
        assert!(!v.correct, "seed {seed}: a row ruled out was accepted");
        // Depth matters inside the allowed region (as measured on SmolLM2): a 0 at one depth
        // where position allows retrieval is not graded wrong, and the feedback cites the data.
        let miss_middle = |l: u64, x: f64| passes(l, x) && !(x == 0.5 && l == lengths[0]);
        let v = check(10, seed, Part::B, &plan(&lengths, &depths, &miss_middle)).unwrap();
        assert!(
            v.correct,
            "seed {seed}: depth-dependent plan rejected: {:?}",
            v.hint
        );
        let fb = v.feedback.unwrap_or_default();
        assert!(
            fb.contains("results/passkey.json") && fb.contains("not graded wrong"),
            "{fb}"
        );
    }
}
