//! `posenc advise`: a position scheme and scaling for a training and a target length, with
//! reasons and the diagnostics to run before trusting it.
//!
//! The numbers come from the library: the Men et al. base lower bound for the target length
//! (`posenc::diagnostics::men_base_lower_bound`, for the request's head size, 128 unless told),
//! whether base 10000 and the YaRN-scaled frequencies satisfy its criterion there, YaRN's
//! attention factor, and ALiBi's 1% window for 32 heads. The recommendation itself is a set of
//! rules stated in the reasons.

use posenc::diagnostics::{
    base_criterion, frequency_criterion, men_base_lower_bound, MAX_CRITERION_LEN,
};
use posenc::rope::{yarn_attention_factor, Precision, RopeParams, RopeScaling, YarnParams};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{LearnError, LearnErrorKind, LearnResult};

/// Head size (rotary width) of the base bound when the request does not give one: Llama,
/// Mistral and Qwen use 128.
pub const DEFAULT_HEAD_DIM: usize = 128;

/// Largest training or target length accepted.
pub const MAX_ADVISE_LEN: usize = 1 << 24;

/// Largest head size accepted.
pub const MAX_HEAD_DIM: usize = 1024;

/// Encoder (bidirectional) or decoder (causal) model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Bidirectional attention (BERT-like).
    Encoder,
    /// Causal attention (GPT-like LLM).
    Decoder,
}

/// What the advisor is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdviceRequest {
    /// Context length the model is (or will be) trained on.
    pub train_len: usize,
    /// Context length it must serve.
    pub target_len: usize,
    /// Encoder or decoder.
    pub arch: Arch,
    /// Whether generation uses a KV cache.
    pub kv_cache: bool,
    /// Whether the workload retrieves facts from far back in the context.
    pub retrieval: bool,
    /// Head size (rotary width) the base bound is computed for.
    #[serde(default = "default_head_dim")]
    pub head_dim: usize,
}

fn default_head_dim() -> usize {
    DEFAULT_HEAD_DIM
}

/// The value of a [`Fact`]: a number, or a yes/no.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FactValue {
    /// A yes/no answer (printed as a word).
    Flag(bool),
    /// A number.
    Number(f64),
}

impl std::fmt::Display for FactValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FactValue::Flag(true) => f.write_str("yes"),
            FactValue::Flag(false) => f.write_str("no"),
            FactValue::Number(x) if *x == 0.0 => f.write_str("0"),
            FactValue::Number(x) if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e12 => {
                write!(f, "{x:.0}")
            }
            FactValue::Number(x) if x.abs() >= 1e5 || x.abs() < 1e-3 => write!(f, "{x:.4e}"),
            FactValue::Number(x) => write!(f, "{x:.6}"),
        }
    }
}

/// A named number or yes/no computed by posenc for the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fact {
    /// What it is.
    pub name: String,
    /// Its value.
    pub value: FactValue,
}

/// A recommended RoPE scaling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalingAdvice {
    /// Hugging Face `rope_type`.
    pub method: String,
    /// Extension factor: target / train.
    pub factor: f64,
    /// The training length.
    pub original_max_position_embeddings: usize,
    /// The attention factor the scaling multiplies cos and sin by (posenc::rope).
    pub attention_factor: f64,
    /// The `config.json` entries to set.
    pub config: serde_json::Value,
}

/// One reason behind the advice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    /// `extrapolation`, `cost`, `cache`, `retrieval` or `base`.
    pub topic: String,
    /// The reason.
    pub text: String,
}

/// A check to run before trusting the setup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// The command.
    pub command: String,
    /// What it shows.
    pub why: String,
}

/// The advisor's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Advice {
    /// The question.
    pub request: AdviceRequest,
    /// Recommended scheme: `rope`.
    pub scheme: String,
    /// One sentence.
    pub summary: String,
    /// Recommended scaling, if the target exceeds the training length.
    pub scaling: Option<ScalingAdvice>,
    /// Schemes considered and not recommended, with why.
    pub not_recommended: Vec<Reason>,
    /// Why.
    pub reasons: Vec<Reason>,
    /// What to run before trusting it.
    pub diagnostics: Vec<Diagnostic>,
    /// Numbers and yes/no answers computed by posenc for this request.
    pub facts: Vec<Fact>,
}

fn reason(topic: &str, text: String) -> Reason {
    Reason {
        topic: topic.into(),
        text,
    }
}

fn fact(name: String, value: f64) -> Fact {
    Fact {
        name,
        value: FactValue::Number(value),
    }
}

fn flag(name: String, value: bool) -> Fact {
    Fact {
        name,
        value: FactValue::Flag(value),
    }
}

