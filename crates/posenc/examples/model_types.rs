//! Prints the table of transformers config classes posenc mirrors (`posenc::config::model_types`)
//! as Markdown: per `model_type`, the class, the defaults that fill in what a `config.json` leaves
//! out, and the rules that change RoPE. The README's model-type table is this output.
//!
//! ```sh
//! cargo run -p posenc --example model_types
//! ```

use posenc::config::model_types::{
    HeadDimRule, LayerPattern, NoRopeLayers, RopeShape, RotaryVariant, MODEL_TYPES, WRAPPERS,
};
use posenc::rope::RopeLayout;

fn head_dim(rule: HeadDimRule) -> String {
    match rule {
        HeadDimRule::Derived => "hidden/heads".into(),
        HeadDimRule::Fixed(n) => format!("{n} (field default)"),
        HeadDimRule::QkRope { file_wins: true } => "qk_rope_head_dim (file head_dim wins)".into(),
        HeadDimRule::QkRope { file_wins: false } => "qk_rope_head_dim".into(),
        HeadDimRule::Property => "hidden/heads (property)".into(),
        HeadDimRule::NoneUnlessGiven => "None unless given".into(),
    }
}

fn layers(pattern: LayerPattern, window: Option<usize>) -> String {
    let w = window.map(|w| format!(", window {w}")).unwrap_or_default();
    match pattern {
        LayerPattern::None => "all full".into(),
        LayerPattern::EveryLayer => format!("all sliding{w}"),
        LayerPattern::Alternating => format!("alternating, layer 0 sliding{w}"),
        LayerPattern::EveryNth {
            key,
            default,
            last_full,
        } => {
            let key = key.map(|k| format!(" (`{k}`)")).unwrap_or_default();
            let last = if last_full { ", last full" } else { "" };
            format!("every {default}th full{key}{last}{w}")
        }
        LayerPattern::Qwen2 => format!("use_sliding_window: from max_window_layers on{w}"),
        LayerPattern::Qwen2Moe => {
            format!("use_sliding_window: even layers below max_window_layers{w}")
        }
        LayerPattern::AllWhenEnabled => format!("use_sliding_window: all{w}"),
        LayerPattern::SmolLm3 => format!("use_sliding_window: the no-RoPE layers{w}"),
    }
}

fn rules(m: &posenc::config::model_types::ModelType) -> String {
    let mut r = Vec::new();
    if m.theta_key != "rope_theta" {
        r.push(format!("base from `{}`", m.theta_key));
    }
    if m.partial_key != "partial_rotary_factor" {
        r.push(format!("fraction from `{}`", m.partial_key));
    }
    if m.rotary == RotaryVariant::Partial {
        r.push("partial width for every rope type".into());
    }
    match m.shape {
        RopeShape::Single => {}
        RopeShape::PerLayerLegacyOnFull { .. } => {
            r.push("per layer type; legacy rope_scaling on full layers only".into())
        }
        RopeShape::Gemma4 => r.push("per layer type (full: proportional, global_head_dim)".into()),
        RopeShape::GptJ => r.push("absolute rotary_dim, fixed base".into()),
    }
    if m.layout == RopeLayout::Interleaved {
        r.push("interleaved pairs".into());
    }
    if let Some(o) = m.original_field {
        r.push(format!("original context field {o}"));
    }
    if m.block_original_wins {
        r.push("block's original context wins".into());
    }
    if m.longrope_only {
        r.push("`su`/`yarn` rewritten to longrope".into());
    }
    if m.default_yarn {
        r.push("no block means YaRN ×32 from 4096".into());
    }
    if m.phimoe_mscale {
        r.push("short/long mscale".into());
    }
    match m.no_rope {
        NoRopeLayers::None => {}
        NoRopeLayers::EveryNth(n) => r.push(format!("every {n}th layer without RoPE")),
        NoRopeLayers::FullAttention => r.push("full-attention layers without RoPE".into()),
    }
    if m.complex_rotary {
        r.push("torch.polar cos/sin (libm)".into());
    }
    if !m.checks_divisible {
        r.push("no hidden % heads check".into());
    }
    r.join("; ")
}

fn main() {
    println!("| model_type | transformers class | default base | partial rotary | head_dim | max positions | layers | other rules |");
    println!("|---|---|---|---|---|---|---|---|");
    for m in MODEL_TYPES {
        let partial = m
            .partial_default
            .map(|p| format!("{p:?}"))
            .unwrap_or_else(|| "1.0".into());
        println!(
            "| `{}` | `{}` | {} | {} | {} | {} | {} | {} |",
            m.name,
            m.hf_class,
            m.theta,
            partial,
            head_dim(m.head_dim),
            m.max_position_embeddings,
            layers(m.layers, m.sliding_window),
            rules(m)
        );
    }
    println!();
    let wrappers: Vec<String> = WRAPPERS
        .iter()
        .map(|w| format!("`{}` → `{}`", w.name, w.text))
        .collect();
    println!(
        "Wrappers that nest a `text_config`: {}.",
        wrappers.join(", ")
    );
}
