//! Gather: Gather along `axis`; negative indices count from the end.

use super::{const_ints, need, Fact};
use crate::shape::normalize_axis;
use crate::{DType, Tensor};

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Gather {
    pub axis: i64,
}

impl Gather {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let data = need(inputs, 0)?;
        let idx = need(inputs, 1)?;
        if !matches!(idx.dtype, DType::I64 | DType::I32) {
            anyhow::bail!("indices must be i64 or i32, got {}", idx.dtype);
        }
        let (Some(ds), Some(is)) = (&data.shape, &idx.shape) else {
            return Ok(vec![Fact {
                dtype: data.dtype,
                shape: None,
            }]);
        };
        let axis = normalize_axis(self.axis, ds.len())?;
        if let (Some(n), Some(vals)) = (ds[axis].known(), const_ints(consts, 1)?) {
            let n = n as i64;
            if let Some(bad) = vals.iter().find(|&&i| i < -n || i >= n) {
                anyhow::bail!("index {bad} is out of range for axis {axis} of size {n}");
            }
        }
        let mut out = ds[..axis].to_vec();
        out.extend(is.iter().cloned());
        out.extend(ds[axis + 1..].iter().cloned());
        Ok(vec![Fact {
            dtype: data.dtype,
            shape: Some(out),
        }])
    }
}
