//! Cast between device storage kinds (`shaders/cast.wgsl`); casting to f16
//! rounds on store.

use super::{u32_of, Args};
use crate::kernel::{elem_bytes, word_of, DevTensor, Kern};
use anyhow::Result;
use cellm_ir::ops::Cast;
use cellm_ir::DType;

pub fn encode(k: &mut Kern, op: &Cast, args: &Args) -> Result<Vec<DevTensor>> {
    let x = args.d(0, "Cast input")?;
    let (from, to) = (word_of(x.dtype)?, word_of(op.to)?);
    if from == to
        && (x.dtype == DType::F16) == (op.to == DType::F16)
        && elem_bytes(x.dtype)? == elem_bytes(op.to)?
    {
        // Same storage: only the declared dtype changes (i64 <-> i32, u8 <-> i8
        // wraps like ONNX's Cast).
        return Ok(vec![x.retyped(op.to)]);
    }
    let out = k.alloc(op.to, x.shape.clone())?;
    let n = x.len();
    let p = [u32_of(n, "Cast")?, from as u32, to as u32];
    k.dispatch_1d("cast", &p, &[x, &out], n)?;
    Ok(vec![out])
}
