//! Per-op GPU kernels against the CPU reference (`cellm_cpu::ops::eval`) on
//! fresh random inputs (seed printed; set CELLM_TEST_SEED to replay), odd
//! sizes, broadcasting and empty past. Every device buffer is poisoned
//! (all-ones words: NaN / -1) before it is written, and integer ops are
//! forced onto the device.
//!
//! Tolerances, |gpu - cpu| <= tol * max(1, |cpu|): f32 elementwise 1e-5
//! (GPU transcendental functions are within a few ulp); reductions, matmul,
//! norms, softmax, attention 1e-4 (summation order differs); f16 outputs
//! 1e-2 (rounding to f16 can differ by one ulp = 2^-10 relative after a
//! different f32 summation). Integers and bools must match exactly.

mod common;

use cellm_testkit::causal_gqa as gqa;
use common::op_check::{check_with, rng, In, Setup};

/// Runs `op` on the GPU and the CPU and compares every output.
fn check(what: &str, op: Op, inputs: Vec<In>, tol: f64) {
    let setup = Setup {
        split_parts: 6,
        device_bytes: false,
        f16_from_inputs: true,
        f16_split: true,
    };
    check_with(setup, what, op, inputs, tol);
}

use cellm_ir::ops::*;
use cellm_ir::{DType, Op, Tensor};
use half::f16;
use rand::rngs::StdRng;
use rand::Rng;

const ELEM: f64 = 1e-5;
const RED: f64 = 1e-4;
const HALF: f64 = 1e-2;

fn randf(r: &mut StdRng, shape: &[usize], lo: f32, hi: f32) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec(
        shape.to_vec(),
        (0..n).map(|_| r.random_range(lo..hi)).collect::<Vec<f32>>(),
    )
}

fn randh(r: &mut StdRng, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec(
        shape.to_vec(),
        (0..n)
            .map(|_| f16::from_f32(r.random_range(-2.0..2.0)))
            .collect::<Vec<f16>>(),
    )
}

fn randi(r: &mut StdRng, shape: &[usize], lo: i64, hi: i64) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec(
        shape.to_vec(),
        (0..n).map(|_| r.random_range(lo..hi)).collect::<Vec<i64>>(),
    )
}

fn randb(r: &mut StdRng, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_bools(shape.to_vec(), (0..n).map(|_| r.random_bool(0.5)).collect())
}

fn ints(v: &[i64]) -> Tensor {
    Tensor::from_vec(vec![v.len()], v.to_vec())
}

/// An input: a runtime graph input, or a constant (initializer) like the
/// shape/axes operands of real graphs.
fn dims(r: &mut StdRng, rank: usize, max: usize) -> Vec<usize> {
    (0..rank).map(|_| r.random_range(1..=max)).collect()
}

#[test]
fn unary_ops() {
    let mut r = rng();
    use UnaryOp::*;
    for op in [
        Identity, Neg, Sqrt, Reciprocal, Sigmoid, Tanh, Cos, Sin, Exp, Log, Abs, Relu, Erf,
    ] {
        let shape = dims(&mut r, 3, 9);
        let (lo, hi) = match op {
            Sqrt | Log | Reciprocal => (0.1, 4.0),
            _ => (-4.0, 4.0),
        };
        let x = randf(&mut r, &shape, lo, hi);
        check(
            &format!("{op:?}"),
            Op::Unary(Unary { op }),
            vec![In::Run(x)],
            ELEM,
        );
    }
    for op in [Neg, Abs, Relu] {
        let shape = dims(&mut r, 2, 7);
        let x = randi(&mut r, &shape, -50, 50);
        check(
            &format!("{op:?} i64"),
            Op::Unary(Unary { op }),
            vec![In::Run(x)],
            0.0,
        );
    }
    let b = randb(&mut r, &[5, 3]);
    check("Not", Op::Unary(Unary { op: Not }), vec![In::Run(b)], 0.0);
    let h = randh(&mut r, &[3, 7]);
    check(
        "Exp f16",
        Op::Unary(Unary { op: Exp }),
        vec![In::Run(h)],
        HALF,
    );
}

#[test]
fn binary_ops_broadcast() {
    let mut r = rng();
    use BinaryOp::*;
    let a_shape = [3, 1, 5];
    let b_shape = [4, 1];
    for op in [
        Add,
        Sub,
        Mul,
        Div,
        Equal,
        Less,
        LessOrEqual,
        Greater,
        GreaterOrEqual,
    ] {
        let a = randf(&mut r, &a_shape, -3.0, 3.0);
        let b = randf(&mut r, &b_shape, 0.5, 3.0);
        check(
            &format!("{op:?} f32"),
            Op::Binary(Binary { op }),
            vec![In::Run(a), In::Run(b)],
            ELEM,
        );
    }
    let a = randf(&mut r, &[2, 7], 0.1, 3.0);
    let b = randf(&mut r, &[7], -2.0, 2.0);
    check(
        "Pow f32",
        Op::Binary(Binary { op: Pow }),
        vec![In::Run(a), In::Run(b)],
        ELEM,
    );
    let a = randf(&mut r, &[6], -3.0, 3.0);
    check(
        "Pow f32^i64",
        Op::Binary(Binary { op: Pow }),
        vec![In::Run(a), In::Const(Tensor::scalar(2i64))],
        ELEM,
    );
    for op in [
        Add,
        Sub,
        Mul,
        Div,
        Mod { fmod: false },
        Mod { fmod: true },
        Equal,
        Less,
        Greater,
    ] {
        let a = randi(&mut r, &[5, 1], -40, 40);
        let mut b = randi(&mut r, &[1, 6], 1, 9);
        if r.random_bool(0.5) {
            b = Tensor::from_vec(
                vec![1, 6],
                b.i64s()
                    .expect("i64")
                    .iter()
                    .map(|v| -v)
                    .collect::<Vec<i64>>(),
            );
        }
        check(
            &format!("{op:?} i64"),
            Op::Binary(Binary { op }),
            vec![In::Run(a), In::Run(b)],
            0.0,
        );
    }
    for op in [And, Or] {
        check(
            &format!("{op:?}"),
            Op::Binary(Binary { op }),
            vec![
                In::Run(randb(&mut r, &[4, 3])),
                In::Run(randb(&mut r, &[3])),
            ],
            0.0,
        );
    }
    let (a, b) = (randh(&mut r, &[3, 5]), randh(&mut r, &[5]));
    check(
        "Mul f16",
        Op::Binary(Binary { op: Mul }),
        vec![In::Run(a), In::Run(b)],
        HALF,
    );
}

