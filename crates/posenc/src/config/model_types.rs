//! What each transformers config class does with the RoPE keys of a `config.json`.
//!
//! transformers does not read `config.json` alone: `CONFIG_MAPPING[model_type]` picks a config
//! class whose field defaults and standardization fill in what the file leaves out, and the
//! model's rotary module decides which of those values it uses. This table records, per
//! `model_type`, the class (named in each row's comment, as of transformers 5.25) and the rules
//! that change RoPE. Types not listed get the Llama rules and a lint that says so.

use crate::rope::RopeLayout;

/// How the model's rotary module picks the rotated width for `rope_type = "default"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotaryVariant {
    /// `LlamaRotaryEmbedding` and its copies: default RoPE rotates the whole head and ignores
    /// `partial_rotary_factor`; the scaled types (`ROPE_INIT_FUNCTIONS`) honour it.
    Llama,
    /// Phi, Phi-3, GPT-NeoX, StableLM, Persimmon: `dim = int(head_dim · partial_rotary_factor)`
    /// for every rope type.
    Partial,
}

/// Where the head size comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadDimRule {
    /// `head_dim` from the file, else `hidden_size // num_attention_heads`.
    Derived,
    /// A field with a class default that ignores `hidden_size` (Qwen3 128, Gemma 256, ...).
    Fixed(usize),
    /// DeepSeek: `qk_rope_head_dim` (default 64); `file_wins` when a `head_dim` key in the file
    /// replaces it (DeepSeek-V3) rather than being overwritten (DeepSeek-V2).
    QkRope {
        /// Whether the file's `head_dim` wins.
        file_wins: bool,
    },
    /// Falcon: a read-only property `hidden_size // num_attention_heads`; a `head_dim` key is an
    /// error in HF.
    Property,
    /// Mixtral: the field stays `None` unless given; default RoPE derives the width, but dynamic,
    /// YaRN and LongRoPE then fail in HF (`None * float`).
    NoneUnlessGiven,
}

/// Which layers are sliding-window layers when the file has no `layer_types`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerPattern {
    /// No sliding layers.
    None,
    /// `sliding_window`, when set, applies to every layer.
    EveryLayer,
    /// Sliding and full alternate, layer 0 sliding.
    Alternating,
    /// Layer `i` is full when `(i + 1) % n == 0`, else sliding; `n` from `key` when the file has
    /// it; `last_full`: the last layer is forced to full attention.
    EveryNth {
        /// Config key giving `n`.
        key: Option<&'static str>,
        /// Default `n`.
        default: usize,
        /// Whether the last layer is forced to full attention.
        last_full: bool,
    },
    /// Qwen2: with `use_sliding_window`, layers from `max_window_layers` (default 28) on slide.
    Qwen2,
    /// Qwen2-MoE: with `use_sliding_window`, even layers below `max_window_layers` slide.
    Qwen2Moe,
    /// Qwen3-MoE: with `use_sliding_window`, every layer slides.
    AllWhenEnabled,
    /// SmolLM3: with `use_sliding_window`, the no-RoPE layers slide.
    SmolLm3,
}

/// How the class turns the file's RoPE keys into per-layer-type `rope_parameters`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RopeShape {
    /// One block for all layers (a nested `rope_parameters` is used as given).
    Single,
    /// One block per layer type: `full_attention` takes a legacy `rope_scaling` and the top-level
    /// base, `sliding_attention` default RoPE with its own base (`sliding_theta_key`, else
    /// `sliding_theta`). A flat `rope_parameters` is ignored. Gemma 3, OLMo 3.
    PerLayerLegacyOnFull {
        /// Key for the sliding layers' base (`rope_local_base_freq`), if the class reads one.
        sliding_theta_key: Option<&'static str>,
        /// Default base of the sliding layers.
        sliding_theta: f64,
    },
    /// Gemma 4: nested `rope_parameters` only; defaults `{sliding: default 1e4, full:
    /// proportional 0.25 1e6}`; legacy `rope_theta` ignored; `rope_scaling` breaks HF.
    Gemma4,
    /// GPT-J: no RoPE keys at all; base 10000 in the model code, an absolute `rotary_dim`
    /// (default 64), sizes under `n_embd` / `n_head` / `n_positions`.
    GptJ,
}

