//! ScatterND: attribute `reduction` (opset 16), default "none".

use super::{check_inputs, check_outputs, ImportCtx};
use crate::{attr, proto::NodeProto};
use anyhow::{bail, Result};
use cellm_ir::ops::{ScatterND, ScatterReduction};
use cellm_ir::Op;

pub fn import(node: &NodeProto, _ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 3, 3)?;
    check_outputs(node, 1)?;
    let reduction = match attr::string(node, "reduction")?.as_deref() {
        None | Some("none") => ScatterReduction::None,
        Some("add") => ScatterReduction::Add,
        Some("mul") => ScatterReduction::Mul,
        Some("max") => ScatterReduction::Max,
        Some("min") => ScatterReduction::Min,
        Some(other) => {
            bail!("attribute 'reduction' = '{other}' is not one of none, add, mul, max, min")
        }
    };
    Ok(Op::ScatterND(ScatterND { reduction }))
}
