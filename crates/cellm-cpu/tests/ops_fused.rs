//! The fused CPU kernels (Gelu, SiluMul, MatMulEpilogue) against their
//! `*_slow` references built from the primitive kernels, on fresh random
//! inputs (seed printed; CELLM_TEST_SEED replays), at sizes below and above
//! the threading threshold, in f32 and f16; and their errors on bad inputs.

use cellm_cpu::ops::{eval, gelu, mat_mul_epilogue, silu_mul};
use cellm_ir::ops::{Gelu, GeluApproximation, MatMulEpilogue, SiluMul};
use cellm_ir::{DType, Op, Tensor};
use half::f16;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn rng() -> StdRng {
    let seed = std::env::var("CELLM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    println!("seed {seed} (CELLM_TEST_SEED to replay)");
    StdRng::seed_from_u64(seed)
}

fn randt(r: &mut StdRng, shape: &[usize], scale: f32, dtype: DType) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| r.random_range(-scale..scale)).collect();
    match dtype {
        DType::F16 => Tensor::from_vec(
            shape.to_vec(),
            v.into_iter().map(f16::from_f32).collect::<Vec<_>>(),
        ),
        _ => Tensor::from_vec(shape.to_vec(), v),
    }
}

/// |got − want| ≤ tol·(1 + |want|). f32: 1e-5 (the fused kernels use
/// polynomial exp/erf/tanh within a few ulp, and the decomposed forms lose a
/// few ulp in 1 + tanh / 1 + erf; GEMM summation order differs). f16: 2e-3
/// (one f16 ulp is 2^-11 relative: fused results round once, the primitive
/// chains round after every op).
fn assert_close(got: &Tensor, want: &Tensor, tol: f32, what: &str) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    assert_eq!(got.dtype(), want.dtype(), "{what}: dtype");
    let (g, w) = (got.to_f32_vec().unwrap(), want.to_f32_vec().unwrap());
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(
            (a - b).abs() <= tol * (1.0 + b.abs()),
            "{what}: element {i}: {a} vs {b}"
        );
    }
}

fn tol(dtype: DType) -> f32 {
    if dtype == DType::F16 {
        2e-3
    } else {
        1e-5
    }
}

fn run1(op: Op, inputs: &[Option<&Tensor>]) -> anyhow::Result<Tensor> {
    Ok(eval(&op, inputs)?.remove(0))
}

#[test]
fn gelu_matches_primitive_chain() {
    let mut r = rng();
    for approximate in [GeluApproximation::None, GeluApproximation::Tanh] {
        for dtype in [DType::F32, DType::F16] {
            // Tiny, odd, and above the threading threshold (2^15 · cost).
            for shape in [vec![1], vec![3, 7], vec![4, 257, 129]] {
                let x = randt(&mut r, &shape, 6.0, dtype);
                let got = run1(Op::Gelu(Gelu { approximate }), &[Some(&x)]).unwrap();
                let want = gelu::gelu_slow(approximate, &x).unwrap();
                assert_close(
                    &got,
                    &want,
                    tol(dtype),
                    &format!("Gelu {approximate:?} {dtype} {shape:?}"),
                );
            }
        }
    }
}

