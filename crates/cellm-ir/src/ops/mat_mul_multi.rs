//! MatMulMulti: Y_i = A·B_i for several 2-D weights B_i [K, N_i] read against
//! one activation A [..., M, K] (the q/k/v projections of an attention
//! block): one output per weight, Y_i [..., M, N_i] of A's dtype. Each B_i may
//! be f16 under f32 A (f16 weights). The weights stay separate tensors (no
//! concatenated copy). Produced by the fusion pass
//! `cellm_opt::passes::mat_mul_multi`; not an ONNX op.

use super::{need, Fact, MatMulEpilogue};
use crate::Tensor;

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MatMulMulti;

impl MatMulMulti {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        _consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let a = need(inputs, 0)?;
        if inputs.len() < 2 {
            anyhow::bail!("needs A and at least one weight");
        }
        let mut out = Vec::with_capacity(inputs.len() - 1);
        for i in 1..inputs.len() {
            let b = need(inputs, i)?;
            let y = MatMulEpilogue
                .infer(&[Some(a), Some(b)], &[])
                .map_err(|e| anyhow::anyhow!("weight {} (input {i}): {e:#}", i - 1))?;
            out.extend(y);
        }
        Ok(out)
    }
}
