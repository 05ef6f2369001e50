//! The numbers behind the explorer's teaching figures, computed with the posenc library.
//!
//! * [`sinusoidal_similarity`]: the PE(i)·PE(j) matrix, whose entries depend only on i − j;
//! * [`qk_rotation`]: one RoPE pair in 2-D: q at position m, k at position n, the angle between
//!   them and q·k as the offset changes;
//! * [`decay_bound`]: RoFormer's long-term-decay bound (Su et al. 2021, Fig. 2) next to the Men et
//!   al. (2024) criterion Σ cos(m θ_i);
//! * [`distance_profile`]: what the score gains or loses with distance, for NoPE, ALiBi (per
//!   head), T5 buckets, sinusoidal and RoPE;
//! * [`nope_counting`]: a causal NoPE head that counts the keys it can see;
//! * [`walk`]: four tokens through embedding → (+PE) → Q/K/V → scores (+bias) → softmax →
//!   output, with the scheme entering at its true point.
//!
//! Every function checks its sizes against the caps below and returns
//! [`crate::LearnErrorKind::InvalidRequest`] past them.

use std::f64::consts::{PI, TAU};

use posenc::alibi;
use posenc::attention::{
    add_absolute_positions, apply_query_key_scheme, attention, AttentionOptions, HeadConfig, Mask,
    Scheme, SingleLayer,
};
use posenc::learned::LearnedTable;
use posenc::relative::T5Buckets;
use posenc::rope::{
    apply_rotary, rotation_row, Precision, RopeFrequencies, RopeLayout, RopeParams,
};
use posenc::sinusoidal::{self, SinusoidalLayout};
use posenc::PositionEntry;
use serde::{Deserialize, Serialize};

use super::walkthrough::Matrix;
use super::{LearnError, LearnErrorKind, LearnResult};

/// Largest side of the similarity matrix.
pub const MAX_SIMILARITY_LEN: usize = 512;
/// Largest number of sampled distances or offsets in a curve.
pub const MAX_POINTS: usize = 2048;
/// Largest distance of a curve.
pub const MAX_DISTANCE: usize = 1 << 20;
/// Largest head size.
pub const MAX_HEAD_DIM: usize = 1024;
/// Largest number of ALiBi heads.
pub const MAX_HEADS: usize = 64;
/// Largest sequence of the NoPE counting head.
pub const MAX_NOPE_LEN: usize = 512;

fn invalid(message: String) -> LearnError {
    LearnError::new(LearnErrorKind::InvalidRequest, message)
}

fn check_range(name: &str, v: usize, lo: usize, hi: usize) -> LearnResult<()> {
    if v < lo || v > hi {
        return Err(invalid(format!(
            "invalid {name}: expected {lo}..={hi}, got {v}"
        )));
    }
    Ok(())
}

fn check_head_dim(head_dim: usize) -> LearnResult<()> {
    check_range("head_dim", head_dim, 2, MAX_HEAD_DIM)?;
    if !head_dim.is_multiple_of(2) {
        return Err(invalid(format!(
            "invalid head_dim: expected an even number, got {head_dim}"
        )));
    }
    Ok(())
}

fn rope_freqs(head_dim: usize, base: f64) -> LearnResult<RopeFrequencies> {
    check_head_dim(head_dim)?;
    Ok(RopeParams::new(base, head_dim)?.frequencies(None, Precision::Exact)?)
}

/// `points` distances from 0 to `max` (all of them when there are few), ascending, distinct.
fn sample_distances(max: usize, points: usize) -> Vec<usize> {
    if max < points {
        return (0..=max).collect();
    }
    let mut out: Vec<usize> = (0..points).map(|c| c * max / (points - 1)).collect();
    out.dedup();
    out
}

// ------------------------------------------------------------------------------------------
// Sinusoidal similarity

