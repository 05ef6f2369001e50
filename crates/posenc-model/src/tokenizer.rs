//! Byte-level BPE tokenizer (GPT-2 style) built from GGUF metadata.
//!
//! Encoding, as Hugging Face `tokenizers` does it for SmolLM2:
//! 1. Special (control and user-defined) tokens that appear literally in the text are cut out
//!    and emitted as their own ids.
//! 2. Pre-tokenizer (`tokenizer.ggml.pre`): `smollm` first isolates every ASCII digit (HF's
//!    `Digits(individual_digits=true)`), then each piece is split by the GPT-2 regex
//!    `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
//!    `gpt2` applies the regex alone.
//! 3. Each word's bytes are mapped to printable characters with GPT-2's byte-to-unicode table
//!    and merged pairwise by rank (`tokenizer.ggml.merges`, lowest rank first).
//!
//! No BOS token is added. [`Tokenizer::decode`] inverts the byte map (lossy on invalid UTF-8).

use crate::error::{Error, Result};
use crate::gguf::GgufFile;
use std::collections::HashMap;

/// GGUF `tokenizer.ggml.token_type` value of a control token.
const TOKEN_TYPE_CONTROL: i64 = 3;
/// GGUF `tokenizer.ggml.token_type` value of a user-defined token.
const TOKEN_TYPE_USER_DEFINED: i64 = 4;
/// Largest accepted text, in bytes (protects the quadratic merge loop from absurd inputs).
pub const MAX_TEXT_BYTES: usize = 16 << 20;

const GPT2_PATTERN: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// How text is split into words before BPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizer {
    /// Plain GPT-2 regex.
    Gpt2,
    /// Every ASCII digit isolated, then the GPT-2 regex (SmolLM / SmolLM2).
    Smollm,
}

/// A byte-level BPE tokenizer.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    tokens: Vec<String>,
    token_ids: HashMap<String, u32>,
    /// `(left, right) -> (rank, merged id)`.
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// Special tokens matched literally, longest first.
    specials: Vec<(String, u32)>,
    is_special: Vec<bool>,
    byte_to_char: [char; 256],
    char_to_byte: HashMap<char, u8>,
    pre: PreTokenizer,
    regex: fancy_regex::Regex,
}

