//! ConstantOfShape: A tensor of the shape given by input 0, filled with `value` (a one-element tensor; default f32 0).

#[allow(unused_imports)]
use super::{need, same_shape, Fact};
#[allow(unused_imports)]
use crate::{DType, Tensor};

#[derive(Clone, Debug, PartialEq)]
pub struct ConstantOfShape {
    pub value: Tensor,
}

impl ConstantOfShape {
    pub fn infer(&self, inputs: &[Option<&Fact>], _consts: &[Option<&Tensor>]) -> anyhow::Result<Vec<Fact>> {
        Ok(vec![Fact { dtype: self.value.dtype(), shape: None }])
    }
}
