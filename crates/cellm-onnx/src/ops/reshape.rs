//! Reshape: attribute `allowzero` (opset 14), default 0.

use super::{check_inputs, check_outputs, ImportCtx};
use crate::{attr, proto::NodeProto};
use anyhow::Result;
use cellm_ir::ops::Reshape;
use cellm_ir::Op;

pub fn import(node: &NodeProto, _ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 2, 2)?;
    check_outputs(node, 1)?;
    Ok(Op::Reshape(Reshape {
        allowzero: attr::flag_or(node, "allowzero", false)?,
    }))
}
