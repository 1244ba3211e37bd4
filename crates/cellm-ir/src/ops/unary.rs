//! Elementwise unary ops: Neg, Sqrt, Reciprocal, Sigmoid, Tanh, Cos, Sin, Exp,
//! Log, Abs, Relu, Erf, Not, Identity.

use super::Fact;
use crate::Tensor;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Identity,
    Neg,
    Sqrt,
    Reciprocal,
    Sigmoid,
    Tanh,
    Cos,
    Sin,
    Exp,
    Log,
    Abs,
    Relu,
    Erf,
    Not,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Unary {
    pub op: UnaryOp,
}

impl Unary {
    pub fn infer(&self, inputs: &[Option<&Fact>], _consts: &[Option<&Tensor>]) -> anyhow::Result<Vec<Fact>> {
        Ok(vec![super::need(inputs, 0)?.clone()])
    }
}
