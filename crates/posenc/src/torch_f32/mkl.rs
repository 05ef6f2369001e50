//! `cos`/`sin` through MKL's own vector-math kernels, as torch computes them.
//!
//! torch hands a contiguous float32 `cos`/`sin` to MKL's `vmsCos`/`vmsSin` (high-accuracy mode).
//! MKL's algorithm is not published, so the only way to reproduce its bits is to run it: this
//! module loads the kernels of the MKL release torch is built with (2024.2, from the PyPI
//! package `mkl`, installed by `scripts/install-mkl.sh`) at run time. MKL ships one kernel library
//! per CPU family; the AVX2 and AVX-512 ones agree with each other on every value measured, the
//! generic one (which MKL picks on AMD CPUs) differs from them on about 1 RoPE angle in 11,000.
//! Without MKL the values come from the platform's `cosf`/`sinf`, and [`trig_backend`] says so.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::HfCpu;

/// The MKL release whose kernels are loaded (the one torch 2.x's Linux wheels link).
pub const MKL_VERSION: &str = "2024.2.2";

/// Where `cos`/`sin` in `hf` mode come from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TrigBackend {
    /// MKL's own kernels: bit-identical with torch on the emulated machine.
    Mkl {
        /// MKL release.
        version: String,
        /// The kernel library used (`vml_avx2` for Intel's vector kernels, `vml_def` for generic).
        kernels: String,
        /// The directory the libraries were loaded from.
        dir: PathBuf,
    },
    /// The platform's `cosf`/`sinf`: within 1 ulp of torch, not bit-identical.
    Libm {
        /// Why MKL is not used.
        reason: String,
    },
}

impl TrigBackend {
    /// Whether cos/sin are bit-identical with torch's.
    pub fn bit_identical(&self) -> bool {
        matches!(self, TrigBackend::Mkl { .. })
    }
}

impl std::fmt::Display for TrigBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrigBackend::Mkl {
                version, kernels, ..
            } => write!(f, "MKL {version} ({kernels})"),
            TrigBackend::Libm { reason } => {
                write!(f, "libm cosf/sinf, not bit-identical with torch ({reason})")
            }
        }
    }
}

/// The directory MKL's libraries are looked for in: `$POSENC_MKL_DIR`, else
/// `$POSENC_CACHE/mkl-2024.2.2/lib` (`POSENC_CACHE` defaults to `$XDG_CACHE_HOME/posenc`, then
/// `$HOME/.cache/posenc`), where `scripts/install-mkl.sh` puts them.
pub fn mkl_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("POSENC_MKL_DIR") {
        return Some(PathBuf::from(d));
    }
    let cache = match std::env::var_os("POSENC_CACHE") {
        Some(c) => PathBuf::from(c),
        None => match std::env::var_os("XDG_CACHE_HOME") {
            Some(x) => PathBuf::from(x).join("posenc"),
            None => PathBuf::from(std::env::var_os("HOME")?)
                .join(".cache")
                .join("posenc"),
        },
    };
    Some(cache.join(format!("mkl-{MKL_VERSION}")).join("lib"))
}

/// MKL's internal kernel entry points: `(n, in, out)`.
type VmlKernel = unsafe extern "C" fn(i64, *const f32, *mut f32);

/// One loaded kernel library.
struct Kernels {
    name: &'static str,
    cos: VmlKernel,
    sin: VmlKernel,
}

struct Mkl {
    dir: PathBuf,
    /// Intel's vector kernels (`vml_avx2`), when this CPU can run them.
    vector: Option<Kernels>,
    /// The generic kernels (`vml_def`).
    generic: Kernels,
}

fn mkl() -> &'static Result<Mkl, String> {
    static MKL: OnceLock<Result<Mkl, String>> = OnceLock::new();
    MKL.get_or_init(load_mkl)
}

