//! CPU kernel for Gather: picks slices of input 0 along `axis` by the indices
//! in input 1 (negative indices count from the end).

use super::common::{input, pod_view, tensor_from_pod, with_word};
use anyhow::{bail, Result};
use cellm_ir::ops::Gather;
use cellm_ir::shape::{normalize_axis, numel};
use cellm_ir::Tensor;

pub fn run(op: &Gather, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let data = input(inputs, 0)?;
    let indices = input(inputs, 1)?;
    let axis = normalize_axis(op.axis, data.rank())?;
    let dim = data.shape()[axis];
    let idx: Vec<usize> = indices
        .to_i64_vec()?
        .into_iter()
        .map(|i| {
            let j = if i < 0 { i + dim as i64 } else { i };
            if j < 0 || j >= dim as i64 {
                bail!("Gather index {i} is out of range for axis {axis} of size {dim}");
            }
            Ok(j as usize)
        })
        .collect::<Result<_>>()?;
    let outer = numel(&data.shape()[..axis]);
    let inner = numel(&data.shape()[axis + 1..]);
    let mut shape = data.shape()[..axis].to_vec();
    shape.extend_from_slice(indices.shape());
    shape.extend_from_slice(&data.shape()[axis + 1..]);
    let out = with_word!(data.dtype(), W => {
        let src = pod_view::<W>(data)?;
        let mut out: Vec<W> = Vec::with_capacity(numel(&shape));
        for o in 0..outer {
            for &j in &idx {
                let start = (o * dim + j) * inner;
                out.extend_from_slice(&src[start..start + inner]);
            }
        }
        tensor_from_pod(data.dtype(), shape, out)?
    });
    Ok(vec![out])
}
