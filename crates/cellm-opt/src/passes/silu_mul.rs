//! SiLU·gate fusion: gate · sigmoid(gate) · up (the SwiGLU MLP of Llama-style
//! decoders, in any association or operand order of the three factors)
//! becomes one `SiluMul(gate, up)`. gate, up and the result must have the
//! same shape (no broadcasting, so every backend's kernel is one flat loop),
//! and the sigmoid and inner products must be read only inside the pattern.

use super::gelu::product_factors;
use crate::pattern::{dtype, out, readers, replace_node, shape, unary};
use crate::Rule;
use anyhow::{Context, Result};
use cellm_ir::ops::{BinaryOp, SiluMul, UnaryOp};
use cellm_ir::{Graph, Node, Op, ValueId};
use petgraph::stable_graph::NodeIndex;

pub struct SiluMulFusion;

pub struct Match {
    root: NodeIndex,
    gate: ValueId,
    up: ValueId,
}

impl Rule for SiluMulFusion {
    type Match = Match;
    fn name(&self) -> &'static str {
        "silu_mul"
    }

    fn guard(&self, g: &Graph, ix: NodeIndex) -> Option<Match> {
        let n = &g.nodes[ix];
        match &n.op {
            Op::Binary(b) if b.op == BinaryOp::Mul => {}
            _ => return None,
        }
        let y = out(n, 0)?;
        let (c, f) = product_factors(g, y, 2);
        if c != 1.0 || f.len() != 3 {
            return None;
        }
        // The sigmoid factor, and which other factor is its input.
        let (si, gate) = f.iter().enumerate().find_map(|(i, &s)| {
            if readers(g, s) != 1 {
                return None;
            }
            let (_, x) = unary(g, s, UnaryOp::Sigmoid)?;
            f.iter()
                .enumerate()
                .any(|(j, &v)| j != i && v == x)
                .then_some((i, x))
        })?;
        let gi = f
            .iter()
            .enumerate()
            .position(|(j, &v)| j != si && v == gate)?;
        let ui = (0..3).find(|&j| j != si && j != gi)?;
        let up = f[ui];
        let ys = shape(g, y)?;
        let same = shape(g, gate)? == ys && shape(g, up)? == ys;
        let float = dtype(g, gate)?.is_float()
            && dtype(g, up)? == dtype(g, gate)?
            && dtype(g, y)? == dtype(g, gate)?;
        (same && float).then_some(Match { root: ix, gate, up })
    }

    fn patch(&self, g: &mut Graph, m: Match) -> Result<()> {
        let y = out(&g.nodes[m.root], 0).context("SiLU·gate output")?;
        let name = format!("{}/fused_silu_mul", g.nodes[m.root].name);
        // The sigmoid and inner product are now unread; DCE removes them.
        replace_node(
            g,
            m.root,
            Node {
                name,
                op: Op::SiluMul(SiluMul),
                inputs: vec![Some(m.gate), Some(m.up)],
                outputs: vec![Some(y)],
            },
        )?;
        Ok(())
    }
}
