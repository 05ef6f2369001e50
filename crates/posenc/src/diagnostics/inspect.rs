//! The `posenc inspect` report: what a `config.json`'s RoPE does, layer type by layer type,
//! as typed data ([`InspectReport`]) with a text rendering ([`InspectReport::to_text`]). The CLI
//! prints it and the explorer's server sends it; neither computes anything of its own.

use std::fmt::Write;

use serde::Serialize;

use super::{frequency_criterion, men_base_lower_bound, pair_report, Band, PairReport};
use crate::config::{Lint, ModelConfig};
use crate::rope::{
    deepseek_softmax_scale_correction, llama3_wavelength_bounds, yarn_correction_range,
    ContextSource, Precision, RopeParams, RopeScaling,
};
use crate::{Error, Result};

/// Cosines (`context × pairs`) one layer's base-bound checks may evaluate by default: about a
/// second of one core. Llama 3.1's 131072 tokens × 64 pairs fit; a head of 32768 dims is checked
/// over a shorter context and the report says so.
pub const DEFAULT_WORK_BUDGET: usize = 1 << 23;

/// What [`InspectReport::new`] should analyse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InspectOptions {
    /// Training context to use instead of the config's (`--original`).
    pub original: Option<usize>,
    /// Target context to use instead of the config's (`--context`).
    pub context: Option<usize>,
    /// Largest `context × pairs` the Men et al. checks may cost per layer; larger contexts are
    /// checked up to `budget / pairs` positions and the base bound is not searched.
    pub work_budget: usize,
}

impl Default for InspectOptions {
    fn default() -> Self {
        InspectOptions {
            original: None,
            context: None,
            work_budget: DEFAULT_WORK_BUDGET,
        }
    }
}

/// Where a scaling moves its pairs: YaRN's ramp or Llama 3's wavelength bands.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ScalingBands {
    /// YaRN: pairs below `extrapolated_below_pair` keep their frequency, pairs from
    /// `interpolated_from_pair` on are divided by the factor, a ramp blends between.
    Yarn {
        /// Lower end of the ramp (pair index).
        extrapolated_below_pair: f64,
        /// Upper end of the ramp (pair index).
        interpolated_from_pair: f64,
        /// Scaling factor.
        factor: f64,
        /// `beta_fast`.
        beta_fast: f64,
        /// `beta_slow`.
        beta_slow: f64,
        /// Whether the ramp ends are rounded to whole pairs.
        truncate: bool,
        /// DeepSeek's `mscale`.
        mscale: Option<f64>,
        /// DeepSeek's `mscale_all_dim`.
        mscale_all_dim: Option<f64>,
        /// DeepSeek's extra softmax-scale factor `mscale(factor, mscale_all_dim)²`.
        deepseek_softmax_scale_correction: Option<f64>,
    },
    /// Llama 3: wavelengths above `low_freq_wavelen` are divided by the factor, below
    /// `high_freq_wavelen` kept, blended between.
    Llama3 {
        /// `original / low_freq_factor`.
        low_freq_wavelen: f64,
        /// `original / high_freq_factor`.
        high_freq_wavelen: f64,
        /// Scaling factor.
        factor: f64,
    },
}

/// The Men et al. (2024) checks of one layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaseBoundReport {
    /// The criterion, in words.
    pub criterion: &'static str,
    /// The layer's base.
    pub base: f64,
    /// Positions the unscaled check covered (`m < this`).
    pub unscaled_checked_up_to: usize,
    /// Whether the unscaled frequencies satisfy the criterion over them.
    pub unscaled_base_holds_for_original: bool,
    /// First violation of the unscaled frequencies.
    pub unscaled_first_violation: Option<usize>,
    /// Positions the scaled check covered.
    pub scaled_checked_up_to: usize,
    /// Whether the frequencies in use satisfy the criterion over them.
    pub scaled_frequencies_hold_for_extended: bool,
    /// First violation of the frequencies in use.
    pub scaled_first_violation: Option<usize>,
    /// The smallest base satisfying the criterion over the target context, when searched.
    pub lower_bound_for_extended: Option<f64>,
    /// Why the bound was not computed, when it was not.
    pub lower_bound_note: Option<String>,
}

