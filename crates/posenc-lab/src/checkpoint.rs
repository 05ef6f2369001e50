//! Checkpoints on disk: `model.safetensors` (every parameter, f32), `config.json`
//! ([`ModelConfig`]) and `train-log.json` ([`TrainLog`]) in one directory. Each file is written
//! to a temporary file in the same directory and then renamed over the target, so a reader never
//! sees half a file.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use crate::model::{Model, ModelConfig};
use crate::train::TrainLog;
use crate::{LabError, Result};

/// Weights file name.
pub const WEIGHTS: &str = "model.safetensors";
/// Configuration file name.
pub const CONFIG: &str = "config.json";
/// Training log file name.
pub const TRAIN_LOG: &str = "train-log.json";
/// Largest checkpoint read (bytes).
pub const MAX_CHECKPOINT_BYTES: u64 = 1 << 30;

fn io_err(path: &Path, e: impl std::fmt::Display) -> LabError {
    LabError::Io(format!("{}: {e}", path.display()))
}

/// Writes `bytes` to `path` atomically (temporary file in the same directory, then persist).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| io_err(dir, e))?;
    tmp.write_all(bytes).map_err(|e| io_err(path, e))?;
    tmp.as_file().sync_all().map_err(|e| io_err(path, e))?;
    tmp.persist(path).map_err(|e| io_err(path, e.error))?;
    Ok(())
}

/// Writes a value as pretty JSON, atomically.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| io_err(path, e))?;
    write_atomic(path, format!("{text}\n").as_bytes())
}

/// Reads JSON from a file (at most `cap` bytes).
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path, cap: u64) -> Result<T> {
    let meta = std::fs::metadata(path).map_err(|e| io_err(path, e))?;
    if meta.len() > cap {
        return Err(io_err(
            path,
            format!("{} bytes, more than the cap of {cap}", meta.len()),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    serde_json::from_str(&text).map_err(|e| io_err(path, e))
}

/// Saves a model (and its training log) into `dir`; returns the weights' path.
pub fn save(dir: &Path, model: &Model, log: Option<&TrainLog>) -> Result<PathBuf> {
    let named: BTreeMap<String, Tensor> = model.named();
    let mut bufs: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, t) in &named {
        let v: Vec<f32> = t.flatten_all()?.to_vec1()?;
        bufs.push((
            name.clone(),
            t.dims().to_vec(),
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ));
    }
    let views = bufs
        .iter()
        .map(|(n, shape, bytes)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|v| (n.clone(), v))
                .map_err(|e| LabError::Checkpoint(e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes =
        safetensors::serialize(views, None).map_err(|e| LabError::Checkpoint(e.to_string()))?;
    let weights = dir.join(WEIGHTS);
    write_atomic(&weights, &bytes)?;
    write_json(&dir.join(CONFIG), model.config())?;
    if let Some(log) = log {
        write_json(&dir.join(TRAIN_LOG), log)?;
    }
    Ok(weights)
}

/// Loads the model saved in `dir`.
///
/// Errors: missing or unreadable files, a config that does not validate, tensors missing or of
/// the wrong shape or dtype.
pub fn load(dir: &Path) -> Result<Model> {
    let cfg: ModelConfig = read_json(&dir.join(CONFIG), 1 << 20)?;
    let path = dir.join(WEIGHTS);
    let meta = std::fs::metadata(&path).map_err(|e| io_err(&path, e))?;
    if meta.len() > MAX_CHECKPOINT_BYTES {
        return Err(io_err(&path, "larger than the 1 GiB cap"));
    }
    let bytes = std::fs::read(&path).map_err(|e| io_err(&path, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| LabError::Checkpoint(format!("{}: {e}", path.display())))?;
    let mut named = BTreeMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(LabError::Checkpoint(format!(
                "tensor `{name}` is {:?}, expected F32",
                view.dtype()
            )));
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        named.insert(
            name,
            Tensor::from_vec(values, view.shape().to_vec(), &Device::Cpu)?,
        );
    }
    Model::from_named(cfg, &named)
}

/// Loads the training log saved in `dir`, if there is one.
pub fn load_log(dir: &Path) -> Option<TrainLog> {
    read_json(&dir.join(TRAIN_LOG), 64 << 20).ok()
}
