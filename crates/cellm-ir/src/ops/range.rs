//! Range: Range(start, limit, delta) of scalars.

use super::{need, Fact};
use crate::shape::fmt_shape;
use crate::{Dim, Tensor};

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Range;

/// The one value of a constant scalar input.
fn scalar(consts: &[Option<&Tensor>], i: usize) -> Option<f64> {
    consts
        .get(i)
        .copied()
        .flatten()
        .filter(|t| t.len() == 1)
        .map(|t| t.to_f64_vec()[0])
}

impl Range {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let names = ["start", "limit", "delta"];
        let dtype = need(inputs, 0)?.dtype;
        for (i, name) in names.iter().enumerate() {
            let f = need(inputs, i)?;
            if f.dtype != dtype {
                anyhow::bail!("start is {dtype} but {name} is {}", f.dtype);
            }
            if let Some(s) = &f.shape {
                if s.iter().any(|d| d.known().is_some_and(|n| n != 1)) || s.len() > 1 {
                    anyhow::bail!("{name} must be a scalar, got shape {}", fmt_shape(s));
                }
            }
        }
        let len = match (scalar(consts, 0), scalar(consts, 1), scalar(consts, 2)) {
            (Some(start), Some(limit), Some(delta)) => {
                if delta == 0.0 {
                    anyhow::bail!("delta is 0");
                }
                Dim::Known(((limit - start) / delta).ceil().max(0.0) as usize)
            }
            _ => Dim::unknown(),
        };
        Ok(vec![Fact {
            dtype,
            shape: Some(vec![len]),
        }])
    }
}
