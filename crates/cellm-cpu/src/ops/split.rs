//! CPU kernel for Split along `axis`: sizes from the `split` attribute or
//! input 1, else `num_outputs` parts of `ceil(d / num_outputs)` (the last one
//! smaller when `d` does not divide evenly).

use super::common::{contiguous_strides, input, int_list, opt_input, strided_tensor, to_dim};
use anyhow::{bail, Result};
use cellm_ir::ops::Split;
use cellm_ir::shape::normalize_axis;
use cellm_ir::Tensor;

pub fn run(op: &Split, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let x = input(inputs, 0)?;
    let axis = normalize_axis(op.axis, x.rank())?;
    let d = x.shape()[axis];
    let sizes: Vec<usize> = match (&op.split, opt_input(inputs, 1)) {
        (Some(s), _) => s
            .iter()
            .map(|&v| to_dim(v, "Split sizes"))
            .collect::<Result<_>>()?,
        (None, Some(t)) => int_list(t, "Split sizes")?
            .into_iter()
            .map(|v| to_dim(v, "Split sizes"))
            .collect::<Result<_>>()?,
        (None, None) => {
            let n = op.num_outputs;
            if n == 0 {
                bail!("Split has neither sizes nor num_outputs");
            }
            let part = d.div_ceil(n);
            (0..n)
                .map(|i| part.min(d.saturating_sub(i * part)))
                .collect()
        }
    };
    if sizes.iter().sum::<usize>() != d {
        bail!("Split sizes {sizes:?} do not add up to axis {axis} of size {d}");
    }
    let strides = contiguous_strides(x.shape());
    let mut offset = 0;
    sizes
        .iter()
        .map(|&len| {
            let mut shape = x.shape().to_vec();
            shape[axis] = len;
            let t = strided_tensor(x, shape, &strides, offset as isize * strides[axis]);
            offset += len;
            t
        })
        .collect()
}
