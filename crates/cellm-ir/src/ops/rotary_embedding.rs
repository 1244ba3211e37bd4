//! RotaryEmbedding: com.microsoft RotaryEmbedding(input [B,S,H*D] or [B,H,S,D], position_ids [B,S] or [1], cos_cache [max_pos, D/2], sin_cache): rotates the first `rotary_embedding_dim` (0 = all) channels of each head, interleaved pairs or halves.

#[allow(unused_imports)]
use super::{need, same_shape, Fact};
#[allow(unused_imports)]
use crate::{DType, Tensor};

#[derive(Clone, Debug, PartialEq)]
pub struct RotaryEmbedding {
    pub interleaved: bool,
    pub num_heads: usize,
    pub rotary_embedding_dim: usize,
    pub scale: f32,
}

impl RotaryEmbedding {
    pub fn infer(&self, inputs: &[Option<&Fact>], _consts: &[Option<&Tensor>]) -> anyhow::Result<Vec<Fact>> {
        Ok(vec![Fact { dtype: need(inputs, 0)?.dtype, shape: same_shape(inputs, 0) }])
    }
}
