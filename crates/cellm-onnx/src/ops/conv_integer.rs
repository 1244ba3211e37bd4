//! ConvInteger: Conv's attributes (and defaults); inputs x, w and the optional
//! zero points x_zero_point, w_zero_point.

use super::{check_inputs, ImportCtx};
use crate::proto::NodeProto;
use anyhow::{bail, Result};
use cellm_ir::ops::ConvInteger;
use cellm_ir::Op;

pub fn import(node: &NodeProto, ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 2, 4)?;
    // Conv's importer reads the attributes; it must not see the zero points
    // as a bias.
    let mut conv_node = node.clone();
    conv_node.input.truncate(2);
    match super::conv::import(&conv_node, ctx)? {
        Op::Conv(conv) => Ok(Op::ConvInteger(ConvInteger { conv })),
        other => bail!("Conv importer gave {}", other.name()),
    }
}
