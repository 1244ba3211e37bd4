//! Where with a condition known at compile time: Where(c, a, b) is b when c is
//! all false and a when all true (and that branch already has the output's
//! shape). Besides constant conditions, Equal(shape vector, negative constant)
//! is all false: dims are never negative (the "-1 → 1" guard exporters put
//! around Expand shapes).

use crate::passes::reshape_canon::{shape_pieces, Piece};
use crate::pattern::{arg, binary, const_ints, out, shape};
use crate::Rule;
use anyhow::{Context, Result};
use cellm_ir::ops::BinaryOp;
use cellm_ir::{Graph, Op, ValueId};
use petgraph::stable_graph::NodeIndex;

pub struct WhereFold;

fn known_condition(g: &Graph, c: ValueId) -> Option<bool> {
    if let Some(vals) = const_ints(g, c) {
        if vals.iter().all(|&v| v != 0) {
            return Some(true);
        }
        return vals.iter().all(|&v| v == 0).then_some(false);
    }
    let (_, a, b) = binary(g, c, BinaryOp::Equal)?;
    let negative = const_ints(g, b)?;
    let pieces = shape_pieces(g, a)?;
    let never = negative.iter().all(|&v| v < 0)
        && pieces
            .iter()
            .all(|p| matches!(p, Piece::DimOf(_)) || matches!(p, Piece::Const(c) if *c >= 0));
    never.then_some(false)
}

impl Rule for WhereFold {
    type Match = (NodeIndex, ValueId, ValueId);
    fn name(&self) -> &'static str {
        "where_fold"
    }

    fn guard(&self, g: &Graph, ix: NodeIndex) -> Option<Self::Match> {
        let n = &g.nodes[ix];
        if !matches!(n.op, Op::Where(_)) {
            return None;
        }
        let y = out(n, 0)?;
        let pick = if known_condition(g, arg(n, 0)?)? {
            arg(n, 1)?
        } else {
            arg(n, 2)?
        };
        let (ys, ps) = (shape(g, y)?, shape(g, pick)?);
        (ys == ps && !ys.iter().any(|d| d.is_unknown())).then_some((ix, y, pick))
    }

    fn patch(&self, g: &mut Graph, (ix, y, pick): Self::Match) -> Result<()> {
        g.remove_node(ix).context("where node vanished")?;
        g.replace_uses(y, pick)
    }
}
