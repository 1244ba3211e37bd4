//! The fused-op GPU kernels (Gelu, SiluMul, MatMulEpilogue, MatMulSiluMul,
//! MatMulMulti, RotaryEmbeddingPair) against the CPU
//! kernels (`cellm_cpu::ops::eval`) on fresh random inputs (seed printed; set
//! CELLM_TEST_SEED to replay), in f32 and f16, with every device buffer
//! poisoned before it is written, tensors also split over small bindings,
//! and f16 also without SHADER_F16. Each op must run on the device (no host
//! fallback).
//!
//! Tolerances, |gpu - cpu| <= tol * max(1, |cpu|): Gelu and SiluMul 1e-5
//! (each side's exp/erf/tanh within a few ulp); MatMulEpilogue 1e-4
//! (summation order differs); f16 outputs 1e-2 (one f16 ulp after a
//! different f32 computation).

mod common;

use common::op_check::{check_with, rng, In, Setup};

/// Runs `op` on the GPU and the CPU and compares every output.
fn check(what: &str, op: Op, inputs: Vec<In>, tol: f64) {
    let setup = Setup {
        split_parts: 6,
        device_bytes: false,
        f16_from_inputs: false,
        f16_split: true,
    };
    check_with(setup, what, op, inputs, tol);
}

use cellm_ir::ops::{Gelu, GeluApproximation, MatMulEpilogue, SiluMul};
use cellm_ir::{DType, Op, Tensor};
use half::f16;
use rand::rngs::StdRng;
use rand::Rng;

const ELEM: f64 = 1e-5;
const RED: f64 = 1e-4;
const HALF: f64 = 1e-2;

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

/// An input: a runtime graph input, a constant (initializer, as weights
/// are), or omitted.
#[test]
fn gelu_both_forms() {
    let mut r = rng();
    for approximate in [GeluApproximation::None, GeluApproximation::Tanh] {
        for (dtype, tol) in [(DType::F32, ELEM), (DType::F16, HALF)] {
            let x = randt(&mut r, &[3, 37, 29], 6.0, dtype);
            check(
                &format!("Gelu {approximate:?} {dtype}"),
                Op::Gelu(Gelu { approximate }),
                vec![In::Run(x)],
                tol,
            );
        }
    }
}

#[test]
fn silu_mul_equal_shapes() {
    let mut r = rng();
    for (dtype, tol) in [(DType::F32, ELEM), (DType::F16, HALF)] {
        let g = randt(&mut r, &[2, 5, 301], 8.0, dtype);
        let u = randt(&mut r, &[2, 5, 301], 2.0, dtype);
        check(
            &format!("SiluMul {dtype}"),
            Op::SiluMul(SiluMul),
            vec![In::Run(g), In::Run(u)],
            tol,
        );
    }
}

/// f16 weights under f32 activations (`--dtype f16`), both kernels.
#[test]
fn mat_mul_epilogue_f16_weights() {
    let mut r = rng();
    for (lead, k, n) in [(vec![1, 1], 300, 131), (vec![1, 70], 45, 67)] {
        let mut a_shape = lead.clone();
        a_shape.push(k);
        let mut y_shape = lead.clone();
        y_shape.push(n);
        let a = randt(&mut r, &a_shape, 1.0, DType::F32);
        let b = randt(&mut r, &[k, n], 1.0, DType::F16);
        let bias = randt(&mut r, &[n], 1.0, DType::F32);
        let res = randt(&mut r, &y_shape, 1.0, DType::F32);
        check(
            &format!("MatMulEpilogue f16 B A {a_shape:?} N {n}"),
            Op::MatMulEpilogue(MatMulEpilogue),
            vec![In::Run(a), In::Const(b), In::Const(bias), In::Run(res)],
            RED,
        );
    }
}

#[test]
fn mat_mul_epilogue_tiles_and_gemv() {
    let mut r = rng();
    // One row (gemv kernel), odd sizes across tile edges, a flattened batch.
    for (lead, k, n) in [
        (vec![1, 1], 300, 131),
        (vec![1, 70], 45, 67),
        (vec![2, 33], 130, 64),
    ] {
        for (with_bias, with_res) in [(false, false), (true, false), (false, true), (true, true)] {
            for (dtype, tol) in [(DType::F32, RED), (DType::F16, HALF)] {
                let mut a_shape = lead.clone();
                a_shape.push(k);
                let mut y_shape = lead.clone();
                y_shape.push(n);
                let a = randt(&mut r, &a_shape, 1.0, dtype);
                let b = randt(&mut r, &[k, n], 1.0, dtype);
                let bias = if with_bias {
                    In::Const(randt(&mut r, &[n], 1.0, dtype))
                } else {
                    In::None
                };
                let res = if with_res {
                    In::Run(randt(&mut r, &y_shape, 1.0, dtype))
                } else {
                    In::None
                };
                check(
                    &format!(
                        "MatMulEpilogue {dtype} A {a_shape:?} N {n} bias {with_bias} res {with_res}"
                    ),
                    Op::MatMulEpilogue(MatMulEpilogue),
                    vec![In::Run(a), In::Const(b), bias, res],
                    tol,
                );
            }
        }
    }
}

