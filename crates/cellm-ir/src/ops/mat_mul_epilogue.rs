//! MatMulEpilogue: Y = A·B (+ bias) (+ residual), a MatMul whose following
//! bias and residual Adds run while the product is written. Inputs: A
//! [..., M, K], B [K, N] (a 2-D weight, so every row of A shares it),
//! optional bias [N], optional residual (usually A·B's shape [..., M, N];
//! broadcast numpy-style like the Add it replaces, so Y has the broadcast
//! shape). B may be f16 while A is f32 (weights stored as halves, read as
//! f32 and accumulated in f32; Y is f32). Produced by the fusion passes
//! `cellm_opt::passes::mat_mul_epilogue` and `f16_weights`; not an ONNX op.

use super::{need, opt, Fact};
use crate::shape::{broadcast_sym, fmt_shape};
use crate::{Dim, Tensor};

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MatMulEpilogue;

impl MatMulEpilogue {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let a = need(inputs, 0)?;
        let b = need(inputs, 1)?;
        if !a.dtype.is_float() {
            anyhow::bail!("A must be a float tensor, got {}", a.dtype);
        }
        if let Some(sa) = &a.shape {
            if sa.len() < 2 {
                anyhow::bail!("A must have rank >= 2, got {}", fmt_shape(sa));
            }
        }
        if let Some(sb) = &b.shape {
            if sb.len() != 2 {
                anyhow::bail!("B must be 2-D, got {}", fmt_shape(sb));
            }
        }
        // f16 weights under f32 activations: shapes as for B in A's dtype.
        let b_as_a;
        let b = if b.dtype == crate::DType::F16 && a.dtype == crate::DType::F32 {
            b_as_a = Fact::new(a.dtype, b.shape.clone());
            &b_as_a
        } else {
            b
        };
        let y = super::MatMul.infer(&[Some(a), Some(b)], &consts[..consts.len().min(2)])?;
        let n = b.shape.as_ref().map(|s| s[1].clone());
        if let Some(bias) = opt(inputs, 2) {
            if bias.dtype != a.dtype {
                anyhow::bail!("bias is {} but A is {}", bias.dtype, a.dtype);
            }
            if let (Some(bs), Some(n)) = (&bias.shape, &n) {
                let ok = matches!(bs.as_slice(), [d] if !matches!((d, n), (Dim::Known(x), Dim::Known(y)) if x != y));
                if !ok {
                    anyhow::bail!("bias must have shape [N = {n}], got {}", fmt_shape(bs));
                }
            }
        }
        if let Some(r) = opt(inputs, 3) {
            if r.dtype != a.dtype {
                anyhow::bail!("residual is {} but A is {}", r.dtype, a.dtype);
            }
            if let (Some(rs), Some(ys)) = (&r.shape, &y[0].shape) {
                let shape = broadcast_sym(ys, rs).map_err(|e| {
                    anyhow::anyhow!(
                        "residual {} does not broadcast to the product {}: {e}",
                        fmt_shape(rs),
                        fmt_shape(ys)
                    )
                })?;
                return Ok(vec![Fact {
                    dtype: a.dtype,
                    shape: Some(shape),
                }]);
            }
            return Ok(vec![Fact {
                dtype: a.dtype,
                shape: None,
            }]);
        }
        Ok(y)
    }
}
