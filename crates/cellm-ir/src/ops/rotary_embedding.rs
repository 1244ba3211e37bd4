//! RotaryEmbedding: com.microsoft RotaryEmbedding(input [B,S,H*D] or [B,H,S,D], position_ids [B,S] or [1], cos_cache [max_pos, D/2], sin_cache): rotates the first `rotary_embedding_dim` (0 = all) channels of each head, interleaved pairs or halves.

use super::{need, Fact};
use crate::shape::fmt_shape;
use crate::Tensor;

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RotaryEmbedding {
    pub interleaved: bool,
    pub num_heads: usize,
    pub rotary_embedding_dim: usize,
    pub scale: f32,
}

impl RotaryEmbedding {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        _consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let x = need(inputs, 0)?;
        need(inputs, 1)?;
        let cos = need(inputs, 2)?;
        let sin = need(inputs, 3)?;
        if cos.dtype != x.dtype || sin.dtype != x.dtype {
            anyhow::bail!(
                "input is {} but cos_cache is {} and sin_cache is {}",
                x.dtype,
                cos.dtype,
                sin.dtype
            );
        }
        if let Some(s) = x.shape.as_ref().filter(|s| !(3..=4).contains(&s.len())) {
            anyhow::bail!("input must be [B,S,H*D] or [B,H,S,D], got {}", fmt_shape(s));
        }
        Ok(vec![x.clone()])
    }
}
