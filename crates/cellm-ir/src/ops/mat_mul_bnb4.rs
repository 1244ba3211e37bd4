//! com.microsoft MatMulBnb4: A [..., K] times a 4-bit (FP4 or NF4, bitsandbytes
//! style) B of logical shape [N, K], flattened and blocked with one absmax per block.

use super::mat_mul_n_bits::quantized_matmul_shape;
use super::{need, Fact};
use crate::{DType, Tensor};

/// bitsandbytes quant types, numbered as the contrib op's `quant_type` attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Bnb4Type {
    Fp4,
    Nf4,
}

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MatMulBnb4 {
    pub k: usize,
    pub n: usize,
    pub block_size: usize,
    pub quant_type: Bnb4Type,
}

impl MatMulBnb4 {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        _consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let a = need(inputs, 0)?;
        if !matches!(a.dtype, DType::F32 | DType::F16) {
            anyhow::bail!("A must be f32 or f16, got {}", a.dtype);
        }
        quantized_matmul_shape(a, self.k, self.n)
    }
}
