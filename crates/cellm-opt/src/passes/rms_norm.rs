//! RMSNorm fusion: x · 1/sqrt(mean(x², last axis) + eps) [· w], written as
//! Mul(x, Div(1, Sqrt(…))), Mul(x, Reciprocal(Sqrt(…))) or Div(x, Sqrt(…)),
//! becomes one SimplifiedLayerNormalization (weight of ones when absent).

use crate::pattern::{
    add_const, arg, binary, const_ints, const_scalar, dtype, either, float_tensor, is_last_axis,
    out, producer, readers, replace_node, shape, unary,
};
use crate::Rule;
use anyhow::{Context, Result};
use cellm_ir::ops::{BinaryOp, SimplifiedLayerNormalization, UnaryOp};
use cellm_ir::{Graph, Node, Op, ValueId};
use petgraph::stable_graph::NodeIndex;

pub struct RmsNormFusion;

pub struct Match {
    /// The node whose output the fused op takes over.
    last: NodeIndex,
    x: ValueId,
    weight: Option<ValueId>,
    epsilon: f32,
}

/// `v` = mean over the last axis (keepdims) of `x`: returns `x`.
pub fn reduce_mean_last(g: &Graph, v: ValueId) -> Option<ValueId> {
    let (_, n) = producer(g, v)?;
    let Op::Reduce(r) = &n.op else { return None };
    if r.kind != cellm_ir::ops::ReduceKind::Mean || !r.keepdims {
        return None;
    }
    let x = arg(n, 0)?;
    let axes = match &r.axes {
        Some(a) => a.clone(),
        None => const_ints(g, arg(n, 1)?)?,
    };
    is_last_axis(&axes, shape(g, x)?.len()).then_some(x)
}

/// `v` = sqrt(mean(x², last) + eps): returns (x, eps).
pub fn rms_denominator(g: &Graph, v: ValueId) -> Option<(ValueId, f32)> {
    let (_, t) = unary(g, v, UnaryOp::Sqrt)?;
    let (_, a, b) = binary(g, t, BinaryOp::Add)?;
    let (eps, m) = either(a, b, |c| const_scalar(g, c))?;
    let p = reduce_mean_last(g, m)?;
    let (_, x, two) = binary(g, p, BinaryOp::Pow)?;
    (const_scalar(g, two)? == 2.0).then_some((x, eps as f32))
}

/// `v` = 1 / d as Div(1, d) or Reciprocal(d): returns d.
pub fn reciprocal_of(g: &Graph, v: ValueId) -> Option<ValueId> {
    if let Some((_, d)) = unary(g, v, UnaryOp::Reciprocal) {
        return Some(d);
    }
    let (_, one, d) = binary(g, v, BinaryOp::Div)?;
    (const_scalar(g, one)? == 1.0).then_some(d)
}

/// A 1-D initializer of `len` elements and dtype `dt` read by a single Mul
/// after `v`: the norm's weight. Returns (mul node, weight).
pub fn weight_after(g: &Graph, v: ValueId, len: usize) -> Option<(NodeIndex, ValueId)> {
    if readers(g, v) != 1 {
        return None;
    }
    let c = *g.consumers(v).first()?;
    let n = &g.nodes[c];
    let Op::Binary(b) = &n.op else { return None };
    if b.op != BinaryOp::Mul {
        return None;
    }
    let (a0, a1) = (arg(n, 0)?, arg(n, 1)?);
    let w = if a0 == v { a1 } else { a0 };
    let t = g.initializers.get(&w)?;
    (t.shape() == [len] && Some(t.dtype()) == dtype(g, v)).then_some((c, w))
}

impl Rule for RmsNormFusion {
    type Match = Match;
    fn name(&self) -> &'static str {
        "rms_norm"
    }

    fn guard(&self, g: &Graph, ix: NodeIndex) -> Option<Match> {
        let n = &g.nodes[ix];
        let Op::Binary(b) = &n.op else { return None };
        let (a0, a1) = (arg(n, 0)?, arg(n, 1)?);
        let (x, epsilon) = match b.op {
            BinaryOp::Mul => {
                let ((x, eps), other) =
                    either(a0, a1, |inv| rms_denominator(g, reciprocal_of(g, inv)?))?;
                (other == x).then_some((x, eps))?
            }
            BinaryOp::Div => {
                let (x, eps) = rms_denominator(g, a1)?;
                (a0 == x).then_some((x, eps))?
            }
            _ => return None,
        };
        if !dtype(g, x)?.is_float() {
            return None;
        }
        let hidden = shape(g, x)?.last()?.known()?;
        let (last, weight) = match weight_after(g, out(n, 0)?, hidden) {
            Some((c, w)) => (c, Some(w)),
            None => (ix, None),
        };
        Some(Match {
            last,
            x,
            weight,
            epsilon,
        })
    }

    fn patch(&self, g: &mut Graph, m: Match) -> Result<()> {
        let y = out(&g.nodes[m.last], 0).context("norm output")?;
        let name = format!("{}/fused_rms_norm", g.nodes[m.last].name);
        let weight = match m.weight {
            Some(w) => w,
            None => {
                let dt = dtype(g, m.x).context("input dtype")?;
                let hidden = shape(g, m.x)
                    .and_then(|s| s.last()?.known())
                    .context("hidden size")?;
                let ones = float_tensor(dt, vec![hidden], vec![1.0; hidden])?;
                add_const(g, &format!("{name}/ones"), ones)
            }
        };
        replace_node(
            g,
            m.last,
            Node {
                name,
                op: Op::SimplifiedLayerNormalization(SimplifiedLayerNormalization {
                    axis: -1,
                    epsilon: m.epsilon,
                }),
                inputs: vec![Some(m.x), Some(weight)],
                outputs: vec![Some(y), None],
            },
        )?;
        Ok(())
    }
}
