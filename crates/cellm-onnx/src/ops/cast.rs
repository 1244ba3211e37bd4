//! Cast: attribute `to` (required) is an ONNX data type code.

use super::{check_inputs, check_outputs, ImportCtx};
use crate::{attr, proto::NodeProto, tensor::onnx_type_name};
use anyhow::{anyhow, Result};
use cellm_ir::ops::Cast;
use cellm_ir::{DType, Op};

pub fn import(node: &NodeProto, _ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 1, 1)?;
    check_outputs(node, 1)?;
    let code = attr::int(node, "to")?.ok_or_else(|| anyhow!("attribute 'to' is required"))?;
    let to = i32::try_from(code)
        .ok()
        .and_then(DType::from_onnx)
        .ok_or_else(|| {
            anyhow!(
                "attribute 'to' = {code} ({}) is not a supported dtype",
                onnx_type_name(code as i32)
            )
        })?;
    // `saturate` (opset 19) only affects float8 targets, which are refused above.
    Ok(Op::Cast(Cast { to }))
}
