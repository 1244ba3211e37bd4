//! GatherND: GatherND with `batch_dims`.

use super::{need, Fact};
use crate::shape::{fmt_shape, merge_dims};
use crate::{DType, Tensor};

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct GatherND {
    pub batch_dims: usize,
}

impl GatherND {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        _consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let data = need(inputs, 0)?;
        let idx = need(inputs, 1)?;
        if idx.dtype != DType::I64 {
            anyhow::bail!("indices must be i64, got {}", idx.dtype);
        }
        let (Some(ds), Some(is)) = (&data.shape, &idx.shape) else {
            return Ok(vec![Fact {
                dtype: data.dtype,
                shape: None,
            }]);
        };
        let b = self.batch_dims;
        if is.is_empty() || b >= is.len() || b >= ds.len() {
            anyhow::bail!(
                "batch_dims {b} needs data {} and indices {} of larger rank",
                fmt_shape(ds),
                fmt_shape(is)
            );
        }
        let mut out: Vec<_> = is[..is.len() - 1].to_vec();
        for d in 0..b {
            out[d] = merge_dims(
                &ds[d],
                &is[d],
                &format!("batch dim {d} differs between data and indices"),
            )?;
        }
        // The output rank depends on the length of the index tuples.
        let Some(last) = is[is.len() - 1].known() else {
            return Ok(vec![Fact {
                dtype: data.dtype,
                shape: None,
            }]);
        };
        if b + last > ds.len() {
            anyhow::bail!(
                "index tuples of length {last} are too long for data {} (batch_dims {b})",
                fmt_shape(ds)
            );
        }
        out.extend(ds[b + last..].iter().cloned());
        Ok(vec![Fact {
            dtype: data.dtype,
            shape: Some(out),
        }])
    }
}
