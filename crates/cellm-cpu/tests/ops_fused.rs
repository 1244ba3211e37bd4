//! The fused CPU kernels (Gelu, SiluMul, MatMulEpilogue, MatMulSiluMul,
//! MatMulMulti, RotaryEmbeddingPair) against their
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

// ---- Launch-count fusions: MatMulSiluMul, MatMulMulti, RotaryEmbeddingPair ----

use cellm_cpu::ops::{mat_mul_multi, mat_mul_silu_mul, rotary_embedding_pair};
use cellm_ir::ops::{MatMulMulti, MatMulSiluMul, RotaryEmbeddingPair};

/// (A dtype, weight dtype): one float dtype, or f16 weights under f32 A.
const WEIGHT_DTYPES: [(DType, DType); 3] = [
    (DType::F32, DType::F32),
    (DType::F16, DType::F16),
    (DType::F32, DType::F16),
];

#[test]
fn mat_mul_silu_mul_matches_primitive_chain() {
    let mut r = rng();
    for (dt, wt) in WEIGHT_DTYPES {
        // One row (decode), odd sizes, and a batch of rows above the GEMM's
        // small-M path.
        for (lead, k, n) in [
            (vec![1, 1], 37, 29),
            (vec![2, 37], 45, 67),
            (vec![1, 70], 64, 96),
        ] {
            let mut a_shape = lead.clone();
            a_shape.push(k);
            let a = randt(&mut r, &a_shape, 0.5, dt);
            let wg = randt(&mut r, &[k, n], 0.5, wt);
            let wu = randt(&mut r, &[k, n], 0.5, wt);
            let got = run1(
                Op::MatMulSiluMul(MatMulSiluMul),
                &[Some(&a), Some(&wg), Some(&wu)],
            )
            .unwrap();
            let want = mat_mul_silu_mul::mat_mul_silu_mul_slow(&a, &wg, &wu).unwrap();
            // f16 activations: the primitive chain rounds to f16 after each of
            // its five ops, the fused kernel once, so a few f16 ulps (2^-11).
            let t = if dt == DType::F16 { 1e-2 } else { 1e-5 };
            assert_close(
                &got,
                &want,
                t,
                &format!("MatMulSiluMul {dt} x {wt} A {a_shape:?} N {n}"),
            );
        }
    }
    // Mismatched weights and a missing input are errors, not panics.
    let a = randt(&mut r, &[1, 3, 8], 1.0, DType::F32);
    let wg = randt(&mut r, &[8, 5], 1.0, DType::F32);
    let wu = randt(&mut r, &[8, 6], 1.0, DType::F32);
    let err = run1(
        Op::MatMulSiluMul(MatMulSiluMul),
        &[Some(&a), Some(&wg), Some(&wu)],
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("differ"), "{err:#}");
    let err = run1(
        Op::MatMulSiluMul(MatMulSiluMul),
        &[Some(&a), Some(&wg), None],
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("up weight"), "{err:#}");
}

#[test]
fn mat_mul_multi_matches_primitive_mat_muls() {
    let mut r = rng();
    for (dt, wt) in WEIGHT_DTYPES {
        for (lead, k) in [(vec![1, 1], 37), (vec![2, 37], 45)] {
            let mut a_shape = lead.clone();
            a_shape.push(k);
            let a = randt(&mut r, &a_shape, 1.0, dt);
            for ns in [vec![29, 7], vec![67, 13, 13]] {
                let ws: Vec<Tensor> = ns
                    .iter()
                    .map(|&n| randt(&mut r, &[k, n], 1.0, wt))
                    .collect();
                let mut ins = vec![Some(&a)];
                ins.extend(ws.iter().map(Some));
                let got = eval(&Op::MatMulMulti(MatMulMulti), &ins).unwrap();
                let refs: Vec<&Tensor> = ws.iter().collect();
                let want = mat_mul_multi::mat_mul_multi_slow(&a, &refs).unwrap();
                assert_eq!(got.len(), ns.len());
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert_close(
                        g,
                        w,
                        tol(dt),
                        &format!("MatMulMulti {dt} x {wt} A {a_shape:?} N {ns:?} output {i}"),
                    );
                }
            }
        }
    }
    let a = randt(&mut r, &[1, 3, 8], 1.0, DType::F32);
    let w = randt(&mut r, &[8, 5], 1.0, DType::F32);
    let bad = randt(&mut r, &[7, 5], 1.0, DType::F32);
    let err = eval(
        &Op::MatMulMulti(MatMulMulti),
        &[Some(&a), Some(&w), Some(&bad)],
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("weight 1"), "{err:#}");
    let err = eval(&Op::MatMulMulti(MatMulMulti), &[Some(&a)]).unwrap_err();
    assert!(format!("{err:#}").contains("weight 0"), "{err:#}");
}

