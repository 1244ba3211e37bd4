//! MatMulSiluMul: Y = silu(A·Wg) · (A·Wu), the gate and up projections of a
//! SwiGLU MLP and their activation in one op. Inputs: A [..., M, K], Wg and
//! Wu [K, N] (2-D weights shared by every row of A). Either weight may be f16
//! under f32 A (f16 weights, widened and accumulated in f32); Y has A's dtype
//! and shape [..., M, N]. Produced by the fusion pass
//! `cellm_opt::passes::mat_mul_silu_mul`; not an ONNX op.

use super::{need, Fact, MatMulEpilogue};
use crate::shape::fmt_shape;
use crate::Tensor;

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MatMulSiluMul;

impl MatMulSiluMul {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        _consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let a = need(inputs, 0)?;
        let wg = need(inputs, 1)?;
        let wu = need(inputs, 2)?;
        // Each product is a bias-less MatMulEpilogue (A rank >= 2, B 2-D,
        // f16 weights under f32 A).
        let g = MatMulEpilogue
            .infer(&[Some(a), Some(wg)], &[])
            .map_err(|e| anyhow::anyhow!("gate weight: {e:#}"))?;
        MatMulEpilogue
            .infer(&[Some(a), Some(wu)], &[])
            .map_err(|e| anyhow::anyhow!("up weight: {e:#}"))?;
        if let (Some(sg), Some(su)) = (&wg.shape, &wu.shape) {
            let differ = sg
                .iter()
                .zip(su)
                .any(|(x, y)| matches!((x.known(), y.known()), (Some(p), Some(q)) if p != q));
            if differ {
                anyhow::bail!(
                    "gate weight {} and up weight {} differ",
                    fmt_shape(sg),
                    fmt_shape(su)
                );
            }
        }
        Ok(g)
    }
}
