//! ConvInteger: Conv of u8/i8 input and weight after subtracting their zero
//! points, accumulated in i32. Attributes are Conv's.

use super::{need, Conv, Fact};
use crate::{DType, Tensor};

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ConvInteger {
    pub conv: Conv,
}

impl ConvInteger {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let x = need(inputs, 0)?;
        let w = need(inputs, 1)?;
        for (what, f) in [("X", x), ("W", w)] {
            if !matches!(f.dtype, DType::U8 | DType::I8) {
                anyhow::bail!("{what} must be u8 or i8, got {}", f.dtype);
            }
        }
        let fx = Fact::new(DType::I32, x.shape.clone());
        let fw = Fact::new(DType::I32, w.shape.clone());
        self.conv
            .infer(&[Some(&fx), Some(&fw)], &consts[..consts.len().min(2)])
    }
}
