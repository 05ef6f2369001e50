//! SLEEF's `powf_u10`, bit for bit.
//!
//! SLEEF computes `pow` in double-float ("float-float") arithmetic: every intermediate is an
//! unevaluated sum `hi + lo` of two `f32`s, giving about 48 significant bits:
//!
//! * `log|x|` (SLEEF `logkf`): split `x = m · 2^e` with `m ∈ [0.75, 1.5)`, set `t = (m-1)/(m+1)`,
//!   and `log x = e·ln2 + 2t + t³·P(t²)` with a minimax polynomial `P`;
//! * `exp(z)` (SLEEF `expkf`): `q = round(z / ln2)`, `s = z - q·ln2` (ln2 split in two parts),
//!   `exp(s) = 1 + s + s²·Q(s)`, then scale by `2^q`.
//!
//! Every helper below mirrors one SLEEF double-float primitive (`src/common/df.h`, the
//! `ENABLE_FMA_SP` variants, where `vmla` is a fused multiply-add), in the same operation order,
//! since any reordering changes the rounding. SLEEF is compiled with `-ffp-contract=off`, so
//! plain `a * b + c` stays two roundings here too. The constants are SLEEF's. SLEEF's `powf` is
//! lane-independent, so its AVX2 and AVX-512 builds agree.
//!
//! The scalar libm functions are the platform's (`f32::powf`, `f64::powf`, `f32::cos` call
//! `powf`, `pow`, `cosf`): on Linux that is glibc, the library torch's Linux wheels call. On
//! another C library the libm part may differ in the last bit.

// Constants are SLEEF's decimal spellings of exact f32 values; keep them verbatim.
#![allow(clippy::excessive_precision)]

/// A double-float number `hi + lo` with `|lo| <= ulp(hi) / 2` (roughly).
#[derive(Debug, Clone, Copy, PartialEq)]
struct F2 {
    hi: f32,
    lo: f32,
}

impl F2 {
    fn new(hi: f32, lo: f32) -> Self {
        F2 { hi, lo }
    }
}

/// `x·y - z` with one rounding (`vfmapn`).
fn fms(x: f32, y: f32, z: f32) -> f32 {
    x.mul_add(y, -z)
}

/// `-x·y + z` with one rounding (`vfmanp`).
fn fnma(x: f32, y: f32, z: f32) -> f32 {
    (-x).mul_add(y, z)
}

/// `dfadd2_vf2_vf_vf`: exact sum of two floats (Knuth's two-sum, no ordering assumption).
fn two_sum(x: f32, y: f32) -> F2 {
    let s = x + y;
    let v = s - x;
    F2::new(s, (x - (s - v)) + (y - v))
}

/// `dfadd2_vf2_vf2_vf`: double-float plus float, two-sum on the high parts.
fn add2_f2_f(x: F2, y: f32) -> F2 {
    let s = x.hi + y;
    let v = s - x.hi;
    let t = (x.hi - (s - v)) + (y - v);
    F2::new(s, t + x.lo)
}

/// `dfadd2_vf2_vf2_vf2`: double-float sum, two-sum on the high parts.
fn add2_f2_f2(x: F2, y: F2) -> F2 {
    let s = x.hi + y.hi;
    let v = s - x.hi;
    let t = (x.hi - (s - v)) + (y.hi - v);
    F2::new(s, t + (x.lo + y.lo))
}

/// `dfadd_vf2_vf2_vf2`: double-float sum assuming `|x| >= |y|` (fast two-sum).
fn add_f2_f2(x: F2, y: F2) -> F2 {
    let s = x.hi + y.hi;
    F2::new(s, (((x.hi - s) + y.hi) + x.lo) + y.lo)
}

/// `dfadd_vf2_vf_vf2`: float plus double-float assuming `|x| >= |y|`.
fn add_f_f2(x: f32, y: F2) -> F2 {
    let s = x + y.hi;
    F2::new(s, ((x - s) + y.hi) + y.lo)
}