// ---- Launch-count fusions: MatMulSiluMul, MatMulMulti, RotaryEmbeddingPair ----
//
// One row (the gemv kernels) and 37 rows (the tiled kernels), odd K and N
// across tile edges. Tolerances as above: 1e-4 for f32 activations (f32
// accumulation in another order; f16 weights are the same halves on both
// sides, widened exactly), 1e-2 for f16 activations and outputs.

use cellm_ir::ops::{MatMulMulti, MatMulSiluMul, RotaryEmbeddingPair};

/// (A dtype, weight dtype, tolerance).
const WEIGHTS: [(DType, DType, f64); 3] = [
    (DType::F32, DType::F32, RED),
    (DType::F32, DType::F16, RED),
    (DType::F16, DType::F16, HALF),
];

#[test]
fn mat_mul_silu_mul_gemv_and_tiles() {
    let mut r = rng();
    for (lead, k, n) in [
        (vec![1, 1], 301, 131),
        (vec![1, 37], 45, 67),
        (vec![2, 37], 131, 29),
    ] {
        for (dt, wt, tol) in WEIGHTS {
            let mut a_shape = lead.clone();
            a_shape.push(k);
            let a = randt(&mut r, &a_shape, 0.5, dt);
            let wg = randt(&mut r, &[k, n], 0.5, wt);
            let wu = randt(&mut r, &[k, n], 0.5, wt);
            check(
                &format!("MatMulSiluMul {dt} x {wt} A {a_shape:?} N {n}"),
                Op::MatMulSiluMul(MatMulSiluMul),
                vec![In::Run(a), In::Const(wg), In::Const(wu)],
                tol,
            );
        }
    }
}

#[test]
fn mat_mul_multi_gemv_and_tiles() {
    let mut r = rng();
    for (lead, k) in [(vec![1, 1], 301), (vec![1, 37], 45)] {
        for ns in [vec![131, 29], vec![67, 13, 77]] {
            for (dt, wt, tol) in WEIGHTS {
                let mut a_shape = lead.clone();
                a_shape.push(k);
                let mut inputs = vec![In::Run(randt(&mut r, &a_shape, 1.0, dt))];
                inputs.extend(
                    ns.iter()
                        .map(|&n| In::Const(randt(&mut r, &[k, n], 1.0, wt))),
                );
                check(
                    &format!("MatMulMulti {dt} x {wt} A {a_shape:?} N {ns:?}"),
                    Op::MatMulMulti(MatMulMulti),
                    inputs,
                    tol,
                );
            }
        }
    }
}

/// The pair against the CPU kernel (which runs the single op's kernel on
/// each input, so the pair matches the two rotaries it replaces).
#[test]
fn rotary_embedding_pair_matches_single_rotaries() {
    let mut r = rng();
    let (max_pos, half) = (64, 8);
    for (dtype, tol) in [(DType::F32, ELEM), (DType::F16, HALF)] {
        let cos = randt(&mut r, &[max_pos, half], 1.0, dtype);
        let sin = randt(&mut r, &[max_pos, half], 1.0, dtype);
        for interleaved in [false, true] {
            // 3-D with 9 query and 3 key heads (one row and 37), num_heads 0,
            // 4-D, and a partial rotary.
            for (s0, s1, heads, dim) in [
                (vec![1, 1, 144], vec![1, 1, 48], [9, 3], 0),
                (vec![1, 37, 144], vec![1, 37, 48], [9, 3], 0),
                (vec![2, 5, 48], vec![2, 5, 16], [0, 0], 0),
                (vec![2, 3, 5, 16], vec![2, 1, 5, 16], [3, 1], 0),
                (vec![1, 37, 96], vec![1, 37, 32], [3, 1], 16),
            ] {
                let (b, s) = (s0[0], if s0.len() == 4 { s0[2] } else { s0[1] });
                let pos_v: Vec<i64> = (0..b * s)
                    .map(|_| r.random_range(0..max_pos as i64))
                    .collect();
                let pos = Tensor::from_vec(vec![b, s], pos_v);
                let op = RotaryEmbeddingPair {
                    interleaved,
                    num_heads: heads,
                    rotary_embedding_dim: dim,
                    scale: 1.0,
                };
                let x0 = randt(&mut r, &s0, 2.0, dtype);
                let x1 = randt(&mut r, &s1, 2.0, dtype);
                check(
                    &format!("RotaryEmbeddingPair {dtype} {op:?} {s0:?} {s1:?}"),
                    Op::RotaryEmbeddingPair(op),
                    vec![
                        In::Run(x0),
                        In::Run(x1),
                        In::Run(pos),
                        In::Const(cos.clone()),
                        In::Const(sin.clone()),
                    ],
                    tol,
                );
            }
        }
    }
}

