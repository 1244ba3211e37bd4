//! Squeeze: Remove size-1 axes: `axes` attribute (opset < 13), input 1, or all size-1 axes.

use super::{const_ints, len_1d, need, normalize_axes, opt, unknown_dims, Fact};
use crate::shape::fmt_shape;
use crate::{Dim, Tensor};

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Squeeze {
    pub axes: Option<Vec<i64>>,
}

impl Squeeze {
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
            (None, Some(_)) => match const_ints(consts, 1)? {
                Some(a) => Some(a),
                None => {
                    let shape = len_1d(inputs, 1)
                        .and_then(|n| xs.len().checked_sub(n))
                        .map(unknown_dims);
                    return Ok(vec![Fact {
                        dtype: x.dtype,
                        shape,
                    }]);
                }
            },
            (None, None) => None,
        };
        let shape = match axes {
            Some(axes) => {
                let axes = normalize_axes(&axes, xs.len())?;
                for &a in &axes {
                    if let Some(n) = xs[a].known().filter(|&n| n != 1) {
                        anyhow::bail!("axis {a} of {} has size {n}, not 1", fmt_shape(xs));
                    }
                }
                Some(
                    xs.iter()
                        .enumerate()
                        .filter(|(i, _)| !axes.contains(i))
                        .map(|(_, d)| d.clone())
                        .collect(),
                )
            }
            // Every size-1 axis: symbols are taken as not 1 (as ONNX shape
            // inference does), but a `?` could be 1, so the rank is unknown.
            None if xs.iter().any(Dim::is_unknown) => None,
            None => Some(
                xs.iter()
                    .filter(|d| **d != Dim::Known(1))
                    .cloned()
                    .collect(),
            ),
        };
        Ok(vec![Fact {
            dtype: x.dtype,
            shape,
        }])
    }
}
