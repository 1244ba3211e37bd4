//! Cast between device word kinds (`shaders/cast.wgsl`); casting to f16
//! rounds to f16 precision.

use super::{u32_of, Args};
use crate::kernel::{word_of, DevTensor, Kern};
use anyhow::Result;
use cellm_ir::ops::Cast;
use cellm_ir::DType;

pub fn encode(k: &mut Kern, op: &Cast, args: &Args) -> Result<Vec<DevTensor>> {
    let x = args.d(0, "Cast input")?;
    let (from, to) = (word_of(x.dtype)?, word_of(op.to)?);
    let round = op.to == DType::F16 && x.dtype != DType::F16;
    if from == to && !round {
        // Same word kind: only the declared dtype changes (i64 <-> i32, f16 -> f32).
        return Ok(vec![DevTensor { buf: x.buf.clone(), dtype: op.to, shape: x.shape.clone() }]);
    }
    let out = k.alloc(op.to, x.shape.clone())?;
    let n = x.len();
    let p = [u32_of(n, "Cast")?, from as u32, to as u32, u32::from(round)];
    k.dispatch_1d("cast", &p, &[&x.buf, &out.buf], n)?;
    Ok(vec![out])
}
