//! GGUF reader tests on small files written here: every metadata type, alignment, each supported
//! tensor type against hand-computed blocks, and truncated / corrupt files (errors, no panics).

use posenc_model::gguf::{dequantize, GgmlType, GgufFile, MetaValue};
use posenc_model::Error;

mod common;
use common::{string_value, Writer};

/// Q4_1 block: d = 0.5 (f16 0x3800), m = −1 (f16 0xBC00), byte j = j | (15 − j) << 4.
fn q4_1_block() -> Vec<u8> {
    let mut b = vec![0x00, 0x38, 0x00, 0xBC];
    b.extend((0u8..16).map(|j| j | ((15 - j) << 4)));
    b
}

/// Q4_0 block: d = 2 (f16 0x4000), byte j = j | (j << 4).
fn q4_0_block() -> Vec<u8> {
    let mut b = vec![0x00, 0x40];
    b.extend((0u8..16).map(|j| j | (j << 4)));
    b
}

/// Q8_0 block: d = 0.25 (f16 0x3400), q_j = j − 16.
fn q8_0_block() -> Vec<u8> {
    let mut b = vec![0x00, 0x34];
    b.extend((0i8..32).map(|j| (j - 16) as u8));
    b
}

fn sample_file(version: u32) -> Vec<u8> {
    let mut w = Writer::new(version);
    w.alignment = 64;
    w.kv_raw("general.alignment", 4, &64u32.to_le_bytes())
        .kv_raw("u8", 0, &[200])
        .kv_raw("i8", 1, &[0xFE])
        .kv_raw("u16", 2, &600u16.to_le_bytes())
        .kv_raw("i16", 3, &(-600i16).to_le_bytes())
        .kv_raw("i32", 5, &(-7i32).to_le_bytes())
        .kv_raw("f32", 6, &1.5f32.to_le_bytes())
        .kv_raw("bool", 7, &[1])
        .kv_raw("name", 8, &string_value("tiny ü"))
        .kv_raw("u64", 10, &(1u64 << 40).to_le_bytes())
        .kv_raw("i64", 11, &(-5i64).to_le_bytes())
        .kv_raw("f64", 12, &0.1f64.to_le_bytes());
    // Array of 2 strings.
    let mut arr = 8u32.to_le_bytes().to_vec();
    arr.extend_from_slice(&2u64.to_le_bytes());
    arr.extend(string_value("a b"));
    arr.extend(string_value(""));
    w.kv_raw("strings", 9, &arr);
    // Array of 2 arrays of i32: [[1], [2, 3]].
    let mut nested = 9u32.to_le_bytes().to_vec();
    nested.extend_from_slice(&2u64.to_le_bytes());
    for inner in [&[1i32][..], &[2, 3]] {
        nested.extend_from_slice(&5u32.to_le_bytes());
        nested.extend_from_slice(&(inner.len() as u64).to_le_bytes());
        for v in inner {
            nested.extend_from_slice(&v.to_le_bytes());
        }
    }
    w.kv_raw("nested", 9, &nested);

    let f32s: Vec<u8> = [1.0f32, -2.0, 0.5, 3.25]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    w.tensor("f32", &[2, 2], 0, &f32s);
    w.tensor(
        "f16",
        &[4],
        1,
        &[0x00, 0x3C, 0x00, 0xC0, 0x00, 0x38, 0xFF, 0x7B],
    );
    w.tensor("bf16", &[3], 30, &[0x80, 0x3F, 0x00, 0xC0, 0x00, 0x3F]);
    let mut two_q41 = q4_1_block();
    two_q41.extend(q4_1_block());
    w.tensor("q4_1", &[32, 2], 3, &two_q41);
    w.tensor("q4_0", &[32], 2, &q4_0_block());
    w.tensor("q8_0", &[32], 8, &q8_0_block());
    w.tensor("q5_k", &[256], 13, &[0u8; 176]);
    w.build()
}

