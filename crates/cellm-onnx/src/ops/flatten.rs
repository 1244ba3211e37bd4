//! Flatten: attribute `axis`, default 1.

use super::{check_inputs, check_outputs, ImportCtx};
use crate::{attr, proto::NodeProto};
use anyhow::Result;
use cellm_ir::ops::Flatten;
use cellm_ir::Op;

pub fn import(node: &NodeProto, _ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 1, 1)?;
    check_outputs(node, 1)?;
    Ok(Op::Flatten(Flatten {
        axis: attr::int_or(node, "axis", 1)?,
    }))
}