/// The PE(i)·PE(j) similarity of a sinusoidal table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Similarity {
    /// Positions `start .. start + len`.
    pub positions: Vec<usize>,
    /// Width of the table.
    pub dim: usize,
    /// Base.
    pub base: f64,
    /// Layout.
    pub layout: SinusoidalLayout,
    /// PE(i)·PE(j) divided by PE(i)·PE(i) (= the number of sin/cos pairs), row-major
    /// `[len][len]`: 1 on the diagonal.
    pub values: Vec<f32>,
    /// The same normalised dot product for offsets `0 .. len`: PE(start)·PE(start + Δ).
    pub by_offset: Vec<f64>,
    /// Largest |S(i, j) − by_offset[|i − j|]| over the matrix: how far the matrix is from
    /// depending on i − j only (float rounding).
    pub max_offset_deviation: f64,
    /// The normaliser: PE(i)·PE(i).
    pub self_dot: f64,
}

/// PE(i)·PE(j) for positions `start .. start + len` of a sinusoidal table (`len` ≤
/// [`MAX_SIMILARITY_LEN`]).
pub fn sinusoidal_similarity(
    len: usize,
    start: usize,
    dim: usize,
    base: f64,
    layout: SinusoidalLayout,
) -> LearnResult<Similarity> {
    check_range("len", len, 1, MAX_SIMILARITY_LEN)?;
    check_range("dim", dim, 2, MAX_HEAD_DIM)?;
    let rows: Vec<Vec<f64>> = (start..start + len)
        .map(|p| {
            Ok(sinusoidal::row(p as f64, dim, base, layout)?
                .into_iter()
                .map(f64::from)
                .collect())
        })
        .collect::<LearnResult<_>>()?;
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    // Every sin/cos pair contributes sin² + cos² = 1 (a fairseq pad column adds 0).
    let self_dot = dot(&rows[0], &rows[0]);
    let mut values = Vec::with_capacity(len * len);
    for a in &rows {
        for b in &rows {
            values.push((dot(a, b) / self_dot) as f32);
        }
    }
    let by_offset: Vec<f64> = rows.iter().map(|r| dot(&rows[0], r) / self_dot).collect();
    let mut max_offset_deviation = 0.0f64;
    for i in 0..len {
        for j in 0..len {
            let d = (f64::from(values[i * len + j]) - by_offset[i.abs_diff(j)]).abs();
            max_offset_deviation = max_offset_deviation.max(d);
        }
    }
    Ok(Similarity {
        positions: (start..start + len).collect(),
        dim,
        base,
        layout,
        values,
        by_offset,
        max_offset_deviation,
        self_dot,
    })
}

// ------------------------------------------------------------------------------------------
// q and k of one RoPE pair, in 2-D

/// One RoPE pair in the plane: q rotated to position m, k to position n.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QkRotation {
    /// The pair.
    pub pair: usize,
    /// Its angle per position θ_i (radians).
    pub theta: f64,
    /// Its wavelength 2π/θ_i (positions).
    pub wavelength: f64,
    /// Query position.
    pub m: i64,
    /// Key position.
    pub n: i64,
    /// The query pair before rotation (seeded).
    pub q: [f64; 2],
    /// The key pair before rotation (seeded).
    pub k: [f64; 2],
    /// q rotated by m·θ.
    pub q_rot: [f64; 2],
    /// k rotated by n·θ.
    pub k_rot: [f64; 2],
    /// Angle of k_rot minus angle of q_rot, in (−π, π].
    pub angle_between: f64,
    /// q_rot · k_rot.
    pub dot: f64,
    /// The same dot product with both positions shifted by `s`.
    pub dot_shifted: f64,
    /// The shift.
    pub s: i64,
    /// Offsets n − m for the curve.
    pub offsets: Vec<i64>,
    /// q·k with q at m and k at m + offset, for each offset.
    pub dots: Vec<f64>,
}

fn rotate_pair(
    v: [f64; 2],
    freqs: &RopeFrequencies,
    pair: usize,
    pos: i64,
) -> LearnResult<[f64; 2]> {
    let mut cos = vec![0f32; freqs.pairs()];
    let mut sin = vec![0f32; freqs.pairs()];
    rotation_row(freqs, pos, &mut cos, &mut sin)?;
    let mut x = [v[0] as f32, v[1] as f32];
    apply_rotary(
        &mut x,
        &cos[pair..=pair],
        &sin[pair..=pair],
        RopeLayout::HalfSplit,
    )?;
    Ok([f64::from(x[0]), f64::from(x[1])])
}

