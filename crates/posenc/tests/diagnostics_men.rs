//! The base lower bound against the values Men et al. (2024, "Base of RoPE Bounds Context
//! Length", Table 1, head dimension 128) published, and the per-pair report on real configs.

use posenc::config::parse_config;
use posenc::diagnostics::{base_criterion, men_base_lower_bound, pair_report, Band};

/// The published values are approximate: checked directly, 2.7e4 fails at m = 4079 for a 4K
/// context, 3.1e5 at m = 12223 for 16K and 6.4e5 at m = 27685 for 32K, so the paper's own numbers
/// came from a coarser evaluation. Ours is the first passing base of a 2% grid, checked at every m;
/// measured ratios to the published values range from 0.76 to 1.31, hence the factor-1.5 window.
#[test]
fn lower_bound_matches_published_values() {
    // (context, published lower bound on the base)
    for (context, published) in [
        (1024usize, 4.3e3f64),
        (2048, 1.6e4),
        (4096, 2.7e4),
        (8192, 8.4e4),
        (16384, 3.1e5),
    ] {
        let ours = men_base_lower_bound(128, context, 0.02).unwrap();
        let ratio = ours / published;
        assert!(
            (1.0 / 1.5..=1.5).contains(&ratio),
            "context {context}: ours {ours:e}, published {published:e}"
        );
        // The bound itself satisfies the criterion; the grid point below it and a clearly smaller
        // base do not.
        assert!(base_criterion(ours, 128, context, false).unwrap().holds);
        assert!(
            !base_criterion(ours / 1.02, 128, context, true)
                .unwrap()
                .holds
        );
        assert!(
            !base_criterion(ours / 4.0, 128, context, true)
                .unwrap()
                .holds
        );
    }
}

#[test]
fn llama2_base_holds_for_1k_and_not_for_its_4k_context() {
    // Men et al.'s point: Llama 2's base 10000 is below the bound for its own 4K context.
    assert!(base_criterion(10_000.0, 128, 1024, false).unwrap().holds);
    let long = base_criterion(10_000.0, 128, 4096, true).unwrap();
    assert!(!long.holds && long.first_violation.is_some());
}

#[test]
fn llama3_bands_follow_wavelengths() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/fixtures/rope/llama-3.1-8b.config.json"),
    )
    .unwrap();
    let cfg = parse_config(&text).unwrap();
    let rows = pair_report(cfg.params(), 8192, 131072, None).unwrap();
    assert_eq!(rows.len(), 64);
    for r in &rows {
        let wl = std::f64::consts::TAU / r.inv_freq_unscaled;
        match r.band {
            Band::Unchanged => assert!(wl < 8192.0 / 4.0 && (r.interpolation - 1.0).abs() < 1e-12),
            Band::Interpolated => assert!(wl > 8192.0 && (r.interpolation - 8.0).abs() < 1e-9),
            Band::Blended => assert!(r.interpolation > 1.0 && r.interpolation < 8.0),
            Band::Rescaled => panic!("llama3 has no rescaled band"),
        }
        assert_eq!(r.incomplete_in_original, wl > 8192.0);
    }
    assert!(rows.iter().any(|r| r.band == Band::Blended));
}
