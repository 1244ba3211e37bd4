//! Tile: Tile(input, repeats).

use super::{const_ints, need, unknown_dims, Fact};
use crate::shape::{dim_product, fmt_shape};
use crate::{DType, Dim, Tensor};

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Tile;

impl Tile {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let x = need(inputs, 0)?;
        let r = need(inputs, 1)?;
        if r.dtype != DType::I64 {
            anyhow::bail!("repeats must be i64, got {}", r.dtype);
        }
        let Some(xs) = &x.shape else {
            return Ok(vec![Fact {
                dtype: x.dtype,
                shape: None,
            }]);
        };
        if let Some(rs) = &r.shape {
            if rs.len() != 1 || rs[0].known().is_some_and(|n| n != xs.len()) {
                anyhow::bail!(
                    "repeats {} must be 1-D with one value per input dim ({})",
                    fmt_shape(rs),
                    xs.len()
                );
            }
        }
        let shape = match const_ints(consts, 1)? {
            Some(reps) => {
                if reps.len() != xs.len() {
                    anyhow::bail!("{} repeats for a rank-{} input", reps.len(), xs.len());
                }
                let mut out = Vec::with_capacity(xs.len());
                for (d, &n) in xs.iter().zip(&reps) {
                    let n = usize::try_from(n)
                        .map_err(|_| anyhow::anyhow!("repeats {reps:?} has a negative value"))?;
                    out.push(dim_product(&[d.clone(), Dim::Known(n)]));
                }
                out
            }
            None => unknown_dims(xs.len()),
        };
        Ok(vec![Fact {
            dtype: x.dtype,
            shape: Some(shape),
        }])
    }
}
