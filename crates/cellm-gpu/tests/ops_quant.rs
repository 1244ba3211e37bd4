//! Quantized-op GPU kernels against the CPU reference (`cellm_cpu::ops::eval`)
//! on fresh random inputs (seed printed; CELLM_TEST_SEED replays): odd K and
//! N, K not a multiple of the block, with and without zero points, f16 and f32
//! scales, one row (the GEMV kernels) and many (the tiled kernels). Weights
//! are initializers as in real graphs; every device buffer is poisoned
//! (all-ones: NaN / -1) before it is written; each case also runs with its
//! tensors split over small bindings, and without SHADER_F16 when it has f16.
//!
//! Tolerances, |gpu - cpu| <= tol * max(1, |cpu|): f32 matmuls 1e-4 (the CPU
//! dequantizes to f32 then multiplies; the GPU sums (q - z) * a per block and
//! scales once: another rounding order), f16 outputs 1e-2 (one f16 ulp is
//! 2^-10 relative after a different f32 summation); dequantize is exact in
//! f32 (one product, same operands), so 0 there. Integer outputs (MatMulInteger,
//! ConvInteger, quantized codes) must match exactly: the GPU divides with
//! correct rounding and rounds half to even like the CPU.

mod common;

use common::op_check::{check_with, rng, In, Setup};

/// Runs `op` on the GPU and the CPU and compares every output; returns the
/// largest |gpu - cpu| / max(1, |cpu|) over float outputs.
fn check(what: &str, op: Op, inputs: Vec<In>, tol: f64) -> f64 {
    let setup = Setup {
        split_parts: 4,
        device_bytes: true,
        f16_from_inputs: true,
        f16_split: false,
    };
    let worst = check_with(setup, what, op, inputs, tol);
    println!("{what}: max rel err {worst:.2e}");
    worst
}

use cellm_gpu::{GpuSession, SessionOptions};
use cellm_ir::ops::*;
use cellm_ir::{DType, Dim, Fact, Graph, Node, Op, Tensor};
use half::f16;
use rand::rngs::StdRng;
use rand::Rng;
use std::collections::HashMap;

const RED: f64 = 1e-4;
const HALF: f64 = 1e-2;

fn randf(r: &mut StdRng, shape: &[usize], lo: f32, hi: f32) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec(
        shape.to_vec(),
        (0..n).map(|_| r.random_range(lo..hi)).collect::<Vec<f32>>(),
    )
}

/// f32 or f16 values in [lo, hi).
fn randfd(r: &mut StdRng, shape: &[usize], lo: f32, hi: f32, dtype: DType) -> Tensor {
    let t = randf(r, shape, lo, hi);
    if dtype == DType::F16 {
        Tensor::from_vec(
            shape.to_vec(),
            t.f32s()
                .expect("f32")
                .iter()
                .map(|&v| f16::from_f32(v))
                .collect::<Vec<f16>>(),
        )
    } else {
        t
    }
}

fn randu8(r: &mut StdRng, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec(shape.to_vec(), (0..n).map(|_| r.random::<u8>()).collect())
}

fn randi8(r: &mut StdRng, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec(shape.to_vec(), (0..n).map(|_| r.random::<i8>()).collect())
}

fn rand8(r: &mut StdRng, shape: &[usize], dtype: DType) -> Tensor {
    match dtype {
        DType::U8 => randu8(r, shape),
        DType::I8 => randi8(r, shape),
        other => panic!("not an 8-bit dtype: {other}"),
    }
}

/// An input: a runtime graph input, or a constant (initializer).
/// The ways MatMulNBits gets its zero points.
#[derive(Clone, Copy, Debug)]
enum Zp {
    None,
    Packed,
    Float,
}

