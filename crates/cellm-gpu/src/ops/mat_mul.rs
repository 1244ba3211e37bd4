//! Batched, broadcasting MatMul: `shaders/mat_mul.wgsl` (64x64 register-
//! blocked tiles) or, for one row (decode), `shaders/gemv.wgsl`.

use super::{need_float, u32_of, Args};
use crate::kernel::{dims8, strides, DevTensor, Kern};
use anyhow::{bail, Result};
use cellm_ir::shape::broadcast_shapes;

pub fn encode(k: &mut Kern, args: &Args) -> Result<Vec<DevTensor>> {
    let a = args.d(0, "MatMul A")?;
    let b = args.d(1, "MatMul B")?;
    need_float(a, "MatMul A")?;
    need_float(b, "MatMul B")?;
    if a.shape.is_empty() || b.shape.is_empty() {
        bail!(
            "MatMul: operands must not be scalars (A {:?}, B {:?})",
            a.shape,
            b.shape
        );
    }
    // 1-D operands are promoted to matrices; the added dim is dropped after.
    let pa = if a.shape.len() == 1 {
        vec![1, a.shape[0]]
    } else {
        a.shape.clone()
    };
    let pb = if b.shape.len() == 1 {
        vec![b.shape[0], 1]
    } else {
        b.shape.clone()
    };
    let (m, ka) = (pa[pa.len() - 2], pa[pa.len() - 1]);
    let (kb, n) = (pb[pb.len() - 2], pb[pb.len() - 1]);
    if ka != kb {
        bail!(
            "MatMul: inner dims differ: A {:?} vs B {:?}",
            a.shape,
            b.shape
        );
    }
    let (ba, bb) = (&pa[..pa.len() - 2], &pb[..pb.len() - 2]);
    let batch = broadcast_shapes(ba, bb)?;
    let stride_of = |bs: &[usize], mat: usize| -> Vec<usize> {
        let st = strides(bs);
        let off = batch.len() - bs.len();
        (0..batch.len())
            .map(|d| {
                if d < off || bs[d - off] == 1 {
                    0
                } else {
                    st[d - off] * mat
                }
            })
            .collect()
    };
    let a_st = stride_of(ba, m * ka);
    let b_st = stride_of(bb, ka * n);
    let mut shape = batch.clone();
    if a.shape.len() > 1 {
        shape.push(m);
    }
    if b.shape.len() > 1 {
        shape.push(n);
    }
    let out = k.alloc(a.dtype, shape)?;
    let batches: usize = batch.iter().product();
    if out.is_empty() {
        return Ok(vec![out]);
    }
    let mut p = vec![
        u32_of(m, "MatMul M")?,
        u32_of(n, "MatMul N")?,
        u32_of(ka, "MatMul K")?,
        batch.len() as u32,
    ];
    p.extend(dims8(&batch, "MatMul batch")?);
    p.extend(dims8(&a_st, "MatMul A")?);
    p.extend(dims8(&b_st, "MatMul B")?);
    // M = 1 (decode steps) takes the GEMV kernel; otherwise 64x64 tiles.
    let gemv = m == 1;
    let tiles_n = if gemv { n.div_ceil(16) } else { n.div_ceil(64) };
    let tiles_m = if gemv { 1 } else { m.div_ceil(64) };
    p.push(u32_of(tiles_n, "MatMul")?);
    p.push(u32_of(tiles_m, "MatMul")?);
    p.push(u32_of(batches, "MatMul batch")?);
    let groups = tiles_n * tiles_m * batches;
    let shader = if gemv { "gemv" } else { "mat_mul" };
    k.dispatch_groups(shader, &p, &[a, b, &out], groups)?;
    Ok(vec![out])
}