#[test]
fn rotary_embedding_pair_matches_two_rotaries() {
    let mut r = rng();
    let (max_pos, half) = (40, 8);
    let cos = randt(&mut r, &[max_pos, half], 1.0, DType::F32);
    let sin = randt(&mut r, &[max_pos, half], 1.0, DType::F32);
    let pos_v: Vec<i64> = (0..2 * 5)
        .map(|_| r.random_range(0..max_pos as i64))
        .collect();
    let pos = Tensor::from_vec(vec![2, 5], pos_v);
    for interleaved in [false, true] {
        // 3-D with 3 query and 1 key heads, 3-D with num_heads 0 (head size
        // from the cache), 4-D, and a partial rotary (rotary_embedding_dim).
        for (s0, s1, heads, dim) in [
            (vec![2, 5, 48], vec![2, 5, 16], [3, 1], 0),
            (vec![2, 5, 48], vec![2, 5, 16], [0, 0], 0),
            (vec![2, 3, 5, 16], vec![2, 1, 5, 16], [3, 1], 0),
            (vec![2, 5, 96], vec![2, 5, 32], [3, 1], 16),
        ] {
            let op = RotaryEmbeddingPair {
                interleaved,
                num_heads: heads,
                rotary_embedding_dim: dim,
                scale: 1.0,
            };
            let x0 = randt(&mut r, &s0, 2.0, DType::F32);
            let x1 = randt(&mut r, &s1, 2.0, DType::F32);
            let got = eval(
                &Op::RotaryEmbeddingPair(op.clone()),
                &[Some(&x0), Some(&x1), Some(&pos), Some(&cos), Some(&sin)],
            )
            .unwrap();
            let want = rotary_embedding_pair::rotary_embedding_pair_slow(
                &op,
                [&x0, &x1],
                &pos,
                &cos,
                &sin,
            )
            .unwrap();
            for i in 0..2 {
                assert_close(
                    &got[i],
                    &want[i],
                    0.0,
                    &format!("RotaryEmbeddingPair {op:?} x{i}"),
                );
            }
            // The rotary really ran: x0 changed.
            assert_ne!(got[0].to_f32_vec().unwrap(), x0.to_f32_vec().unwrap());
        }
    }
    let x = randt(&mut r, &[2, 5, 48], 1.0, DType::F32);
    let op = Op::RotaryEmbeddingPair(RotaryEmbeddingPair {
        interleaved: false,
        num_heads: [3, 1],
        rotary_embedding_dim: 0,
        scale: 1.0,
    });
    let err = eval(&op, &[Some(&x), None, Some(&pos), Some(&cos), Some(&sin)]).unwrap_err();
    assert!(format!("{err:#}").contains("x1"), "{err:#}");
}

// ---- FusedElementwise ----

use cellm_cpu::ops::fused_elementwise::fused_elementwise_slow;
use cellm_ir::ops::{BinaryOp, FusedElementwise, Instr, UnaryOp};
use cellm_testkit::random_programs::{broadcast_shapes_for, random_program};