#[allow(clippy::too_many_arguments)]
fn n_bits_case(
    r: &mut StdRng,
    lead: &[usize],
    k: usize,
    n: usize,
    bs: usize,
    zp: Zp,
    scale_dtype: DType,
    a_dtype: DType,
    bias: bool,
) -> f64 {
    let blocks = k.div_ceil(bs);
    let mut a_shape = lead.to_vec();
    a_shape.push(k);
    let a = randfd(r, &a_shape, -1.0, 1.0, a_dtype);
    let b = randu8(r, &[n, blocks, bs / 2]);
    let scales = randfd(r, &[n * blocks], 0.01, 0.2, scale_dtype);
    let zp_in = match zp {
        Zp::None => In::None,
        Zp::Packed => In::Const(randu8(r, &[n * blocks.div_ceil(2)])),
        Zp::Float => In::Const(randfd(r, &[n * blocks], 0.0, 15.0, scale_dtype)),
    };
    let bias_in = if bias {
        In::Const(randfd(r, &[n], -1.0, 1.0, a_dtype))
    } else {
        In::None
    };
    let tol = if a_dtype == DType::F16 { HALF } else { RED };
    check(
        &format!(
            "MatMulNBits A {a_shape:?} {a_dtype} K {k} N {n} block {bs} zp {zp:?} scales {scale_dtype} bias {bias}"
        ),
        Op::MatMulNBits(MatMulNBits {
            k,
            n,
            bits: 4,
            block_size: bs,
        }),
        vec![
            In::Run(a),
            In::Const(b),
            In::Const(scales),
            zp_in,
            In::None,
            bias_in,
        ],
        tol,
    )
}

#[test]
fn mat_mul_n_bits_decode() {
    let mut r = rng();
    use DType::*;
    let mut worst = 0.0f64;
    // One row (decode): K not a multiple of the block, odd N, K spanning
    // several staged A tiles (1024 values each).
    for (k, n, bs, zp, sd, ad, bias) in [
        (45, 13, 16, Zp::None, F32, F32, false),
        (100, 67, 32, Zp::Packed, F32, F32, true),
        (96, 9, 32, Zp::Float, F16, F32, false),
        (77, 21, 64, Zp::Packed, F16, F16, true),
        (1100, 11, 64, Zp::Packed, F32, F32, false),
        (33, 5, 128, Zp::None, F16, F16, false),
    ] {
        worst = worst.max(n_bits_case(&mut r, &[1, 1], k, n, bs, zp, sd, ad, bias));
    }
    // A few rows still take the GEMV kernel, one pass per row.
    worst = worst.max(n_bits_case(
        &mut r,
        &[3],
        61,
        19,
        16,
        Zp::Packed,
        F32,
        F32,
        true,
    ));
    println!("MatMulNBits GEMV worst rel err {worst:.2e}");
}

#[test]
fn mat_mul_n_bits_tiled() {
    let mut r = rng();
    use DType::*;
    let mut worst = 0.0f64;
    for (lead, k, n, bs, zp, sd, ad, bias) in [
        (vec![1, 70], 45, 13, 16, Zp::None, F32, F32, false),
        (vec![2, 37], 100, 67, 32, Zp::Packed, F32, F32, true),
        (vec![5], 96, 70, 32, Zp::Float, F16, F32, false),
        (vec![1, 66], 77, 21, 64, Zp::Packed, F16, F16, true),
        (vec![9], 300, 130, 256, Zp::None, F32, F32, false),
    ] {
        worst = worst.max(n_bits_case(&mut r, &lead, k, n, bs, zp, sd, ad, bias));
    }
    println!("MatMulNBits tiled worst rel err {worst:.2e}");
}

