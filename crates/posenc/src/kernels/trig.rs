//! Vectorizable cos/sin of `x · θ_i` with the angle formed and reduced in f64.
//!
//! The angle `x · θ_i` is formed in f64 and reduced to `y ∈ [-π/4, π/4]` plus a quadrant by a
//! two-constant Cody–Waite step in f64 (fused multiply-adds) (exact enough for angles up to [`FAST_ANGLE_LIMIT`]); only
//! then is `y` rounded to f32 and fed to short minimax polynomials (Cephes' `sinf`/`cosf`). The
//! error against the f64 reference (`(x·θ).rem_euclid(2π).sin_cos()`, rounded to f32) stays
//! below 3e-7 at any position up to the limit, far inside `exact` mode's 1e-6; rows whose angles
//! exceed the limit take the reference path. The loops are branch-free so that LLVM vectorizes
//! them for the CPU picked at run time by `multiversion`.

use multiversion::multiversion;

/// Largest angle (radians) the fast reduction handles; larger angles use the f64 reference.
///
/// Below 2^23 rad the products `j · PIO2_HI` round by at most 1e-9 rad (exact below 2^20 rad):
/// the reduction adds nothing visible to the f32 result. Position 2^20 at `θ = 1` is 2^20 rad.
pub(crate) const FAST_ANGLE_LIMIT: f64 = (1u64 << 23) as f64;

const FRAC_2_PI: f64 = std::f64::consts::FRAC_2_PI;
// π/2 split in two (fdlibm's pio2_1 / pio2_1t): `PIO2_HI` has 33 significant bits.
const PIO2_HI: f64 = 1.570_796_326_734_125_6; // 0x3FF921FB54400000
const PIO2_LO: f64 = 6.077_100_506_506_192e-11; // π/2 - PIO2_HI

/// `out_cos[i] = scale·cos(x·θ_i)`, `out_sin[i] = scale·sin(x·θ_i)` for every pair.
///
/// All slices have the same length. Angles above [`FAST_ANGLE_LIMIT`] fall back to the f64
/// reference for the whole row.
pub(crate) fn cos_sin_row(
    inv_freq: &[f64],
    x: f64,
    scale: f64,
    out_cos: &mut [f32],
    out_sin: &mut [f32],
) {
    let max_angle = inv_freq.iter().fold(0.0f64, |m, &f| m.max((x * f).abs()));
    // NaN angles (NaN frequencies) also take the reference path.
    if max_angle.is_nan() || max_angle > FAST_ANGLE_LIMIT {
        reference_row(inv_freq, x, scale, out_cos, out_sin);
        return;
    }
    fast_row(inv_freq, x, scale as f32, out_cos, out_sin);
}

/// The plain f64 row (what `rope::cos_sin_row` computes in `exact` mode).
pub(crate) fn reference_row(
    inv_freq: &[f64],
    x: f64,
    scale: f64,
    out_cos: &mut [f32],
    out_sin: &mut [f32],
) {
    for ((c, s), &f) in out_cos.iter_mut().zip(out_sin.iter_mut()).zip(inv_freq) {
        let (sv, cv) = (x * f).rem_euclid(std::f64::consts::TAU).sin_cos();
        *c = (cv * scale) as f32;
        *s = (sv * scale) as f32;
    }
}

#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512dq+avx2+fma",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
fn fast_row(inv_freq: &[f64], x: f64, scale: f32, out_cos: &mut [f32], out_sin: &mut [f32]) {
    let n = inv_freq.len().min(out_cos.len()).min(out_sin.len());
    let (inv_freq, out_cos, out_sin) = (&inv_freq[..n], &mut out_cos[..n], &mut out_sin[..n]);
    for i in 0..n {
        let (s, c) = sin_cos_reduced(x * inv_freq[i]);
        out_cos[i] = c * scale;
        out_sin[i] = s * scale;
    }
}

// Cephes' coefficients as published (more digits than f32 holds; rounding them is the compiler's).
#[allow(clippy::excessive_precision)]
/// `(sin a, cos a)` for `|a| ≤ FAST_ANGLE_LIMIT`, branch-free (`|j| < 2^23`).
#[inline(always)]
fn sin_cos_reduced(a: f64) -> (f32, f32) {
    let j = (a * FRAC_2_PI).round_ties_even();
    let y = (-j).mul_add(PIO2_LO, (-j).mul_add(PIO2_HI, a)) as f32;
    // Quadrant j mod 4 as an exact float in {0, 1, 2, 3}: float compares vectorize, while a
    // saturating float-to-int cast does not.
    let q = j - 4.0 * (j * 0.25).floor();
    let z = y * y;
    let sin_p = (-1.951_529_589_1e-4_f32)
        .mul_add(z, 8.332_160_873_6e-3)
        .mul_add(z, -1.666_665_461_1e-1);
    let sin_y = (sin_p * z).mul_add(y, y);
    let cos_p = 2.443_315_711_809_948e-5_f32
        .mul_add(z, -1.388_731_625_493_765e-3)
        .mul_add(z, 4.166_664_568_298_827e-2);
    let cos_y = (cos_p * z).mul_add(z, (-0.5f32).mul_add(z, 1.0));
    // sin(y + qπ/2) and cos(y + qπ/2).
    let swap = q == 1.0 || q == 3.0;
    let (s, c) = if swap { (cos_y, sin_y) } else { (sin_y, cos_y) };
    let s = if q >= 2.0 { -s } else { s };
    let c = if q == 1.0 || q == 2.0 { -c } else { c };
    (s, c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_f64_within_3e_7_across_positions() {
        let inv_freq: Vec<f64> = (0..64).map(|i| 10000f64.powf(-(i as f64) / 64.0)).collect();
        let mut worst = 0.0f64;
        for &x in &[
            0.0, 1.0, 2.0, 77.0, 4095.0, 8191.0, 65535.0, 1048575.0, 1048576.0, 5e6, 8.3e6, -3.0,
            1e9,
        ] {
            let (mut c, mut s) = (vec![0f32; 64], vec![0f32; 64]);
            cos_sin_row(&inv_freq, x, 1.0, &mut c, &mut s);
            for (i, &f) in inv_freq.iter().enumerate() {
                let (sv, cv) = (x * f).rem_euclid(std::f64::consts::TAU).sin_cos();
                worst = worst
                    .max((c[i] as f64 - cv).abs())
                    .max((s[i] as f64 - sv).abs());
            }
        }
        assert!(worst <= 3e-7, "worst error {worst}");
    }

    #[test]
    fn huge_angles_take_the_reference_path() {
        let inv_freq = [1.0f64, 0.5];
        let (mut c, mut s) = ([0f32; 2], [0f32; 2]);
        cos_sin_row(&inv_freq, 1e15, 1.0, &mut c, &mut s);
        let (mut rc, mut rs) = ([0f32; 2], [0f32; 2]);
        reference_row(&inv_freq, 1e15, 1.0, &mut rc, &mut rs);
        assert_eq!((c, s), (rc, rs));
    }
}
