//! Expand: no attributes.

use super::{check_inputs, check_outputs, ImportCtx};
use crate::proto::NodeProto;
use anyhow::Result;
use cellm_ir::ops::Expand;
use cellm_ir::Op;

pub fn import(node: &NodeProto, _ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 2, 2)?;
    check_outputs(node, 1)?;
    Ok(Op::Expand(Expand))
}
