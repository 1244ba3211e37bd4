//! MatMulInteger: no attributes; zero points are optional inputs 2 and 3.

use super::{check_inputs, check_outputs, ImportCtx};
use crate::proto::NodeProto;
use anyhow::Result;
use cellm_ir::ops::MatMulInteger;
use cellm_ir::Op;

pub fn import(node: &NodeProto, _ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 2, 4)?;
    check_outputs(node, 1)?;
    Ok(Op::MatMulInteger(MatMulInteger))
}
