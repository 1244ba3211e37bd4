//! LayerNormalization: LayerNormalization(x, scale, bias?) over the axes from `axis` on.

use super::{need, opt, Fact};
use crate::shape::{fmt_shape, normalize_axis};
use crate::{DType, Dim, SymShape, Tensor};

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LayerNormalization {
    pub axis: i64,
    pub epsilon: f32,
}

/// Shape of per-row statistics: the normalized axes (from `axis` on) become 1.
pub(crate) fn stats_shape(x: &[Dim], axis: usize) -> SymShape {
    x.iter()
        .enumerate()
        .map(|(i, d)| if i < axis { d.clone() } else { Dim::Known(1) })
        .collect()
}

/// Checks that a scale/bias input's known dims match x's trailing dims.
pub(crate) fn check_param(
    x: &[Dim],
    p: Option<&Fact>,
    name: &str,
    dtype: DType,
) -> anyhow::Result<()> {
    let Some(p) = p else { return Ok(()) };
    if p.dtype != dtype {
        anyhow::bail!("input is {dtype} but {name} is {}", p.dtype);
    }
    if let Some(ps) = &p.shape {
        if ps.len() > x.len() {
            anyhow::bail!(
                "{name} {} has a higher rank than the input {}",
                fmt_shape(ps),
                fmt_shape(x)
            );
        }
        for (pd, xd) in ps.iter().rev().zip(x.iter().rev()) {
            if let (Some(a), Some(b)) = (pd.known(), xd.known()) {
                if a != b && a != 1 {
                    anyhow::bail!(
                        "{name} {} does not match the input {}",
                        fmt_shape(ps),
                        fmt_shape(x)
                    );
                }
            }
        }
    }
    Ok(())
}

impl LayerNormalization {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        _consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let x = need(inputs, 0)?;
        need(inputs, 1)?;
        // Mean and InvStdDev use the stash type, f32 by default.
        let Some(xs) = &x.shape else {
            return Ok(vec![
                x.clone(),
                Fact::new(DType::F32, None),
                Fact::new(DType::F32, None),
            ]);
        };
        let axis = normalize_axis(self.axis, xs.len())?;
        check_param(xs, opt(inputs, 1), "scale", x.dtype)?;
        check_param(xs, opt(inputs, 2), "bias", x.dtype)?;
        let stats = Fact::new(DType::F32, Some(stats_shape(xs, axis)));
        Ok(vec![x.clone(), stats.clone(), stats])
    }
}