/// `dfnormalize_vf2_vf2`: renormalize so that `hi = fl(hi + lo)`.
fn normalize(t: F2) -> F2 {
    let s = t.hi + t.lo;
    F2::new(s, (t.hi - s) + t.lo)
}

/// `dfscale_vf2_vf2_vf`: multiply both parts by `s` (exact for powers of two).
fn scale(d: F2, s: f32) -> F2 {
    F2::new(d.hi * s, d.lo * s)
}

/// `dfmul_vf2_vf2_vf` (FMA): double-float times float.
fn mul_f2_f(x: F2, y: f32) -> F2 {
    let s = x.hi * y;
    F2::new(s, x.lo.mul_add(y, fms(x.hi, y, s)))
}

/// `dfmul_vf2_vf2_vf2` (FMA): double-float product.
fn mul_f2_f2(x: F2, y: F2) -> F2 {
    let s = x.hi * y.hi;
    F2::new(
        s,
        x.hi.mul_add(y.lo, x.lo.mul_add(y.hi, fms(x.hi, y.hi, s))),
    )
}

/// `dfsqu_vf2_vf2` (FMA): double-float square.
fn square(x: F2) -> F2 {
    let s = x.hi * x.hi;
    F2::new(s, (x.hi + x.hi).mul_add(x.lo, fms(x.hi, x.hi, s)))
}

/// `dfdiv_vf2_vf2_vf2` (FMA): double-float quotient `n / d`.
fn div_f2_f2(n: F2, d: F2) -> F2 {
    let t = 1.0f32 / d.hi;
    let s = n.hi * t;
    let u = fms(t, n.hi, s);
    let v = fnma(d.lo, t, fnma(d.hi, t, 1.0));
    F2::new(s, s.mul_add(v, n.lo.mul_add(t, u)))
}

/// `vilogb2k_vi2_vf`: the unbiased exponent field of a normal float.
fn exponent_field(d: f32) -> i32 {
    ((d.to_bits() >> 23) & 0xff) as i32 - 0x7f
}

/// `vldexp3_vf_vf_vi2`: `d · 2^q` by adding to the exponent field (no range checks).
fn add_to_exponent(d: f32, q: i32) -> f32 {
    f32::from_bits((d.to_bits() as i32).wrapping_add(q.wrapping_shl(23)) as u32)
}

/// `vldexp_vf_vf_vi2`: `x · 2^q` as a chain of multiplications by powers of two, so that huge or
/// tiny `q` saturate to infinity or zero instead of wrapping the exponent field.
fn ldexp(x: f32, q: i32) -> f32 {
    let sign_mask = q >> 31;
    let mut m = ((sign_mask.wrapping_add(q) >> 6).wrapping_sub(sign_mask)).wrapping_shl(4);
    let q = q.wrapping_sub(m.wrapping_shl(2));
    m = m.wrapping_add(0x7f).clamp(0, 0xff);
    let u = f32::from_bits((m as u32) << 23);
    let x = x * u * u * u * u;
    let u = f32::from_bits((q.wrapping_add(0x7f) as u32) << 23);
    x * u
}

/// `vrint_vi2_vf` (`cvtps2dq`): round to nearest even; out of range or NaN gives `i32::MIN`.
fn round_to_i32(u: f32) -> i32 {
    if (-2_147_483_648.0..2_147_483_648.0).contains(&u) {
        u.round_ties_even() as i32
    } else {
        i32::MIN
    }
}

/// `vtruncate_vi2_vf` (`cvttps2dq`): truncate; out of range or NaN gives `i32::MIN`.
fn truncate_to_i32(u: f32) -> i32 {
    if (-2_147_483_648.0..2_147_483_648.0).contains(&u) {
        u.trunc() as i32
    } else {
        i32::MIN
    }
}

/// `x` with its sign flipped where `y` is negative (`vmulsign_vf_vf_vf`).
fn mul_sign(x: f32, y: f32) -> f32 {
    f32::from_bits(x.to_bits() ^ (y.to_bits() & 0x8000_0000))
}

