//! GatherND: attribute `batch_dims`, default 0.

use super::{check_inputs, check_outputs, ImportCtx};
use crate::{attr, proto::NodeProto};
use anyhow::Result;
use cellm_ir::ops::GatherND;
use cellm_ir::Op;

pub fn import(node: &NodeProto, _ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 2, 2)?;
    check_outputs(node, 1)?;
    Ok(Op::GatherND(GatherND {
        batch_dims: attr::usize_or(node, "batch_dims", 0)?,
    }))
}
