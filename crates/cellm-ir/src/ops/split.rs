//! Split: Split along `axis` into the sizes of `split` (attribute, or input 1), else into `num_outputs` equal parts.

#[allow(unused_imports)]
use super::{need, same_shape, Fact};
#[allow(unused_imports)]
use crate::{DType, Tensor};

#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    pub axis: i64,
    pub split: Option<Vec<i64>>,
    pub num_outputs: usize,
}

impl Split {
    pub fn infer(&self, inputs: &[Option<&Fact>], _consts: &[Option<&Tensor>]) -> anyhow::Result<Vec<Fact>> {
        Ok(vec![Fact { dtype: need(inputs, 0)?.dtype, shape: None }])
    }
}