/// One pair of a RoPE head (`head_dim`, `base`): seeded q and k, q at `m`, k at `n`, and q·k for
/// offsets `-max_offset ..= max_offset` (sampled to at most `points`).
#[allow(clippy::too_many_arguments)]
pub fn qk_rotation(
    head_dim: usize,
    base: f64,
    pair: usize,
    m: i64,
    n: i64,
    s: i64,
    seed: u64,
    max_offset: usize,
    points: usize,
) -> LearnResult<QkRotation> {
    let freqs = rope_freqs(head_dim, base)?;
    check_range("pair", pair, 0, freqs.pairs() - 1)?;
    check_range("max_offset", max_offset, 1, MAX_DISTANCE)?;
    check_range("points", points, 2, MAX_POINTS)?;
    let lim = MAX_DISTANCE as i64;
    for (name, v) in [("m", m), ("n", n), ("m + s", m + s), ("n + s", n + s)] {
        if !(0..=lim).contains(&v) {
            return Err(invalid(format!(
                "invalid {name}: expected 0..={lim}, got {v}"
            )));
        }
    }
    let qk = LearnedTable::random(2, 2, seed, 1.0)?;
    let q = [f64::from(qk.data()[0]), f64::from(qk.data()[1])];
    let k = [f64::from(qk.data()[2]), f64::from(qk.data()[3])];
    let dot = |a: [f64; 2], b: [f64; 2]| a[0] * b[0] + a[1] * b[1];
    let q_rot = rotate_pair(q, &freqs, pair, m)?;
    let k_rot = rotate_pair(k, &freqs, pair, n)?;
    let shifted = dot(
        rotate_pair(q, &freqs, pair, m + s)?,
        rotate_pair(k, &freqs, pair, n + s)?,
    );
    let mut between = k_rot[1].atan2(k_rot[0]) - q_rot[1].atan2(q_rot[0]);
    if between <= -PI {
        between += TAU;
    } else if between > PI {
        between -= TAU;
    }
    let offsets: Vec<i64> = sample_distances(2 * max_offset, points)
        .into_iter()
        .map(|d| d as i64 - max_offset as i64)
        .collect();
    // Only the offset matters: the key's rotation relative to the query's (RoPE's identity,
    // which `dot_shifted` checks numerically).
    let dots = offsets
        .iter()
        .map(|&o| Ok(dot(q, rotate_pair(k, &freqs, pair, o)?)))
        .collect::<LearnResult<_>>()?;
    let theta = freqs.inv_freq[pair];
    Ok(QkRotation {
        pair,
        theta,
        wavelength: TAU / theta,
        m,
        n,
        q,
        k,
        q_rot,
        k_rot,
        angle_between: between,
        dot: dot(q_rot, k_rot),
        dot_shifted: shifted,
        s,
        offsets,
        dots,
    })
}

// ------------------------------------------------------------------------------------------
// RoFormer's decay bound and the Men et al. criterion

/// RoFormer's long-term-decay bound and the Men et al. criterion against distance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecayBound {
    /// Head size.
    pub head_dim: usize,
    /// Base.
    pub base: f64,
    /// Sampled distances m − n.
    pub distances: Vec<usize>,
    /// Su et al.'s relative upper bound (1/(d/2)) Σ_{j=1}^{d/2} |S_j|, with
    /// S_j = Σ_{i<j} e^{i (m−n) θ_i}: q·k is at most max_i |h_{i+1} − h_i| times d/2 times this.
    pub bound: Vec<f64>,
    /// Men et al.'s B(m) = Σ_i cos(m θ_i), divided by d/2: the score of q = k (every pair a unit
    /// vector) at distance m, relative to distance 0.
    pub criterion: Vec<f64>,
    /// The first distance below `max_distance` where B(m) < 0 (checked at every distance, not
    /// only the sampled ones), if any.
    pub criterion_first_negative: Option<usize>,
}