#[cfg(all(unix, target_arch = "x86_64"))]
fn load_mkl() -> Result<Mkl, String> {
    use libloading::os::unix::{Library, Symbol, RTLD_GLOBAL, RTLD_LAZY};

    let dir = mkl_dir().ok_or("no cache directory (set POSENC_MKL_DIR)")?;
    let core = dir.join("libmkl_core.so.2");
    if !core.is_file() {
        return Err(format!(
            "{} not found; run scripts/install-mkl.sh or set POSENC_MKL_DIR",
            core.display()
        ));
    }
    let open = |path: &Path, flags| {
        // SAFETY: loading MKL runs its (side-effect free) initialisers; the libraries are
        // leaked below, so every symbol taken from them stays valid for the process.
        unsafe { Library::open(Some(path), flags) }
            .map_err(|e| format!("loading {}: {e}", path.display()))
    };
    // The kernel libraries need MKL's core services; loading core first (global) lets the
    // dynamic linker find it by its soname without LD_LIBRARY_PATH.
    std::mem::forget(open(&core, RTLD_LAZY | RTLD_GLOBAL)?);
    let kernels = |name: &'static str| -> Result<Kernels, String> {
        let lib = open(&dir.join(format!("libmkl_{name}.so.2")), RTLD_LAZY)?;
        let get = |sym: &[u8]| -> Result<VmlKernel, String> {
            // SAFETY: `_vmls{Cos,Sin}_HA` take (count, input, output) in MKL 2024.2.
            let s: Symbol<VmlKernel> = unsafe { lib.get(sym) }
                .map_err(|e| format!("libmkl_{name}: {}: {e}", String::from_utf8_lossy(sym)))?;
            Ok(*s)
        };
        let k = Kernels {
            name,
            cos: get(b"_vmlsCos_HA\0")?,
            sin: get(b"_vmlsSin_HA\0")?,
        };
        std::mem::forget(lib);
        Ok(k)
    };
    let can_run_vector =
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
    let vector = if can_run_vector {
        Some(kernels("vml_avx2")?)
    } else {
        None
    };
    let generic = kernels("vml_def")?;
    Ok(Mkl {
        dir,
        vector,
        generic,
    })
}

#[cfg(not(all(unix, target_arch = "x86_64")))]
fn load_mkl() -> Result<Mkl, String> {
    Err("MKL kernels are only loaded on x86-64 Unix".into())
}

/// The kernels `hf` mode uses for `cpu` on this machine, or why there are none.
fn kernels_for(cpu: HfCpu) -> Result<(&'static Mkl, &'static Kernels), String> {
    let m = mkl().as_ref().map_err(Clone::clone)?;
    if cpu.mkl_vector_kernels() {
        match &m.vector {
            Some(k) => Ok((m, k)),
            None => Err(format!(
                "this CPU cannot run MKL's vector kernels, which the `{cpu}` profile needs"
            )),
        }
    } else {
        Ok((m, &m.generic))
    }
}

/// Where `hf_cos_sin` gets its values for `cpu` on this machine.
pub fn trig_backend(cpu: HfCpu) -> TrigBackend {
    match kernels_for(cpu) {
        Ok((m, k)) => TrigBackend::Mkl {
            version: MKL_VERSION.into(),
            kernels: k.name.into(),
            dir: m.dir.clone(),
        },
        Err(reason) => TrigBackend::Libm { reason },
    }
}

/// `cos` and `sin` of float32 angles exactly as torch computes them on `cpu` (elementwise: the
/// result of an element does not depend on its neighbours). The slices must have equal length.
/// Returns the backend used; without MKL the values are the platform libm's.
pub fn hf_cos_sin(
    cpu: HfCpu,
    angles: &[f32],
    cos: &mut [f32],
    sin: &mut [f32],
) -> crate::Result<TrigBackend> {
    if cos.len() != angles.len() || sin.len() != angles.len() {
        return Err(crate::Error::shape(
            "cos/sin buffers",
            angles.len(),
            format!("{}/{}", cos.len(), sin.len()),
        ));
    }
    match kernels_for(cpu) {
        Ok((_, k)) => {
            const CHUNK: usize = 1 << 20;
            for ((a, c), s) in angles
                .chunks(CHUNK)
                .zip(cos.chunks_mut(CHUNK))
                .zip(sin.chunks_mut(CHUNK))
            {
                // SAFETY: both kernels read `a.len()` floats from `a` and write as many to the
                // output, which has that length.
                unsafe {
                    (k.cos)(a.len() as i64, a.as_ptr(), c.as_mut_ptr());
                    (k.sin)(a.len() as i64, a.as_ptr(), s.as_mut_ptr());
                }
            }
        }
        Err(_) => {
            for ((&a, c), s) in angles.iter().zip(cos.iter_mut()).zip(sin.iter_mut()) {
                *c = a.cos();
                *s = a.sin();
            }
        }
    }
    Ok(trig_backend(cpu))
}

/// `cos` and `sin` of float32 angles with the platform's scalar `cosf`/`sinf`: what torch's
/// `torch.polar` (and every scalar loop) gives, on any CPU.
pub fn libm_cos_sin(angles: &[f32], cos: &mut [f32], sin: &mut [f32]) -> crate::Result<()> {
    if cos.len() != angles.len() || sin.len() != angles.len() {
        return Err(crate::Error::shape(
            "cos/sin buffers",
            angles.len(),
            format!("{}/{}", cos.len(), sin.len()),
        ));
    }
    for ((&a, c), s) in angles.iter().zip(cos.iter_mut()).zip(sin.iter_mut()) {
        *c = a.cos();
        *s = a.sin();
    }
    Ok(())
}
