//! CPU kernel for ScatterND: a copy of `data` where each index row of
//! `indices` addresses a slice that is replaced by (or combined with, per
//! `reduction`) the matching slice of `updates`. Rows apply in order.

use super::common::{input, pod_view, tensor_from_pod, with_num, with_word, Num};
use anyhow::{bail, Result};
use cellm_ir::ops::{ScatterND, ScatterReduction};
use cellm_ir::shape::{numel, strides};
use cellm_ir::Tensor;

/// Start offsets in `data` of the slices the index rows address.
fn slice_starts(ds: &[usize], idx: &[i64], k: usize) -> Result<Vec<usize>> {
    let st = strides(ds);
    let rows = idx.len().checked_div(k).unwrap_or(0);
    (0..rows)
        .map(|row| {
            let mut start = 0;
            for (j, &i) in idx[row * k..(row + 1) * k].iter().enumerate() {
                let dim = ds[j] as i64;
                let v = if i < 0 { i + dim } else { i };
                if v < 0 || v >= dim {
                    bail!("ScatterND index {i} is out of range for data axis {j} of size {dim}");
                }
                start += v as usize * st[j];
            }
            Ok(start)
        })
        .collect()
}

fn reduce_typed<T: Num>(
    reduction: ScatterReduction,
    data: &Tensor,
    updates: &Tensor,
    starts: &[usize],
    chunk: usize,
) -> Result<Tensor> {
    let combine: fn(T, T) -> T = match reduction {
        ScatterReduction::Add if T::IS_FLOAT => |a, b| T::from_f64(a.to_f64() + b.to_f64()),
        ScatterReduction::Add => |a, b| T::from_i64(a.to_i64().wrapping_add(b.to_i64())),
        ScatterReduction::Mul if T::IS_FLOAT => |a, b| T::from_f64(a.to_f64() * b.to_f64()),
        ScatterReduction::Mul => |a, b| T::from_i64(a.to_i64().wrapping_mul(b.to_i64())),
        ScatterReduction::Max => |a, b| if b > a { b } else { a },
        ScatterReduction::Min => |a, b| if b < a { b } else { a },
        ScatterReduction::None => |_, b| b,
    };
    let mut out = data.view::<T>()?.to_vec();
    let upd = updates.view::<T>()?;
    for (row, &start) in starts.iter().enumerate() {
        for (o, &u) in out[start..start + chunk]
            .iter_mut()
            .zip(&upd[row * chunk..(row + 1) * chunk])
        {
            *o = combine(*o, u);
        }
    }
    tensor_from_pod(data.dtype(), data.shape().to_vec(), out)
}

pub fn run(op: &ScatterND, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let data = input(inputs, 0)?;
    let indices = input(inputs, 1)?;
    let updates = input(inputs, 2)?;
    let (ds, is, us) = (data.shape(), indices.shape(), updates.shape());
    let q = is.len();
    if q == 0 || is[q - 1] > ds.len() {
        bail!("ScatterND indices {is:?} do not fit data {ds:?}");
    }
    let k = is[q - 1];
    let mut want = is[..q - 1].to_vec();
    want.extend_from_slice(&ds[k..]);
    if us != want.as_slice() || updates.dtype() != data.dtype() {
        bail!(
            "ScatterND updates are {} {us:?}, expected {} {want:?}",
            updates.dtype(),
            data.dtype()
        );
    }
    let chunk = numel(&ds[k..]);
    let mut starts = slice_starts(ds, &indices.to_i64_vec()?, k)?;
    if k == 0 {
        // Each (empty) index row addresses all of data.
        starts = vec![0; numel(&is[..q - 1])];
    }
    let out = if op.reduction == ScatterReduction::None {
        with_word!(data.dtype(), W => {
            let mut out = pod_view::<W>(data)?.to_vec();
            let upd = pod_view::<W>(updates)?;
            for (row, &start) in starts.iter().enumerate() {
                out[start..start + chunk].copy_from_slice(&upd[row * chunk..(row + 1) * chunk]);
            }
            tensor_from_pod(data.dtype(), ds.to_vec(), out)?
        })
    } else {
        with_num!(data.dtype(), T => reduce_typed::<T>(op.reduction, data, updates, &starts, chunk)?)
    };
    Ok(vec![out])
}