#[test]
fn mat_mul_bnb4() {
    let mut r = rng();
    let mut worst = 0.0f64;
    for (lead, k, n, bs, qt, ad) in [
        (vec![1, 1], 45, 13, 64, Bnb4Type::Nf4, DType::F32),
        (vec![1], 67, 9, 64, Bnb4Type::Fp4, DType::F32),
        (vec![2], 33, 70, 16, Bnb4Type::Nf4, DType::F16),
        (vec![1, 70], 45, 13, 64, Bnb4Type::Fp4, DType::F32),
        (vec![67], 64, 65, 64, Bnb4Type::Nf4, DType::F16),
        (vec![1], 1100, 3, 64, Bnb4Type::Nf4, DType::F32),
    ] {
        let total = n * k;
        let mut a_shape = lead.clone();
        a_shape.push(k);
        let a = randfd(&mut r, &a_shape, -1.0, 1.0, ad);
        let b = randu8(&mut r, &[total.div_ceil(2)]);
        let absmax = randfd(&mut r, &[total.div_ceil(bs)], 0.1, 2.0, ad);
        let tol = if ad == DType::F16 { HALF } else { RED };
        worst = worst.max(check(
            &format!("MatMulBnb4 A {a_shape:?} {ad} K {k} N {n} block {bs} {qt:?}"),
            Op::MatMulBnb4(MatMulBnb4 {
                k,
                n,
                block_size: bs,
                quant_type: qt,
            }),
            vec![In::Run(a), In::Const(b), In::Const(absmax)],
            tol,
        ));
    }
    println!("MatMulBnb4 worst rel err {worst:.2e}");
}

#[test]
fn mat_mul_integer() {
    let mut r = rng();
    use DType::*;
    // (A shape, N, A dtype, B dtype, a_zp: 0 none / 1 scalar / 2 per row,
    //  b_zp: 0 none / 1 scalar / 2 per column). u8 x i8 is the int8 models'.
    for (a_shape, n, ad, bd, az, bz) in [
        (vec![1, 1, 45], 13, U8, I8, 1, 1),
        (vec![1, 77], 67, U8, U8, 1, 2),
        (vec![3, 33], 9, I8, I8, 2, 0),
        (vec![45], 13, U8, I8, 1, 1),
        (vec![1, 70, 45], 13, U8, I8, 1, 1),
        (vec![2, 37, 100], 67, U8, U8, 2, 2),
        (vec![66, 31], 70, I8, U8, 0, 1),
        (vec![1, 1, 600], 5, U8, I8, 0, 0),
    ] {
        let k = *a_shape.last().expect("rank");
        let m = if a_shape.len() >= 2 {
            a_shape[a_shape.len() - 2]
        } else {
            1
        };
        let a = rand8(&mut r, &a_shape, ad);
        let b = rand8(&mut r, &[k, n], bd);
        let azp = match az {
            0 => In::None,
            1 => In::Run(rand8(&mut r, &[], ad)),
            _ => In::Run(rand8(&mut r, &[m], ad)),
        };
        let bzp = match bz {
            0 => In::None,
            1 => In::Const(rand8(&mut r, &[], bd)),
            _ => In::Const(rand8(&mut r, &[n], bd)),
        };
        check(
            &format!("MatMulInteger A {a_shape:?} {ad} B [{k}, {n}] {bd} zp {az}/{bz}"),
            Op::MatMulInteger(MatMulInteger),
            vec![In::Run(a), In::Const(b), azp, bzp],
            0.0,
        );
    }
}

/// Scale shape for (de)quantization of `shape` along `axis`: per tensor,
/// per axis or per block.
fn scale_shape(shape: &[usize], mode: u8, axis: usize, block: usize) -> Vec<usize> {
    match mode {
        0 => vec![],
        1 => vec![shape[axis]],
        _ => {
            let mut s = shape.to_vec();
            s[axis] = shape[axis].div_ceil(block);
            s
        }
    }
}

