//! Stand-ins for library functions the explorer needs that have not landed in `posenc` yet.
//!
//! RoPE, its scalings, the config parser and the diagnostics come from `posenc` directly (see
//! `api.rs`). The functions here (sinusoidal, learned, T5/Shaw, ALiBi) each carry a `TEMPORARY`
//! comment and the planned library signature, to be replaced by the library call when it lands;
//! the handlers and the page do not change when that happens.

use posenc::{Error, Result};

/// Layout of a sinusoidal row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SinLayout {
    /// `[sin f0, cos f0, sin f1, cos f1, ...]` (tensor2tensor, many tutorials).
    Interleaved,
    /// `[sin f0 .. sin f(d/2-1), cos f0 .. cos f(d/2-1)]` (Vaswani et al. code, fairseq order).
    Concat,
}

/// One row of the sinusoidal table at `position` (angles in f64, values in f32).
// TEMPORARY until posenc::sinusoidal::row lands.
pub fn sinusoidal_row(position: f64, dim: usize, base: f64, layout: SinLayout) -> Result<Vec<f32>> {
    if dim == 0 || !dim.is_multiple_of(2) {
        return Err(Error::invalid(
            "dim",
            format!("an even number > 0, got {dim}"),
        ));
    }
    if !(base.is_finite() && base > 1.0) {
        return Err(Error::invalid(
            "base",
            format!("a finite number > 1, got {base}"),
        ));
    }
    let half = dim / 2;
    let mut row = vec![0f32; dim];
    for i in 0..half {
        let angle = position / base.powf(2.0 * i as f64 / dim as f64);
        let (s, c) = angle.sin_cos();
        match layout {
            SinLayout::Interleaved => {
                row[2 * i] = s as f32;
                row[2 * i + 1] = c as f32;
            }
            SinLayout::Concat => {
                row[i] = s as f32;
                row[half + i] = c as f32;
            }
        }
    }
    Ok(row)
}

/// Wavelength (in positions) of each sinusoidal frequency pair: `2π · base^(2i/dim)`.
// TEMPORARY until posenc::sinusoidal / posenc::diagnostics wavelengths land.
pub fn sinusoidal_wavelengths(dim: usize, base: f64) -> Vec<f64> {
    (0..dim / 2)
        .map(|i| 2.0 * std::f64::consts::PI * base.powf(2.0 * i as f64 / dim as f64))
        .collect()
}

/// A learned absolute table: `max_positions` rows of `dim` values.
#[derive(Debug, Clone)]
pub struct Learned {
    /// Number of rows (the training length).
    pub max_positions: usize,
    /// Row width.
    pub dim: usize,
    /// Row-major values.
    pub values: Vec<f32>,
}

impl Learned {
    /// A seeded random table with entries ~ N(0, std²).
    // TEMPORARY until posenc::learned::LearnedTable::random lands.
    pub fn random(max_positions: usize, dim: usize, seed: u64, std: f32) -> Result<Self> {
        let mut state = seed;
        let mut next = || {
            // splitmix64
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut values = Vec::with_capacity(max_positions * dim);
        for _ in 0..max_positions * dim {
            // Box-Muller
            let u1 = next().max(1e-300);
            let u2 = next();
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            values.push((z * std as f64) as f32);
        }
        Ok(Learned {
            max_positions,
            dim,
            values,
        })
    }

    /// The row of `pos`, or an error past the table.
    pub fn lookup(&self, pos: usize) -> Result<&[f32]> {
        if pos >= self.max_positions {
            return Err(Error::PositionOutOfRange {
                position: pos as u64,
                max_positions: self.max_positions,
            });
        }
        Ok(&self.values[pos * self.dim..(pos + 1) * self.dim])
    }

    /// The table resized to `new_max` rows by linear interpolation along positions.
    // TEMPORARY until posenc::learned::LearnedTable::resize lands.
    pub fn resize(&self, new_max: usize) -> Result<Self> {
        if new_max == 0 || self.max_positions == 0 {
            return Err(Error::invalid("new_max", "a number > 0"));
        }
        let mut values = Vec::with_capacity(new_max * self.dim);
        for j in 0..new_max {
            let x = if new_max == 1 {
                0.0
            } else {
                j as f64 * (self.max_positions - 1) as f64 / (new_max - 1) as f64
            };
            let lo = (x.floor() as usize).min(self.max_positions - 1);
            let hi = (lo + 1).min(self.max_positions - 1);
            let t = x - lo as f64;
            let a = self.lookup(lo)?;
            let b = self.lookup(hi)?;
            values.extend(
                a.iter()
                    .zip(b)
                    .map(|(&a, &b)| ((1.0 - t) * a as f64 + t * b as f64) as f32),
            );
        }
        Ok(Learned {
            max_positions: new_max,
            dim: self.dim,
            values,
        })
    }
}

/// T5 relative-position bucket of `relative_position` = key − query.
// TEMPORARY until posenc::relative::t5_bucket lands.
pub fn t5_bucket(
    relative_position: i64,
    bidirectional: bool,
    num_buckets: usize,
    max_distance: usize,
) -> usize {
    let mut nb = num_buckets as i64;
    let mut ret = 0i64;
    let n = if bidirectional {
        nb /= 2;
        if relative_position > 0 {
            ret += nb;
        }
        relative_position.saturating_abs()
    } else {
        relative_position.saturating_neg().max(0)
    };
    let max_exact = nb / 2;
    if n < max_exact {
        return (ret + n) as usize;
    }
    let large = max_exact
        + ((n as f64 / max_exact as f64).ln() / (max_distance as f64 / max_exact as f64).ln()
            * (nb - max_exact) as f64) as i64;
    (ret + large.min(nb - 1)) as usize
}

/// Shaw et al. index of the relative embedding for (query, key): clip(k − q, −clip, clip) + clip.
// TEMPORARY until posenc::relative::shaw_index lands.
pub fn shaw_index(q: i64, k: i64, clip: usize) -> usize {
    let c = clip as i64;
    ((k - q).clamp(-c, c) + c) as usize
}

/// ALiBi slopes for `num_heads` heads (Press et al., including non-powers of two).
// TEMPORARY until posenc::alibi::slopes lands.
pub fn alibi_slopes(num_heads: usize) -> Result<Vec<f64>> {
    if num_heads == 0 {
        return Err(Error::invalid("heads", "a number > 0"));
    }
    let pow2 = |n: usize| -> Vec<f64> {
        let start = 2f64.powf(-8.0 / n as f64);
        (0..n).map(|i| start.powi(i as i32 + 1)).collect()
    };
    let closest = 1usize << (usize::BITS - 1 - num_heads.leading_zeros());
    let mut s = pow2(closest);
    if closest < num_heads {
        let extra = pow2(2 * closest);
        s.extend(extra.iter().step_by(2).take(num_heads - closest));
    }
    Ok(s)
}

/// ALiBi bias for one head: `-slope * |k - q|` (symmetric) or `slope * (k - q)` (causal form,
/// negative for past keys; entries for future keys are left to the causal mask).
// TEMPORARY until posenc::alibi::bias lands.
pub fn alibi_bias(
    slope: f64,
    len_q: usize,
    len_k: usize,
    query_offset: usize,
    symmetric: bool,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(len_q * len_k);
    for q in 0..len_q {
        let qp = (q + query_offset) as f64;
        for k in 0..len_k {
            let d = k as f64 - qp;
            out.push(if symmetric {
                -slope * d.abs()
            } else {
                slope * d
            } as f32);
        }
    }
    out
}
