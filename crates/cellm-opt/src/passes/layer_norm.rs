//! LayerNorm fusion: d = x − mean(x); d / sqrt(mean(d²) + eps) [· γ] [+ β],
//! all over the last axis, becomes one LayerNormalization (γ = ones when absent).

use crate::passes::rms_norm::{reduce_mean_last, rms_denominator, weight_after};
use crate::pattern::{
    add_const, arg, binary, dtype, float_tensor, out, readers, replace_node, shape,
};
use crate::Rule;
use anyhow::{Context, Result};
use cellm_ir::ops::{BinaryOp, LayerNormalization};
use cellm_ir::{Graph, Node, Op, ValueId};
use petgraph::stable_graph::NodeIndex;

pub struct LayerNormFusion;

pub struct Match {
    last: NodeIndex,
    x: ValueId,
    gamma: Option<ValueId>,
    beta: Option<ValueId>,
    epsilon: f32,
}

impl Rule for LayerNormFusion {
    type Match = Match;
    fn name(&self) -> &'static str {
        "layer_norm"
    }

    fn guard(&self, g: &Graph, ix: NodeIndex) -> Option<Match> {
        let n = &g.nodes[ix];
        let Op::Binary(b) = &n.op else { return None };
        if b.op != BinaryOp::Div {
            return None;
        }
        let (d, den) = (arg(n, 0)?, arg(n, 1)?);
        let (d2, epsilon) = rms_denominator(g, den)?;
        if d2 != d {
            return None;
        }
        let (_, x, mean) = binary(g, d, BinaryOp::Sub)?;
        if reduce_mean_last(g, mean)? != x || !dtype(g, x)?.is_float() {
            return None;
        }
        let hidden = shape(g, x)?.last()?.known()?;
        let mut last = ix;
        let (mut gamma, mut beta) = (None, None);
        if let Some((c, w)) = weight_after(g, out(n, 0)?, hidden) {
            last = c;
            gamma = Some(w);
            let y = out(&g.nodes[c], 0)?;
            if readers(g, y) == 1 {
                let c2 = *g.consumers(y).first()?;
                let n2 = &g.nodes[c2];
                if let Op::Binary(b2) = &n2.op {
                    let (a0, a1) = (arg(n2, 0)?, arg(n2, 1)?);
                    let other = if a0 == y { a1 } else { a0 };
                    let ok = b2.op == BinaryOp::Add
                        && g.initializers.get(&other).map(|t| t.shape() == [hidden]) == Some(true)
                        && dtype(g, other) == dtype(g, x);
                    if ok {
                        last = c2;
                        beta = Some(other);
                    }
                }
            }
        }
        Some(Match {
            last,
            x,
            gamma,
            beta,
            epsilon,
        })
    }

    fn patch(&self, g: &mut Graph, m: Match) -> Result<()> {
        let y = out(&g.nodes[m.last], 0).context("norm output")?;
        let name = format!("{}/fused_layer_norm", g.nodes[m.last].name);
        let gamma = match m.gamma {
            Some(w) => w,
            None => {
                let dt = dtype(g, m.x).context("input dtype")?;
                let hidden = shape(g, m.x)
                    .and_then(|s| s.last()?.known())
                    .context("hidden size")?;
                add_const(
                    g,
                    &format!("{name}/ones"),
                    float_tensor(dt, vec![hidden], vec![1.0; hidden])?,
                )
            }
        };
        replace_node(
            g,
            m.last,
            Node {
                name,
                op: Op::LayerNormalization(LayerNormalization {
                    axis: -1,
                    epsilon: m.epsilon,
                }),
                inputs: vec![Some(m.x), Some(gamma), m.beta],
                outputs: vec![Some(y), None, None],
            },
        )?;
        Ok(())
    }
}
