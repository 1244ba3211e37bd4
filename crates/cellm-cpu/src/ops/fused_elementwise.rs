//! CPU kernel for FusedElementwise: interprets the register program over
//! blocks of output elements (each register a block-long array, so each
//! instruction is one tight loop), inputs broadcast numpy-style, all cores
//! for large outputs. Arithmetic is f32 with the same functions, in the same
//! order, as the Unary/Binary kernels, so f32 results equal the unfused
//! chain's bit for bit; f16 rounds once at the end (the unfused chain rounds
//! after every op). [`fused_elementwise_slow`] runs the primitive kernels one
//! by one (the test reference).

use super::common::{broadcast_strides, f32_to_tensor, f32_values, input};
use anyhow::{bail, Context, Result};
use cellm_ir::ops::{Binary, BinaryOp, FusedElementwise, Instr, Unary, UnaryOp};
use cellm_ir::shape::broadcast_shapes;
use cellm_ir::{DType, Op, Tensor};

/// Elements per block: registers stay in cache, loops stay long enough to vectorise.
const BLOCK: usize = 256;

/// The inputs, their dtype (f32 or f16) and the broadcast output shape.
fn operands<'a>(
    op: &FusedElementwise,
    inputs: &[Option<&'a Tensor>],
) -> Result<(Vec<&'a Tensor>, DType, Vec<usize>)> {
    op.validate(inputs.len()).context("FusedElementwise")?;
    let ts = (0..inputs.len())
        .map(|i| input(inputs, i).with_context(|| format!("FusedElementwise input {i}")))
        .collect::<Result<Vec<_>>>()?;
    let dtype = ts[0].dtype();
    if !matches!(dtype, DType::F32 | DType::F16) {
        bail!("FusedElementwise: inputs must be f32 or f16, got {dtype}");
    }
    let mut shape = ts[0].shape().to_vec();
    for (i, t) in ts.iter().enumerate().skip(1) {
        if t.dtype() != dtype {
            bail!(
                "FusedElementwise: input {i} is {} but input 0 is {dtype}",
                t.dtype()
            );
        }
        shape = broadcast_shapes(&shape, t.shape())
            .with_context(|| format!("FusedElementwise: input {i}"))?;
    }
    Ok((ts, dtype, shape))
}

fn sigmoid(x: f32) -> f32 {
    // As the Unary kernel: no overflow, no precision loss for large |x|.
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

fn unary(op: UnaryOp, x: &[f32], y: &mut [f32]) {
    fn go(x: &[f32], y: &mut [f32], f: impl Fn(f32) -> f32) {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = f(v);
        }
    }
    match op {
        UnaryOp::Neg => go(x, y, |v| -v),
        UnaryOp::Abs => go(x, y, f32::abs),
        UnaryOp::Sqrt => go(x, y, f32::sqrt),
        UnaryOp::Reciprocal => go(x, y, |v| 1.0 / v),
        UnaryOp::Exp => go(x, y, f32::exp),
        UnaryOp::Log => go(x, y, f32::ln),
        UnaryOp::Sigmoid => go(x, y, sigmoid),
        UnaryOp::Tanh => go(x, y, f32::tanh),
        UnaryOp::Erf => go(x, y, libm::erff),
        // ONNX Relu keeps NaN (max(x, 0) would not).
        UnaryOp::Relu => go(x, y, |v| if v < 0.0 { 0.0 } else { v }),
        UnaryOp::Cos => go(x, y, f32::cos),
        UnaryOp::Sin => go(x, y, f32::sin),
        // Rejected by validate().
        UnaryOp::Identity | UnaryOp::Not => go(x, y, |v| v),
    }
}

