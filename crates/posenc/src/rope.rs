//! Rotary position embeddings (RoPE) and their long-context scalings.
//!
//! **Where position enters:** queries and keys, inside every attention layer
//! ([`PositionEntry::QueryKey`]). Values and hidden states are untouched.
//!
//! ## The rotation
//! A head vector is split into `rotary_dim / 2` pairs; pair `i` at position `p` is rotated by the
//! angle `p · θ_i`, with inverse frequency `θ_i = base^(-2i / rotary_dim)` (Su et al., 2021):
//!
//! ```text
//! (a, b)  ->  (a cos(pθ_i) - b sin(pθ_i),  a sin(pθ_i) + b cos(pθ_i))
//! ```
//!
//! Because rotations compose, `<R(m) q, R(n) k> = <q, R(n - m) k>`: the score depends only on the
//! offset `n - m`, which makes RoPE a relative scheme applied through absolute rotations.
//!
//! Two layouts pair the dimensions differently ([`RopeLayout`]):
//! * **half-split** (GPT-NeoX, Hugging Face `rotate_half`): pair `i` is `(x[i], x[i + rotary_dim/2])`;
//! * **interleaved** (GPT-J, Meta's original Llama, GGUF `llama` weights): pair `i` is `(x[2i], x[2i+1])`.
//!
//! Weights trained for one layout give garbage with the other unless q/k projections are permuted
//! (GGUF converters permute Llama's q/k weights for exactly this reason). With partial rotary
//! (`rotary_dim < head_dim`, e.g. Phi-2, GPT-NeoX) only the first `rotary_dim` dimensions rotate;
//! the rest pass through untouched.
//!
//! ## Scalings
//! Every scaling reduces to per-pair inverse frequencies plus one attention factor that multiplies
//! cos and sin (so it scales both q and k, and the logits by its square), exactly as Hugging Face
//! transformers' `ROPE_INIT_FUNCTIONS` do. See [`RopeScaling`] for each one's formula and models.
//!
//! ## Precision
//! [`Precision::Exact`] (default) forms the angle `p · θ_i` in f64, reduces it modulo 2π in f64 and
//! stores cos/sin as f32: the error stays below 1e-6 at position 2^20 (it grows like `p · 1e-16` rad).
//! [`Precision::Hf`] repeats Hugging Face's float32 arithmetic: float32 `inv_freq` computed with
//! the same operation order, float32 product `p · θ_i`, float32 cos/sin. At position 1,048,575 the
//! float32 angle is off by up to about 5e-2 rad, so HF's own tables are wrong by that much there;
//! use `Hf` only to compare with HF bit for bit.

use std::f64::consts::TAU;

use crate::error::{check_cap, check_positive};
use crate::torch_f32;
pub use crate::torch_f32::HfCpu;
use crate::{Error, PositionEntry, Result};

/// RoPE rotates queries and keys.
pub const ENTRY: PositionEntry = PositionEntry::QueryKey;

/// Largest inverse frequency accepted (radians per position); larger ones (a denormal factor,
/// say) would make angles overflow.
pub const MAX_INV_FREQ: f64 = 1e15;

/// Largest number of table entries (rows × pairs) one call may build.
pub const MAX_TABLE_ENTRIES: u64 = 1 << 26;

/// How the dimensions of a head vector are paired for rotation.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum RopeLayout {
    /// Pair `i` is `(x[i], x[i + rotary_dim/2])`: GPT-NeoX, Hugging Face `rotate_half`.
    #[default]
    HalfSplit,
    /// Pair `i` is `(x[2i], x[2i+1])`: GPT-J, Meta Llama reference code, GGUF `llama` weights.
    Interleaved,
}

/// Arithmetic used to build inverse frequencies and cos/sin values.
///
/// Serialized as `"exact"` or `"hf:PROFILE"` (for example `"hf:avx512"`); parsed from those,
/// and from `"hf"` (this machine's profile, [`HfCpu::detect`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// f64 frequencies and angles, angle reduced mod 2π in f64, stored f32.
    #[default]
    Exact,
    /// What the Hugging Face model module computes in float32 on the given machine, bit for
    /// bit (see [`crate::torch_f32`]).
    Hf(HfCpu),
    /// The same for models whose rotary module builds `torch.polar(1, angle)` instead of
    /// `cos`/`sin` tables (DeepSeek-V2, Llama 4): torch computes those with scalar libm
    /// `cosf`/`sinf`, not MKL. [`crate::config::ModelConfig::hf_precision`] picks it.
    HfPolar(HfCpu),
}

impl Precision {
    /// `hf` mode for this machine.
    pub fn hf() -> Precision {
        Precision::Hf(HfCpu::detect())
    }

    /// Whether this is an `hf` mode.
    pub fn is_hf(self) -> bool {
        matches!(self, Precision::Hf(_) | Precision::HfPolar(_))
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Precision::Exact => f.write_str("exact"),
            Precision::Hf(cpu) => write!(f, "hf:{cpu}"),
            Precision::HfPolar(cpu) => write!(f, "hf-polar:{cpu}"),
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "exact" => Ok(Precision::Exact),
            "hf" => Ok(Precision::hf()),
            _ => match s.strip_prefix("hf:") {
                Some(cpu) => Ok(Precision::Hf(cpu.parse()?)),
                None => match s.strip_prefix("hf-polar:") {
                    Some(cpu) => Ok(Precision::HfPolar(cpu.parse()?)),
                    None => Err(Error::invalid(
                        "precision",
                        format!("`exact`, `hf`, `hf:PROFILE` or `hf-polar:PROFILE`, got `{s}`"),
                    )),
                },
            },
        }
    }
}