/// [`DecayBound`] for RoPE with `head_dim` and `base`, over distances `0 ..= max_distance`
/// sampled to at most `points`.
pub fn decay_bound(
    head_dim: usize,
    base: f64,
    max_distance: usize,
    points: usize,
) -> LearnResult<DecayBound> {
    let freqs = rope_freqs(head_dim, base)?;
    check_range("max_distance", max_distance, 1, MAX_DISTANCE)?;
    check_range("points", points, 2, MAX_POINTS)?;
    let pairs = freqs.pairs();
    let distances = sample_distances(max_distance, points);
    let mut cos = vec![0f32; pairs];
    let mut sin = vec![0f32; pairs];
    let mut bound = Vec::with_capacity(distances.len());
    let mut criterion = Vec::with_capacity(distances.len());
    for &d in &distances {
        rotation_row(&freqs, d as i64, &mut cos, &mut sin)?;
        let (mut re, mut im, mut sum_abs) = (0.0f64, 0.0f64, 0.0f64);
        for (&c, &s) in cos.iter().zip(&sin) {
            re += f64::from(c);
            im += f64::from(s);
            sum_abs += re.hypot(im);
        }
        bound.push(sum_abs / pairs as f64);
        criterion.push(re / pairs as f64);
    }
    let criterion_first_negative = posenc::diagnostics::frequency_criterion(
        &freqs.inv_freq,
        max_distance.min(posenc::diagnostics::MAX_CRITERION_LEN),
        true,
    )?
    .first_violation;
    Ok(DecayBound {
        head_dim,
        base,
        distances,
        bound,
        criterion,
        criterion_first_negative,
    })
}

// ------------------------------------------------------------------------------------------
// Score change with distance, every scheme

/// How one scheme changes a score with distance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistanceCurve {
    /// `nope`, `alibi`, `t5`, `sinusoidal` or `rope`.
    pub scheme: String,
    /// Label for the legend.
    pub label: String,
    /// The ALiBi head, for ALiBi curves.
    pub head: Option<usize>,
    /// score(distance) − score(0), in logits, one per distance.
    pub values: Vec<f64>,
}

/// What the score gains or loses with distance, for every scheme (see [`distance_profile`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistanceProfile {
    /// Sampled distances (query − key, keys before the query).
    pub distances: Vec<usize>,
    /// Head size of the dot-product schemes (RoPE, sinusoidal).
    pub head_dim: usize,
    /// Base of RoPE and of the sinusoidal table.
    pub base: f64,
    /// Number of ALiBi heads.
    pub heads: usize,
    /// T5 buckets and the seed of its (learned, here random) bias table.
    pub t5: T5Buckets,
    /// Seed of the T5 table.
    pub seed: u64,
    /// One curve per scheme (ALiBi: one per head).
    pub curves: Vec<DistanceCurve>,
    /// How each curve is defined.
    pub conventions: Vec<String>,
}

