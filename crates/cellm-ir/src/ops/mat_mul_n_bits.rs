//! com.microsoft MatMulNBits: A [..., K] times a block-quantized B given as
//! [N, ceil(K/block), block*bits/8] packed codes with per-block scales (and
//! optional zero points); the output is [..., N] in A's dtype.

use super::{need, Fact};
use crate::shape::fmt_shape;
use crate::{DType, Dim, Tensor};

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MatMulNBits {
    pub k: usize,
    pub n: usize,
    pub bits: usize,
    pub block_size: usize,
}

impl MatMulNBits {
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

/// Output fact of a matmul whose B is [K, N] given by attributes: A's last dim
/// must be K and is replaced by N.
pub(crate) fn quantized_matmul_shape(a: &Fact, k: usize, n: usize) -> anyhow::Result<Vec<Fact>> {
    let shape = match &a.shape {
        None => None,
        Some(s) => {
            let Some(last) = s.last() else {
                anyhow::bail!("A must not be a scalar");
            };
            if let Some(x) = last.known() {
                if x != k {
                    anyhow::bail!("A {} has K = {x} but the op says K = {k}", fmt_shape(s));
                }
            }
            let mut out = s.clone();
            *out.last_mut().expect("checked non-empty above") = Dim::Known(n);
            Some(out)
        }
    };
    Ok(vec![Fact {
        dtype: a.dtype,
        shape,
    }])
}
