//! Elementwise unary ops (`shaders/unary.wgsl`).

use super::{u32_of, Args};
use crate::kernel::{word_of, DevTensor, Kern, Word};
use anyhow::Result;
use cellm_ir::ops::{Unary, UnaryOp};

fn code(op: UnaryOp) -> u32 {
    match op {
        UnaryOp::Identity => 0,
        UnaryOp::Neg => 1,
        UnaryOp::Sqrt => 2,
        UnaryOp::Reciprocal => 3,
        UnaryOp::Sigmoid => 4,
        UnaryOp::Tanh => 5,
        UnaryOp::Cos => 6,
        UnaryOp::Sin => 7,
        UnaryOp::Exp => 8,
        UnaryOp::Log => 9,
        UnaryOp::Abs => 10,
        UnaryOp::Relu => 11,
        UnaryOp::Erf => 12,
        UnaryOp::Not => 13,
    }
}

/// Float ops need float inputs; integers have Neg/Abs/Relu/Identity; bools Not/Identity.
pub fn supported(op: &Unary, args: &Args) -> bool {
    let Some(x) = args.od(0) else { return false };
    match word_of(x.dtype) {
        Ok(Word::F32) => op.op != UnaryOp::Not,
        Ok(Word::I32) => matches!(
            op.op,
            UnaryOp::Identity | UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Relu
        ),
        Ok(Word::Bool) => matches!(op.op, UnaryOp::Identity | UnaryOp::Not),
        Err(_) => false,
    }
}

pub fn encode(k: &mut Kern, op: &Unary, args: &Args) -> Result<Vec<DevTensor>> {
    let x = args.d(0, "X")?;
    if op.op == UnaryOp::Identity {
        return Ok(vec![x.clone()]);
    }
    let out = k.alloc(x.dtype, x.shape.clone())?;
    let n = x.len();
    let params = [u32_of(n, "Unary")?, code(op.op), word_of(x.dtype)? as u32];
    k.dispatch_1d("unary", &params, &[x, &out], n)?;
    Ok(vec![out])
}
