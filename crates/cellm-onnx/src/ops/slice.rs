//! Slice(data, starts, ends, axes?, steps?): the input form of opset >= 10
//! (the importer accepts opset >= 11 only).

use super::{check_inputs, check_outputs, ImportCtx};
use crate::proto::NodeProto;
use anyhow::Result;
use cellm_ir::ops::Slice;
use cellm_ir::Op;

pub fn import(node: &NodeProto, _ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 3, 5)?;
    check_outputs(node, 1)?;
    Ok(Op::Slice(Slice))
}
