//! Shape: The shape of input 0 as i64, sliced by `start`/`end`.

#[allow(unused_imports)]
use super::{need, same_shape, Fact};
#[allow(unused_imports)]
use crate::{DType, Tensor};

#[derive(Clone, Debug, PartialEq)]
pub struct Shape {
    pub start: i64,
    pub end: Option<i64>,
}

impl Shape {
    pub fn infer(&self, inputs: &[Option<&Fact>], _consts: &[Option<&Tensor>]) -> anyhow::Result<Vec<Fact>> {
        Ok(vec![Fact { dtype: DType::I64, shape: None }])
    }
}
