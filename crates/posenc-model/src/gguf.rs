//! GGUF reader (versions 2 and 3) and dequantization of the common ggml types to `f32`.
//!
//! # Format
//! A GGUF file is little-endian:
//!
//! ```text
//! magic "GGUF" | u32 version | u64 tensor_count | u64 kv_count
//! kv_count × (string key | u32 value_type | value)
//! tensor_count × (string name | u32 n_dims | n_dims × u64 ne | u32 ggml_type | u64 offset)
//! padding to `general.alignment` (default 32)
//! tensor data (each tensor at data_start + offset)
//! ```
//!
//! A string is `u64 length | UTF-8 bytes`; an array is `u32 element_type | u64 count | elements`
//! (arrays may nest). `ne[0]` is the fastest-varying dimension, so a 2-D weight with
//! `ne = [in, out]` is `out` rows of `in` values.
//!
//! # Quantized blocks (as in ggml)
//! - `Q8_0`: 32 values per 34-byte block: `f16 d`, then 32 `i8` q; `x = d·q`.
//! - `Q4_0`: 32 values per 18-byte block: `f16 d`, then 16 bytes of nibbles; `x = d·(q − 8)`.
//! - `Q4_1`: 32 values per 20-byte block: `f16 d`, `f16 m`, then 16 bytes; `x = d·q + m`.
//!
//! In both 4-bit types element `j < 16` is the low nibble of byte `j` and element `j + 16` its
//! high nibble.
//! - `Q4_K`: 256 values per 144-byte super-block: `f16 d`, `f16 dmin`, 12 bytes of 6-bit
//!   scales `sc[8]` and mins `m[8]`, 128 bytes of nibbles. Sub-block `s` (32 values) is
//!   `x = d·sc[s]·q − dmin·m[s]`; each 64-value chunk `c` takes the low nibbles of bytes
//!   `32c..32c+32` for sub-block `2c` and their high nibbles for `2c + 1`. Scales `j < 4` are
//!   `b[j] & 63` (mins `b[j+4] & 63`); for `j ≥ 4`, `(b[j+4] & 15) | (b[j−4] >> 6) << 4` (mins
//!   `(b[j+4] >> 4) | (b[j] >> 6) << 4`).
//! - `Q6_K`: 256 values per 210-byte super-block: `ql[128]` (low 4 bits), `qh[64]` (high 2 bits),
//!   `i8 scales[16]`, `f16 d`; `x = d·scale·(q − 32)` with 16-value sub-blocks. In each 128-value
//!   half `h` (`ql` from `64h`, `qh` from `32h`, scales from `8h`), for `l < 32`: values `l`,
//!   `l+32`, `l+64`, `l+96` are the low nibble of `ql[l]`, of `ql[l+32]`, the high nibble of `ql[l]`,
//!   of `ql[l+32]`, each with bits `0-1`, `2-3`, `4-5`, `6-7` of `qh[l]` on top, and scales
//!   `l/16`, `+2`, `+4`, `+6`.
//!
//! # Safety against bad files
//! Every count and length is checked against the bytes that remain before anything is allocated,
//! so a corrupt or truncated file yields [`Error::Gguf`], never a panic or a huge allocation.

use crate::error::{Error, Result};
use half::{bf16, f16};

/// Most nested arrays accepted in a metadata value.
const MAX_ARRAY_DEPTH: usize = 8;
/// Most dimensions of a tensor (ggml's `GGML_MAX_DIMS`).
const MAX_DIMS: u32 = 4;

/// A ggml tensor type (the ids used in GGUF tensor infos).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GgmlType(pub u32);

