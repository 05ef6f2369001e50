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

/// GPT-2's pattern without its one look-ahead: `\s+(?!\S)|\s+` becomes `\s+`, and
/// [`Tokenizer::encode_plain`] gives a whitespace run followed by a non-space its last character
/// back, which is what the look-ahead does. Without look-around the whole pattern runs on
/// fancy-regex's linear-time engine (the `regex` crate's) instead of its backtracking one, which
/// failed with "Max stack size exceeded" on a word of about a hundred thousand letters.
const GPT2_SPLIT: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+";

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
            fancy_regex::Regex::new(GPT2_SPLIT).map_err(|e| Error::Tokenizer(e.to_string()))?;
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
        // Next occurrence of each special token at or after `at`, searched again only once the
        // text before it has been consumed: linear in the text, not in (specials x occurrences).
        let mut next: Vec<Option<usize>> = self
            .specials
            .iter()
            .map(|(s, _)| text.find(s.as_str()))
            .collect();
        let mut at = 0;
        while at < text.len() {
            for (slot, (s, _)) in next.iter_mut().zip(&self.specials) {
                if matches!(*slot, Some(p) if p < at) {
                    *slot = text[at..].find(s.as_str()).map(|p| p + at);
                }
            }
            // Earliest special token occurrence (longest at a tie: `specials` is longest first).
            let found = next
                .iter()
                .enumerate()
                .filter_map(|(k, p)| p.map(|p| (p, k)))
                .min();
            match found {
                Some((p, k)) => {
                    let (s, id) = &self.specials[k];
                    self.encode_plain(&text[at..p], &mut ids)?;
                    ids.push(*id);
                    at = p + s.len();
                }
                None => {
                    self.encode_plain(&text[at..], &mut ids)?;
                    at = text.len();
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
            self.split_words(piece, |word| self.bpe_word(word, ids))?;
        }
        Ok(())
    }

    /// Calls `each` on the words of `piece`, as GPT-2's pattern splits it.
    fn split_words<'a>(
        &self,
        piece: &'a str,
        mut each: impl FnMut(&'a str) -> Result<()>,
    ) -> Result<()> {
        let mut at = 0;
        while at < piece.len() {
            let found = self
                .regex
                .find_from_pos(piece, at)
                .map_err(|e| Error::Tokenizer(format!("pre-tokenizer regex: {e}")))?;
            // Every character matches one of the alternatives, so there is always a match.
            let Some(m) = found else { break };
            let mut end = m.end();
            let word = m.as_str();
            // `\s+(?!\S)`: a run of two or more whitespace characters followed by a non-space
            // leaves its last character to start the next word.
            if end < piece.len()
                && word.chars().nth(1).is_some()
                && word.chars().all(char::is_whitespace)
            {
                end -= word.chars().next_back().map_or(0, char::len_utf8);
            }
            each(&piece[m.start()..end])?;
            at = end;
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
        ids.extend(self.merge(syms));
        Ok(())
    }

    /// Applies the merges to one word's symbols: always the lowest-rank pair, the leftmost at a
    /// tie, until none applies. Symbols form a linked list and candidate pairs a min-heap, so a
    /// word of `n` bytes costs O(n log n), not O(n^2) (a 16 MiB word without spaces is valid
    /// input).
    fn merge(&self, mut syms: Vec<u32>) -> Vec<u32> {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        const NONE: usize = usize::MAX;
        let n = syms.len();
        if n < 2 {
            return syms;
        }
        let mut next: Vec<usize> = (1..=n).map(|i| if i == n { NONE } else { i }).collect();
        let mut prev: Vec<usize> = (0..n).map(|i| i.checked_sub(1).unwrap_or(NONE)).collect();
        let mut alive = vec![true; n];
        // (rank, left position, left id, right id, merged id); a popped entry whose symbols have
        // changed since it was pushed is stale and skipped.
        let mut heap = BinaryHeap::new();
        let pair = |heap: &mut BinaryHeap<_>, syms: &[u32], i: usize, j: usize| {
            if let Some(&(rank, id)) = self.merges.get(&(syms[i], syms[j])) {
                heap.push(Reverse((rank, i, syms[i], syms[j], id)));
            }
        };
        for i in 0..n - 1 {
            pair(&mut heap, &syms, i, i + 1);
        }
        while let Some(Reverse((_, i, left, right, id))) = heap.pop() {
            let j = next[i];
            if !alive[i] || j == NONE || syms[i] != left || syms[j] != right {
                continue;
            }
            syms[i] = id;
            alive[j] = false;
            next[i] = next[j];
            if next[j] != NONE {
                prev[next[j]] = i;
            }
            if prev[i] != NONE {
                pair(&mut heap, &syms, prev[i], i);
            }
            if next[i] != NONE {
                pair(&mut heap, &syms, i, next[i]);
            }
        }
        syms.iter()
            .zip(&alive)
            .filter(|(_, &a)| a)
            .map(|(&s, _)| s)
            .collect()
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

    /// The words of `text` under GPT-2's original pattern (with the look-ahead), by fancy-regex's
    /// backtracking engine: the oracle for the look-ahead-free split.
    fn words_reference(text: &str) -> Vec<String> {
        let re = fancy_regex::Regex::new(
            r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+",
        )
        .unwrap();
        re.find_iter(text)
            .map(|m| m.unwrap().as_str().to_string())
            .collect()
    }

    /// The words of `text` as the tokenizer splits it.
    fn words(text: &str) -> Vec<String> {
        let t = tiny();
        let mut out = Vec::new();
        t.split_words(text, |w| {
            out.push(w.to_string());
            Ok(())
        })
        .unwrap();
        out
    }

    proptest::proptest! {
        #[test]
        fn split_without_look_ahead_equals_gpt2_pattern(
            text in r"([ \t\n\u{a0}\u{3000}]{0,4}|[a-zé日]{0,3}|[0-9٣]{0,3}|[.,!?'\-]{0,2}|'s|'ll|\PC{0,2}){0,12}",
        ) {
            proptest::prop_assert_eq!(words(&text), words_reference(&text));
        }
    }

    /// The plain BPE loop: merge the lowest-rank pair (leftmost at a tie) until none applies.
    /// O(n^2); the oracle for [`Tokenizer::merge`].
    fn merge_reference(t: &Tokenizer, mut syms: Vec<u32>) -> Vec<u32> {
        loop {
            let best = syms
                .windows(2)
                .enumerate()
                .filter_map(|(i, w)| t.merges.get(&(w[0], w[1])).map(|&(rank, id)| (rank, i, id)))
                .min();
            match best {
                Some((_, i, id)) => {
                    syms[i] = id;
                    syms.remove(i + 1);
                }
                None => return syms,
            }
        }
    }

    /// A vocabulary over `a`..`d` with every merge of two tokens up to length 3, ranked by `order`.
    fn abcd(order: &[usize]) -> Tokenizer {
        let map = byte_to_unicode();
        let mut tokens: Vec<String> = map.iter().map(|c| c.to_string()).collect();
        let letters = ["a", "b", "c", "d"];
        let mut merges = Vec::new();
        for l in letters {
            for r in letters {
                merges.push(format!("{l} {r}"));
                tokens.push(format!("{l}{r}"));
            }
        }
        for l in letters {
            for r in letters {
                for x in letters {
                    merges.push(format!("{l}{r} {x}"));
                    merges.push(format!("{l} {r}{x}"));
                    tokens.push(format!("{l}{r}{x}"));
                }
            }
        }
        tokens.sort();
        tokens.dedup();
        let ranked: Vec<String> = order
            .iter()
            .map(|&k| merges[k % merges.len()].clone())
            .collect();
        let types = vec![1; tokens.len()];
        Tokenizer::new(tokens, &ranked, &types, PreTokenizer::Gpt2).unwrap()
    }

    proptest::proptest! {
        #[test]
        fn heap_merge_equals_the_plain_loop(
            order in proptest::collection::vec(0usize..1000, 0..60),
            word in "[abcd]{0,40}",
        ) {
            let t = abcd(&order);
            let syms: Vec<u32> = word
                .bytes()
                .map(|b| t.token_ids[&t.byte_to_char[b as usize].to_string()])
                .collect();
            proptest::prop_assert_eq!(t.merge(syms.clone()), merge_reference(&t, syms));
        }
    }

    /// Found by reasoning before fuzzing reached it (a fuzzer's inputs stay short): one word of a
    /// few MiB (no spaces) failed in the pre-tokenizer's backtracking regex ("Max stack size
    /// exceeded") and would then have made the merge loop quadratic; text full of special tokens
    /// made the special-token search quadratic. All linear now: this takes well under a second.
    #[test]
    fn long_words_and_many_special_tokens_are_linear() {
        let t = tiny();
        let word = "the".repeat(1 << 19); // 1.5 MiB, one word
        let ids = t.encode(&word).unwrap();
        assert_eq!(t.decode(&ids).unwrap(), word);
        let specials = "<|end|>x".repeat(1 << 17); // 1 MiB, 131072 special tokens
        let ids = t.encode(&specials).unwrap();
        assert_eq!(ids.len(), 2 << 17);
        assert_eq!(t.decode(&ids).unwrap(), specials);
    }
}
