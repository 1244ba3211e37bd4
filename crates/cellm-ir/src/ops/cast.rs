//! Cast: Cast to another dtype.

use super::{need, Fact};
use crate::{DType, Tensor};

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Cast {
    pub to: DType,
}

impl Cast {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        _consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        Ok(vec![Fact {
            dtype: self.to,
            shape: need(inputs, 0)?.shape.clone(),
        }])
    }
}
