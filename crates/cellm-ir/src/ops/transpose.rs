//! Transpose: Permute axes; no `perm` reverses them.

use super::{need, Fact};
use crate::Tensor;

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Transpose {
    pub perm: Option<Vec<usize>>,
}

impl Transpose {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        _consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let x = need(inputs, 0)?;
        let Some(xs) = &x.shape else {
            return Ok(vec![Fact {
                dtype: x.dtype,
                shape: None,
            }]);
        };
        let perm: Vec<usize> = self
            .perm
            .clone()
            .unwrap_or_else(|| (0..xs.len()).rev().collect());
        let mut seen = vec![false; xs.len()];
        let is_perm = perm.len() == xs.len()
            && perm
                .iter()
                .all(|&p| p < xs.len() && !std::mem::replace(&mut seen[p], true));
        if !is_perm {
            anyhow::bail!(
                "perm {perm:?} is not a permutation of the {} axes",
                xs.len()
            );
        }
        Ok(vec![Fact {
            dtype: x.dtype,
            shape: Some(perm.iter().map(|&p| xs[p].clone()).collect()),
        }])
    }
}