#[test]
fn where_and_cast() {
    let mut r = rng();
    let c = randb(&mut r, &[2, 1, 5]);
    check(
        "Where",
        Op::Where(Where),
        vec![
            In::Run(c),
            In::Run(randf(&mut r, &[3, 5], -1.0, 1.0)),
            In::Run(randf(&mut r, &[1], -1.0, 1.0)),
        ],
        0.0,
    );
    let c = randb(&mut r, &[4]);
    check(
        "Where i64",
        Op::Where(Where),
        vec![
            In::Run(c),
            In::Run(randi(&mut r, &[4], -9, 9)),
            In::Run(randi(&mut r, &[4], -9, 9)),
        ],
        0.0,
    );
    for (from, to) in [
        (DType::F32, DType::I64),
        (DType::I64, DType::F32),
        (DType::F32, DType::F16),
        (DType::F16, DType::F32),
        (DType::Bool, DType::F32),
        (DType::F32, DType::Bool),
        (DType::I64, DType::Bool),
    ] {
        let x = match from {
            DType::F32 => randf(&mut r, &[3, 7], -50.0, 50.0),
            DType::F16 => randh(&mut r, &[3, 7]),
            DType::I64 => randi(&mut r, &[3, 7], -3, 3),
            _ => randb(&mut r, &[3, 7]),
        };
        // f32 -> f16 rounding is exact on both sides (round to nearest even).
        check(
            &format!("Cast {from}->{to}"),
            Op::Cast(Cast { to }),
            vec![In::Run(x)],
            0.0,
        );
    }
}

#[test]
fn data_movement() {
    let mut r = rng();
    let x = randf(&mut r, &[2, 3, 5], -1.0, 1.0);
    check(
        "Transpose",
        Op::Transpose(Transpose {
            perm: Some(vec![2, 0, 1]),
        }),
        vec![In::Run(x.clone())],
        0.0,
    );
    check(
        "Transpose default",
        Op::Transpose(Transpose { perm: None }),
        vec![In::Run(x.clone())],
        0.0,
    );
    check(
        "Slice neg step",
        Op::Slice(Slice),
        vec![
            In::Run(x.clone()),
            In::Const(ints(&[-1, 1])),
            In::Const(ints(&[-100, 3])),
            In::Const(ints(&[2, 1])),
            In::Const(ints(&[-2, 1])),
        ],
        0.0,
    );
    check(
        "Slice huge end",
        Op::Slice(Slice),
        vec![
            In::Run(x.clone()),
            In::Const(ints(&[1])),
            In::Const(ints(&[i64::MAX])),
            In::Const(ints(&[1])),
            In::None,
        ],
        0.0,
    );
    check(
        "Expand",
        Op::Expand(Expand),
        vec![
            In::Run(randf(&mut r, &[3, 1], -1.0, 1.0)),
            In::Const(ints(&[2, 3, 4])),
        ],
        0.0,
    );
    check(
        "Tile",
        Op::Tile(Tile),
        vec![
            In::Run(randi(&mut r, &[2, 3], -5, 5)),
            In::Const(ints(&[2, 3])),
        ],
        0.0,
    );
    check(
        "Concat empty past",
        Op::Concat(Concat { axis: 2 }),
        vec![
            In::Run(randf(&mut r, &[1, 2, 0, 4], -1.0, 1.0)),
            In::Run(randf(&mut r, &[1, 2, 3, 4], -1.0, 1.0)),
        ],
        0.0,
    );
    check(
        "Concat axis 1",
        Op::Concat(Concat { axis: -2 }),
        vec![
            In::Run(randf(&mut r, &[2, 3, 4], -1.0, 1.0)),
            In::Run(randf(&mut r, &[2, 1, 4], -1.0, 1.0)),
            In::Run(randf(&mut r, &[2, 5, 4], -1.0, 1.0)),
        ],
        0.0,
    );
    check(
        "Split",
        Op::Split(Split {
            axis: 1,
            split: None,
            num_outputs: 0,
        }),
        vec![In::Run(x.clone()), In::Const(ints(&[1, 2]))],
        0.0,
    );
    check(
        "Split num_outputs",
        Op::Split(Split {
            axis: 2,
            split: None,
            num_outputs: 2,
        }),
        vec![In::Run(x.clone())],
        0.0,
    );
    check(
        "Reshape",
        Op::Reshape(Reshape { allowzero: false }),
        vec![In::Run(x.clone()), In::Const(ints(&[0, -1]))],
        0.0,
    );
    check(
        "Unsqueeze",
        Op::Unsqueeze(Unsqueeze { axes: None }),
        vec![In::Run(x.clone()), In::Const(ints(&[0, -1]))],
        0.0,
    );
    check(
        "Squeeze",
        Op::Squeeze(Squeeze { axes: None }),
        vec![
            In::Run(randf(&mut r, &[1, 3, 1], -1.0, 1.0)),
            In::Const(ints(&[2])),
        ],
        0.0,
    );
    check(
        "Flatten",
        Op::Flatten(Flatten { axis: 2 }),
        vec![In::Run(x.clone())],
        0.0,
    );
    check(
        "Trilu upper",
        Op::Trilu(Trilu { upper: true }),
        vec![
            In::Run(randf(&mut r, &[2, 4, 5], -1.0, 1.0)),
            In::Const(Tensor::scalar(1i64)),
        ],
        0.0,
    );
    check(
        "Trilu lower",
        Op::Trilu(Trilu { upper: false }),
        vec![In::Run(randf(&mut r, &[5, 3], -1.0, 1.0)), In::None],
        0.0,
    );
    check(
        "ConstantOfShape",
        Op::ConstantOfShape(ConstantOfShape {
            value: Tensor::from_vec(vec![1], vec![-2.5f32]),
        }),
        vec![In::Const(ints(&[3, 4]))],
        0.0,
    );
}

