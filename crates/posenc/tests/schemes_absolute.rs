//! Absolute schemes: sinusoidal tables and learned tables.

use posenc::learned::{self, LearnedTable};
use posenc::sinusoidal::{self, SinusoidalLayout};
use posenc::{Error, PositionEntry};
use proptest::prelude::*;

const LAYOUTS: [SinusoidalLayout; 3] = [
    SinusoidalLayout::Interleaved,
    SinusoidalLayout::Concat,
    SinusoidalLayout::Fairseq,
];

// ------------------------------------------------------------------------------------------
// sinusoidal

/// Independent closed form: `pos / base^(2i/d)` written as a division by an `exp`.
fn vaswani(pos: f64, col: usize, dim: usize, base: f64) -> f64 {
    let i = col / 2;
    let angle = pos / (base.ln() * (2 * i) as f64 / dim as f64).exp();
    if col % 2 == 1 {
        angle.cos()
    } else {
        angle.sin()
    }
}

#[test]
fn sinusoidal_entry_is_hidden_states() {
    assert_eq!(sinusoidal::ENTRY, PositionEntry::HiddenStates);
}

#[test]
fn interleaved_matches_closed_form() {
    for (dim, base) in [(8usize, 10_000.0), (64, 10_000.0), (10, 500.0)] {
        let len = 300;
        let t = sinusoidal::table(len, dim, base, SinusoidalLayout::Interleaved).unwrap();
        assert_eq!(t.len(), len * dim);
        for p in 0..len {
            for c in 0..dim {
                let want = vaswani(p as f64, c, dim, base);
                let got = f64::from(t[p * dim + c]);
                // f32 storage: half an ulp of a value <= 1 is 6e-8; angles differ by ~1e-13.
                assert!((got - want).abs() <= 1e-7, "p {p} col {c}: {got} vs {want}");
            }
        }
    }
}

#[test]
fn position_zero_is_sin0_cos0() {
    let r = sinusoidal::row(0.0, 16, 10_000.0, SinusoidalLayout::Interleaved).unwrap();
    for (c, v) in r.iter().enumerate() {
        assert_eq!(*v, if c % 2 == 0 { 0.0 } else { 1.0 });
    }
}

#[test]
fn concat_is_interleaved_with_columns_regrouped() {
    let (len, dim) = (50, 12);
    let a = sinusoidal::table(len, dim, 10_000.0, SinusoidalLayout::Interleaved).unwrap();
    let b = sinusoidal::table(len, dim, 10_000.0, SinusoidalLayout::Concat).unwrap();
    let h = dim / 2;
    for p in 0..len {
        for i in 0..h {
            assert_eq!(b[p * dim + i], a[p * dim + 2 * i]);
            assert_eq!(b[p * dim + h + i], a[p * dim + 2 * i + 1]);
        }
    }
}

#[test]
fn fairseq_matches_closed_form_and_pads_odd_dim() {
    for dim in [4usize, 9, 32, 33] {
        let h = dim / 2;
        let t = sinusoidal::table(40, dim, 10_000.0, SinusoidalLayout::Fairseq).unwrap();
        for p in 0..40 {
            for i in 0..h {
                // fairseq: emb = exp(arange(h) * -(ln(10000) / (h - 1)))
                let w = (-(i as f64) * (10_000f64.ln() / (h - 1) as f64)).exp();
                let (s, c) = ((p as f64 * w).sin(), (p as f64 * w).cos());
                assert!((f64::from(t[p * dim + i]) - s).abs() <= 1e-7);
                assert!((f64::from(t[p * dim + h + i]) - c).abs() <= 1e-7);
            }
            if dim % 2 == 1 {
                assert_eq!(t[p * dim + dim - 1], 0.0, "odd dim pads a zero column");
            }
        }
        // The last fairseq frequency is exactly 1/base.
        let f = sinusoidal::frequencies(dim, 10_000.0, SinusoidalLayout::Fairseq).unwrap();
        assert!((f[h - 1] - 1e-4).abs() < 1e-18);
        assert_eq!(f[0], 1.0);
    }
}

