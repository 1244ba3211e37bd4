//! CPU kernel for Reshape: a 0 copies the input dim (unless `allowzero`), one
//! -1 is inferred from the element count.

use super::common::{input, int_list};
use anyhow::{bail, Result};
use cellm_ir::ops::Reshape;
use cellm_ir::Tensor;

/// The output shape for `spec` applied to `in_shape`.
pub fn resolve_shape(in_shape: &[usize], spec: &[i64], allowzero: bool) -> Result<Vec<usize>> {
    let mut shape = Vec::with_capacity(spec.len());
    let mut infer_at = None;
    for (i, &s) in spec.iter().enumerate() {
        match s {
            -1 if infer_at.is_some() => bail!("Reshape shape {spec:?} has more than one -1"),
            -1 => {
                infer_at = Some(i);
                shape.push(1);
            }
            0 if !allowzero => match in_shape.get(i) {
                Some(&d) => shape.push(d),
                None => bail!(
                    "Reshape shape {spec:?} copies dim {i} of an input of rank {}",
                    in_shape.len()
                ),
            },
            s if s < 0 => bail!("Reshape shape {spec:?} has a negative dim {s}"),
            s => shape.push(s as usize),
        }
    }
    let total: usize = in_shape.iter().product();
    let known: usize = shape.iter().product();
    if let Some(i) = infer_at {
        if known == 0 || !total.is_multiple_of(known) {
            bail!("Reshape cannot infer the -1 in {spec:?} for input shape {in_shape:?}");
        }
        shape[i] = total / known;
    } else if known != total {
        bail!("Reshape {in_shape:?} into {spec:?}: element counts differ");
    }
    Ok(shape)
}

pub fn run(op: &Reshape, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let x = input(inputs, 0)?;
    let spec = int_list(input(inputs, 1)?, "Reshape shape")?;
    let shape = resolve_shape(x.shape(), &spec, op.allowzero)?;
    Ok(vec![x.reshaped(shape)?])
}