#[test]
fn gathers_and_scatter() {
    let mut r = rng();
    let data = randf(&mut r, &[7, 5], -1.0, 1.0);
    check(
        "Gather axis 0",
        Op::Gather(Gather { axis: 0 }),
        vec![
            In::Run(data.clone()),
            In::Run(randi(&mut r, &[2, 3], -7, 7)),
        ],
        0.0,
    );
    check(
        "Gather axis 1",
        Op::Gather(Gather { axis: 1 }),
        vec![In::Run(data.clone()), In::Const(Tensor::scalar(-1i64))],
        0.0,
    );
    let d3 = randf(&mut r, &[2, 4, 3], -1.0, 1.0);
    let idx = Tensor::from_vec(vec![3, 2], vec![0i64, 1, 1, -1, 0, 3]);
    check(
        "GatherND",
        Op::GatherND(GatherND { batch_dims: 0 }),
        vec![In::Run(d3.clone()), In::Run(idx)],
        0.0,
    );
    let idx = Tensor::from_vec(vec![2, 1], vec![3i64, 0]);
    check(
        "GatherND batch_dims 1",
        Op::GatherND(GatherND { batch_dims: 1 }),
        vec![In::Run(d3.clone()), In::Run(idx)],
        0.0,
    );
    let idx = Tensor::from_vec(vec![2, 2], vec![1i64, 2, 0, 0]);
    check(
        "ScatterND",
        Op::ScatterND(ScatterND {
            reduction: ScatterReduction::None,
        }),
        vec![
            In::Run(d3),
            In::Run(idx),
            In::Run(randf(&mut r, &[2, 3], -1.0, 1.0)),
        ],
        0.0,
    );
}

#[test]
fn reductions_softmax_norms() {
    let mut r = rng();
    let x = randf(&mut r, &[3, 5, 7], -2.0, 2.0);
    for kind in [ReduceKind::Mean, ReduceKind::Sum, ReduceKind::Max] {
        let op = Op::Reduce(Reduce {
            kind,
            axes: None,
            keepdims: true,
            noop_with_empty_axes: false,
        });
        check(
            &format!("Reduce{kind:?}"),
            op,
            vec![In::Run(x.clone()), In::Const(ints(&[0, -1]))],
            RED,
        );
    }
    let op = Op::Reduce(Reduce {
        kind: ReduceKind::Sum,
        axes: Some(vec![1]),
        keepdims: false,
        noop_with_empty_axes: false,
    });
    check("ReduceSum attr", op.clone(), vec![In::Run(x.clone())], RED);
    // Long reductions (the vision encoder counts zero pixels over 3x512x512):
    // more than 65535 elements per output, which llvmpipe caps per loop.
    check(
        "ReduceSum long i64",
        op.clone(),
        vec![In::Run(randi(&mut r, &[2, 70001], 0, 2))],
        0.0,
    );
    check(
        "ReduceSum long f32",
        op,
        vec![In::Run(randf(&mut r, &[2, 70001], 0.0, 1.0))],
        RED,
    );
    check(
        "Softmax last",
        Op::Softmax(Softmax { axis: -1 }),
        vec![In::Run(x.clone())],
        RED,
    );
    check(
        "Softmax mid",
        Op::Softmax(Softmax { axis: 1 }),
        vec![In::Run(x.clone())],
        RED,
    );
    check(
        "Softmax f16",
        Op::Softmax(Softmax { axis: -1 }),
        vec![In::Run(randh(&mut r, &[4, 9]))],
        HALF,
    );
    check(
        "LayerNormalization",
        Op::LayerNormalization(LayerNormalization {
            axis: -1,
            epsilon: 1e-5,
        }),
        vec![
            In::Run(x.clone()),
            In::Const(randf(&mut r, &[7], 0.5, 1.5)),
            In::Const(randf(&mut r, &[7], -1.0, 1.0)),
        ],
        RED,
    );
    check(
        "SimplifiedLayerNormalization",
        Op::SimplifiedLayerNormalization(SimplifiedLayerNormalization {
            axis: -1,
            epsilon: 1e-6,
        }),
        vec![In::Run(x.clone()), In::Const(randf(&mut r, &[7], 0.5, 1.5))],
        RED,
    );
    check(
        "SkipSimplifiedLayerNormalization",
        Op::SkipSimplifiedLayerNormalization(SkipSimplifiedLayerNormalization { epsilon: 1e-6 }),
        vec![
            In::Run(x.clone()),
            In::Run(randf(&mut r, &[3, 5, 7], -2.0, 2.0)),
            In::Const(randf(&mut r, &[7], 0.5, 1.5)),
        ],
        RED,
    );
    check(
        "SkipSimplifiedLayerNormalization f16",
        Op::SkipSimplifiedLayerNormalization(SkipSimplifiedLayerNormalization { epsilon: 1e-6 }),
        vec![
            In::Run(randh(&mut r, &[2, 3, 8])),
            In::Run(randh(&mut r, &[2, 3, 8])),
            In::Const(randh(&mut r, &[8])),
        ],
        HALF,
    );
}

