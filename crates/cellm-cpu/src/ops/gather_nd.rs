//! CPU kernel for GatherND: each row of the last axis of `indices` addresses
//! a slice of `data` (after the first `batch_dims` dims, which both share).

use super::common::{input, pod_view, tensor_from_pod, with_word};
use anyhow::{bail, Result};
use cellm_ir::ops::GatherND;
use cellm_ir::shape::{numel, strides};
use cellm_ir::Tensor;

pub fn run(op: &GatherND, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let data = input(inputs, 0)?;
    let indices = input(inputs, 1)?;
    let b = op.batch_dims;
    let (ds, is) = (data.shape(), indices.shape());
    let (r, q) = (ds.len(), is.len());
    if q < 1 || r < 1 || b >= q.min(r) {
        bail!("GatherND batch_dims {b} needs ranks above it, got data {ds:?} and indices {is:?}");
    }
    let k = is[q - 1];
    if k > r - b || ds[..b] != is[..b] {
        bail!("GatherND indices {is:?} do not fit data {ds:?} with batch_dims {b}");
    }
    let idx = indices.to_i64_vec()?;
    let mut shape = is[..q - 1].to_vec();
    shape.extend_from_slice(&ds[b + k..]);
    let chunk = numel(&ds[b + k..]);
    let data_strides = strides(ds);
    let batch_stride = numel(&ds[b..]);
    // Index rows per batch entry.
    let rows_per_batch = numel(&is[b..q - 1]);
    let rows = numel(&is[..q - 1]);
    let out = with_word!(data.dtype(), W => {
        let src = pod_view::<W>(data)?;
        let mut out: Vec<W> = Vec::with_capacity(numel(&shape));
        for row in 0..rows {
            let batch = row.checked_div(rows_per_batch).unwrap_or(0);
            let mut start = batch * batch_stride;
            for (j, &i) in idx[row * k..(row + 1) * k].iter().enumerate() {
                let dim = ds[b + j] as i64;
                let v = if i < 0 { i + dim } else { i };
                if v < 0 || v >= dim {
                    bail!("GatherND index {i} is out of range for data axis {} of size {dim}", b + j);
                }
                start += v as usize * data_strides[b + j];
            }
            out.extend_from_slice(&src[start..start + chunk]);
        }
        tensor_from_pod(data.dtype(), shape, out)?
    });
    Ok(vec![out])
}
