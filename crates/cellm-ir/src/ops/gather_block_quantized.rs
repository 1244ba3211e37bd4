//! com.microsoft GatherBlockQuantized: Gather over a block-quantized table.
//! 4-bit codes come two per u8 along the last (quantize) axis, low nibble
//! first; scales (and optional packed zero points, default 8) are per block
//! of `block_size` along that axis. The output has the scales' dtype.

use super::{need, Fact, Gather};
use crate::{DType, Dim, Tensor};

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct GatherBlockQuantized {
    pub gather_axis: i64,
    pub quantize_axis: i64,
    pub block_size: usize,
    pub bits: usize,
}

impl GatherBlockQuantized {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let data = need(inputs, 0)?;
        let idx = need(inputs, 1)?;
        let scales = need(inputs, 2)?;
        if data.dtype != DType::U8 {
            anyhow::bail!("data must be u8 (packed 4-bit codes), got {}", data.dtype);
        }
        if !matches!(scales.dtype, DType::F32 | DType::F16) {
            anyhow::bail!("scales must be f32 or f16, got {}", scales.dtype);
        }
        // The unpacked table: two codes per byte along the last axis.
        let unpacked = data.shape.as_ref().map(|s| {
            let mut s = s.clone();
            if let Some(last) = s.last_mut() {
                *last = match last.known() {
                    Some(n) => Dim::Known(2 * n),
                    None => Dim::unknown(),
                };
            }
            s
        });
        let table = Fact::new(scales.dtype, unpacked);
        Gather {
            axis: self.gather_axis,
        }
        .infer(
            &[Some(&table), Some(idx)],
            &[None, consts.get(1).copied().flatten()],
        )
    }
}