/// Layers that have no RoPE at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRopeLayers {
    /// Every layer has RoPE.
    None,
    /// Every `n`-th layer (1-based) has none (SmolLM3 `no_rope_layer_interval`, Llama 4).
    EveryNth(usize),
    /// Full-attention layers have none (Cohere 2 applies RoPE in sliding layers only).
    FullAttention,
}

/// One transformers config class, as far as RoPE is concerned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelType {
    /// `model_type` in `config.json`.
    pub name: &'static str,
    /// The transformers config class this row mirrors.
    pub hf_class: &'static str,
    /// `default_theta`: the base when the file gives none.
    pub theta: f64,
    /// The key holding the base (`rope_theta`; GPT-NeoX: `rotary_emb_base`).
    pub theta_key: &'static str,
    /// The key holding the rotated fraction (`partial_rotary_factor`; GPT-NeoX: `rotary_pct`).
    pub partial_key: &'static str,
    /// The class default of that fraction, when it sets one.
    pub partial_default: Option<f64>,
    /// How default RoPE picks its width.
    pub rotary: RotaryVariant,
    /// Where the head size comes from.
    pub head_dim: HeadDimRule,
    /// Class default of `hidden_size`.
    pub hidden_size: usize,
    /// Class default of `num_attention_heads`.
    pub num_attention_heads: usize,
    /// Class default of `max_position_embeddings`.
    pub max_position_embeddings: usize,
    /// Phi-3: a class field `original_max_position_embeddings` (4096) that always overrides
    /// the scaling block's value.
    pub original_field: Option<usize>,
    /// PhiMoE: the block's `original_max_position_embeddings` wins over a top-level one.
    pub block_original_wins: bool,
    /// Default sliding-layer layout.
    pub layers: LayerPattern,
    /// Class default of `sliding_window` (used when the file omits the key).
    pub sliding_window: Option<usize>,
    /// How the RoPE blocks are formed.
    pub shape: RopeShape,
    /// Pairing of dimensions in the model code.
    pub layout: RopeLayout,
    /// Whether the class refuses `hidden_size % num_attention_heads != 0` (`validate_architecture`).
    pub checks_divisible: bool,
    /// Phi-3: only `default` and `longrope`; `su` and `yarn` are rewritten to `longrope`.
    pub longrope_only: bool,
    /// gpt-oss: no scaling block means YaRN ×32 from 4096 (no truncation).
    pub default_yarn: bool,
    /// PhiMoE: needs `short_mscale`/`long_mscale`, always uses `short_factor`, and multiplies
    /// cos/sin by the mscale instead of LongRoPE's attention factor.
    pub phimoe_mscale: bool,
    /// Layers without RoPE.
    pub no_rope: NoRopeLayers,
    /// The rotary module builds `torch.polar(1, angle)` (complex numbers) rather than cos/sin
    /// tables: torch then takes cos/sin from scalar libm (DeepSeek-V2, Llama 4).
    pub complex_rotary: bool,
}

/// The Llama row; every other row starts from it.
const LLAMA: ModelType = ModelType {
    name: "llama",
    hf_class: "LlamaConfig",
    theta: 10_000.0,
    theta_key: "rope_theta",
    partial_key: "partial_rotary_factor",
    partial_default: None,
    rotary: RotaryVariant::Llama,
    head_dim: HeadDimRule::Derived,
    hidden_size: 4096,
    num_attention_heads: 32,
    max_position_embeddings: 2048,
    original_field: None,
    block_original_wins: false,
    layers: LayerPattern::None,
    sliding_window: None,
    shape: RopeShape::Single,
    layout: RopeLayout::HalfSplit,
    checks_divisible: true,
    longrope_only: false,
    default_yarn: false,
    phimoe_mscale: false,
    no_rope: NoRopeLayers::None,
    complex_rotary: false,
};

