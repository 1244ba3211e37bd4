//! Trilu: attribute `upper`, default 1; k is the optional input 1.

use super::{check_inputs, check_outputs, ImportCtx};
use crate::{attr, proto::NodeProto};
use anyhow::Result;
use cellm_ir::ops::Trilu;
use cellm_ir::Op;

pub fn import(node: &NodeProto, _ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 1, 2)?;
    check_outputs(node, 1)?;
    Ok(Op::Trilu(Trilu {
        upper: attr::flag_or(node, "upper", true)?,
    }))
}
