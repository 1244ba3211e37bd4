//! Rotary fusion (non-interleaved, "rotate_half"):
//!   x·cos + Concat(−x[…, h:], x[…, :h])·sin
//! with cos/sin = Unsqueeze(Cos|Sin(Concat(F, F)), 1),
//! F = Transpose(MatMul(Expand(inv_freq), Cast(Unsqueeze(position_ids, 1))))
//! becomes com.microsoft RotaryEmbedding(x, position_ids, cos_cache, sin_cache)
//! with caches computed here from inv_freq. When x is the [B,H,S,D] view
//! Transpose(Reshape(x3d)), the rotary runs on x3d and the view is re-applied
//! after it, so a later attention fusion can read x3d directly.

use crate::pattern::{
    arg, binary, const_ints, dtype, either, float_tensor, out, producer, shape, unary,
};
use crate::Rule;
use anyhow::{Context, Result};
use cellm_ir::ops::{BinaryOp, RotaryEmbedding, UnaryOp};
use cellm_ir::{DType, Graph, Node, Op, ValueId};
use petgraph::stable_graph::NodeIndex;

pub struct RotaryFusion {
    /// Rows of the generated cos/sin caches: the largest position + 1.
    pub max_positions: usize,
}

impl Default for RotaryFusion {
    fn default() -> Self {
        // SmolVLM/SmolLM2's max_position_embeddings (and the builder's cache size).
        RotaryFusion {
            max_positions: 8192,
        }
    }
}

pub struct Match {
    add: NodeIndex,
    x: ValueId,
    position_ids: ValueId,
    inv_freq: Vec<f32>,
    /// (x3d, reshape node, transpose node) when x is a head-split view.
    view: Option<(ValueId, NodeIndex, NodeIndex)>,
    heads: usize,
}

fn slice_last(g: &Graph, v: ValueId, rank: usize) -> Option<(ValueId, i64, i64)> {
    let (_, n) = producer(g, v)?;
    if !matches!(n.op, Op::Slice(_)) {
        return None;
    }
    let starts = const_ints(g, arg(n, 1)?)?;
    let ends = const_ints(g, arg(n, 2)?)?;
    let axes = const_ints(g, arg(n, 3)?)?;
    if let Some(steps) = arg(n, 4) {
        if const_ints(g, steps)? != [1] {
            return None;
        }
    }
    let last = axes.len() == 1 && (axes[0] == -1 || axes[0] == rank as i64 - 1);
    (last && starts.len() == 1 && ends.len() == 1)
        .then(|| (arg(n, 0).unwrap_or(v), starts[0], ends[0]))
}

/// `v` = Concat(−x[…, h:], x[…, :h]) over the last axis: returns x.
fn rotate_half(g: &Graph, v: ValueId) -> Option<ValueId> {
    let (_, n) = producer(g, v)?;
    let Op::Concat(c) = &n.op else { return None };
    let rank = shape(g, v)?.len();
    if n.inputs.len() != 2 || !(c.axis == -1 || c.axis == rank as i64 - 1) {
        return None;
    }
    let (_, hi) = unary(g, arg(n, 0)?, UnaryOp::Neg)?;
    let (x, h0, e0) = slice_last(g, hi, rank)?;
    let (x2, s1, e1) = slice_last(g, arg(n, 1)?, rank)?;
    let d = shape(g, x)?.last()?.known()? as i64;
    let ok = x == x2 && s1 == 0 && e1 * 2 == d && h0 == e1 && e0 >= d;
    ok.then_some(x)
}

/// `v` = Unsqueeze(Cos|Sin(E), 1) (or the bare Cos|Sin): returns E.
fn trig_of(g: &Graph, v: ValueId, op: UnaryOp) -> Option<ValueId> {
    let v = match producer(g, v)? {
        (_, n) if matches!(n.op, Op::Unsqueeze(_)) => {
            let axes = match &n.op {
                Op::Unsqueeze(u) if u.axes.is_some() => u.axes.clone()?,
                _ => const_ints(g, arg(n, 1)?)?,
            };
            if axes != [1] {
                return None;
            }
            arg(n, 0)?
        }
        _ => v,
    };
    unary(g, v, op).map(|(_, e)| e)
}

