//! Gelu (ONNX opset 20): x·Φ(x), exact through erf (`approximate = "none"`) or
//! with the tanh approximation 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
//! The fusion pass `cellm_opt::passes::gelu` also produces it from the
//! decomposed forms exporters write.

use super::{need, Fact};
use crate::Tensor;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum GeluApproximation {
    /// x·0.5·(1 + erf(x/√2)).
    None,
    /// x·0.5·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
    Tanh,
}

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Gelu {
    pub approximate: GeluApproximation,
}

impl Gelu {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        _consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let x = need(inputs, 0)?;
        if !x.dtype.is_float() {
            anyhow::bail!("Gelu takes a float input, got {}", x.dtype);
        }
        Ok(vec![x.clone()])
    }
}
