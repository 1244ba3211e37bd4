//! The fused-op GPU kernels (Gelu, SiluMul, MatMulEpilogue) against the CPU
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
