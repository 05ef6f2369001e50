//! float32 arithmetic as PyTorch computes it on the CPU, bit for bit, for what Hugging Face's
//! RoPE and ALiBi code calls: `pow` (frequencies, slopes) and `cos`/`sin` (the tables).
//!
//! None of these is correctly rounded, and which routine computes an element depends on the
//! machine torch runs on, named here by an [`HfCpu`] profile. What torch 2.x (the Linux x86-64
//! wheels from PyPI, built with MKL 2024.2) does, measured against the torch module itself:
//!
//! * **`pow` on float32 tensors** (`base ** tensor`, `torch.pow(t, t)`) runs through
//!   `cpu_kernel_vec`: whole blocks of two vectors (32 floats with AVX-512, 16 with AVX2) go
//!   through SLEEF's `powf_u10` ([`sleef_powf`]) and the remainder through scalar `std::pow`,
//!   glibc's `powf`. [`pow_scalar_base`] models that split: RoPE over 80 dims (40 pairs) gets 32
//!   SLEEF powers and 8 glibc ones on AVX-512; over 96 dims (48 pairs) 32 + 16 on AVX-512 but 48
//!   SLEEF on AVX2. Without a vector ISA (torch's `DEFAULT` capability) every power is glibc's.
//! * **`pow` of a 0-dim float32 tensor by a Python float** (dynamic NTK's new base) is the scalar
//!   path: `std::pow(double(x), exponent)` rounded to float32 ([`pow_f32_by_f64`]).
//! * **`cos`/`sin` on a contiguous float32 tensor** go to MKL's vector math library
//!   (`vmsCos`/`vmsSin`, high-accuracy mode), not to SLEEF, whatever torch's own CPU capability.
//!   MKL picks its kernels by CPU: its AVX2 and AVX-512 kernels agree with each other everywhere
//!   we measured (1,000,000 RoPE angles), its generic kernels (taken on AMD CPUs and on CPUs
//!   without AVX2) differ from them on about 1 value in 11,000. MKL's algorithm is not public, so
//!   posenc cannot re-derive it: [`hf_cos_sin`] calls MKL's own kernels when MKL is installed
//!   (`scripts/install-mkl.sh` puts the PyPI package `mkl==2024.2.2` in the cache; see
//!   [`mkl_dir`]), and otherwise falls back to glibc's `cosf`/`sinf`, which agree with MKL on
//!   about 95% of RoPE angles; [`trig_backend`] says which one is in use.
//!

mod mkl;
mod sleef;

pub use mkl::{hf_cos_sin, libm_cos_sin, mkl_dir, trig_backend, TrigBackend, MKL_VERSION};
pub use sleef::sleef_powf;

use crate::{Error, Result};

/// The machine whose torch arithmetic `hf` mode reproduces: torch's own CPU capability (how
/// `pow` splits between SLEEF and glibc) and the family of MKL kernels its `cos`/`sin` get.
///
/// Hugging Face's float32 results depend on this, so two machines can disagree in the last bit.
/// [`HfCpu::detect`] picks this machine's profile the way torch and MKL do; any profile can be
/// chosen explicitly (the golden fixtures were made on an Intel AVX-512 machine, [`HfCpu::Avx512`],
/// and reproduce on any x86-64 CPU with that profile).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum HfCpu {
    /// Intel with AVX-512 (torch capability `AVX512`, MKL's AVX-512 kernels).
    #[default]
    Avx512,
    /// Intel with AVX2 (torch capability `AVX2`, MKL's AVX2 kernels).
    Avx2,
    /// AMD with AVX-512, e.g. Zen 4 (torch `AVX512`; MKL's generic kernels, as MKL gives AMD).
    AmdAvx512,
    /// AMD with AVX2 (torch `AVX2`; MKL's generic kernels).
    AmdAvx2,
    /// No vector ISA (torch capability `DEFAULT`: every power from glibc; MKL generic kernels).
    Default,
}

/// Every profile, in the order `--hf-cpu` lists them.
pub const HF_CPUS: &[HfCpu] = &[
    HfCpu::Avx512,
    HfCpu::Avx2,
    HfCpu::AmdAvx512,
    HfCpu::AmdAvx2,
    HfCpu::Default,
];

impl HfCpu {
    /// This machine's profile, as torch (its `cpuinfo` check, or the `ATEN_CPU_CAPABILITY`
    /// environment variable when set to `avx512`, `avx2` or `default`) and MKL (Intel's vector
    /// kernels only on Intel CPUs) would choose it. Non-x86 machines get [`HfCpu::Default`]:
    /// torch's ARM kernels are not modelled.
    pub fn detect() -> HfCpu {
        let (mut avx512, mut avx2) = cpu_features();
        match std::env::var("ATEN_CPU_CAPABILITY").ok().as_deref() {
            Some("avx2") => avx512 = false,
            Some("default") => (avx512, avx2) = (false, false),
            _ => {}
        }
        let intel = is_intel();
        match (avx512, avx2, intel) {
            (true, _, true) => HfCpu::Avx512,
            (true, _, false) => HfCpu::AmdAvx512,
            (false, true, true) => HfCpu::Avx2,
            (false, true, false) => HfCpu::AmdAvx2,
            _ => HfCpu::Default,
        }
    }