impl serde::Serialize for Precision {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Precision {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// YaRN parameters (Peng et al., 2023), with Hugging Face's names and defaults.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct YarnParams {
    /// Context extension factor `s`.
    pub factor: f64,
    /// Context length the model was pre-trained with.
    pub original_max_position_embeddings: usize,
    /// Rotations inside the original context above which a pair is extrapolated (default 32).
    pub beta_fast: f64,
    /// Rotations below which a pair is fully interpolated (default 1).
    pub beta_slow: f64,
    /// DeepSeek's `mscale` (with `mscale_all_dim`, changes the default attention factor).
    pub mscale: Option<f64>,
    /// DeepSeek's `mscale_all_dim`.
    pub mscale_all_dim: Option<f64>,
    /// Explicit attention factor; overrides the computed one.
    pub attention_factor: Option<f64>,
    /// Round the correction range to whole dimensions (HF default `true`; gpt-oss uses `false`).
    pub truncate: bool,
}

impl YarnParams {
    /// YaRN with the paper's defaults for the given factor and original context.
    pub fn new(factor: f64, original_max_position_embeddings: usize) -> Self {
        YarnParams {
            factor,
            original_max_position_embeddings,
            beta_fast: 32.0,
            beta_slow: 1.0,
            mscale: None,
            mscale_all_dim: None,
            attention_factor: None,
            truncate: true,
        }
    }
}

/// LongRoPE parameters (Ding et al., 2024; Phi-3 and Phi-4 long-context models).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LongRopeParams {
    /// Per-pair rescale factors used up to the original context.
    pub short_factor: Vec<f64>,
    /// Per-pair rescale factors used past the original context.
    pub long_factor: Vec<f64>,
    /// Extension factor; `None` means `max_position_embeddings / original_max_position_embeddings`.
    pub factor: Option<f64>,
    /// Explicit attention factor; overrides `sqrt(1 + ln(factor) / ln(original))`.
    pub attention_factor: Option<f64>,
    /// Context length the model was pre-trained with.
    pub original_max_position_embeddings: usize,
    /// PhiMoE: factor on cos/sin up to the original context (instead of the attention factor).
    #[serde(default)]
    pub short_mscale: Option<f64>,
    /// PhiMoE: factor on cos/sin past the original context. With both mscales set, the
    /// frequencies always come from `short_factor`, as PhiMoE's rotary module computes them.
    #[serde(default)]
    pub long_mscale: Option<f64>,
}

/// Llama 3.1 wavelength-band scaling parameters.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Llama3Params {
    /// Divisor applied to low-frequency pairs (8 for Llama 3.1).
    pub factor: f64,
    /// Pairs whose wavelength exceeds `original / low_freq_factor` are divided by `factor` (1).
    pub low_freq_factor: f64,
    /// Pairs whose wavelength is below `original / high_freq_factor` are kept (4).
    pub high_freq_factor: f64,
    /// Context length the model was pre-trained with (8192 for Llama 3.1).
    pub original_max_position_embeddings: usize,
}

/// A RoPE scaling method, reduced by [`RopeParams::frequencies`] to inverse frequencies and an
/// attention factor. Names follow Hugging Face's `rope_type`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "rope_type", rename_all = "snake_case")]
pub enum RopeScaling {
    /// No scaling: `θ_i = base^(-2i/d)`. Llama 2, Mistral, Qwen2 without YaRN, SmolLM2.
    Default,
    /// Position interpolation (Chen et al., 2023; kaiokendev): `θ_i / factor`. LongChat, CodeLlama-style fine-tunes.
    Linear {
        /// Interpolation factor.
        factor: f64,
    },
    /// Static NTK-aware scaling (bloc97): base replaced by `base · factor^(d/(d-2))`.
    Ntk {
        /// Extension factor.
        factor: f64,
    },
    /// Dynamic NTK (emozilla; HF `dynamic`): for a sequence of length `L > max_position_embeddings`
    /// the base becomes `base · (factor·L/max - (factor-1))^(d/(d-2))`; unchanged up to `max`.
    Dynamic {
        /// Extension factor.
        factor: f64,
    },
    /// YaRN: NTK-by-parts interpolation plus an attention factor. Qwen2.5 long context, DeepSeek-V3, gpt-oss.
    Yarn(YarnParams),
    /// Llama 3.1 / 3.2 / 3.3 wavelength bands.
    Llama3(Llama3Params),
    /// LongRoPE: searched per-pair factors, short or long set chosen by sequence length. Phi-3, Phi-4-mini.
    #[serde(rename = "longrope")]
    LongRope(LongRopeParams),
    /// Proportional RoPE (Gemma 4): frequencies use exponent `2i/head_dim` for the first
    /// `rope_angles` pairs, the remaining pairs get frequency 0 (no rotation), all divided by `factor`.
    Proportional {
        /// Divisor of every frequency (1 = none).
        factor: f64,
        /// Number of pairs that rotate: `int(partial_rotary_factor · head_dim / 2)`.
        rope_angles: usize,
    },
}

impl RopeScaling {
    /// The Hugging Face `rope_type` name of this scaling.
    pub fn rope_type(&self) -> &'static str {
        match self {
            RopeScaling::Default => "default",
            RopeScaling::Linear { .. } => "linear",
            RopeScaling::Ntk { .. } => "ntk",
            RopeScaling::Dynamic { .. } => "dynamic",
            RopeScaling::Yarn(_) => "yarn",
            RopeScaling::Llama3(_) => "llama3",
            RopeScaling::LongRope(_) => "longrope",
            RopeScaling::Proportional { .. } => "proportional",
        }
    }
}

/// Everything needed to compute RoPE frequencies for one attention layer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RopeParams {
    /// `rope_theta`: the base of the geometric frequency progression (10000 in the paper).
    pub base: f64,
    /// Size of one attention head.
    pub head_dim: usize,
    /// HF's `dim`: `int(head_dim · partial_rotary_factor)`, ≤ `head_dim`. The frequency exponents
    /// are `2i / rotary_dim` for `i < ceil(rotary_dim / 2)` ([`RopeParams::pairs`]), so an odd
    /// partial width (HF accepts one) rotates `rotary_dim + 1` dimensions.
    pub rotary_dim: usize,
    /// `max_position_embeddings` of the config (used by dynamic NTK, YaRN and LongRoPE defaults).
    pub max_position_embeddings: usize,
    /// The scaling method.
    pub scaling: RopeScaling,
}

/// Where a context length of [`ScalingContexts`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ContextSource {
    /// The scaling's `original_max_position_embeddings` (YaRN, Llama 3, LongRoPE).
    #[serde(rename = "original_max_position_embeddings")]
    OriginalMaxPositionEmbeddings,
    /// The config's `max_position_embeddings`.
    #[serde(rename = "max_position_embeddings")]
    MaxPositionEmbeddings,
    /// The training context times the scaling's factor.
    #[serde(rename = "training context × factor")]
    TrainingTimesFactor,
    /// Given by the caller (`--original` / `--context`).
    #[serde(rename = "override")]
    Override,
}

