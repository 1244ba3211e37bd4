//! SiluMul: silu(gate)·up = gate·sigmoid(gate)·up, the gated MLP activation of
//! Llama-style decoders (SwiGLU) in one op. Inputs: gate, up (same float
//! dtype, shapes broadcast numpy-style). Produced by the fusion pass
//! `cellm_opt::passes::silu_mul`; not an ONNX op.

use super::{need, Fact};
use crate::Tensor;

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SiluMul;

impl SiluMul {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        _consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let gate = need(inputs, 0)?;
        let up = need(inputs, 1)?;
        if !gate.dtype.is_float() || gate.dtype != up.dtype {
            anyhow::bail!(
                "gate and up must be the same float dtype, got {} and {}",
                gate.dtype,
                up.dtype
            );
        }
        let shape = match (&gate.shape, &up.shape) {
            (Some(g), Some(u)) => Some(crate::shape::broadcast_sym(g, u)?),
            _ => None,
        };
        Ok(vec![Fact {
            dtype: gate.dtype,
            shape,
        }])
    }
}