#[test]
fn mat_mul_and_conv() {
    let mut r = rng();
    let (m, k, n) = (
        r.random_range(1..40),
        r.random_range(1..40),
        r.random_range(1..40),
    );
    let a = randf(&mut r, &[2, 1, m, k], -1.0, 1.0);
    let b = randf(&mut r, &[3, k, n], -1.0, 1.0);
    check(
        "MatMul batched broadcast",
        Op::MatMul(MatMul),
        vec![In::Run(a), In::Const(b)],
        RED,
    );
    check(
        "MatMul 1-D",
        Op::MatMul(MatMul),
        vec![
            In::Run(randf(&mut r, &[k], -1.0, 1.0)),
            In::Run(randf(&mut r, &[2, k, n], -1.0, 1.0)),
        ],
        RED,
    );
    check(
        "MatMul f16",
        Op::MatMul(MatMul),
        vec![
            In::Run(randh(&mut r, &[5, 17])),
            In::Const(randh(&mut r, &[17, 9])),
        ],
        HALF,
    );
    let patch = Conv {
        kernel_shape: Some(vec![16, 16]),
        strides: vec![16, 16],
        pads: vec![0; 4],
        dilations: vec![1, 1],
        group: 1,
        auto_pad: AutoPad::NotSet,
    };
    check(
        "Conv patch embedding",
        Op::Conv(patch),
        vec![
            In::Run(randf(&mut r, &[1, 3, 48, 32], -1.0, 1.0)),
            In::Const(randf(&mut r, &[8, 3, 16, 16], -0.1, 0.1)),
            In::Const(randf(&mut r, &[8], -1.0, 1.0)),
        ],
        RED,
    );
    let general = Conv {
        kernel_shape: None,
        strides: vec![2, 1],
        pads: vec![1, 0, 1, 2],
        dilations: vec![1, 2],
        group: 2,
        auto_pad: AutoPad::NotSet,
    };
    check(
        "Conv general",
        Op::Conv(general),
        vec![
            In::Run(randf(&mut r, &[2, 4, 9, 7], -1.0, 1.0)),
            In::Const(randf(&mut r, &[6, 2, 3, 3], -0.5, 0.5)),
            In::None,
        ],
        RED,
    );
}

#[test]
fn rotary_and_attention() {
    let mut r = rng();
    let (b, s, h, d) = (2, 3, 2, 8);
    for interleaved in [false, true] {
        let op = RotaryEmbedding {
            interleaved,
            num_heads: h,
            rotary_embedding_dim: 0,
            scale: 1.0,
        };
        check(
            &format!("RotaryEmbedding interleaved={interleaved}"),
            Op::RotaryEmbedding(op),
            vec![
                In::Run(randf(&mut r, &[b, s, h * d], -1.0, 1.0)),
                In::Run(randi(&mut r, &[b, s], 0, 16)),
                In::Const(randf(&mut r, &[16, d / 2], -1.0, 1.0)),
                In::Const(randf(&mut r, &[16, d / 2], -1.0, 1.0)),
            ],
            ELEM * 10.0,
        );
    }
    for past in [0usize, 4] {
        let total = past + s;
        let mut mask = vec![1i64; b * total];
        mask[0] = 0;
        let op = MultiHeadAttention {
            num_heads: h,
            scale: None,
            mask_filter_value: -10000.0,
            unidirectional: true,
            kv_num_heads: None,
        };
        check(
            &format!("MultiHeadAttention past={past}"),
            Op::MultiHeadAttention(op),
            vec![
                In::Run(randf(&mut r, &[b, s, h * d], -1.0, 1.0)),
                In::Run(randf(&mut r, &[b, s, h * d], -1.0, 1.0)),
                In::Run(randf(&mut r, &[b, s, h * d], -1.0, 1.0)),
                In::None,
                In::Run(Tensor::from_vec(vec![b, total], mask)),
                In::None,
                In::Run(randf(&mut r, &[b, h, past, d], -1.0, 1.0)),
                In::Run(randf(&mut r, &[b, h, past, d], -1.0, 1.0)),
            ],
            RED,
        );
    }
    // f16 activations, caches and past (the fp16 graphs' decode step).
    check(
        "RotaryEmbedding f16",
        Op::RotaryEmbedding(RotaryEmbedding {
            interleaved: false,
            num_heads: h,
            rotary_embedding_dim: 0,
            scale: 1.0,
        }),
        vec![
            In::Run(randh(&mut r, &[b, s, h * d])),
            In::Run(randi(&mut r, &[b, s], 0, 16)),
            In::Const(randh(&mut r, &[16, d / 2])),
            In::Const(randh(&mut r, &[16, d / 2])),
        ],
        HALF,
    );
    check(
        "MultiHeadAttention f16 past=5",
        Op::MultiHeadAttention(MultiHeadAttention {
            num_heads: h,
            scale: None,
            mask_filter_value: -10000.0,
            unidirectional: true,
            kv_num_heads: None,
        }),
        vec![
            In::Run(randh(&mut r, &[b, 1, h * d])),
            In::Run(randh(&mut r, &[b, 1, h * d])),
            In::Run(randh(&mut r, &[b, 1, h * d])),
            In::None,
            In::Run(Tensor::from_vec(vec![b, 6], vec![1i64; b * 6])),
            In::None,
            In::Run(randh(&mut r, &[b, h, 5, d])),
            In::Run(randh(&mut r, &[b, h, 5, d])),
        ],
        HALF,
    );
}