/// Weights split over so many bindings that the fused launch would exceed
/// the device's storage buffers per stage: MatMulMulti and MatMulSiluMul
/// take their per-weight fallbacks (the "split" run; the default run takes
/// the fused kernels), with the same results.
#[test]
fn fused_products_fall_back_when_bindings_run_out() {
    let Some(ctx) = common::gpu() else { return };
    let limit = ctx.limits.max_storage_buffers_per_shader_stage as usize;
    // c chunks per weight: three (or two) weights exceed the limit, one
    // weight with A, bias, residual and output still fits.
    let c = limit / 2;
    let (k, n) = (301, 131);
    if limit < 8 || k * n * 4 / c < 4096 {
        println!("storage buffer limit {limit}: chunks would be too small, skipped");
        return;
    }
    println!("storage buffers per stage {limit}: {c} chunks per weight");
    let setup = Setup {
        split_parts: c as u64,
        device_bytes: false,
        f16_from_inputs: false,
        f16_split: false,
    };
    let mut r = rng();
    let a = randt(&mut r, &[1, 1, k], 1.0, DType::F32);
    let ws: Vec<Tensor> = (0..3)
        .map(|_| randt(&mut r, &[k, n], 1.0, DType::F32))
        .collect();
    let mut inputs = vec![In::Run(a.clone())];
    inputs.extend(ws.iter().cloned().map(In::Const));
    check_with(
        setup,
        &format!("MatMulMulti split in {c} chunks per weight"),
        Op::MatMulMulti(MatMulMulti),
        inputs,
        RED,
    );
    check_with(
        setup,
        &format!("MatMulSiluMul split in {c} chunks per weight"),
        Op::MatMulSiluMul(MatMulSiluMul),
        vec![
            In::Run(a),
            In::Const(ws[0].clone()),
            In::Const(ws[1].clone()),
        ],
        RED,
    );
}

// ---- FusedElementwise ----

use cellm_testkit::random_programs::{broadcast_shapes_for, random_program};

/// The interpreter shader against the CPU interpreter on random programs
/// (every instruction kind, f32 immediates, tensor and constant Pow
/// exponents) over 1 to 6 inputs of random broadcast shapes up to rank 5.
/// Tolerance |gpu - cpu| <= tol * max(1, |cpu|): f32 1e-5 for programs of
/// add, sub, mul, div, sqrt, abs, neg, relu, reciprocal (same op order; only division and
/// sqrt may differ by an ulp), 1e-4 with exp/log/pow/erf/tanh/sigmoid/cos/sin
/// (each side's own implementations, a few ulp, compounded over the chain);
/// f16 1e-2 (one f16 ulp after slightly different f32 values). Tensors are
/// split over at most ~3 bindings each so 7 bindings stay within lavapipe's
/// limit of storage buffers per stage.
#[test]
fn fused_elementwise_random_programs() {
    let mut r = rng();
    let setup = Setup {
        split_parts: 2,
        device_bytes: false,
        f16_from_inputs: true,
        f16_split: true,
    };
    for case in 0..8 {
        let n_in = r.random_range(1..=6);
        let (op, transcendental) = random_program(&mut r, n_in);
        let out: Vec<usize> = if case == 0 {
            vec![2, 3, 4, 5, 2, 3, 2, 3]
        } else {
            (0..r.random_range(1..6))
                .map(|_| r.random_range(1..9))
                .collect()
        };
        let shapes = broadcast_shapes_for(&mut r, &out, n_in);
        for dtype in [DType::F32, DType::F16] {
            let tol = match (dtype, transcendental) {
                (DType::F16, _) => HALF,
                (_, true) => RED,
                _ => ELEM,
            };
            let ins = shapes
                .iter()
                .enumerate()
                .map(|(k, s)| {
                    let t = randt(&mut r, s, 1.5, dtype);
                    if k % 2 == 0 {
                        In::Run(t)
                    } else {
                        In::Const(t)
                    }
                })
                .collect();
            check_with(
                setup,
                &format!("FusedElementwise case {case} {dtype} {shapes:?} {op:?}"),
                Op::FusedElementwise(op.clone()),
                ins,
                tol,
            );
        }
    }
}
