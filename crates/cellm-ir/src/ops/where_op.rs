//! Where: Where(cond, x, y) with broadcasting.

use super::{need, Fact};
use crate::shape::broadcast_sym;
use crate::{DType, Tensor};

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Where;

impl Where {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        _consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let (c, x, y) = (need(inputs, 0)?, need(inputs, 1)?, need(inputs, 2)?);
        if c.dtype != DType::Bool {
            anyhow::bail!("condition (input 0) must be bool, got {}", c.dtype);
        }
        if x.dtype != y.dtype {
            anyhow::bail!("X (input 1) is {} but Y (input 2) is {}", x.dtype, y.dtype);
        }
        let shape = match (&c.shape, &x.shape, &y.shape) {
            (Some(c), Some(x), Some(y)) => Some(broadcast_sym(&broadcast_sym(c, x)?, y)?),
            _ => None,
        };
        Ok(vec![Fact {
            dtype: x.dtype,
            shape,
        }])
    }
}