impl GgmlType {
    /// 32-bit float.
    pub const F32: GgmlType = GgmlType(0);
    /// IEEE half.
    pub const F16: GgmlType = GgmlType(1);
    /// 4-bit, scale only.
    pub const Q4_0: GgmlType = GgmlType(2);
    /// 4-bit, scale and minimum.
    pub const Q4_1: GgmlType = GgmlType(3);
    /// 8-bit, scale only.
    pub const Q8_0: GgmlType = GgmlType(8);
    /// K-quant 4-bit: 256-value super-blocks of 8 sub-blocks with 6-bit scales and mins.
    pub const Q4_K: GgmlType = GgmlType(12);
    /// K-quant 6-bit: 256-value super-blocks of 16 sub-blocks with 8-bit scales.
    pub const Q6_K: GgmlType = GgmlType(14);
    /// bfloat16.
    pub const BF16: GgmlType = GgmlType(30);

    /// The ggml name of the type ("Q4_1", "F32", ...), or "unknown".
    pub fn name(self) -> &'static str {
        const NAMES: [&str; 36] = [
            "F32", "F16", "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K",
            "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S",
            "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M",
            "BF16", "Q4_0_4_4", "Q4_0_4_8", "Q4_0_8_8", "TQ1_0", "TQ2_0",
        ];
        NAMES.get(self.0 as usize).copied().unwrap_or("unknown")
    }

    /// `(values per block, bytes per block)` for the types this module can dequantize.
    pub fn block_layout(self) -> Option<(usize, usize)> {
        match self {
            GgmlType::F32 => Some((1, 4)),
            GgmlType::F16 | GgmlType::BF16 => Some((1, 2)),
            GgmlType::Q8_0 => Some((32, 34)),
            GgmlType::Q4_0 => Some((32, 18)),
            GgmlType::Q4_1 => Some((32, 20)),
            GgmlType::Q4_K => Some((256, 144)),
            GgmlType::Q6_K => Some((256, 210)),
            _ => None,
        }
    }
}

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    /// `u8`.
    U8(u8),
    /// `i8`.
    I8(i8),
    /// `u16`.
    U16(u16),
    /// `i16`.
    I16(i16),
    /// `u32`.
    U32(u32),
    /// `i32`.
    I32(i32),
    /// `f32`.
    F32(f32),
    /// `bool`.
    Bool(bool),
    /// UTF-8 string.
    String(String),
    /// Array of values (all of one type; may nest).
    Array(Vec<MetaValue>),
    /// `u64`.
    U64(u64),
    /// `i64`.
    I64(i64),
    /// `f64`.
    F64(f64),
}

impl MetaValue {
    /// The value as an unsigned integer, if it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U8(v) => Some(v.into()),
            MetaValue::U16(v) => Some(v.into()),
            MetaValue::U32(v) => Some(v.into()),
            MetaValue::U64(v) => Some(v),
            MetaValue::I8(v) => u64::try_from(v).ok(),
            MetaValue::I16(v) => u64::try_from(v).ok(),
            MetaValue::I32(v) => u64::try_from(v).ok(),
            MetaValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a signed integer, if it is an integer that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            MetaValue::I8(v) => Some(v.into()),
            MetaValue::I16(v) => Some(v.into()),
            MetaValue::I32(v) => Some(v.into()),
            MetaValue::I64(v) => Some(v),
            _ => self.as_u64().and_then(|v| i64::try_from(v).ok()),
        }
    }

    /// The value as a float, if it is a float or an integer.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(v) => Some(v.into()),
            MetaValue::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }

    /// The value as a string slice.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a bool.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetaValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The value as an array.
    pub fn as_array(&self) -> Option<&[MetaValue]> {
        match self {
            MetaValue::Array(v) => Some(v),
            _ => None,
        }
    }
}

/// Where one tensor lives in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Tensor name, for example `blk.0.attn_q.weight`.
    pub name: String,
    /// Dimensions, fastest-varying first (`ne[0]` is the row length).
    pub dims: Vec<u64>,
    /// Storage type.
    pub ggml_type: GgmlType,
    /// Offset of the data relative to the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// Number of elements (product of the dimensions; `u64::MAX` if that overflows, which
    /// [`GgufFile::parse`] rejects).
    pub fn n_elements(&self) -> u64 {
        self.dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .unwrap_or(u64::MAX)
    }
}