impl ContextSource {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            ContextSource::OriginalMaxPositionEmbeddings => "original_max_position_embeddings",
            ContextSource::MaxPositionEmbeddings => "max_position_embeddings",
            ContextSource::TrainingTimesFactor => "training context × factor",
            ContextSource::Override => "override",
        }
    }
}

/// The context a model was trained with and the one a scaling aims at ([`RopeParams::contexts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ScalingContexts {
    /// Pre-training context length.
    pub training: usize,
    /// Where `training` comes from.
    pub training_from: ContextSource,
    /// Context the scaled model is meant for.
    pub target: usize,
    /// Where `target` comes from.
    pub target_from: ContextSource,
}

/// Per-pair inverse frequencies and the attention factor that multiplies cos and sin.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RopeFrequencies {
    /// Hugging Face `rope_type` that produced these.
    pub rope_type: String,
    /// `θ_i` for each pair, `rotary_dim / 2` values. In [`Precision::Hf`] these are float32 values.
    pub inv_freq: Vec<f64>,
    /// Multiplies cos and sin (1 for most scalings; YaRN and LongRoPE raise it).
    pub attention_factor: f64,
    /// The precision the frequencies were computed in; tables built from them use the same.
    pub precision: Precision,
}

impl RopeFrequencies {
    /// Number of rotated pairs.
    pub fn pairs(&self) -> usize {
        self.inv_freq.len()
    }

    /// Number of rotated dimensions (`2 · pairs`).
    pub fn rotary_dim(&self) -> usize {
        2 * self.inv_freq.len()
    }

    /// Wavelength `2π / θ_i` of each pair, in positions (infinite for a zero frequency).
    pub fn wavelengths(&self) -> Vec<f64> {
        self.inv_freq.iter().map(|&f| TAU / f).collect()
    }
}

impl RopeParams {
    /// Unscaled RoPE over the whole head.
    pub fn new(base: f64, head_dim: usize) -> Result<Self> {
        let params = RopeParams {
            base,
            head_dim,
            rotary_dim: head_dim,
            max_position_embeddings: 2048,
            scaling: RopeScaling::Default,
        };
        params.validate()?;
        Ok(params)
    }

    /// The scaling's context factor, if it has one (LongRoPE without `factor`:
    /// `max_position_embeddings / original_max_position_embeddings`, as HF).
    pub fn factor(&self) -> Option<f64> {
        match &self.scaling {
            RopeScaling::Default => None,
            RopeScaling::Linear { factor }
            | RopeScaling::Ntk { factor }
            | RopeScaling::Dynamic { factor }
            | RopeScaling::Proportional { factor, .. } => Some(*factor),
            RopeScaling::Yarn(y) => Some(y.factor),
            RopeScaling::Llama3(l) => Some(l.factor),
            RopeScaling::LongRope(l) => Some(l.factor.unwrap_or(
                self.max_position_embeddings as f64 / l.original_max_position_embeddings as f64,
            )),
        }
    }

    /// Training and target context of this setup, the one rule every report uses: training is
    /// the scaling's `original_max_position_embeddings` when it names one, else
    /// `max_position_embeddings` (HF's convention for linear and dynamic scaling); target is
    /// training × factor when that is larger than `max_position_embeddings`, else
    /// `max_position_embeddings`.
    pub fn contexts(&self) -> ScalingContexts {
        let named = match &self.scaling {
            RopeScaling::Yarn(y) => Some(y.original_max_position_embeddings),
            RopeScaling::Llama3(l) => Some(l.original_max_position_embeddings),
            RopeScaling::LongRope(l) => Some(l.original_max_position_embeddings),
            _ => None,
        };
        let (training, training_from) = match named {
            Some(o) => (o, ContextSource::OriginalMaxPositionEmbeddings),
            None => (
                self.max_position_embeddings,
                ContextSource::MaxPositionEmbeddings,
            ),
        };
        let scaled = self
            .factor()
            .filter(|f| f.is_finite() && *f > 1.0)
            .map(|f| (training as f64 * f).round().min(usize::MAX as f64 / 2.0) as usize);
        let (target, target_from) = match scaled {
            Some(s) if s > self.max_position_embeddings => (s, ContextSource::TrainingTimesFactor),
            _ => (
                self.max_position_embeddings,
                ContextSource::MaxPositionEmbeddings,
            ),
        };
        ScalingContexts {
            training,
            training_from,
            target,
            target_from,
        }
    }

    /// Number of rotated pairs: `ceil(rotary_dim / 2)`, as HF's `arange(0, dim, 2)`.
    pub fn pairs(&self) -> usize {
        self.rotary_dim.div_ceil(2)
    }

