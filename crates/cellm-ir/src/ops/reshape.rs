//! Reshape: Reshape to input 1; 0 copies the input dim unless `allowzero`, -1 is inferred.

use super::{const_ints, len_1d, need, unknown_dims, Fact};
use crate::shape::{dim_div, dim_product, fmt_shape};
use crate::{DType, Dim, SymShape, Tensor};

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Reshape {
    pub allowzero: bool,
}

impl Reshape {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let x = need(inputs, 0)?;
        let s = need(inputs, 1)?;
        if s.dtype != DType::I64 {
            anyhow::bail!("the shape input must be i64, got {}", s.dtype);
        }
        let shape = match const_ints(consts, 1)? {
            Some(target) => Some(self.resolve(x.shape.as_deref(), &target)?),
            None => len_1d(inputs, 1).map(unknown_dims),
        };
        Ok(vec![Fact {
            dtype: x.dtype,
            shape,
        }])
    }

    /// The output shape for a constant `target`, given the input shape if known.
    fn resolve(&self, xs: Option<&[Dim]>, target: &[i64]) -> anyhow::Result<SymShape> {
        if self.allowzero && target.contains(&0) && target.contains(&-1) {
            anyhow::bail!("shape {target:?} has both 0 and -1, which allowzero forbids");
        }
        let mut out = Vec::with_capacity(target.len());
        let mut infer_at = None;
        for (i, &t) in target.iter().enumerate() {
            out.push(match t {
                0 if self.allowzero => Dim::Known(0),
                0 => match xs {
                    Some(xs) => xs.get(i).cloned().ok_or_else(|| {
                        anyhow::anyhow!(
                            "shape {target:?} copies dim {i}, but the input {} has rank {}",
                            fmt_shape(xs),
                            xs.len()
                        )
                    })?,
                    None => Dim::unknown(),
                },
                -1 => {
                    if infer_at.replace(i).is_some() {
                        anyhow::bail!("shape {target:?} has more than one -1");
                    }
                    Dim::unknown()
                }
                n if n > 0 => Dim::Known(n as usize),
                n => anyhow::bail!("shape {target:?} has an invalid dim {n}"),
            });
        }
        let Some(xs) = xs else { return Ok(out) };
        let total = dim_product(xs);
        match infer_at {
            Some(at) => {
                let others: Vec<Dim> = out
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != at)
                    .map(|(_, d)| d.clone())
                    .collect();
                let rest = dim_product(&others);
                out[at] = match dim_div(&total, &rest) {
                    Some(d) => d,
                    None if total.known().is_some() && rest.known().is_some() => {
                        anyhow::bail!(
                            "cannot reshape {} ({total} elements) into {target:?}",
                            fmt_shape(xs)
                        )
                    }
                    None => Dim::unknown(),
                };
            }
            None => {
                if let (Some(a), Some(b)) = (total.known(), dim_product(&out).known()) {
                    if a != b {
                        anyhow::bail!(
                            "cannot reshape {} ({a} elements) into {target:?} ({b} elements)",
                            fmt_shape(xs)
                        );
                    }
                }
            }
        }
        Ok(out)
    }
}
