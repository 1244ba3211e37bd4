//! ScatterND: ScatterND(data, indices, updates) with optional reduction.

use super::{need, Fact};
use crate::shape::fmt_shape;
use crate::{DType, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum ScatterReduction {
    None,
    Add,
    Mul,
    Max,
    Min,
}

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ScatterND {
    pub reduction: ScatterReduction,
}

impl ScatterND {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        _consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let data = need(inputs, 0)?;
        let idx = need(inputs, 1)?;
        let upd = need(inputs, 2)?;
        if idx.dtype != DType::I64 {
            anyhow::bail!("indices must be i64, got {}", idx.dtype);
        }
        if upd.dtype != data.dtype {
            anyhow::bail!("data is {} but updates is {}", data.dtype, upd.dtype);
        }
        // updates must be indices[:-1] ++ data[k:], k = indices[-1].
        if let (Some(ds), Some(is), Some(us)) = (&data.shape, &idx.shape, &upd.shape) {
            if let Some(k) = is.last().and_then(|d| d.known()) {
                let want = is.len() - 1 + ds.len().saturating_sub(k);
                if k > ds.len() || us.len() != want {
                    anyhow::bail!(
                        "updates {} do not fit data {} and indices {}",
                        fmt_shape(us),
                        fmt_shape(ds),
                        fmt_shape(is)
                    );
                }
            }
        }
        Ok(vec![data.clone()])
    }
}
