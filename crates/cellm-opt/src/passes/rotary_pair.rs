//! Rotary pairing: the query and key RotaryEmbedding nodes of one attention
//! block (same position_ids, cos/sin caches and attributes; num_heads may
//! differ under grouped-query attention) become one `RotaryEmbeddingPair`,
//! one kernel launch for both.
//!
//! Guards: both inputs are 3-D or 4-D of one float dtype, and each is made by
//! a node whose first input is the same activation and whose other inputs
//! are initializers (the q/k projections, or one MatMulMulti making both).
//! That names the partner within a layer (every layer's rotaries share the
//! caches) and rules out a cycle: neither input can depend on the other
//! rotary, since their only runtime input is an ancestor of both.

use crate::pattern::{arg, dtype, out, producer, shape};
use crate::Rule;
use anyhow::{Context, Result};
use cellm_ir::ops::{RotaryEmbedding, RotaryEmbeddingPair};
use cellm_ir::{DType, Graph, Node, Op, ValueId};
use petgraph::stable_graph::NodeIndex;

pub struct RotaryPairFusion;

pub struct Match {
    nodes: [NodeIndex; 2],
    op: RotaryEmbeddingPair,
    /// x0, x1, position_ids, cos_cache, sin_cache.
    inputs: [ValueId; 5],
    outputs: [ValueId; 2],
}

/// The activation behind `x` when its producer reads only it and initializers.
fn source(g: &Graph, x: ValueId) -> Option<ValueId> {
    let (_, n) = producer(g, x)?;
    let a = arg(n, 0)?;
    let consts = n.inputs[1..]
        .iter()
        .flatten()
        .all(|v| g.initializers.contains_key(v));
    (consts && !g.initializers.contains_key(&a)).then_some(a)
}

/// (op, x, position_ids, cos, sin, y) of a RotaryEmbedding node.
fn rotary(
    g: &Graph,
    ix: NodeIndex,
) -> Option<(
    &RotaryEmbedding,
    ValueId,
    ValueId,
    ValueId,
    ValueId,
    ValueId,
)> {
    let n = &g.nodes[ix];
    let Op::RotaryEmbedding(op) = &n.op else {
        return None;
    };
    let x = arg(n, 0)?;
    let rank = shape(g, x)?.len();
    let float = matches!(dtype(g, x)?, DType::F32 | DType::F16);
    (float && (3..=4).contains(&rank)).then_some((
        op,
        x,
        arg(n, 1)?,
        arg(n, 2)?,
        arg(n, 3)?,
        out(n, 0)?,
    ))
}

impl Rule for RotaryPairFusion {
    type Match = Match;
    fn name(&self) -> &'static str {
        "rotary_pair"
    }

    fn guard(&self, g: &Graph, ix: NodeIndex) -> Option<Match> {
        let (op0, x0, pos, cos, sin, y0) = rotary(g, ix)?;
        let src = source(g, x0)?;
        let mut cands = g.consumers(pos);
        cands.sort();
        cands.into_iter().find_map(|c| {
            if c == ix {
                return None;
            }
            let (op1, x1, p1, c1, s1, y1) = rotary(g, c)?;
            let same = (p1, c1, s1) == (pos, cos, sin)
                && op1.interleaved == op0.interleaved
                && op1.rotary_embedding_dim == op0.rotary_embedding_dim
                && op1.scale == op0.scale
                && dtype(g, x1) == dtype(g, x0)
                && x1 != x0
                && source(g, x1) == Some(src);
            if !same {
                return None;
            }
            let op = |h0, h1| RotaryEmbeddingPair {
                interleaved: op0.interleaved,
                num_heads: [h0, h1],
                rotary_embedding_dim: op0.rotary_embedding_dim,
                scale: op0.scale,
            };
            // The node added first (the query's, in export order) is x0.
            Some(if ix < c {
                Match {
                    nodes: [ix, c],
                    op: op(op0.num_heads, op1.num_heads),
                    inputs: [x0, x1, pos, cos, sin],
                    outputs: [y0, y1],
                }
            } else {
                Match {
                    nodes: [c, ix],
                    op: op(op1.num_heads, op0.num_heads),
                    inputs: [x1, x0, pos, cos, sin],
                    outputs: [y1, y0],
                }
            })
        })
    }

    fn patch(&self, g: &mut Graph, m: Match) -> Result<()> {
        let name = format!("{}/fused_pair", g.nodes[m.nodes[0]].name);
        for ix in m.nodes {
            g.remove_node(ix).context("rotary node")?;
        }
        g.add_node(Node {
            name,
            op: Op::RotaryEmbeddingPair(m.op),
            inputs: m.inputs.iter().map(|&v| Some(v)).collect(),
            outputs: m.outputs.iter().map(|&v| Some(v)).collect(),
        })?;
        Ok(())
    }
}