/// Attention over a long key range (decode against a long cache): the
/// blocked kernel's 256-key tiles, its per-group online softmax and the
/// final merge, with head dims that are not a multiple of 8 (20), the real
/// model's 64 and the largest (256), grouped key/value heads in both cache
/// layouts, causal rows (S = 3), key-padding masks ([B, T] and [B, S, T],
/// random holes plus a padded tail) and an attention bias. V is centred on 1
/// so outputs are O(1) and the 1e-4 tolerance is effectively relative.
#[test]
fn long_context_attention() {
    let mut r = rng();
    let b = 2;
    let mut case = 0;
    for t in [700usize, 2100] {
        for s in [1usize, 3] {
            for masked in [false, true] {
                // (head dim, heads, kv heads)
                let (d, h, g) = [(64, 9, 3), (20, 4, 2), (64, 9, 3), (256, 2, 1)][case % 4];
                let bnsh = (case / 2) % 2 == 1;
                case += 1;
                let kv_shape = if bnsh {
                    vec![b, g, t, d]
                } else {
                    vec![b, t, g * d]
                };
                let mask = masked.then(|| {
                    let shape = if t == 700 { vec![b, t] } else { vec![b, s, t] };
                    let n: usize = shape.iter().product();
                    let row = *shape.last().unwrap();
                    let v: Vec<i64> = (0..n)
                        .map(|i| {
                            let padded = i >= n - n / b && i % row >= row - 37;
                            i64::from(!padded && !r.random_bool(0.1))
                        })
                        .collect();
                    Tensor::from_vec(shape, v)
                });
                let bias = (!masked && s == 3).then(|| randf(&mut r, &[1, h, s, t], -2.0, 0.0));
                let what = format!(
                    "attention t={t} s={s} d={d} h={h} g={g} bnsh={bnsh} mask={:?} bias={}",
                    mask.as_ref().map(|m| m.shape().to_vec()),
                    bias.is_some()
                );
                check(
                    &what,
                    gqa(h, g),
                    vec![
                        In::Run(randf(&mut r, &[b, s, h * d], -2.0, 2.0)),
                        In::Run(randf(&mut r, &kv_shape, -1.0, 1.0)),
                        In::Run(randf(&mut r, &kv_shape, -1.0, 3.0)),
                        In::None,
                        mask.map_or(In::None, In::Run),
                        bias.map_or(In::None, In::Run),
                    ],
                    RED,
                );
            }
        }
    }
    // f16 cache (the fp16 graphs' decode step) over several tiles.
    let (t, d, h, g) = (1300, 64, 6, 2);
    check(
        "attention f16 t=1300 s=1",
        gqa(h, g),
        vec![
            In::Run(randh(&mut r, &[b, 1, h * d])),
            In::Run(randh(&mut r, &[b, t, g * d])),
            In::Run(randh(&mut r, &[b, t, g * d])),
        ],
        HALF,
    );
}

/// Runs `f` with the attention's split-K path forced to `splits` key chunks
/// on this thread (lavapipe never splits on its own), then restores the
/// automatic choice.
fn with_key_splits(splits: usize, f: impl FnOnce()) {
    cellm_gpu::ops::multi_head_attention::force_key_splits(Some(splits));
    f();
    cellm_gpu::ops::multi_head_attention::force_key_splits(None);
}

