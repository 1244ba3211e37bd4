//! Residual fusion: SimplifiedLayerNormalization(Add(a, b)) over the last
//! axis, with a and b of the same shape, becomes SkipSimplifiedLayerNormalization
//! (outputs: normed, mean, inv_std_var, a + b), which also hands the sum on
//! to the next residual add.

use crate::pattern::{arg, binary, dtype, out, replace_node, shape};
use crate::Rule;
use anyhow::{Context, Result};
use cellm_ir::ops::{BinaryOp, SkipSimplifiedLayerNormalization};
use cellm_ir::{Graph, Node, Op, ValueId};
use petgraph::stable_graph::NodeIndex;

pub struct SkipRmsNormFusion;

pub struct Match {
    norm: NodeIndex,
    add: NodeIndex,
    a: ValueId,
    b: ValueId,
    epsilon: f32,
}

impl Rule for SkipRmsNormFusion {
    type Match = Match;
    fn name(&self) -> &'static str {
        "skip_rms_norm"
    }

    fn guard(&self, g: &Graph, ix: NodeIndex) -> Option<Match> {
        let n = &g.nodes[ix];
        let Op::SimplifiedLayerNormalization(op) = &n.op else {
            return None;
        };
        let x = arg(n, 0)?;
        let xs = shape(g, x)?;
        let last_axis = op.axis == -1 || op.axis == xs.len() as i64 - 1;
        if !last_axis || !(2..=3).contains(&xs.len()) {
            return None;
        }
        let (add, a, b) = binary(g, x, BinaryOp::Add)?;
        // Same shapes and dtypes: no broadcasting hides in the residual add.
        if shape(g, a)? != xs || shape(g, b)? != xs || xs.iter().any(|d| d.is_unknown()) {
            return None;
        }
        if dtype(g, a)? != dtype(g, x)? || dtype(g, b)? != dtype(g, x)? {
            return None;
        }
        Some(Match {
            norm: ix,
            add,
            a,
            b,
            epsilon: op.epsilon,
        })
    }

    fn patch(&self, g: &mut Graph, m: Match) -> Result<()> {
        let norm = g.nodes[m.norm].clone();
        let sum = out(&g.nodes[m.add], 0).context("residual sum")?;
        let weight = arg(&norm, 1).context("norm weight")?;
        g.remove_node(m.add);
        // The sum output is kept only when something else reads it.
        let sum_out = (!g.consumers(sum).iter().all(|&c| c == m.norm) || g.outputs.contains(&sum))
            .then_some(sum);
        replace_node(
            g,
            m.norm,
            Node {
                name: format!("{}/fused_skip", norm.name),
                op: Op::SkipSimplifiedLayerNormalization(SkipSimplifiedLayerNormalization {
                    epsilon: m.epsilon,
                }),
                inputs: vec![Some(m.a), Some(m.b), Some(weight)],
                outputs: vec![out(&norm, 0), None, out(&norm, 1), sum_out],
            },
        )?;
        Ok(())
    }
}
