//! CPU kernel for ConstantOfShape: fills the shape given by input 0 with `value`.

use super::common::{input, int_list, pod_view, tensor_from_pod, to_dim, with_word};
use anyhow::{bail, Result};
use cellm_ir::ops::ConstantOfShape;
use cellm_ir::shape::numel;
use cellm_ir::Tensor;

pub fn run(op: &ConstantOfShape, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let dims = int_list(input(inputs, 0)?, "ConstantOfShape shape")?;
    let shape: Vec<usize> = dims
        .iter()
        .map(|&d| to_dim(d, "ConstantOfShape shape"))
        .collect::<Result<_>>()?;
    if op.value.len() != 1 {
        bail!(
            "ConstantOfShape value must have one element, got shape {:?}",
            op.value.shape()
        );
    }
    let dt = op.value.dtype();
    let out = with_word!(dt, W => {
        let v = pod_view::<W>(&op.value)?[0];
        tensor_from_pod(dt, shape.clone(), vec![v; numel(&shape)])?
    });
    Ok(vec![out])
}
