//! Elementwise binary ops with numpy broadcasting: Add, Sub, Mul, Div, Pow, Mod,
//! and the comparisons Equal, Less, LessOrEqual, Greater, GreaterOrEqual, And, Or.

use super::Fact;
use crate::{DType, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Mod { fmod: bool },
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    And,
    Or,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Binary {
    pub op: BinaryOp,
}

impl BinaryOp {
    /// True for ops whose output is bool.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Equal
                | BinaryOp::Less
                | BinaryOp::LessOrEqual
                | BinaryOp::Greater
                | BinaryOp::GreaterOrEqual
                | BinaryOp::And
                | BinaryOp::Or
        )
    }
}

impl Binary {
    pub fn infer(&self, inputs: &[Option<&Fact>], _consts: &[Option<&Tensor>]) -> anyhow::Result<Vec<Fact>> {
        let a = super::need(inputs, 0)?;
        let b = super::need(inputs, 1)?;
        let dtype = if self.op.is_comparison() { DType::Bool } else { a.dtype };
        let shape = match (&a.shape, &b.shape) {
            (Some(x), Some(y)) => Some(crate::shape::broadcast_sym(x, y)?),
            _ => None,
        };
        Ok(vec![Fact { dtype, shape }])
    }
}