/// The analysis of one layer type.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerReport {
    /// `all`, `full_attention`, `sliding_attention`, ...
    pub layer_type: String,
    /// HF's `rope_type`.
    pub rope_type: String,
    /// The parameters posenc read.
    pub params: RopeParams,
    /// HF's `dim` (rotated width; an odd partial width rotates one more).
    pub rotary_dim: usize,
    /// Factor on cos and sin.
    pub attention_factor: f64,
    /// The sequence length the frequencies were computed for (dynamic NTK and LongRoPE).
    pub frequencies_at_seq_len: Option<usize>,
    /// Training context.
    pub original_context: usize,
    /// Where it comes from.
    pub original_context_from: ContextSource,
    /// Target context.
    pub extended_context: usize,
    /// Where it comes from.
    pub extended_context_from: ContextSource,
    /// The layer's attention window, if it has one.
    pub sliding_window: Option<usize>,
    /// `min(window, training context)`: what the analysis uses.
    pub effective_original_context: usize,
    /// `min(window, target context)`.
    pub effective_extended_context: usize,
    /// Every pair.
    pub pairs: Vec<PairReport>,
    /// Pairs completing no turn inside the training window.
    pub pairs_incomplete_in_original: Vec<usize>,
    /// Pairs completing no turn inside the target window after scaling.
    pub pairs_incomplete_in_extended: Vec<usize>,
    /// Pairs divided by the full factor.
    pub pairs_interpolated: Vec<usize>,
    /// Pairs in a blended band.
    pub pairs_blended: Vec<usize>,
    /// Pairs otherwise rescaled (NTK, LongRoPE).
    pub pairs_rescaled: Vec<usize>,
    /// The scaling's bands, for YaRN and Llama 3.
    pub bands: Option<ScalingBands>,
    /// The base-bound checks.
    pub base_bound: BaseBoundReport,
}

/// The whole report of one config.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InspectReport {
    /// `model_type`, when the config names one.
    pub model_type: Option<String>,
    /// Head size.
    pub head_dim: usize,
    /// `num_attention_heads`.
    pub num_attention_heads: Option<usize>,
    /// `num_key_value_heads`.
    pub num_key_value_heads: Option<usize>,
    /// `max_position_embeddings`.
    pub max_position_embeddings: usize,
    /// The pre-training context a scaling names.
    pub original_max_position_embeddings: Option<usize>,
    /// The sliding window, when some layer uses it.
    pub sliding_window: Option<usize>,
    /// Values taken from the model type's defaults rather than the file: key → source.
    pub defaults: std::collections::BTreeMap<String, String>,
    /// One entry per layer type.
    pub layers: Vec<LayerReport>,
    /// The lints as text (`key: message (origin)`).
    pub warnings: Vec<String>,
    /// The lints as data.
    pub lints: Vec<Lint>,
}

impl InspectReport {
    /// Analyses every layer type of `cfg`. Work is bounded by `options.work_budget` per layer.
    pub fn new(cfg: &ModelConfig, options: InspectOptions) -> Result<InspectReport> {
        let layers = cfg
            .layers
            .iter()
            .map(|l| layer_report(&l.layer_type, &l.params, l.sliding_window, options))
            .collect::<Result<Vec<_>>>()?;
        Ok(InspectReport {
            model_type: cfg.model_type.clone(),
            head_dim: cfg.head_dim,
            num_attention_heads: cfg.num_attention_heads,
            num_key_value_heads: cfg.num_key_value_heads,
            max_position_embeddings: cfg.max_position_embeddings,
            original_max_position_embeddings: cfg.original_max_position_embeddings,
            sliding_window: cfg.sliding_window,
            defaults: cfg.defaults.clone(),
            layers,
            warnings: cfg.warnings.iter().map(ToString::to_string).collect(),
            lints: cfg.warnings.clone(),
        })
    }

    /// The layer [`ModelConfig::params`] picks: `full_attention`, else the first.
    pub fn main_layer(&self) -> Option<&LayerReport> {
        self.layers
            .iter()
            .find(|l| l.layer_type == "full_attention")
            .or_else(|| self.layers.first())
    }

