//! Dropout at inference is the identity. The mask output and training mode
//! are refused rather than silently ignored.

use super::{check_inputs, check_outputs, has_input, has_output, ImportCtx};
use crate::proto::NodeProto;
use anyhow::{bail, Result};
use cellm_ir::ops::{Unary, UnaryOp};
use cellm_ir::Op;

pub fn import(node: &NodeProto, ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 1, 3)?;
    check_outputs(node, 2)?;
    if has_output(node, 1) {
        bail!("the mask output of Dropout is not supported (inference only)");
    }
    if has_input(node, 2) {
        match ctx.initializer(node, 2).map(|t| t.to_i64_vec()) {
            Some(Ok(v)) if v.iter().all(|&x| x == 0) => {}
            _ => bail!("Dropout with training_mode (input 2) is not supported (inference only)"),
        }
    }
    Ok(Op::Unary(Unary {
        op: UnaryOp::Identity,
    }))
}
