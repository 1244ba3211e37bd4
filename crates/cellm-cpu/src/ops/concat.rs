//! CPU kernel for Concat: joins inputs along `axis` (zero-size inputs are fine).

use super::common::{pod_view, tensor_from_pod, with_word};
use anyhow::{anyhow, bail, Result};
use cellm_ir::ops::Concat;
use cellm_ir::shape::{normalize_axis, numel};
use cellm_ir::Tensor;

pub fn run(op: &Concat, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let parts: Vec<&Tensor> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| t.ok_or_else(|| anyhow!("Concat input {i} is missing")))
        .collect::<Result<_>>()?;
    let first = *parts
        .first()
        .ok_or_else(|| anyhow!("Concat needs at least one input"))?;
    let axis = normalize_axis(op.axis, first.rank())?;
    let mut shape = first.shape().to_vec();
    shape[axis] = 0;
    for (i, p) in parts.iter().enumerate() {
        let same_rest = p.rank() == first.rank()
            && (0..first.rank()).all(|d| d == axis || p.shape()[d] == first.shape()[d]);
        if p.dtype() != first.dtype() || !same_rest {
            bail!(
                "Concat input {i} ({} {:?}) does not fit input 0 ({} {:?}) on axis {axis}",
                p.dtype(),
                p.shape(),
                first.dtype(),
                first.shape()
            );
        }
        shape[axis] += p.shape()[axis];
    }
    let outer = numel(&shape[..axis]);
    let out = with_word!(first.dtype(), W => {
        let views: Vec<&[W]> = parts.iter().map(|p| pod_view::<W>(p)).collect::<Result<_>>()?;
        // Each input contributes one contiguous block per outer index.
        let blocks: Vec<usize> = parts.iter().map(|p| numel(&p.shape()[axis..])).collect();
        let mut out: Vec<W> = Vec::with_capacity(numel(&shape));
        for o in 0..outer {
            for (v, &blk) in views.iter().zip(&blocks) {
                out.extend_from_slice(&v[o * blk..(o + 1) * blk]);
            }
        }
        tensor_from_pod(first.dtype(), shape, out)?
    });
    Ok(vec![out])
}
