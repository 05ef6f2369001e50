//! Walkthroughs (`posenc explain TOPIC`): a few sentences, then numbers computed by posenc for a
//! small example.

use posenc::attention::{
    attention, attention_scores, AttentionOptions, HeadConfig, Mask, Scheme, SingleLayer,
};
use posenc::kv_cache::{positions_from_padding_mask, BatchKvCache, KvCache};
use posenc::learned::LearnedTable;
use posenc::relative::{shaw_index_matrix, t5_bucket, t5_bucket_matrix, T5Buckets};
use posenc::rope::{
    apply_rotary, cos_sin_row, yarn_correction_range, Precision, RopeFrequencies, RopeLayout,
    RopeParams, RopeScaling, YarnParams,
};
use posenc::sinusoidal::{self, SinusoidalLayout};
use posenc::{alibi, diagnostics};
use serde::{Deserialize, Serialize};

use super::{LearnError, LearnErrorKind, LearnResult};

/// The walkthrough topics, in teaching order.
pub const TOPICS: [&str; 9] = [
    "why-position",
    "sinusoidal",
    "learned",
    "relative",
    "rope",
    "alibi",
    "scaling",
    "decode-positions",
    "mistakes",
];

/// A walkthrough: sentences, then sections of numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Walkthrough {
    /// The topic name (one of [`TOPICS`]).
    pub topic: String,
    /// Title.
    pub title: String,
    /// A few sentences.
    pub intro: Vec<String>,
    /// Worked examples.
    pub sections: Vec<Section>,
}

/// One worked example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Section {
    /// Title.
    pub title: String,
    /// What the numbers show.
    pub text: String,
    /// Matrices (tables) computed by the library.
    pub matrices: Vec<Matrix>,
    /// Single numbers computed by the library.
    pub values: Vec<Value>,
}

/// A labelled matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Matrix {
    /// What it is.
    pub name: String,
    /// One label per row.
    pub row_labels: Vec<String>,
    /// One label per column.
    pub column_labels: Vec<String>,
    /// The values, row by row.
    pub rows: Vec<Vec<f64>>,
}

/// A named number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Value {
    /// What it is.
    pub name: String,
    /// The number.
    pub value: f64,
}

/// The topics, for listings.
#[allow(dead_code)] // API for the explorer and the tests
pub fn topics() -> Vec<String> {
    TOPICS.iter().map(|t| t.to_string()).collect()
}

/// The walkthrough of `topic`.
///
/// Errors: [`LearnErrorKind::UnknownTopic`] for a topic not in [`TOPICS`].
pub fn explain(topic: &str) -> LearnResult<Walkthrough> {
    match topic {
        "why-position" => why_position(),
        "sinusoidal" => sinusoidal_topic(),
        "learned" => learned_topic(),
        "relative" => relative_topic(),
        "rope" => rope_topic(),
        "alibi" => alibi_topic(),
        "scaling" => scaling_topic(),
        "decode-positions" => decode_topic(),
        "mistakes" => mistakes_topic(),
        _ => Err(LearnError::new(
            LearnErrorKind::UnknownTopic,
            format!(
                "invalid topic: expected one of {}, got `{topic}`",
                TOPICS.join(", ")
            ),
        )),
    }
}

// ------------------------------------------------------------------------------------------
// Helpers

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

