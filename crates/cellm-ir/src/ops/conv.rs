//! Conv: N-d convolution (NCHW). `pads` is [begin..., end...]; `auto_pad` is resolved by the importer except SAME_* which needs input shapes.

use super::{need, opt, Fact};
use crate::shape::{fmt_shape, merge_dims};
use crate::{Dim, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum AutoPad {
    NotSet,
    Valid,
    SameUpper,
    SameLower,
}

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Conv {
    pub kernel_shape: Option<Vec<usize>>,
    pub strides: Vec<usize>,
    pub pads: Vec<usize>,
    pub dilations: Vec<usize>,
    pub group: usize,
    pub auto_pad: AutoPad,
}

impl Conv {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        _consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let x = need(inputs, 0)?;
        let w = need(inputs, 1)?;
        if x.dtype != w.dtype {
            anyhow::bail!("X is {} but W is {}", x.dtype, w.dtype);
        }
        if let Some(b) = opt(inputs, 2) {
            if b.dtype != x.dtype {
                anyhow::bail!("X is {} but B is {}", x.dtype, b.dtype);
            }
        }
        let (Some(xs), Some(ws)) = (&x.shape, &w.shape) else {
            return Ok(vec![Fact {
                dtype: x.dtype,
                shape: None,
            }]);
        };
        if xs.len() < 3 || xs.len() != ws.len() {
            anyhow::bail!(
                "X {} and W {} must have the same rank >= 3",
                fmt_shape(xs),
                fmt_shape(ws)
            );
        }
        let spatial = xs.len() - 2;
        let group = self.group.max(1);
        if let (Some(c), Some(wc)) = (xs[1].known(), ws[1].known()) {
            if c != wc * group {
                anyhow::bail!(
                    "X has {c} channels but W {} expects {} (group {group})",
                    fmt_shape(ws),
                    wc * group
                );
            }
        }
        let mut m = ws[0].clone();
        if let Some(b) = opt(inputs, 2).and_then(|b| b.shape.as_deref()) {
            match b {
                [d] => m = merge_dims(&m, d, "B's length differs from W's output channels")?,
                _ => anyhow::bail!("B must be 1-D, got {}", fmt_shape(b)),
            }
        }
        let per_dim = |v: &[usize], name: &str, default: usize| -> anyhow::Result<Vec<usize>> {
            match v.len() {
                0 => Ok(vec![default; spatial]),
                n if n == spatial => Ok(v.to_vec()),
                n => anyhow::bail!("'{name}' has {n} values for {spatial} spatial dims"),
            }
        };
        let strides = per_dim(&self.strides, "strides", 1)?;
        let dilations = per_dim(&self.dilations, "dilations", 1)?;
        let pads = match self.pads.len() {
            0 => vec![0; 2 * spatial],
            n if n == 2 * spatial => self.pads.clone(),
            n => anyhow::bail!("'pads' has {n} values for {spatial} spatial dims"),
        };
        let mut out = vec![xs[0].clone(), m];
        for i in 0..spatial {
            let k = match (&self.kernel_shape, ws[2 + i].known()) {
                (Some(ks), wk) => {
                    let k = *ks
                        .get(i)
                        .ok_or_else(|| anyhow::anyhow!("'kernel_shape' has too few values"))?;
                    if wk.is_some_and(|wk| wk != k) {
                        anyhow::bail!("'kernel_shape' {ks:?} does not match W {}", fmt_shape(ws));
                    }
                    k
                }
                (None, Some(wk)) => wk,
                (None, None) => {
                    out.push(Dim::unknown());
                    continue;
                }
            };
            let (s, d) = (strides[i].max(1), dilations[i].max(1));
            let dim = match (xs[2 + i].known(), self.auto_pad) {
                (None, _) => Dim::unknown(),
                (Some(n), AutoPad::SameUpper | AutoPad::SameLower) => Dim::Known(n.div_ceil(s)),
                (Some(n), pad) => {
                    let padded = if pad == AutoPad::Valid {
                        n
                    } else {
                        n + pads[i] + pads[spatial + i]
                    };
                    let span = d * (k - 1) + 1;
                    if padded < span {
                        anyhow::bail!("spatial dim {i} ({n}, padded {padded}) is smaller than the kernel span {span}");
                    }
                    Dim::Known((padded - span) / s + 1)
                }
            };
            out.push(dim);
        }
        Ok(vec![Fact {
            dtype: x.dtype,
            shape: Some(out),
        }])
    }
}