/// Split-K attention (flash decoding: key chunks per workgroup, then the
/// merge kernel), forced on: chunk edges inside 256-key tiles, grouped
/// key/value heads in both cache layouts, causal rows (S = 3, so the first
/// rows' last chunk is shorter or empty), key-padding masks whose padded
/// tail covers whole chunks (lengths [B], [B, T], [B, S, T]: those chunks'
/// scores sit ~10000 below the rest, so the merge must rescale them to 0),
/// an attention bias, past_key/past_value joined with a causal S = 3 step,
/// and f16 caches. V is centred on 1 so outputs are O(1) and the 1e-4
/// tolerance is effectively relative (summation order differs from the CPU).
#[test]
fn split_k_attention() {
    let mut r = rng();
    let b = 2;
    // (total keys, query rows, splits, head dim, heads, kv heads, bnsh, mask kind)
    let cases = [
        (700, 1, 3, 64, 9, 3, false, 1),
        (700, 3, 8, 20, 4, 2, true, 2),
        (2100, 1, 32, 64, 9, 3, true, 3),
        (2100, 3, 5, 256, 2, 1, false, 0),
        (2100, 3, 9, 64, 6, 2, false, 3),
        (40, 3, 20, 20, 4, 2, false, 2),
    ];
    for (t, s, splits, d, h, g, bnsh, mask_kind) in cases {
        let kv_shape = if bnsh {
            vec![b, g, t, d]
        } else {
            vec![b, t, g * d]
        };
        // Batch 1 pads its last 45% of keys: at least one whole chunk.
        let keep = t - t * 45 / 100;
        let mask = match mask_kind {
            1 => Some(Tensor::from_vec(vec![b], vec![t as i64, keep as i64])),
            2 | 3 => {
                let shape = if mask_kind == 2 {
                    vec![b, t]
                } else {
                    vec![b, s, t]
                };
                let n: usize = shape.iter().product();
                let v: Vec<i64> = (0..n)
                    .map(|i| {
                        let padded = i >= n / b && i % t >= keep;
                        i64::from(!padded && !r.random_bool(0.1))
                    })
                    .collect();
                Some(Tensor::from_vec(shape, v))
            }
            _ => None,
        };
        let bias = (mask_kind == 0).then(|| randf(&mut r, &[b, h, s, t], -2.0, 0.0));
        let what = format!(
            "split-K attention t={t} s={s} splits={splits} d={d} h={h} g={g} bnsh={bnsh} mask_kind={mask_kind} bias={}",
            bias.is_some()
        );
        let inputs = vec![
            In::Run(randf(&mut r, &[b, s, h * d], -2.0, 2.0)),
            In::Run(randf(&mut r, &kv_shape, -1.0, 1.0)),
            In::Run(randf(&mut r, &kv_shape, -1.0, 3.0)),
            In::None,
            mask.map_or(In::None, In::Run),
            bias.map_or(In::None, In::Run),
        ];
        with_key_splits(splits, || check(&what, gqa(h, g), inputs, RED));
    }
    // past_key/past_value (present K/V copied, one K/V head per head) with a
    // causal 3-row step and a padded tail.
    let (h, d, s) = (4, 20, 3);
    for (past, splits) in [(697usize, 4usize), (2097, 11)] {
        let total = past + s;
        let keep = total - 300;
        let mask: Vec<i64> = (0..b * total)
            .map(|i| i64::from(i < total || i % total < keep))
            .collect();
        let op = MultiHeadAttention {
            num_heads: h,
            scale: None,
            mask_filter_value: -10000.0,
            unidirectional: true,
            kv_num_heads: None,
        };
        let inputs = vec![
            In::Run(randf(&mut r, &[b, s, h * d], -2.0, 2.0)),
            In::Run(randf(&mut r, &[b, s, h * d], -1.0, 1.0)),
            In::Run(randf(&mut r, &[b, s, h * d], -1.0, 3.0)),
            In::None,
            In::Run(Tensor::from_vec(vec![b, total], mask)),
            In::None,
            In::Run(randf(&mut r, &[b, h, past, d], -1.0, 1.0)),
            In::Run(randf(&mut r, &[b, h, past, d], -1.0, 3.0)),
        ];
        let what = format!("split-K attention past={past} s={s} splits={splits}");
        with_key_splits(splits, || {
            check(&what, Op::MultiHeadAttention(op), inputs, RED)
        });
    }
    // f16 caches (the fp16 graphs' decode step), S = 1 and a causal S = 3.
    for (t, s, splits) in [(2100usize, 1usize, 7usize), (700, 3, 6)] {
        let (d, h, g) = (64, 6, 2);
        let inputs = vec![
            In::Run(randh(&mut r, &[b, s, h * d])),
            In::Run(randh(&mut r, &[b, t, g * d])),
            In::Run(randh(&mut r, &[b, t, g * d])),
        ];
        let what = format!("split-K attention f16 t={t} s={s} splits={splits}");
        with_key_splits(splits, || check(&what, gqa(h, g), inputs, HALF));
    }
    // f16 caches under f32 queries (`--dtype f16`'s KV caches): the kernels
    // widen the same f16 values the CPU widens, so f32's bound holds.
    for (t, s, splits) in [(2100usize, 1usize, 7usize), (700, 3, 6)] {
        let (d, h, g) = (64, 6, 2);
        let inputs = vec![
            In::Run(randf(&mut r, &[b, s, h * d], -2.0, 2.0)),
            In::Run(randh(&mut r, &[b, t, g * d])),
            In::Run(randh(&mut r, &[b, t, g * d])),
        ];
        let what = format!("split-K attention f32 x f16 cache t={t} s={s} splits={splits}");
        with_key_splits(splits, || check(&what, gqa(h, g), inputs, RED));
    }
}

