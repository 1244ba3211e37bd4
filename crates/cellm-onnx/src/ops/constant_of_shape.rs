//! ConstantOfShape: attribute `value` is a one-element tensor (default f32 0).

use super::{check_inputs, check_outputs, ImportCtx};
use crate::{attr, proto::NodeProto, tensor::TensorReader};
use anyhow::{bail, Context, Result};
use cellm_ir::ops::ConstantOfShape;
use cellm_ir::{Op, Tensor};

pub fn import(node: &NodeProto, _ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 1, 1)?;
    check_outputs(node, 1)?;
    let value = match attr::tensor(node, "value")? {
        Some(t) => TensorReader::new(None)
            .read(t)
            .context("attribute 'value'")?,
        None => Tensor::from_vec(vec![1], vec![0f32]),
    };
    if value.len() != 1 {
        bail!(
            "attribute 'value' must hold one element, it has shape {:?}",
            value.shape()
        );
    }
    Ok(Op::ConstantOfShape(ConstantOfShape { value }))
}