    /// Checks every field; called by [`RopeParams::frequencies`].
    pub fn validate(&self) -> Result<()> {
        check_positive("rope_theta", self.base).map_err(|_| {
            Error::invalid(
                "rope_theta",
                format!(
                    "a number > 1, got {} (HF accepts it but computes infinite or NaN frequencies)",
                    self.base
                ),
            )
        })?;
        if self.base <= 1.0 {
            return Err(Error::invalid(
                "rope_theta",
                format!(
                    "a number > 1, got {} (HF accepts it but every frequency is then >= 1 and no pair \
                     resolves long distances)",
                    self.base
                ),
            ));
        }
        if self.head_dim == 0 {
            return Err(Error::invalid("head_dim", "a positive integer, got 0"));
        }
        if self.rotary_dim == 0 {
            return Err(Error::invalid(
                "rotary_dim",
                "a number > 0, got 0 (head_dim × partial_rotary_factor)",
            ));
        }
        // HF rounds an odd partial width up (arange(0, dim, 2) has ceil(dim/2) entries); an odd
        // width over the whole head cannot be rotated, and HF refuses it too.
        if 2 * self.pairs() > self.head_dim {
            return Err(Error::invalid(
                "rotary_dim",
                format!(
                    "an even number <= head_dim = {}, got {} (an odd head cannot be rotated in pairs)",
                    self.head_dim, self.rotary_dim
                ),
            ));
        }
        if self.rotary_dim > self.head_dim {
            return Err(Error::invalid(
                "rotary_dim",
                format!(
                    "at most head_dim = {}, got {}",
                    self.head_dim, self.rotary_dim
                ),
            ));
        }
        check_cap("head_dim", self.head_dim as u64, 1 << 16)?;
        let half = self.pairs();
        match &self.scaling {
            RopeScaling::Default => {}
            RopeScaling::Linear { factor }
            | RopeScaling::Ntk { factor }
            | RopeScaling::Dynamic { factor } => {
                check_positive("factor", *factor)?;
            }
            RopeScaling::Yarn(y) => {
                if !self.rotary_dim.is_multiple_of(2) {
                    return Err(Error::invalid(
                        "partial_rotary_factor",
                        format!(
                            "a factor giving an even rotary dim for yarn, got {} (HF fails too: its \
                             ramp has dim // 2 entries and its frequencies ceil(dim / 2))",
                            self.rotary_dim
                        ),
                    ));
                }
                check_positive("factor", y.factor)?;
                check_positive("beta_fast", y.beta_fast)?;
                check_positive("beta_slow", y.beta_slow)?;
                if y.original_max_position_embeddings == 0 {
                    return Err(Error::invalid(
                        "original_max_position_embeddings",
                        "a positive integer, got 0",
                    ));
                }
                for (name, v) in [("mscale", y.mscale), ("mscale_all_dim", y.mscale_all_dim)] {
                    if let Some(v) = v {
                        crate::error::check_finite(name, v)?;
                    }
                }
                if let Some(a) = y.attention_factor {
                    check_positive("attention_factor", a)?;
                }
            }
            RopeScaling::Llama3(l) => {
                check_positive("factor", l.factor)?;
                check_positive("low_freq_factor", l.low_freq_factor)?;
                check_positive("high_freq_factor", l.high_freq_factor)?;
                // high <= low is legal (HF warns): the blended band is then empty.
                if l.original_max_position_embeddings == 0 {
                    return Err(Error::invalid(
                        "original_max_position_embeddings",
                        "a positive integer, got 0",
                    ));
                }
            }
            RopeScaling::LongRope(l) => {
                for (name, list) in [
                    ("short_factor", &l.short_factor),
                    ("long_factor", &l.long_factor),
                ] {
                    if list.len() != half {
                        return Err(Error::invalid(
                            name,
                            format!(
                                "a list of rotary_dim/2 = {half} numbers, got {}",
                                list.len()
                            ),
                        ));
                    }
                    for &v in list.iter() {
                        check_positive(name, v)?;
                    }
                }
                if let Some(f) = l.factor {
                    check_positive("factor", f)?;
                }
                if let Some(a) = l.attention_factor {
                    check_positive("attention_factor", a)?;
                }
                if l.original_max_position_embeddings < 2 {
                    return Err(Error::invalid(
                        "original_max_position_embeddings",
                        format!(
                            "an integer >= 2, got {}",
                            l.original_max_position_embeddings
                        ),
                    ));
                }
            }
            RopeScaling::Proportional {
                factor,
                rope_angles,
            } => {
                check_positive("factor", *factor)?;
                if *rope_angles > self.head_dim / 2 {
                    return Err(Error::invalid(
                        "partial_rotary_factor",
                        format!(
                            "at most head_dim/2 = {} rotated pairs, got {rope_angles}",
                            self.head_dim / 2
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Inverse frequencies and attention factor for a sequence of length `seq_len` (`None`: the
    /// value at model initialisation, as HF computes it). Only dynamic NTK and LongRoPE depend on it.
    pub fn frequencies(
        &self,
        seq_len: Option<usize>,
        precision: Precision,
    ) -> Result<RopeFrequencies> {
        self.validate()?;
        let (inv_freq, attention_factor) = match precision {
            Precision::Exact => self.frequencies_f64(seq_len),
            Precision::Hf(cpu) | Precision::HfPolar(cpu) => {
                let (f, a) = self.frequencies_hf(seq_len, cpu);
                (f.into_iter().map(f64::from).collect(), a)
            }
        };
        // Every non-finite result is an error naming the parameter that caused it (a denormal
        // factor, for example, makes 1 / (factor · base^x) infinite).
        let culprit = match &self.scaling {
            RopeScaling::Default => "rope_theta",
            RopeScaling::LongRope(_) => "short_factor / long_factor",
            _ => "factor",
        };
        // Above MAX_INV_FREQ an angle overflows f64 (and float32) long before any real position.
        if let Some(bad) = inv_freq
            .iter()
            .find(|f| !f.is_finite() || **f < 0.0 || **f > MAX_INV_FREQ)
        {
            return Err(Error::invalid(
                culprit,
                format!("a value giving finite inverse frequencies of at most {MAX_INV_FREQ:e}, got one of {bad:e}"),
            ));
        }
        if !(attention_factor.is_finite() && attention_factor > 0.0) {
            let culprit = match &self.scaling {
                RopeScaling::Yarn(y) if y.attention_factor.is_some() => "attention_factor",
                RopeScaling::LongRope(l) if l.attention_factor.is_some() => "attention_factor",
                RopeScaling::Yarn(_) => "factor / mscale / mscale_all_dim",
                _ => "factor",
            };
            return Err(Error::invalid(
                culprit,
                format!(
                    "a value giving a finite, positive attention factor, got {attention_factor}"
                ),
            ));
        }
        Ok(RopeFrequencies {
            rope_type: self.scaling.rope_type().to_string(),
            inv_freq,
            attention_factor,
            precision,
        })
    }

    /// `base^(-2i/d)` in f64 for `i < half`.
    fn default_f64(base: f64, d: usize, half: usize) -> Vec<f64> {
        (0..half)
            .map(|i| 1.0 / base.powf((2 * i) as f64 / d as f64))
            .collect()
    }

    fn frequencies_f64(&self, seq_len: Option<usize>) -> (Vec<f64>, f64) {
        let d = self.rotary_dim;
        let half = self.pairs();
        let base = self.base;
        let dd = d as f64;
        match &self.scaling {
            RopeScaling::Default => (Self::default_f64(base, d, half), 1.0),
            RopeScaling::Linear { factor } => (
                Self::default_f64(base, d, half)
                    .into_iter()
                    .map(|f| f / factor)
                    .collect(),
                1.0,
            ),
            RopeScaling::Ntk { factor } => (
                Self::default_f64(base * factor.powf(dd / (dd - 2.0)), d, half),
                1.0,
            ),
            RopeScaling::Dynamic { factor } => (
                Self::default_f64(
                    dynamic_base(base, *factor, d, self.max_position_embeddings, seq_len),
                    d,
                    half,
                ),
                1.0,
            ),
            RopeScaling::Yarn(y) => {
                let (low, high) = yarn_correction_range(y, d, base);
                let inv = (0..half)
                    .map(|i| {
                        let pos_freq = base.powf((2 * i) as f64 / dd);
                        let extrapolation = 1.0 / pos_freq;
                        let interpolation = 1.0 / (y.factor * pos_freq);
                        let ramp = ((i as f64 - low) / (high - low)).clamp(0.0, 1.0);
                        let extra_factor = 1.0 - ramp;
                        interpolation * (1.0 - extra_factor) + extrapolation * extra_factor
                    })
                    .collect();
                (inv, yarn_attention_factor(y))
            }
            RopeScaling::Llama3(l) => {
                let (low_wl, high_wl) = llama3_wavelength_bounds(l);
                let inv = Self::default_f64(base, d, half)
                    .into_iter()
                    .map(|f| {
                        let wavelen = TAU / f;
                        // HF's order: long wavelengths are divided first, so with
                        // high_freq_factor <= low_freq_factor (no blended band) every pair past
                        // low_freq_wavelen is divided.
                        if wavelen > low_wl {
                            f / l.factor
                        } else if wavelen < high_wl {
                            f
                        } else {
                            let smooth = (l.original_max_position_embeddings as f64 / wavelen
                                - l.low_freq_factor)
                                / (l.high_freq_factor - l.low_freq_factor);
                            (1.0 - smooth) * f / l.factor + smooth * f
                        }
                    })
                    .collect();
                (inv, 1.0)
            }
            RopeScaling::LongRope(l) => {
                let ext = longrope_factors(l, seq_len);
                let inv = (0..half)
                    .map(|i| 1.0 / (ext[i] * base.powf((2 * i) as f64 / dd)))
                    .collect();
                (
                    inv,
                    longrope_scale(l, self.max_position_embeddings, seq_len),
                )
            }
            RopeScaling::Proportional {
                factor,
                rope_angles,
            } => {
                let hd = self.head_dim as f64;
                let inv = (0..self.head_dim / 2)
                    .map(|i| {
                        if i < *rope_angles {
                            1.0 / base.powf((2 * i) as f64 / hd) / factor
                        } else {
                            0.0
                        }
                    })
                    .take(half)
                    .collect();
                (inv, 1.0)
            }
        }
    }

    /// The same computations in float32, in the operation order of `transformers`'
    /// `modeling_rope_utils.py` and of the model's rotary module (scalars from Python are
    /// doubles, tensors are float32), with torch's CPU `pow` on `cpu`.
    fn frequencies_hf(&self, seq_len: Option<usize>, cpu: HfCpu) -> (Vec<f32>, f64) {
        let d = self.rotary_dim;
        let half = self.pairs();
        // `base ** (torch.arange(0, dim, 2).float() / dim)`: the base becomes float32 and torch's
        // CPU kernel evaluates the powers with SLEEF's `powf_u10` in blocks, glibc for the rest.
        let pow_freqs_f32 = |base: f32, denom: usize, count: usize| -> Vec<f32> {
            let exps: Vec<f32> = (0..count).map(|i| (2 * i) as f32 / denom as f32).collect();
            torch_f32::pow_scalar_base(cpu, base, &exps)
        };
        let pow_freqs =
            |base: f64, denom: usize, count: usize| pow_freqs_f32(base as f32, denom, count);
        let default_f32 = |base: f32| -> Vec<f32> {
            pow_freqs_f32(base, d, half)
                .into_iter()
                .map(|p| 1.0f32 / p)
                .collect()
        };
        let default = |base: f64| default_f32(base as f32);
        match &self.scaling {
            RopeScaling::Default => (default(self.base), 1.0),
            RopeScaling::Linear { factor } => (
                default(self.base)
                    .into_iter()
                    .map(|f| f / *factor as f32)
                    .collect(),
                1.0,
            ),
            RopeScaling::Ntk { factor } => {
                let dd = d as f64;
                (default(self.base * factor.powf(dd / (dd - 2.0))), 1.0)
            }
            RopeScaling::Dynamic { factor } => {
                let max_pos = self.max_position_embeddings;
                match seq_len {
                    // The module grows its frequencies only past the cached length; the new base
                    // is then computed from `seq_len` as a tensor, in float32.
                    Some(s) if s > max_pos => (
                        default_f32(dynamic_base_f32(self.base, *factor, d, max_pos, s)),
                        1.0,
                    ),
                    // At initialisation `ROPE_INIT_FUNCTIONS` gets `max_position_embeddings` as a
                    // Python int: the base is a double.
                    _ => (
                        default(dynamic_base(self.base, *factor, d, max_pos, None)),
                        1.0,
                    ),
                }
            }
            RopeScaling::Yarn(y) => {
                let (low, high) = yarn_correction_range(y, d, self.base);
                let pos = pow_freqs(self.base, d, half);
                let factor = y.factor as f32;
                let span = (high - low) as f32;
                let inv = pos
                    .iter()
                    .enumerate()
                    .map(|(i, &p)| {
                        let extrapolation = 1.0f32 / p;
                        let interpolation = 1.0f32 / (factor * p);
                        let ramp = ((i as f32 - low as f32) / span).clamp(0.0, 1.0);
                        let extra_factor = 1.0f32 - ramp;
                        interpolation * (1.0f32 - extra_factor) + extrapolation * extra_factor
                    })
                    .collect();
                (inv, yarn_attention_factor(y))
            }
            RopeScaling::Llama3(l) => {
                let (low_wl, high_wl) = llama3_wavelength_bounds(l);
                let (low_wl, high_wl) = (low_wl as f32, high_wl as f32);
                let factor = l.factor as f32;
                let old = l.original_max_position_embeddings as f32;
                let inv = default(self.base)
                    .into_iter()
                    .map(|f| {
                        // torch evaluates `scalar / tensor` as `tensor.reciprocal() * scalar`:
                        // two roundings, not one division.
                        let wavelen = (1.0f32 / f) * std::f32::consts::TAU;
                        let scaled = if wavelen > low_wl { f / factor } else { f };
                        if wavelen < high_wl || wavelen > low_wl {
                            scaled
                        } else {
                            let smooth = ((1.0f32 / wavelen) * old - l.low_freq_factor as f32)
                                / (l.high_freq_factor - l.low_freq_factor) as f32;
                            (1.0f32 - smooth) * scaled / factor + smooth * scaled
                        }
                    })
                    .collect();
                (inv, 1.0)
            }
            RopeScaling::LongRope(l) => {
                let ext = longrope_factors(l, seq_len);
                let pos = pow_freqs(self.base, d, half);
                let inv = pos
                    .iter()
                    .zip(ext)
                    .map(|(&p, &e)| 1.0f32 / (e as f32 * p))
                    .collect();
                (
                    inv,
                    longrope_scale(l, self.max_position_embeddings, seq_len),
                )
            }
            RopeScaling::Proportional {
                factor,
                rope_angles,
            } => {
                let rotated = pow_freqs(self.base, self.head_dim, *rope_angles);
                let inv = (0..half)
                    .map(|i| rotated.get(i).map_or(0.0, |p| 1.0f32 / p) / *factor as f32)
                    .collect();
                (inv, 1.0)
            }
        }
    }
}

/// The dynamic-NTK base for a sequence of `seq_len` tokens (HF: `seq_len = max(seq_len, max_pos)`).
fn dynamic_base(base: f64, factor: f64, d: usize, max_pos: usize, seq_len: Option<usize>) -> f64 {
    let max_pos_f = max_pos.max(1) as f64;
    let seq = seq_len.map_or(max_pos_f, |s| (s as f64).max(max_pos_f));
    let dd = d as f64;
    base * ((factor * seq / max_pos_f) - (factor - 1.0)).powf(dd / (dd - 2.0))
}

/// The dynamic-NTK base as the model's rotary module computes it when a forward pass sees a
/// sequence of `seq_len > max_pos` tokens: `seq_len` is then an int64 tensor, so
/// `factor · seq_len / max_pos - (factor - 1)` is float32, raised to the double `d / (d - 2)`
/// by torch's scalar `pow` (in double), and multiplied by the base in float32.
pub fn dynamic_base_f32(base: f64, factor: f64, d: usize, max_pos: usize, seq_len: usize) -> f32 {
    let seq = seq_len.max(max_pos) as f32;
    let t = (factor as f32 * seq) / max_pos as f32 - (factor - 1.0) as f32;
    let dd = d as f64;
    base as f32 * torch_f32::pow_f32_by_f64(t, dd / (dd - 2.0))
}

/// YaRN's `get_mscale`: `0.1 · mscale · ln(scale) + 1` for `scale > 1`, else 1.
pub fn yarn_get_mscale(scale: f64, mscale: f64) -> f64 {
    if scale <= 1.0 {
        1.0
    } else {
        0.1 * mscale * scale.ln() + 1.0
    }
}

/// YaRN's attention factor as HF computes it: explicit `attention_factor`, else
/// `get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim)` when both are set and
/// non-zero, else `0.1 · ln(factor) + 1`.
pub fn yarn_attention_factor(y: &YarnParams) -> f64 {
    if let Some(a) = y.attention_factor {
        return a;
    }
    match (y.mscale, y.mscale_all_dim) {
        (Some(m), Some(m_all)) if m != 0.0 && m_all != 0.0 => {
            yarn_get_mscale(y.factor, m) / yarn_get_mscale(y.factor, m_all)
        }
        _ => yarn_get_mscale(y.factor, 1.0),
    }
}

/// DeepSeek's softmax-scale correction: DeepSeek-V2/V3 multiply the softmax scale `1/sqrt(d)` by
/// `mscale(factor, mscale_all_dim)^2`, on top of the RoPE attention factor. Returned separately
/// because HF applies it in the attention module, not in the rotary embedding.
pub fn deepseek_softmax_scale_correction(factor: f64, mscale_all_dim: f64) -> f64 {
    let m = yarn_get_mscale(factor, mscale_all_dim);
    m * m
}

/// YaRN's dimension range `[low, high]` in pair indices (HF `find_correction_range`).
pub fn yarn_correction_range(y: &YarnParams, rotary_dim: usize, base: f64) -> (f64, f64) {
    let d = rotary_dim as f64;
    let orig = y.original_max_position_embeddings as f64;
    let correction_dim = |rotations: f64| d * (orig / (rotations * TAU)).ln() / (2.0 * base.ln());
    let mut low = correction_dim(y.beta_fast);
    let mut high = correction_dim(y.beta_slow);
    if y.truncate {
        low = low.floor();
        high = high.ceil();
    }
    let low = low.max(0.0);
    let mut high = high.min(d - 1.0);
    if low == high {
        high += 0.001; // HF: prevent a singular ramp
    }
    (low, high)
}

/// Llama 3's wavelength bounds `(low_freq_wavelen, high_freq_wavelen)`: pairs with a longer
/// wavelength than the first are divided by `factor`, pairs shorter than the second are kept.
pub fn llama3_wavelength_bounds(l: &Llama3Params) -> (f64, f64) {
    let old = l.original_max_position_embeddings as f64;
    (old / l.low_freq_factor, old / l.high_freq_factor)
}

/// The LongRoPE factor list in force for `seq_len`: long past the original context, else short
/// (PhiMoE, with its mscales set, always uses the short list).
pub fn longrope_factors(l: &LongRopeParams, seq_len: Option<usize>) -> &[f64] {
    if l.short_mscale.is_some() && l.long_mscale.is_some() {
        return &l.short_factor;
    }
    match seq_len {
        Some(s) if s > l.original_max_position_embeddings => &l.long_factor,
        _ => &l.short_factor,
    }
}

/// The factor on cos/sin for `seq_len`: PhiMoE's `short_mscale`/`long_mscale` when set, else
/// [`longrope_attention_factor`].
pub fn longrope_scale(
    l: &LongRopeParams,
    max_position_embeddings: usize,
    seq_len: Option<usize>,
) -> f64 {
    match (l.short_mscale, l.long_mscale) {
        (Some(short), Some(long)) => match seq_len {
            Some(s) if s > l.original_max_position_embeddings => long,
            _ => short,
        },
        _ => longrope_attention_factor(l, max_position_embeddings),
    }
}

/// LongRoPE's attention factor: explicit, else `sqrt(1 + ln(factor)/ln(original))` for factor > 1.
pub fn longrope_attention_factor(l: &LongRopeParams, max_position_embeddings: usize) -> f64 {
    if let Some(a) = l.attention_factor {
        return a;
    }
    let factor = l
        .factor
        .unwrap_or(max_position_embeddings as f64 / l.original_max_position_embeddings as f64);
    if factor <= 1.0 {
        1.0
    } else {
        (1.0 + factor.ln() / (l.original_max_position_embeddings as f64).ln()).sqrt()
    }
}

/// One half-width row of cos and sin at `position`, multiplied by the attention factor (as HF does).
///
/// `cos` and `sin` must hold `freqs.pairs()` values each.
pub fn cos_sin_row(
    freqs: &RopeFrequencies,
    position: u64,
    cos: &mut [f32],
    sin: &mut [f32],
) -> Result<()> {
    check_row_buffers(freqs, cos, sin)?;
    match freqs.precision {
        Precision::Exact => {
            fill_f64_row(freqs, position as f64, freqs.attention_factor, cos, sin);
        }
        Precision::Hf(_) | Precision::HfPolar(_) => hf_rows(freqs, &[position], cos, sin)?,
    }
    Ok(())
}

/// `hf` rows for `positions`, row-major, as the model's rotary module computes them: float32
/// positions times float32 `inv_freq` (the `inv_freq @ position_ids` product has one term, so
/// one rounding), torch's float32 `cos`/`sin` of that angle ([`torch_f32::hf_cos_sin`]), times
/// the attention factor rounded to float32. Elementwise, so rows do not depend on each other.
fn hf_rows(
    freqs: &RopeFrequencies,
    positions: &[u64],
    cos: &mut [f32],
    sin: &mut [f32],
) -> Result<()> {
    let inv: Vec<f32> = freqs.inv_freq.iter().map(|&f| f as f32).collect();
    let angles: Vec<f32> = positions
        .iter()
        .flat_map(|&p| {
            let p = p as f32;
            inv.iter().map(move |&f| p * f)
        })
        .collect();
    match freqs.precision {
        Precision::HfPolar(_) => torch_f32::libm_cos_sin(&angles, cos, sin)?,
        Precision::Hf(cpu) => {
            torch_f32::hf_cos_sin(cpu, &angles, cos, sin)?;
        }
        Precision::Exact => unreachable!("hf_rows is for hf precision"),
    }
    let a = freqs.attention_factor as f32;
    if a != 1.0 {
        for v in cos.iter_mut().chain(sin.iter_mut()) {
            *v *= a;
        }
    }
    Ok(())
}

/// One half-width row of a pure rotation by a signed position offset `delta` (no attention
/// factor): what re-rotating cached keys by `delta` positions needs.
pub fn rotation_row(
    freqs: &RopeFrequencies,
    delta: i64,
    cos: &mut [f32],
    sin: &mut [f32],
) -> Result<()> {
    check_row_buffers(freqs, cos, sin)?;
    fill_f64_row(freqs, delta as f64, 1.0, cos, sin);
    Ok(())
}

/// `cos` and `sin` must hold one value per pair.
fn check_row_buffers(freqs: &RopeFrequencies, cos: &[f32], sin: &[f32]) -> Result<()> {
    let n = freqs.pairs();
    if cos.len() != n || sin.len() != n {
        return Err(Error::shape(
            "cos/sin row",
            n,
            format!("{}/{}", cos.len(), sin.len()),
        ));
    }
    Ok(())
}

/// `scale · cos(x·θ_i)` and `scale · sin(x·θ_i)`, the angle formed and reduced mod 2π in f64.
fn fill_f64_row(freqs: &RopeFrequencies, x: f64, scale: f64, cos: &mut [f32], sin: &mut [f32]) {
    for ((c, s), &f) in cos.iter_mut().zip(sin.iter_mut()).zip(&freqs.inv_freq) {
        let (sv, cv) = (x * f).rem_euclid(TAU).sin_cos();
        *c = (cv * scale) as f32;
        *s = (sv * scale) as f32;
    }
}

/// Half-width cos/sin rows for a list of positions, row-major `[positions.len()][pairs]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RopeTable {
    /// The position of each row.
    pub positions: Vec<u64>,
    /// Values per row (`rotary_dim / 2`).
    pub pairs: usize,
    /// cos values, attention factor applied.
    pub cos: Vec<f32>,
    /// sin values, attention factor applied.
    pub sin: Vec<f32>,
}

impl RopeTable {
    /// Builds the table for `positions` (any order, repeats allowed). At most
    /// [`MAX_TABLE_ENTRIES`] values per table.
    pub fn new(freqs: &RopeFrequencies, positions: &[u64]) -> Result<Self> {
        let pairs = freqs.pairs();
        check_cap(
            "positions × pairs",
            positions.len() as u64 * pairs as u64,
            MAX_TABLE_ENTRIES,
        )?;
        let mut cos = vec![0.0f32; positions.len() * pairs];
        let mut sin = vec![0.0f32; positions.len() * pairs];
        if freqs.precision.is_hf() {
            hf_rows(freqs, positions, &mut cos, &mut sin)?;
        } else if pairs > 0 {
            for ((&p, c), s) in positions
                .iter()
                .zip(cos.chunks_exact_mut(pairs))
                .zip(sin.chunks_exact_mut(pairs))
            {
                cos_sin_row(freqs, p, c, s)?;
            }
        }
        Ok(RopeTable {
            positions: positions.to_vec(),
            pairs,
            cos,
            sin,
        })
    }

    /// Rows for positions `0..len`.
    pub fn range(freqs: &RopeFrequencies, len: usize) -> Result<Self> {
        check_cap("len", len as u64, MAX_TABLE_ENTRIES)?;
        let positions: Vec<u64> = (0..len as u64).collect();
        Self::new(freqs, &positions)
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// Row `i` as `(cos, sin)`, or `None` past the end.
    pub fn row(&self, i: usize) -> Option<(&[f32], &[f32])> {
        let start = i.checked_mul(self.pairs)?;
        let end = start.checked_add(self.pairs)?;
        Some((self.cos.get(start..end)?, self.sin.get(start..end)?))
    }
}

/// Index pairs `(a, b)` rotated together for pair `i` of a rotary block of `2 · pairs` dims.
#[inline]
fn pair_indices(layout: RopeLayout, i: usize, pairs: usize) -> (usize, usize) {
    match layout {
        RopeLayout::HalfSplit => (i, i + pairs),
        RopeLayout::Interleaved => (2 * i, 2 * i + 1),
    }
}

/// Checks that `cos`/`sin` are one row of equal length that fits in `x`; returns the pair count.
fn check_row(x: &[f32], cos: &[f32], sin: &[f32]) -> Result<usize> {
    let pairs = cos.len();
    if sin.len() != pairs {
        return Err(Error::shape("sin row", pairs, sin.len()));
    }
    if 2 * pairs > x.len() {
        return Err(Error::shape(
            "head vector",
            format!(">= rotary_dim = {}", 2 * pairs),
            x.len(),
        ));
    }
    Ok(pairs)
}

/// Rotates one head vector in place: the first `2 · cos.len()` dims rotate (by `layout`), the
/// rest pass through. `cos`/`sin` are one half-width row. This is the plain reference
/// implementation every fast kernel is checked against.
pub fn apply_rotary(x: &mut [f32], cos: &[f32], sin: &[f32], layout: RopeLayout) -> Result<()> {
    let pairs = check_row(x, cos, sin)?;
    for i in 0..pairs {
        let (ia, ib) = pair_indices(layout, i, pairs);
        let (a, b) = (x[ia], x[ib]);
        x[ia] = a * cos[i] - b * sin[i];
        x[ib] = a * sin[i] + b * cos[i];
    }
    Ok(())
}

/// Undoes [`apply_rotary`] with the same row: rotates by the opposite angle and divides by the
/// squared attention factor folded into `cos`/`sin` (`cos² + sin²`).
pub fn apply_rotary_inverse(
    x: &mut [f32],
    cos: &[f32],
    sin: &[f32],
    layout: RopeLayout,
) -> Result<()> {
    let pairs = check_row(x, cos, sin)?;
    for i in 0..pairs {
        let (ia, ib) = pair_indices(layout, i, pairs);
        let (a, b) = (x[ia] as f64, x[ib] as f64);
        let (c, s) = (cos[i] as f64, sin[i] as f64);
        let norm = c * c + s * s;
        if norm == 0.0 {
            return Err(Error::invalid(
                "cos/sin",
                "a row with a non-zero attention factor",
            ));
        }
        x[ia] = ((a * c + b * s) / norm) as f32;
        x[ib] = ((b * c - a * s) / norm) as f32;
    }
    Ok(())
}

/// Rotates every head of one token in place: `x` holds `n_heads` contiguous vectors of `head_dim`.
pub fn apply_rotary_heads(
    x: &mut [f32],
    n_heads: usize,
    head_dim: usize,
    cos: &[f32],
    sin: &[f32],
    layout: RopeLayout,
) -> Result<()> {
    if n_heads.checked_mul(head_dim) != Some(x.len()) || head_dim == 0 {
        return Err(Error::shape(
            "token (heads × head_dim)",
            format!("{n_heads} × {head_dim}"),
            x.len(),
        ));
    }
    for head in x.chunks_exact_mut(head_dim) {
        apply_rotary(head, cos, sin, layout)?;
    }
    Ok(())
}

/// Rotates a `(seq, heads, head_dim)` buffer of queries or keys in place, token `t` at
/// `positions[t]`. Positions are explicit per token: offsets, left padding and gaps are all fine.
pub fn apply_rotary_seq(
    x: &mut [f32],
    n_heads: usize,
    head_dim: usize,
    positions: &[u64],
    freqs: &RopeFrequencies,
    layout: RopeLayout,
) -> Result<()> {
    let token = n_heads
        .checked_mul(head_dim)
        .filter(|&t| t > 0)
        .ok_or_else(|| Error::invalid("heads × head_dim", "a positive size"))?;
    if positions.len().checked_mul(token) != Some(x.len()) {
        return Err(Error::shape(
            "x (seq × heads × head_dim)",
            positions.len() * token,
            x.len(),
        ));
    }
    let pairs = freqs.pairs();
    let mut cos = vec![0.0f32; pairs];
    let mut sin = vec![0.0f32; pairs];
    for (chunk, &p) in x.chunks_exact_mut(token).zip(positions) {
        cos_sin_row(freqs, p, &mut cos, &mut sin)?;
        apply_rotary_heads(chunk, n_heads, head_dim, &cos, &sin, layout)?;
    }
    Ok(())
}

/// Hugging Face's dynamic-NTK update rule, as a small state machine.
///
/// HF recomputes `inv_freq` when a forward pass sees a longer sequence than any before
/// (`seq_len > max_seq_len_cached`), and resets to the original frequencies when the sequence is
/// back inside the original context after having grown past it.
#[derive(Debug, Clone)]
pub struct DynamicRope {
    params: RopeParams,
    precision: Precision,
    cached_len: usize,
    current: RopeFrequencies,
    original: RopeFrequencies,
}

impl DynamicRope {
    /// Starts with the frequencies at initialisation (`seq_len = None`).
    pub fn new(params: RopeParams, precision: Precision) -> Result<Self> {
        let original = params.frequencies(None, precision)?;
        Ok(DynamicRope {
            cached_len: params.max_position_embeddings,
            precision,
            current: original.clone(),
            original,
            params,
        })
    }

    /// Updates for a forward pass whose largest position id is `max_position` and returns the
    /// frequencies to use. `seq_len = max_position + 1`, as in HF.
    pub fn update(&mut self, max_position: u64) -> Result<&RopeFrequencies> {
        let seq_len = usize::try_from(max_position.saturating_add(1)).unwrap_or(usize::MAX);
        let original_len = self.params.max_position_embeddings;
        if seq_len > self.cached_len {
            self.current = self.params.frequencies(Some(seq_len), self.precision)?;
            self.cached_len = seq_len;
        }
        if seq_len < original_len && self.cached_len > original_len {
            self.current = self.original.clone();
            self.cached_len = original_len;
        }
        Ok(&self.current)
    }

    /// The frequencies in force now.
    pub fn current(&self) -> &RopeFrequencies {
        &self.current
    }
}
