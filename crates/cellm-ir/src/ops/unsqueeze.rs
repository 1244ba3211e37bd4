//! Unsqueeze: Insert size-1 axes: `axes` attribute (opset < 13) or input 1.

use super::{const_ints, len_1d, need, normalize_axes, opt, unknown_dims, Fact};
use crate::{Dim, Tensor};

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Unsqueeze {
    pub axes: Option<Vec<i64>>,
}

impl Unsqueeze {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let x = need(inputs, 0)?;
        let axes = match (&self.axes, opt(inputs, 1)) {
            (Some(a), _) => Some(a.clone()),
            (None, Some(_)) => const_ints(consts, 1)?,
            (None, None) => anyhow::bail!("needs axes (attribute or input 1)"),
        };
        let Some(xs) = &x.shape else {
            return Ok(vec![Fact {
                dtype: x.dtype,
                shape: None,
            }]);
        };
        let Some(axes) = axes else {
            let shape = len_1d(inputs, 1).map(|n| unknown_dims(xs.len() + n));
            return Ok(vec![Fact {
                dtype: x.dtype,
                shape,
            }]);
        };
        // Axes count in the output's rank.
        let rank = xs.len() + axes.len();
        let axes = normalize_axes(&axes, rank)?;
        let mut rest = xs.iter();
        let shape = (0..rank)
            .map(|i| {
                if axes.contains(&i) {
                    Some(Dim::Known(1))
                } else {
                    rest.next().cloned()
                }
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| anyhow::anyhow!("axes do not fit the input"))?;
        Ok(vec![Fact {
            dtype: x.dtype,
            shape: Some(shape),
        }])
    }
}