#[test]
fn interleaved_shift_is_a_rotation() {
    // PE(p+k) = R(k·ω) PE(p) pairwise: sin(a+b) = sin a cos b + cos a sin b, cos(a+b) = cos a cos b - sin a sin b.
    let (dim, base) = (32, 10_000.0);
    let freqs = sinusoidal::frequencies(dim, base, SinusoidalLayout::Interleaved).unwrap();
    for p in [0.0, 3.0, 17.5, 1000.0] {
        for k in [1.0, 5.0, 64.0, -7.0] {
            let a = sinusoidal::row(p, dim, base, SinusoidalLayout::Interleaved).unwrap();
            let b = sinusoidal::row(p + k, dim, base, SinusoidalLayout::Interleaved).unwrap();
            for (i, w) in freqs.iter().enumerate() {
                let (sk, ck) = (k * w).sin_cos();
                let (s, c) = (f64::from(a[2 * i]), f64::from(a[2 * i + 1]));
                let rs = s * ck + c * sk;
                let rc = c * ck - s * sk;
                // Inputs carry f32 rounding (6e-8 each), the rotation adds at most twice that.
                assert!(
                    (f64::from(b[2 * i]) - rs).abs() <= 3e-7,
                    "p {p} k {k} i {i}"
                );
                assert!(
                    (f64::from(b[2 * i + 1]) - rc).abs() <= 3e-7,
                    "p {p} k {k} i {i}"
                );
            }
        }
    }
}

#[test]
fn row_equals_table_row() {
    for layout in LAYOUTS {
        let t = sinusoidal::table(20, 10, 10_000.0, layout).unwrap();
        for p in 0..20 {
            let r = sinusoidal::row(p as f64, 10, 10_000.0, layout).unwrap();
            assert_eq!(&t[p * 10..(p + 1) * 10], &r[..]);
        }
    }
}

