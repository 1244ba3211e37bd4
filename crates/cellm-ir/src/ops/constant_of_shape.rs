//! ConstantOfShape: A tensor of the shape given by input 0, filled with `value` (a one-element tensor; default f32 0).

use super::{const_ints, len_1d, need, unknown_dims, Fact};
use crate::{Dim, Tensor};

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ConstantOfShape {
    pub value: Tensor,
}

impl ConstantOfShape {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let s = need(inputs, 0)?;
        if let Some(shape) = &s.shape {
            if shape.len() != 1 {
                anyhow::bail!("the shape input must be 1-D, got rank {}", shape.len());
            }
        }
        let shape = match const_ints(consts, 0)? {
            Some(v) => Some(
                v.iter()
                    .map(|&n| usize::try_from(n).map(Dim::Known))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| anyhow::anyhow!("shape {v:?} has a negative dim"))?,
            ),
            None => len_1d(inputs, 0).map(unknown_dims),
        };
        Ok(vec![Fact {
            dtype: self.value.dtype(),
            shape,
        }])
    }
}
