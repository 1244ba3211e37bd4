//! NonZero: Indices of non-zero elements, [rank, count] i64.

use super::{need, Fact};
use crate::{DType, Dim, Tensor};

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct NonZero;

impl NonZero {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        _consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let x = need(inputs, 0)?;
        let rank = x
            .shape
            .as_ref()
            .map_or_else(Dim::unknown, |s| Dim::Known(s.len()));
        // The count depends on the values.
        Ok(vec![Fact {
            dtype: DType::I64,
            shape: Some(vec![rank, Dim::unknown()]),
        }])
    }
}