/// SLEEF `logkf`: `ln(d)` as a double-float, for `d > 0` (the AVX2 formulation).
fn log_f2(d: f32) -> F2 {
    let tiny = d < f32::MIN_POSITIVE;
    // Subnormals: scale by 2^64 first so the exponent field is meaningful.
    let d = if tiny {
        d * ((1u64 << 32) as f32 * (1u64 << 32) as f32)
    } else {
        d
    };
    // The exponent of d/0.75, so that the mantissa m lands in [0.75, 1.5).
    let mut e = exponent_field(d * (1.0f32 / 0.75f32));
    let m = add_to_exponent(d, e.wrapping_neg());
    if tiny {
        e -= 64;
    }

    let x = div_f2_f2(two_sum(-1.0, m), two_sum(1.0, m));
    let x2 = square(x);

    let mut t = 0.240320354700088500976562f32;
    t = t.mul_add(x2.hi, 0.285112679004669189453125);
    t = t.mul_add(x2.hi, 0.400007992982864379882812);
    let c = F2::new(0.66666662693023681640625, 3.69183861259614332084311e-09);

    let ln2 = F2::new(0.69314718246459960938, -1.904654323148236017e-09);
    let mut s = mul_f2_f(ln2, e as f32);
    s = add_f2_f2(s, scale(x, 2.0));
    add_f2_f2(
        s,
        mul_f2_f2(mul_f2_f2(x2, x), add2_f2_f2(mul_f2_f(x2, t), c)),
    )
}

/// High part of ln 2, with trailing zero bits so that `q · L2U` is exact (SLEEF `L2Uf`).
const L2U: f32 = 0.693145751953125;
/// The rest of ln 2 (SLEEF `L2Lf`).
const L2L: f32 = 1.428606765330187045e-06;
/// `1 / ln 2` (SLEEF `R_LN2f`).
const R_LN2: f32 = std::f32::consts::LOG2_E;

/// SLEEF `expkf`: `exp(d.hi + d.lo)` rounded to f32; 0 below `-104`.
fn exp_f2(d: F2) -> f32 {
    let q = round_to_i32((d.hi + d.lo) * R_LN2);
    let qf = q as f32;

    let mut s = add2_f2_f(d, qf * -L2U);
    s = add2_f2_f(s, qf * -L2L);
    s = normalize(s);

    let mut u = 0.00136324646882712841033936f32;
    u = u.mul_add(s.hi, 0.00836596917361021041870117);
    u = u.mul_add(s.hi, 0.0416710823774337768554688);
    u = u.mul_add(s.hi, 0.166665524244308471679688);
    u = u.mul_add(s.hi, 0.499999850988388061523438);

    let t = add_f2_f2(s, mul_f2_f(square(s), u));
    let t = add_f_f2(1.0, t);
    let r = ldexp(t.hi + t.lo, q);
    if d.hi < -104.0 {
        0.0
    } else {
        r
    }
}

