//! RotaryEmbeddingPair: two com.microsoft RotaryEmbedding ops (the query and
//! key rotaries of one attention block) that share position_ids, caches and
//! attributes, in one op. Inputs: x0, x1, position_ids, cos_cache, sin_cache;
//! outputs y0, y1, each as `RotaryEmbedding` computes it. Only `num_heads`
//! may differ between the two (grouped-query attention has fewer key heads).
//! Produced by the fusion pass `cellm_opt::passes::rotary_pair`; not an ONNX op.

use super::{need, Fact, RotaryEmbedding};
use crate::Tensor;

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RotaryEmbeddingPair {
    pub interleaved: bool,
    /// `num_heads` of the rotary of x0 and of x1.
    pub num_heads: [usize; 2],
    pub rotary_embedding_dim: usize,
    pub scale: f32,
}

impl RotaryEmbeddingPair {
    /// The single RotaryEmbedding applied to input `i` (0 or 1).
    pub fn single(&self, i: usize) -> RotaryEmbedding {
        RotaryEmbedding {
            interleaved: self.interleaved,
            num_heads: self.num_heads[i.min(1)],
            rotary_embedding_dim: self.rotary_embedding_dim,
            scale: self.scale,
        }
    }

    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let shared = [need(inputs, 2)?, need(inputs, 3)?, need(inputs, 4)?];
        let mut out = Vec::with_capacity(2);
        for i in 0..2 {
            let x = need(inputs, i)?;
            let ins = [Some(x), Some(shared[0]), Some(shared[1]), Some(shared[2])];
            let c = [
                consts.get(i).copied().flatten(),
                consts.get(2).copied().flatten(),
                consts.get(3).copied().flatten(),
                consts.get(4).copied().flatten(),
            ];
            let y = self
                .single(i)
                .infer(&ins, &c)
                .map_err(|e| anyhow::anyhow!("input x{i}: {e:#}"))?;
            out.extend(y);
        }
        Ok(out)
    }
}