/// A row with Llama's rules but its own name and sizes.
const fn like_llama(
    name: &'static str,
    hf_class: &'static str,
    hidden_size: usize,
    num_attention_heads: usize,
    max_position_embeddings: usize,
) -> ModelType {
    ModelType {
        name,
        hf_class,
        hidden_size,
        num_attention_heads,
        max_position_embeddings,
        checks_divisible: false,
        ..LLAMA
    }
}

/// Every model type posenc knows, with the transformers class each row mirrors.
pub const MODEL_TYPES: &[ModelType] = &[
    // LlamaConfig: head_dim = hidden // heads when absent; refuses hidden % heads != 0.
    LLAMA,
    // MistralConfig: sliding_window (default 4096) on every layer; one RoPE.
    ModelType {
        sliding_window: Some(4096),
        layers: LayerPattern::EveryLayer,
        ..like_llama("mistral", "MistralConfig", 4096, 32, 131_072)
    },
    // MinistralConfig: Mistral with layer_types.
    ModelType {
        sliding_window: Some(4096),
        head_dim: HeadDimRule::NoneUnlessGiven,
        ..like_llama("ministral", "MinistralConfig", 4096, 32, 131_072)
    },
    // MixtralConfig: default_theta 1e6; head_dim stays None unless given.
    ModelType {
        theta: 1_000_000.0,
        head_dim: HeadDimRule::NoneUnlessGiven,
        layers: LayerPattern::EveryLayer,
        ..like_llama("mixtral", "MixtralConfig", 4096, 32, 131_072)
    },
    // Qwen2Config: use_sliding_window + max_window_layers decide the sliding layers.
    ModelType {
        sliding_window: Some(4096),
        layers: LayerPattern::Qwen2,
        ..like_llama("qwen2", "Qwen2Config", 4096, 32, 32_768)
    },
    // Qwen2MoeConfig: the opposite pattern (even layers below max_window_layers).
    ModelType {
        sliding_window: Some(4096),
        layers: LayerPattern::Qwen2Moe,
        ..like_llama("qwen2_moe", "Qwen2MoeConfig", 2048, 16, 32_768)
    },
    // Qwen3Config: head_dim field default 128, not hidden // heads.
    ModelType {
        sliding_window: Some(4096),
        head_dim: HeadDimRule::Fixed(128),
        layers: LayerPattern::Qwen2,
        ..like_llama("qwen3", "Qwen3Config", 4096, 32, 32_768)
    },
    // Qwen3MoeConfig: no head_dim default; use_sliding_window puts the window on every layer.
    ModelType {
        layers: LayerPattern::AllWhenEnabled,
        ..like_llama("qwen3_moe", "Qwen3MoeConfig", 2048, 32, 32_768)
    },
    // Qwen2VLTextConfig / Qwen2_5_VLTextConfig: default_theta 1e6, mrope rewritten to default.
    ModelType {
        theta: 1_000_000.0,
        layers: LayerPattern::Qwen2,
        ..like_llama("qwen2_vl_text", "Qwen2VLTextConfig", 8192, 64, 32_768)
    },
    ModelType {
        theta: 1_000_000.0,
        layers: LayerPattern::Qwen2,
        ..like_llama("qwen2_5_vl_text", "Qwen2_5_VLTextConfig", 8192, 64, 32_768)
    },
    // PhiConfig: partial_rotary_factor defaults to 0.5 and applies to default RoPE.
    ModelType {
        partial_default: Some(0.5),
        rotary: RotaryVariant::Partial,
        ..like_llama("phi", "PhiConfig", 2048, 32, 2048)
    },
    // Phi3Config: original_max_position_embeddings is a field (4096) that always overrides the
    // block; only default and longrope (su/yarn rewritten); partial factor always written (1.0).
    ModelType {
        partial_default: Some(1.0),
        rotary: RotaryVariant::Partial,
        original_field: Some(4096),
        layers: LayerPattern::EveryLayer,
        longrope_only: true,
        ..like_llama("phi3", "Phi3Config", 3072, 32, 4096)
    },
    // PhimoeConfig: default_theta 1e6; short/long mscale; the block's original wins.
    ModelType {
        theta: 1_000_000.0,
        block_original_wins: true,
        layers: LayerPattern::EveryLayer,
        phimoe_mscale: true,
        ..like_llama("phimoe", "PhimoeConfig", 4096, 32, 131_072)
    },
    // GemmaConfig: head_dim field default 256.
    ModelType {
        head_dim: HeadDimRule::Fixed(256),
        ..like_llama("gemma", "GemmaConfig", 3072, 16, 8192)
    },
    // Gemma2Config: head_dim 256; sliding and full alternate (layer 0 sliding); one RoPE.
    ModelType {
        sliding_window: Some(4096),
        head_dim: HeadDimRule::Fixed(256),
        layers: LayerPattern::Alternating,
        checks_divisible: true,
        ..like_llama("gemma2", "Gemma2Config", 2304, 8, 8192)
    },
    // Gemma3TextConfig: per-layer RoPE; full default base 1e6 (rope_theta), sliding 1e4
    // (rope_local_base_freq); legacy rope_scaling on full layers only; every 6th layer full.
    ModelType {
        sliding_window: Some(4096),
        theta: 1_000_000.0,
        head_dim: HeadDimRule::Fixed(256),
        layers: LayerPattern::EveryNth {
            key: Some("sliding_window_pattern"),
            default: 6,
            last_full: false,
        },
        shape: RopeShape::PerLayerLegacyOnFull {
            sliding_theta_key: Some("rope_local_base_freq"),
            sliding_theta: 10_000.0,
        },
        checks_divisible: true,
        ..like_llama("gemma3_text", "Gemma3TextConfig", 2304, 8, 131_072)
    },
    // Gemma4TextConfig: nested rope_parameters only (full: proportional 0.25, base 1e6, head
    // size global_head_dim = 512; sliding: default 1e4); last layer forced full.
    ModelType {
        sliding_window: Some(512),
        theta: 1_000_000.0,
        head_dim: HeadDimRule::Fixed(256),
        layers: LayerPattern::EveryNth {
            key: Some("sliding_window_pattern"),
            default: 6,
            last_full: true,
        },
        shape: RopeShape::Gemma4,
        ..like_llama("gemma4_text", "Gemma4TextConfig", 2304, 8, 131_072)
    },
    // CohereConfig: default_theta 5e5; interleaved pairs.
    ModelType {
        theta: 500_000.0,
        layout: RopeLayout::Interleaved,
        ..like_llama("cohere", "CohereConfig", 8192, 64, 8192)
    },
    // Cohere2Config: every 4th layer full (sliding_window_pattern); RoPE only on sliding layers;
    // interleaved pairs.
    ModelType {
        sliding_window: Some(4096),
        layers: LayerPattern::EveryNth {
            key: Some("sliding_window_pattern"),
            default: 4,
            last_full: false,
        },
        layout: RopeLayout::Interleaved,
        no_rope: NoRopeLayers::FullAttention,
        ..like_llama("cohere2", "Cohere2Config", 8192, 64, 8192)
    },
    // OlmoConfig / Olmo2Config: Llama rules.
    like_llama("olmo", "OlmoConfig", 4096, 32, 2048),
    like_llama("olmo2", "Olmo2Config", 4096, 32, 2048),
    // Olmo3Config: default_theta 5e5; every 4th layer full; legacy rope_scaling on full layers
    // only; sliding layers keep the class default base.
    ModelType {
        sliding_window: Some(4096),
        theta: 500_000.0,
        layers: LayerPattern::EveryNth {
            key: None,
            default: 4,
            last_full: false,
        },
        shape: RopeShape::PerLayerLegacyOnFull {
            sliding_theta_key: None,
            sliding_theta: 500_000.0,
        },
        ..like_llama("olmo3", "Olmo3Config", 4096, 32, 2048)
    },
    // GPTNeoXConfig: base in rotary_emb_base, fraction in rotary_pct (default 0.25); top-level
    // rope_theta / partial_rotary_factor are not read.
    ModelType {
        theta_key: "rotary_emb_base",
        partial_key: "rotary_pct",
        partial_default: Some(0.25),
        rotary: RotaryVariant::Partial,
        checks_divisible: true,
        ..like_llama("gpt_neox", "GPTNeoXConfig", 6144, 64, 2048)
    },
    // StableLmConfig: partial_rotary_factor defaults to 0.25; rotary_pct is not read.
    ModelType {
        partial_default: Some(0.25),
        rotary: RotaryVariant::Partial,
        ..like_llama("stablelm", "StableLmConfig", 2560, 32, 4096)
    },
    // PersimmonConfig: partial_rotary_factor defaults to 0.5.
    ModelType {
        partial_default: Some(0.5),
        rotary: RotaryVariant::Partial,
        ..like_llama("persimmon", "PersimmonConfig", 4096, 64, 16_384)
    },
    // Starcoder2Config, GraniteConfig: Llama rules.
    ModelType {
        layers: LayerPattern::EveryLayer,
        ..like_llama("starcoder2", "Starcoder2Config", 3072, 24, 4096)
    },
    like_llama("granite", "GraniteConfig", 4096, 32, 2048),
    // DeepseekV2Config: rotary width = qk_rope_head_dim (64), a head_dim key is overwritten;
    // interleaved (complex) rotation.
    ModelType {
        head_dim: HeadDimRule::QkRope { file_wins: false },
        layout: RopeLayout::Interleaved,
        complex_rotary: true,
        checks_divisible: true,
        ..like_llama("deepseek_v2", "DeepseekV2Config", 4096, 32, 2048)
    },
    // DeepseekV3Config: qk_rope_head_dim (64), but a head_dim key wins; rope_interleave.
    ModelType {
        head_dim: HeadDimRule::QkRope { file_wins: true },
        layout: RopeLayout::Interleaved,
        ..like_llama("deepseek_v3", "DeepseekV3Config", 7168, 128, 4096)
    },
    // GptOssConfig: default_theta 1.5e5, head_dim 64; without a scaling block YaRN ×32 from
    // 4096 (truncate false); sliding and full alternate.
    ModelType {
        sliding_window: Some(128),
        theta: 150_000.0,
        head_dim: HeadDimRule::Fixed(64),
        layers: LayerPattern::Alternating,
        default_yarn: true,
        ..like_llama("gpt_oss", "GptOssConfig", 2880, 64, 131_072)
    },
    // SmolLM3Config: default_theta 2e6; every 4th layer has no RoPE.
    ModelType {
        theta: 2_000_000.0,
        layers: LayerPattern::SmolLm3,
        no_rope: NoRopeLayers::EveryNth(4),
        ..like_llama("smollm3", "SmolLM3Config", 2048, 16, 32_768)
    },
    // FalconConfig: head_dim is a read-only property (hidden // heads); a head_dim key fails.
    ModelType {
        head_dim: HeadDimRule::Property,
        ..like_llama("falcon", "FalconConfig", 4544, 71, 2048)
    },
    // GPTJConfig: rotary_dim (absolute, default 64; GPTJRotaryEmbedding uses `rotary_dim or
    // hidden_size`), base 10000 fixed in the model code; rope_theta / rope_scaling are not read;
    // interleaved pairs.
    ModelType {
        shape: RopeShape::GptJ,
        layout: RopeLayout::Interleaved,
        ..like_llama("gptj", "GPTJConfig", 4096, 16, 2048)
    },
    // Llama4TextConfig: default_theta 5e5, head_dim 128; every 4th layer without RoPE.
    ModelType {
        theta: 500_000.0,
        head_dim: HeadDimRule::Fixed(128),
        layout: RopeLayout::Interleaved,
        no_rope: NoRopeLayers::EveryNth(4),
        complex_rotary: true,
        ..like_llama("llama4_text", "Llama4TextConfig", 5120, 40, 131_072)
    },
];

