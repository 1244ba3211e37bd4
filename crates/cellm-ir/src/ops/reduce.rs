//! Reduce: ReduceMean / ReduceSum / ReduceMax / ReduceMin / ReduceProd. Axes come from the attribute (`axes`) or, in newer opsets, from input 1.

use super::{const_ints, len_1d, need, normalize_axes, opt, unknown_dims, Fact};
use crate::{Dim, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum ReduceKind {
    Mean,
    Sum,
    Max,
    Min,
    Prod,
}

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Reduce {
    pub kind: ReduceKind,
    pub axes: Option<Vec<i64>>,
    pub keepdims: bool,
    pub noop_with_empty_axes: bool,
}

impl Reduce {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let x = need(inputs, 0)?;
        let Some(xs) = &x.shape else {
            return Ok(vec![Fact {
                dtype: x.dtype,
                shape: None,
            }]);
        };
        let axes = match (&self.axes, opt(inputs, 1)) {
            (Some(a), _) => Some(a.clone()),
            (None, None) => Some(vec![]),
            (None, Some(_)) => const_ints(consts, 1)?,
        };
        let Some(axes) = axes else {
            // Axes known only at run time: with keepdims the rank stays.
            let shape = if self.keepdims {
                Some(unknown_dims(xs.len()))
            } else {
                len_1d(inputs, 1)
                    .and_then(|n| xs.len().checked_sub(n))
                    .map(unknown_dims)
            };
            return Ok(vec![Fact {
                dtype: x.dtype,
                shape,
            }]);
        };
        let axes = if axes.is_empty() {
            if self.noop_with_empty_axes {
                return Ok(vec![x.clone()]);
            }
            (0..xs.len()).collect()
        } else {
            normalize_axes(&axes, xs.len())?
        };
        let shape = xs
            .iter()
            .enumerate()
            .filter_map(|(i, d)| match (axes.contains(&i), self.keepdims) {
                (false, _) => Some(d.clone()),
                (true, true) => Some(Dim::Known(1)),
                (true, false) => None,
            })
            .collect();
        Ok(vec![Fact {
            dtype: x.dtype,
            shape: Some(shape),
        }])
    }
}
