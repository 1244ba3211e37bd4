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

impl Bnb4Type {
    /// The 16 values a 4-bit code stands for (before its block's absmax);
    /// the CPU kernel and the GPU kernels' uniform read the same table.
    pub fn code_book(self) -> &'static [f32; 16] {
        match self {
            Bnb4Type::Fp4 => &FP4,
            Bnb4Type::Nf4 => &NF4,
        }
    }
}

/// bitsandbytes' FP4 code book (as in onnxruntime's blockwise_quant_block_bnb4.h).
pub const FP4: [f32; 16] = [
    0.0,
    0.005_208_333_3,
    0.666_666_7,
    1.0,
    0.333_333_34,
    0.5,
    0.166_666_67,
    0.25,
    -0.0,
    -0.005_208_333_3,
    -0.666_666_7,
    -1.0,
    -0.333_333_34,
    -0.5,
    -0.166_666_67,
    -0.25,
];

/// bitsandbytes' NF4 code book.
pub const NF4: [f32; 16] = [
    -1.0,
    -0.696_192_8,
    -0.525_073_05,
    -0.394_917_5,
    -0.284_441_38,
    -0.184_773_43,
    -0.091_050_036,
    0.0,
    0.079_580_3,
    0.160_930_2,
    0.246_112_3,
    0.337_915_24,
    0.440_709_83,
    0.562_617,
    0.722_956_84,
    1.0,
];

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
