//! Shape-vector canonicalisation (shape-subgraph simplification). Runtime shape
//! vectors built as Concat([Unsqueeze(Gather(Shape(y), i)) | constant, …])
//! (looking through a 1-D Reshape) are replaced by constants where the meaning
//! is the same:
//! - Reshape target: a dim that is (symbolically) the data's dim at the same
//!   position becomes 0 ("copy"), a known dim its number, at most one other −1;
//! - Expand shape: a dim equal to the input's (right-aligned) dim becomes 1
//!   ("keep"), a known dim its number.
//!
//! The shape subgraph then dies, and output shapes become known for later guards.

use crate::pattern::{add_const, arg, const_ints, producer, shape};
use crate::Rule;
use anyhow::Result;
use cellm_ir::{Dim, Graph, Op, Tensor, ValueId};
use petgraph::stable_graph::NodeIndex;

pub struct ReshapeCanon;

pub enum Piece {
    Const(i64),
    DimOf(Dim),
}

/// `v` as one dim read out of a shape: Unsqueeze(Gather(Shape(y), i)) or a
/// 1-element Gather(Shape(y), [i]).
fn dim_ref(g: &Graph, v: ValueId) -> Option<Dim> {
    let (_, n) = producer(g, v)?;
    let gathered = match &n.op {
        Op::Unsqueeze(u) => {
            let axes = match &u.axes {
                Some(a) => a.clone(),
                None => const_ints(g, arg(n, 1)?)?,
            };
            if axes != [0] {
                return None;
            }
            arg(n, 0)?
        }
        Op::Gather(_) => v,
        _ => return None,
    };
    let (_, gn) = producer(g, gathered)?;
    let Op::Gather(ga) = &gn.op else { return None };
    if ga.axis != 0 {
        return None;
    }
    let idx = const_ints(g, arg(gn, 1)?)?;
    let (_, sn) = producer(g, arg(gn, 0)?)?;
    let Op::Shape(s) = &sn.op else { return None };
    if s.start != 0 || s.end.is_some() {
        return None;
    }
    let dims = shape(g, arg(sn, 0)?)?;
    let [i] = idx[..] else { return None };
    let i = if i < 0 { i + dims.len() as i64 } else { i };
    let d = dims.get(usize::try_from(i).ok()?)?;
    (!d.is_unknown()).then(|| d.clone())
}

/// The elements of a 1-D shape vector, when each is a constant or a dim of
/// some value.
pub fn shape_pieces(g: &Graph, v: ValueId) -> Option<Vec<Piece>> {
    if let Some(c) = const_ints(g, v) {
        return Some(c.into_iter().map(Piece::Const).collect());
    }
    let (_, n) = producer(g, v)?;
    match &n.op {
        // Reshape of a 1-D vector to [-1] or its own length changes nothing.
        Op::Reshape(_) => {
            let t = const_ints(g, arg(n, 1)?)?;
            let src = arg(n, 0)?;
            (t.len() == 1 && shape(g, src)?.len() == 1).then_some(())?;
            shape_pieces(g, src)
        }
        Op::Concat(c) if c.axis == 0 || c.axis == -1 => {
            let mut out = Vec::new();
            for v in n.inputs.iter() {
                let v = (*v)?;
                match const_ints(g, v) {
                    Some(c) => out.extend(c.into_iter().map(Piece::Const)),
                    None => out.push(Piece::DimOf(dim_ref(g, v)?)),
                }
            }
            Some(out)
        }
        _ => None,
    }
}

impl Rule for ReshapeCanon {
    type Match = (NodeIndex, Vec<i64>);
    fn name(&self) -> &'static str {
        "reshape_canon"
    }

    fn guard(&self, g: &Graph, ix: NodeIndex) -> Option<(NodeIndex, Vec<i64>)> {
        let n = &g.nodes[ix];
        let target = arg(n, 1)?;
        if g.initializers.contains_key(&target) {
            return None;
        }
        let data = shape(g, arg(n, 0)?)?;
        let pieces = shape_pieces(g, target)?;
        let mut out = Vec::new();
        match &n.op {
            Op::Reshape(r) if !r.allowzero => {
                for (pos, p) in pieces.into_iter().enumerate() {
                    out.push(match p {
                        // A constant 0 copies the data dim at its position, as before.
                        Piece::Const(c) => c,
                        Piece::DimOf(d) if data.get(pos) == Some(&d) => 0,
                        Piece::DimOf(d) => d.known().map_or(-1, |k| k as i64),
                    });
                }
                (out.iter().filter(|&&d| d == -1).count() <= 1).then_some(())?;
            }
            Op::Expand(_) => {
                let offset = pieces.len().checked_sub(data.len())?;
                for (pos, p) in pieces.into_iter().enumerate() {
                    let own = pos.checked_sub(offset).and_then(|i| data.get(i));
                    out.push(match p {
                        Piece::Const(c) => c,
                        Piece::DimOf(d) if own == Some(&d) => 1,
                        Piece::DimOf(d) => d.known()? as i64,
                    });
                }
            }
            _ => return None,
        }
        Some((ix, out))
    }

    fn patch(&self, g: &mut Graph, (ix, dims): (NodeIndex, Vec<i64>)) -> Result<()> {
        let name = format!("{}/shape", g.nodes[ix].name);
        let c = add_const(g, &name, Tensor::from_vec(vec![dims.len()], dims));
        g.set_input(ix, 1, Some(c));
        Ok(())
    }
}
