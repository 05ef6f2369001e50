//! Learned absolute position tables (BERT, GPT-2, OPT, RoBERTa, ViT).
//!
//! A learned encoding is a trainable matrix `P` of shape `[max_positions, dim]`; the token at
//! position `p` gets row `P[p]` **added to its token embedding** before the first layer
//! ([`ENTRY`] = [`PositionEntry::HiddenStates`]). Nothing generalises past the last row: a
//! position `>= max_positions` has no encoding, so [`LearnedTable::lookup`] returns
//! [`Error::PositionOutOfRange`] there and never clamps.
//!
//! Real models: BERT (`position_embeddings`, 512 rows), GPT-2 (`wpe`, 1024 rows), OPT
//! (`embed_positions`, rows offset by 2), RoBERTa (rows offset by `padding_idx + 1`), ViT (patch
//! positions). Positions here are **row indices**; model-specific offsets are the caller's job.
//!
//! Also here:
//! - [`LearnedTable::random`]: a seeded untrained table, `N(0, std²)` entries (GPT-2 and BERT
//!   initialise with `std = initializer_range = 0.02`), from a ChaCha8 generator, so a seed gives
//!   the same table on every platform for a given version of `rand`/`rand_distr`.
//! - [`LearnedTable::resize`]: linear interpolation along positions with the endpoints aligned
//!   (`align_corners=True` in PyTorch terms): new row `j` samples old position
//!   `j·(old-1)/(new-1)`. This is the usual quick way to stretch a table to a longer context; it
//!   is not what any model was trained with.
//! - Serialization, bytes in and bytes out (the library does no file I/O):
//!   - safetensors: one tensor named `"weight"`, dtype `F32`, shape `[max_positions, dim]`
//!     ([`LearnedTable::from_safetensors_tensor`] reads any tensor name, for checkpoints such as
//!     GPT-2's `wpe.weight`);
//!   - `.npy` (NPY format v1.0): `'<f4'`, C order, shape `(max_positions, dim)`. The reader is
//!     written here rather than taken from a crate, because it must stay panic-free and bounded
//!     on untrusted bytes (the crates we tried allocate a header of any declared size and
//!     multiply shapes without overflow checks). It accepts format versions 1.0, 2.0 and 3.0,
//!     requires the exact keys `descr`, `fortran_order`, `shape`, little-endian `f4`, C order,
//!     a 2-D shape, and exactly `rows·dim·4` data bytes after the header.
//!
//! Tables hold finite values only; loaders reject NaN and infinities with [`Error::Parse`].

use crate::error::{check_cap, check_finite};
use crate::{Error, PositionEntry, Result};

/// Learned tables are added to the hidden states (token embeddings).
pub const ENTRY: PositionEntry = PositionEntry::HiddenStates;

/// Cap on `max_positions * dim` for any table built or loaded here: 67,108,864 values
/// (256 MiB of `f32`; OPT-175B's table is 2050 × 12288 ≈ 25 M).
pub const MAX_TABLE_ELEMENTS: u64 = 67_108_864;

/// Tensor name used by [`LearnedTable::to_safetensors_bytes`] and
/// [`LearnedTable::from_safetensors_bytes`].
pub const SAFETENSORS_NAME: &str = "weight";

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// A learned absolute position table: `max_positions` rows of `dim` values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct LearnedTable {
    max_positions: usize,
    dim: usize,
    data: Vec<f32>,
}

fn check_dims(max_positions: usize, dim: usize) -> Result<()> {
    if max_positions == 0 {
        return Err(Error::invalid("max_positions", "at least 1 row"));
    }
    if dim == 0 {
        return Err(Error::invalid("dim", "at least 1 column"));
    }
    let elements = (max_positions as u64).saturating_mul(dim as u64);
    check_cap("max_positions * dim", elements, MAX_TABLE_ELEMENTS)
}