/// A parsed GGUF file held in memory.
#[derive(Debug, Clone)]
pub struct GgufFile {
    /// Format version (2 or 3).
    pub version: u32,
    /// Metadata key/value pairs in file order.
    pub metadata: Vec<(String, MetaValue)>,
    /// Tensor infos in file order.
    pub tensors: Vec<TensorInfo>,
    /// Alignment of the data section (`general.alignment`, default 32).
    pub alignment: u64,
    /// Absolute offset of the data section in the file.
    pub data_start: u64,
    bytes: Vec<u8>,
}

/// A bounds-checked little-endian cursor.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(Error::Gguf(format!(
                "truncated while reading {what} at byte {}: need {n} bytes, {} left",
                self.pos,
                self.remaining()
            )));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let s = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// Reads a count and checks that `count × min_size` bytes can still follow.
    fn count(&mut self, min_size: usize, what: &str) -> Result<usize> {
        let n = self.u64(what)?;
        let fits = usize::try_from(n).ok().filter(|&n| {
            n.checked_mul(min_size.max(1))
                .is_some_and(|b| b <= self.remaining())
        });
        fits.ok_or_else(|| {
            Error::Gguf(format!(
                "{what} = {n} cannot fit in the {} bytes left in the file",
                self.remaining()
            ))
        })
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let len = self.count(1, what)?;
        let raw = self.take(len, what)?;
        String::from_utf8(raw.to_vec())
            .map_err(|_| Error::Gguf(format!("{what} is not valid UTF-8")))
    }

    fn value(&mut self, ty: u32, depth: usize, key: &str) -> Result<MetaValue> {
        Ok(match ty {
            0 => MetaValue::U8(self.array::<1>(key)?[0]),
            1 => MetaValue::I8(i8::from_le_bytes(self.array(key)?)),
            2 => MetaValue::U16(u16::from_le_bytes(self.array(key)?)),
            3 => MetaValue::I16(i16::from_le_bytes(self.array(key)?)),
            4 => MetaValue::U32(self.u32(key)?),
            5 => MetaValue::I32(i32::from_le_bytes(self.array(key)?)),
            6 => MetaValue::F32(f32::from_le_bytes(self.array(key)?)),
            7 => match self.array::<1>(key)?[0] {
                0 => MetaValue::Bool(false),
                1 => MetaValue::Bool(true),
                b => {
                    return Err(Error::Gguf(format!(
                        "`{key}`: bool byte {b} is neither 0 nor 1"
                    )))
                }
            },
            8 => MetaValue::String(self.string(key)?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(Error::Gguf(format!(
                        "`{key}`: arrays nested deeper than {MAX_ARRAY_DEPTH}"
                    )));
                }
                let elem = self.u32(key)?;
                let n = self.count(min_value_size(elem), key)?;
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    out.push(self.value(elem, depth + 1, key)?);
                }
                MetaValue::Array(out)
            }
            10 => MetaValue::U64(self.u64(key)?),
            11 => MetaValue::I64(i64::from_le_bytes(self.array(key)?)),
            12 => MetaValue::F64(f64::from_le_bytes(self.array(key)?)),
            t => {
                return Err(Error::Gguf(format!(
                    "`{key}`: unknown metadata value type {t}"
                )))
            }
        })
    }
}

/// Smallest encoded size of one value of metadata type `ty` (used to bound array counts).
fn min_value_size(ty: u32) -> usize {
    match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 => 8,
        9 => 12,
        _ => 8,
    }
}