/// score(Δ) − score(0) for keys Δ tokens before the query: NoPE (0), ALiBi (−m·Δ per head), T5
/// (the learned bias of Δ's bucket; random here, std 1, so only the bucket steps mean something),
/// RoPE (q·k/√d for q = k with every pair a unit vector: (1/√d) Σ_i (cos Δθ_i − 1)) and sinusoidal
/// (PE(p)·PE(p+Δ)/√d, relative to Δ = 0: the same sum, Σ_i cos Δω_i).
#[allow(clippy::too_many_arguments)]
pub fn distance_profile(
    max_distance: usize,
    points: usize,
    head_dim: usize,
    base: f64,
    heads: usize,
    t5: T5Buckets,
    seed: u64,
) -> LearnResult<DistanceProfile> {
    check_range("max_distance", max_distance, 1, MAX_DISTANCE)?;
    check_range("points", points, 2, MAX_POINTS)?;
    check_range("heads", heads, 1, MAX_HEADS)?;
    t5.validate()?;
    let freqs = rope_freqs(head_dim, base)?;
    let distances = sample_distances(max_distance, points);
    let last = max_distance as u64;
    // Keys before the query: the query sits at the largest distance, key at query − Δ.
    let key_at = |d: usize| last - d as u64;
    let mut curves = vec![DistanceCurve {
        scheme: "nope".into(),
        label: "NoPE".into(),
        head: None,
        values: vec![0.0; distances.len()],
    }];
    let slopes = alibi::slopes(heads)?;
    let alibi = Scheme::Alibi {
        slopes: slopes.clone(),
        symmetric: false,
    };
    for (h, m) in slopes.iter().enumerate() {
        let values = distances
            .iter()
            .map(|&d| Ok(alibi.score_bias(h, last, key_at(d))?))
            .collect::<LearnResult<_>>()?;
        curves.push(DistanceCurve {
            scheme: "alibi".into(),
            label: format!("ALiBi head {h} (m = {m:.4})"),
            head: Some(h),
            values,
        });
    }
    let table = LearnedTable::random(t5.num_buckets, 1, seed, 1.0)?;
    let t5_scheme = Scheme::T5 {
        bias_table: table.data().to_vec(),
        buckets: t5,
    };
    let b0 = t5_scheme.score_bias(0, last, last)?;
    curves.push(DistanceCurve {
        scheme: "t5".into(),
        label: format!(
            "T5 buckets ({}, max_distance {}; random table)",
            t5.num_buckets, t5.max_distance
        ),
        head: None,
        values: distances
            .iter()
            .map(|&d| Ok(t5_scheme.score_bias(0, last, key_at(d))? - b0))
            .collect::<LearnResult<_>>()?,
    });
    let scale = 1.0 / (head_dim as f64).sqrt();
    let mut cos = vec![0f32; freqs.pairs()];
    let mut sin = vec![0f32; freqs.pairs()];
    let rope = distances
        .iter()
        .map(|&d| {
            rotation_row(&freqs, d as i64, &mut cos, &mut sin)?;
            Ok(scale * cos.iter().map(|&c| f64::from(c) - 1.0).sum::<f64>())
        })
        .collect::<LearnResult<Vec<f64>>>()?;
    curves.push(DistanceCurve {
        scheme: "rope".into(),
        label: format!("RoPE (d = {head_dim}, base {base})"),
        head: None,
        values: rope,
    });
    let pe0 = sinusoidal::row(last as f64, head_dim, base, SinusoidalLayout::Interleaved)?;
    let self_dot: f64 = pe0.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    let sin_curve = distances
        .iter()
        .map(|&d| {
            let pe = sinusoidal::row(
                key_at(d) as f64,
                head_dim,
                base,
                SinusoidalLayout::Interleaved,
            )?;
            let dot: f64 = pe0
                .iter()
                .zip(&pe)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
            Ok(scale * (dot - self_dot))
        })
        .collect::<LearnResult<Vec<f64>>>()?;
    curves.push(DistanceCurve {
        scheme: "sinusoidal".into(),
        label: format!("sinusoidal PE·PE (d = {head_dim})"),
        head: None,
        values: sin_curve,
    });
    Ok(DistanceProfile {
        distances,
        head_dim,
        base,
        heads,
        t5,
        seed,
        curves,
        conventions: vec![
            "NoPE: nothing depends on distance (0); only the causal mask orders the keys.".into(),
            "ALiBi: the bias -m*distance, one slope per head; it grows without limit.".into(),
            "T5: the learned bias of the distance's bucket minus bucket 0's (here a random \
             table, std 1: the values are made up, the steps are not); constant past \
             max_distance."
                .into(),
            "RoPE: q.k/sqrt(d) for q = k with every pair a unit vector, minus its value at \
             distance 0: (1/sqrt(d)) sum_i (cos(distance*theta_i) - 1). Real q and k weight the \
             pairs differently."
                .into(),
            "Sinusoidal: PE(p).PE(p - distance)/sqrt(d) minus its value at distance 0; the sum is \
             sum_i cos(distance*w_i), the same as RoPE's with the same base and width, so the two \
             curves coincide. In a model W_q and W_k mix it with content."
                .into(),
        ],
    })
}