/// The split path really runs when forced (chunk kernel + merge: two
/// dispatches) and lavapipe keeps its single dispatch otherwise.
#[test]
fn split_k_attention_dispatches() {
    use cellm_gpu::{GpuSession, SessionOptions};
    use cellm_ir::{Dim, Fact, Graph, Node};
    let Some(ctx) = common::gpu() else { return };
    let mut r = rng();
    let (b, t, d, h, g) = (1, 2100, 64, 9, 3);
    let mut graph = Graph::new("t");
    let mut feeds = std::collections::HashMap::new();
    let mut ids = vec![];
    for (i, x) in [
        randf(&mut r, &[b, 1, h * d], -2.0, 2.0),
        randf(&mut r, &[b, t, g * d], -1.0, 1.0),
        randf(&mut r, &[b, t, g * d], -1.0, 3.0),
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("in{i}");
        let fact = Fact::new(
            x.dtype(),
            Some(x.shape().iter().map(|&n| Dim::Known(n)).collect()),
        );
        ids.push(Some(graph.add_input(&name, fact)));
        feeds.insert(name, x);
    }
    let out = graph.value("out");
    graph.outputs = vec![out];
    graph
        .add_node(Node {
            name: "mha".into(),
            op: gqa(h, g),
            inputs: ids,
            outputs: vec![Some(out)],
        })
        .unwrap();
    graph.infer_facts().unwrap();
    let cpu = ctx.adapter.device_type == "Cpu";
    for forced in [None, Some(16)] {
        cellm_gpu::ops::multi_head_attention::force_key_splits(forced);
        let s = GpuSession::with_context(ctx.clone(), graph.clone(), SessionOptions::default())
            .unwrap();
        s.run(&feeds).unwrap();
        cellm_gpu::ops::multi_head_attention::force_key_splits(None);
        let st = s.last_stats();
        assert!(st.host_ops.is_empty(), "{:?}", st.host_ops);
        // Off lavapipe 9 rows over 2100 keys split on their own.
        let want = if forced.is_some() || !cpu { 2 } else { 1 };
        assert_eq!(st.dispatches, want, "forced {forced:?} on {}", ctx.adapter);
    }
}

/// Tensors above the (lowered) binding limit, the GEMV path, big dispatches
/// that must be folded, and f16 data at odd element offsets. `check` runs each
/// case again with every tensor split over several bindings.
#[test]
fn large_and_split_tensors() {
    let mut r = rng();
    let (k, n) = (r.random_range(200..400), r.random_range(150..300));
    check(
        "GEMV f32 (M = 1)",
        Op::MatMul(MatMul),
        vec![
            In::Run(randf(&mut r, &[1, 1, k], -1.0, 1.0)),
            In::Const(randf(&mut r, &[k, n], -1.0, 1.0)),
        ],
        RED,
    );
    check(
        "GEMV f16 (M = 1)",
        Op::MatMul(MatMul),
        vec![
            In::Run(randh(&mut r, &[1, k])),
            In::Const(randh(&mut r, &[k, n])),
        ],
        HALF,
    );
    let m = r.random_range(65..150);
    check(
        "MatMul several 64x64 tiles",
        Op::MatMul(MatMul),
        vec![
            In::Run(randf(&mut r, &[m, k], -1.0, 1.0)),
            In::Const(randf(&mut r, &[k, n], -1.0, 1.0)),
        ],
        RED,
    );
    // 70000 batches: more workgroups than one dispatch dimension allows (the
    // tiled kernel folds the same way; 70000 of its 256-thread groups take a
    // minute on lavapipe, so only the GEMV path is run here).
    check(
        "MatMul 70000 batches",
        Op::MatMul(MatMul),
        vec![
            In::Run(randf(&mut r, &[70000, 1, 3], -1.0, 1.0)),
            In::Run(randf(&mut r, &[70000, 3, 2], -1.0, 1.0)),
        ],
        RED,
    );
    let vocab = r.random_range(900..1100);
    check(
        "Gather f16 embedding table",
        Op::Gather(Gather { axis: 0 }),
        vec![
            In::Const(randh(&mut r, &[vocab, 67])),
            In::Run(randi(&mut r, &[1, 9], -(vocab as i64), vocab as i64)),
        ],
        0.0,
    );
    check(
        "Gather f32 embedding table",
        Op::Gather(Gather { axis: 0 }),
        vec![
            In::Const(randf(&mut r, &[vocab, 67], -1.0, 1.0)),
            In::Run(randi(&mut r, &[2, 5], 0, vocab as i64)),
        ],
        0.0,
    );
    check(
        "Concat f16 odd widths",
        Op::Concat(Concat { axis: 1 }),
        vec![
            In::Run(randh(&mut r, &[37, 5])),
            In::Run(randh(&mut r, &[37, 7])),
            In::Const(randh(&mut r, &[37, 3])),
        ],
        0.0,
    );
    check(
        "Concat f32 large",
        Op::Concat(Concat { axis: 0 }),
        vec![
            In::Run(randf(&mut r, &[300, 101], -1.0, 1.0)),
            In::Run(randf(&mut r, &[211, 101], -1.0, 1.0)),
        ],
        0.0,
    );
    check(
        "Slice f16 odd offsets",
        Op::Slice(Slice),
        vec![
            In::Run(randh(&mut r, &[9, 13])),
            In::Const(ints(&[1, 3])),
            In::Const(ints(&[8, 12])),
            In::Const(ints(&[0, 1])),
            In::Const(ints(&[2, 3])),
        ],
        0.0,
    );
    // 4.3M elements: more than 65535 workgroups of 64 threads.
    check(
        "Neg over 4.3M elements",
        Op::Unary(Unary { op: UnaryOp::Neg }),
        vec![In::Run(randf(&mut r, &[4_300_000], -1.0, 1.0))],
        0.0,
    );
}

