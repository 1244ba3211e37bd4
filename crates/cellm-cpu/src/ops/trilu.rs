//! CPU kernel for Trilu: keeps the upper (`j - i >= k`) or lower
//! (`j - i <= k`) triangle of the last two dims and zeroes the rest; `k` is
//! the optional i64 scalar input 1 (default 0).

use super::common::{input, opt_input, pod_view, tensor_from_pod, with_word};
use anyhow::{bail, Result};
use cellm_ir::ops::Trilu;
use cellm_ir::Tensor;

pub fn run(op: &Trilu, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let x = input(inputs, 0)?;
    let k = match opt_input(inputs, 1) {
        Some(t) => match t.to_i64_vec()?.as_slice() {
            [k] => *k,
            _ => bail!("Trilu k must be a scalar, got shape {:?}", t.shape()),
        },
        None => 0,
    };
    let r = x.rank();
    if r < 2 {
        bail!("Trilu needs rank >= 2, got shape {:?}", x.shape());
    }
    let (rows, cols) = (x.shape()[r - 2], x.shape()[r - 1]);
    let keep = |i: usize, j: usize| {
        let diff = j as i64 - i as i64;
        if op.upper {
            diff >= k
        } else {
            diff <= k
        }
    };
    let out = with_word!(x.dtype(), W => {
        // All-zero bits are zero in every dtype.
        let mut v = pod_view::<W>(x)?.to_vec();
        if rows * cols > 0 {
            for (pos, e) in v.iter_mut().enumerate() {
                let (i, j) = ((pos / cols) % rows, pos % cols);
                if !keep(i, j) {
                    *e = 0;
                }
            }
        }
        tensor_from_pod(x.dtype(), x.shape().to_vec(), v)?
    });
    Ok(vec![out])
}
