//! CPU kernel for Range: `start, start+delta, ...` below `limit` (above it for
//! negative `delta`), `max(ceil((limit-start)/delta), 0)` values. Values are
//! accumulated by repeated addition, as onnxruntime does.

use super::common::{input, tensor_from_pod, with_num, Num};
use anyhow::{bail, Result};
use cellm_ir::ops::Range;
use cellm_ir::Tensor;

fn typed<T: Num + std::ops::Sub<Output = T> + std::ops::Add<Output = T>>(
    start: &Tensor,
    limit: &Tensor,
    delta: &Tensor,
) -> Result<Tensor> {
    let scalar = |t: &Tensor, what: &str| -> Result<T> {
        match t.view::<T>()? {
            [v] => Ok(*v),
            _ => bail!("Range {what} must be a scalar, got shape {:?}", t.shape()),
        }
    };
    let (s, l, d) = (
        scalar(start, "start")?,
        scalar(limit, "limit")?,
        scalar(delta, "delta")?,
    );
    let count = if T::IS_FLOAT {
        if d.to_f64() == 0.0 {
            bail!("Range delta is zero");
        }
        // Difference in the element type, division in f64, as onnxruntime.
        ((l - s).to_f64() / d.to_f64()).ceil().max(0.0)
    } else {
        let (s, l, d) = (s.to_i64() as i128, l.to_i64() as i128, d.to_i64() as i128);
        if d == 0 {
            bail!("Range delta is zero");
        }
        let (num, den) = if d < 0 { (s - l, -d) } else { (l - s, d) };
        (if num <= 0 { 0 } else { (num + den - 1) / den }) as f64
    };
    // NaN (from inf - inf) fails the comparison too.
    if count.partial_cmp(&((1u64 << 40) as f64)) != Some(std::cmp::Ordering::Less) {
        bail!("Range would produce {count} values");
    }
    let n = count as usize;
    let mut out = Vec::with_capacity(n);
    let mut v = s;
    for i in 0..n {
        out.push(v);
        // Stepping past the last value could overflow a small int type.
        if i + 1 < n {
            v = v + d;
        }
    }
    tensor_from_pod(start.dtype(), vec![n], out)
}

pub fn run(_op: &Range, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let (start, limit, delta) = (input(inputs, 0)?, input(inputs, 1)?, input(inputs, 2)?);
    if start.dtype() != limit.dtype() || start.dtype() != delta.dtype() {
        bail!(
            "Range inputs differ in dtype: {}, {}, {}",
            start.dtype(),
            limit.dtype(),
            delta.dtype()
        );
    }
    Ok(vec![
        with_num!(start.dtype(), T => typed::<T>(start, limit, delta)?),
    ])
}
