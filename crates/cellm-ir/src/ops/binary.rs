//! Elementwise binary ops with numpy broadcasting: Add, Sub, Mul, Div, Pow, Mod,
//! and the comparisons Equal, Less, LessOrEqual, Greater, GreaterOrEqual, And, Or.

use super::{need, Fact};
use crate::{DType, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        _consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let a = need(inputs, 0)?;
        let b = need(inputs, 1)?;
        match self.op {
            BinaryOp::And | BinaryOp::Or if a.dtype != DType::Bool || b.dtype != DType::Bool => {
                anyhow::bail!("inputs must be bool, got {} and {}", a.dtype, b.dtype)
            }
            BinaryOp::And | BinaryOp::Or => {}
            // Pow's exponent may have its own type.
            BinaryOp::Pow => {}
            _ if a.dtype != b.dtype => {
                anyhow::bail!("input 0 is {} but input 1 is {}", a.dtype, b.dtype)
            }
            _ => {}
        }
        let dtype = if self.op.is_comparison() {
            DType::Bool
        } else {
            a.dtype
        };
        let shape = match (&a.shape, &b.shape) {
            (Some(x), Some(y)) => Some(crate::shape::broadcast_sym(x, y)?),
            _ => None,
        };
        Ok(vec![Fact { dtype, shape }])
    }
}
