//! MatMulMultiRotary: a MatMulMulti whose first two products (the query and
//! key projections) feed a RotaryEmbeddingPair and nothing else, in one op.
//! Inputs: A [..., M, K], position_ids, cos_sin_cache, W0, W1[, W2]; outputs
//! rotary(A·W0), rotary(A·W1)[, A·W2], each as MatMulMulti and
//! RotaryEmbeddingPair compute them. cos_sin_cache is [max_pos, 2·C]: row p
//! holds the C cos values of position p, then its C sin values (one tensor,
//! so the GPU kernel needs one storage binding for both caches). Produced by
//! the fusion pass `cellm_opt::passes::mat_mul_multi_rotary`; not an ONNX op.

use super::{need, Fact, MatMulMulti, RotaryEmbeddingPair};
use crate::{Dim, Tensor};

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MatMulMultiRotary {
    pub interleaved: bool,
    /// `num_heads` of the rotary of output 0 and of output 1.
    pub num_heads: [usize; 2],
    pub rotary_embedding_dim: usize,
    pub scale: f32,
    /// Outputs stored as f16 under an f32 A: computed in f32 and rounded once
    /// (the keys and values an f16 KV cache takes; cellm-opt's `f16_kv_cache`).
    #[cfg_attr(feature = "serde", serde(default))]
    pub f16_outputs: Vec<usize>,
}

/// Index of the first weight among the inputs.
pub const FIRST_WEIGHT: usize = 3;

impl MatMulMultiRotary {
    /// The rotary pair applied to outputs 0 and 1.
    pub fn pair(&self) -> RotaryEmbeddingPair {
        RotaryEmbeddingPair {
            interleaved: self.interleaved,
            num_heads: self.num_heads,
            rotary_embedding_dim: self.rotary_embedding_dim,
            scale: self.scale,
        }
    }

    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        _consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let a = need(inputs, 0)?;
        let pos = need(inputs, 1)?;
        let cs = need(inputs, 2)?;
        if inputs.len() < FIRST_WEIGHT + 2 {
            anyhow::bail!("needs A, position_ids, cos_sin_cache and at least two weights");
        }
        let mut mm_in = vec![Some(a)];
        mm_in.extend(inputs[FIRST_WEIGHT..].iter().copied());
        let ys = MatMulMulti.infer(&mm_in, &[])?;
        // One cache half: [max_pos, C] of the merged [max_pos, 2C].
        let half_shape = match cs.shape.as_deref() {
            None => None,
            Some([m, w]) => Some(vec![
                m.clone(),
                match w.known() {
                    Some(w) if w % 2 == 0 => Dim::Known(w / 2),
                    Some(w) => anyhow::bail!("cos_sin_cache width {w} is odd"),
                    None => Dim::unknown(),
                },
            ]),
            Some(s) => anyhow::bail!("cos_sin_cache must be 2-D, got rank {}", s.len()),
        };
        let half = Fact::new(cs.dtype, half_shape);
        let rot = self.pair().infer(
            &[
                Some(&ys[0]),
                Some(&ys[1]),
                Some(pos),
                Some(&half),
                Some(&half),
            ],
            &[],
        )?;
        let mut outs: Vec<Fact> = rot.into_iter().chain(ys.into_iter().skip(2)).collect();
        for &i in &self.f16_outputs {
            match outs.get_mut(i) {
                Some(f) if matches!(f.dtype, crate::DType::F32 | crate::DType::F16) => {
                    f.dtype = crate::DType::F16
                }
                Some(f) => anyhow::bail!("f16 output {i} is {}, not float", f.dtype),
                None => anyhow::bail!("f16 output {i} of {} outputs", outs.len()),
            }
        }
        Ok(outs)
    }
}