#[test]
fn parses_every_metadata_type() {
    let g = GgufFile::parse(sample_file(3)).unwrap();
    assert_eq!(g.version, 3);
    assert_eq!(g.alignment, 64);
    assert_eq!(g.data_start % 64, 0);
    assert_eq!(g.get("u8"), Some(&MetaValue::U8(200)));
    assert_eq!(g.get("i8"), Some(&MetaValue::I8(-2)));
    assert_eq!(g.get("u16"), Some(&MetaValue::U16(600)));
    assert_eq!(g.get("i16"), Some(&MetaValue::I16(-600)));
    assert_eq!(g.get("i32").and_then(|v| v.as_i64()), Some(-7));
    assert_eq!(g.get("f32"), Some(&MetaValue::F32(1.5)));
    assert_eq!(g.get("bool").and_then(|v| v.as_bool()), Some(true));
    assert_eq!(g.get("name").and_then(|v| v.as_str()), Some("tiny ü"));
    assert_eq!(g.get("u64").and_then(|v| v.as_u64()), Some(1 << 40));
    assert_eq!(g.get("i64").and_then(|v| v.as_u64()), None);
    assert_eq!(g.get("f64").and_then(|v| v.as_f64()), Some(0.1));
    assert_eq!(
        g.get("strings"),
        Some(&MetaValue::Array(vec![
            MetaValue::String("a b".into()),
            MetaValue::String(String::new())
        ]))
    );
    assert_eq!(
        g.get("nested"),
        Some(&MetaValue::Array(vec![
            MetaValue::Array(vec![MetaValue::I32(1)]),
            MetaValue::Array(vec![MetaValue::I32(2), MetaValue::I32(3)]),
        ]))
    );
    assert_eq!(g.tensors.len(), 7);
    assert_eq!(g.tensor("q4_1").unwrap().dims, vec![32, 2]);
    assert!(g.tensors.iter().all(|t| t.offset % 64 == 0));
}

#[test]
fn version_2_is_read_and_others_rejected() {
    assert_eq!(GgufFile::parse(sample_file(2)).unwrap().version, 2);
    for v in [1, 4] {
        let err = GgufFile::parse(sample_file(v)).unwrap_err().to_string();
        assert!(err.contains("version"), "{err}");
    }
    let mut bad = sample_file(3);
    bad[0] = b'X';
    assert!(GgufFile::parse(bad)
        .unwrap_err()
        .to_string()
        .contains("magic"));
}

#[test]
fn dequantizes_float_tensors() {
    let g = GgufFile::parse(sample_file(3)).unwrap();
    assert_eq!(g.dequantize("f32").unwrap(), vec![1.0, -2.0, 0.5, 3.25]);
    assert_eq!(g.dequantize("f16").unwrap(), vec![1.0, -2.0, 0.5, 65504.0]);
    assert_eq!(g.dequantize("bf16").unwrap(), vec![1.0, -2.0, 0.5]);
}

#[test]
fn dequantizes_q4_1_low_nibbles_first() {
    let g = GgufFile::parse(sample_file(3)).unwrap();
    let x = g.dequantize("q4_1").unwrap();
    assert_eq!(x.len(), 64);
    for j in 0..16 {
        // x = d·q + m with d = 0.5, m = −1.
        assert_eq!(x[j], 0.5 * j as f32 - 1.0, "low nibble {j}");
        assert_eq!(x[j + 16], 0.5 * (15 - j) as f32 - 1.0, "high nibble {j}");
    }
    assert_eq!(&x[..32], &x[32..]);
}

#[test]
fn dequantizes_q4_0_and_q8_0() {
    let g = GgufFile::parse(sample_file(3)).unwrap();
    let x = g.dequantize("q4_0").unwrap();
    for j in 0..16 {
        assert_eq!(x[j], 2.0 * (j as f32 - 8.0));
        assert_eq!(x[j + 16], 2.0 * (j as f32 - 8.0));
    }
    let y = g.dequantize("q8_0").unwrap();
    for (j, v) in y.iter().enumerate() {
        assert_eq!(*v, 0.25 * (j as f32 - 16.0));
    }
}

#[test]
fn unsupported_type_is_named() {
    let g = GgufFile::parse(sample_file(3)).unwrap();
    match g.dequantize("q5_k") {
        Err(Error::UnsupportedType {
            tensor,
            type_name,
            type_id,
        }) => {
            assert_eq!(
                (tensor.as_str(), type_name.as_str(), type_id),
                ("q5_k", "Q5_K", 13)
            );
        }
        other => panic!("expected UnsupportedType, got {other:?}"),
    }
    assert!(dequantize(GgmlType(99), &[0; 4])
        .unwrap_err()
        .to_string()
        .contains("unknown"));
    assert!(dequantize(GgmlType::Q4_1, &[0; 21]).is_err());
}

#[test]
fn every_truncation_is_an_error() {
    let full = sample_file(3);
    // The last tensor (Q5_K, unsupported) is not range-checked, so cut before the known tensors end.
    let g = GgufFile::parse(full.clone()).unwrap();
    let q8 = g.tensor("q8_0").unwrap();
    let known_end = (g.data_start + q8.offset + 34) as usize;
    for len in 0..known_end {
        assert!(
            GgufFile::parse(full[..len].to_vec()).is_err(),
            "prefix of {len} bytes parsed"
        );
    }
}

