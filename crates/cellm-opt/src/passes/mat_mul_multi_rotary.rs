//! Projection + rotary fusion: a RotaryEmbeddingPair whose two inputs are
//! two outputs of one MatMulMulti (the q and k projections), read by nothing
//! else, becomes one `MatMulMultiRotary`: the products and both rotaries in
//! one kernel launch for the decode steps (the GPU op takes two launches for
//! prefill's many rows).
//!
//! The pass merges cos_cache and sin_cache [max_pos, C] into one initializer
//! [max_pos, 2C] (row p: C cos values, then C sin values; shared by every
//! layer that reads the same caches), so the kernel binds A, three weights,
//! one cache and three outputs: WebGPU's default 8 storage buffers.
//!
//! Guards: the MatMulMulti has a 3-D A and at most three weights; the q/k
//! values have no other reader and are not graph outputs; the caches are
//! f32/f16 initializers of one 2-D shape; position_ids is not computed from
//! the MatMulMulti (so the fused node cannot close a cycle).

use super::mat_mul_multi::MAX_WEIGHTS;
use crate::pattern::{add_const, arg, out, producer, readers, shape};
use crate::Rule;
use anyhow::{bail, Context, Result};
use cellm_ir::ops::{MatMulMultiRotary, RotaryEmbeddingPair};
use cellm_ir::{DType, Graph, Node, Op, Tensor, ValueId};
use half::f16;
use petgraph::stable_graph::NodeIndex;

pub struct MatMulMultiRotaryFusion;

pub struct Match {
    pair: NodeIndex,
    multi: NodeIndex,
    op: MatMulMultiRotary,
    a: ValueId,
    pos: ValueId,
    cos: ValueId,
    sin: ValueId,
    /// Weights in the fused node's order: x0's, x1's, then the rest.
    weights: Vec<ValueId>,
    /// Outputs in the same order (rotated x0, rotated x1, the rest).
    outputs: Vec<Option<ValueId>>,
}

/// Whether `v` is computed (through any chain of nodes) from node `from`.
fn depends_on(g: &Graph, v: ValueId, from: NodeIndex) -> bool {
    let mut stack = vec![v];
    let mut seen = std::collections::HashSet::new();
    while let Some(v) = stack.pop() {
        let Some((ix, n)) = producer(g, v) else {
            continue;
        };
        if ix == from {
            return true;
        }
        if seen.insert(ix) {
            stack.extend(n.inputs.iter().flatten().copied());
        }
    }
    false
}

/// An f32/f16 2-D initializer's shape.
fn cache_shape(g: &Graph, v: ValueId) -> Option<(DType, Vec<usize>)> {
    let t = g.initializers.get(&v)?;
    let ok = matches!(t.dtype(), DType::F32 | DType::F16) && t.rank() == 2;
    ok.then(|| (t.dtype(), t.shape().to_vec()))
}

/// cos and sin [rows, c] interleaved by rows into [rows, 2c], in their dtype.
fn merge(cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let [rows, c] = *cos.shape() else {
        bail!("cos_cache must be 2-D");
    };
    fn rows_of<T: Copy + 'static>(a: &[T], b: &[T], c: usize) -> Vec<T> {
        let mut out = Vec::with_capacity(2 * a.len());
        for (x, y) in a.chunks_exact(c.max(1)).zip(b.chunks_exact(c.max(1))) {
            out.extend_from_slice(x);
            out.extend_from_slice(y);
        }
        out
    }
    Ok(match cos.dtype() {
        DType::F32 => Tensor::from_vec(
            vec![rows, 2 * c],
            rows_of(cos.view::<f32>()?, sin.view::<f32>()?, c),
        ),
        DType::F16 => Tensor::from_vec(
            vec![rows, 2 * c],
            rows_of(cos.view::<f16>()?, sin.view::<f16>()?, c),
        ),
        other => bail!("cannot merge {other} caches"),
    })
}

impl Rule for MatMulMultiRotaryFusion {
    type Match = Match;
    fn name(&self) -> &'static str {
        "mat_mul_multi_rotary"
    }

    fn guard(&self, g: &Graph, ix: NodeIndex) -> Option<Match> {
        let n = &g.nodes[ix];
        let Op::RotaryEmbeddingPair(rp) = &n.op else {
            return None;
        };
        let RotaryEmbeddingPair {
            interleaved,
            num_heads,
            rotary_embedding_dim,
            scale,
        } = rp.clone();
        let (x0, x1) = (arg(n, 0)?, arg(n, 1)?);
        let (pos, cos, sin) = (arg(n, 2)?, arg(n, 3)?, arg(n, 4)?);
        let (y0, y1) = (out(n, 0)?, out(n, 1)?);
        let (multi, mm) = producer(g, x0)?;
        if producer(g, x1)?.0 != multi || !matches!(mm.op, Op::MatMulMulti(_)) || x0 == x1 {
            return None;
        }
        let a = arg(mm, 0)?;
        let nw = mm.inputs.len().checked_sub(1)?;
        if shape(g, a)?.len() != 3 || !(2..=MAX_WEIGHTS).contains(&nw) {
            return None;
        }
        if readers(g, x0) != 1 || readers(g, x1) != 1 {
            return None;
        }
        let (c, s) = (cache_shape(g, cos)?, cache_shape(g, sin)?);
        if c != s || depends_on(g, pos, multi) {
            return None;
        }
        let slot = |x| mm.outputs.iter().position(|o| *o == Some(x));
        let (i0, i1) = (slot(x0)?, slot(x1)?);
        let mut order = vec![i0, i1];
        order.extend((0..nw).filter(|i| *i != i0 && *i != i1));
        let weights = order
            .iter()
            .map(|&i| arg(mm, i + 1))
            .collect::<Option<Vec<_>>>()?;
        let mut outputs = vec![Some(y0), Some(y1)];
        outputs.extend(
            order[2..]
                .iter()
                .map(|&i| mm.outputs.get(i).copied().flatten()),
        );
        Some(Match {
            pair: ix,
            multi,
            op: MatMulMultiRotary {
                interleaved,
                num_heads,
                rotary_embedding_dim,
                scale,
                f16_outputs: vec![],
            },
            a,
            pos,
            cos,
            sin,
            weights,
            outputs,
        })
    }

    fn patch(&self, g: &mut Graph, m: Match) -> Result<()> {
        // One merged cache per (cos, sin) pair: layers share it.
        let hint = format!("{}+{}.cos_sin", g.value_name(m.cos), g.value_name(m.sin));
        let cs = match g.find(&hint).filter(|v| g.initializers.contains_key(v)) {
            Some(v) => v,
            None => {
                let cos = g.initializers.get(&m.cos).context("cos_cache")?;
                let sin = g.initializers.get(&m.sin).context("sin_cache")?;
                let t = merge(cos, sin)?;
                add_const(g, &hint, t)
            }
        };
        let name = format!("{}/rotary", g.nodes[m.multi].name);
        g.remove_node(m.pair).context("rotary pair node")?;
        g.remove_node(m.multi).context("MatMulMulti node")?;
        let mut inputs = vec![Some(m.a), Some(m.pos), Some(cs)];
        inputs.extend(m.weights.iter().map(|&w| Some(w)));
        g.add_node(Node {
            name,
            op: Op::MatMulMultiRotary(m.op),
            inputs,
            outputs: m.outputs,
        })?;
        Ok(())
    }
}
