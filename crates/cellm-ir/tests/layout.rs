//! Panel-stored tensors (`Layout::Panels`): the layout round-trips, keeps
//! the logical shape and values, pads only the last panel, and every
//! row-major accessor refuses it instead of reading scrambled values.

use cellm_ir::{DType, Layout, Tensor};
use half::f16;
use rand::{Rng, SeedableRng};

fn random_f16(r: &mut rand::rngs::StdRng, k: usize, n: usize) -> Tensor {
    let v: Vec<f16> = (0..k * n)
        .map(|_| f16::from_f32(r.random_range(-1.0..1.0)))
        .collect();
    Tensor::from_vec(vec![k, n], v)
}

#[test]
fn panels_round_trip_and_pad_the_last_panel() {
    let seed: u64 = rand::rng().random();
    println!("seed {seed}");
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    for (k, n, width) in [(5, 70, 32), (3, 64, 32), (1, 1, 32), (7, 9, 4), (4, 33, 16)] {
        let t = random_f16(&mut r, k, n);
        let p = t.to_panels(width).unwrap();
        assert_eq!(p.shape(), &[k, n]);
        assert_eq!(p.layout(), Layout::Panels { width });
        let panels = n.div_ceil(width);
        assert_eq!(p.bytes().len(), k * panels * width * 2, "{k}x{n}/{width}");
        let (stored, w) = p.panels::<f16>().unwrap();
        assert_eq!(w, width);
        let rows = t.view::<f16>().unwrap();
        for kk in 0..k {
            for j in 0..panels * width {
                let got = stored[((j / width) * k + kk) * width + j % width];
                let want = if j < n { rows[kk * n + j] } else { f16::ZERO };
                assert_eq!(got.to_bits(), want.to_bits(), "{k}x{n}/{width} [{kk},{j}]");
            }
        }
        let back = p.to_row_major();
        assert_eq!(back.layout(), Layout::RowMajor);
        assert_eq!(back, t, "{k}x{n}/{width}");
        assert_eq!(
            p.to_f64_vec(),
            t.to_f64_vec(),
            "values read in row-major order"
        );
        assert_ne!(p, t, "a layout is part of a tensor's identity");
    }
}

#[test]
fn row_major_accessors_refuse_panels() {
    let t = Tensor::from_vec(vec![2, 40], vec![1.5f32; 80]);
    let p = t.to_panels(32).unwrap();
    let err = p.view::<f32>().unwrap_err().to_string();
    assert!(err.contains("panels of 32"), "{err}");
    assert!(p.reshaped(vec![80]).is_err());
    assert!(p.to_panels(32).is_err());
    assert!(
        t.panels::<f32>().is_err(),
        "a row-major tensor has no panels"
    );
    assert!(Tensor::from_vec(vec![80], vec![0f32; 80])
        .to_panels(32)
        .is_err());
    assert!(Tensor::from_bytes_in(
        DType::F32,
        vec![2, 40],
        Layout::Panels { width: 32 },
        p.bytes().slice(0..16)
    )
    .is_err());
    let again = Tensor::from_bytes_in(DType::F32, vec![2, 40], p.layout(), p.bytes().clone());
    assert_eq!(again.unwrap(), p);
}