// ------------------------------------------------------------------------------------------
// NoPE: the causal mask counts

/// A causal NoPE head that counts the keys it can see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NopeCounting {
    /// Sequence length.
    pub len: usize,
    /// Keys each query may attend to under the causal mask (from the library's mask).
    pub visible_keys: Vec<usize>,
    /// Output of the head at each position (causal): 1/(i+1).
    pub causal_output: Vec<f64>,
    /// Position read back from the causal output: 1/output − 1.
    pub position_read: Vec<f64>,
    /// The same head without a mask: the same value everywhere.
    pub bidirectional_output: Vec<f64>,
    /// What the head is.
    pub setup: String,
}

/// The counting head of Kazemnejad et al. (2023)'s argument: query and keys all zero (so the
/// weights are uniform over the visible keys), value 1 on the first token and 0 elsewhere. Under
/// the causal mask position i averages i+1 values, so it outputs 1/(i+1): its position.
pub fn nope_counting(len: usize) -> LearnResult<NopeCounting> {
    check_range("len", len, 1, MAX_NOPE_LEN)?;
    let heads = HeadConfig::mha(1, 1)?;
    let zeros = vec![0f32; len];
    let mut v = vec![0f32; len];
    v[0] = 1.0;
    let positions: Vec<u64> = (0..len as u64).collect();
    let run = |mask: &Mask| -> LearnResult<Vec<f64>> {
        let out = attention(
            &heads,
            &zeros,
            &zeros,
            &v,
            &positions,
            &positions,
            &Scheme::NoPe,
            mask,
            &AttentionOptions::default(),
        )?;
        Ok(out.output.iter().map(|&x| f64::from(x)).collect())
    };
    let causal = Mask::causal_by_position();
    let visible_keys = (0..len)
        .map(|i| {
            (0..len)
                .filter(|&j| causal.allows(i, j, len, len, positions[i], positions[j]))
                .count()
        })
        .collect();
    let causal_output = run(&causal)?;
    let position_read = causal_output.iter().map(|&o| 1.0 / o - 1.0).collect();
    Ok(NopeCounting {
        len,
        visible_keys,
        position_read,
        causal_output,
        bidirectional_output: run(&Mask::none())?,
        setup: "One head, no position encoding: q = k = 0, so every visible key gets the same \
                weight; v = 1 on the first token (a beginning-of-sequence marker), 0 elsewhere."
            .into(),
    })
}

// ------------------------------------------------------------------------------------------
// The four-token walk

/// One step of the walk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WalkStage {
    /// Short name (`embed`, `position`, `project`, `rotate`, `scores`, `bias`, `softmax`,
    /// `output`).
    pub step: String,
    /// Title.
    pub title: String,
    /// What happens.
    pub text: String,
    /// Whether the scheme acts at this step.
    pub scheme_enters: bool,
    /// The numbers.
    pub matrices: Vec<Matrix>,
}

/// Four tokens through one attention head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Walk {
    /// The scheme (`nope`, `sinusoidal`, `learned`, `rope`, `alibi`, `t5`).
    pub scheme: String,
    /// Where it enters.
    pub entry: PositionEntry,
    /// Where it enters, in words.
    pub entry_text: String,
    /// The tokens.
    pub tokens: Vec<String>,
    /// Model width = head size.
    pub dim: usize,
    /// The steps in order.
    pub stages: Vec<WalkStage>,
}

/// Tokens of the walk.
pub const WALK_TOKENS: [&str; 4] = ["the", "cat", "sat", "down"];

