//! ScatterND, reduction "none" (`shaders/scatter_nd.wgsl`): copy the data,
//! then write each update slice.

use super::{u32_of, Args};
use crate::kernel::{dims8, strides, DevTensor, Kern};
use anyhow::{bail, Result};

pub fn encode(k: &mut Kern, args: &Args) -> Result<Vec<DevTensor>> {
    let data = args.d(0, "ScatterND data")?;
    let idx = args.d(1, "ScatterND indices")?;
    let upd = args.d(2, "ScatterND updates")?;
    let (ds, is) = (&data.shape, &idx.shape);
    let Some(&kdim) = is.last() else {
        bail!("ScatterND: indices must have rank >= 1")
    };
    if kdim > ds.len() {
        bail!(
            "ScatterND: index rows of {kdim} exceed data rank {}",
            ds.len()
        );
    }
    let mut want = is[..is.len() - 1].to_vec();
    want.extend(&ds[kdim..]);
    if upd.shape != want || upd.dtype != data.dtype {
        bail!(
            "ScatterND: updates {} {:?} must be {} {want:?}",
            upd.dtype,
            upd.shape,
            data.dtype
        );
    }
    let out = k.alloc(data.dtype, ds.clone())?;
    k.copy(data, &out)?;
    let inner: usize = ds[kdim..].iter().product();
    let n = upd.len();
    let mut p = vec![
        u32_of(n, "ScatterND")?,
        kdim as u32,
        u32_of(inner, "ScatterND")?,
        0,
    ];
    p.extend(dims8(&ds[..kdim], "ScatterND")?);
    p.extend(dims8(&strides(ds)[..kdim], "ScatterND")?);
    k.dispatch_1d("scatter_nd", &p, &[idx, upd, &out], n)?;
    Ok(vec![out])
}
