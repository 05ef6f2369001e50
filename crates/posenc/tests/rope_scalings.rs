//! RoPE scalings without HF fixtures (static NTK, proportional), the dynamic-NTK update rule,
//! layouts, partial rotary and the inverse rotation, each against an independent formula.

use posenc::config::parse_config;
use posenc::rope::*;
use proptest::prelude::*;

fn params(base: f64, head_dim: usize, rotary_dim: usize, scaling: RopeScaling) -> RopeParams {
    RopeParams {
        base,
        head_dim,
        rotary_dim,
        max_position_embeddings: 4096,
        scaling,
    }
}

fn default_freqs(base: f64, d: usize) -> Vec<f64> {
    (0..d / 2)
        .map(|i| base.powf(-((2 * i) as f64) / d as f64))
        .collect()
}

fn close(a: &[f64], b: &[f64], rel: f64) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= rel * y.abs().max(1e-300), "{x} vs {y}");
    }
}

#[test]
fn linear_and_static_ntk() {
    let lin = params(10_000.0, 64, 64, RopeScaling::Linear { factor: 4.0 })
        .frequencies(None, Precision::Exact)
        .unwrap();
    close(
        &lin.inv_freq,
        &default_freqs(10_000.0, 64)
            .iter()
            .map(|f| f / 4.0)
            .collect::<Vec<_>>(),
        1e-15,
    );
    let ntk = params(10_000.0, 64, 64, RopeScaling::Ntk { factor: 4.0 })
        .frequencies(None, Precision::Exact)
        .unwrap();
    close(
        &ntk.inv_freq,
        &default_freqs(10_000.0 * 4f64.powf(64.0 / 62.0), 64),
        1e-13,
    );
    // NTK keeps the highest frequency and divides the lowest by exactly the factor.
    assert_eq!(ntk.inv_freq[0], 1.0);
    let last = ntk.inv_freq[31] / default_freqs(10_000.0, 64)[31];
    assert!((last - 0.25).abs() < 1e-12, "{last}");
}

#[test]
fn proportional_rope_from_config() {
    let cfg = parse_config(
        r#"{"head_dim": 256, "hidden_size": 2048, "num_attention_heads": 8, "max_position_embeddings": 131072,
            "rope_parameters": {"rope_type": "proportional", "rope_theta": 1000000.0, "partial_rotary_factor": 0.25, "factor": 2.0}}"#,
    )
    .unwrap();
    let p = cfg.params();
    assert_eq!(
        p.rotary_dim, 256,
        "proportional RoPE encodes the whole head"
    );
    let f = p.frequencies(None, Precision::Exact).unwrap();
    assert_eq!(f.pairs(), 128);
    for (i, v) in f.inv_freq.iter().enumerate() {
        // int(0.25 * 256 // 2) = 32 rotating pairs with exponent 2i / head_dim, the rest frozen.
        let want = if i < 32 {
            1e6f64.powf(-((2 * i) as f64) / 256.0) / 2.0
        } else {
            0.0
        };
        assert!(
            (v - want).abs() <= 1e-15 * want.max(1e-300),
            "pair {i}: {v} vs {want}"
        );
    }
    // Frozen pairs do not move at any position.
    let mut x: Vec<f32> = (0..256).map(|i| i as f32 * 0.01 - 1.0).collect();
    let orig = x.clone();
    let (mut c, mut s) = (vec![0.0; 128], vec![0.0; 128]);
    cos_sin_row(&f, 123_456, &mut c, &mut s).unwrap();
    apply_rotary(&mut x, &c, &s, RopeLayout::HalfSplit).unwrap();
    for i in 32..128 {
        assert_eq!((x[i], x[i + 128]), (orig[i], orig[i + 128]));
    }
    let hf = p
        .frequencies(None, Precision::Hf(posenc::rope::HfCpu::Avx512))
        .unwrap();
    close(&hf.inv_freq, &f.inv_freq, 1e-6);
}