    /// The readable report `posenc inspect` prints (the explorer shows it too).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let w = &mut out;
        let opt = |v: Option<usize>| v.map_or("?".to_string(), |v| v.to_string());
        let _ = writeln!(
            w,
            "model_type {}, head_dim {}, heads {} (kv {}), max_position_embeddings {} (original {})",
            self.model_type.as_deref().unwrap_or("?"),
            self.head_dim,
            opt(self.num_attention_heads),
            opt(self.num_key_value_heads.or(self.num_attention_heads)),
            self.max_position_embeddings,
            self.original_max_position_embeddings
                .map_or("not given".to_string(), |v| v.to_string()),
        );
        if !self.defaults.is_empty() {
            let list: Vec<String> = self
                .defaults
                .iter()
                .map(|(k, v)| format!("{k} ({v})"))
                .collect();
            let _ = writeln!(w, "from the model type's defaults: {}", list.join(", "));
        }
        for l in &self.layers {
            layer_text(w, l);
        }
        if !self.warnings.is_empty() {
            let _ = writeln!(w);
        }
        for warning in &self.warnings {
            let _ = writeln!(w, "warning: {warning}");
        }
        out
    }
}

fn layer_report(
    layer_type: &str,
    p: &RopeParams,
    sliding_window: Option<usize>,
    options: InspectOptions,
) -> Result<LayerReport> {
    let ctx = p.contexts();
    let (original, original_from) = match options.original {
        Some(o) => (o, ContextSource::Override),
        None => (ctx.training, ctx.training_from),
    };
    // With a training context overridden, the target follows it unless given too.
    let (extended, extended_from) = match (options.context, options.original) {
        (Some(e), _) => (e, ContextSource::Override),
        (None, Some(o)) => match p.factor().filter(|f| f.is_finite() && *f > 1.0) {
            Some(f) if (o as f64 * f) as usize > p.max_position_embeddings => (
                (o as f64 * f).round().min(usize::MAX as f64 / 2.0) as usize,
                ContextSource::TrainingTimesFactor,
            ),
            _ => (
                p.max_position_embeddings,
                ContextSource::MaxPositionEmbeddings,
            ),
        },
        (None, None) => (ctx.target, ctx.target_from),
    };
    if original == 0 || extended == 0 {
        return Err(Error::invalid(
            "context",
            "positive training and target contexts (--original / --context)",
        ));
    }
    let seq_for_freqs = match p.scaling {
        // Report what the model uses at the target length.
        RopeScaling::Dynamic { .. } | RopeScaling::LongRope(_) => Some(extended),
        _ => None,
    };
    let freqs = p.frequencies(seq_for_freqs, Precision::Exact)?;
    // A sliding layer never sees a relative distance >= its window: the wavelength / turn
    // analysis and the base bound use min(window, context). The frequencies stay those of the
    // whole sequence (dynamic NTK and LongRoPE follow its length, not the window).
    let (eff_original, eff_extended) = match sliding_window {
        Some(w) => (original.min(w), extended.min(w)),
        None => (original, extended),
    };
    let pairs = pair_report(p, eff_original, eff_extended, seq_for_freqs)?;
    let select = |keep: &dyn Fn(&PairReport) -> bool| -> Vec<usize> {
        pairs.iter().filter(|r| keep(r)).map(|r| r.pair).collect()
    };
    let bands = match &p.scaling {
        RopeScaling::Yarn(y) => {
            let (low, high) = yarn_correction_range(y, p.rotary_dim, p.base);
            Some(ScalingBands::Yarn {
                extrapolated_below_pair: low,
                interpolated_from_pair: high,
                factor: y.factor,
                beta_fast: y.beta_fast,
                beta_slow: y.beta_slow,
                truncate: y.truncate,
                mscale: y.mscale,
                mscale_all_dim: y.mscale_all_dim,
                deepseek_softmax_scale_correction: y
                    .mscale_all_dim
                    .map(|m| deepseek_softmax_scale_correction(y.factor, m)),
            })
        }
        RopeScaling::Llama3(l3) => {
            let (low, high) = llama3_wavelength_bounds(l3);
            Some(ScalingBands::Llama3 {
                low_freq_wavelen: low,
                high_freq_wavelen: high,
                factor: l3.factor,
            })
        }
        _ => None,
    };
    let base_bound = base_bound(
        p,
        &pairs,
        &freqs.inv_freq,
        eff_original,
        eff_extended,
        options,
    )?;
    Ok(LayerReport {
        layer_type: layer_type.to_string(),
        rope_type: freqs.rope_type.clone(),
        params: p.clone(),
        rotary_dim: p.rotary_dim,
        attention_factor: freqs.attention_factor,
        frequencies_at_seq_len: seq_for_freqs,
        original_context: original,
        original_context_from: original_from,
        extended_context: extended,
        extended_context_from: extended_from,
        sliding_window,
        effective_original_context: eff_original,
        effective_extended_context: eff_extended,
        pairs_incomplete_in_original: select(&|r| r.incomplete_in_original),
        pairs_incomplete_in_extended: select(&|r| r.incomplete_in_extended),
        pairs_interpolated: select(&|r| r.band == Band::Interpolated),
        pairs_blended: select(&|r| r.band == Band::Blended),
        pairs_rescaled: select(&|r| r.band == Band::Rescaled),
        pairs,
        bands,
        base_bound,
    })
}

