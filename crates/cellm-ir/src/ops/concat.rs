//! Concat: Concat along `axis` (negative allowed).

use super::{need, Fact};
use crate::shape::{dim_sum, fmt_shape, merge_dims, normalize_axis};
use crate::{Dim, Tensor};

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Concat {
    pub axis: i64,
}

impl Concat {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        _consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        if inputs.is_empty() {
            anyhow::bail!("needs at least one input");
        }
        let facts = (0..inputs.len())
            .map(|i| need(inputs, i))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let dtype = facts[0].dtype;
        for (i, f) in facts.iter().enumerate() {
            if f.dtype != dtype {
                anyhow::bail!("input 0 is {dtype} but input {i} is {}", f.dtype);
            }
        }
        let known: Vec<(usize, &[Dim])> = facts
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.shape.as_deref().map(|s| (i, s)))
            .collect();
        let Some(&(_, first)) = known.first() else {
            return Ok(vec![Fact { dtype, shape: None }]);
        };
        let rank = first.len();
        let axis = normalize_axis(self.axis, rank)?;
        let mut out = first.to_vec();
        for &(i, s) in &known[1..] {
            if s.len() != rank {
                anyhow::bail!(
                    "input 0 has rank {rank} ({}) but input {i} has rank {} ({})",
                    fmt_shape(first),
                    s.len(),
                    fmt_shape(s)
                );
            }
            for d in (0..rank).filter(|&d| d != axis) {
                out[d] = merge_dims(
                    &out[d],
                    &s[d],
                    &format!("dim {d} differs between inputs (input {i})"),
                )?;
            }
        }
        out[axis] = if known.len() == facts.len() {
            dim_sum(
                &known
                    .iter()
                    .map(|(_, s)| s[axis].clone())
                    .collect::<Vec<_>>(),
            )
        } else {
            Dim::unknown()
        };
        Ok(vec![Fact {
            dtype,
            shape: Some(out),
        }])
    }
}
