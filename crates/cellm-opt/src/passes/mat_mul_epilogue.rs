//! MatMul epilogue fusion: Add(MatMul(A, B), bias) and Add(MatMul(A, B),
//! residual) become one `MatMulEpilogue(A, B, bias, residual)`; a second Add
//! onto an epilogue node that lacks that term joins it too (so bias then
//! residual, or residual then bias, end as one op).
//!
//! Guards: B is 2-D (a weight shared by every row of A), A has rank ≥ 2, the
//! bias is 1-D [N], the residual's rank is at most the product's (it
//! broadcasts like the Add did; backends take the equal-shape fast path when
//! it has the product's shape, as residual streams do), dtypes agree, and the
//! product is read only by the Add. A
//! residual Add whose sum feeds an RMSNorm (or the start of an RMSNorm
//! pattern not fused yet) is left alone: SkipSimplifiedLayerNormalization
//! absorbs it there, which also saves the norm's own pass over the sum.

use crate::pattern::{arg, dtype, either, out, producer, readers, replace_node, shape};
use crate::Rule;
use anyhow::{Context, Result};
use cellm_ir::ops::{BinaryOp, MatMulEpilogue};
use cellm_ir::{Graph, Node, Op, ValueId};
use petgraph::stable_graph::NodeIndex;

pub struct MatMulEpilogueFusion;

pub struct Match {
    add: NodeIndex,
    /// The MatMul or MatMulEpilogue node whose product the Add reads.
    mm: NodeIndex,
    /// Inputs of the fused node: A, B, bias, residual.
    inputs: [Option<ValueId>; 4],
}

/// The fusable product node behind `v`: (node, [A, B, bias, residual]).
fn product(g: &Graph, v: ValueId) -> Option<(NodeIndex, [Option<ValueId>; 4])> {
    if readers(g, v) != 1 {
        return None;
    }
    let (ix, n) = producer(g, v)?;
    let ins = match &n.op {
        Op::MatMul(_) => [Some(arg(n, 0)?), Some(arg(n, 1)?), None, None],
        Op::MatMulEpilogue(_) => [Some(arg(n, 0)?), Some(arg(n, 1)?), arg(n, 2), arg(n, 3)],
        _ => return None,
    };
    let (a, b) = (ins[0]?, ins[1]?);
    let (sa, sb) = (shape(g, a)?, shape(g, b)?);
    (sa.len() >= 2 && sb.len() == 2 && dtype(g, a)?.is_float() && dtype(g, b)? == dtype(g, a)?)
        .then_some((ix, ins))
}

/// Whether `v` is read by an RMSNorm or by the first op of an RMSNorm
/// pattern not fused yet (Pow(x, 2)): the sum that skip_rms_norm absorbs.
fn feeds_rms_norm(g: &Graph, v: ValueId) -> bool {
    g.consumers(v).iter().any(|&c| match &g.nodes[c].op {
        Op::SimplifiedLayerNormalization(_) => true,
        Op::Binary(b) => b.op == BinaryOp::Pow,
        _ => false,
    })
}

impl Rule for MatMulEpilogueFusion {
    type Match = Match;
    fn name(&self) -> &'static str {
        "mat_mul_epilogue"
    }

    fn guard(&self, g: &Graph, ix: NodeIndex) -> Option<Match> {
        let n = &g.nodes[ix];
        match &n.op {
            Op::Binary(b) if b.op == BinaryOp::Add => {}
            _ => return None,
        }
        let y = out(n, 0)?;
        let (a0, a1) = (arg(n, 0)?, arg(n, 1)?);
        let ((mm, mut ins), other) = either(a0, a1, |v| product(g, v))?;
        let prod = out(&g.nodes[mm], 0)?;
        let ps = shape(g, prod)?;
        if dtype(g, other)? != dtype(g, prod)? {
            return None;
        }
        let n_dim = shape(g, ins[1]?)?[1].clone();
        let os = shape(g, other)?;
        // A bias [N] never changes the product's shape (and adds the same
        // whether before or after the residual); a residual broadcasts like
        // the Add did (the op keeps numpy semantics).
        if ins[2].is_none() && os.len() == 1 && os[0] == n_dim && !n_dim.is_unknown() {
            ins[2] = Some(other);
        } else if ins[3].is_none() && os.len() <= ps.len() && !feeds_rms_norm(g, y) {
            ins[3] = Some(other);
        } else {
            return None;
        }
        Some(Match {
            add: ix,
            mm,
            inputs: ins,
        })
    }

    fn patch(&self, g: &mut Graph, m: Match) -> Result<()> {
        let y = out(&g.nodes[m.add], 0).context("Add output")?;
        let name = format!("{}/fused_epilogue", g.nodes[m.mm].name);
        g.remove_node(m.mm);
        replace_node(
            g,
            m.add,
            Node {
                name,
                op: Op::MatMulEpilogue(MatMulEpilogue),
                inputs: m.inputs.to_vec(),
                outputs: vec![Some(y)],
            },
        )?;
        Ok(())
    }
}