/// A multimodal config class and the text config class it nests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wrapper {
    /// The outer `model_type`.
    pub name: &'static str,
    /// The text model type: fixed (the class ignores a `model_type` inside `text_config`), or the
    /// default when `text_config` names none.
    pub text: &'static str,
    /// Whether `text_config.model_type` picks the class (AutoConfig sub-configs).
    pub text_type_from_file: bool,
    /// Qwen2-VL: a flat file keeps its text keys at top level.
    pub flat_text_keys: bool,
}

/// Multimodal wrappers (`get_text_config` returns their `text_config`).
pub const WRAPPERS: &[Wrapper] = &[
    // Gemma3Config: text_config is always Gemma3TextConfig.
    Wrapper {
        name: "gemma3",
        text: "gemma3_text",
        text_type_from_file: false,
        flat_text_keys: false,
    },
    // Gemma4Config: Gemma4TextConfig.
    Wrapper {
        name: "gemma4",
        text: "gemma4_text",
        text_type_from_file: false,
        flat_text_keys: false,
    },
    // Llama4Config: Llama4TextConfig.
    Wrapper {
        name: "llama4",
        text: "llama4_text",
        text_type_from_file: false,
        flat_text_keys: false,
    },
    // Qwen2VLConfig / Qwen2_5_VLConfig: fixed text class; a flat file's text keys move into it.
    Wrapper {
        name: "qwen2_vl",
        text: "qwen2_vl_text",
        text_type_from_file: false,
        flat_text_keys: true,
    },
    Wrapper {
        name: "qwen2_5_vl",
        text: "qwen2_5_vl_text",
        text_type_from_file: false,
        flat_text_keys: true,
    },
    // Mistral3Config: AutoConfig sub-config, default mistral.
    Wrapper {
        name: "mistral3",
        text: "mistral",
        text_type_from_file: true,
        flat_text_keys: false,
    },
    // LlavaConfig (and its relatives): AutoConfig sub-config, default llama.
    Wrapper {
        name: "llava",
        text: "llama",
        text_type_from_file: true,
        flat_text_keys: false,
    },
    Wrapper {
        name: "llava_next",
        text: "llama",
        text_type_from_file: true,
        flat_text_keys: false,
    },
];

/// The row for `name`, or `None` when posenc does not know the type.
pub fn lookup(name: &str) -> Option<&'static ModelType> {
    MODEL_TYPES.iter().find(|m| m.name == name)
}

/// The Llama row (what unknown types get).
pub fn llama() -> &'static ModelType {
    &MODEL_TYPES[0]
}

/// The wrapper row for `name`.
pub fn wrapper(name: &str) -> Option<&'static Wrapper> {
    WRAPPERS.iter().find(|w| w.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_wrappers_point_at_rows() {
        for (i, m) in MODEL_TYPES.iter().enumerate() {
            assert!(
                MODEL_TYPES[i + 1..].iter().all(|o| o.name != m.name),
                "{} twice",
                m.name
            );
        }
        for w in WRAPPERS {
            assert!(lookup(w.text).is_some(), "{} -> {}", w.name, w.text);
        }
        assert_eq!(llama().name, "llama");
    }
}
