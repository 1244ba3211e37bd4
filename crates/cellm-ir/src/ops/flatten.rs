//! Flatten: Flatten to 2-D at `axis`.

use super::{need, Fact};
use crate::shape::dim_product;
use crate::Tensor;

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Flatten {
    pub axis: i64,
}

impl Flatten {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        _consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let x = need(inputs, 0)?;
        let shape = match &x.shape {
            Some(s) => {
                // Unlike most axes, `axis` may equal the rank here.
                let r = s.len() as i64;
                let a = if self.axis < 0 {
                    self.axis + r
                } else {
                    self.axis
                };
                if a < 0 || a > r {
                    anyhow::bail!("axis {} is out of range for rank {r}", self.axis);
                }
                let (outer, inner) = s.split_at(a as usize);
                Some(vec![dim_product(outer), dim_product(inner)])
            }
            None => None,
        };
        Ok(vec![Fact {
            dtype: x.dtype,
            shape,
        }])
    }
}
