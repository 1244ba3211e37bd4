//! MatMulInteger: numpy matmul of u8/i8 operands after subtracting their zero
//! points, accumulated in i32.

use super::{need, Fact, MatMul};
use crate::{DType, Tensor};

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MatMulInteger;

impl MatMulInteger {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let a = need(inputs, 0)?;
        let b = need(inputs, 1)?;
        for (what, f) in [("A", a), ("B", b)] {
            if !matches!(f.dtype, DType::U8 | DType::I8) {
                anyhow::bail!("{what} must be u8 or i8, got {}", f.dtype);
            }
        }
        // Shapes follow MatMul; the operands' own dtypes may differ (u8 x i8).
        let fa = Fact::new(DType::I32, a.shape.clone());
        let fb = Fact::new(DType::I32, b.shape.clone());
        MatMul.infer(&[Some(&fa), Some(&fb)], &consts[..consts.len().min(2)])
    }
}