    /// The name `--hf-cpu` takes.
    pub fn name(self) -> &'static str {
        match self {
            HfCpu::Avx512 => "avx512",
            HfCpu::Avx2 => "avx2",
            HfCpu::AmdAvx512 => "amd-avx512",
            HfCpu::AmdAvx2 => "amd-avx2",
            HfCpu::Default => "default",
        }
    }

    /// Floats in one of torch's vectors (`Vectorized<float>::size()`); 0 without a vector ISA.
    pub fn vector_lanes(self) -> usize {
        match self {
            HfCpu::Avx512 | HfCpu::AmdAvx512 => 16,
            HfCpu::Avx2 | HfCpu::AmdAvx2 => 8,
            HfCpu::Default => 0,
        }
    }

    /// Whether MKL gives this machine its Intel vector kernels (else its generic ones).
    pub fn mkl_vector_kernels(self) -> bool {
        matches!(self, HfCpu::Avx512 | HfCpu::Avx2)
    }
}

impl std::fmt::Display for HfCpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for HfCpu {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if s == "detect" {
            return Ok(HfCpu::detect());
        }
        HF_CPUS
            .iter()
            .copied()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = HF_CPUS.iter().map(|c| c.name()).collect();
                Error::invalid(
                    "hf-cpu",
                    format!("one of {}, or detect; got `{s}`", names.join(", ")),
                )
            })
    }
}

#[cfg(target_arch = "x86_64")]
fn cpu_features() -> (bool, bool) {
    // torch's AVX512 capability needs AVX-512 F, BW, VL and DQ (and FMA); AVX2 needs AVX2 + FMA.
    let fma = std::arch::is_x86_feature_detected!("fma");
    let avx512 = fma
        && std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx512dq");
    let avx2 = fma && std::arch::is_x86_feature_detected!("avx2");
    (avx512, avx2)
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_features() -> (bool, bool) {
    (false, false)
}

#[cfg(target_arch = "x86_64")]
fn is_intel() -> bool {
    // CPUID leaf 0: the vendor string in EBX, EDX, ECX.
    let r = std::arch::x86_64::__cpuid(0);
    let mut vendor = [0u8; 12];
    vendor[..4].copy_from_slice(&r.ebx.to_le_bytes());
    vendor[4..8].copy_from_slice(&r.edx.to_le_bytes());
    vendor[8..].copy_from_slice(&r.ecx.to_le_bytes());
    &vendor == b"GenuineIntel"
}

#[cfg(not(target_arch = "x86_64"))]
fn is_intel() -> bool {
    false
}

/// glibc's `powf` (through the platform libm), what torch's scalar tail calls.
pub fn libm_powf(x: f32, y: f32) -> f32 {
    x.powf(y)
}

/// How many leading elements of an `n`-element binary op torch's `cpu_kernel_vec` sends through
/// the vector routine on `cpu`: whole blocks of two vectors; the rest take the scalar path.
pub fn vectorized_prefix(cpu: HfCpu, n: usize) -> usize {
    let block = 2 * cpu.vector_lanes();
    if block == 0 {
        0
    } else {
        n - n % block
    }
}

/// `base ** exps` for a float32 `base` (a Python float or a 0-dim tensor, broadcast) and a
/// contiguous float32 tensor of exponents, as torch computes it on `cpu`.
pub fn pow_scalar_base(cpu: HfCpu, base: f32, exps: &[f32]) -> Vec<f32> {
    let vectorized = vectorized_prefix(cpu, exps.len());
    exps.iter()
        .enumerate()
        .map(|(i, &e)| {
            if i < vectorized {
                sleef_powf(base, e)
            } else {
                libm_powf(base, e)
            }
        })
        .collect()
}

/// `x ** exponent` for a 0-dim float32 tensor `x` and a Python float: torch's scalar path
/// computes `std::pow(double(x), exponent)` and rounds it to float32 (with its exact shortcuts
/// for exponents 2 and 3).
pub fn pow_f32_by_f64(x: f32, exponent: f64) -> f32 {
    if exponent == 2.0 {
        x * x
    } else if exponent == 3.0 {
        x * x * x
    } else {
        (x as f64).powf(exponent) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_split_follows_block_of_two_vectors() {
        assert_eq!(vectorized_prefix(HfCpu::Avx512, 40), 32);
        assert_eq!(vectorized_prefix(HfCpu::Avx512, 48), 32);
        assert_eq!(vectorized_prefix(HfCpu::Avx2, 48), 48);
        assert_eq!(vectorized_prefix(HfCpu::Avx2, 40), 32);
        assert_eq!(vectorized_prefix(HfCpu::Avx512, 31), 0);
        assert_eq!(vectorized_prefix(HfCpu::Default, 64), 0);
    }

    #[test]
    fn names_round_trip() {
        for &c in HF_CPUS {
            assert_eq!(c.name().parse::<HfCpu>().unwrap(), c);
        }
        assert!("avx1024".parse::<HfCpu>().is_err());
    }

    #[test]
    fn pow_by_double_uses_exact_square() {
        assert_eq!(pow_f32_by_f64(3.0, 2.0), 9.0);
        assert_eq!(pow_f32_by_f64(2.0, 0.5), std::f32::consts::SQRT_2);
    }
}