#[test]
fn gelu_f64_and_errors() {
    let mut r = rng();
    let v: Vec<f64> = (0..50).map(|_| r.random_range(-5.0..5.0)).collect();
    let x = Tensor::from_vec(vec![50], v.clone());
    for approximate in [GeluApproximation::None, GeluApproximation::Tanh] {
        let got = run1(Op::Gelu(Gelu { approximate }), &[Some(&x)]).unwrap();
        let want = gelu::gelu_slow(approximate, &x).unwrap();
        // f64 both ways: only rounding differences.
        for (a, b) in got.to_f64_vec().iter().zip(want.to_f64_vec()) {
            assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }
    let ints = Tensor::from_vec(vec![2], vec![1i64, 2]);
    let err = run1(
        Op::Gelu(Gelu {
            approximate: GeluApproximation::None,
        }),
        &[Some(&ints)],
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("float"), "{err:#}");
    let err = run1(
        Op::Gelu(Gelu {
            approximate: GeluApproximation::None,
        }),
        &[None],
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("Gelu input X"), "{err:#}");
}

#[test]
fn silu_mul_matches_primitive_chain() {
    let mut r = rng();
    for dtype in [DType::F32, DType::F16] {
        for (gs, us) in [
            (vec![5], vec![5]),
            (vec![2, 9, 1536], vec![2, 9, 1536]),
            // Broadcast up (the slow path of the kernel).
            (vec![3, 4, 6], vec![4, 1]),
        ] {
            let g = randt(&mut r, &gs, 8.0, dtype);
            let u = randt(&mut r, &us, 2.0, dtype);
            let got = run1(Op::SiluMul(SiluMul), &[Some(&g), Some(&u)]).unwrap();
            let want = silu_mul::silu_mul_slow(&g, &u).unwrap();
            assert_close(
                &got,
                &want,
                tol(dtype),
                &format!("SiluMul {dtype} {gs:?} {us:?}"),
            );
        }
    }
    let g = randt(&mut r, &[4], 1.0, DType::F32);
    let h = randt(&mut r, &[4], 1.0, DType::F16);
    let err = run1(Op::SiluMul(SiluMul), &[Some(&g), Some(&h)]).unwrap_err();
    assert!(format!("{err:#}").contains("gate is f32"), "{err:#}");
    let u = randt(&mut r, &[3], 1.0, DType::F32);
    assert!(run1(Op::SiluMul(SiluMul), &[Some(&g), Some(&u)]).is_err());
}

#[test]
fn mat_mul_epilogue_matches_primitive_chain() {
    let mut r = rng();
    for dtype in [DType::F32, DType::F16] {
        // M = 1 and 3 take the small-M streaming kernel (N above the threading
        // threshold splits its columns), 37 the packed GEMM.
        for (lead, k, n) in [
            (vec![1, 1], 64, 300),
            (vec![1, 1], 96, 1500),
            (vec![3], 40, 700),
            (vec![2, 37], 33, 45),
            (vec![1, 70], 128, 96),
        ] {
            for (with_bias, with_res) in
                [(false, false), (true, false), (false, true), (true, true)]
            {
                let mut a_shape = lead.clone();
                a_shape.push(k);
                let mut y_shape = lead.clone();
                y_shape.push(n);
                let a = randt(&mut r, &a_shape, 1.0, dtype);
                let b = randt(&mut r, &[k, n], 1.0, dtype);
                let bias = randt(&mut r, &[n], 1.0, dtype);
                let res = randt(&mut r, &y_shape, 1.0, dtype);
                let bias = with_bias.then_some(&bias);
                let res = with_res.then_some(&res);
                let got = run1(
                    Op::MatMulEpilogue(MatMulEpilogue),
                    &[Some(&a), Some(&b), bias, res],
                )
                .unwrap();
                let want = mat_mul_epilogue::mat_mul_epilogue_slow(&a, &b, bias, res).unwrap();
                // Sums of k products of values in ±1: scale the tolerance by √k.
                let t = tol(dtype) * (k as f32).sqrt();
                assert_close(
                    &got,
                    &want,
                    t,
                    &format!("MatMulEpilogue {dtype} A {a_shape:?} N {n} bias {with_bias} res {with_res}"),
                );
            }
        }
    }
}

/// f32 activations × f16 weights (the `--dtype f16` form): the halves are
/// widened inside the GEMM. Reference: the same product with B widened to f32
/// first (so both sides see identical weight values). Rows 1..4 take the
/// streaming kernel (K split over the cores when B is large; N not a multiple
/// of 8; K not a multiple of 4), more rows the panel-widening path;
/// MatMul and MatMulEpilogue share the kernel.
#[test]
fn f16_weights_match_widened_f32() {
    let mut r = rng();
    for (lead, k, n) in [
        (vec![1, 1], 301, 1030),
        (vec![1, 3], 64, 77),
        (vec![4], 258, 300),
        // Three 2048-column blocks, the last ending in a partial vector.
        (vec![2], 66, 4203),
        (vec![2, 19], 33, 45),
        // Two column panels of the widening path (832 + 168 columns).
        (vec![9], 600, 1000),
        (vec![1], 0, 5),
    ] {
        let mut a_shape = lead.clone();
        a_shape.push(k);
        let a = randt(&mut r, &a_shape, 1.0, DType::F32);
        let b = randt(&mut r, &[k, n], 1.0, DType::F16);
        let wide = Tensor::from_vec(vec![k, n], b.to_f32_vec().unwrap());
        let want = run1(Op::MatMul(cellm_ir::ops::MatMul), &[Some(&a), Some(&wide)]).unwrap();
        let t = 1e-5 * (k.max(1) as f32).sqrt();
        let got = run1(
            Op::MatMulEpilogue(MatMulEpilogue),
            &[Some(&a), Some(&b), None, None],
        )
        .unwrap();
        assert_close(
            &got,
            &want,
            t,
            &format!("MatMulEpilogue f16 B A {a_shape:?} N {n}"),
        );
        let got = run1(Op::MatMul(cellm_ir::ops::MatMul), &[Some(&a), Some(&b)]).unwrap();
        assert_close(&got, &want, t, &format!("MatMul f16 B A {a_shape:?} N {n}"));
        let slow = mat_mul_epilogue::mat_mul_epilogue_slow(&a, &b, None, None).unwrap();
        assert_close(&slow, &want, t, &format!("slow f16 B A {a_shape:?} N {n}"));
    }
}

#[test]
fn mat_mul_epilogue_rejects_bad_shapes() {
    let mut r = rng();
    let a = randt(&mut r, &[2, 4], 1.0, DType::F32);
    let b = randt(&mut r, &[4, 3], 1.0, DType::F32);
    let op = Op::MatMulEpilogue(MatMulEpilogue);
    let bad_bias = randt(&mut r, &[4], 1.0, DType::F32);
    let err = run1(op.clone(), &[Some(&a), Some(&b), Some(&bad_bias), None]).unwrap_err();
    assert!(format!("{err:#}").contains("bias must be [3]"), "{err:#}");
    // A residual that broadcasts is added like the Add it replaced...
    let row_res = randt(&mut r, &[1, 3], 1.0, DType::F32);
    let got = run1(op.clone(), &[Some(&a), Some(&b), None, Some(&row_res)]).unwrap();
    let want = mat_mul_epilogue::mat_mul_epilogue_slow(&a, &b, None, Some(&row_res)).unwrap();
    assert_close(&got, &want, 1e-5, "MatMulEpilogue row-broadcast residual");
    // ...one that does not is an error.
    let bad_res = randt(&mut r, &[4, 3], 1.0, DType::F32);
    let err = run1(op.clone(), &[Some(&a), Some(&b), None, Some(&bad_res)]).unwrap_err();
    assert!(format!("{err:#}").contains("residual"), "{err:#}");
    let b3 = randt(&mut r, &[1, 4, 3], 1.0, DType::F32);
    let err = run1(op.clone(), &[Some(&a), Some(&b3), None, None]).unwrap_err();
    assert!(format!("{err:#}").contains("B must be 2-D"), "{err:#}");
    let b_bad_k = randt(&mut r, &[5, 3], 1.0, DType::F32);
    let err = run1(op.clone(), &[Some(&a), Some(&b_bad_k), None, None]).unwrap_err();
    assert!(format!("{err:#}").contains("inner dims"), "{err:#}");
    let a1 = randt(&mut r, &[4], 1.0, DType::F32);
    let err = run1(op, &[Some(&a1), Some(&b), None, None]).unwrap_err();
    assert!(format!("{err:#}").contains("rank >= 2"), "{err:#}");
}
