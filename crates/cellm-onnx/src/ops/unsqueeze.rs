//! Unsqueeze: axes from attribute `axes` (opset < 13) or input 1 (opset >= 13);
//! one of the two is required.

use super::{check_inputs, check_outputs, has_input, ImportCtx};
use crate::{attr, proto::NodeProto};
use anyhow::{bail, Result};
use cellm_ir::ops::Unsqueeze;
use cellm_ir::Op;

pub fn import(node: &NodeProto, _ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 1, 2)?;
    check_outputs(node, 1)?;
    let axes = attr::ints(node, "axes")?;
    match (&axes, has_input(node, 1)) {
        (Some(_), true) => bail!("axes given both as attribute 'axes' and as input 1"),
        (None, false) => {
            bail!("axes are required (attribute 'axes' before opset 13, input 1 from 13)")
        }
        _ => {}
    }
    Ok(Op::Unsqueeze(Unsqueeze { axes }))
}
