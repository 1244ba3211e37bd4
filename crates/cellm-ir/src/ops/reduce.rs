//! Reduce: ReduceMean / ReduceSum / ReduceMax / ReduceMin / ReduceProd. Axes come from the attribute (`axes`) or, in newer opsets, from input 1.

#[allow(unused_imports)]
use super::{need, same_shape, Fact};
#[allow(unused_imports)]
use crate::{DType, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceKind {
    Mean,
    Sum,
    Max,
    Min,
    Prod,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Reduce {
    pub kind: ReduceKind,
    pub axes: Option<Vec<i64>>,
    pub keepdims: bool,
    pub noop_with_empty_axes: bool,
}

impl Reduce {
    pub fn infer(&self, inputs: &[Option<&Fact>], _consts: &[Option<&Tensor>]) -> anyhow::Result<Vec<Fact>> {
        Ok(vec![Fact { dtype: need(inputs, 0)?.dtype, shape: None }])
    }
}
