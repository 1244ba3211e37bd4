//! Squeeze: axes from attribute `axes` (opset < 13) or input 1 (opset >= 13);
//! neither means every size-1 axis.

use super::{check_inputs, check_outputs, has_input, ImportCtx};
use crate::{attr, proto::NodeProto};
use anyhow::{bail, Result};
use cellm_ir::ops::Squeeze;
use cellm_ir::Op;

pub fn import(node: &NodeProto, _ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 1, 2)?;
    check_outputs(node, 1)?;
    let axes = attr::ints(node, "axes")?;
    if axes.is_some() && has_input(node, 1) {
        bail!("axes given both as attribute 'axes' and as input 1");
    }
    Ok(Op::Squeeze(Squeeze { axes }))
}
