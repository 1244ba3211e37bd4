//! GatherND with batch_dims (`shaders/gather_nd.wgsl`).

use super::{u32_of, Args};
use crate::kernel::{dims8, strides, DevTensor, Kern};
use anyhow::{bail, Result};
use cellm_ir::ops::GatherND;

pub fn encode(k: &mut Kern, op: &GatherND, args: &Args) -> Result<Vec<DevTensor>> {
    let data = args.d(0, "GatherND data")?;
    let idx = args.d(1, "GatherND indices")?;
    let b = op.batch_dims;
    let (ds, is) = (&data.shape, &idx.shape);
    let Some(&kdim) = is.last() else {
        bail!("GatherND: indices must have rank >= 1")
    };
    if b >= is.len() || b + kdim > ds.len() || ds[..b] != is[..b] {
        bail!("GatherND: data {ds:?} / indices {is:?} do not fit batch_dims {b}");
    }
    let mut shape = is[..is.len() - 1].to_vec();
    shape.extend(&ds[b + kdim..]);
    let inner: usize = ds[b + kdim..].iter().product();
    let batches: usize = is[..b].iter().product();
    let rows: usize = is[..is.len() - 1].iter().product();
    let rows_per_batch = rows.checked_div(batches).unwrap_or(0);
    let st = strides(ds);
    let batch_stride: usize = ds[b..].iter().product();
    let out = k.alloc(data.dtype, shape)?;
    let n = out.len();
    let mut p = vec![
        u32_of(n, "GatherND")?,
        kdim as u32,
        u32_of(inner, "GatherND")?,
        u32_of(rows_per_batch.max(1), "GatherND")?,
        u32_of(batch_stride, "GatherND")?,
        0,
        0,
        0,
    ];
    p.extend(dims8(&ds[b..b + kdim], "GatherND")?);
    p.extend(dims8(&st[b..b + kdim], "GatherND")?);
    k.dispatch_1d("gather_nd", &p, &[data, idx, &out], n)?;
    Ok(vec![out])
}