/// E = Concat(F, F) with F = Transpose(MatMul(Expand(inv_freq), Cast(Unsqueeze(pos, 1)))):
/// returns (position_ids, inv_freq).
fn angles(g: &Graph, e: ValueId) -> Option<(ValueId, Vec<f32>)> {
    let (_, n) = producer(g, e)?;
    let Op::Concat(_) = &n.op else { return None };
    if n.inputs.len() != 2 || arg(n, 0)? != arg(n, 1)? {
        return None;
    }
    let (_, tn) = producer(g, arg(n, 0)?)?;
    let Op::Transpose(t) = &tn.op else {
        return None;
    };
    if t.perm.as_deref() != Some(&[0, 2, 1]) {
        return None;
    }
    let (_, mn) = producer(g, arg(tn, 0)?)?;
    if !matches!(mn.op, Op::MatMul(_)) {
        return None;
    }
    let (_, en) = producer(g, arg(mn, 0)?)?;
    if !matches!(en.op, Op::Expand(_)) {
        return None;
    }
    let inv = g.initializers.get(&arg(en, 0)?)?;
    if inv.dtype() != DType::F32 || inv.shape().iter().filter(|&&d| d != 1).count() > 1 {
        return None;
    }
    let inv_freq = inv.to_f32_vec().ok()?;
    let (_, cn) = producer(g, arg(mn, 1)?)?;
    let Op::Cast(c) = &cn.op else { return None };
    if c.to != DType::F32 {
        return None;
    }
    let (_, un) = producer(g, arg(cn, 0)?)?;
    let Op::Unsqueeze(u) = &un.op else {
        return None;
    };
    let axes = match &u.axes {
        Some(a) => a.clone(),
        None => const_ints(g, arg(un, 1)?)?,
    };
    let pos = arg(un, 0)?;
    let ok = axes == [1] && dtype(g, pos)? == DType::I64 && shape(g, pos)?.len() == 2;
    ok.then_some((pos, inv_freq))
}

/// x = Transpose[0,2,1,3](Reshape(x3d)) splitting x3d's last dim into heads.
pub fn head_split_view(g: &Graph, x: ValueId) -> Option<(ValueId, NodeIndex, NodeIndex)> {
    let (tix, tn) = producer(g, x)?;
    let Op::Transpose(t) = &tn.op else {
        return None;
    };
    if t.perm.as_deref() != Some(&[0, 2, 1, 3]) {
        return None;
    }
    let r = arg(tn, 0)?;
    let (rix, rn) = producer(g, r)?;
    if !matches!(rn.op, Op::Reshape(_)) {
        return None;
    }
    let x3d = arg(rn, 0)?;
    let (s3, s4) = (shape(g, x3d)?, shape(g, r)?);
    // Dims 1..3 matching force dim 0 to match (same element count).
    let ok = s3.len() == 3
        && s4.len() == 4
        && s3[1] == s4[1]
        && !s3[1].is_unknown()
        && matches!((s3[2].known(), s4[2].known(), s4[3].known()), (Some(h), Some(n), Some(d)) if n * d == h);
    ok.then_some((x3d, rix, tix))
}

