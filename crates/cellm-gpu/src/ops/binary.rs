//! Elementwise binary ops with broadcasting (`shaders/binary.wgsl`).

use super::{u32_of, Args};
use crate::kernel::{broadcast_strides, dims8, word_of, DevTensor, Kern, Word};
use anyhow::{bail, Result};
use cellm_ir::ops::{Binary, BinaryOp};
use cellm_ir::shape::broadcast_shapes;
use cellm_ir::DType;

fn code(op: BinaryOp) -> u32 {
    match op {
        BinaryOp::Add => 0,
        BinaryOp::Sub => 1,
        BinaryOp::Mul => 2,
        BinaryOp::Div => 3,
        BinaryOp::Pow => 4,
        BinaryOp::Mod { fmod: false } => 5,
        BinaryOp::Mod { fmod: true } => 6,
        BinaryOp::Equal => 7,
        BinaryOp::Less => 8,
        BinaryOp::LessOrEqual => 9,
        BinaryOp::Greater => 10,
        BinaryOp::GreaterOrEqual => 11,
        BinaryOp::And => 12,
        BinaryOp::Or => 13,
    }
}

pub fn encode(k: &mut Kern, op: &Binary, args: &Args) -> Result<Vec<DevTensor>> {
    let a = args.d(0, "A")?;
    let b = args.d(1, "B")?;
    if a.dtype != b.dtype && op.op != BinaryOp::Pow {
        bail!(
            "{:?} needs inputs of one dtype, got {} and {}",
            op.op,
            a.dtype,
            b.dtype
        );
    }
    let shape = broadcast_shapes(&a.shape, &b.shape)?;
    let comparison = matches!(
        op.op,
        BinaryOp::Equal
            | BinaryOp::Less
            | BinaryOp::LessOrEqual
            | BinaryOp::Greater
            | BinaryOp::GreaterOrEqual
    );
    let dtype = if comparison || matches!(op.op, BinaryOp::And | BinaryOp::Or) {
        DType::Bool
    } else {
        a.dtype
    };
    let out = k.alloc(dtype, shape.clone())?;
    let n = out.len();
    let kind_b = match word_of(b.dtype)? {
        Word::F32 => 0,
        _ => 1,
    };
    let mut p = vec![
        u32_of(n, "Binary")?,
        shape.len() as u32,
        code(op.op),
        word_of(a.dtype)? as u32,
    ];
    p.extend(dims8(&shape, "Binary")?);
    p.extend(dims8(&broadcast_strides(&a.shape, &shape)?, "Binary A")?);
    p.extend(dims8(&broadcast_strides(&b.shape, &shape)?, "Binary B")?);
    p.push(kind_b);
    k.dispatch_1d("binary", &p, &[a, b, &out], n)?;
    Ok(vec![out])
}
