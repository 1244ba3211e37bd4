//! MultiHeadAttention: com.microsoft MultiHeadAttention: query [B,S,H*D], key/value [B,L,H*D] (or [B,H,L,D]), optional bias, key_padding_mask, attention_bias [B|1,H|1,S,T], past_key/past_value [B,H,P,D]; outputs output [B,S,H*D], present_key/present_value [B,H,P+L,D].

#[allow(unused_imports)]
use super::{need, same_shape, Fact};
#[allow(unused_imports)]
use crate::{DType, Tensor};

#[derive(Clone, Debug, PartialEq)]
pub struct MultiHeadAttention {
    pub num_heads: usize,
    pub scale: Option<f32>,
    pub mask_filter_value: f32,
    pub unidirectional: bool,
}

impl MultiHeadAttention {
    pub fn infer(&self, inputs: &[Option<&Fact>], _consts: &[Option<&Tensor>]) -> anyhow::Result<Vec<Fact>> {
        Ok(vec![Fact { dtype: need(inputs, 0)?.dtype, shape: same_shape(inputs, 0) }])
    }
}