#[test]
fn dequantize_linear() {
    let mut r = rng();
    use DType::*;
    for (shape, xd, sd, mode, axis, block, zp) in [
        (vec![7, 13], U8, F32, 0, 0, 0, true),
        (vec![5, 9, 3], I8, F32, 1, 1, 0, true),
        (vec![4, 37], U8, F16, 2, 1, 16, true),
        (vec![3, 4, 11], I32, F32, 1, 2, 0, false),
        (vec![33], U8, F32, 0, 0, 0, false),
        (vec![70, 65], I8, F16, 2, 0, 32, false),
    ] {
        let x = match xd {
            I32 => Tensor::from_vec(
                shape.clone(),
                (0..shape.iter().product::<usize>())
                    .map(|_| r.random_range(-1000..1000))
                    .collect::<Vec<i32>>(),
            ),
            d => rand8(&mut r, &shape, d),
        };
        let ss = scale_shape(&shape, mode, axis, block);
        let scale = randfd(&mut r, &ss, 0.01, 0.5, sd);
        let zp_in = if zp {
            match xd {
                I32 => In::Const(Tensor::from_vec(
                    ss.clone(),
                    (0..ss.iter().product::<usize>())
                        .map(|_| r.random_range(-10..10))
                        .collect::<Vec<i32>>(),
                )),
                d => In::Const(rand8(&mut r, &ss, d)),
            }
        } else {
            In::None
        };
        // One f32 product of the same operands: exact (f16 output: one rounding).
        let tol = if sd == F16 { HALF } else { 0.0 };
        check(
            &format!("DequantizeLinear {shape:?} {xd} scale {ss:?} {sd} axis {axis} block {block}"),
            Op::DequantizeLinear(DequantizeLinear {
                axis: axis as i64,
                block_size: block,
            }),
            vec![In::Run(x), In::Const(scale), zp_in],
            tol,
        );
    }
    // A byte-stored table gathered then dequantized: the int8 embed_tokens chain.
    let table = randu8(&mut r, &[50, 33]);
    let idx = Tensor::from_vec(vec![1, 4], vec![3i64, 49, 0, -2]);
    check(
        "Gather u8",
        Op::Gather(Gather { axis: 0 }),
        vec![In::Const(table), In::Run(idx)],
        0.0,
    );
}

/// Values whose quotient by `scale` lands on or next to .5 ties (the
/// rounding rule and the division's last bit matter there), plus random ones.
fn tie_values(r: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let k = r.random_range(-300i32..300) as f32 + 0.5;
            let v = k * scale;
            match r.random_range(0..4) {
                0 => v,
                1 => f32::from_bits(v.to_bits() + 1),
                2 => f32::from_bits(v.to_bits().saturating_sub(1)),
                _ => r.random_range(-300.0..300.0) * scale,
            }
        })
        .collect()
}

#[test]
fn quantize_linear() {
    let mut r = rng();
    use DType::*;
    for (shape, xd, od, mode, axis, block, zp) in [
        (vec![7, 13], F32, U8, 0, 0, 0, true),
        (vec![5, 9, 3], F32, I8, 1, 1, 0, true),
        (vec![4, 37], F16, U8, 2, 1, 16, true),
        (vec![3, 4, 11], I32, I8, 1, 2, 0, false),
        (vec![33], F32, U8, 0, 0, 0, false),
        (vec![70, 65], F32, I8, 2, 0, 32, true),
    ] {
        let n: usize = shape.iter().product();
        let ss = scale_shape(&shape, mode, axis, block);
        let scale = randfd(&mut r, &ss, 0.01, 0.5, F32);
        let x = match xd {
            I32 => Tensor::from_vec(
                shape.clone(),
                (0..n)
                    .map(|_| r.random_range(-100..100))
                    .collect::<Vec<i32>>(),
            ),
            F16 => randfd(&mut r, &shape, -20.0, 20.0, F16),
            // Ties against the first scale (exact ties for per-tensor scales).
            _ => Tensor::from_vec(
                shape.clone(),
                tie_values(&mut r, n, scale.f32s().expect("f32")[0]),
            ),
        };
        let zp_in = if zp {
            In::Const(rand8(&mut r, &ss, od))
        } else {
            In::None
        };
        check(
            &format!(
                "QuantizeLinear {shape:?} {xd} -> {od} scale {ss:?} axis {axis} block {block}"
            ),
            Op::QuantizeLinear(QuantizeLinear {
                axis: axis as i64,
                block_size: block,
                output_dtype: od,
            }),
            vec![In::Run(x), In::Const(scale), zp_in],
            0.0,
        );
    }
}