fn labels(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

fn matrix(name: &str, row_prefix: &str, col_prefix: &str, values: &[f64], cols: usize) -> Matrix {
    let rows: Vec<Vec<f64>> = values.chunks(cols.max(1)).map(|r| r.to_vec()).collect();
    Matrix {
        name: name.into(),
        row_labels: labels(row_prefix, rows.len()),
        column_labels: labels(col_prefix, cols),
        rows,
    }
}

fn row_matrix(name: &str, column_labels: Vec<String>, values: Vec<f64>) -> Matrix {
    Matrix {
        name: name.into(),
        row_labels: vec![String::new()],
        column_labels,
        rows: vec![values],
    }
}

fn value(name: &str, v: f64) -> Value {
    Value {
        name: name.into(),
        value: v,
    }
}

fn section(title: &str, text: &str, matrices: Vec<Matrix>, values: Vec<Value>) -> Section {
    Section {
        title: title.into(),
        text: text.into(),
        matrices,
        values,
    }
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn walk(topic: &str, title: &str, intro: &[&str], sections: Vec<Section>) -> Walkthrough {
    Walkthrough {
        topic: topic.into(),
        title: title.into(),
        intro: intro.iter().map(|s| s.to_string()).collect(),
        sections,
    }
}

fn rope_freqs(head_dim: usize) -> LearnResult<RopeFrequencies> {
    Ok(RopeParams::new(10_000.0, head_dim)?.frequencies(None, Precision::Exact)?)
}

fn rope_scheme(head_dim: usize, layout: RopeLayout) -> LearnResult<Scheme> {
    Ok(Scheme::Rope {
        freqs: rope_freqs(head_dim)?,
        layout,
    })
}

/// A fixed small sequence of head vectors (`n` tokens of width `d`), the same in every run.
fn sample(n: usize, d: usize, salt: usize) -> Vec<f32> {
    (0..n * d)
        .map(|i| (((i * 7 + salt * 13) % 11) as f32 - 5.0) / 4.0)
        .collect()
}

fn with_weights() -> AttentionOptions {
    AttentionOptions {
        scale: None,
        return_weights: true,
    }
}

// ------------------------------------------------------------------------------------------
// Topics

fn why_position() -> LearnResult<Walkthrough> {
    let (n, d) = (3usize, 2usize);
    let heads = HeadConfig::mha(1, d)?;
    let x = sample(n, d, 1);
    let perm = [2usize, 0, 1];
    let permute = |v: &[f32]| -> Vec<f32> {
        perm.iter()
            .flat_map(|&t| v[t * d..(t + 1) * d].to_vec())
            .collect()
    };
    let xp = permute(&x);
    let pos: Vec<u64> = (0..n as u64).collect();
    let run = |scheme: &Scheme, input: &[f32], mask: &Mask| -> LearnResult<Vec<f32>> {
        Ok(attention(
            &heads,
            input,
            input,
            input,
            &pos,
            &pos,
            scheme,
            mask,
            &AttentionOptions::default(),
        )?
        .output)
    };
    let nope_out = run(&Scheme::NoPe, &x, &Mask::none())?;
    let nope_perm = run(&Scheme::NoPe, &xp, &Mask::none())?;
    let rope = rope_scheme(d, RopeLayout::HalfSplit)?;
    let rope_out = run(&rope, &x, &Mask::none())?;
    let rope_perm = run(&rope, &xp, &Mask::none())?;
    let causal_out = run(&Scheme::NoPe, &x, &Mask::causal_by_index())?;
    let causal_perm = run(&Scheme::NoPe, &xp, &Mask::causal_by_index())?;
    let gap = |a: &[f32], b: &[f32]| max_abs_diff(&f64s(&permute(a)), &f64s(b));
    Ok(walk(
        "why-position",
        "Why transformers need positions",
        &[
            "Attention compares every query with every key by a dot product and averages the \
             values with softmax weights; nothing in it refers to where a token is.",
            "So permuting the input tokens permutes the outputs the same way: without a position \
             signal 'dog bites man' and 'man bites dog' give the same set of vectors.",
            "A positional encoding breaks this symmetry: in the input (sinusoidal, learned), in \
             the queries and keys (RoPE) or in the scores (ALiBi, T5). A decoder's causal mask \
             also orders tokens, which is why NoPE decoders work at all.",
        ],
        vec![
            section(
                "No position, no mask: the output of a permuted input is the permuted output",
                "Three tokens, one head, q = k = v = x; the input is reordered as (2, 0, 1).",
                vec![
                    matrix("output for x", "token ", "dim ", &f64s(&nope_out), d),
                    matrix(
                        "output for permuted x",
                        "slot ",
                        "dim ",
                        &f64s(&nope_perm),
                        d,
                    ),
                ],
                vec![value(
                    "max |output(permuted x) - permuted output(x)|",
                    gap(&nope_out, &nope_perm),
                )],
            ),
            section(
                "With RoPE the same permutation gives different vectors",
                "Same tokens at positions 0, 1, 2: moving a token moves its rotation.",
                vec![
                    matrix("output for x", "token ", "dim ", &f64s(&rope_out), d),
                    matrix(
                        "output for permuted x",
                        "slot ",
                        "dim ",
                        &f64s(&rope_perm),
                        d,
                    ),
                ],
                vec![value(
                    "max |output(permuted x) - permuted output(x)|",
                    gap(&rope_out, &rope_perm),
                )],
            ),
            section(
                "A causal mask alone already breaks the symmetry",
                "No position encoding, but each token sees only the tokens before it.",
                vec![],
                vec![value(
                    "max |output(permuted x) - permuted output(x)| with a causal mask",
                    gap(&causal_out, &causal_perm),
                )],
            ),
        ],
    ))
}

fn sinusoidal_topic() -> LearnResult<Walkthrough> {
    let (len, dim, base) = (4usize, 8usize, 10_000.0);
    let il = SinusoidalLayout::Interleaved;
    let table = f64s(&sinusoidal::table(len, dim, base, il)?);
    let concat = f64s(&sinusoidal::table(
        len,
        dim,
        base,
        SinusoidalLayout::Concat,
    )?);
    let freqs = sinusoidal::frequencies(dim, base, il)?;
    let wavelengths: Vec<f64> = freqs.iter().map(|w| std::f64::consts::TAU / w).collect();
    let pe = |p: f64| -> LearnResult<Vec<f64>> { Ok(f64s(&sinusoidal::row(p, dim, base, il)?)) };
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    Ok(walk(
        "sinusoidal",
        "Sinusoidal positions (Vaswani et al., 2017)",
        &[
            "Position p becomes a vector of sines and cosines of p at geometrically spaced \
             frequencies w_i = base^(-2i/d), added to the token embedding before the first layer.",
            "Fast pairs change at every step, slow pairs barely move: together they give every \
             position a unique code, with nothing learned.",
            "In the interleaved layout column 2i is sin(p w_i) and 2i+1 is cos(p w_i); Marian and \
             Pegasus put all sines first ([sin | cos]); fairseq also changes the exponent.",
        ],
        vec![
            section(
                "A 4 x 8 table (interleaved, base 10000)",
                "Rows are positions 0..3. Row 0 is (0, 1, 0, 1, ...): sin 0 and cos 0.",
                vec![
                    matrix("PE (interleaved)", "p=", "col ", &table, dim),
                    matrix("the same numbers, concatenated [sin | cos]", "p=", "col ", &concat, dim),
                    row_matrix("frequency w_i", labels("pair ", freqs.len()), freqs.clone()),
                    row_matrix("wavelength 2*pi/w_i (positions)", labels("pair ", freqs.len()), wavelengths),
                ],
                vec![],
            ),
            section(
                "PE(p).PE(p+k) depends only on k",
                "Each pair contributes cos(k w_i); this is a property of the table alone. Once \
                 the table is added to the embeddings and projected, scores are not shift-invariant.",
                vec![],
                vec![
                    value("PE(5).PE(3)", dot(&pe(5.0)?, &pe(3.0)?)),
                    value("PE(1005).PE(1003)", dot(&pe(1005.0)?, &pe(1003.0)?)),
                ],
            ),
        ],
    ))
}

fn learned_topic() -> LearnResult<Walkthrough> {
    let count = |r: usize, d: usize| -> LearnResult<f64> {
        Ok(LearnedTable::new(r, d, vec![0.0; r * d])?.parameter_count() as f64)
    };
    let small = LearnedTable::random(4, 2, 0, 1.0)?;
    let resized = small.resize(7)?;
    let missing = small
        .lookup(4)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    Ok(walk(
        "learned",
        "Learned absolute positions (BERT, GPT-2, OPT)",
        &[
            "A learned encoding is a trainable matrix with one row per position, added to the \
             token embeddings: BERT has 512 rows, GPT-2 1024, OPT 2048 (+2 offset rows).",
            "It costs rows x width parameters and knows nothing past its last row: a longer input \
             has no encoding at all.",
        ],
        vec![
            section(
                "Parameter counts (LearnedTable::parameter_count)",
                "rows x hidden size; no bias.",
                vec![],
                vec![
                    value("BERT-base: 512 x 768", count(512, 768)?),
                    value("GPT-2 small: 1024 x 768", count(1024, 768)?),
                    value("OPT-1.3b: (2048 + 2) x 2048", count(2050, 2048)?),
                ],
            ),
            section(
                "No row past the end",
                &format!(
                    "A 4-row table (seeded, N(0, 1)): lookup(4) fails with \"{missing}\". Stretching \
                     it to 7 rows by linear interpolation (LearnedTable::resize) gives rows the \
                     model never trained on."
                ),
                vec![
                    matrix("4-row table", "row ", "col ", &f64s(small.data()), 2),
                    matrix("resized to 7 rows", "row ", "col ", &f64s(resized.data()), 2),
                ],
                vec![],
            ),
        ],
    ))
}

/// Scores of one fixed q/k pair (head size 8) under RoPE at the given positions.
fn rope_pair_score(qp: u64, kp: u64) -> LearnResult<f64> {
    let d = 8;
    let heads = HeadConfig::mha(1, d)?;
    let s = attention_scores(
        &heads,
        &sample(1, d, 2),
        &sample(1, d, 3),
        &[qp],
        &[kp],
        &rope_scheme(d, RopeLayout::HalfSplit)?,
        Some(1.0),
    )?;
    Ok(s.first().copied().map(f64::from).unwrap_or(f64::NAN))
}

fn relative_topic() -> LearnResult<Walkthrough> {
    let (n, k) = (5usize, 2usize);
    let shaw: Vec<f64> = shaw_index_matrix(n, n, k)?
        .iter()
        .map(|&i| i as f64 - k as f64)
        .collect();
    let rps: Vec<i64> = (-20..=20).step_by(4).collect();
    let bucket_row = |bidirectional: bool| -> LearnResult<Vec<f64>> {
        rps.iter()
            .map(|&rp| Ok(t5_bucket(rp, bidirectional, 32, 128)? as f64))
            .collect()
    };
    let rp_labels: Vec<String> = rps.iter().map(|rp| format!("{rp:+}")).collect();
    Ok(walk(
        "relative",
        "Relative positions: Shaw, T5, and RoPE's identity",
        &[
            "Relative schemes make attention depend on the offset between query and key instead \
             of absolute positions, inside attention: a bias on the scores (T5, ALiBi), vectors \
             added to keys and values (Shaw), or a rotation of q and k (RoPE).",
            "Conventions differ: Shaw and T5 use key - query; DeBERTa uses query - key.",
        ],
        vec![
            section(
                "Shaw et al.: clip(j - i, -2, 2) for 5 tokens",
                "Each entry picks one of 2k+1 = 5 learned vectors; all far keys share the edge ones.",
                vec![matrix("clipped key - query", "q=", "k=", &shaw, n)],
                vec![],
            ),
            section(
                "T5 buckets (32 buckets, max distance 128)",
                "Exact buckets for small distances, logarithmic ones after; the encoder \
                 (bidirectional) uses separate buckets for keys after the query, the decoder \
                 (causal) buckets only keys before it.",
                vec![
                    row_matrix("bidirectional bucket", rp_labels.clone(), bucket_row(true)?),
                    row_matrix("causal bucket", rp_labels, bucket_row(false)?),
                ],
                vec![],
            ),
            section(
                "RoPE is relative: same offset, same score",
                "One fixed q and k (head size 8, base 10000), scores <R(m)q, R(n)k>.",
                vec![],
                vec![
                    value("score at (m, n) = (5, 3)", rope_pair_score(5, 3)?),
                    value("score at (m, n) = (1005, 1003)", rope_pair_score(1005, 1003)?),
                ],
            ),
        ],
    ))
}

fn rope_topic() -> LearnResult<Walkthrough> {
    let d = 8;
    let freqs = rope_freqs(d)?;
    let p = 3u64;
    let (mut c, mut s) = (vec![0.0f32; d / 2], vec![0.0f32; d / 2]);
    cos_sin_row(&freqs, p, &mut c, &mut s)?;
    let x: Vec<f32> = (1..=d).map(|i| i as f32).collect();
    let mut rotated = x.clone();
    apply_rotary(&mut rotated, &c, &s, RopeLayout::HalfSplit)?;
    let mut inter = x.clone();
    apply_rotary(&mut inter, &c, &s, RopeLayout::Interleaved)?;
    let norm = |v: &[f32]| {
        v.iter()
            .map(|&a| f64::from(a) * f64::from(a))
            .sum::<f64>()
            .sqrt()
    };
    Ok(walk(
        "rope",
        "Rotary position embeddings (RoPE)",
        &[
            "RoPE splits each query and key into pairs and rotates pair i by the angle p * \
             theta_i, theta_i = base^(-2i/d), in every attention layer; values are untouched.",
            "Rotations preserve norms and compose: <R(m)q, R(n)k> = <q, R(n - m)k>, so scores \
             depend on the offset only, even though each vector is rotated by its absolute \
             position.",
            "Hugging Face pairs x[i] with x[i + d/2] (half-split); GPT-J and Meta's Llama code \
             pair x[2i] with x[2i+1] (interleaved). The two are not interchangeable.",
        ],
        vec![
            section(
                "Rotating x = (1, ..., 8) to position 3 (base 10000)",
                "cos/sin of p * theta_i for the 4 pairs, the rotated vector in both layouts, and \
                 the norms.",
                vec![
                    row_matrix("theta_i", labels("pair ", d / 2), freqs.inv_freq.clone()),
                    row_matrix("cos(3 theta_i)", labels("pair ", d / 2), f64s(&c)),
                    row_matrix("sin(3 theta_i)", labels("pair ", d / 2), f64s(&s)),
                    row_matrix("x", labels("dim ", d), f64s(&x)),
                    row_matrix("R(3)x, half-split", labels("dim ", d), f64s(&rotated)),
                    row_matrix("R(3)x, interleaved", labels("dim ", d), f64s(&inter)),
                ],
                vec![
                    value("|x|", norm(&x)),
                    value("|R(3)x| (half-split)", norm(&rotated)),
                ],
            ),
            section(
                "The relative identity",
                "One fixed q and k (head size 8): the score depends only on n - m.",
                vec![],
                vec![
                    value("<R(5)q, R(3)k>", rope_pair_score(5, 3)?),
                    value("<R(1005)q, R(1003)k>", rope_pair_score(1005, 1003)?),
                ],
            ),
        ],
    ))
}

fn alibi_topic() -> LearnResult<Walkthrough> {
    let slopes = alibi::slopes(8)?;
    let bloom = alibi::slopes_bloom_f32(8, posenc::rope::HfCpu::Avx512)?;
    let windows: Vec<f64> = slopes
        .iter()
        .map(|&m| alibi::effective_window(m, 0.01))
        .collect::<posenc::Result<_>>()?;
    let bias = f64s(&alibi::bias(&slopes[..1], 5, 5, 0, false)?);
    let slopes12 = alibi::slopes(12)?;
    Ok(walk(
        "alibi",
        "ALiBi: attention with linear biases",
        &[
            "ALiBi adds -m_h * (i - j) to the score of query i and key j, before softmax: no \
             position vectors at all. Each head has its own slope, a geometric sequence starting \
             at 2^(-8/n).",
            "Steep heads look near, flat heads look far; the penalty grows without bound, so the \
             model runs at any length but far tokens fade. BLOOM and MPT use it.",
        ],
        vec![
            section(
                "Slopes for 8 heads",
                "2^(-1), 2^(-2), ..., 2^(-8); BLOOM computes them in float32. The 1% window is the \
                 distance at which the weight factor e^(-m d) falls to 0.01.",
                vec![
                    row_matrix("slope m_h", labels("head ", 8), slopes.clone()),
                    row_matrix(
                        "BLOOM float32 slope",
                        labels("head ", 8),
                        bloom.iter().map(|&x| f64::from(x)).collect(),
                    ),
                    row_matrix("1% window (tokens)", labels("head ", 8), windows),
                ],
                vec![],
            ),
            section(
                "Causal bias of head 0 for 5 tokens",
                "Keys after the query get 0 here: hiding them is the causal mask's job.",
                vec![matrix("bias (head 0)", "q=", "k=", &bias, 5)],
                vec![],
            ),
            section(
                "12 heads (not a power of two)",
                "The 8 slopes of the 8-head rule, then every other slope of the 16-head rule.",
                vec![row_matrix("slope m_h", labels("head ", 12), slopes12)],
                vec![],
            ),
        ],
    ))
}

/// The scaling example config: base 10000, head size 16, trained on 2048, factor 4.
fn scaling_params(scaling: RopeScaling) -> LearnResult<RopeParams> {
    Ok(RopeParams {
        max_position_embeddings: 8192,
        scaling,
        ..RopeParams::new(10_000.0, 16)?
    })
}

fn scaling_topic() -> LearnResult<Walkthrough> {
    let factor = 4.0;
    let yarn = YarnParams::new(factor, 2048);
    let configs = [
        ("default (no scaling)", RopeScaling::Default),
        ("PI (linear, factor 4)", RopeScaling::Linear { factor }),
        ("NTK (factor 4)", RopeScaling::Ntk { factor }),
        (
            "YaRN (factor 4, original 2048)",
            RopeScaling::Yarn(yarn.clone()),
        ),
    ];
    let mut freq_rows = Vec::new();
    let mut factors = Vec::new();
    for (name, s) in configs.iter() {
        let f = scaling_params(s.clone())?.frequencies(None, Precision::Exact)?;
        freq_rows.push(f.inv_freq.clone());
        factors.push(value(
            &format!("attention factor, {name}"),
            f.attention_factor,
        ));
    }
    let (low, high) = yarn_correction_range(&yarn, 16, 10_000.0);
    let report =
        diagnostics::pair_report(&scaling_params(RopeScaling::Yarn(yarn))?, 2048, 8192, None)?;
    let interp: Vec<f64> = report.iter().map(|r| r.interpolation).collect();
    Ok(walk(
        "scaling",
        "Long-context RoPE scalings: PI, NTK, YaRN",
        &[
            "A RoPE model trained on L tokens has never seen the angles of its slow pairs past L. \
             Scalings change the frequencies so that a longer context maps onto angles it knows.",
            "PI divides every frequency by the factor (fine positions get blurred); NTK raises \
             the base (fast pairs almost unchanged, slow pairs interpolated); YaRN interpolates \
             only the slow pairs, keeps the fast ones, blends in between, and multiplies cos/sin \
             by an attention factor.",
            "All of them need the same setting at inference as in the fine-tune; dropping the \
             scaling or the attention factor silently changes every score.",
        ],
        vec![section(
            "Inverse frequencies for one config (base 10000, head size 16, 2048 -> 8192)",
            "One row per scaling, one column per pair.",
            vec![
                Matrix {
                    name: "inv_freq".into(),
                    row_labels: configs.iter().map(|(n, _)| n.to_string()).collect(),
                    column_labels: labels("pair ", 8),
                    rows: freq_rows,
                },
                row_matrix(
                    "YaRN interpolation (unscaled / scaled)",
                    labels("pair ", 8),
                    interp,
                ),
            ],
            {
                let mut v = factors;
                v.push(value("YaRN correction range: low pair", low));
                v.push(value("YaRN correction range: high pair", high));
                v
            },
        )],
    ))
}

fn decode_topic() -> LearnResult<Walkthrough> {
    let lengths = [3usize, 5];
    let width = 5usize;
    let masks: Vec<Vec<bool>> = lengths
        .iter()
        .map(|&l| (0..width).map(|t| t >= width - l).collect())
        .collect();
    let prefill_pos: Vec<f64> = masks
        .iter()
        .flat_map(|m| positions_from_padding_mask(m))
        .map(|p| p.map_or(-1.0, |p| p as f64))
        .collect();
    let heads = HeadConfig::mha(1, 2)?;
    let scheme = rope_scheme(2, RopeLayout::HalfSplit)?;
    let opts = AttentionOptions::default();
    let mut cache = BatchKvCache::new(2, &heads)?;
    let flat_mask: Vec<bool> = masks.concat();
    let x = sample(2 * width, 2, 4);
    cache.forward(&heads, &x, &x, &x, &flat_mask, &scheme, &opts)?;
    let mut steps = Vec::new();
    for step in 0..3 {
        let t = sample(2, 2, 5 + step);
        let out = cache.forward(&heads, &t, &t, &t, &[true, true], &scheme, &opts)?;
        steps.extend(out.positions.iter().map(|p| p.map_or(-1.0, |p| p as f64)));
    }
    // The padded row 0 against the same 3 tokens alone.
    let row0: Vec<f32> = x[(width - lengths[0]) * 2..width * 2].to_vec();
    let mut alone = KvCache::new(1, 2)?;
    let alone_out = alone.forward(
        &heads,
        &row0,
        &row0,
        &row0,
        &[Some(0), Some(1), Some(2)],
        &scheme,
        &opts,
    )?;
    let mut batch = BatchKvCache::new(2, &heads)?;
    let batch_out = batch.forward(&heads, &x, &x, &x, &flat_mask, &scheme, &opts)?;
    let padded_row0 = &batch_out.output[(width - lengths[0]) * 2..width * 2];
    Ok(walk(
        "decode-positions",
        "Position ids when decoding with a KV cache",
        &[
            "With a KV cache each decode step feeds one new token; its position id must continue \
             from the tokens already in the cache, or RoPE rotates it to the wrong angle (and \
             ALiBi/T5 bias the wrong distances). Nothing errors: outputs are just wrong.",
            "Batched prompts are padded on the left. Position ids then come from the attention \
             mask, cumsum(mask) - 1, so each row starts at 0 at its first real token; padding \
             gets no position and is masked.",
        ],
        vec![section(
            "A batch of prompts of lengths 3 and 5, left-padded to 5",
            "Prefill positions (-1 = padding), then three decode steps (posenc BatchKvCache).",
            vec![
                matrix("prefill position ids", "row ", "slot ", &prefill_pos, width),
                Matrix {
                    name: "decode position ids".into(),
                    row_labels: labels("step ", 3),
                    column_labels: labels("row ", 2),
                    rows: steps.chunks(2).map(|r| r.to_vec()).collect(),
                },
            ],
            vec![value(
                "max |padded row 0 output - same 3 tokens alone|",
                max_abs_diff(&f64s(padded_row0), &f64s(&alone_out.output)),
            )],
        )],
    ))
}

// ------------------------------------------------------------------------------------------
// Mistakes

fn wrong_right(
    title: &str,
    text: &str,
    name: &str,
    cols: usize,
    wrong: &[f64],
    right: &[f64],
    extra: Vec<Value>,
) -> Section {
    let mut values = vec![value("max |wrong - right|", max_abs_diff(wrong, right))];
    values.extend(extra);
    section(
        title,
        text,
        vec![
            matrix(&format!("wrong: {name}"), "r", "c", wrong, cols),
            matrix(&format!("right: {name}"), "r", "c", right, cols),
        ],
        values,
    )
}

/// Outputs of three decode steps after a 4-token prefill, with the given decode positions, and
/// the outputs of one full causal forward for the same 7 tokens.
fn decode_outputs(decode_positions: [u64; 3]) -> LearnResult<(Vec<f64>, Vec<f64>)> {
    let d = 2;
    let heads = HeadConfig::mha(1, d)?;
    let scheme = rope_scheme(d, RopeLayout::HalfSplit)?;
    let x = sample(7, d, 6);
    let opts = AttentionOptions::default();
    let mut cache = KvCache::new(1, d)?;
    let prefix = &x[..4 * d];
    cache.forward(
        &heads,
        prefix,
        prefix,
        prefix,
        &[Some(0), Some(1), Some(2), Some(3)],
        &scheme,
        &opts,
    )?;
    let mut decoded = Vec::new();
    for (t, &p) in (4..7).zip(&decode_positions) {
        let tok = &x[t * d..(t + 1) * d];
        decoded.extend(f64s(
            &cache
                .forward(&heads, tok, tok, tok, &[Some(p)], &scheme, &opts)?
                .output,
        ));
    }
    let pos: Vec<u64> = (0..7).collect();
    let full = attention(
        &heads,
        &x,
        &x,
        &x,
        &pos,
        &pos,
        &scheme,
        &Mask::causal_by_position(),
        &opts,
    )?;
    Ok((decoded, f64s(&full.output[4 * d..])))
}

/// Causal weights of one head with a single ALiBi slope (or none), 4 tokens.
fn alibi_weights(slope: Option<f64>) -> LearnResult<Vec<f64>> {
    let d = 2;
    let heads = HeadConfig::mha(1, d)?;
    let x = sample(4, d, 7);
    let pos: Vec<u64> = (0..4).collect();
    let scheme = match slope {
        Some(m) => Scheme::Alibi {
            slopes: vec![m],
            symmetric: false,
        },
        None => Scheme::NoPe,
    };
    let out = attention(
        &heads,
        &x,
        &x,
        &x,
        &pos,
        &pos,
        &scheme,
        &Mask::causal_by_position(),
        &with_weights(),
    )?;
    Ok(f64s(&out.weights.unwrap_or_default()))
}

/// A toy absolute-position layer (sinusoidal or RoPE) run on 3 tokens, alone or left-padded by
/// 2, with the given positions for the 5 padded slots; returns the outputs of the 3 real tokens.
fn padded_run(scheme: Scheme, padded_positions: Option<[u64; 5]>) -> LearnResult<Vec<f64>> {
    let d = 4;
    let heads = HeadConfig::mha(1, d)?;
    let identity: Vec<f32> = (0..d * d)
        .map(|i| if i % (d + 1) == 0 { 1.0 } else { 0.0 })
        .collect();
    let layer = SingleLayer::new(
        heads,
        d,
        identity.clone(),
        identity.clone(),
        identity,
        scheme,
    )?;
    let tokens = sample(3, d, 8);
    let opts = AttentionOptions::default();
    match padded_positions {
        None => Ok(f64s(
            &layer
                .forward(&tokens, &[0, 1, 2], &Mask::causal_by_position(), &opts)?
                .output,
        )),
        Some(pos) => {
            let mut hidden = vec![0.0f32; 2 * d];
            hidden.extend_from_slice(&tokens);
            let mask =
                Mask::causal_by_index().with_key_padding(vec![false, false, true, true, true]);
            let out = layer.forward(&hidden, &pos, &mask, &opts)?;
            Ok(f64s(&out.output[2 * d..]))
        }
    }
}

fn mistakes_topic() -> LearnResult<Walkthrough> {
    let mut sections = Vec::new();

    // 1. ALiBi after softmax.
    let m = alibi::slopes(4)?[0];
    let right = alibi_weights(Some(m))?;
    let bias = f64s(&alibi::bias(&[m], 4, 4, 0, false)?);
    // Softmax of the plain scores, then the bias (zero above the diagonal, where the causal
    // mask already gave weight 0).
    let wrong: Vec<f64> = alibi_weights(None)?
        .iter()
        .zip(&bias)
        .map(|(w, b)| w + b)
        .collect();
    let last_row_sum: f64 = wrong[12..16].iter().sum();
    sections.push(wrong_right(
        "1. ALiBi bias added after softmax instead of before",
        "The bias belongs in the scores: after softmax it is no longer a multiplicative decay, \
         and the rows no longer sum to 1.",
        "causal weights, slope 0.25",
        4,
        &wrong,
        &right,
        vec![value("sum of the last row, wrong", last_row_sum)],
    ));

    // 2. Half-split vs interleaved on the same weights.
    let d = 4;
    let heads = HeadConfig::mha(1, d)?;
    let q = sample(1, d, 9);
    let keys = sample(6, d, 10);
    let kpos: Vec<u64> = (0..6).collect();
    let scores = |layout| -> LearnResult<Vec<f64>> {
        Ok(f64s(&attention_scores(
            &heads,
            &q,
            &keys,
            &[5],
            &kpos,
            &rope_scheme(d, layout)?,
            None,
        )?))
    };
    sections.push(wrong_right(
        "2. Interleaved pairs on weights trained for half-split",
        "Same q and k weights, same positions: pairing (x0, x1) instead of (x0, x2) rotates \
         different coordinates together, and every score changes.",
        "scores of query 5 against keys 0..5",
        6,
        &scores(RopeLayout::Interleaved)?,
        &scores(RopeLayout::HalfSplit)?,
        vec![],
    ));

    // 3 and 4. Decode positions all 0; off by one.
    let (right_dec, full) = decode_outputs([4, 5, 6])?;
    let (zero_dec, _) = decode_outputs([0, 0, 0])?;
    let (off_dec, _) = decode_outputs([5, 6, 7])?;
    sections.push(wrong_right(
        "3. Decode positions all 0",
        "Prefill 4 tokens, then decode 3 at positions 0, 0, 0 instead of 4, 5, 6 (RoPE).",
        "decoded outputs",
        2,
        &zero_dec,
        &right_dec,
        vec![value(
            "max |right decode - full forward|",
            max_abs_diff(&right_dec, &full),
        )],
    ));
    sections.push(wrong_right(
        "4. Off by one: decode starting at prefix length + 1",
        "Decode positions start at the prefix length (4), not 5.",
        "decoded outputs",
        2,
        &off_dec,
        &right_dec,
        vec![],
    ));

    // 5. Left padding without cumsum.
    let sin = Scheme::Sinusoidal {
        layout: SinusoidalLayout::Interleaved,
        base: 10_000.0,
    };
    let alone = padded_run(sin.clone(), None)?;
    let with_cumsum = padded_run(sin.clone(), Some([0, 0, 0, 1, 2]))?;
    let no_cumsum = padded_run(sin, Some([0, 1, 2, 3, 4]))?;
    let rope4 = rope_scheme(4, RopeLayout::HalfSplit)?;
    let rope_alone = padded_run(rope4.clone(), None)?;
    let rope_no_cumsum = padded_run(rope4, Some([0, 1, 2, 3, 4]))?;
    sections.push(wrong_right(
        "5. Left padding without cumsum",
        "Three tokens left-padded by two, sinusoidal positions: numbering the padding shifts the \
         real tokens to positions 2..4. With cumsum(mask) - 1 they stay at 0..2 and match the \
         unpadded run. RoPE only sees offsets, so for it the shift is harmless.",
        "outputs of the 3 real tokens",
        4,
        &no_cumsum,
        &with_cumsum,
        vec![
            value(
                "max |cumsum positions - unpadded|",
                max_abs_diff(&with_cumsum, &alone),
            ),
            value(
                "max |no cumsum - unpadded|, RoPE",
                max_abs_diff(&rope_no_cumsum, &rope_alone),
            ),
        ],
    ));

    // 6. Scaling dropped.
    let yarn = YarnParams::new(4.0, 2048);
    let scaled =
        scaling_params(RopeScaling::Yarn(yarn.clone()))?.frequencies(None, Precision::Exact)?;
    let unscaled = scaling_params(RopeScaling::Default)?.frequencies(None, Precision::Exact)?;
    let slow = |f: &RopeFrequencies| f.inv_freq.last().copied().unwrap_or(f64::NAN);
    sections.push(wrong_right(
        "6. Scaling dropped",
        "A YaRN model (factor 4, trained on 2048) run with plain frequencies: at position 8191 \
         its slowest pair turns far past any angle it saw in training.",
        "inv_freq",
        8,
        &unscaled.inv_freq,
        &scaled.inv_freq,
        vec![
            value(
                "largest slow-pair angle in training (2047 x theta, rad)",
                2047.0 * slow(&unscaled),
            ),
            value(
                "slow-pair angle at 8191, scaling dropped (rad)",
                8191.0 * slow(&unscaled),
            ),
            value(
                "slow-pair angle at 8191, with YaRN (rad)",
                8191.0 * slow(&scaled),
            ),
        ],
    ));

    // 7. Attention factor forgotten.
    let no_factor = RopeFrequencies {
        attention_factor: 1.0,
        ..scaled.clone()
    };
    let d16 = 16;
    let heads16 = HeadConfig::mha(1, d16)?;
    let q16 = sample(1, d16, 11);
    let k16 = sample(4, d16, 12);
    let score_with = |f: &RopeFrequencies| -> LearnResult<Vec<f64>> {
        Ok(f64s(&attention_scores(
            &heads16,
            &q16,
            &k16,
            &[3],
            &[0, 1, 2, 3],
            &Scheme::Rope {
                freqs: f.clone(),
                layout: RopeLayout::HalfSplit,
            },
            None,
        )?))
    };
    let right_s = score_with(&scaled)?;
    let wrong_s = score_with(&no_factor)?;
    sections.push(wrong_right(
        "7. YaRN attention factor forgotten",
        "YaRN multiplies cos and sin by its attention factor, so every logit by its square; \
         leaving it out flattens the softmax.",
        "scores of query 3",
        4,
        &wrong_s,
        &right_s,
        vec![
            value("attention factor", scaled.attention_factor),
            value("right / wrong score ratio", right_s[0] / wrong_s[0]),
        ],
    ));

    // 8. Bias sign flipped.
    let flipped = alibi_weights(Some(-m))?;
    sections.push(wrong_right(
        "8. ALiBi bias sign flipped",
        "With +m(i - j) far tokens are rewarded instead of penalised: the first token takes \
         over the last query's attention.",
        "causal weights",
        4,
        &flipped,
        &right,
        vec![
            value("weight of token 0 for query 3, wrong", flipped[12]),
            value("weight of token 0 for query 3, right", right[12]),
        ],
    ));

    // 9. float32 angles at 1e6.
    let p128 = RopeParams::new(10_000.0, 128)?;
    let exact = p128.frequencies(None, Precision::Exact)?;
    let hf = p128.frequencies(None, Precision::Hf(posenc::rope::HfCpu::Avx512))?;
    let row = |f: &RopeFrequencies| -> LearnResult<Vec<f64>> {
        let (mut c, mut s) = (vec![0.0f32; 64], vec![0.0f32; 64]);
        cos_sin_row(f, 1_000_000, &mut c, &mut s)?;
        Ok(f64s(&c))
    };
    let cos_exact = row(&exact)?;
    let cos_hf = row(&hf)?;
    sections.push(wrong_right(
        "9. float32 angles at position 1,000,000",
        "Forming p * theta in float32 (as Hugging Face does) loses the angle's low bits at large \
         p; posenc forms it in f64. First 4 of 64 cos values, head size 128.",
        "cos(1e6 * theta_i), pairs 0..3",
        4,
        &cos_hf[..4],
        &cos_exact[..4],
        vec![value(
            "max |float32 - f64| over all 64 pairs",
            max_abs_diff(&cos_hf, &cos_exact),
        )],
    ));

    // 10. T5 sign of relative position.
    let cfg = T5Buckets {
        bidirectional: true,
        num_buckets: 32,
        max_distance: 128,
    };
    let right_b: Vec<f64> = t5_bucket_matrix(5, 5, 0, &cfg)?
        .iter()
        .map(|&b| b as f64)
        .collect();
    let mut wrong_b = vec![0.0; 25];
    for i in 0..5 {
        for j in 0..5 {
            wrong_b[i * 5 + j] = right_b[j * 5 + i];
        }
    }
    sections.push(wrong_right(
        "10. T5 relative position as query - key",
        "T5 buckets key - query: keys after the query use the upper half of the buckets. With the \
         sign flipped the model reads 'before' as 'after' (DeBERTa, by contrast, uses query - key).",
        "buckets (5 tokens, 32 buckets, bidirectional)",
        5,
        &wrong_b,
        &right_b,
        vec![],
    ));

    Ok(Walkthrough {
        topic: "mistakes".into(),
        title: "Ten common mistakes, wrong and right side by side".into(),
        intro: vec![
            "Each mistake below is computed both ways by posenc on the same small example. None \
             of them raises an error in a real model: they silently change the numbers."
                .into(),
        ],
        sections,
    })
}