impl Rule for RotaryFusion {
    type Match = Match;
    fn name(&self) -> &'static str {
        "rotary"
    }

    fn guard(&self, g: &Graph, ix: NodeIndex) -> Option<Match> {
        let n = &g.nodes[ix];
        let Op::Binary(b) = &n.op else { return None };
        if b.op != BinaryOp::Add {
            return None;
        }
        let (m0, m1) = (arg(n, 0)?, arg(n, 1)?);
        // One product is rotate_half(x)·sin, the other x·cos.
        let ((x, e_sin), m_cos) = either(m0, m1, |m| {
            let (_, a, b) = binary(g, m, BinaryOp::Mul)?;
            let (x, s) = either(a, b, |r| rotate_half(g, r))?;
            Some((x, trig_of(g, s, UnaryOp::Sin)?))
        })?;
        let (_, a, b) = binary(g, m_cos, BinaryOp::Mul)?;
        let (e_cos, other) = either(a, b, |c| trig_of(g, c, UnaryOp::Cos))?;
        if other != x || e_cos != e_sin {
            return None;
        }
        let (position_ids, inv_freq) = angles(g, e_cos)?;
        let xs = shape(g, x)?;
        let d = xs.last()?.known()?;
        let dt = dtype(g, x)?;
        if xs.len() != 4 || d != 2 * inv_freq.len() || !matches!(dt, DType::F32 | DType::F16) {
            return None;
        }
        let heads = xs[1].known()?;
        Some(Match {
            add: ix,
            x,
            position_ids,
            inv_freq,
            view: head_split_view(g, x),
            heads,
        })
    }

    fn patch(&self, g: &mut Graph, m: Match) -> Result<()> {
        let y = out(&g.nodes[m.add], 0).context("rotary output")?;
        let name = g.nodes[m.add].name.clone();
        let dt = dtype(g, m.x).context("input dtype")?;
        let (cos, sin) = self.caches(g, &m.inv_freq, dt)?;
        let op = RotaryEmbedding {
            interleaved: false,
            num_heads: m.heads,
            rotary_embedding_dim: 0,
            scale: 1.0,
        };
        g.remove_node(m.add);
        let Some((x3d, rix, tix)) = m.view else {
            g.add_node(Node {
                name: format!("{name}/fused_rotary"),
                op: Op::RotaryEmbedding(op),
                inputs: vec![Some(m.x), Some(m.position_ids), Some(cos), Some(sin)],
                outputs: vec![Some(y)],
            })?;
            return Ok(());
        };
        // Rotate before the head split, then split the rotated values the same way.
        let (reshape, transpose) = (g.nodes[rix].clone(), g.nodes[tix].clone());
        let r3 = g.fresh_value(&format!("{name}/rotary3d"));
        let r4 = g.fresh_value(&format!("{name}/rotary_heads"));
        g.add_node(Node {
            name: format!("{name}/fused_rotary"),
            op: Op::RotaryEmbedding(op),
            inputs: vec![Some(x3d), Some(m.position_ids), Some(cos), Some(sin)],
            outputs: vec![Some(r3)],
        })?;
        g.add_node(Node {
            name: format!("{name}/fused_rotary/reshape"),
            op: reshape.op.clone(),
            inputs: vec![Some(r3), arg(&reshape, 1)],
            outputs: vec![Some(r4)],
        })?;
        g.add_node(Node {
            name: format!("{name}/fused_rotary/transpose"),
            op: transpose.op,
            inputs: vec![Some(r4)],
            outputs: vec![Some(y)],
        })?;
        Ok(())
    }
}

impl RotaryFusion {
    /// cos/sin caches [max_positions, D/2], shared by every rotary with the
    /// same inv_freq. Angles are rounded to f32 first, as the exported graph
    /// computes them (position · inv_freq in f32), then cos/sin in f64.
    fn caches(&self, g: &mut Graph, inv_freq: &[f32], dt: DType) -> Result<(ValueId, ValueId)> {
        let key: u64 = inv_freq.iter().fold(0xcbf29ce484222325, |h, f| {
            (h ^ f.to_bits() as u64).wrapping_mul(0x100000001b3)
        });
        let base = format!("rotary/{dt}/{}/{key:016x}", self.max_positions);
        let (cn, sn) = (format!("{base}/cos_cache"), format!("{base}/sin_cache"));
        if let (Some(c), Some(s)) = (g.find(&cn), g.find(&sn)) {
            if g.initializers.contains_key(&c) && g.initializers.contains_key(&s) {
                return Ok((c, s));
            }
        }
        let half = inv_freq.len();
        let mut cos = Vec::with_capacity(self.max_positions * half);
        let mut sin = Vec::with_capacity(self.max_positions * half);
        for p in 0..self.max_positions {
            for &f in inv_freq {
                let angle = (p as f32 * f) as f64;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        let shape = vec![self.max_positions, half];
        let c = g.add_initializer(&cn, float_tensor(dt, shape.clone(), cos)?);
        let s = g.add_initializer(&sn, float_tensor(dt, shape, sin)?);
        Ok((c, s))
    }
}
