//! Split: attribute `axis` (default 0); sizes from attribute `split`
//! (opset < 13) or input 1 (opset >= 13), else equal parts, one per output.

use super::{check_inputs, has_input, ImportCtx};
use crate::{attr, proto::NodeProto};
use anyhow::{bail, Result};
use cellm_ir::ops::Split;
use cellm_ir::Op;

pub fn import(node: &NodeProto, _ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 1, 2)?;
    if node.output.is_empty() {
        bail!("Split needs at least one output");
    }
    let split = attr::ints(node, "split")?;
    if split.is_some() && has_input(node, 1) {
        bail!("sizes given both as attribute 'split' and as input 1");
    }
    let num_outputs = node.output.len();
    if let Some(n) = attr::int(node, "num_outputs")? {
        if usize::try_from(n).ok() != Some(num_outputs) {
            bail!("attribute 'num_outputs' = {n} but the node has {num_outputs} outputs");
        }
    }
    if let Some(s) = &split {
        if s.len() != num_outputs {
            bail!(
                "attribute 'split' = {s:?} has {} sizes for {num_outputs} outputs",
                s.len()
            );
        }
    }
    Ok(Op::Split(Split {
        axis: attr::int_or(node, "axis", 0)?,
        split,
        num_outputs,
    }))
}