impl GgufFile {
    /// Reads and parses a GGUF file.
    pub fn open(path: &std::path::Path) -> Result<GgufFile> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path.display().to_string(), e))?;
        GgufFile::parse(bytes)
    }

    /// Parses a GGUF file held in memory. Checks the header, every metadata value, every tensor
    /// info, and that each tensor of a known type lies inside the file.
    pub fn parse(bytes: Vec<u8>) -> Result<GgufFile> {
        let mut c = Cursor {
            bytes: &bytes,
            pos: 0,
        };
        let magic = c.array::<4>("magic")?;
        if &magic != b"GGUF" {
            return Err(Error::Gguf(format!(
                "magic is {magic:?}, expected \"GGUF\""
            )));
        }
        let version = c.u32("version")?;
        if version.swap_bytes() == 2 || version.swap_bytes() == 3 {
            return Err(Error::Gguf(
                "big-endian GGUF files are not supported".into(),
            ));
        }
        if version != 2 && version != 3 {
            return Err(Error::Gguf(format!(
                "version {version} is not supported (2 or 3)"
            )));
        }
        // Smallest tensor info: 8-byte name length, n_dims, one dim, type, offset.
        let n_tensors = c.count(8 + 4 + 8 + 4 + 8, "tensor_count")?;
        // Smallest key/value: 8-byte key length, type, 1-byte value.
        let n_kv = c.count(8 + 4 + 1, "kv_count")?;
        let mut metadata = Vec::with_capacity(n_kv);
        for _ in 0..n_kv {
            let key = c.string("metadata key")?;
            let ty = c.u32(&key)?;
            let value = c.value(ty, 0, &key)?;
            metadata.push((key, value));
        }
        // A repeated key or tensor name would make every lookup "first wins" silently.
        let mut seen = std::collections::HashSet::with_capacity(metadata.len());
        if let Some((key, _)) = metadata.iter().find(|(k, _)| !seen.insert(k.as_str())) {
            return Err(Error::Gguf(format!("metadata key `{key}` appears twice")));
        }
        let mut tensors = Vec::with_capacity(n_tensors);
        for _ in 0..n_tensors {
            let name = c.string("tensor name")?;
            let n_dims = c.u32(&name)?;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(Error::Gguf(format!(
                    "tensor `{name}` has {n_dims} dimensions (1..={MAX_DIMS})"
                )));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(c.u64(&name)?);
            }
            let ggml_type = GgmlType(c.u32(&name)?);
            let offset = c.u64(&name)?;
            tensors.push(TensorInfo {
                name,
                dims,
                ggml_type,
                offset,
            });
        }
        let mut seen = std::collections::HashSet::with_capacity(tensors.len());
        if let Some(t) = tensors.iter().find(|t| !seen.insert(t.name.as_str())) {
            return Err(Error::Gguf(format!("tensor `{}` appears twice", t.name)));
        }
        let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
            None => 32,
            Some((_, v)) => match v.as_u64() {
                Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 20 => a,
                _ => {
                    return Err(Error::Gguf(format!(
                        "general.alignment = {v:?} is not a power of two"
                    )))
                }
            },
        };
        let header_end = c.pos as u64;
        let data_start = header_end.div_ceil(alignment) * alignment;
        let file_len = bytes.len() as u64;
        for t in &tensors {
            let n = t
                .dims
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| {
                    Error::Gguf(format!("tensor `{}`: element count overflows", t.name))
                })?;
            if t.offset % alignment != 0 {
                return Err(Error::Gguf(format!(
                    "tensor `{}`: offset {} is not aligned to {alignment}",
                    t.name, t.offset
                )));
            }
            if let Some((per_block, block_bytes)) = t.ggml_type.block_layout() {
                let row = t.dims[0];
                if row % per_block as u64 != 0 {
                    return Err(Error::Gguf(format!(
                        "tensor `{}`: row length {row} is not a multiple of the {} block size {per_block}",
                        t.name,
                        t.ggml_type.name()
                    )));
                }
                let size = (n / per_block as u64).checked_mul(block_bytes as u64);
                let end = size
                    .and_then(|s| s.checked_add(t.offset))
                    .and_then(|e| e.checked_add(data_start));
                if end.is_none_or(|e| e > file_len) {
                    return Err(Error::Gguf(format!(
                        "tensor `{}` ({} values of {}) runs past the end of the file ({file_len} bytes)",
                        t.name,
                        n,
                        t.ggml_type.name()
                    )));
                }
            }
        }
        Ok(GgufFile {
            version,
            metadata,
            tensors,
            alignment,
            data_start,
            bytes,
        })
    }

    /// The metadata value under `key`.
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The tensor info named `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The raw bytes of a tensor of a supported type.
    pub fn tensor_bytes(&self, info: &TensorInfo) -> Result<&[u8]> {
        let (per_block, block_bytes) = info
            .ggml_type
            .block_layout()
            .ok_or_else(|| unsupported(info))?;
        // Checked in `parse`; re-checked here so a hand-built TensorInfo cannot overflow or index
        // out of range.
        let n = info
            .dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d));
        let size = n.and_then(|n| (n / per_block as u64).checked_mul(block_bytes as u64));
        let start = self.data_start.checked_add(info.offset);
        let range = start.zip(size).and_then(|(s, n)| {
            Some((
                usize::try_from(s).ok()?,
                usize::try_from(s.checked_add(n)?).ok()?,
            ))
        });
        range
            .and_then(|(s, e)| self.bytes.get(s..e))
            .ok_or_else(|| Error::Gguf(format!("tensor `{}` lies outside the file", info.name)))
    }

    /// Dequantizes the tensor named `name` to `f32` (row-major, `dims[0]` fastest).
    pub fn dequantize(&self, name: &str) -> Result<Vec<f32>> {
        let info = self
            .tensor(name)
            .ok_or_else(|| Error::Gguf(format!("tensor `{name}` is missing")))?;
        let raw = self.tensor_bytes(info)?;
        dequantize(info.ggml_type, raw).map_err(|e| match e {
            Error::UnsupportedType {
                type_name, type_id, ..
            } => Error::UnsupportedType {
                tensor: name.to_string(),
                type_name,
                type_id,
            },
            other => other,
        })
    }
}

fn unsupported(info: &TensorInfo) -> Error {
    Error::UnsupportedType {
        tensor: info.name.clone(),
        type_name: info.ggml_type.name().to_string(),
        type_id: info.ggml_type.0,
    }
}

/// Dequantizes `raw` bytes of type `ty` to `f32`. `raw.len()` must be a whole number of blocks.
pub fn dequantize(ty: GgmlType, raw: &[u8]) -> Result<Vec<f32>> {
    let (per_block, block_bytes) = ty.block_layout().ok_or_else(|| Error::UnsupportedType {
        tensor: "?".into(),
        type_name: ty.name().into(),
        type_id: ty.0,
    })?;
    if !raw.len().is_multiple_of(block_bytes) {
        return Err(Error::Gguf(format!(
            "{} data of {} bytes is not a whole number of {block_bytes}-byte blocks",
            ty.name(),
            raw.len()
        )));
    }
    let mut out = vec![0.0f32; raw.len() / block_bytes * per_block];
    dequantize_into(ty, raw, &mut out)?;
    Ok(out)
}

/// Dequantizes `raw` bytes of type `ty` into `out`, which must hold exactly the values of the
/// whole blocks in `raw`. This is the scalar reference the quantized kernels of
/// [`crate::quant`] are tested against (and the tile dequantizer of prefill).
pub fn dequantize_into(ty: GgmlType, raw: &[u8], out: &mut [f32]) -> Result<()> {
    let (per_block, block_bytes) = ty.block_layout().ok_or_else(|| Error::UnsupportedType {
        tensor: "?".into(),
        type_name: ty.name().into(),
        type_id: ty.0,
    })?;
    if !raw.len().is_multiple_of(block_bytes) || raw.len() / block_bytes * per_block != out.len() {
        return Err(Error::Gguf(format!(
            "{} data of {} bytes is not {} values in whole {block_bytes}-byte blocks",
            ty.name(),
            raw.len(),
            out.len()
        )));
    }
    let f16_at = |b: &[u8], i: usize| f16::from_le_bytes([b[i], b[i + 1]]).to_f32();
    for (b, o) in raw
        .chunks_exact(block_bytes)
        .zip(out.chunks_exact_mut(per_block))
    {
        match ty {
            GgmlType::F32 => o[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            GgmlType::F16 => o[0] = f16_at(b, 0),
            GgmlType::BF16 => o[0] = bf16::from_le_bytes([b[0], b[1]]).to_f32(),
            GgmlType::Q8_0 => {
                let d = f16_at(b, 0);
                for (o, &q) in o.iter_mut().zip(&b[2..34]) {
                    *o = d * f32::from(q as i8);
                }
            }
            GgmlType::Q4_0 => {
                let d = f16_at(b, 0);
                let (lo, hi) = o.split_at_mut(16);
                for ((l, h), &q) in lo.iter_mut().zip(hi).zip(&b[2..18]) {
                    *l = d * (f32::from(q & 0x0f) - 8.0);
                    *h = d * (f32::from(q >> 4) - 8.0);
                }
            }
            GgmlType::Q4_1 => {
                let d = f16_at(b, 0);
                let m = f16_at(b, 2);
                let (lo, hi) = o.split_at_mut(16);
                for ((l, h), &q) in lo.iter_mut().zip(hi).zip(&b[4..20]) {
                    *l = d * f32::from(q & 0x0f) + m;
                    *h = d * f32::from(q >> 4) + m;
                }
            }
            GgmlType::Q4_K => dequantize_q4_k(b, o),
            GgmlType::Q6_K => dequantize_q6_k(b, o),
            _ => unreachable!("block_layout returned Some only for the types above"),
        }
    }
    Ok(())
}

/// Scale and min `j` (0..8) of a `Q4_K` super-block's 12 packed bytes.
fn q4_k_scale_min(j: usize, b: &[u8]) -> (u8, u8) {
    if j < 4 {
        (b[j] & 63, b[j + 4] & 63)
    } else {
        (
            (b[j + 4] & 0x0f) | ((b[j - 4] >> 6) << 4),
            (b[j + 4] >> 4) | ((b[j] >> 6) << 4),
        )
    }
}

fn dequantize_q4_k(b: &[u8], out: &mut [f32]) {
    let f16_at = |i: usize| f16::from_le_bytes([b[i], b[i + 1]]).to_f32();
    let (d, dmin) = (f16_at(0), f16_at(2));
    let scales = &b[4..16];
    for c in 0..4 {
        let qs = &b[16 + 32 * c..16 + 32 * (c + 1)];
        let (sc0, m0) = q4_k_scale_min(2 * c, scales);
        let (sc1, m1) = q4_k_scale_min(2 * c + 1, scales);
        let (d0, d1) = (d * f32::from(sc0), d * f32::from(sc1));
        let (o0, o1) = (dmin * f32::from(m0), dmin * f32::from(m1));
        let chunk = &mut out[64 * c..64 * (c + 1)];
        let (lo, hi) = chunk.split_at_mut(32);
        for ((l, h), &q) in lo.iter_mut().zip(hi).zip(qs) {
            *l = d0 * f32::from(q & 0x0f) - o0;
            *h = d1 * f32::from(q >> 4) - o1;
        }
    }
}

fn dequantize_q6_k(b: &[u8], out: &mut [f32]) {
    let d = f16::from_le_bytes([b[208], b[209]]).to_f32();
    for h in 0..2 {
        let ql = &b[64 * h..64 * h + 64];
        let qh = &b[128 + 32 * h..128 + 32 * h + 32];
        let sc = &b[192 + 8 * h..192 + 8 * h + 8];
        let y = &mut out[128 * h..128 * (h + 1)];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            let s = |k: usize| d * f32::from(sc[is + k] as i8);
            y[l] = s(0) * q1 as f32;
            y[l + 32] = s(2) * q2 as f32;
            y[l + 64] = s(4) * q3 as f32;
            y[l + 96] = s(6) * q4 as f32;
        }
    }
}
