//! The byte-level BPE tokenizer with SmolLM2-135M's real vocabulary and merges (read from the
//! model's GGUF, `$POSENC_FUZZ_GGUF`, once before the fork server starts; without it a small
//! built-in vocabulary). First byte of the input: even → the rest is text to encode, which must
//! decode back to itself; odd → the rest is token ids (little-endian u32) to decode.
//! Contract: a typed error or a result, never a panic or a hang.

use posenc_model::tokenizer::{PreTokenizer, Tokenizer};

/// A small vocabulary: every byte, a few merges and a control token (used when no GGUF is given).
fn builtin() -> Tokenizer {
    // GPT-2's byte-to-unicode map: printable bytes stand for themselves, the rest from U+0100 on.
    let mut tokens = Vec::new();
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
        tokens.push(char::from_u32(c).expect("valid").to_string());
    }
    for t in [
        "Ġt",
        "he",
        "Ġthe",
        "in",
        "ing",
        "<|endoftext|>",
        "<|im_start|>",
    ] {
        tokens.push(t.to_string());
    }
    let mut types = vec![1; tokens.len()];
    let n = types.len();
    types[n - 1] = 3;
    types[n - 2] = 3;
    let merges: Vec<String> = ["Ġ t", "h e", "Ġt he", "i n", "in g"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    Tokenizer::new(tokens, &merges, &types, PreTokenizer::Smollm).expect("built-in vocabulary")
}

fn load() -> Tokenizer {
    match std::env::var_os("POSENC_FUZZ_GGUF") {
        Some(path) => {
            let gguf = posenc_model::gguf::GgufFile::open(std::path::Path::new(&path))
                .expect("POSENC_FUZZ_GGUF is a readable GGUF");
            Tokenizer::from_gguf(&gguf).expect("the GGUF has a tokenizer")
        }
        None => builtin(),
    }
}

fn main() {
    let tokenizer = load();
    afl::fuzz!(|data: &[u8]| {
        let Some((&mode, rest)) = data.split_first() else {
            return;
        };
        if mode % 2 == 0 {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            if let Ok(ids) = tokenizer.encode(text) {
                let back = tokenizer.decode(&ids).expect("ids from encode decode");
                assert_eq!(back, text, "decode(encode(text)) == text");
            }
        } else {
            let ids: Vec<u32> = rest
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let _ = tokenizer.decode(&ids);
        }
    });
}