/// The interpreter against the primitive kernels run one op at a time, on
/// random programs and broadcast shapes (below and above the threading
/// threshold). f32: bit-equal (tolerance 0), as both run the same f32
/// functions in the same order. f16: 1e-2, the fused kernel rounds once
/// (and keeps f32 immediates) where the chain rounds after each of up to
/// ~30 ops (2^-11 each, amplified at most a few times by Pow/Exp).
#[test]
fn fused_elementwise_matches_primitive_chain() {
    let mut r = rng();
    for case in 0..40 {
        let n_in = r.random_range(1..=6);
        let (op, _) = random_program(&mut r, n_in);
        let out: Vec<usize> = if case % 4 == 0 {
            vec![3, 70, 129]
        } else {
            (0..r.random_range(0..5))
                .map(|_| r.random_range(1..6))
                .collect()
        };
        let shapes = broadcast_shapes_for(&mut r, &out, n_in);
        for dtype in [DType::F32, DType::F16] {
            let xs: Vec<Tensor> = shapes
                .iter()
                .map(|s| randt(&mut r, s, 1.5, dtype))
                .collect();
            let ins: Vec<Option<&Tensor>> = xs.iter().map(Some).collect();
            let got = run1(Op::FusedElementwise(op.clone()), &ins).unwrap();
            let what = format!("case {case} {dtype} {shapes:?} {op:?}");
            if dtype == DType::F32 {
                let want = fused_elementwise_slow(&op, &ins).unwrap();
                assert_close(&got, &want, 0.0, &what);
                continue;
            }
            // f16: the fused kernel computes in f32 and rounds once, so the
            // reference is the f32 chain on the same (widened) halves, rounded
            // once: equal bit for bit. The unfused f16 chain rounds every step,
            // and an ill-conditioned step (sqrt or a division near 0) can
            // amplify that rounding past any fixed tolerance.
            let wide: Vec<Tensor> = xs
                .iter()
                .map(|t| Tensor::from_vec(t.shape().to_vec(), t.to_f32_vec().unwrap()))
                .collect();
            let wide_ins: Vec<Option<&Tensor>> = wide.iter().map(Some).collect();
            let f32_chain = fused_elementwise_slow(&op, &wide_ins).unwrap();
            let want = Tensor::from_vec(
                f32_chain.shape().to_vec(),
                f32_chain
                    .f32s()
                    .unwrap()
                    .iter()
                    .map(|&v| f16::from_f32(v))
                    .collect::<Vec<_>>(),
            );
            assert_close(&got, &want, 0.0, &what);
            // And within f16 rounding of the unfused f16 chain where that
            // chain is well conditioned (no sqrt, division or log).
            let ill = format!("{op:?}");
            if !["Sqrt", "Div", "Log", "Reciprocal", "Pow"]
                .iter()
                .any(|o| ill.contains(o))
            {
                let unfused = fused_elementwise_slow(&op, &ins).unwrap();
                assert_close(&got, &unfused, 1e-2, &what);
            }
        }
    }
}

#[test]
fn fused_elementwise_rejects_bad_programs() {
    let x = Tensor::from_vec(vec![2], vec![1.0f32, 2.0]);
    let neg = |x| Instr::Unary {
        op: UnaryOp::Neg,
        x,
    };
    let run = |p: Vec<Instr>, ins: &[Option<&Tensor>]| {
        run1(Op::FusedElementwise(FusedElementwise { program: p }), ins)
            .map(|_| String::new())
            .unwrap_or_else(|e| format!("{e:#}"))
    };
    // Forward reference, op outside the set, empty program, too many inputs.
    assert!(run(vec![neg(1)], &[Some(&x)]).contains("register 1"));
    let not = Instr::Unary {
        op: UnaryOp::Not,
        x: 0,
    };
    assert!(run(vec![not], &[Some(&x)]).contains("Not"));
    assert!(run(vec![], &[Some(&x)]).contains("instructions"));
    assert!(run(vec![neg(0)], &[Some(&x); 7]).contains("inputs"));
    // Mixed dtypes and non-broadcastable shapes.
    let h = Tensor::from_vec(vec![2], vec![f16::ONE; 2]);
    let add = Instr::Binary {
        op: BinaryOp::Add,
        a: 0,
        b: 1,
    };
    assert!(run(vec![add], &[Some(&x), Some(&h)]).contains("input 1"));
    let y = Tensor::from_vec(vec![3], vec![1.0f32; 3]);
    assert!(run(vec![add], &[Some(&x), Some(&y)]).contains("FusedElementwise"));
}
