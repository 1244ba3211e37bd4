//! Split: Split along `axis` into the sizes of `split` (attribute, or input 1), else into `num_outputs` equal parts.

use super::{const_ints, need, opt, Fact};
use crate::shape::{fmt_shape, normalize_axis};
use crate::{Dim, Tensor};

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Split {
    pub axis: i64,
    pub split: Option<Vec<i64>>,
    pub num_outputs: usize,
}

impl Split {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let x = need(inputs, 0)?;
        let sizes = match (&self.split, opt(inputs, 1)) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(_)) => const_ints(consts, 1)?,
            (None, None) => None,
        };
        let n = sizes.as_ref().map_or(self.num_outputs, |s| s.len());
        if n == 0 {
            anyhow::bail!("splits into no outputs");
        }
        let Some(xs) = &x.shape else {
            return Ok(vec![
                Fact {
                    dtype: x.dtype,
                    shape: None
                };
                n
            ]);
        };
        let axis = normalize_axis(self.axis, xs.len())?;
        if sizes.is_none() && opt(inputs, 1).is_some() {
            // Sizes come from a runtime tensor: only the count is known.
            return Ok(vec![
                Fact {
                    dtype: x.dtype,
                    shape: Some(with_dim(xs, axis, Dim::unknown()))
                };
                n
            ]);
        }
        let lens: Vec<Dim> = match (&sizes, xs[axis].known()) {
            (Some(s), dim) => {
                if let Some(bad) = s.iter().find(|&&v| v < 0) {
                    anyhow::bail!("split size {bad} is negative in {s:?}");
                }
                let total: i64 = s.iter().sum();
                if dim.is_some_and(|d| d as i64 != total) {
                    anyhow::bail!(
                        "split sizes {s:?} sum to {total}, but axis {axis} of {} has {}",
                        fmt_shape(xs),
                        xs[axis]
                    );
                }
                s.iter().map(|&v| Dim::Known(v as usize)).collect()
            }
            (None, Some(d)) => {
                // Equal parts of ceil(d / n); the last one takes what is left.
                let part = d.div_ceil(n);
                (0..n)
                    .map(|i| Dim::Known(part.min(d.saturating_sub(i * part))))
                    .collect()
            }
            (None, None) => vec![Dim::unknown(); n],
        };
        Ok(lens
            .into_iter()
            .map(|l| Fact {
                dtype: x.dtype,
                shape: Some(with_dim(xs, axis, l)),
            })
            .collect())
    }
}

fn with_dim(xs: &[Dim], axis: usize, d: Dim) -> Vec<Dim> {
    let mut s = xs.to_vec();
    s[axis] = d;
    s
}