#[test]
fn dynamic_quantize_linear() {
    let mut r = rng();
    for (shape, lo, hi) in [
        (vec![1], -1.0, 1.0),
        (vec![1, 7], 0.5, 3.0),
        (vec![1, 1, 45], -3.0, 2.0),
        (vec![2, 37, 100], -10.0, 7.0),
        (vec![5, 3], -4.0, -1.0),
    ] {
        let x = randf(&mut r, &shape, lo, hi);
        check(
            &format!("DynamicQuantizeLinear {shape:?} in [{lo}, {hi})"),
            Op::DynamicQuantizeLinear(DynamicQuantizeLinear),
            vec![In::Run(x)],
            0.0,
        );
    }
    // Symmetric range: -min / scale is 127.5 up to rounding, a zero-point tie;
    // and values on code ties.
    let scale = 2.0f32 / 255.0;
    let mut v = tie_values(&mut r, 300, scale);
    v.iter_mut().for_each(|x| *x = x.clamp(-1.0, 1.0));
    v[0] = -1.0;
    v[1] = 1.0;
    check(
        "DynamicQuantizeLinear symmetric ties",
        Op::DynamicQuantizeLinear(DynamicQuantizeLinear),
        vec![In::Run(Tensor::from_vec(vec![300], v))],
        0.0,
    );
    check(
        "DynamicQuantizeLinear zeros",
        Op::DynamicQuantizeLinear(DynamicQuantizeLinear),
        vec![In::Run(Tensor::from_vec(vec![2, 3], vec![0f32; 6]))],
        0.0,
    );
}

#[test]
fn gather_block_quantized() {
    let mut r = rng();
    for (rows, half_k, bs, zp, sd, idx_shape) in [
        (50, 20, 16, false, DType::F32, vec![1, 5]),
        (33, 24, 32, true, DType::F16, vec![7]),
        (9, 64, 128, true, DType::F32, vec![2, 3]),
    ] {
        let k: usize = 2 * half_k;
        let blocks = k.div_ceil(bs);
        let data = randu8(&mut r, &[rows, half_k]);
        let scales = randfd(&mut r, &[rows, blocks], 0.01, 0.5, sd);
        let n: usize = idx_shape.iter().product();
        let idx = Tensor::from_vec(
            idx_shape.clone(),
            (0..n)
                .map(|_| r.random_range(-(rows as i64)..rows as i64))
                .collect::<Vec<i64>>(),
        );
        let zp_in = if zp {
            In::Const(randu8(&mut r, &[rows * blocks.div_ceil(2)]))
        } else {
            In::None
        };
        check(
            &format!(
                "GatherBlockQuantized [{rows}, {k}] block {bs} zp {zp} {sd} idx {idx_shape:?}"
            ),
            Op::GatherBlockQuantized(GatherBlockQuantized {
                gather_axis: 0,
                quantize_axis: 1,
                block_size: bs,
                bits: 4,
            }),
            vec![In::Const(data), In::Run(idx), In::Const(scales), zp_in],
            if sd == DType::F16 { HALF } else { 0.0 },
        );
    }
}

