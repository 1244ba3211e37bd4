//! Trilu: Upper or lower triangle of the last two dims, offset by input 1 (k).

use super::{need, opt, Fact};
use crate::shape::fmt_shape;
use crate::{DType, Tensor};

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Trilu {
    pub upper: bool,
}

impl Trilu {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        _consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let x = need(inputs, 0)?;
        if let Some(s) = x.shape.as_ref().filter(|s| s.len() < 2) {
            anyhow::bail!("input must have rank >= 2, got {}", fmt_shape(s));
        }
        if let Some(k) = opt(inputs, 1) {
            if k.dtype != DType::I64 {
                anyhow::bail!("k must be i64, got {}", k.dtype);
            }
        }
        Ok(vec![x.clone()])
    }
}
