//! Shape: attributes `start` (default 0) and `end` (default: the rank), opset 15.

use super::{check_inputs, check_outputs, ImportCtx};
use crate::{attr, proto::NodeProto};
use anyhow::Result;
use cellm_ir::ops::Shape;
use cellm_ir::Op;

pub fn import(node: &NodeProto, _ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 1, 1)?;
    check_outputs(node, 1)?;
    Ok(Op::Shape(Shape {
        start: attr::int_or(node, "start", 0)?,
        end: attr::int(node, "end")?,
    }))
}
