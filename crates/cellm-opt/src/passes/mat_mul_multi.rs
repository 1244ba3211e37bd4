//! Sibling projection fusion: two or three MatMuls that read the same
//! activation A against constant 2-D weights (the q/k/v projections of an
//! attention block) become one `MatMulMulti(A, B0, B1[, B2])` with one output
//! per weight: one kernel launch, A read once, the weights kept as they are
//! (no concatenated copy).
//!
//! Guards: A has rank >= 2; each B is an initializer, 2-D, of A's dtype or
//! f16 under f32 A (so the f16_weights pass may run before or after), and
//! at most [`MAX_WEIGHT_BYTES`] (one storage binding on any WebGPU device);
//! at most three weights, so A + weights + outputs take at most 7 of the 8
//! storage bindings every WebGPU device offers. A product read by an Add,
//! Mul, Sigmoid or SiluMul is left alone: the epilogue and SwiGLU fusions
//! (MatMulEpilogue, MatMulSiluMul) save more there. Quantized products
//! (MatMulNBits) are not MatMul nodes, so they are left alone.

use super::mat_mul_silu_mul::weight_ok;
use crate::pattern::{arg, out};
use crate::Rule;
use anyhow::{Context, Result};
use cellm_ir::ops::{BinaryOp, MatMulMulti, UnaryOp};
use cellm_ir::{Graph, Node, Op, ValueId};
use petgraph::stable_graph::NodeIndex;

/// Weights per fused node: A + 3 weights + 3 outputs = 7 storage bindings.
pub const MAX_WEIGHTS: usize = 3;
/// WebGPU's default `maxStorageBufferBindingSize` (128 MiB).
pub const MAX_WEIGHT_BYTES: usize = 128 << 20;

pub struct MatMulMultiFusion;

pub struct Match {
    a: ValueId,
    /// (node, weight, output) per product, in node order.
    parts: Vec<(NodeIndex, ValueId, ValueId)>,
}

/// Whether `v` is read by an op that a better fusion claims.
fn claimed(g: &Graph, v: ValueId) -> bool {
    g.consumers(v).iter().any(|&c| match &g.nodes[c].op {
        Op::Binary(b) => matches!(b.op, BinaryOp::Add | BinaryOp::Mul),
        Op::Unary(u) => u.op == UnaryOp::Sigmoid,
        Op::SiluMul(_) => true,
        _ => false,
    })
}

/// The node's (weight, output) when it is a fusable product of `a`.
fn part(g: &Graph, ix: NodeIndex, a: ValueId) -> Option<(ValueId, ValueId)> {
    let n = &g.nodes[ix];
    if !matches!(n.op, Op::MatMul(_)) || arg(n, 0)? != a || n.inputs.len() != 2 {
        return None;
    }
    let (w, y) = (arg(n, 1)?, out(n, 0)?);
    let t = g.initializers.get(&w)?;
    let small = t.len() * t.dtype().size() <= MAX_WEIGHT_BYTES;
    (small && weight_ok(g, a, w) && !claimed(g, y)).then_some((w, y))
}

impl Rule for MatMulMultiFusion {
    type Match = Match;
    fn name(&self) -> &'static str {
        "mat_mul_multi"
    }

    fn guard(&self, g: &Graph, ix: NodeIndex) -> Option<Match> {
        let a = arg(&g.nodes[ix], 0)?;
        part(g, ix, a)?;
        let mut sibs: Vec<NodeIndex> = g
            .consumers(a)
            .into_iter()
            .filter(|&c| part(g, c, a).is_some())
            .collect();
        sibs.sort();
        sibs.dedup();
        // Fire once per group, at its first node; the rest join it.
        if sibs.len() < 2 || sibs[0] != ix {
            return None;
        }
        sibs.truncate(MAX_WEIGHTS);
        let parts = sibs
            .into_iter()
            .filter_map(|c| part(g, c, a).map(|(w, y)| (c, w, y)))
            .collect();
        Some(Match { a, parts })
    }

    fn patch(&self, g: &mut Graph, m: Match) -> Result<()> {
        let first = m.parts.first().context("MatMulMulti without products")?.0;
        let name = format!("{}/fused_multi", g.nodes[first].name);
        for &(ix, _, _) in &m.parts {
            g.remove_node(ix);
        }
        let mut inputs = vec![Some(m.a)];
        inputs.extend(m.parts.iter().map(|p| Some(p.1)));
        g.add_node(Node {
            name,
            op: Op::MatMulMulti(MatMulMulti),
            inputs,
            outputs: m.parts.iter().map(|p| Some(p.2)).collect(),
        })?;
        Ok(())
    }
}
