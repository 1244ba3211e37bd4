//! Last-position logits: when `logits = MatMul(x [B, S, H], W)` (or a
//! quantized MatMulNBits / MatMulBnb4 of x) is a graph output and the caller
//! only reads the last position (a KV decoder picking the next token), gather
//! x's last row, [B, 1, H], first. A prefill then runs the vocab
//! projection for one row instead of S and reads back V values instead of S·V.
//!
//! Changes the `logits` output to [B, 1, V], so like `kv_cache` it is applied
//! by the decoder runtime ([`apply`]), not by the default pipeline.

use crate::pattern::{add_const, arg, producer, shape};
use anyhow::Result;
use cellm_ir::ops::Gather;
use cellm_ir::{Graph, Node, Op, Tensor};

/// Returns whether the graph output `name` was rewritten.
pub fn apply(g: &mut Graph, name: &str) -> Result<bool> {
    let Some(logits) = g.find(name).filter(|v| g.outputs.contains(v)) else {
        return Ok(false);
    };
    let Some((mm, node)) = producer(g, logits) else {
        return Ok(false);
    };
    // Ops whose output rows are their first input's rows.
    if !matches!(
        node.op,
        Op::MatMul(_) | Op::MatMulNBits(_) | Op::MatMulBnb4(_)
    ) {
        return Ok(false);
    }
    let Some(x) = arg(node, 0) else {
        return Ok(false);
    };
    if shape(g, x).is_none_or(|s| s.len() != 3) {
        return Ok(false);
    }
    // Gather of index [-1] (not a Slice) keeps the length a known 1 when S is symbolic.
    let index = add_const(g, "last_position", Tensor::from_vec(vec![1], vec![-1i64]));
    let last = g.fresh_value("last_position_hidden");
    g.add_node(Node {
        name: "last_position_hidden".into(),
        op: Op::Gather(Gather { axis: 1 }),
        inputs: vec![Some(x), Some(index)],
        outputs: vec![Some(last)],
    })?;
    g.set_input(mm, 0, Some(last));
    g.infer_facts()?;
    g.validate()?;
    Ok(true)
}