/// `x^y` exactly as SLEEF's `powf_u10` (FMA builds) computes it, hence as PyTorch's vectorized CPU
/// float32 `pow` does (AVX2 and AVX-512 alike). Error below 1 ulp; special values follow C99 `powf`.
pub fn sleef_powf(x: f32, y: f32) -> f32 {
    let y_is_int = y.trunc() == y || y.abs() > (1 << 24) as f32;
    let y_is_odd = (truncate_to_i32(y) & 1) == 1 && y_is_int && y.abs() < (1 << 24) as f32;

    let mut result = exp_f2(mul_f2_f(log_f2(x.abs()), y));
    if result.is_nan() {
        result = f32::INFINITY;
    }
    // Negative bases: defined only for integral exponents, with the sign of odd powers.
    let sign = if x > 0.0 {
        1.0
    } else if y_is_int {
        if y_is_odd {
            -1.0
        } else {
            1.0
        }
    } else {
        f32::NAN
    };
    result *= sign;

    if y.is_infinite() {
        let efx = mul_sign(x.abs() - 1.0, y);
        result = if efx < 0.0 {
            0.0
        } else if efx == 0.0 {
            1.0
        } else {
            f32::INFINITY
        };
    }
    if x.is_infinite() || x == 0.0 {
        let magnitude = if y.is_sign_negative() ^ (x == 0.0) {
            0.0
        } else {
            f32::INFINITY
        };
        result = mul_sign(magnitude, if y_is_odd { x } else { 1.0 });
    }
    if x.is_nan() || y.is_nan() {
        result = f32::NAN;
    }
    if y == 0.0 || x == 1.0 {
        result = 1.0;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::sleef_powf as powf;
    use proptest::prelude::*;

    /// Distance in units in the last place between two finite positive floats.
    fn ulps(a: f32, b: f64) -> f64 {
        let b32 = b as f32;
        let ulp = (f32::from_bits(b32.to_bits() + 1) - b32) as f64;
        (a as f64 - b).abs() / ulp
    }

    #[test]
    fn special_cases() {
        for x in [
            0.0f32,
            -0.0,
            1e-30,
            0.5,
            2.0,
            1e30,
            -3.0,
            f32::INFINITY,
            f32::NAN,
        ] {
            assert_eq!(powf(x, 0.0).to_bits(), 1.0f32.to_bits(), "{x}^0");
            assert_eq!(powf(x, -0.0).to_bits(), 1.0f32.to_bits(), "{x}^-0");
        }
        for y in [0.5f32, -2.0, 37.25, 1e20, f32::INFINITY, f32::NAN] {
            assert_eq!(powf(1.0, y).to_bits(), 1.0f32.to_bits(), "1^{y}");
        }
        assert_eq!(powf(2.0, 10.0), 1024.0);
        assert_eq!(powf(4.0, 0.5), 2.0);
        assert_eq!(powf(-2.0, 3.0), -8.0);
        assert_eq!(powf(-2.0, 2.0), 4.0);
        assert!(powf(-2.0, 0.5).is_nan());
        assert!(powf(f32::NAN, 2.0).is_nan());
        assert!(powf(2.0, f32::NAN).is_nan());
        assert_eq!(powf(0.0, 2.0), 0.0);
        assert_eq!(powf(0.0, -2.0), f32::INFINITY);
        assert_eq!(powf(-0.0, -3.0), f32::NEG_INFINITY);
        assert_eq!(powf(f32::INFINITY, -1.0), 0.0);
        assert_eq!(powf(f32::INFINITY, 0.5), f32::INFINITY);
        assert_eq!(powf(0.5, f32::INFINITY), 0.0);
        assert_eq!(powf(2.0, f32::INFINITY), f32::INFINITY);
        assert_eq!(powf(-1.0, f32::INFINITY), 1.0);
        assert_eq!(powf(2.0, f32::NEG_INFINITY), 0.0);
        assert_eq!(powf(10.0, 100.0), f32::INFINITY);
        assert_eq!(powf(10.0, -100.0), 0.0);
    }

    #[test]
    fn subnormal_base_and_result() {
        let x = f32::from_bits(1000); // subnormal
        let want = (x as f64).powf(0.25);
        assert!(ulps(powf(x, 0.25), want) <= 1.0);
        let want = 2f64.powi(-140);
        assert!(ulps(powf(2.0, -140.0), want) <= 1.0);
    }

    proptest! {
        #[test]
        fn within_one_ulp_of_f64_pow(x in 1e-3f32..1e7f32, y in -2.0f32..2.0f32) {
            let got = powf(x, y);
            let want = (x as f64).powf(y as f64);
            prop_assert!(ulps(got, want) <= 1.0, "{x}^{y}: got {got:e}, want {want:e}");
        }

        #[test]
        fn within_one_ulp_of_f64_pow_wide(x in 1e-30f32..1e30f32, y in -3.0f32..3.0f32) {
            let got = powf(x, y);
            let want = (x as f64).powf(y as f64);
            prop_assume!(want > 1e-37 && want < 1e37);
            prop_assert!(ulps(got, want) <= 1.0, "{x}^{y}: got {got:e}, want {want:e}");
        }
    }
}
