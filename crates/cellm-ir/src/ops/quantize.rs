//! Linear (de)quantization: DequantizeLinear, QuantizeLinear and
//! DynamicQuantizeLinear. Per-tensor scales are scalars or [1]; per-axis
//! scales are 1-D along `axis`; blocked scales (`block_size` > 0) have x's
//! shape with `axis` divided by the block, rounded up.

use super::{need, opt, Fact};
use crate::{DType, Tensor};

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DequantizeLinear {
    pub axis: i64,
    /// 0 = per tensor / per axis.
    pub block_size: usize,
}

impl DequantizeLinear {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        _consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let x = need(inputs, 0)?;
        let scale = need(inputs, 1)?;
        if !matches!(x.dtype, DType::U8 | DType::I8 | DType::I32) {
            anyhow::bail!("x must be u8, i8 or i32, got {}", x.dtype);
        }
        if !matches!(scale.dtype, DType::F32 | DType::F16) {
            anyhow::bail!("x_scale must be f32 or f16, got {}", scale.dtype);
        }
        if let Some(zp) = opt(inputs, 2) {
            if zp.dtype != x.dtype {
                anyhow::bail!("x is {} but x_zero_point is {}", x.dtype, zp.dtype);
            }
        }
        Ok(vec![Fact::new(scale.dtype, x.shape.clone())])
    }
}

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct QuantizeLinear {
    pub axis: i64,
    pub block_size: usize,
    /// Output dtype when there is no zero point to take it from (u8 by default).
    pub output_dtype: DType,
}

impl QuantizeLinear {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        _consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let x = need(inputs, 0)?;
        if !matches!(x.dtype, DType::F32 | DType::F16 | DType::I32) {
            anyhow::bail!("x must be f32, f16 or i32, got {}", x.dtype);
        }
        let dtype = match opt(inputs, 2) {
            Some(zp) => zp.dtype,
            None => self.output_dtype,
        };
        if !matches!(dtype, DType::U8 | DType::I8) {
            anyhow::bail!("output must be u8 or i8, got {dtype}");
        }
        Ok(vec![Fact::new(dtype, x.shape.clone())])
    }
}

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DynamicQuantizeLinear;

impl DynamicQuantizeLinear {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        _consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let x = need(inputs, 0)?;
        if x.dtype != DType::F32 {
            anyhow::bail!("x must be f32, got {}", x.dtype);
        }
        Ok(vec![
            Fact::new(DType::U8, x.shape.clone()),
            Fact::new(DType::F32, Some(vec![])),
            Fact::new(DType::U8, Some(vec![])),
        ])
    }
}