fn binary(op: BinaryOp, a: &[f32], b: &[f32], y: &mut [f32]) {
    fn go(a: &[f32], b: &[f32], y: &mut [f32], f: impl Fn(f32, f32) -> f32) {
        for ((o, &u), &v) in y.iter_mut().zip(a).zip(b) {
            *o = f(u, v);
        }
    }
    match op {
        BinaryOp::Add => go(a, b, y, |u, v| u + v),
        BinaryOp::Sub => go(a, b, y, |u, v| u - v),
        BinaryOp::Mul => go(a, b, y, |u, v| u * v),
        BinaryOp::Div => go(a, b, y, |u, v| u / v),
        BinaryOp::Pow => go(a, b, y, f32::powf),
        // Rejected by validate().
        _ => go(a, b, y, |u, _| u),
    }
}

pub fn run(op: &FusedElementwise, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let (ts, dtype, shape) = operands(op, inputs)?;
    let vals = ts
        .iter()
        .enumerate()
        .map(|(i, t)| f32_values(t, &format!("FusedElementwise input {i}")))
        .collect::<Result<Vec<_>>>()?;
    let strides = ts
        .iter()
        .map(|t| broadcast_strides(t.shape(), &shape))
        .collect::<Result<Vec<_>>>()
        .context("FusedElementwise")?;
    let full: Vec<bool> = ts.iter().map(|t| t.shape() == shape.as_slice()).collect();
    let n: usize = shape.iter().product();
    let n_in = ts.len();
    let regs = n_in + op.program.len();
    let cost = 2 * op.program.len();
    let y = crate::par::fill_vec(n, cost, |off, y: &mut [f32]| {
        let mut reg = vec![0f32; regs * BLOCK];
        let mut start = 0;
        while start < y.len() {
            let len = BLOCK.min(y.len() - start);
            let base = off + start;
            for k in 0..n_in {
                let dst = &mut reg[k * BLOCK..k * BLOCK + len];
                if full[k] {
                    dst.copy_from_slice(&vals[k][base..base + len]);
                } else {
                    for (e, d) in dst.iter_mut().enumerate() {
                        *d = vals[k][offset(base + e, &shape, &strides[k])];
                    }
                }
            }
            for (j, ins) in op.program.iter().enumerate() {
                // Operands are earlier registers, so split below the destination.
                let (src, rest) = reg.split_at_mut((n_in + j) * BLOCK);
                let dst = &mut rest[..len];
                let r = |i: u16| &src[i as usize * BLOCK..i as usize * BLOCK + len];
                match *ins {
                    Instr::Const(c) => dst.fill(c),
                    Instr::Unary { op, x } => unary(op, r(x), dst),
                    Instr::Binary { op, a, b } => binary(op, r(a), r(b), dst),
                }
            }
            let last = (regs - 1) * BLOCK;
            y[start..start + len].copy_from_slice(&reg[last..last + len]);
            start += len;
        }
    });
    Ok(vec![f32_to_tensor(dtype, shape, y)?])
}

/// Element offset of flat output index `i` in an input with `strides`.
fn offset(mut i: usize, shape: &[usize], strides: &[isize]) -> usize {
    let mut o = 0isize;
    for d in (0..shape.len()).rev() {
        o += (i % shape[d]) as isize * strides[d];
        i /= shape[d];
    }
    o as usize
}

/// The same program through the primitive Unary/Binary kernels, one op at a
/// time (constants as scalar tensors of the inputs' dtype); the reference for
/// tests of the kernel and of the fusion pass.
pub fn fused_elementwise_slow(op: &FusedElementwise, inputs: &[Option<&Tensor>]) -> Result<Tensor> {
    let (ts, dtype, _) = operands(op, inputs)?;
    let mut regs: Vec<Tensor> = ts.into_iter().cloned().collect();
    for ins in &op.program {
        let r = |i: u16| &regs[i as usize];
        let t = match *ins {
            Instr::Const(c) => f32_to_tensor(dtype, vec![], vec![c])?,
            Instr::Unary { op, x } => super::eval(&Op::Unary(Unary { op }), &[Some(r(x))])?
                .pop()
                .context("unary output")?,
            Instr::Binary { op, a, b } => {
                super::eval(&Op::Binary(Binary { op }), &[Some(r(a)), Some(r(b))])?
                    .pop()
                    .context("binary output")?
            }
        };
        regs.push(t);
    }
    regs.pop().context("FusedElementwise: empty program")
}
