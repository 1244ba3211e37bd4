//! MultiHeadAttention key/value layout: when key and value are both
//! Reshape(Transpose[0,2,1,3](x)) of [B, H, L, D] values (H = num_heads) and no
//! past is given, MHA reads the [B, H, L, D] values directly; the transposes
//! (a copy each) die.

use crate::pattern::{arg, producer, shape};
use crate::Rule;
use anyhow::Result;
use cellm_ir::{Graph, Op, ValueId};
use petgraph::stable_graph::NodeIndex;

pub struct MhaKvLayout;

/// `v` = Reshape(Transpose[0,2,1,3](x)) into [B, L, H·D], x = [B, H, L, D].
fn unsplit_source(g: &Graph, v: ValueId, heads: usize) -> Option<ValueId> {
    let (_, rn) = producer(g, v)?;
    if !matches!(rn.op, Op::Reshape(_)) {
        return None;
    }
    let t = arg(rn, 0)?;
    let (_, tn) = producer(g, t)?;
    let Op::Transpose(tr) = &tn.op else {
        return None;
    };
    if tr.perm.as_deref() != Some(&[0, 2, 1, 3]) {
        return None;
    }
    let x = arg(tn, 0)?;
    let (xs, vs, ts) = (shape(g, x)?, shape(g, v)?, shape(g, t)?);
    let d = xs.get(3)?.known()?;
    let ok = xs.len() == 4
        && vs.len() == 3
        && xs[1].known() == Some(heads)
        && vs[2].known() == Some(heads * d)
        && keeps_leading(g, rn, ts, vs);
    ok.then_some(x)
}

/// The reshape keeps dims 0 and 1: its target starts with 0, 0 (copy), or the
/// dims are the same non-`?` symbols.
fn keeps_leading(
    g: &Graph,
    reshape: &cellm_ir::Node,
    from: &[cellm_ir::Dim],
    to: &[cellm_ir::Dim],
) -> bool {
    let copies = arg(reshape, 1)
        .and_then(|t| crate::pattern::const_ints(g, t))
        .is_some_and(|t| t.len() == 3 && t[0] == 0 && t[1] == 0);
    copies || (from[..2] == to[..2] && !to[0].is_unknown() && !to[1].is_unknown())
}

impl Rule for MhaKvLayout {
    type Match = (NodeIndex, ValueId, ValueId);
    fn name(&self) -> &'static str {
        "mha_kv_layout"
    }

    fn guard(&self, g: &Graph, ix: NodeIndex) -> Option<Self::Match> {
        let n = &g.nodes[ix];
        let Op::MultiHeadAttention(op) = &n.op else {
            return None;
        };
        if arg(n, 3).is_some() || arg(n, 6).is_some() || arg(n, 7).is_some() {
            return None;
        }
        let k = unsplit_source(g, arg(n, 1)?, op.num_heads)?;
        let v = unsplit_source(g, arg(n, 2)?, op.num_heads)?;
        Some((ix, k, v))
    }

    fn patch(&self, g: &mut Graph, (ix, k, v): Self::Match) -> Result<()> {
        g.set_input(ix, 1, Some(k));
        g.set_input(ix, 2, Some(v));
        Ok(())
    }
}