/// Recommends a scheme and scaling for `req`.
///
/// Errors: [`LearnErrorKind::InvalidRequest`] for a zero length or one above [`MAX_ADVISE_LEN`],
/// or a head size that is odd, below 2 or above [`MAX_HEAD_DIM`].
pub fn advise(req: &AdviceRequest) -> LearnResult<Advice> {
    for (name, v) in [("train-len", req.train_len), ("target-len", req.target_len)] {
        if v == 0 || v > MAX_ADVISE_LEN {
            return Err(LearnError::new(
                LearnErrorKind::InvalidRequest,
                format!("invalid --{name}: expected 1..={MAX_ADVISE_LEN} tokens, got {v}"),
            ));
        }
    }
    let head_dim = req.head_dim;
    if !(2..=MAX_HEAD_DIM).contains(&head_dim) || !head_dim.is_multiple_of(2) {
        return Err(LearnError::new(
            LearnErrorKind::InvalidRequest,
            format!(
                "invalid --head-dim: expected an even size in 2..={MAX_HEAD_DIM}, got {head_dim}"
            ),
        ));
    }
    let (train, target) = (req.train_len, req.target_len);
    let factor = target as f64 / train as f64;
    let extend = target > train;
    let mut reasons = Vec::new();
    let mut not_recommended = Vec::new();
    let mut facts = Vec::new();
    let mut diagnostics = vec![Diagnostic {
        command: "posenc inspect config.json".into(),
        why: "reads the RoPE settings as Hugging Face will, lints them, and checks the base bound \
              for the advertised context"
            .into(),
    }];

    facts.push(fact(
        "head size assumed (--head-dim)".into(),
        head_dim as f64,
    ));
    // The base bound for the target length (Men et al. 2024) at the request's head size.
    let base_ok = if target <= MAX_CRITERION_LEN {
        let bound = men_base_lower_bound(head_dim, target, 0.02)?;
        let c = base_criterion(10_000.0, head_dim, target, true)?;
        facts.push(fact(
            format!("Men et al. base lower bound for {target} tokens (head size {head_dim})"),
            bound,
        ));
        facts.push(flag(
            format!("base 10000 satisfies the criterion up to {target} tokens"),
            c.holds,
        ));
        if let Some(m) = c.first_violation {
            facts.push(fact(
                "first violating distance for base 10000".into(),
                m as f64,
            ));
        }
        reasons.push(reason(
            "base",
            format!(
                "Men et al.: a RoPE model can only tell near from far tokens up to L if sum_i \
                 cos(m theta_i) >= 0 for all m < L. For {target} tokens and head size {head_dim} \
                 that needs a base of at least {bound:.3e}{}. Training from scratch: pick \
                 rope_theta above it.",
                if c.holds {
                    "; the classic 10000 already satisfies it"
                } else {
                    "; the classic 10000 does not"
                }
            ),
        ));
        Some(c.holds)
    } else {
        reasons.push(reason(
            "base",
            format!(
                "The base bound is not evaluated past {MAX_CRITERION_LEN} tokens (cost); use a \
                 large rope_theta and verify with `posenc inspect`."
            ),
        ));
        None
    };

    let scaling = if extend {
        let y = YarnParams::new(factor, train);
        let attention_factor = yarn_attention_factor(&y);
        let params = RopeParams {
            max_position_embeddings: target,
            scaling: RopeScaling::Yarn(y),
            ..RopeParams::new(10_000.0, head_dim)?
        };
        let scaled = params.frequencies(None, Precision::Exact)?;
        facts.push(fact("YaRN factor (target / train)".into(), factor));
        facts.push(fact(
            "YaRN attention factor".into(),
            scaled.attention_factor,
        ));
        if target <= MAX_CRITERION_LEN {
            let c = frequency_criterion(&scaled.inv_freq, target, true)?;
            facts.push(flag(
                format!(
                    "YaRN-scaled base-10000 frequencies satisfy the criterion up to {target} \
                     tokens"
                ),
                c.holds,
            ));
        }
        reasons.push(reason(
            "extrapolation",
            format!(
                "The target is {factor:.3}x the training length. Past {train} tokens an unscaled \
                 RoPE model meets angles its slow pairs never reached. YaRN with factor \
                 {factor:.3} interpolates those pairs, keeps the fast ones (local order intact), \
                 and multiplies cos/sin by {attention_factor:.4}; it needs a short fine-tune on \
                 long sequences. Position interpolation (linear) also works after fine-tuning \
                 but blurs nearby positions."
            ),
        ));
        if req.kv_cache {
            reasons.push(reason(
                "cache",
                "Keys are cached already rotated, so the scaling must be static: dynamic NTK \
                 changes the frequencies as the sequence grows, and keys cached earlier no longer \
                 match the new queries. Use YaRN (or linear) with a fixed factor."
                    .into(),
            ));
        }
        Some(ScalingAdvice {
            method: "yarn".into(),
            factor,
            original_max_position_embeddings: train,
            attention_factor,
            config: json!({
                "max_position_embeddings": target,
                "rope_scaling": {
                    "rope_type": "yarn",
                    "factor": factor,
                    "original_max_position_embeddings": train
                }
            }),
        })
    } else {
        reasons.push(reason(
            "extrapolation",
            format!(
                "The target ({target}) fits in the training length ({train}): no scaling; serve \
                 at most {train} tokens."
            ),
        ));
        None
    };

    // ALiBi: its decay, for a 32-head model.
    let slopes = posenc::alibi::slopes(32)?;
    let flattest = slopes.last().copied().unwrap_or(1.0);
    let window = posenc::alibi::effective_window(flattest, 0.01)?;
    facts.push(fact(
        "ALiBi, 32 heads: distance at which the flattest head keeps 1% of the weight".into(),
        window,
    ));
    if req.retrieval {
        reasons.push(reason(
            "retrieval",
            format!(
                "Retrieval needs attention to reach far back. RoPE has no built-in distance \
                 penalty; ALiBi's bias -m*d makes even its flattest head (32 heads) keep only 1% \
                 of a key's weight {window:.0} tokens back{}.",
                if window < target as f64 {
                    format!(", well inside the {target}-token target")
                } else {
                    String::new()
                }
            ),
        ));
        not_recommended.push(reason(
            "retrieval",
            format!(
                "ALiBi: runs at any length but fades far tokens (1% at {window:.0} tokens for \
                 the flattest of 32 heads); poor at retrieving from far back."
            ),
        ));
    } else if extend && req.arch == Arch::Decoder {
        not_recommended.push(reason(
            "extrapolation",
            format!(
                "ALiBi: extrapolates in perplexity without fine-tuning, but attends mostly within \
                 ~{window:.0} tokens (flattest of 32 heads at 1%); fine if long-range recall does \
                 not matter, and it needs a model trained with ALiBi."
            ),
        ));
    }
    not_recommended.push(reason(
        "extrapolation",
        if extend {
            format!(
                "Learned absolute table: has no row past {train} and cannot be scaled; it would \
                 need target x d_model new parameters and retraining."
            )
        } else {
            "Learned absolute table: workable when inputs never exceed the training length (BERT, \
             GPT-2), but costs rows x d_model parameters and cannot be extended later."
                .into()
        },
    ));
    if req.arch == Arch::Encoder {
        not_recommended.push(reason(
            "extrapolation",
            "T5 relative buckets: fine for encoders and length-robust, but far distances share \
             one bucket and the bias needs a per-head table lookup on every score."
                .into(),
        ));
    }
    reasons.push(reason(
        "cost",
        "RoPE has no parameters and costs one rotation of q and k per layer, negligible next to \
         attention; it works with fused attention kernels (no score bias to add)."
            .into(),
    ));
    if req.kv_cache {
        reasons.push(reason(
            "cache",
            "With a KV cache, each new token's position id must continue from the tokens already \
             cached (cumsum of the attention mask with left padding); wrong ids give silently \
             wrong outputs."
                .into(),
        ));
        diagnostics.push(Diagnostic {
            command: "posenc probe --url http://HOST:PORT --checks decode-consistency".into(),
            why: "on your own server: greedy decode through its KV cache against a fresh prefill \
                  of the same tokens; a disagreement means wrong decode positions or cache \
                  handling"
                .into(),
        });
    }
    let (lengths, note) = if extend {
        (
            format!("{},{},{}", (train / 2).max(1), train, target),
            "retrieval should hold up to the target with the scaling and fail past the training \
             length without it",
        )
    } else {
        (
            format!("{},{}", (target / 2).max(1), target),
            "retrieval should hold at every length and depth up to the target",
        )
    };
    diagnostics.push(Diagnostic {
        command: "posenc probe --url http://HOST:PORT --checks passkey".into(),
        why: format!(
            "passkey retrieval on your own model, through its server, at lengths {} and depths \
             0, 0.5, 1: {note}. (`posenc model passkey` runs the same test on SmolLM2-135M only: \
             it shows what the failure looks like, it does not check your config.)",
            lengths.replace(',', ", ")
        ),
    });
    diagnostics.push(Diagnostic {
        command: format!(
            "posenc rope --config config.json --positions 0,{},{}",
            train - 1,
            target - 1
        ),
        why: "the cos/sin rows at the edges of the training and target windows, as the model \
              will use them"
            .into(),
    });
    let arch = match req.arch {
        Arch::Encoder => "encoder",
        Arch::Decoder => "decoder",
    };
    let summary = match (&scaling, base_ok) {
        (Some(s), _) => format!(
            "RoPE for this {arch}, with YaRN factor {:.3} (original {train}) to reach {target} \
             tokens.",
            s.factor
        ),
        (None, Some(false)) => format!(
            "RoPE for this {arch}, no scaling, with rope_theta above the Men et al. bound (10000 \
             is too small for {target} tokens)."
        ),
        (None, _) => format!("RoPE for this {arch}, no scaling needed up to {target} tokens."),
    };
    Ok(Advice {
        request: *req,
        scheme: "rope".into(),
        summary,
        scaling,
        not_recommended,
        reasons,
        diagnostics,
        facts,
    })
}
