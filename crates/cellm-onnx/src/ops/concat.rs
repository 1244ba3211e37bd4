//! Concat: attribute `axis` is required.

use super::{check_inputs, check_outputs, ImportCtx};
use crate::{attr, proto::NodeProto};
use anyhow::{anyhow, Result};
use cellm_ir::ops::Concat;
use cellm_ir::Op;

pub fn import(node: &NodeProto, _ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 1, usize::MAX)?;
    check_outputs(node, 1)?;
    let axis = attr::int(node, "axis")?.ok_or_else(|| anyhow!("attribute 'axis' is required"))?;
    Ok(Op::Concat(Concat { axis }))
}
