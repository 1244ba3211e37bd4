//! Elementwise unary ops: Neg, Sqrt, Reciprocal, Sigmoid, Tanh, Cos, Sin, Exp,
//! Log, Abs, Relu, Erf, Not, Identity.

use super::{need, Fact};
use crate::{DType, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Unary {
    pub op: UnaryOp,
}

impl Unary {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        _consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let x = need(inputs, 0)?;
        use UnaryOp::*;
        let ok = match self.op {
            Not => x.dtype == DType::Bool,
            Sqrt | Reciprocal | Sigmoid | Tanh | Cos | Sin | Exp | Log | Erf => x.dtype.is_float(),
            Identity | Neg | Abs | Relu => true,
        };
        if !ok {
            anyhow::bail!("{:?} does not take a {} input", self.op, x.dtype);
        }
        Ok(vec![x.clone()])
    }
}
