//! Gate/up projection fusion: SiluMul(MatMul(x, Wg), MatMul(x, Wu)) (what the
//! silu_mul pass leaves of a SwiGLU MLP) becomes one `MatMulSiluMul(x, Wg, Wu)`:
//! one kernel reads x once and writes only the activated product.
//!
//! Guards: both products read the same A (rank >= 2) and are read only by the
//! SiluMul; Wg and Wu are 2-D of one shape; dtypes as for MatMulEpilogue (one
//! float dtype, or f16 weights under f32 A). Quantized products
//! (MatMulNBits) are not MatMul nodes, so they are left alone.

use crate::pattern::{arg, dtype, out, producer, readers, replace_node, shape};
use crate::Rule;
use anyhow::{Context, Result};
use cellm_ir::ops::MatMulSiluMul;
use cellm_ir::{DType, Graph, Node, Op, ValueId};
use petgraph::stable_graph::NodeIndex;

pub struct MatMulSiluMulFusion;

pub struct Match {
    root: NodeIndex,
    mms: [NodeIndex; 2],
    a: ValueId,
    w: [ValueId; 2],
}

/// `v` = MatMul(A, W) read only once, with W 2-D of a dtype A may multiply:
/// (node, A, W).
pub(crate) fn weight_product(g: &Graph, v: ValueId) -> Option<(NodeIndex, ValueId, ValueId)> {
    if readers(g, v) != 1 {
        return None;
    }
    let (ix, n) = producer(g, v)?;
    if !matches!(n.op, Op::MatMul(_)) {
        return None;
    }
    let (a, w) = (arg(n, 0)?, arg(n, 1)?);
    weight_ok(g, a, w).then_some((ix, a, w))
}

/// A of rank >= 2 and float; W 2-D of A's dtype or f16 under f32 A.
pub(crate) fn weight_ok(g: &Graph, a: ValueId, w: ValueId) -> bool {
    let (Some(sa), Some(sw), Some(da), Some(dw)) =
        (shape(g, a), shape(g, w), dtype(g, a), dtype(g, w))
    else {
        return false;
    };
    sa.len() >= 2
        && sw.len() == 2
        && da.is_float()
        && da != DType::F64
        && (dw == da || (da == DType::F32 && dw == DType::F16))
}

impl Rule for MatMulSiluMulFusion {
    type Match = Match;
    fn name(&self) -> &'static str {
        "mat_mul_silu_mul"
    }

    fn guard(&self, g: &Graph, ix: NodeIndex) -> Option<Match> {
        let n = &g.nodes[ix];
        if !matches!(n.op, Op::SiluMul(_)) {
            return None;
        }
        let (gate, up) = (arg(n, 0)?, arg(n, 1)?);
        let (gi, a, wg) = weight_product(g, gate)?;
        let (ui, a2, wu) = weight_product(g, up)?;
        // The same product read as gate and up is one node read twice
        // (readers would be 2), so gi != ui here.
        let same_w = shape(g, wg)? == shape(g, wu)? && dtype(g, wg)? == dtype(g, wu)?;
        (a == a2 && gi != ui && same_w).then_some(Match {
            root: ix,
            mms: [gi, ui],
            a,
            w: [wg, wu],
        })
    }

    fn patch(&self, g: &mut Graph, m: Match) -> Result<()> {
        let y = out(&g.nodes[m.root], 0).context("SiluMul output")?;
        let name = format!("{}/fused_mat_mul", g.nodes[m.root].name);
        for mm in m.mms {
            g.remove_node(mm);
        }
        replace_node(
            g,
            m.root,
            Node {
                name,
                op: Op::MatMulSiluMul(MatMulSiluMul),
                inputs: vec![Some(m.a), Some(m.w[0]), Some(m.w[1])],
                outputs: vec![Some(y)],
            },
        )?;
        Ok(())
    }
}
