//! CPU kernel for Slice(data, starts, ends, axes?, steps?): per axis, start
//! and end count from the back when negative and are clamped to the axis
//! (`[0, d]` for positive steps, `[-1, d-1]` for negative ones), so
//! INT64_MAX/INT64_MIN mean "to the end".

use super::common::{contiguous_strides, input, int_list, opt_input, strided_tensor};
use anyhow::{bail, Result};
use cellm_ir::ops::Slice;
use cellm_ir::shape::normalize_axis;
use cellm_ir::Tensor;

/// Output length and first index along a dim of size `d`.
pub fn slice_dim(d: usize, start: i64, end: i64, step: i64) -> Result<(usize, i64)> {
    if step == 0 {
        bail!("Slice step is 0");
    }
    if d == 0 {
        return Ok((0, 0));
    }
    let d = d as i64;
    let wrap = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
    let (start, end) = (wrap(start), wrap(end));
    let (start, end) = if step > 0 {
        (start.clamp(0, d), end.clamp(0, d))
    } else {
        (start.clamp(0, d - 1), end.clamp(-1, d - 1))
    };
    let len = if step > 0 {
        if end > start {
            (end - start + step - 1) / step
        } else {
            0
        }
    } else if start > end {
        (start - end + (-step) - 1) / (-step)
    } else {
        0
    };
    Ok((len as usize, start))
}

pub fn run(_op: &Slice, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let x = input(inputs, 0)?;
    let starts = int_list(input(inputs, 1)?, "Slice starts")?;
    let ends = int_list(input(inputs, 2)?, "Slice ends")?;
    let n = starts.len();
    let axes = match opt_input(inputs, 3) {
        Some(t) => int_list(t, "Slice axes")?,
        None => (0..n as i64).collect(),
    };
    let steps = match opt_input(inputs, 4) {
        Some(t) => int_list(t, "Slice steps")?,
        None => vec![1; n],
    };
    if ends.len() != n || axes.len() != n || steps.len() != n {
        bail!(
            "Slice starts/ends/axes/steps differ in length: {n}, {}, {}, {}",
            ends.len(),
            axes.len(),
            steps.len()
        );
    }
    let mut shape = x.shape().to_vec();
    let own = contiguous_strides(x.shape());
    let mut strides = own.clone();
    let mut base = 0isize;
    let mut seen = vec![false; x.rank()];
    for i in 0..n {
        let ax = normalize_axis(axes[i], x.rank())?;
        if seen[ax] {
            bail!("Slice axis {} is repeated", axes[i]);
        }
        seen[ax] = true;
        let (len, first) = slice_dim(x.shape()[ax], starts[i], ends[i], steps[i])?;
        shape[ax] = len;
        if len > 0 {
            base += first as isize * own[ax];
        }
        strides[ax] = own[ax] * steps[i] as isize;
    }
    Ok(vec![strided_tensor(x, shape, &strides, base)?])
}
