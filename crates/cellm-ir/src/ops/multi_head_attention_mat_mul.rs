//! MultiHeadAttentionMatMul: Y = MultiHeadAttention(...) · W, attention and
//! the output projection that reads it (and nothing else does) in one op.
//! Inputs: MultiHeadAttention's eight slots (query, key, value, bias,
//! key_padding_mask, attention_bias, past_key, past_value), then W [K, N]
//! at [`WEIGHT`] (f16 under an f32 query: f16 weights); output [B, S, N].
//!
//! Why fused: a decode step at long context splits attention's keys over
//! workgroups (flash decoding) and merges the chunks' partial softmax states
//! in a second launch; fused, that merge happens inside the projection's
//! GEMV, so the pair takes two launches whether or not the keys split.
//! Produced by the decoder-runtime pass
//! `cellm_opt::passes::multi_head_attention_mat_mul`; not an ONNX op.

use super::{Fact, MatMul, MultiHeadAttention};
use crate::Tensor;

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MultiHeadAttentionMatMul {
    pub attention: MultiHeadAttention,
}

/// Input slot of the projection weight (after attention's eight).
pub const WEIGHT: usize = 8;

impl MultiHeadAttentionMatMul {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        if inputs.len() != WEIGHT + 1 {
            anyhow::bail!(
                "takes attention's {WEIGHT} inputs and a weight, got {} inputs",
                inputs.len()
            );
        }
        let attn = self
            .attention
            .infer(&inputs[..WEIGHT], &consts[..WEIGHT.min(consts.len())])?;
        let out = attn
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("attention has no output"))?;
        MatMul
            .infer(&[Some(&out), inputs[WEIGHT]], &[])
            .map_err(|e| anyhow::anyhow!("projection: {e:#}"))
    }
}