#[test]
fn conv_integer() {
    let mut r = rng();
    use DType::*;
    // (X shape, W shape, X dtype, W dtype, strides, pads, group, w_zp per channel)
    for (xs, ws, xd, wd, strides, pads, group, per_channel) in [
        // The SigLIP patch embedding: kernel = stride = 16.
        (
            vec![1, 3, 32, 48],
            vec![5, 3, 16, 16],
            U8,
            I8,
            vec![16, 16],
            vec![0; 4],
            1,
            false,
        ),
        (
            vec![2, 4, 9, 7],
            vec![6, 2, 3, 3],
            U8,
            U8,
            vec![1, 2],
            vec![1, 1, 1, 0],
            2,
            true,
        ),
        (
            vec![1, 3, 11, 11],
            vec![4, 3, 4, 4],
            I8,
            I8,
            vec![3, 3],
            vec![0; 4],
            1,
            true,
        ),
    ] {
        let x = rand8(&mut r, &xs, xd);
        let w = rand8(&mut r, &ws, wd);
        let xzp = rand8(&mut r, &[], xd);
        let wzp = if per_channel {
            rand8(&mut r, &[ws[0]], wd)
        } else {
            rand8(&mut r, &[], wd)
        };
        check(
            &format!("ConvInteger X {xs:?} {xd} W {ws:?} {wd} strides {strides:?} pads {pads:?} group {group}"),
            Op::ConvInteger(ConvInteger {
                conv: Conv {
                    kernel_shape: Some(vec![ws[2], ws[3]]),
                    strides,
                    pads,
                    dilations: vec![1, 1],
                    group,
                    auto_pad: AutoPad::NotSet,
                },
            }),
            vec![In::Run(x), In::Const(w), In::Run(xzp), In::Const(wzp)],
            0.0,
        );
    }
}

/// u8/i8 tensors are byte-stored: the generic kernels (Gather, Cast,
/// Transpose, Concat) read and write them through the byte accessors.
#[test]
fn byte_tensors_through_generic_kernels() {
    let mut r = rng();
    for d in [DType::U8, DType::I8] {
        let x = rand8(&mut r, &[5, 7], d);
        for to in [DType::F32, DType::I64, DType::U8, DType::I8] {
            check(
                &format!("Cast {d} -> {to}"),
                Op::Cast(Cast { to }),
                vec![In::Run(x.clone())],
                0.0,
            );
        }
        check(
            &format!("Transpose {d}"),
            Op::Transpose(Transpose {
                perm: Some(vec![1, 0]),
            }),
            vec![In::Run(x.clone())],
            0.0,
        );
        check(
            &format!("Concat {d}"),
            Op::Concat(Concat { axis: 1 }),
            vec![In::Run(x.clone()), In::Run(rand8(&mut r, &[5, 3], d))],
            0.0,
        );
    }
    let f = randf(&mut r, &[3, 9], -300.0, 300.0);
    for to in [DType::U8, DType::I8] {
        check(
            &format!("Cast f32 -> {to}"),
            Op::Cast(Cast { to }),
            vec![In::Run(f.clone())],
            0.0,
        );
    }
}

/// Packed weights keep their size on the device: a u8 weight of B bytes
/// takes B bytes (rounded to a word), not 4 B.
#[test]
fn packed_weights_stay_packed() {
    let Some(ctx) = common::gpu() else { return };
    let mut r = rng();
    let (k, n, bs) = (64, 40, 32);
    let blocks = k / bs;
    let mut g = Graph::new("nbits weight bytes");
    let a = g.add_input(
        "a",
        Fact::new(DType::F32, Some(vec![Dim::Known(1), Dim::Known(k)])),
    );
    let b = g.add_initializer("b", randu8(&mut r, &[n, blocks, bs / 2]));
    let s = g.add_initializer("s", randf(&mut r, &[n * blocks], 0.01, 0.1));
    let y = g.value("y");
    g.outputs = vec![y];
    g.add_node(Node {
        name: "mm".into(),
        op: Op::MatMulNBits(MatMulNBits {
            k,
            n,
            bits: 4,
            block_size: bs,
        }),
        inputs: vec![Some(a), Some(b), Some(s)],
        outputs: vec![Some(y)],
    })
    .expect("node");
    g.infer_facts().expect("infer");
    let sess = GpuSession::with_context(ctx, g, SessionOptions::default()).expect("session");
    let feeds = HashMap::from([("a".to_string(), randf(&mut r, &[1, k], -1.0, 1.0))]);
    sess.run(&feeds).expect("run");
    let want = (n * blocks * bs / 2 + n * blocks * 4) as u64;
    assert_eq!(sess.weight_bytes(), want, "device weight bytes");
}
