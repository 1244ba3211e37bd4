//! CPU kernel for Unsqueeze: inserts size-1 axes at the positions (in the
//! output's rank) named by the `axes` attribute or input 1.

use super::common::{input, int_list, opt_input};
use anyhow::{bail, Result};
use cellm_ir::ops::Unsqueeze;
use cellm_ir::shape::normalize_axis;
use cellm_ir::Tensor;

pub fn run(op: &Unsqueeze, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let x = input(inputs, 0)?;
    let axes = match (&op.axes, opt_input(inputs, 1)) {
        (Some(a), _) => a.clone(),
        (None, Some(t)) => int_list(t, "Unsqueeze axes")?,
        (None, None) => bail!("Unsqueeze needs axes"),
    };
    let rank = x.rank() + axes.len();
    let mut inserted = vec![false; rank];
    for &a in &axes {
        let ax = normalize_axis(a, rank)?;
        if inserted[ax] {
            bail!("Unsqueeze axis {a} is repeated");
        }
        inserted[ax] = true;
    }
    let mut dims = x.shape().iter();
    let shape = inserted
        .iter()
        .map(|&new| {
            if new {
                1
            } else {
                dims.next().copied().unwrap_or(1)
            }
        })
        .collect();
    Ok(vec![x.reshaped(shape)?])
}
