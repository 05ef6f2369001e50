//! The position schemes the lab trains, and the position terms each one needs, all computed by
//! posenc's scheme modules:
//!
//! | scheme | enters | from posenc | trained here |
//! |---|---|---|---|
//! | `nope` | nowhere (causal mask only) | [`posenc::nope`] | — |
//! | `learned` | added to the token embeddings | [`posenc::learned::LearnedTable::random`] initial table | the table |
//! | `sinusoidal` | added to the token embeddings | [`posenc::sinusoidal::table`] (interleaved, base 10000) | — |
//! | `rope` | rotates q and k | [`posenc::rope::RopeParams::frequencies`] + [`posenc::rope::RopeTable`] (half-split, base 10000, optional scaling) | — |
//! | `alibi` | added to the scores | [`posenc::alibi::slopes`] + [`posenc::alibi::bias`] (causal) | — |
//! | `t5` | added to the scores | [`posenc::relative::t5_bucket_matrix`] (causal, 32 buckets, max distance 128) | bias per bucket and head |
//! | `shaw` | added to the scores and the values | [`posenc::relative::shaw_index_matrix`] (clip at 16) | `a^K`, `a^V` tables shared by the heads |
//!
//! [`SchemeSetup::to_reference_scheme`] turns a trained model's position parameters back into
//! a [`posenc::attention::Scheme`], so the reference attention can check the lab's layer.

use posenc::attention::Scheme as RefScheme;
use posenc::relative::T5Buckets;
use posenc::rope::{Precision, RopeFrequencies, RopeLayout, RopeParams, RopeTable};
use posenc::sinusoidal::SinusoidalLayout;
use serde::{Deserialize, Serialize};

use crate::{LabError, Result};

/// Base of the sinusoidal and RoPE frequency ladders.
pub const BASE: f64 = 10_000.0;
/// T5 bucket count (T5's own).
pub const T5_NUM_BUCKETS: usize = 32;
/// T5 maximum distance (T5's own).
pub const T5_MAX_DISTANCE: usize = 128;
/// Shaw clipping distance `k` (Shaw et al. 2018 use 16 in their main experiments).
pub const SHAW_MAX_RELATIVE: usize = 16;

/// A position scheme of the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum SchemeKind {
    /// No position signal.
    Nope,
    /// Learned absolute table.
    Learned,
    /// Fixed sinusoidal table.
    Sinusoidal,
    /// Rotary embeddings.
    Rope,
    /// Linear distance biases.
    Alibi,
    /// T5 bucketed relative bias.
    T5,
    /// Shaw et al. relative key and value tables.
    Shaw,
}

/// Every scheme, in the order tables list them.
pub const ALL_SCHEMES: [SchemeKind; 7] = [
    SchemeKind::Nope,
    SchemeKind::Learned,
    SchemeKind::Sinusoidal,
    SchemeKind::Rope,
    SchemeKind::Alibi,
    SchemeKind::T5,
    SchemeKind::Shaw,
];

impl SchemeKind {
    /// The name used on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            SchemeKind::Nope => "nope",
            SchemeKind::Learned => "learned",
            SchemeKind::Sinusoidal => "sinusoidal",
            SchemeKind::Rope => "rope",
            SchemeKind::Alibi => "alibi",
            SchemeKind::T5 => "t5",
            SchemeKind::Shaw => "shaw",
        }
    }

    /// Parses a scheme name.
    pub fn parse(s: &str) -> Result<SchemeKind> {
        ALL_SCHEMES
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                LabError::invalid(
                    "--scheme",
                    format!("one of nope, learned, sinusoidal, rope, alibi, t5, shaw; got `{s}`"),
                )
            })
    }

    /// Where the scheme's signal enters, as posenc says.
    pub fn entry(self) -> posenc::PositionEntry {
        match self {
            SchemeKind::Nope => posenc::nope::ENTRY,
            SchemeKind::Learned => posenc::learned::ENTRY,
            SchemeKind::Sinusoidal => posenc::sinusoidal::ENTRY,
            SchemeKind::Rope => posenc::rope::ENTRY,
            SchemeKind::Alibi => posenc::alibi::ENTRY,
            SchemeKind::T5 | SchemeKind::Shaw => posenc::relative::ENTRY,
        }
    }
}

/// The T5 bucket setup of the lab (causal).
pub fn t5_buckets() -> T5Buckets {
    T5Buckets {
        bidirectional: false,
        num_buckets: T5_NUM_BUCKETS,
        max_distance: T5_MAX_DISTANCE,
    }
}

/// RoPE parameters of the lab for a head size and an optional scaling (applied to base 10000).
pub fn rope_params(
    head_dim: usize,
    scaling: Option<&posenc::rope::RopeScaling>,
    train_len: usize,
) -> Result<RopeParams> {
    let mut p = RopeParams::new(BASE, head_dim)?;
    p.max_position_embeddings = train_len;
    if let Some(s) = scaling {
        p.scaling = s.clone();
    }
    p.validate()?;
    Ok(p)
}