#[test]
fn sinusoidal_rejects_bad_parameters() {
    use SinusoidalLayout::*;
    let bad = [
        sinusoidal::row(1.0, 7, 10_000.0, Interleaved),
        sinusoidal::row(1.0, 7, 10_000.0, Concat),
        sinusoidal::row(1.0, 0, 10_000.0, Interleaved),
        sinusoidal::row(1.0, 3, 10_000.0, Fairseq),
        sinusoidal::row(1.0, 8, 1.0, Interleaved),
        sinusoidal::row(1.0, 8, -5.0, Interleaved),
        sinusoidal::row(1.0, 8, f64::NAN, Interleaved),
        sinusoidal::row(1.0, 8, f64::INFINITY, Interleaved),
        sinusoidal::row(f64::NAN, 8, 10_000.0, Interleaved),
        sinusoidal::row(f64::INFINITY, 8, 10_000.0, Interleaved),
    ];
    for r in bad {
        assert!(matches!(r, Err(Error::InvalidParameter { .. })), "{r:?}");
    }
    assert!(matches!(
        sinusoidal::table(4097, 4096, 10_000.0, Interleaved),
        Err(Error::TooLarge { .. })
    ));
    assert!(matches!(
        sinusoidal::table(usize::MAX, usize::MAX, 10_000.0, Interleaved),
        Err(Error::TooLarge { .. })
    ));
    assert_eq!(
        sinusoidal::table(4096, 4096, 10_000.0, Interleaved)
            .unwrap()
            .len(),
        1 << 24
    );
    assert!(sinusoidal::table(0, 8, 10_000.0, Interleaved)
        .unwrap()
        .is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn sinusoidal_rows_are_bounded_unit_pairs(
        pos in -1.0e6f64..1.0e6, half in 2usize..40, base in 1.5f64..1.0e6, li in 0usize..3,
    ) {
        let layout = LAYOUTS[li];
        let dim = 2 * half;
        let r = sinusoidal::row(pos, dim, base, layout).unwrap();
        prop_assert_eq!(r.len(), dim);
        for v in &r {
            prop_assert!(v.abs() <= 1.0);
        }
        for i in 0..half {
            let (s, c) = match layout {
                SinusoidalLayout::Interleaved => (r[2 * i], r[2 * i + 1]),
                _ => (r[i], r[half + i]),
            };
            let norm = f64::from(s).powi(2) + f64::from(c).powi(2);
            prop_assert!((norm - 1.0).abs() < 1e-6);
        }
    }
}

// ------------------------------------------------------------------------------------------
// learned

fn ramp_table(rows: usize, dim: usize) -> LearnedTable {
    let data = (0..rows * dim).map(|k| k as f32 * 0.5 - 3.0).collect();
    LearnedTable::new(rows, dim, data).unwrap()
}

#[test]
fn learned_entry_and_basics() {
    assert_eq!(learned::ENTRY, PositionEntry::HiddenStates);
    let t = ramp_table(5, 3);
    assert_eq!(
        (t.max_positions(), t.dim(), t.parameter_count()),
        (5, 3, 15)
    );
    assert_eq!(t.lookup(0).unwrap(), &[-3.0, -2.5, -2.0]);
    assert_eq!(t.lookup(4).unwrap(), &t.data()[12..15]);
    assert_eq!(t.lookup_many(&[4, 0, 4]).unwrap().len(), 9);
    assert_eq!(&t.lookup_many(&[4, 0]).unwrap()[3..], t.lookup(0).unwrap());
    assert!(t.lookup_many(&[]).unwrap().is_empty());
}

#[test]
fn learned_lookup_past_the_table_errors_never_clamps() {
    let t = ramp_table(5, 3);
    for p in [5u64, 6, 1 << 40, u64::MAX] {
        assert_eq!(
            t.lookup(p),
            Err(Error::PositionOutOfRange {
                position: p,
                max_positions: 5
            })
        );
    }
    assert_eq!(
        t.lookup_many(&[0, 1, 5]),
        Err(Error::PositionOutOfRange {
            position: 5,
            max_positions: 5
        })
    );
}

#[test]
fn learned_new_validates() {
    assert!(matches!(
        LearnedTable::new(0, 3, vec![]),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(matches!(
        LearnedTable::new(3, 0, vec![]),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(matches!(
        LearnedTable::new(2, 3, vec![0.0; 5]),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        LearnedTable::new(1, 2, vec![0.0, f32::NAN]),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(matches!(
        LearnedTable::new(1, 2, vec![f32::INFINITY, 0.0]),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(matches!(
        LearnedTable::random(1 << 20, 1 << 10, 0, 0.02),
        Err(Error::TooLarge { .. })
    ));
    assert!(matches!(
        LearnedTable::random(4, 4, 0, -1.0),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(matches!(
        LearnedTable::random(4, 4, 0, f32::NAN),
        Err(Error::InvalidParameter { .. })
    ));
}

#[test]
fn learned_random_is_seeded_and_has_the_asked_spread() {
    let a = LearnedTable::random(256, 128, 7, 0.02).unwrap();
    let b = LearnedTable::random(256, 128, 7, 0.02).unwrap();
    let c = LearnedTable::random(256, 128, 8, 0.02).unwrap();
    assert_eq!(a, b);
    assert_ne!(a.data(), c.data());
    let n = a.data().len() as f64;
    let mean = a.data().iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = a
        .data()
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    // 32768 samples: the standard error of the mean is 0.02/181 = 1.1e-4, of the std about 0.4%.
    assert!(mean.abs() < 6e-4, "mean {mean}");
    assert!((var.sqrt() / 0.02 - 1.0).abs() < 0.02, "std {}", var.sqrt());
    let zeros = LearnedTable::random(3, 3, 1, 0.0).unwrap();
    assert!(zeros.data().iter().all(|&v| v == 0.0));
}

#[test]
fn learned_resize_endpoints_midpoints_and_linear_functions() {
    let t = LearnedTable::random(7, 5, 3, 1.0).unwrap();
    for new in [1usize, 2, 3, 7, 13, 50] {
        let r = t.resize(new).unwrap();
        assert_eq!((r.max_positions(), r.dim()), (new, 5));
        assert_eq!(
            r.lookup(0).unwrap(),
            t.lookup(0).unwrap(),
            "first row copied"
        );
        if new > 1 {
            assert_eq!(
                r.lookup(new as u64 - 1).unwrap(),
                t.lookup(6).unwrap(),
                "last row copied"
            );
        }
    }
    assert_eq!(t.resize(7).unwrap(), t, "same size is the identity");
    // 7 -> 13: even rows hit old rows exactly, odd rows are midpoints.
    let r = t.resize(13).unwrap();
    for j in 0..13u64 {
        let got = r.lookup(j).unwrap();
        if j % 2 == 0 {
            assert_eq!(got, t.lookup(j / 2).unwrap());
        } else {
            let (a, b) = (t.lookup(j / 2).unwrap(), t.lookup(j / 2 + 1).unwrap());
            for c in 0..5 {
                let mid = ((f64::from(a[c]) + f64::from(b[c])) / 2.0) as f32;
                assert_eq!(got[c], mid);
            }
        }
    }
    // Round trip through the refined grid is exact: 7 -> 13 -> 7.
    assert_eq!(r.resize(7).unwrap(), t);
    // A table linear in the position is resampled exactly (up to f32 rounding).
    let (rows, dim) = (10usize, 3usize);
    let f = |p: f64, c: usize| 0.25 * c as f64 + (c as f64 - 1.0) * 0.1 * p;
    let data = (0..rows * dim)
        .map(|k| f((k / dim) as f64, k % dim) as f32)
        .collect();
    let lin = LearnedTable::new(rows, dim, data).unwrap();
    for new in [4usize, 17, 31] {
        let r = lin.resize(new).unwrap();
        for j in 0..new {
            let p = j as f64 * (rows - 1) as f64 / (new - 1) as f64;
            for c in 0..dim {
                let got = f64::from(r.data()[j * dim + c]);
                assert!((got - f(p, c)).abs() < 1e-6, "new {new} j {j} c {c}");
            }
        }
    }
    // One-row source repeats, zero rows is an error.
    let one = LearnedTable::new(1, 2, vec![1.5, -2.0]).unwrap();
    assert_eq!(
        one.resize(4).unwrap().data(),
        &[1.5, -2.0, 1.5, -2.0, 1.5, -2.0, 1.5, -2.0]
    );
    assert!(matches!(t.resize(0), Err(Error::InvalidParameter { .. })));
}

#[test]
fn safetensors_round_trip_and_layout() {
    let t = LearnedTable::random(9, 4, 11, 0.5).unwrap();
    let bytes = t.to_safetensors_bytes().unwrap();
    assert_eq!(LearnedTable::from_safetensors_bytes(&bytes).unwrap(), t);
    // Independently: the safetensors crate sees one F32 tensor "weight" of shape [9, 4].
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = st.tensor("weight").unwrap();
    assert_eq!(view.dtype(), safetensors::Dtype::F32);
    assert_eq!(view.shape(), &[9, 4]);
    assert_eq!(st.names().len(), 1);
    // Other names, dtypes and ranks.
    let raw: Vec<u8> = t.data().iter().flat_map(|v| v.to_le_bytes()).collect();
    let other = |name: &str, dtype, shape: Vec<usize>, data: &[u8]| {
        let v = safetensors::tensor::TensorView::new(dtype, shape, data).unwrap();
        safetensors::serialize([(name, v)], None).unwrap()
    };
    let wpe = other("wpe.weight", safetensors::Dtype::F32, vec![9, 4], &raw);
    assert_eq!(
        LearnedTable::from_safetensors_tensor(&wpe, "wpe.weight").unwrap(),
        t
    );
    assert!(matches!(
        LearnedTable::from_safetensors_bytes(&wpe),
        Err(Error::Parse { .. })
    ));
    let flat = other("weight", safetensors::Dtype::F32, vec![36], &raw);
    assert!(matches!(
        LearnedTable::from_safetensors_bytes(&flat),
        Err(Error::Parse { .. })
    ));
    let half = other("weight", safetensors::Dtype::F16, vec![9, 8], &raw);
    assert!(matches!(
        LearnedTable::from_safetensors_bytes(&half),
        Err(Error::Parse { .. })
    ));
    let nan: Vec<u8> = [1.0f32, f32::NAN]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let nan = other("weight", safetensors::Dtype::F32, vec![1, 2], &nan);
    assert!(matches!(
        LearnedTable::from_safetensors_bytes(&nan),
        Err(Error::Parse { .. })
    ));
}

#[test]
fn npy_round_trip_and_interop_with_npyz() {
    use npyz::WriterBuilder;
    let t = LearnedTable::random(5, 3, 2, 1.0).unwrap();
    let bytes = t.to_npy_bytes().unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + header_len) % 64, 0, "data aligned to 64 bytes");
    assert_eq!(bytes[10 + header_len - 1], b'\n');
    assert_eq!(LearnedTable::from_npy_bytes(&bytes).unwrap(), t);

    // An independent reader agrees on dtype, order, shape and values.
    let file = npyz::NpyFile::new(&bytes[..]).unwrap();
    assert_eq!(file.shape(), &[5, 3]);
    assert_eq!(file.order(), npyz::Order::C);
    assert_eq!(file.dtype().descr(), "'<f4'");
    assert_eq!(file.into_vec::<f32>().unwrap(), t.data());

    // An independent writer's bytes load here.
    let mut buf = Vec::new();
    let mut w = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .shape(&[5, 3])
        .writer(&mut buf)
        .begin_nd()
        .unwrap();
    w.extend(t.data().iter().copied()).unwrap();
    w.finish().unwrap();
    assert_eq!(LearnedTable::from_npy_bytes(&buf).unwrap(), t);
}

/// `.npy` bytes with a given header dict and data.
fn npy_with(version: u8, dict: &str, data: &[u8]) -> Vec<u8> {
    let mut out = b"\x93NUMPY".to_vec();
    out.extend_from_slice(&[version, 0]);
    let header = format!("{dict}\n");
    if version == 1 {
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

#[test]
fn npy_header_validation() {
    let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    let t = LearnedTable::from_npy_bytes(&npy_with(1, ok, &data)).unwrap();
    assert_eq!((t.max_positions(), t.dim()), (2, 3));
    assert_eq!(t.lookup(1).unwrap(), &[4.0, 5.0, 6.0]);
    for version in [2, 3] {
        assert_eq!(
            LearnedTable::from_npy_bytes(&npy_with(version, ok, &data)).unwrap(),
            t
        );
    }
    // Key order and quoting do not matter.
    let reordered = "{\"shape\": (2,3), \"fortran_order\": False, \"descr\": \"<f4\"}";
    assert_eq!(
        LearnedTable::from_npy_bytes(&npy_with(1, reordered, &data)).unwrap(),
        t
    );

    let bad_dicts = [
        "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }",
        "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 3), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999, 3), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
        "{'descr': '<f4', 'fortran_order': False, }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'extra': 1}",
        "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)} trailing",
        "{'descr': '<f4', 'fortran_order': false, 'shape': (2, 3)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3",
        "['descr', '<f4']",
        "",
    ];
    for dict in bad_dicts {
        let r = LearnedTable::from_npy_bytes(&npy_with(1, dict, &data));
        assert!(matches!(r, Err(Error::Parse { .. })), "{dict}: {r:?}");
    }
    // Wrong magic, unknown version, truncated anywhere, declared header longer than the file.
    let good = npy_with(1, ok, &data);
    let mut wrong_magic = good.clone();
    wrong_magic[1] = b'X';
    let mut v9 = good.clone();
    v9[6] = 9;
    let mut long_header = good.clone();
    long_header[8..10].copy_from_slice(&u16::MAX.to_le_bytes());
    let mut huge_v2 = npy_with(2, ok, &data);
    huge_v2[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    for bytes in [wrong_magic, v9, long_header, huge_v2] {
        assert!(matches!(
            LearnedTable::from_npy_bytes(&bytes),
            Err(Error::Parse { .. })
        ));
    }
    for cut in 0..good.len() {
        assert!(
            matches!(
                LearnedTable::from_npy_bytes(&good[..cut]),
                Err(Error::Parse { .. })
            ),
            "cut {cut}"
        );
    }
    let nan: Vec<u8> = [1.0f32, f32::NAN, 0.0, 0.0, 0.0, 0.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert!(matches!(
        LearnedTable::from_npy_bytes(&npy_with(1, ok, &nan)),
        Err(Error::Parse { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn learned_lookup_past_table_always_errors(rows in 1usize..40, dim in 1usize..8, extra in 0u64..u64::MAX / 2) {
        let t = LearnedTable::random(rows, dim, 0, 1.0).unwrap();
        let p = rows as u64 + extra;
        prop_assert_eq!(t.lookup(p), Err(Error::PositionOutOfRange { position: p, max_positions: rows }));
        prop_assert!(t.lookup_many(&[0, p]).is_err());
        prop_assert_eq!(t.lookup(rows as u64 - 1).unwrap().len(), dim);
    }

    #[test]
    fn learned_serialization_round_trips(rows in 1usize..30, dim in 1usize..10, seed in any::<u64>(), std in 0.0f32..10.0) {
        let t = LearnedTable::random(rows, dim, seed, std).unwrap();
        prop_assert_eq!(&LearnedTable::from_safetensors_bytes(&t.to_safetensors_bytes().unwrap()).unwrap(), &t);
        prop_assert_eq!(&LearnedTable::from_npy_bytes(&t.to_npy_bytes().unwrap()).unwrap(), &t);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        prop_assert!(LearnedTable::from_safetensors_bytes(&bytes).is_err());
        prop_assert!(LearnedTable::from_npy_bytes(&bytes).is_err());
    }

    #[test]
    fn corrupted_valid_files_never_panic(
        rows in 1usize..6, dim in 1usize..6,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let t = LearnedTable::random(rows, dim, 5, 1.0).unwrap();
        for good in [t.to_safetensors_bytes().unwrap(), t.to_npy_bytes().unwrap()] {
            let mut bad = good.clone();
            for (at, byte) in &edits {
                let i = at.index(bad.len());
                bad[i] = *byte;
            }
            // Any outcome but a panic is acceptable for edited bytes; a result must be a valid table.
            let results = [LearnedTable::from_safetensors_bytes(&bad), LearnedTable::from_npy_bytes(&bad)];
            for table in results.iter().flatten() {
                prop_assert_eq!(table.parameter_count(), table.max_positions() * table.dim());
            }
            let truncated = &good[..cut.index(good.len())];
            prop_assert!(LearnedTable::from_safetensors_bytes(truncated).is_err());
            prop_assert!(LearnedTable::from_npy_bytes(truncated).is_err());
        }
    }
}