/// Men et al.: the unscaled base against the training context, the frequencies in use against
/// the target one, and the smallest base that would do for the target, all within the budget.
fn base_bound(
    p: &RopeParams,
    pairs: &[PairReport],
    in_use: &[f64],
    eff_original: usize,
    eff_extended: usize,
    options: InspectOptions,
) -> Result<BaseBoundReport> {
    let cap = (options.work_budget / pairs.len().max(1)).clamp(1, super::MAX_CRITERION_LEN);
    // The unscaled frequencies as the model has them (proportional RoPE keeps its frozen pairs
    // at frequency 0, which add 1 each to the sum).
    let unscaled: Vec<f64> = pairs.iter().map(|r| r.inv_freq_unscaled).collect();
    let unscaled_check = frequency_criterion(&unscaled, eff_original.min(cap), true)?;
    let scaled_check = frequency_criterion(in_use, eff_extended.min(cap), true)?;
    let (bound, note) = if matches!(p.scaling, RopeScaling::Proportional { .. }) {
        (
            None,
            Some("not computed: the bound assumes every pair turns at base^(-2i/d), proportional RoPE freezes some".to_string()),
        )
    } else if eff_extended > cap {
        (
            None,
            Some(format!(
                "not computed: {eff_extended} positions × {} pairs is above the work budget of {} cosines per check",
                pairs.len(),
                options.work_budget
            )),
        )
    } else if !p.rotary_dim.is_multiple_of(2) {
        (
            None,
            Some("not computed: the bound is defined for even rotary widths".to_string()),
        )
    } else {
        let step = if eff_extended > 131_072 { 0.05 } else { 0.02 };
        match men_base_lower_bound(p.rotary_dim, eff_extended, step) {
            Ok(b) => (Some(b), None),
            Err(e) => (None, Some(e.to_string())),
        }
    };
    Ok(BaseBoundReport {
        criterion:
            "sum_i cos(m * theta_i) >= 0 for all m < L (Men et al. 2024), checked at every m",
        base: p.base,
        unscaled_checked_up_to: unscaled_check.context,
        unscaled_base_holds_for_original: unscaled_check.holds,
        unscaled_first_violation: unscaled_check.first_violation,
        scaled_checked_up_to: scaled_check.context,
        scaled_frequencies_hold_for_extended: scaled_check.holds,
        scaled_first_violation: scaled_check.first_violation,
        lower_bound_for_extended: bound,
        lower_bound_note: note,
    })
}

fn band_name(b: Band) -> &'static str {
    match b {
        Band::Unchanged => "unchanged",
        Band::Interpolated => "interpolated",
        Band::Blended => "blended",
        Band::Rescaled => "rescaled",
    }
}

