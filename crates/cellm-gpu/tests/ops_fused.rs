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

use cellm_gpu::{GpuSession, SessionOptions};
use cellm_ir::ops::{Gelu, GeluApproximation, MatMulEpilogue, SiluMul};
use cellm_ir::{DType, Dim, Fact, Graph, Node, Op, Tensor};
use half::f16;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;

const ELEM: f64 = 1e-5;
const RED: f64 = 1e-4;
const HALF: f64 = 1e-2;

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

/// An input: a runtime graph input, a constant (initializer, as weights
/// are), or omitted.
enum In {
    Run(Tensor),
    Const(Tensor),
    None,
}

/// Runs `op` on the GPU and the CPU and compares every output.
fn check(what: &str, op: Op, inputs: Vec<In>, tol: f64) {
    let Some(ctx) = common::gpu() else { return };
    let mut g = Graph::new(what);
    let mut ids = Vec::new();
    let mut cpu_in: Vec<Option<Tensor>> = Vec::new();
    let mut feeds = HashMap::new();
    for (i, inp) in inputs.into_iter().enumerate() {
        let name = format!("in{i}");
        match inp {
            In::Run(t) => {
                let fact = Fact::new(
                    t.dtype(),
                    Some(t.shape().iter().map(|&d| Dim::Known(d)).collect()),
                );
                ids.push(Some(g.add_input(&name, fact)));
                cpu_in.push(Some(t.clone()));
                feeds.insert(name, t);
            }
            In::Const(t) => {
                ids.push(Some(g.add_initializer(&name, t.clone())));
                cpu_in.push(Some(t));
            }
            In::None => {
                ids.push(None);
                cpu_in.push(None);
            }
        }
    }
    let refs: Vec<Option<&Tensor>> = cpu_in.iter().map(|t| t.as_ref()).collect();
    let want = cellm_cpu::ops::eval(&op, &refs).unwrap_or_else(|e| panic!("{what}: CPU: {e:#}"));
    let outs: Vec<Option<usize>> = (0..want.len())
        .map(|j| Some(g.value(&format!("out{j}"))))
        .collect();
    g.outputs = outs.iter().flatten().copied().collect();
    g.add_node(Node {
        name: what.to_string(),
        op,
        inputs: ids,
        outputs: outs,
    })
    .expect("node");
    g.infer_facts()
        .unwrap_or_else(|e| panic!("{what}: infer: {e:#}"));
    let has_f16 = want.iter().any(|t| t.dtype() == DType::F16);
    // Also with tensors split over small bindings (chunked accessors; at most
    // ~6 chunks for the largest tensor) and, for f16, without SHADER_F16.
    let largest = want
        .iter()
        .chain(feeds.values())
        .chain(g.initializers.values())
        .map(|t| t.len() as u64 * 4)
        .max()
        .unwrap_or(0);
    let split = (largest / 6).div_ceil(256).max(16) * 256;
    let mut configs = vec![("default", None, false), ("split", Some(split), false)];
    if has_f16 {
        configs.push(("no SHADER_F16", None, true));
        configs.push(("no SHADER_F16, split", Some(split), true));
    }
    for (label, limit, no_f16) in configs {
        let opts = SessionOptions {
            poison_buffers: true,
            host_shape_math: false,
            max_binding_bytes_override: limit,
            disable_shader_f16: no_f16,
        };
        let what = format!("{what} [{label}]");
        let s = GpuSession::with_context(ctx.clone(), g.clone(), opts)
            .unwrap_or_else(|e| panic!("{what}: {e:#}"));
        let got = s
            .run(&feeds)
            .unwrap_or_else(|e| panic!("{what}: GPU: {e:#}"));
        let stats = s.last_stats();
        assert!(
            stats.host_ops.is_empty(),
            "{what}: ran on the host: {:?}",
            stats.host_ops
        );
        for (j, w) in want.iter().enumerate() {
            let gt = &got[&format!("out{j}")];
            assert_eq!(gt.dtype(), w.dtype(), "{what} output {j} dtype");
            assert_eq!(gt.shape(), w.shape(), "{what} output {j} shape");
            let (a, b) = (gt.to_f64_vec(), w.to_f64_vec());
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                let bound = tol * y.abs().max(1.0);
                assert!(
                    (x - y).abs() <= bound,
                    "{what} output {j}[{i}]: gpu {x} vs cpu {y} (tol {bound:e})"
                );
            }
        }
    }
}

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
