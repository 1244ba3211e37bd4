//! Attention + output projection: MatMul(MultiHeadAttention(...), W), where
//! the projection is the attention output's only reader, becomes one
//! `MultiHeadAttentionMatMul`. On the GPU a decode step at long context
//! splits attention's keys over workgroups and merges the partial softmax
//! states in a second launch; fused, the merge runs inside the projection's
//! GEMV, so a layer keeps its launch count whether or not the keys split.
//!
//! Guard (at a MatMul): A is output 0 of a MultiHeadAttention whose present
//! outputs nobody reads, and the MatMul is A's only reader (A is no graph
//! output); W is 2-D of A's dtype, or f16 under f32 A. Not in the default
//! pipeline: the `kv_cache`, `causal_mask` and `f16_kv_cache` passes match
//! MultiHeadAttention nodes, so the decoder runtime applies this last
//! ([`apply`]).

use crate::passes::mat_mul_silu_mul::weight_ok;
use crate::pattern::{arg, out, producer, readers, replace_node};
use crate::Rule;
use anyhow::{Context, Result};
use cellm_ir::ops::multi_head_attention_mat_mul::WEIGHT;
use cellm_ir::ops::MultiHeadAttentionMatMul;
use cellm_ir::{Graph, Node, Op, ValueId};
use petgraph::stable_graph::NodeIndex;

pub struct MultiHeadAttentionMatMulFusion;

pub struct Match {
    mat_mul: NodeIndex,
    attention: NodeIndex,
    w: ValueId,
}

impl Rule for MultiHeadAttentionMatMulFusion {
    type Match = Match;
    fn name(&self) -> &'static str {
        "multi_head_attention_mat_mul"
    }

    fn guard(&self, g: &Graph, ix: NodeIndex) -> Option<Match> {
        let n = &g.nodes[ix];
        if !matches!(n.op, Op::MatMul(_)) {
            return None;
        }
        let (a, w) = (arg(n, 0)?, arg(n, 1)?);
        let (attention, mha) = producer(g, a)?;
        if !matches!(mha.op, Op::MultiHeadAttention(_))
            || out(mha, 0) != Some(a)
            || mha.inputs.len() > WEIGHT
            || readers(g, a) != 1
            || g.outputs.contains(&a)
        {
            return None;
        }
        let presents_unread = mha
            .outputs
            .iter()
            .skip(1)
            .flatten()
            .all(|&p| readers(g, p) == 0);
        (presents_unread && weight_ok(g, a, w)).then_some(Match {
            mat_mul: ix,
            attention,
            w,
        })
    }

    fn patch(&self, g: &mut Graph, m: Match) -> Result<()> {
        let y = out(&g.nodes[m.mat_mul], 0).context("MatMul output")?;
        let mha = g.nodes[m.attention].clone();
        let Op::MultiHeadAttention(attention) = mha.op else {
            anyhow::bail!("not a MultiHeadAttention");
        };
        let mut inputs = mha.inputs.clone();
        inputs.resize(WEIGHT, None);
        inputs.push(Some(m.w));
        let name = format!("{}/fused_mat_mul", mha.name);
        g.remove_node(m.attention);
        replace_node(
            g,
            m.mat_mul,
            Node {
                name,
                op: Op::MultiHeadAttentionMatMul(MultiHeadAttentionMatMul { attention }),
                inputs,
                outputs: vec![Some(y)],
            },
        )?;
        Ok(())
    }
}

/// Fuses every match; returns how many.
pub fn apply(g: &mut Graph) -> Result<usize> {
    use crate::Pass;
    let n = crate::RulePass(MultiHeadAttentionMatMulFusion).run(g)?;
    if n > 0 {
        g.infer_facts()?;
        g.validate()?;
    }
    Ok(n)
}
