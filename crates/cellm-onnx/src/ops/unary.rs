//! Elementwise unary ops (no attributes): Neg, Sqrt, Reciprocal, Sigmoid,
//! Tanh, Cos, Sin, Exp, Log, Abs, Relu, Erf, Not, Identity.

use super::{check_inputs, check_outputs, ImportCtx};
use crate::proto::NodeProto;
use anyhow::{bail, Result};
use cellm_ir::ops::{Unary, UnaryOp};
use cellm_ir::Op;

pub fn import(node: &NodeProto, _ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 1, 1)?;
    check_outputs(node, 1)?;
    let op = match node.op_type.as_str() {
        "Identity" => UnaryOp::Identity,
        "Neg" => UnaryOp::Neg,
        "Sqrt" => UnaryOp::Sqrt,
        "Reciprocal" => UnaryOp::Reciprocal,
        "Sigmoid" => UnaryOp::Sigmoid,
        "Tanh" => UnaryOp::Tanh,
        "Cos" => UnaryOp::Cos,
        "Sin" => UnaryOp::Sin,
        "Exp" => UnaryOp::Exp,
        "Log" => UnaryOp::Log,
        "Abs" => UnaryOp::Abs,
        "Relu" => UnaryOp::Relu,
        "Erf" => UnaryOp::Erf,
        "Not" => UnaryOp::Not,
        other => bail!("'{other}' is not a unary op"),
    };
    Ok(Op::Unary(Unary { op }))
}
