//! Expand: Broadcast input 0 to the shape in input 1 (bidirectional).

use super::{const_ints, len_1d, need, Fact};
use crate::shape::broadcast_sym;
use crate::{Dim, Tensor};

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Expand;

impl Expand {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let x = need(inputs, 0)?;
        let shape = match (&x.shape, const_ints(consts, 1)?) {
            (Some(xs), Some(target)) => {
                let target = target
                    .iter()
                    .map(|&n| usize::try_from(n).map(Dim::Known))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| anyhow::anyhow!("shape {target:?} has a negative dim"))?;
                Some(broadcast_sym(xs, &target)?)
            }
            (Some(xs), None) => len_1d(inputs, 1).map(|n| {
                let rank = n.max(xs.len());
                (0..rank)
                    .map(|i| match (i + xs.len()).checked_sub(rank).map(|j| &xs[j]) {
                        // Only a number other than 1 survives any broadcast partner.
                        Some(Dim::Known(k)) if *k != 1 => Dim::Known(*k),
                        _ => Dim::unknown(),
                    })
                    .collect()
            }),
            (None, _) => None,
        };
        Ok(vec![Fact {
            dtype: x.dtype,
            shape,
        }])
    }
}
