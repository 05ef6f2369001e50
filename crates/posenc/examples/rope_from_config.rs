//! Read a Hugging Face config.json, print its RoPE frequencies, and rotate a query head.
//!
//! Run: `cargo run -p posenc --example rope_from_config -- ../shared/fixtures/rope/llama-3.1-8b.config.json`

use posenc::config::parse_config;
use posenc::rope::{apply_rotary, cos_sin_row, Precision, RopeLayout};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: rope_from_config CONFIG.json")?;
    let cfg = parse_config(&std::fs::read_to_string(&path)?)?;
    for warning in &cfg.warnings {
        println!("warning: {warning}");
    }
    let params = cfg.params();
    let freqs = params.frequencies(None, Precision::Exact)?;
    println!(
        "{}: rope_type {}, rotary_dim {} of head_dim {}, attention factor {}",
        path,
        freqs.rope_type,
        freqs.rotary_dim(),
        params.head_dim,
        freqs.attention_factor
    );
    for (i, (f, wl)) in freqs
        .inv_freq
        .iter()
        .zip(freqs.wavelengths())
        .enumerate()
        .step_by(8)
    {
        println!("  pair {i:>3}: inv_freq {f:.6e}, wavelength {wl:.1} positions");
    }

    // Rotate a query head at position 4096 and check that the norm grows only by the attention factor.
    let mut q: Vec<f32> = (0..params.head_dim)
        .map(|i| ((i % 7) as f32 - 3.0) / 3.0)
        .collect();
    let before: f32 = q.iter().map(|x| x * x).sum::<f32>().sqrt();
    let (mut cos, mut sin) = (vec![0.0; freqs.pairs()], vec![0.0; freqs.pairs()]);
    cos_sin_row(&freqs, 4096, &mut cos, &mut sin)?;
    apply_rotary(&mut q, &cos, &sin, RopeLayout::HalfSplit)?;
    let after: f32 = q.iter().map(|x| x * x).sum::<f32>().sqrt();
    println!("|q| before {before:.6}, after rotation at position 4096: {after:.6}");
    Ok(())
}