#[test]
fn dynamic_ntk_update_rule_grows_and_resets() {
    let p = params(10_000.0, 128, 128, RopeScaling::Dynamic { factor: 2.0 });
    let original = p.frequencies(None, Precision::Exact).unwrap();
    let mut dynamic = DynamicRope::new(p.clone(), Precision::Exact).unwrap();
    // Inside the original context nothing changes.
    assert_eq!(dynamic.update(100).unwrap(), &original);
    // Growth: recomputed for seq_len = max position + 1.
    let grown = dynamic.update(8191).unwrap().clone();
    assert_eq!(grown, p.frequencies(Some(8192), Precision::Exact).unwrap());
    assert_ne!(grown, original);
    // A shorter sequence still past the original context keeps the longest seen (HF caches it).
    assert_eq!(dynamic.update(5000).unwrap(), &grown);
    // Back inside the original context: reset.
    assert_eq!(dynamic.update(10).unwrap(), &original);
}

#[test]
fn partial_rotary_leaves_the_tail_untouched_and_inverse_undoes() {
    let p = params(
        10_000.0,
        80,
        32,
        RopeScaling::Yarn(YarnParams::new(4.0, 1024)),
    );
    let f = p.frequencies(None, Precision::Exact).unwrap();
    assert!(f.attention_factor > 1.0);
    for layout in [RopeLayout::HalfSplit, RopeLayout::Interleaved] {
        let orig: Vec<f32> = (0..80)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) / 3.0)
            .collect();
        let mut x = orig.clone();
        let (mut c, mut s) = (vec![0.0; 16], vec![0.0; 16]);
        cos_sin_row(&f, 77_777, &mut c, &mut s).unwrap();
        apply_rotary(&mut x, &c, &s, layout).unwrap();
        assert_eq!(
            &x[32..],
            &orig[32..],
            "dims past rotary_dim must pass through"
        );
        apply_rotary_inverse(&mut x, &c, &s, layout).unwrap();
        for (a, b) in x.iter().zip(&orig) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
}

proptest! {
    /// Interleaved RoPE on x equals half-split RoPE on the permuted vector (the permutation GGUF
    /// converters apply to Llama's q/k weights).
    #[test]
    fn layouts_are_a_permutation_of_each_other(
        x in prop::collection::vec(-10.0f32..10.0, 64),
        position in 0u64..2_000_000,
    ) {
        let f = params(500_000.0, 64, 64, RopeScaling::Default).frequencies(None, Precision::Exact).unwrap();
        let (mut c, mut s) = (vec![0.0; 32], vec![0.0; 32]);
        cos_sin_row(&f, position, &mut c, &mut s).unwrap();
        let mut inter = x.clone();
        apply_rotary(&mut inter, &c, &s, RopeLayout::Interleaved).unwrap();
        // half-split vector h with h[i] = x[2i], h[i+32] = x[2i+1]
        let mut half: Vec<f32> = (0..64).map(|j| if j < 32 { x[2 * j] } else { x[2 * (j - 32) + 1] }).collect();
        apply_rotary(&mut half, &c, &s, RopeLayout::HalfSplit).unwrap();
        for i in 0..32 {
            prop_assert_eq!(inter[2 * i], half[i]);
            prop_assert_eq!(inter[2 * i + 1], half[i + 32]);
        }
    }

    /// Tables built in one call equal rows built one by one, for any positions.
    #[test]
    fn table_rows_equal_single_rows(positions in prop::collection::vec(any::<u32>(), 1..20)) {
        let f = params(10_000.0, 32, 32, RopeScaling::Default).frequencies(None, Precision::Exact).unwrap();
        let positions: Vec<u64> = positions.into_iter().map(u64::from).collect();
        let table = RopeTable::new(&f, &positions).unwrap();
        for (r, &p) in positions.iter().enumerate() {
            let (mut c, mut s) = (vec![0.0; 16], vec![0.0; 16]);
            cos_sin_row(&f, p, &mut c, &mut s).unwrap();
            let (tc, ts) = table.row(r).unwrap();
            prop_assert_eq!(tc, &c[..]);
            prop_assert_eq!(ts, &s[..]);
        }
    }
}

