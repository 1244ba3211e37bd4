//! Range: no attributes.

use super::{check_inputs, check_outputs, ImportCtx};
use crate::proto::NodeProto;
use anyhow::Result;
use cellm_ir::ops::Range;
use cellm_ir::Op;

pub fn import(node: &NodeProto, _ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 3, 3)?;
    check_outputs(node, 1)?;
    Ok(Op::Range(Range))
}
