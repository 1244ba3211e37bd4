//! ReduceMean / ReduceSum / ReduceMax / ReduceMin / ReduceProd: `keepdims`
//! (default 1), `noop_with_empty_axes` (default 0); axes from attribute
//! `axes` (ReduceSum before opset 13, the others before 18) or input 1.

use super::{check_inputs, check_outputs, has_input, ImportCtx};
use crate::{attr, proto::NodeProto};
use anyhow::{bail, Result};
use cellm_ir::ops::{Reduce, ReduceKind};
use cellm_ir::Op;

pub fn import(node: &NodeProto, _ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 1, 2)?;
    check_outputs(node, 1)?;
    let kind = match node.op_type.as_str() {
        "ReduceMean" => ReduceKind::Mean,
        "ReduceSum" => ReduceKind::Sum,
        "ReduceMax" => ReduceKind::Max,
        "ReduceMin" => ReduceKind::Min,
        "ReduceProd" => ReduceKind::Prod,
        other => bail!("'{other}' is not a reduction"),
    };
    // Both forms are accepted whatever the opset: exporters are not always
    // exact about the switch, and the meaning is the same.
    let axes = attr::ints(node, "axes")?;
    if axes.is_some() && has_input(node, 1) {
        bail!("axes given both as attribute 'axes' and as input 1");
    }
    Ok(Op::Reduce(Reduce {
        kind,
        axes,
        keepdims: attr::flag_or(node, "keepdims", true)?,
        noop_with_empty_axes: attr::flag_or(node, "noop_with_empty_axes", false)?,
    }))
}
