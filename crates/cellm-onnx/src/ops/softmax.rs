//! Softmax: from opset 13 one axis, default -1. Before 13 the input was
//! coerced to 2-D at `axis` (default 1); that only equals the one-axis form
//! when the axis is the last one, which is all that is accepted there.

use super::{check_inputs, check_outputs, ImportCtx};
use crate::{attr, proto::NodeProto};
use anyhow::{bail, Result};
use cellm_ir::ops::Softmax;
use cellm_ir::Op;

pub fn import(node: &NodeProto, ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 1, 1)?;
    check_outputs(node, 1)?;
    let axis = if ctx.opset >= 13 {
        attr::int_or(node, "axis", -1)?
    } else {
        match attr::int(node, "axis")? {
            Some(-1) => -1,
            other => bail!(
                "Softmax before opset 13 flattens from attribute 'axis' = {} on; only axis -1 is supported there",
                other.unwrap_or(1)
            ),
        }
    };
    Ok(Op::Softmax(Softmax { axis }))
}
