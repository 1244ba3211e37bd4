//! CPU kernel for Squeeze: drops the size-1 axes named by the `axes`
//! attribute or input 1, or all size-1 axes when none are named.

use super::common::{input, int_list, opt_input};
use anyhow::{bail, Result};
use cellm_ir::ops::Squeeze;
use cellm_ir::shape::normalize_axis;
use cellm_ir::Tensor;

pub fn run(op: &Squeeze, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let x = input(inputs, 0)?;
    let axes = match (&op.axes, opt_input(inputs, 1)) {
        (Some(a), _) => Some(a.clone()),
        (None, Some(t)) => Some(int_list(t, "Squeeze axes")?),
        (None, None) => None,
    };
    // An empty axes list squeezes every size-1 dim too, as onnxruntime does.
    let drop: Vec<bool> = match axes.filter(|a| !a.is_empty()) {
        None => x.shape().iter().map(|&d| d == 1).collect(),
        Some(axes) => {
            let mut drop = vec![false; x.rank()];
            for a in axes {
                let ax = normalize_axis(a, x.rank())?;
                if x.shape()[ax] != 1 {
                    bail!("Squeeze axis {a} has size {}, not 1", x.shape()[ax]);
                }
                drop[ax] = true;
            }
            drop
        }
    };
    let shape = x
        .shape()
        .iter()
        .zip(&drop)
        .filter(|(_, &d)| !d)
        .map(|(&s, _)| s)
        .collect();
    Ok(vec![x.reshaped(shape)?])
}