#[test]
fn bad_shapes_are_errors() {
    let f = params(10_000.0, 8, 8, RopeScaling::Default)
        .frequencies(None, Precision::Exact)
        .unwrap();
    let mut x = vec![0.0f32; 6];
    let (c, s) = (vec![1.0f32; 4], vec![0.0f32; 4]);
    assert!(apply_rotary(&mut x, &c, &s, RopeLayout::HalfSplit).is_err());
    assert!(apply_rotary(&mut [0.0; 8], &c, &s[..3], RopeLayout::HalfSplit).is_err());
    assert!(apply_rotary_heads(&mut [0.0; 15], 2, 8, &c, &s, RopeLayout::HalfSplit).is_err());
    assert!(apply_rotary_seq(&mut [0.0; 16], 1, 8, &[0, 1, 2], &f, RopeLayout::HalfSplit).is_err());
    assert!(cos_sin_row(&f, 0, &mut [0.0; 3], &mut [0.0; 4]).is_err());
    assert!(RopeTable::new(&f, &vec![0; (MAX_TABLE_ENTRIES / 4 + 1) as usize]).is_err());
    for bad in [
        params(f64::NAN, 8, 8, RopeScaling::Default),
        params(10_000.0, 7, 7, RopeScaling::Default),
        params(10_000.0, 8, 10, RopeScaling::Default),
        params(10_000.0, 0, 0, RopeScaling::Default),
        params(
            10_000.0,
            8,
            8,
            RopeScaling::Linear {
                factor: f64::INFINITY,
            },
        ),
        params(10_000.0, 8, 8, RopeScaling::Dynamic { factor: -1.0 }),
        params(10_000.0, 8, 8, RopeScaling::Yarn(YarnParams::new(4.0, 0))),
    ] {
        assert!(bad.frequencies(None, Precision::Exact).is_err(), "{bad:?}");
    }
}

/// YaRN away from the fixture's defaults (non-default beta_fast / beta_slow, `truncate = false`,
/// DeepSeek's mscale pair, an explicit attention factor) against the paper's formulas written out
/// here: correction dims `d·ln(L/(2π·β)) / (2 ln base)`, clamped to [0, d-1], a linear ramp over
/// pair indices, and `θ = θ_interp·ramp + θ_extrap·(1 - ramp)`.
#[test]
fn yarn_parameters_against_the_formula() {
    let (base, d, orig) = (50_000.0f64, 96usize, 2048usize);
    for (beta_fast, beta_slow, truncate, factor) in [
        (32.0, 1.0, true, 4.0),
        (16.0, 2.0, false, 8.0),
        (64.0, 0.5, false, 40.0),
        (8.0, 1.0, true, 2.5),
    ] {
        let y = YarnParams {
            beta_fast,
            beta_slow,
            truncate,
            ..YarnParams::new(factor, orig)
        };
        let f = params(base, d, d, RopeScaling::Yarn(y.clone()))
            .frequencies(None, Precision::Exact)
            .unwrap();
        let dim = |rot: f64| {
            d as f64 * (orig as f64 / (rot * std::f64::consts::TAU)).ln() / (2.0 * base.ln())
        };
        let (mut low, mut high) = (dim(beta_fast), dim(beta_slow));
        if truncate {
            low = low.floor();
            high = high.ceil();
        }
        let low = low.max(0.0);
        let high = high.min(d as f64 - 1.0);
        for i in 0..d / 2 {
            let extrap = base.powf(-((2 * i) as f64) / d as f64);
            let ramp = ((i as f64 - low) / (high - low)).clamp(0.0, 1.0);
            let want = extrap / factor * ramp + extrap * (1.0 - ramp);
            assert!(
                (f.inv_freq[i] - want).abs() <= 1e-14 * want,
                "β {beta_fast}/{beta_slow} truncate {truncate} pair {i}: {} vs {want}",
                f.inv_freq[i]
            );
        }
        assert!((f.attention_factor - (0.1 * factor.ln() + 1.0)).abs() < 1e-15);
        // DeepSeek: both mscales set -> ratio of the two get_mscale values; explicit factor wins.
        let ds = YarnParams {
            mscale: Some(0.707),
            mscale_all_dim: Some(0.707),
            ..y.clone()
        };
        let a = params(base, d, d, RopeScaling::Yarn(ds))
            .frequencies(None, Precision::Exact)
            .unwrap();
        assert!((a.attention_factor - 1.0).abs() < 1e-15);
        let m = 0.1 * 0.707 * factor.ln() + 1.0;
        assert!((deepseek_softmax_scale_correction(factor, 0.707) - m * m).abs() < 1e-15);
        let explicit = YarnParams {
            attention_factor: Some(1.5),
            mscale: Some(1.0),
            mscale_all_dim: Some(0.5),
            ..y
        };
        let a = params(base, d, d, RopeScaling::Yarn(explicit))
            .frequencies(None, Precision::Exact)
            .unwrap();
        assert_eq!(a.attention_factor, 1.5);
    }
}
