//! GGUF files whose metadata contradicts their tensor table are refused before loading, with
//! the key or tensor named; the parser refuses repeated keys and tensor names.

use posenc_model::gguf::GgufFile;
use posenc_model::gguf_check::check_model_file;
use posenc_model::llama::Llama;

mod common;
use common::Writer;

const DIM: u64 = 8;
const FFN: u64 = 16;

/// What to change in an otherwise consistent 2-block model file.
#[derive(Default, Clone)]
struct Edits {
    block_count: Option<u32>,
    /// Blocks whose tensors are written.
    blocks: Option<Vec<usize>>,
    vocab_size_key: Option<u32>,
    embedding_length: Option<u32>,
    tokens: Option<usize>,
    vocab_rows: Option<u64>,
    nan_in: Option<&'static str>,
    duplicate_key: bool,
    duplicate_tensor: bool,
}

fn string_array(items: &[String]) -> Vec<u8> {
    let mut v = 8u32.to_le_bytes().to_vec(); // element type: string
    v.extend_from_slice(&(items.len() as u64).to_le_bytes());
    for s in items {
        common::put_str(&mut v, s);
    }
    v
}

fn build(e: &Edits) -> Vec<u8> {
    let rows = e.vocab_rows.unwrap_or(300);
    let mut g = Writer::new(3);
    g.kv_str("general.architecture", "llama")
        .kv_u32("llama.block_count", e.block_count.unwrap_or(2))
        .kv_u32(
            "llama.embedding_length",
            e.embedding_length.unwrap_or(DIM as u32),
        )
        .kv_u32("llama.feed_forward_length", FFN as u32)
        .kv_u32("llama.attention.head_count", 2)
        .kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5)
        .kv_str("tokenizer.ggml.model", "gpt2");
    if let Some(v) = e.vocab_size_key {
        g.kv_u32("llama.vocab_size", v);
    }
    if e.duplicate_key {
        g.kv_u32("llama.feed_forward_length", FFN as u32);
    }
    let tokens: Vec<String> = (0..e.tokens.unwrap_or(rows as usize))
        .map(|i| format!("t{i}"))
        .collect();
    g.kv_raw("tokenizer.ggml.tokens", 9, &string_array(&tokens));
    let tensor = |g: &mut Writer, name: &str, dims: &[u64]| {
        let n: u64 = dims.iter().product();
        let mut vals = vec![0.01f32; n as usize];
        if e.nan_in == Some(name) {
            vals[n as usize / 2] = f32::NAN;
        }
        g.tensor_f32(name, dims, &vals);
    };
    tensor(&mut g, "token_embd.weight", &[DIM, rows]);
    tensor(&mut g, "output_norm.weight", &[DIM]);
    for i in e.blocks.clone().unwrap_or(vec![0, 1]) {
        for (name, dims) in [
            ("attn_norm", vec![DIM]),
            ("attn_q", vec![DIM, DIM]),
            ("attn_k", vec![DIM, DIM]),
            ("attn_v", vec![DIM, DIM]),
            ("attn_output", vec![DIM, DIM]),
            ("ffn_norm", vec![DIM]),
            ("ffn_gate", vec![DIM, FFN]),
            ("ffn_up", vec![DIM, FFN]),
            ("ffn_down", vec![FFN, DIM]),
        ] {
            tensor(&mut g, &format!("blk.{i}.{name}.weight"), &dims);
        }
    }
    if e.duplicate_tensor {
        tensor(&mut g, "output_norm.weight", &[DIM]);
    }
    g.build()
}

/// The error message of a file the checker must refuse.
fn refused(e: Edits) -> String {
    let g = GgufFile::parse(build(&e)).expect("parses");
    let msg = check_model_file(&g)
        .expect_err("must be refused")
        .to_string();
    // The loader refuses it the same way.
    assert_eq!(
        Llama::from_gguf(&g).err().map(|e| e.to_string()),
        Some(msg.clone())
    );
    msg
}

#[test]
fn a_consistent_file_passes_and_loads() {
    let g = GgufFile::parse(build(&Edits::default())).unwrap();
    check_model_file(&g).unwrap();
    let g = GgufFile::parse(build(&Edits {
        vocab_size_key: Some(300),
        ..Edits::default()
    }))
    .unwrap();
    check_model_file(&g).unwrap();
    assert_eq!(Llama::from_gguf(&g).unwrap().config.n_layers, 2);
}

#[test]
fn block_count_must_match_the_block_tensors() {
    let m = refused(Edits {
        block_count: Some(0),
        ..Edits::default()
    });
    assert!(m.contains("llama.block_count") && m.contains("= 0"), "{m}");
    let m = refused(Edits {
        block_count: Some(1),
        ..Edits::default()
    });
    assert!(m.contains("blk.1.") && m.contains("block 1"), "{m}");
    let m = refused(Edits {
        block_count: Some(3),
        ..Edits::default()
    });
    assert!(m.contains("no tensors of block 2"), "{m}");
    let m = refused(Edits {
        blocks: Some(vec![1]),
        ..Edits::default()
    });
    assert!(m.contains("no tensors of block 0"), "{m}");
}

#[test]
fn vocabulary_and_width_must_match_the_embedding() {
    let m = refused(Edits {
        vocab_size_key: Some(299),
        ..Edits::default()
    });
    assert!(
        m.contains("llama.vocab_size") && m.contains("300 rows"),
        "{m}"
    );
    let m = refused(Edits {
        tokens: Some(301),
        ..Edits::default()
    });
    assert!(
        m.contains("tokenizer.ggml.tokens") && m.contains("301"),
        "{m}"
    );
    let m = refused(Edits {
        embedding_length: Some(16),
        ..Edits::default()
    });
    assert!(m.contains("llama.embedding_length"), "{m}");
    let m = refused(Edits {
        vocab_rows: Some(3),
        ..Edits::default()
    });
    assert!(m.contains("at least 256"), "{m}");
}

#[test]
fn non_finite_weights_are_named() {
    for name in [
        "token_embd.weight",
        "blk.1.ffn_down.weight",
        "output_norm.weight",
    ] {
        let m = refused(Edits {
            nan_in: Some(name),
            ..Edits::default()
        });
        assert!(m.contains(name) && m.contains("NaN"), "{m}");
    }
}

#[test]
fn repeated_keys_and_tensors_are_parse_errors() {
    for (e, what) in [
        (
            Edits {
                duplicate_key: true,
                ..Edits::default()
            },
            "metadata key `llama.feed_forward_length` appears twice",
        ),
        (
            Edits {
                duplicate_tensor: true,
                ..Edits::default()
            },
            "tensor `output_norm.weight` appears twice",
        ),
    ] {
        let err = GgufFile::parse(build(&e)).expect_err("refused").to_string();
        assert!(err.contains(what), "{err}");
    }
}
