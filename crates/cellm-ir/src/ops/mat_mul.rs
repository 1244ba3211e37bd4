//! MatMul: numpy matmul: batched, broadcasting batch dims, 1-D operands promoted.
//! cellm also takes f32 A with f16 B (f16-stored weights): f32 out.

use super::{need, Fact};
use crate::shape::{broadcast_sym, fmt_shape};
use crate::{Dim, Tensor};

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MatMul;

impl MatMul {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        _consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let a = need(inputs, 0)?;
        let b = need(inputs, 1)?;
        // f32 A × f16 B (weights stored as f16, see cellm-opt's f16_weights)
        // accumulates and outputs f32; otherwise the dtypes must agree.
        let mixed = a.dtype == crate::DType::F32 && b.dtype == crate::DType::F16;
        if a.dtype != b.dtype && !mixed {
            anyhow::bail!("A is {} but B is {}", a.dtype, b.dtype);
        }
        let (Some(sa), Some(sb)) = (&a.shape, &b.shape) else {
            return Ok(vec![Fact {
                dtype: a.dtype,
                shape: None,
            }]);
        };
        if sa.is_empty() || sb.is_empty() {
            anyhow::bail!(
                "operands must not be scalars (A {}, B {})",
                fmt_shape(sa),
                fmt_shape(sb)
            );
        }
        // 1-D operands are promoted to matrices, and the added dim dropped after.
        let pa: Vec<Dim> = if sa.len() == 1 {
            vec![Dim::Known(1), sa[0].clone()]
        } else {
            sa.clone()
        };
        let pb: Vec<Dim> = if sb.len() == 1 {
            vec![sb[0].clone(), Dim::Known(1)]
        } else {
            sb.clone()
        };
        let (ka, kb) = (&pa[pa.len() - 1], &pb[pb.len() - 2]);
        if let (Some(x), Some(y)) = (ka.known(), kb.known()) {
            if x != y {
                anyhow::bail!(
                    "inner dims differ: A {} has K = {x} but B {} has K = {y}",
                    fmt_shape(sa),
                    fmt_shape(sb)
                );
            }
        }
        let mut out = broadcast_sym(&pa[..pa.len() - 2], &pb[..pb.len() - 2]).map_err(|e| {
            anyhow::anyhow!(
                "batch dims of A {} and B {}: {e}",
                fmt_shape(sa),
                fmt_shape(sb)
            )
        })?;
        if sa.len() > 1 {
            out.push(pa[pa.len() - 2].clone());
        }
        if sb.len() > 1 {
            out.push(pb[pb.len() - 1].clone());
        }
        Ok(vec![Fact {
            dtype: a.dtype,
            shape: Some(out),
        }])
    }
}
