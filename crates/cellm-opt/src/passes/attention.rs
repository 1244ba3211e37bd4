//! Attention fusion:
//!   Reshape(Transpose[0,2,1,3](MatMul(Softmax(MatMul(Q, Kᵀ)·scale [+ mask]), V)))
//! becomes one com.microsoft MultiHeadAttention. Q must be the head-split view
//! of a [B,S,H·D] value; K/V are read as [B,S,H·D] when they are head-split
//! views too, else as [B,H,L,D] (e.g. after a past Concat and GQA expansion).

use crate::passes::rotary::head_split_view;
use crate::pattern::{
    arg, binary, const_scalar, dtype, either, out, producer, replace_node, shape,
};
use crate::Rule;
use anyhow::{Context, Result};
use cellm_ir::ops::{BinaryOp, MultiHeadAttention};
use cellm_ir::{Graph, Node, Op, ValueId};
use petgraph::stable_graph::NodeIndex;

pub struct AttentionFusion;

pub struct Match {
    reshape: NodeIndex,
    q: ValueId,
    k: ValueId,
    v: ValueId,
    mask: Option<ValueId>,
    scale: f32,
    heads: usize,
}

fn transpose_input(g: &Graph, v: ValueId, perm: &[usize]) -> Option<ValueId> {
    let (_, n) = producer(g, v)?;
    match &n.op {
        Op::Transpose(t) if t.perm.as_deref() == Some(perm) => arg(n, 0),
        _ => None,
    }
}

/// `v` = Reshape(x3d) into [B, S, H, D]: returns x3d.
fn split_heads_3d(g: &Graph, v: ValueId, heads: usize) -> Option<ValueId> {
    let (_, n) = producer(g, v)?;
    if !matches!(n.op, Op::Reshape(_)) {
        return None;
    }
    let x3d = arg(n, 0)?;
    let (s3, s4) = (shape(g, x3d)?, shape(g, v)?);
    let ok = s3.len() == 3
        && s4.len() == 4
        && s3[1] == s4[1]
        && !s3[1].is_unknown()
        && s4[2].known() == Some(heads)
        && matches!((s3[2].known(), s4[3].known()), (Some(h), Some(d)) if h == heads * d);
    ok.then_some(x3d)
}

/// A 4-D [B, H, L, D] value with H = heads.
fn bnsh(g: &Graph, v: ValueId, heads: usize) -> bool {
    matches!(shape(g, v), Some(s) if s.len() == 4 && s[1].known() == Some(heads) && s[3].known().is_some())
}

/// (scores, scale) from `v` = scores·c, c·scores, scores/c or scores.
fn scaled(g: &Graph, v: ValueId) -> (ValueId, f32) {
    if let Some((_, a, b)) = binary(g, v, BinaryOp::Mul) {
        if let Some((c, s)) = either(a, b, |c| const_scalar(g, c)) {
            return (s, c as f32);
        }
    }
    if let Some((_, s, c)) = binary(g, v, BinaryOp::Div) {
        if let Some(c) = const_scalar(g, c) {
            return (s, (1.0 / c) as f32);
        }
    }
    (v, 1.0)
}

/// `v` = MatMul(Q, Kᵀ): returns (Q, Kᵀ).
fn qk(g: &Graph, v: ValueId) -> Option<(ValueId, ValueId)> {
    let (_, n) = producer(g, v)?;
    matches!(n.op, Op::MatMul(_)).then_some(())?;
    Some((arg(n, 0)?, arg(n, 1)?))
}

impl Rule for AttentionFusion {
    type Match = Match;
    fn name(&self) -> &'static str {
        "attention"
    }

    fn guard(&self, g: &Graph, ix: NodeIndex) -> Option<Match> {
        let n = &g.nodes[ix];
        if !matches!(n.op, Op::Reshape(_)) {
            return None;
        }
        let y = out(n, 0)?;
        let ctx = transpose_input(g, arg(n, 0)?, &[0, 2, 1, 3])?;
        let (_, pv) = producer(g, ctx)?;
        matches!(pv.op, Op::MatMul(_)).then_some(())?;
        let (probs, v4) = (arg(pv, 0)?, arg(pv, 1)?);
        let (_, sm) = producer(g, probs)?;
        let Op::Softmax(s) = &sm.op else { return None };
        let logits = arg(sm, 0)?;
        let rank = shape(g, logits)?.len();
        if rank != 4 || !(s.axis == -1 || s.axis == 3) {
            return None;
        }
        // Mask: the addend that is not the scaled Q·Kᵀ.
        let (scores, mask) = match binary(g, logits, BinaryOp::Add) {
            Some((_, a, b)) => {
                let ((sc, m), _) = either(a, b, |x| {
                    let (s, c) = scaled(g, x);
                    qk(g, s).map(|_| (s, c))
                })
                .map(|((s, c), m)| (((s, c), m), ()))?;
                (sc, Some(m))
            }
            None => (scaled(g, logits), None),
        };
        let (raw, scale) = scores;
        let (q4, kt) = qk(g, raw)?;
        let qs = shape(g, q4)?;
        if qs.len() != 4 {
            return None;
        }
        let heads = qs[1].known()?;
        let q = split_heads_3d(g, transpose_input(g, q4, &[0, 2, 1, 3])?, heads)?;
        // K and V as 3-D [B, L, H·D] when both allow it, else both as [B, H, L, D].
        let k4 = transpose_input(g, kt, &[0, 1, 3, 2]);
        let k3 = match transpose_input(g, kt, &[0, 2, 3, 1]) {
            Some(r) => split_heads_3d(g, r, heads),
            None => k4.and_then(|k| head_split_view(g, k)).map(|(x, _, _)| x),
        };
        let v3 = head_split_view(g, v4).map(|(x, _, _)| x);
        let (k, v) = match (k3, v3, k4) {
            (Some(k), Some(v), _) => (k, v),
            (_, _, Some(k)) if bnsh(g, k, heads) && bnsh(g, v4, heads) => (k, v4),
            _ => return None,
        };
        // [B, S, H·Dv] with S equal to the query's: B then matches too.
        let (ys, qs3) = (shape(g, y)?, shape(g, q)?);
        if ys.len() != 3 || ys[1] != qs3[1] || ys[1].is_unknown() {
            return None;
        }
        if let Some(m) = mask {
            if shape(g, m)?.len() != 4 || dtype(g, m)? != dtype(g, q)? {
                return None;
            }
        }
        Some(Match {
            reshape: ix,
            q,
            k,
            v,
            mask,
            scale,
            heads,
        })
    }

    fn patch(&self, g: &mut Graph, m: Match) -> Result<()> {
        let y = out(&g.nodes[m.reshape], 0).context("attention output")?;
        let name = format!("{}/fused_attention", g.nodes[m.reshape].name);
        replace_node(
            g,
            m.reshape,
            Node {
                name,
                op: Op::MultiHeadAttention(MultiHeadAttention {
                    num_heads: m.heads,
                    scale: Some(m.scale),
                    mask_filter_value: -10000.0,
                    unidirectional: false,
                    kv_num_heads: None,
                }),
                inputs: vec![
                    Some(m.q),
                    Some(m.k),
                    Some(m.v),
                    None,
                    None,
                    m.mask,
                    None,
                    None,
                ],
                outputs: vec![Some(y), None, None],
            },
        )?;
        Ok(())
    }
}