/// Grouped-query attention (`kv_num_heads`, what the `kv_cache` pass makes)
/// over [B, T, G*D] cache views and [B, G, T, D] values, through both kernels
/// (a workgroup per row for few rows, a thread per row for many), and the
/// KvCacheAppend op.
#[test]
fn grouped_attention_and_kv_cache_append() {
    let mut r = rng();
    let (b, g, d) = (r.random_range(1..3), r.random_range(1..4), 8);
    let rep = r.random_range(2..4);
    let h = g * rep;
    // S = 1 (decode), a short prefill, and enough rows for the per-row kernel.
    for (s, past) in [(1usize, 70usize), (5, 3), (40, 0)] {
        let t = past + s;
        for bnsh in [false, true] {
            let kv_shape = if bnsh {
                vec![b, g, t, d]
            } else {
                vec![b, t, g * d]
            };
            let mut mask = vec![1i64; b * t];
            mask[0] = 0;
            check(
                &format!("GQA attention s={s} t={t} h={h} g={g} bnsh={bnsh}"),
                gqa(h, g),
                vec![
                    In::Run(randf(&mut r, &[b, s, h * d], -1.0, 1.0)),
                    In::Run(randf(&mut r, &kv_shape, -1.0, 1.0)),
                    In::Run(randf(&mut r, &kv_shape, -1.0, 1.0)),
                    In::None,
                    In::Run(Tensor::from_vec(vec![b, t], mask)),
                    In::Run(randf(&mut r, &[1, 1, s, t], -2.0, 0.0)),
                ],
                RED,
            );
        }
    }
    check(
        "GQA attention f16 decode",
        Op::MultiHeadAttention(MultiHeadAttention {
            num_heads: h,
            scale: None,
            mask_filter_value: -10000.0,
            unidirectional: false,
            kv_num_heads: Some(g),
        }),
        vec![
            In::Run(randh(&mut r, &[b, 1, h * d])),
            In::Run(randh(&mut r, &[b, 9, g * d])),
            In::Run(randh(&mut r, &[b, 9, g * d])),
        ],
        HALF,
    );
    // f32 queries over f16 caches (`--dtype f16`): decode, a short prefill
    // and enough rows for the per-row kernel.
    for (s, t) in [(1usize, 71usize), (5, 8), (40, 40)] {
        check(
            &format!("GQA attention f32 x f16 cache s={s} t={t}"),
            gqa(h, g),
            vec![
                In::Run(randf(&mut r, &[b, s, h * d], -1.0, 1.0)),
                In::Run(randh(&mut r, &[b, t, g * d])),
                In::Run(randh(&mut r, &[b, t, g * d])),
            ],
            RED,
        );
    }
    for (p, l) in [(0usize, 4usize), (7, 1)] {
        check(
            &format!("KvCacheAppend p={p} l={l}"),
            Op::KvCacheAppend(KvCacheAppend),
            vec![
                In::Run(randf(&mut r, &[b, p, g * d], -1.0, 1.0)),
                In::Run(randf(&mut r, &[b, l, g * d], -1.0, 1.0)),
            ],
            0.0,
        );
    }
}

/// f32 activations × f16-stored weights (`--dtype f16`): GEMV and tiles.
#[test]
fn mat_mul_f16_weights() {
    let mut r = rng();
    for m in [1usize, 37] {
        let (k, n) = (r.random_range(40..300), r.random_range(20..200));
        check(
            &format!("MatMul f32 x f16 weights m={m}"),
            Op::MatMul(MatMul),
            vec![
                In::Run(randf(&mut r, &[1, m, k], -1.0, 1.0)),
                In::Const(randh(&mut r, &[k, n])),
            ],
            RED,
        );
    }
}

/// A CPU plan's panel-stored weight (cellm-opt's `weight_panels`) is refused
/// when a session uploads it, with an error naming the layout, instead of
/// being read as row-major.
#[test]
fn panel_stored_weights_are_refused() {
    let Some(ctx) = common::gpu() else { return };
    let mut r = common::op_check::rng();
    let mut g = cellm_ir::Graph::new("panels");
    g.add_input(
        "x",
        cellm_ir::Fact::new(DType::F32, Some(vec![1.into(), 64.into()])),
    );
    let w = randh(&mut r, &[64, 40]).to_panels(32).unwrap();
    g.add_initializer("w", w);
    let (x, w, y) = (g.value("x"), g.value("w"), g.value("y"));
    g.add_node(cellm_ir::Node {
        name: "mm".into(),
        op: Op::MatMul(cellm_ir::ops::MatMul),
        inputs: vec![Some(x), Some(w)],
        outputs: vec![Some(y)],
    })
    .unwrap();
    g.outputs.push(y);
    g.infer_facts().unwrap();
    let err = match cellm_gpu::GpuSession::with_context(ctx, g, Default::default()) {
        Ok(_) => panic!("a panel-stored weight was uploaded"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("row-major"), "{err}");
}