impl LearnedTable {
    /// A table from its values, flat row-major `[max_positions][dim]`.
    ///
    /// Errors: zero rows or columns, `data.len() != max_positions * dim`, a size above
    /// [`MAX_TABLE_ELEMENTS`], a non-finite value.
    pub fn new(max_positions: usize, dim: usize, data: Vec<f32>) -> Result<Self> {
        check_dims(max_positions, dim)?;
        let expected = max_positions * dim;
        if data.len() != expected {
            return Err(Error::shape(
                "data",
                format!("{expected} values ([{max_positions}, {dim}])"),
                data.len(),
            ));
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(
                "data",
                format!("finite values, got {} at index {i}", data[i]),
            ));
        }
        Ok(LearnedTable {
            max_positions,
            dim,
            data,
        })
    }

    /// A seeded untrained table with independent `N(0, std²)` entries (ChaCha8 generator).
    ///
    /// Errors: as [`LearnedTable::new`], and `std` negative or not finite.
    pub fn random(max_positions: usize, dim: usize, seed: u64, std: f32) -> Result<Self> {
        use rand::SeedableRng;
        use rand_distr::Distribution;
        check_dims(max_positions, dim)?;
        check_finite("std", f64::from(std))?;
        if std < 0.0 {
            return Err(Error::invalid(
                "std",
                format!("a finite number >= 0, got {std}"),
            ));
        }
        let normal = rand_distr::Normal::new(0.0f64, f64::from(std))
            .map_err(|e| Error::invalid("std", e.to_string()))?;
        let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(seed);
        let data = (0..max_positions * dim)
            .map(|_| normal.sample(&mut rng) as f32)
            .collect();
        Ok(LearnedTable {
            max_positions,
            dim,
            data,
        })
    }

    /// Number of rows: valid positions are `0 .. max_positions`.
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// Width of each row (the model's hidden size).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// All values, flat row-major `[max_positions][dim]`.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Number of trainable parameters: `max_positions * dim`.
    pub fn parameter_count(&self) -> usize {
        self.data.len()
    }

    /// The row for `position`.
    ///
    /// Errors: [`Error::PositionOutOfRange`] when `position >= max_positions` (never clamped).
    pub fn lookup(&self, position: u64) -> Result<&[f32]> {
        let out_of_range = || Error::PositionOutOfRange {
            position,
            max_positions: self.max_positions,
        };
        let p = usize::try_from(position).map_err(|_| out_of_range())?;
        if p >= self.max_positions {
            return Err(out_of_range());
        }
        self.data
            .get(p * self.dim..(p + 1) * self.dim)
            .ok_or_else(out_of_range)
    }

    /// The rows for several positions, concatenated: flat `[positions.len()][dim]`.
    ///
    /// Errors: as [`LearnedTable::lookup`] for the first bad position; an output above
    /// [`MAX_TABLE_ELEMENTS`] values.
    pub fn lookup_many(&self, positions: &[u64]) -> Result<Vec<f32>> {
        let elements = (positions.len() as u64).saturating_mul(self.dim as u64);
        check_cap("positions.len() * dim", elements, MAX_TABLE_ELEMENTS)?;
        let mut out = Vec::with_capacity(positions.len() * self.dim);
        for &p in positions {
            out.extend_from_slice(self.lookup(p)?);
        }
        Ok(out)
    }

    /// A table of `new_max_positions` rows by linear interpolation along positions, endpoints
    /// aligned: new row `j` samples old position `j·(old-1)/(new-1)` (row 0 and the last row are
    /// copied exactly). A one-row source is repeated; a one-row target is old row 0.
    ///
    /// Interpolation weights are exact rationals evaluated in `f64`.
    ///
    /// Errors: `new_max_positions == 0`, or a size above [`MAX_TABLE_ELEMENTS`].
    pub fn resize(&self, new_max_positions: usize) -> Result<Self> {
        check_dims(new_max_positions, self.dim)?;
        let old = self.max_positions;
        let dim = self.dim;
        let mut data = Vec::with_capacity(new_max_positions * dim);
        // Integer numerator and denominator keep grid hits (and the endpoints) exact.
        let denom = new_max_positions.saturating_sub(1) as u64;
        for j in 0..new_max_positions {
            let num = j as u64 * (old as u64 - 1);
            let (lo, frac) = match num.checked_div(denom) {
                Some(q) => (q as usize, (num % denom) as f64 / denom as f64),
                None => (0, 0.0), // one target row: old row 0
            };
            let hi = (lo + 1).min(old - 1);
            let a = &self.data[lo * dim..(lo + 1) * dim];
            let b = &self.data[hi * dim..(hi + 1) * dim];
            data.extend(
                a.iter()
                    .zip(b)
                    .map(|(&x, &y)| (f64::from(x) * (1.0 - frac) + f64::from(y) * frac) as f32),
            );
        }
        Ok(LearnedTable {
            max_positions: new_max_positions,
            dim,
            data,
        })
    }

    /// Serializes to safetensors bytes: one tensor `"weight"`, `F32`, shape `[max_positions, dim]`.
    pub fn to_safetensors_bytes(&self) -> Result<Vec<u8>> {
        let bytes: Vec<u8> = self.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        let view = safetensors::tensor::TensorView::new(
            safetensors::Dtype::F32,
            vec![self.max_positions, self.dim],
            &bytes,
        )
        .map_err(|e| Error::parse("safetensors tensor", e))?;
        safetensors::serialize([(SAFETENSORS_NAME, view)], None)
            .map_err(|e| Error::parse("safetensors", e))
    }

    /// Reads the tensor `"weight"` from safetensors bytes (see
    /// [`LearnedTable::from_safetensors_tensor`]).
    pub fn from_safetensors_bytes(bytes: &[u8]) -> Result<Self> {
        Self::from_safetensors_tensor(bytes, SAFETENSORS_NAME)
    }

    /// Reads the tensor `name` from safetensors bytes. It must be `F32` with a 2-D shape
    /// `[max_positions, dim]` and finite values.
    ///
    /// Errors: [`Error::Parse`] for corrupt bytes, a missing tensor, another dtype or rank, a
    /// non-finite value or a table the constructor rejects.
    pub fn from_safetensors_tensor(bytes: &[u8], name: &str) -> Result<Self> {
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| Error::parse("safetensors", e))?;
        let t = st
            .tensor(name)
            .map_err(|e| Error::parse("safetensors", e))?;
        if t.dtype() != safetensors::Dtype::F32 {
            return Err(Error::parse(
                "safetensors",
                format!("tensor `{name}` has dtype {:?}, expected F32", t.dtype()),
            ));
        }
        let &[rows, dim] = t.shape() else {
            return Err(Error::parse(
                "safetensors",
                format!(
                    "tensor `{name}` has shape {:?}, expected [max_positions, dim]",
                    t.shape()
                ),
            ));
        };
        let values = le_f32_values(t.data(), rows, dim, "safetensors")?;
        Self::new(rows, dim, values).map_err(|e| Error::parse("safetensors", e))
    }

    /// Serializes to `.npy` bytes (NPY v1.0, `'<f4'`, C order, shape `(max_positions, dim)`).
    ///
    /// The header is padded with spaces and a newline so the data starts at a multiple of 64
    /// bytes, as NumPy writes it.
    pub fn to_npy_bytes(&self) -> Result<Vec<u8>> {
        let dict = format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
            self.max_positions, self.dim
        );
        // magic (6) + version (2) + header length (2) + dict + padding + '\n'
        let unpadded = NPY_MAGIC.len() + 4 + dict.len() + 1;
        let header_len = dict.len() + 1 + (64 - unpadded % 64) % 64;
        let header_len_u16 = u16::try_from(header_len)
            .map_err(|_| Error::parse("npy", "header longer than 65535 bytes"))?;
        let mut out = Vec::with_capacity(NPY_MAGIC.len() + 4 + header_len + self.data.len() * 4);
        out.extend_from_slice(NPY_MAGIC);
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&header_len_u16.to_le_bytes());
        out.extend_from_slice(dict.as_bytes());
        out.resize(NPY_MAGIC.len() + 4 + header_len - 1, b' ');
        out.push(b'\n');
        for v in &self.data {
            out.extend_from_slice(&v.to_le_bytes());
        }
        Ok(out)
    }

    /// Reads `.npy` bytes (format 1.0, 2.0 or 3.0) holding a 2-D little-endian `f4` C-order array.
    ///
    /// Errors: [`Error::Parse`] for anything else: bad magic or version, truncated or non-ASCII
    /// header, unknown, missing or duplicate keys, another dtype, Fortran order, a shape that is not
    /// 2-D, a data section whose length is not `rows·dim·4`, non-finite values, or a table the
    /// constructor rejects.
    pub fn from_npy_bytes(bytes: &[u8]) -> Result<Self> {
        let (header, data) = split_npy(bytes)?;
        let (rows, dim) = parse_npy_header(header)?;
        let values = le_f32_values(data, rows, dim, "npy")?;
        Self::new(rows, dim, values).map_err(|e| Error::parse("npy", e))
    }
}

