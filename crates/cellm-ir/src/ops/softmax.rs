//! Softmax: Softmax over `axis` (opset >= 13 semantics: one axis).

use super::{need, Fact};
use crate::shape::normalize_axis;
use crate::Tensor;

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Softmax {
    pub axis: i64,
}

impl Softmax {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        _consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let x = need(inputs, 0)?;
        if !x.dtype.is_float() {
            anyhow::bail!("input must be a float tensor, got {}", x.dtype);
        }
        if let Some(s) = &x.shape {
            normalize_axis(self.axis, s.len())?;
        }
        Ok(vec![x.clone()])
    }
}
