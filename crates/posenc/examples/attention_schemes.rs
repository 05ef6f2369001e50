//! The same queries and keys under NoPE, RoPE and ALiBi, through the reference attention, plus a
//! KV-cache decode that matches the full forward pass.
//!
//! Run: `cargo run -p posenc --example attention_schemes`

use posenc::attention::{attention, AttentionOptions, HeadConfig, Mask, Scheme};
use posenc::kv_cache::KvCache;
use posenc::rope::{Precision, RopeLayout, RopeParams};

fn main() -> Result<(), posenc::Error> {
    let heads = HeadConfig::new(2, 1, 8)?;
    let seq = 5;
    let q: Vec<f32> = (0..seq * heads.q_width())
        .map(|i| ((i * 13 % 17) as f32 - 8.0) / 8.0)
        .collect();
    let k: Vec<f32> = (0..seq * heads.kv_width())
        .map(|i| ((i * 7 % 11) as f32 - 5.0) / 5.0)
        .collect();
    let v: Vec<f32> = (0..seq * heads.kv_width())
        .map(|i| (i % 5) as f32)
        .collect();
    let positions: Vec<u64> = (0..seq as u64).collect();

    let rope = Scheme::Rope {
        freqs: RopeParams::new(10_000.0, 8)?.frequencies(None, Precision::Exact)?,
        layout: RopeLayout::HalfSplit,
    };
    let alibi = Scheme::Alibi {
        slopes: posenc::alibi::slopes(2)?,
        symmetric: false,
    };
    let options = AttentionOptions {
        return_weights: true,
        ..Default::default()
    };
    for scheme in [Scheme::NoPe, rope.clone(), alibi] {
        let out = attention(
            &heads,
            &q,
            &k,
            &v,
            &positions,
            &positions,
            &scheme,
            &Mask::causal_by_position(),
            &options,
        )?;
        let weights = out.weights.expect("asked for weights");
        // Head 0, last query: how much weight each key gets.
        let last = &weights[(seq - 1) * seq..seq * seq];
        println!(
            "{:>6} ({:?}): last query attends {:?}",
            scheme.name(),
            scheme.entry(),
            last
        );
    }

    // Prefill 3 tokens, then decode 2 one at a time: same output as the full causal forward.
    let full = attention(
        &heads,
        &q,
        &k,
        &v,
        &positions,
        &positions,
        &rope,
        &Mask::causal_by_position(),
        &Default::default(),
    )?;
    let mut cache = KvCache::for_heads(&heads)?;
    let (qw, kw) = (heads.q_width(), heads.kv_width());
    let mut decoded = Vec::new();
    for (start, end) in [(0, 3), (3, 4), (4, 5)] {
        let pos: Vec<Option<u64>> = (start as u64..end as u64).map(Some).collect();
        let out = cache.forward(
            &heads,
            &q[start * qw..end * qw],
            &k[start * kw..end * kw],
            &v[start * kw..end * kw],
            &pos,
            &rope,
            &Default::default(),
        )?;
        decoded.extend(out.output);
    }
    let max_diff = full
        .output
        .iter()
        .zip(&decoded)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!("prefill + decode vs full forward: max |diff| = {max_diff:e}");
    Ok(())
}
