//! Last-position logits: when `logits = MatMul(x [B, S, H], W)` is a graph
//! output and the caller only reads the last position (a KV decoder picking
//! the next token), slice x to [B, 1, H] first. A prefill then runs the vocab
//! projection for one row instead of S and reads back V values instead of S·V.
//!
//! Changes the `logits` output to [B, 1, V], so like `kv_cache` it is applied
//! by the decoder runtime ([`apply`]), not by the default pipeline.

use crate::pattern::{add_const, arg, producer, shape};
use anyhow::Result;
use cellm_ir::ops::Slice;
use cellm_ir::{Graph, Node, Op, Tensor};

/// Returns whether the graph output `name` was rewritten.
pub fn apply(g: &mut Graph, name: &str) -> Result<bool> {
    let Some(logits) = g.find(name).filter(|v| g.outputs.contains(v)) else {
        return Ok(false);
    };
    let Some((mm, node)) = producer(g, logits) else {
        return Ok(false);
    };
    if !matches!(node.op, Op::MatMul(_)) {
        return Ok(false);
    }
    let Some(x) = arg(node, 0) else {
        return Ok(false);
    };
    if shape(g, x).is_none_or(|s| s.len() != 3) {
        return Ok(false);
    }
    let starts = add_const(
        g,
        "last_logits_start",
        Tensor::from_vec(vec![1], vec![-1i64]),
    );
    let ends = add_const(
        g,
        "last_logits_end",
        Tensor::from_vec(vec![1], vec![i64::MAX]),
    );
    let axes = add_const(g, "last_logits_axis", Tensor::from_vec(vec![1], vec![1i64]));
    let last = g.fresh_value("last_position_hidden");
    g.add_node(Node {
        name: "last_position_hidden".into(),
        op: Op::Slice(Slice),
        inputs: vec![Some(x), Some(starts), Some(ends), Some(axes)],
        outputs: vec![Some(last)],
    })?;
    g.set_input(mm, 0, Some(last));
    g.infer_facts()?;
    g.validate()?;
    Ok(true)
}