/// GPT-2's reversible map from bytes to printable unicode characters.
fn byte_to_unicode() -> [char; 256] {
    let mut map = ['\0'; 256];
    let mut extra = 0u32;
    for b in 0u32..256 {
        let printable =
            (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        let c = if printable {
            b
        } else {
            extra += 1;
            255 + extra
        };
        map[b as usize] = char::from_u32(c).unwrap_or('\0');
    }
    map
}

impl Tokenizer {
    /// Builds the tokenizer from `tokenizer.ggml.*` metadata.
    pub fn from_gguf(gguf: &GgufFile) -> Result<Tokenizer> {
        let model = gguf
            .get("tokenizer.ggml.model")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        if model != "gpt2" {
            return Err(Error::Tokenizer(format!(
                "tokenizer.ggml.model = {model:?}; only byte-level BPE (\"gpt2\") is supported"
            )));
        }
        let pre = match gguf.get("tokenizer.ggml.pre").and_then(|v| v.as_str()) {
            Some("smollm") => PreTokenizer::Smollm,
            Some("gpt2") | Some("default") | None => PreTokenizer::Gpt2,
            Some(other) => {
                return Err(Error::Tokenizer(format!(
                    "tokenizer.ggml.pre = {other:?} is not supported (smollm, gpt2)"
                )))
            }
        };
        let strings = |key: &str| -> Result<Vec<String>> {
            let arr = gguf
                .get(key)
                .and_then(|v| v.as_array())
                .ok_or_else(|| Error::Tokenizer(format!("`{key}` is missing or not an array")))?;
            arr.iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| Error::Tokenizer(format!("`{key}` holds a non-string")))
        };
        let tokens = strings("tokenizer.ggml.tokens")?;
        let merges = strings("tokenizer.ggml.merges")?;
        let types: Vec<i64> = match gguf
            .get("tokenizer.ggml.token_type")
            .and_then(|v| v.as_array())
        {
            Some(arr) => arr.iter().map(|v| v.as_i64().unwrap_or(1)).collect(),
            None => vec![1; tokens.len()],
        };
        Tokenizer::new(tokens, &merges, &types, pre)
    }

    /// Builds a tokenizer from its vocabulary (`tokens[id]`), merges (`"left right"`, rank order)
    /// and GGUF token types (3 = control, 4 = user-defined are matched literally in text).
    pub fn new(
        tokens: Vec<String>,
        merges: &[String],
        token_types: &[i64],
        pre: PreTokenizer,
    ) -> Result<Tokenizer> {
        if tokens.len() > u32::MAX as usize / 2 {
            return Err(Error::Tokenizer("vocabulary too large".into()));
        }
        let token_ids: HashMap<String, u32> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let mut merge_map = HashMap::with_capacity(merges.len());
        for (rank, m) in merges.iter().enumerate() {
            let (l, r) = m
                .split_once(' ')
                .ok_or_else(|| Error::Tokenizer(format!("merge {rank} {m:?} has no space")))?;
            let ids = (
                token_ids.get(l),
                token_ids.get(r),
                token_ids.get(&format!("{l}{r}")),
            );
            if let (Some(&a), Some(&b), Some(&ab)) = ids {
                // Keep the first (lowest) rank if a pair repeats.
                merge_map.entry((a, b)).or_insert((rank as u32, ab));
            }
        }
        let mut is_special = vec![false; tokens.len()];
        let mut specials = Vec::new();
        for (i, t) in tokens.iter().enumerate() {
            let ty = token_types.get(i).copied().unwrap_or(1);
            if (ty == TOKEN_TYPE_CONTROL || ty == TOKEN_TYPE_USER_DEFINED) && !t.is_empty() {
                is_special[i] = true;
                specials.push((t.clone(), i as u32));
            }
        }
        specials.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        let byte_to_char = byte_to_unicode();
        let char_to_byte = byte_to_char
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();
        let regex =
            fancy_regex::Regex::new(GPT2_PATTERN).map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(Tokenizer {
            tokens,
            token_ids,
            merges: merge_map,
            specials,
            is_special,
            byte_to_char,
            char_to_byte,
            pre,
            regex,
        })
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The string of token `id` (in byte-mapped form), if it exists.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// Encodes `text` to token ids (no BOS).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        if text.len() > MAX_TEXT_BYTES {
            return Err(Error::Tokenizer(format!(
                "text of {} bytes exceeds the cap of {MAX_TEXT_BYTES}",
                text.len()
            )));
        }
        let mut ids = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            // Earliest special token occurrence (longest at a tie).
            let next = self
                .specials
                .iter()
                .filter_map(|(s, id)| rest.find(s.as_str()).map(|at| (at, s.len(), *id)))
                .min_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
            match next {
                Some((at, len, id)) => {
                    self.encode_plain(&rest[..at], &mut ids)?;
                    ids.push(id);
                    rest = &rest[at + len..];
                }
                None => {
                    self.encode_plain(rest, &mut ids)?;
                    rest = "";
                }
            }
        }
        Ok(ids)
    }

    fn encode_plain(&self, text: &str, ids: &mut Vec<u32>) -> Result<()> {
        let mut pieces: Vec<&str> = Vec::new();
        match self.pre {
            PreTokenizer::Gpt2 => pieces.push(text),
            PreTokenizer::Smollm => {
                let mut start = 0;
                for (i, c) in text.char_indices() {
                    if c.is_ascii_digit() {
                        if start < i {
                            pieces.push(&text[start..i]);
                        }
                        pieces.push(&text[i..i + 1]);
                        start = i + 1;
                    }
                }
                if start < text.len() {
                    pieces.push(&text[start..]);
                }
            }
        }
        for piece in pieces {
            for m in self.regex.find_iter(piece) {
                let m = m.map_err(|e| Error::Tokenizer(format!("pre-tokenizer regex: {e}")))?;
                self.bpe_word(m.as_str(), ids)?;
            }
        }
        Ok(())
    }

    fn bpe_word(&self, word: &str, ids: &mut Vec<u32>) -> Result<()> {
        let mut syms: Vec<u32> = Vec::with_capacity(word.len());
        let mut buf = [0u8; 4];
        for &b in word.as_bytes() {
            let c = self.byte_to_char[b as usize];
            let id = self
                .token_ids
                .get(c.encode_utf8(&mut buf) as &str)
                .ok_or_else(|| {
                    Error::Tokenizer(format!("byte 0x{b:02x} has no token in the vocabulary"))
                })?;
            syms.push(*id);
        }
        loop {
            let best = syms
                .windows(2)
                .enumerate()
                .filter_map(|(i, w)| {
                    self.merges
                        .get(&(w[0], w[1]))
                        .map(|&(rank, id)| (rank, i, id))
                })
                .min();
            match best {
                Some((_, i, id)) => {
                    syms[i] = id;
                    syms.remove(i + 1);
                }
                None => break,
            }
        }
        ids.extend_from_slice(&syms);
        Ok(())
    }

    /// Decodes ids to text. Special tokens are written out literally; byte sequences that are
    /// not valid UTF-8 become U+FFFD. Unknown ids are an error.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let mut bytes = Vec::new();
        for &id in ids {
            let tok = self.tokens.get(id as usize).ok_or_else(|| {
                Error::Tokenizer(format!(
                    "token id {id} is outside the vocabulary ({})",
                    self.tokens.len()
                ))
            })?;
            if self.is_special.get(id as usize).copied().unwrap_or(false) {
                bytes.extend_from_slice(tok.as_bytes());
                continue;
            }
            for c in tok.chars() {
                match self.char_to_byte.get(&c) {
                    Some(&b) => bytes.push(b),
                    None => bytes.extend_from_slice(c.encode_utf8(&mut [0u8; 4]).as_bytes()),
                }
            }
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_map_is_a_bijection() {
        let m = byte_to_unicode();
        let set: std::collections::HashSet<char> = m.iter().copied().collect();
        assert_eq!(set.len(), 256);
        assert_eq!(m[b'A' as usize], 'A');
        assert_eq!(m[b' ' as usize], 'Ġ');
        assert_eq!(m[b'\n' as usize], 'Ċ');
    }

    fn tiny() -> Tokenizer {
        let map = byte_to_unicode();
        let mut tokens: Vec<String> = map.iter().map(|c| c.to_string()).collect();
        for t in ["Ġt", "he", "Ġthe", "<|end|>"] {
            tokens.push(t.to_string());
        }
        let mut types = vec![1; tokens.len()];
        *types.last_mut().unwrap() = 3;
        let merges: Vec<String> = ["Ġ t", "h e", "Ġt he"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        Tokenizer::new(tokens, &merges, &types, PreTokenizer::Smollm).unwrap()
    }

    #[test]
    fn merges_by_rank_and_splits_digits() {
        let t = tiny();
        let ids = t.encode("the the12<|end|>").unwrap();
        let strs: Vec<&str> = ids.iter().map(|&i| t.token(i).unwrap()).collect();
        assert_eq!(strs, ["t", "he", "Ġthe", "1", "2", "<|end|>"]);
        assert_eq!(t.decode(&ids).unwrap(), "the the12<|end|>");
    }

    #[test]
    fn decode_rejects_unknown_ids() {
        assert!(tiny().decode(&[1_000_000]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn roundtrip_any_text(s in "\\PC{0,40}") {
            let t = tiny();
            let ids = t.encode(&s).unwrap();
            proptest::prop_assert_eq!(t.decode(&ids).unwrap(), s);
        }
    }
}