fn named(name: &str, rows: &[String], cols: &[String], values: &[f64]) -> Matrix {
    Matrix {
        name: name.into(),
        row_labels: rows.to_vec(),
        column_labels: cols.to_vec(),
        rows: values
            .chunks(cols.len().max(1))
            .map(<[f64]>::to_vec)
            .collect(),
    }
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// Four tokens (`WALK_TOKENS`, causal) through one head of width 4 with `scheme` (`nope`,
/// `sinusoidal`, `learned`, `rope`, `alibi`, `t5`) and seeded weights.
pub fn walk(scheme: &str, seed: u64) -> LearnResult<Walk> {
    const D: usize = 4;
    let n = WALK_TOKENS.len();
    let scheme_value = match scheme {
        "nope" => Scheme::NoPe,
        "sinusoidal" => Scheme::Sinusoidal {
            layout: SinusoidalLayout::Interleaved,
            base: 10_000.0,
        },
        "learned" => Scheme::Learned(LearnedTable::random(8, D, seed.wrapping_add(9), 0.5)?),
        "rope" => Scheme::Rope {
            freqs: RopeParams::new(100.0, D)?.frequencies(None, Precision::Exact)?,
            layout: RopeLayout::HalfSplit,
        },
        "alibi" => Scheme::Alibi {
            slopes: vec![0.5],
            symmetric: false,
        },
        "t5" => Scheme::T5 {
            bias_table: LearnedTable::random(8, 1, seed.wrapping_add(7), 1.0)?
                .data()
                .to_vec(),
            buckets: T5Buckets {
                bidirectional: false,
                num_buckets: 8,
                max_distance: 16,
            },
        },
        _ => {
            return Err(invalid(format!(
                "invalid scheme: expected nope, sinusoidal, learned, rope, alibi or t5, got \
                 `{scheme}`"
            )))
        }
    };
    let entry = scheme_value.entry();
    let tokens: Vec<String> = WALK_TOKENS.iter().map(|t| t.to_string()).collect();
    let dims: Vec<String> = (0..D).map(|i| format!("d{i}")).collect();
    let keys: Vec<String> = tokens.iter().map(|t| format!("k:{t}")).collect();
    let positions: Vec<u64> = (0..n as u64).collect();
    let weights = |k: u64| -> LearnResult<Vec<f32>> {
        // Small weights keep the scores moderate, so the softmax stays readable.
        Ok(LearnedTable::random(D, D, seed.wrapping_add(k), 0.35)?
            .data()
            .to_vec())
    };
    let layer = SingleLayer::new(
        HeadConfig::mha(1, D)?,
        D,
        weights(1)?,
        weights(2)?,
        weights(3)?,
        scheme_value.clone(),
    )?;
    let embed = LearnedTable::random(n, D, seed, 1.0)?.data().to_vec();
    let mut stages = vec![WalkStage {
        step: "embed".into(),
        title: "1. Token embeddings".into(),
        text: "Each token is looked up in the embedding table (seeded random rows here). Nothing \
               in these rows says where the token is."
            .into(),
        scheme_enters: false,
        matrices: vec![named("x = embedding", &tokens, &dims, &f64s(&embed))],
    }];
    let mut hidden = embed.clone();
    add_absolute_positions(&mut hidden, &positions, &scheme_value)?;
    let absolute = entry == PositionEntry::HiddenStates;
    let mut pos_matrices = Vec::new();
    if absolute {
        let pe: Vec<f64> = hidden
            .iter()
            .zip(&embed)
            .map(|(&h, &e)| f64::from(h) - f64::from(e))
            .collect();
        pos_matrices.push(named("PE (row = position 0..3)", &tokens, &dims, &pe));
        pos_matrices.push(named("x + PE", &tokens, &dims, &f64s(&hidden)));
    }
    stages.push(WalkStage {
        step: "position".into(),
        title: "2. + position (absolute schemes)".into(),
        text: if absolute {
            "The scheme adds a position row to each embedding: from here on, position is mixed \
             into the content of every vector."
                .into()
        } else {
            format!(
                "Nothing is added here (this scheme's position: {}).",
                entry.describe()
            )
        },
        scheme_enters: absolute,
        matrices: pos_matrices,
    });
    let (q, k, v) = layer.project(&embed, &positions)?;
    stages.push(WalkStage {
        step: "project".into(),
        title: "3. Queries, keys, values".into(),
        text: "q = h·W_q, k = h·W_k, v = h·W_v with the (seeded) projection matrices.".into(),
        scheme_enters: false,
        matrices: vec![
            named("q", &tokens, &dims, &f64s(&q)),
            named("k", &tokens, &dims, &f64s(&k)),
            named("v", &tokens, &dims, &f64s(&v)),
        ],
    });
    let rotates = entry == PositionEntry::QueryKey;
    let (mut qr, mut kr) = (q.clone(), k.clone());
    apply_query_key_scheme(&mut qr, 1, D, &positions, &scheme_value)?;
    apply_query_key_scheme(&mut kr, 1, D, &positions, &scheme_value)?;
    stages.push(WalkStage {
        step: "rotate".into(),
        title: "4. Rotate q and k (RoPE)".into(),
        text: if rotates {
            "RoPE rotates each (d0, d2) and (d1, d3) pair of q and k by position × θ_i; v is not \
             rotated."
                .into()
        } else {
            "This scheme does not touch q and k.".into()
        },
        scheme_enters: rotates,
        matrices: if rotates {
            vec![
                named("q rotated", &tokens, &dims, &f64s(&qr)),
                named("k rotated", &tokens, &dims, &f64s(&kr)),
            ]
        } else {
            vec![]
        },
    });
    let scale = AttentionOptions::default().scale_for(D);
    let mut raw = Vec::with_capacity(n * n);
    let mut bias = Vec::with_capacity(n * n);
    for i in 0..n {
        for j in 0..n {
            let d: f64 = (0..D)
                .map(|c| f64::from(qr[i * D + c]) * f64::from(kr[j * D + c]))
                .sum();
            raw.push(scale * d);
            bias.push(scheme_value.score_bias(0, positions[i], positions[j])?);
        }
    }
    stages.push(WalkStage {
        step: "scores".into(),
        title: "5. Scores q·k/√d".into(),
        text: format!("Row = query, column = key; scale 1/√{D}."),
        scheme_enters: false,
        matrices: vec![named("q·k/√d", &tokens, &keys, &raw)],
    });
    let biased = entry == PositionEntry::AttentionScores;
    let total: Vec<f64> = raw.iter().zip(&bias).map(|(a, b)| a + b).collect();
    stages.push(WalkStage {
        step: "bias".into(),
        title: "6. + score bias (ALiBi, T5)".into(),
        text: if biased {
            "The scheme adds a number that depends on the query-key distance to each score, \
             before softmax."
                .into()
        } else {
            "No bias: this scheme does not act on the scores.".into()
        },
        scheme_enters: biased,
        matrices: if biased {
            vec![
                named("bias", &tokens, &keys, &bias),
                named("score + bias", &tokens, &keys, &total),
            ]
        } else {
            vec![]
        },
    });
    let out = attention(
        &HeadConfig::mha(1, D)?,
        &q,
        &k,
        &v,
        &positions,
        &positions,
        &scheme_value,
        &Mask::causal_by_position(),
        &AttentionOptions {
            scale: None,
            return_weights: true,
        },
    )?;
    stages.push(WalkStage {
        step: "softmax".into(),
        title: "7. Causal mask and softmax".into(),
        text: "Keys after the query are masked (weight 0); each row's weights sum to 1.".into(),
        scheme_enters: false,
        matrices: vec![named(
            "weights",
            &tokens,
            &keys,
            &f64s(&out.weights.unwrap_or_default()),
        )],
    });
    stages.push(WalkStage {
        step: "output".into(),
        title: "8. Output = weights · v".into(),
        text: "Each token's output is the weighted average of the values it may see.".into(),
        scheme_enters: false,
        matrices: vec![named("output", &tokens, &dims, &f64s(&out.output))],
    });
    Ok(Walk {
        scheme: scheme.into(),
        entry,
        entry_text: entry.describe().into(),
        tokens,
        dim: D,
        stages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_distances_are_distinct_and_end_at_max() {
        let d = sample_distances(10_000, 512);
        assert_eq!((d[0], *d.last().unwrap()), (0, 10_000));
        assert!(d.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(sample_distances(5, 512), vec![0, 1, 2, 3, 4, 5]);
    }
}