#[test]
fn huge_counts_are_rejected_before_allocating() {
    // tensor_count = u64::MAX.
    let mut f = sample_file(3);
    f[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(GgufFile::parse(f)
        .unwrap_err()
        .to_string()
        .contains("tensor_count"));
    // kv_count = 2^60.
    let mut f = sample_file(3);
    f[16..24].copy_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(GgufFile::parse(f).is_err());
    // A string length of 2^62 in the first key.
    let mut f = sample_file(3);
    f[24..32].copy_from_slice(&(1u64 << 62).to_le_bytes());
    assert!(GgufFile::parse(f).is_err());
    // An array claiming 2^40 elements.
    let mut w = Writer::new(3);
    let mut arr = 6u32.to_le_bytes().to_vec();
    arr.extend_from_slice(&(1u64 << 40).to_le_bytes());
    w.kv_raw("big", 9, &arr);
    assert!(GgufFile::parse(w.build())
        .unwrap_err()
        .to_string()
        .contains("big"));
}

#[test]
fn corrupt_tensor_infos_are_rejected() {
    // Tensor data past the end of the file.
    let mut w = Writer::new(3);
    w.tensor("t", &[32, 1000], 0, &[0u8; 128]);
    assert!(GgufFile::parse(w.build())
        .unwrap_err()
        .to_string()
        .contains("past the end"));
    // Element count overflow.
    let mut w = Writer::new(3);
    w.tensor("t", &[u64::MAX, 4], 0, &[]);
    assert!(GgufFile::parse(w.build()).is_err());
    // Row length not a multiple of the block size.
    let mut w = Writer::new(3);
    w.tensor("t", &[16], 3, &[0u8; 20]);
    assert!(GgufFile::parse(w.build())
        .unwrap_err()
        .to_string()
        .contains("block"));
    // Five dimensions.
    let mut w = Writer::new(3);
    w.tensor("t", &[1, 1, 1, 1, 1], 0, &[0u8; 4]);
    assert!(GgufFile::parse(w.build()).is_err());
    // Unknown metadata type and non-boolean bool byte.
    let mut w = Writer::new(3);
    w.kv_raw("k", 13, &[0; 8]);
    assert!(GgufFile::parse(w.build()).is_err());
    let mut w = Writer::new(3);
    w.kv_raw("k", 7, &[2]);
    assert!(GgufFile::parse(w.build()).is_err());
    // Alignment that is not a power of two.
    let mut w = Writer::new(3);
    w.kv_raw("general.alignment", 4, &48u32.to_le_bytes());
    assert!(GgufFile::parse(w.build()).is_err());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
    /// Random byte corruption never panics: the parse either fails or yields tensors that
    /// dequantize (or fail) cleanly.
    #[test]
    fn random_corruption_never_panics(edits in proptest::collection::vec((0usize..2000, proptest::num::u8::ANY), 1..8)) {
        let mut f = sample_file(3);
        for (at, byte) in edits {
            let i = at % f.len();
            f[i] = byte;
        }
        if let Ok(g) = GgufFile::parse(f) {
            for t in g.tensors.clone() {
                let _ = g.dequantize(&t.name);
            }
        }
    }
}

/// Every quantized block decoder against gguf-py (llama.cpp's Python package) on seeded random
/// blocks (`tests/data/quant-blocks.json`, written by `scripts/make-quant-fixture.py`). Both sides
/// compute in f32 with the same operation order, so the values agree to the last bit; the check
/// allows 1 ulp.
#[test]
fn block_decoders_match_gguf_py() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/quant-blocks.json"),
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let types = v["types"].as_object().unwrap();
    assert_eq!(types.len(), 5);
    for (name, case) in types {
        let ty = match name.as_str() {
            "Q4_0" => GgmlType::Q4_0,
            "Q4_1" => GgmlType::Q4_1,
            "Q8_0" => GgmlType::Q8_0,
            "Q4_K" => GgmlType::Q4_K,
            "Q6_K" => GgmlType::Q6_K,
            other => panic!("unexpected type {other}"),
        };
        let hex = case["raw_hex"].as_str().unwrap();
        let raw: Vec<u8> = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let want: Vec<f32> = case["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let got = dequantize(ty, &raw).unwrap();
        assert_eq!(got.len(), want.len(), "{name}");
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert!(
                (a - b).abs() <= f32::EPSILON * b.abs(),
                "{name} value {i}: {a} vs {b}"
            );
        }
    }
}
