//! Trilu: Upper or lower triangle of the last two dims, offset by input 1 (k).

#[allow(unused_imports)]
use super::{need, same_shape, Fact};
#[allow(unused_imports)]
use crate::{DType, Tensor};

#[derive(Clone, Debug, PartialEq)]
pub struct Trilu {
    pub upper: bool,
}

impl Trilu {
    pub fn infer(&self, inputs: &[Option<&Fact>], _consts: &[Option<&Tensor>]) -> anyhow::Result<Vec<Fact>> {
        Ok(vec![Fact { dtype: need(inputs, 0)?.dtype, shape: same_shape(inputs, 0) }])
    }
}
