//! Elementwise binary ops with broadcasting: Add, Sub, Mul, Div, Pow, Mod
//! (attribute `fmod`, default 0), Equal, Less, LessOrEqual, Greater,
//! GreaterOrEqual, And, Or.

use super::{check_inputs, check_outputs, ImportCtx};
use crate::{attr, proto::NodeProto};
use anyhow::{bail, Result};
use cellm_ir::ops::{Binary, BinaryOp};
use cellm_ir::Op;

pub fn import(node: &NodeProto, _ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 2, 2)?;
    check_outputs(node, 1)?;
    let op = match node.op_type.as_str() {
        "Add" => BinaryOp::Add,
        "Sub" => BinaryOp::Sub,
        "Mul" => BinaryOp::Mul,
        "Div" => BinaryOp::Div,
        "Pow" => BinaryOp::Pow,
        "Mod" => BinaryOp::Mod {
            fmod: attr::flag_or(node, "fmod", false)?,
        },
        "Equal" => BinaryOp::Equal,
        "Less" => BinaryOp::Less,
        "LessOrEqual" => BinaryOp::LessOrEqual,
        "Greater" => BinaryOp::Greater,
        "GreaterOrEqual" => BinaryOp::GreaterOrEqual,
        "And" => BinaryOp::And,
        "Or" => BinaryOp::Or,
        other => bail!("'{other}' is not a binary op"),
    };
    Ok(Op::Binary(Binary { op }))
}
