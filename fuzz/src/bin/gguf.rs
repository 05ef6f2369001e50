//! GGUF bytes → `GgufFile::parse`, then what `posenc model --model FILE.gguf` does with a file
//! that parsed: the metadata-vs-tensors check, the tokenizer, dequantization of every tensor
//! and, when the check passes, loading the model.
//! Contract: a typed error or a result, never a panic (debug assertions and overflow checks on),
//! and no allocation beyond what the file's own size justifies.

use posenc_model::gguf::GgufFile;
use posenc_model::gguf_check::check_model_file;
use posenc_model::llama::Llama;
use posenc_model::tokenizer::Tokenizer;

/// Largest tensor the target dequantizes (values): the input is at most a few MB, so anything
/// bigger must already have been refused as running past the end of the file.
const MAX_VALUES: u64 = 1 << 24;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(g) = GgufFile::parse(data.to_vec()) else {
            return;
        };
        for t in &g.tensors {
            let n = t.n_elements();
            assert!(n <= MAX_VALUES || t.ggml_type.block_layout().is_none(), "{} accepted with {n} values", t.name);
            if let Ok(v) = g.dequantize(&t.name) {
                assert_eq!(v.len() as u64, n, "{}", t.name);
            }
        }
        let _ = Tokenizer::from_gguf(&g).map(|tok| {
            let ids = tok.encode("Hello, world");
            let _ = tok.decode(&ids.unwrap_or_default());
        });
        if check_model_file(&g).is_ok() {
            let _ = Llama::from_gguf(&g);
        }
    });
}