/// Fixed (non-trained) position terms for sequences of `len` positions, flat row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum PositionTerms {
    /// Nothing.
    None,
    /// `[len][d_model]` table to add to the embeddings.
    Additive(Vec<f32>),
    /// Half-width cos and sin rows `[len][head_dim / 2]` (attention factor applied), half-split.
    Rotary {
        /// cos rows.
        cos: Vec<f32>,
        /// sin rows.
        sin: Vec<f32>,
        /// The frequencies they came from.
        freqs: RopeFrequencies,
    },
    /// A bias `[heads][len][len]` added to the scores (ALiBi), with its slopes.
    Bias {
        /// The bias.
        bias: Vec<f32>,
        /// One slope per head.
        slopes: Vec<f64>,
    },
    /// Row indices `[len][len]` into a trained table (T5 bucket or Shaw clipped distance).
    Indices(Vec<u32>),
}

/// What a model needs to compute its position terms.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemeSetup {
    /// The scheme.
    pub kind: SchemeKind,
    /// Model width.
    pub d_model: usize,
    /// Attention heads.
    pub heads: usize,
    /// Training length (RoPE scalings read it as the original context).
    pub train_len: usize,
    /// RoPE scaling, if any.
    pub rope_scaling: Option<posenc::rope::RopeScaling>,
}

impl SchemeSetup {
    /// Size of one head.
    pub fn head_dim(&self) -> usize {
        self.d_model / self.heads
    }

    /// The fixed position terms for `len` positions (`0 .. len`), from posenc.
    pub fn terms(&self, len: usize) -> Result<PositionTerms> {
        let to_u32 = |v: Vec<usize>| v.into_iter().map(|i| i as u32).collect::<Vec<u32>>();
        Ok(match self.kind {
            SchemeKind::Nope | SchemeKind::Learned => PositionTerms::None,
            SchemeKind::Sinusoidal => PositionTerms::Additive(posenc::sinusoidal::table(
                len,
                self.d_model,
                BASE,
                SinusoidalLayout::Interleaved,
            )?),
            SchemeKind::Rope => {
                let params =
                    rope_params(self.head_dim(), self.rope_scaling.as_ref(), self.train_len)?;
                // Dynamic NTK and LongRoPE depend on the sequence length; the others ignore it.
                let freqs = params.frequencies(Some(len), Precision::Exact)?;
                let table = RopeTable::range(&freqs, len)?;
                PositionTerms::Rotary {
                    cos: table.cos,
                    sin: table.sin,
                    freqs,
                }
            }
            SchemeKind::Alibi => {
                let slopes = posenc::alibi::slopes(self.heads)?;
                let bias = posenc::alibi::bias(&slopes, len, len, 0, false)?;
                PositionTerms::Bias { bias, slopes }
            }
            SchemeKind::T5 => PositionTerms::Indices(to_u32(posenc::relative::t5_bucket_matrix(
                len,
                len,
                0,
                &t5_buckets(),
            )?)),
            SchemeKind::Shaw => PositionTerms::Indices(to_u32(
                posenc::relative::shaw_index_matrix(len, len, SHAW_MAX_RELATIVE)?,
            )),
        })
    }

    /// The posenc reference scheme with this model's trained position parameters: `learned`
    /// the table `[max_len][d_model]`, `t5` the bias table `[num_buckets][heads]`, `shaw` the
    /// `a^K` and `a^V` tables `[2k + 1][head_dim]` (others ignore `trained`).
    pub fn to_reference_scheme(&self, len: usize, trained: &[Vec<f32>]) -> Result<RefScheme> {
        let need = |i: usize| -> Result<Vec<f32>> {
            trained.get(i).cloned().ok_or_else(|| {
                LabError::invalid(
                    "trained",
                    format!("{} tables for {}", i + 1, self.kind.name()),
                )
            })
        };
        Ok(match self.kind {
            SchemeKind::Nope => RefScheme::NoPe,
            SchemeKind::Sinusoidal => RefScheme::Sinusoidal {
                layout: SinusoidalLayout::Interleaved,
                base: BASE,
            },
            SchemeKind::Learned => {
                let table = need(0)?;
                let rows = table.len() / self.d_model;
                RefScheme::Learned(posenc::learned::LearnedTable::new(
                    rows,
                    self.d_model,
                    table,
                )?)
            }
            SchemeKind::Rope => {
                let params =
                    rope_params(self.head_dim(), self.rope_scaling.as_ref(), self.train_len)?;
                RefScheme::Rope {
                    freqs: params.frequencies(Some(len), Precision::Exact)?,
                    layout: RopeLayout::HalfSplit,
                }
            }
            SchemeKind::Alibi => RefScheme::Alibi {
                slopes: posenc::alibi::slopes(self.heads)?,
                symmetric: false,
            },
            SchemeKind::T5 => RefScheme::T5 {
                bias_table: need(0)?,
                buckets: t5_buckets(),
            },
            SchemeKind::Shaw => RefScheme::Shaw {
                rel_k: need(0)?,
                rel_v: need(1)?,
                max_relative_position: SHAW_MAX_RELATIVE,
            },
        })
    }
}
