//! `posenc bench`: the JSON contract (field names, every required case, consistent numbers).
//! Speed is never asserted: `--quick` sizes are tiny and the machine may be busy.

mod common;
use common::{assert_usage_error, json, posenc};

const REQUIRED: [&str; 8] = [
    "rope_f32_inplace",
    "rope_bf16_inplace",
    "rope_decode_step",
    "rope_table_131072x64",
    "kshift_f16",
    "attention_alibi_fused",
    "attention_nobias_fused",
    "attention_alibi_materialized",
];

#[test]
fn quick_json_has_every_case_and_consistent_fields() {
    let out = json(&posenc(&["bench", "--quick", "--json"]));
    let stream = out["stream_gbps"].as_f64().expect("stream_gbps");
    assert!(stream.is_finite() && stream > 0.0, "stream_gbps {stream}");
    let results = out["results"].as_array().expect("results");
    for name in REQUIRED {
        // Quick runs keep the names, with a suffix only where the size differs from the name.
        assert!(
            results
                .iter()
                .any(|r| r["name"].as_str().is_some_and(|n| n.starts_with(name))),
            "no result named {name}"
        );
    }
    for r in results {
        let name = r["name"].as_str().unwrap();
        let (gbps, ratio) = (
            r["gbps"].as_f64().unwrap(),
            r["ratio_to_stream"].as_f64().unwrap(),
        );
        let (median, min) = (
            r["median_ns"].as_u64().unwrap(),
            r["min_ns"].as_u64().unwrap(),
        );
        let bytes = r["bytes"].as_u64().unwrap();
        assert!(
            median >= min && median > 0,
            "{name}: median {median} min {min}"
        );
        assert!(r["runs"].as_u64().unwrap() >= 1, "{name}");
        // gbps is bytes per nanosecond of the median run, and the ratio uses the stream named.
        assert!(
            (gbps - bytes as f64 / median as f64).abs() <= 1e-9 * gbps.max(1.0),
            "{name}"
        );
        // Stream cases are their own yardstick; the others carry the stream run alongside them.
        let yardstick = r["stream_alongside_gbps"].as_f64().unwrap();
        if name.starts_with("stream_inplace")
            || name.starts_with("attention")
            || name.contains("decode")
        {
            assert_eq!(
                yardstick,
                out[r["stream"].as_str().unwrap()].as_f64().unwrap(),
                "{name}"
            );
        }
        assert!(yardstick > 0.0, "{name}");
        assert!(
            (ratio - gbps / yardstick).abs() <= 1e-9 * ratio.max(1.0),
            "{name}"
        );
    }
    // RoPE cases name their dtype; the decode step is one token.
    let find = |n: &str| results.iter().find(|r| r["name"] == n).unwrap();
    assert_eq!(find("rope_bf16_inplace")["dtype"], "bf16");
    assert_eq!(find("rope_decode_step")["tokens"], 1);
    assert_eq!(find("kshift_f16")["dtype"], "f16");
}

#[test]
fn filter_keeps_streams_and_matching_cases() {
    let out = json(&posenc(&[
        "bench", "--quick", "--json", "--filter", "decode", "--runs", "1",
    ]));
    let names: Vec<&str> = out["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n.contains("decode") || n.starts_with("stream_inplace")),
        "{names:?}"
    );
    assert!(names.contains(&"rope_decode_step"));
}

#[test]
fn bad_flag_is_a_usage_error() {
    assert_usage_error(&posenc(&["bench", "--runs", "many"]), "--runs");
}
