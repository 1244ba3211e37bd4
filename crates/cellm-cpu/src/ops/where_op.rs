//! CPU kernel for Where: `cond ? x : y` with numpy broadcasting of all three.

use super::common::{broadcast_strides, for_each_row, input, pod_view, tensor_from_pod, with_word};
use anyhow::{bail, Result};
use cellm_ir::ops::Where;
use cellm_ir::shape::{broadcast_shapes, numel};
use cellm_ir::{DType, Tensor};

pub fn run(_op: &Where, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let cond = input(inputs, 0)?;
    let x = input(inputs, 1)?;
    let y = input(inputs, 2)?;
    if cond.dtype() != DType::Bool {
        bail!("Where condition must be bool, got {}", cond.dtype());
    }
    if x.dtype() != y.dtype() {
        bail!(
            "Where branches differ in dtype: {} and {}",
            x.dtype(),
            y.dtype()
        );
    }
    let shape = broadcast_shapes(&broadcast_shapes(cond.shape(), x.shape())?, y.shape())?;
    let sc = broadcast_strides(cond.shape(), &shape)?;
    let sx = broadcast_strides(x.shape(), &shape)?;
    let sy = broadcast_strides(y.shape(), &shape)?;
    let c = cond.bools()?;
    let out = with_word!(x.dtype(), W => {
        let (xv, yv) = (pod_view::<W>(x)?, pod_view::<W>(y)?);
        let mut out: Vec<W> = Vec::with_capacity(numel(&shape));
        for_each_row(&shape, [&sc, &sx, &sy], [0, 0, 0], |[oc, ox, oy], len, [ic, ix, iy]| {
            out.extend((0..len as isize).map(|i| {
                if c[(oc + i * ic) as usize] != 0 {
                    xv[(ox + i * ix) as usize]
                } else {
                    yv[(oy + i * iy) as usize]
                }
            }));
        });
        tensor_from_pod(x.dtype(), shape, out)?
    });
    Ok(vec![out])
}
