//! f16 KV caches (`--dtype f16`, decoder runtime form): the keys and values a
//! decoder keeps for every past position are stored as f16, halving the
//! cache's memory and the bytes attention reads per step, which grow with the
//! context while every other activation of a decode step is one row.
//!
//! Safe because only storage changes: the projection computes each key and
//! value row in f32 and rounds it once on store (`MatMulMultiRotary`'s
//! `f16_outputs`), and attention widens the rows as it reads them, so scores,
//! softmax and the weighted sum stay f32.
//!
//! Guard (at a `KvCacheAppend` after the `kv_cache` pass): the past is an f32
//! graph input read only here (and by Shape); the new rows are an output of a
//! `MatMulMultiRotary` with f32 A, read only here; the present is read only by
//! attention as key or value and by Shape (and may be a graph output). Patch: the past
//! input's fact and the producer's output become f16; facts are re-inferred,
//! so the present follows. Not in any pipeline: the runtime that owns the
//! caches (cellm-runtime's KvDecoder) applies it with [`apply`].

use crate::pattern::{arg, dtype, out, producer};
use anyhow::Result;
use cellm_ir::{DType, Graph, Op};
use petgraph::stable_graph::NodeIndex;

/// One cache to convert: the past input and the producer slot of the new rows.
struct Match {
    past: cellm_ir::ValueId,
    producer: NodeIndex,
    slot: usize,
}

fn guard(g: &Graph, ix: NodeIndex) -> Option<Match> {
    let n = &g.nodes[ix];
    if !matches!(n.op, Op::KvCacheAppend(_)) {
        return None;
    }
    let (past, new, present) = (arg(n, 0)?, arg(n, 1)?, out(n, 0)?);
    let is_input = g.inputs.contains(&past) && g.values[past].producer.is_none();
    // Shape readers (the past length) do not care about the dtype.
    let only_appended = g
        .consumers(past)
        .iter()
        .all(|&c| c == ix || matches!(g.nodes[c].op, Op::Shape(_)));
    if !is_input || dtype(g, past) != Some(DType::F32) || !only_appended {
        return None;
    }
    let (p_ix, p) = producer(g, new)?;
    let Op::MatMulMultiRotary(_) = &p.op else {
        return None;
    };
    let slot = p.outputs.iter().position(|&o| o == Some(new))?;
    let a = arg(p, 0)?;
    if dtype(g, a) != Some(DType::F32)
        || dtype(g, new) != Some(DType::F32)
        || g.outputs.contains(&new)
        || g.consumers(new) != [ix]
    {
        return None;
    }
    let attention_only = g.consumers(present).iter().all(|&c| {
        let r = &g.nodes[c];
        if matches!(r.op, Op::Shape(_)) {
            return true;
        }
        matches!(
            r.op,
            Op::MultiHeadAttention(_) | Op::MultiHeadAttentionMatMul(_)
        ) && r
            .inputs
            .iter()
            .enumerate()
            .all(|(i, v)| *v != Some(present) || i == 1 || i == 2)
    });
    attention_only.then_some(Match {
        past,
        producer: p_ix,
        slot,
    })
}

/// Converts every cache the guard accepts; returns how many.
pub fn apply(g: &mut Graph) -> Result<usize> {
    let found: Vec<Match> = g
        .topo_order()?
        .into_iter()
        .filter_map(|ix| guard(g, ix))
        .collect();
    for m in &found {
        if let Some(f) = g.values[m.past].fact.as_mut() {
            f.dtype = DType::F16;
        }
        if let Op::MatMulMultiRotary(op) = &mut g.nodes[m.producer].op {
            if !op.f16_outputs.contains(&m.slot) {
                op.f16_outputs.push(m.slot);
                op.f16_outputs.sort_unstable();
            }
        }
    }
    if !found.is_empty() {
        g.infer_facts()?;
        g.validate()?;
    }
    Ok(found.len())
}
