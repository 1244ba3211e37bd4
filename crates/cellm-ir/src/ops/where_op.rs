//! Where: Where(cond, x, y) with broadcasting.

#[allow(unused_imports)]
use super::{need, same_shape, Fact};
#[allow(unused_imports)]
use crate::{DType, Tensor};

#[derive(Clone, Debug, PartialEq)]
pub struct Where;

impl Where {
    pub fn infer(&self, inputs: &[Option<&Fact>], _consts: &[Option<&Tensor>]) -> anyhow::Result<Vec<Fact>> {
        Ok(vec![Fact { dtype: need(inputs, 1)?.dtype, shape: None }])
    }
}