/// Decodes `rows * dim` little-endian `f32` from `bytes`, checking the length and the size cap
/// before allocating.
fn le_f32_values(bytes: &[u8], rows: usize, dim: usize, what: &str) -> Result<Vec<f32>> {
    check_dims(rows, dim).map_err(|e| Error::parse(what, e))?;
    let expected = rows * dim * 4;
    if bytes.len() != expected {
        return Err(Error::parse(
            what,
            format!(
                "data has {} bytes, shape [{rows}, {dim}] of f32 needs {expected}",
                bytes.len()
            ),
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Splits `.npy` bytes into the header text and the data section, checking magic and version.
fn split_npy(bytes: &[u8]) -> Result<(&str, &[u8])> {
    let err = |m: &str| Error::parse("npy", m);
    let rest = bytes
        .strip_prefix(NPY_MAGIC)
        .ok_or_else(|| err("missing \\x93NUMPY magic"))?;
    let (version, rest) = rest
        .split_first_chunk::<2>()
        .ok_or_else(|| err("truncated"))?;
    let [major, minor] = *version;
    let (header_len, rest) = match (major, minor) {
        (1, 0) => {
            let (len, rest) = rest
                .split_first_chunk::<2>()
                .ok_or_else(|| err("truncated"))?;
            (usize::from(u16::from_le_bytes(*len)), rest)
        }
        (2, 0) | (3, 0) => {
            let (len, rest) = rest
                .split_first_chunk::<4>()
                .ok_or_else(|| err("truncated"))?;
            let len = usize::try_from(u32::from_le_bytes(*len))
                .map_err(|_| err("header length does not fit in memory"))?;
            (len, rest)
        }
        _ => {
            return Err(Error::parse(
                "npy",
                format!("unsupported format version {major}.{minor}"),
            ))
        }
    };
    if header_len > rest.len() {
        return Err(Error::parse(
            "npy",
            format!(
                "header length {header_len} exceeds the {} bytes present",
                rest.len()
            ),
        ));
    }
    let (header, data) = rest.split_at(header_len);
    if !header.is_ascii() {
        return Err(err("header is not ASCII"));
    }
    let header = std::str::from_utf8(header).map_err(|e| Error::parse("npy", e))?;
    Ok((header, data))
}

/// Parses the header dict, returning the 2-D shape after checking dtype and order.
fn parse_npy_header(header: &str) -> Result<(usize, usize)> {
    let mut p = DictParser {
        s: header.trim_end_matches([' ', '\n', '\t', '\r']).as_bytes(),
        i: 0,
    };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    p.skip_ws();
    p.expect(b'{')?;
    loop {
        p.skip_ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.skip_ws();
        p.expect(b':')?;
        p.skip_ws();
        let duplicate = match key.as_str() {
            "descr" => descr.replace(p.string()?).is_some(),
            "fortran_order" => fortran.replace(p.boolean()?).is_some(),
            "shape" => shape.replace(p.int_tuple()?).is_some(),
            other => {
                return Err(Error::parse(
                    "npy",
                    format!("unexpected header key `{other}`"),
                ))
            }
        };
        if duplicate {
            return Err(Error::parse("npy", format!("duplicate header key `{key}`")));
        }
        p.skip_ws();
        if !p.eat(b',') {
            p.skip_ws();
            p.expect(b'}')?;
            break;
        }
    }
    if p.i != p.s.len() {
        return Err(Error::parse(
            "npy",
            "trailing characters after the header dict",
        ));
    }
    let missing = |k: &str| Error::parse("npy", format!("header lacks key `{k}`"));
    let descr = descr.ok_or_else(|| missing("descr"))?;
    let fortran = fortran.ok_or_else(|| missing("fortran_order"))?;
    let shape = shape.ok_or_else(|| missing("shape"))?;
    if descr != "<f4" {
        return Err(Error::parse(
            "npy",
            format!("dtype `{descr}`, expected '<f4' (little-endian f32)"),
        ));
    }
    if fortran {
        return Err(Error::parse(
            "npy",
            "Fortran order is not supported, expected C order",
        ));
    }
    match shape[..] {
        [rows, dim] => Ok((rows, dim)),
        _ => Err(Error::parse(
            "npy",
            format!("shape {shape:?}, expected 2-D (max_positions, dim)"),
        )),
    }
}

/// A minimal reader for the Python literal dict of an NPY header.
struct DictParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl DictParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<()> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(Error::parse(
                "npy",
                format!("expected `{}` at header byte {}", char::from(c), self.i),
            ))
        }
    }

    fn string(&mut self) -> Result<String> {
        let quote = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => {
                return Err(Error::parse(
                    "npy",
                    format!("expected a string at header byte {}", self.i),
                ))
            }
        };
        self.i += 1;
        let start = self.i;
        while let Some(c) = self.peek() {
            if c == quote {
                let text = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                self.i += 1;
                return Ok(text);
            }
            if c == b'\\' {
                return Err(Error::parse(
                    "npy",
                    "escapes in header strings are not supported",
                ));
            }
            self.i += 1;
        }
        Err(Error::parse("npy", "unterminated string in header"))
    }

    fn boolean(&mut self) -> Result<bool> {
        let rest = &self.s[self.i..];
        if rest.starts_with(b"True") {
            self.i += 4;
            Ok(true)
        } else if rest.starts_with(b"False") {
            self.i += 5;
            Ok(false)
        } else {
            Err(Error::parse(
                "npy",
                format!("expected True or False at header byte {}", self.i),
            ))
        }
    }

    fn int_tuple(&mut self) -> Result<Vec<usize>> {
        self.expect(b'(')?;
        let mut out = Vec::new();
        loop {
            self.skip_ws();
            if self.eat(b')') {
                return Ok(out);
            }
            let start = self.i;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.i += 1;
            }
            let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
            if digits.is_empty() {
                return Err(Error::parse(
                    "npy",
                    format!("expected a dimension at header byte {start}"),
                ));
            }
            let n: usize = digits
                .parse()
                .map_err(|_| Error::parse("npy", format!("dimension `{digits}` is too large")))?;
            if out.len() >= 32 {
                return Err(Error::parse("npy", "more than 32 dimensions"));
            }
            out.push(n);
            self.skip_ws();
            if !self.eat(b',') {
                self.skip_ws();
                self.expect(b')')?;
                return Ok(out);
            }
        }
    }
}
