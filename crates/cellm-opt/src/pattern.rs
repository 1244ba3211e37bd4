//! Small helpers for writing guards and patches.

use anyhow::Result;
use cellm_ir::ops::{BinaryOp, UnaryOp};
use cellm_ir::{DType, Dim, Graph, Node, Op, Tensor, ValueId};
use petgraph::stable_graph::NodeIndex;
use petgraph::visit::EdgeRef;
use petgraph::Direction;

/// The node producing `v`, if any.
pub fn producer(g: &Graph, v: ValueId) -> Option<(NodeIndex, &Node)> {
    let ix = g.values[v].producer?;
    g.nodes.node_weight(ix).map(|n| (ix, n))
}

/// Input `i` of node `n` when given.
pub fn arg(n: &Node, i: usize) -> Option<ValueId> {
    n.inputs.get(i).copied().flatten()
}

/// Output `i` of node `n` when kept.
pub fn out(n: &Node, i: usize) -> Option<ValueId> {
    n.outputs.get(i).copied().flatten()
}

/// Number of node inputs reading `v` (via edges) plus graph outputs naming it.
pub fn readers(g: &Graph, v: ValueId) -> usize {
    let graph_out = g.outputs.iter().filter(|&&o| o == v).count();
    let nodes: usize = match g.values[v].producer {
        Some(p) => {
            let mut targets: Vec<NodeIndex> = g
                .nodes
                .edges_directed(p, Direction::Outgoing)
                .filter(|e| *e.weight() == v)
                .map(|e| e.target())
                .collect();
            targets.sort();
            targets.dedup();
            targets
                .iter()
                .map(|&c| g.nodes[c].inputs.iter().filter(|&&i| i == Some(v)).count())
                .sum()
        }
        None => g
            .consumers(v)
            .iter()
            .map(|&c| g.nodes[c].inputs.iter().filter(|&&i| i == Some(v)).count())
            .sum(),
    };
    graph_out + nodes
}

/// `v` = Binary `op`(a, b): returns the node and (a, b).
pub fn binary(g: &Graph, v: ValueId, op: BinaryOp) -> Option<(NodeIndex, ValueId, ValueId)> {
    let (ix, n) = producer(g, v)?;
    match &n.op {
        Op::Binary(b) if b.op == op => Some((ix, arg(n, 0)?, arg(n, 1)?)),
        _ => None,
    }
}

/// `v` = Unary `op`(x).
pub fn unary(g: &Graph, v: ValueId, op: UnaryOp) -> Option<(NodeIndex, ValueId)> {
    let (ix, n) = producer(g, v)?;
    match &n.op {
        Op::Unary(u) if u.op == op => Some((ix, arg(n, 0)?)),
        _ => None,
    }
}

/// `(a, b)` or `(b, a)`: the pair where `first` accepts the first element.
pub fn either<T>(
    a: ValueId,
    b: ValueId,
    mut first: impl FnMut(ValueId) -> Option<T>,
) -> Option<(T, ValueId)> {
    if let Some(t) = first(a) {
        return Some((t, b));
    }
    first(b).map(|t| (t, a))
}

/// The single value of a one-element float initializer.
pub fn const_scalar(g: &Graph, v: ValueId) -> Option<f64> {
    let t = g.initializers.get(&v)?;
    if t.len() != 1 || !t.dtype().is_float() {
        return None;
    }
    t.to_f64_vec().first().copied()
}

/// Integer values of an initializer.
pub fn const_ints(g: &Graph, v: ValueId) -> Option<Vec<i64>> {
    g.initializers.get(&v)?.to_i64_vec().ok()
}

pub fn shape(g: &Graph, v: ValueId) -> Option<&[Dim]> {
    g.values[v].fact.as_ref()?.shape.as_deref()
}

pub fn dtype(g: &Graph, v: ValueId) -> Option<DType> {
    g.values[v].fact.as_ref().map(|f| f.dtype)
}

/// Concrete shape when every dim is known.
pub fn known_shape(g: &Graph, v: ValueId) -> Option<Vec<usize>> {
    shape(g, v)?.iter().map(|d| d.known()).collect()
}

/// Input slots of `node` that take a 2-D weight B [K, N] multiplied under
/// its input 0 (A): MatMul and the fused products (bias/residual epilogue,
/// SwiGLU gate/up, sibling projections with or without the rotaries,
/// attention's output projection). Empty for other ops.
pub fn weight_slots(node: &Node) -> Vec<usize> {
    match node.op {
        Op::MatMul(_) | Op::MatMulEpilogue(_) => vec![1],
        Op::MatMulSiluMul(_) => vec![1, 2],
        Op::MatMulMulti(_) => (1..node.inputs.len()).collect(),
        Op::MultiHeadAttentionMatMul(_) => {
            vec![cellm_ir::ops::multi_head_attention_mat_mul::WEIGHT]
        }
        Op::MatMulMultiRotary(_) => {
            let first = cellm_ir::ops::mat_mul_multi_rotary::FIRST_WEIGHT;
            (first..node.inputs.len()).collect()
        }
        _ => Vec::new(),
    }
}

/// Adds an initializer under a fresh name derived from `hint`.
pub fn add_const(g: &mut Graph, hint: &str, t: Tensor) -> ValueId {
    let v = g.fresh_value(hint);
    let name = g.value_name(v).to_string();
    g.add_initializer(&name, t)
}

/// A float tensor of `dtype` (f32 or f16) from f32 values.
pub fn float_tensor(dtype: DType, shape: Vec<usize>, values: Vec<f32>) -> Result<Tensor> {
    Ok(match dtype {
        DType::F32 => Tensor::from_vec(shape, values),
        DType::F16 => {
            Tensor::from_vec(shape, values.into_iter().map(half::f16::from_f32).collect())
        }
        other => anyhow::bail!("cannot make a float tensor of {other}"),
    })
}

/// Normalised reduce axes are exactly the last axis of a rank-`rank` input.
pub fn is_last_axis(axes: &[i64], rank: usize) -> bool {
    matches!(axes, [a] if *a == -1 || (*a >= 0 && *a as usize + 1 == rank))
}

/// Replaces node `old` by `new`, which writes (some of) the same values, so
/// every reader and graph output stays as it was.
pub fn replace_node(g: &mut Graph, old: NodeIndex, new: Node) -> Result<NodeIndex> {
    g.remove_node(old);
    g.add_node(new)
}
