//! KvCacheAppend (cellm): present = past ++ new along the sequence, in the
//! token-major cache layout [B, P, H*D] ++ [B, L, H*D] → [B, P+L, H*D].
//!
//! As a function it is a Concat on axis 1. Its contract lets a backend keep one
//! preallocated cache per past input (capacity `--max-seq`) and write only the
//! new rows in place: the past value is then a prefix view of that cache and
//! the present value the longer prefix (see the `kv_cache` pass in cellm-opt).

use super::{need, Fact};
use crate::shape::{dim_sum, fmt_shape, merge_dims};
use crate::Tensor;

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct KvCacheAppend;

impl KvCacheAppend {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        _consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let (past, new) = (need(inputs, 0)?, need(inputs, 1)?);
        if past.dtype != new.dtype {
            anyhow::bail!("past is {} but new is {}", past.dtype, new.dtype);
        }
        let (Some(ps), Some(ns)) = (&past.shape, &new.shape) else {
            return Ok(vec![Fact::new(past.dtype, None)]);
        };
        if ps.len() != 3 || ns.len() != 3 {
            anyhow::bail!(
                "past {} and new {} must be [B, L, H*D]",
                fmt_shape(ps),
                fmt_shape(ns)
            );
        }
        let b = merge_dims(&ps[0], &ns[0], "past and new batch sizes differ")?;
        let x = merge_dims(&ps[2], &ns[2], "past and new row sizes differ")?;
        let t = dim_sum(&[ps[1].clone(), ns[1].clone()]);
        Ok(vec![Fact::new(past.dtype, Some(vec![b, t, x]))])
    }
}