fn layer_text(w: &mut String, l: &LayerReport) {
    let original = l.effective_original_context;
    let extended = l.effective_extended_context;
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "[{}] rope_type {}  base {}  rotary_dim {}  attention_factor {}",
        l.layer_type, l.rope_type, l.params.base, l.rotary_dim, l.attention_factor
    );
    let _ = writeln!(
        w,
        "  training context {} (from {}), target context {} (from {}); override with --original / --context",
        l.original_context,
        l.original_context_from.name(),
        l.extended_context,
        l.extended_context_from.name(),
    );
    if let Some(window) = l.sliding_window {
        if extended != l.extended_context || original != l.original_context {
            let _ = writeln!(
                w,
                "  sliding window {window}: relative distances stay below {window}, so this layer's effective context is {extended} (training {original}); the analysis below uses it"
            );
        } else {
            let _ = writeln!(
                w,
                "  sliding window {window}: not below the {extended}-token target context, so it limits nothing here"
            );
        }
    }
    if let Some(s) = l.frequencies_at_seq_len {
        let _ = writeln!(w, "  frequencies as used at seq_len {s}");
    }
    let _ = writeln!(
        w,
        "  pair  inv_freq      wavelength    turns/train  turns/target  interp   band"
    );
    for r in &l.pairs {
        let mut flags = Vec::new();
        if r.incomplete_in_original {
            flags.push("< 1 turn in training window");
        }
        if r.incomplete_in_extended {
            flags.push("< 1 turn in target window");
        }
        let _ = writeln!(
            w,
            "  {:>4}  {:<12.5e}  {:<12.5e}  {:<11.3}  {:<12.3}  {:<7.3}  {:<12} {}",
            r.pair,
            r.inv_freq,
            r.wavelength,
            r.turns_in_original,
            r.turns_in_extended,
            r.interpolation,
            band_name(r.band),
            flags.join(", ")
        );
    }
    let _ = writeln!(
        w,
        "  {} pairs never complete a turn inside the {original}-token training window: past it their angles were never seen in training.",
        l.pairs_incomplete_in_original.len()
    );
    if !l.pairs_incomplete_in_extended.is_empty() {
        let _ = writeln!(
            w,
            "  {} pairs still complete no turn inside the {extended}-token target window after scaling.",
            l.pairs_incomplete_in_extended.len()
        );
    }
    let _ = writeln!(
        w,
        "  scaling: {} pairs interpolated, {} blended, {} rescaled, the rest unchanged.",
        l.pairs_interpolated.len(),
        l.pairs_blended.len(),
        l.pairs_rescaled.len()
    );
    match &l.bands {
        Some(ScalingBands::Yarn {
            extrapolated_below_pair,
            interpolated_from_pair,
            factor,
            beta_fast,
            beta_slow,
            truncate,
            deepseek_softmax_scale_correction,
            ..
        }) => {
            let _ = writeln!(
                w,
                "  YaRN bands (beta_fast {beta_fast}, beta_slow {beta_slow}, truncate {truncate}): pairs below {extrapolated_below_pair} keep their frequency (extrapolated), pairs from {interpolated_from_pair} on are divided by the factor {factor} (interpolated), a linear ramp blends those between."
            );
            if let Some(c) = deepseek_softmax_scale_correction {
                let _ = writeln!(
                    w,
                    "  DeepSeek softmax-scale correction mscale(factor, mscale_all_dim)^2 = {c} (applied to 1/sqrt(d) in attention, on top of the attention factor)."
                );
            }
        }
        Some(ScalingBands::Llama3 {
            low_freq_wavelen,
            high_freq_wavelen,
            factor,
        }) => {
            let _ = writeln!(
                w,
                "  Llama 3 bands: wavelengths below {high_freq_wavelen} positions are kept, above {low_freq_wavelen} divided by the factor {factor}, in between smoothly blended."
            );
        }
        None => {}
    }
    let b = &l.base_bound;
    let verdict = |holds: bool, first: Option<usize>, upto: usize, full: usize| {
        if !holds {
            format!(
                "fails first at m = {}",
                first.map_or("?".into(), |m| m.to_string())
            )
        } else if upto == full {
            "holds".to_string()
        } else {
            format!("holds for every m < {upto} (not checked further)")
        }
    };
    let _ = writeln!(
        w,
        "  base bound (Men et al. 2024, sum_i cos(m θ_i) >= 0 for every m < L, checked at every m):"
    );
    let _ = writeln!(
        w,
        "    unscaled base {} over the {original}-token training context: {}",
        b.base,
        verdict(
            b.unscaled_base_holds_for_original,
            b.unscaled_first_violation,
            b.unscaled_checked_up_to,
            original
        )
    );
    let _ = writeln!(
        w,
        "    frequencies in use over the {extended}-token target context: {}",
        verdict(
            b.scaled_frequencies_hold_for_extended,
            b.scaled_first_violation,
            b.scaled_checked_up_to,
            extended
        )
    );
    let _ = writeln!(
        w,
        "    smallest base that satisfies it for {extended} tokens: {}",
        match (b.lower_bound_for_extended, &b.lower_bound_note) {
            (Some(v), _) => format!("{v:.3e}"),
            (None, Some(note)) => note.clone(),
            (None, None) => "none found".to_string(),
        }
    );
}
