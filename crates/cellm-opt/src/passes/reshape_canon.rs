//! Reshape canonicalisation (shape-subgraph simplification): a Reshape whose
//! target is Concat([Unsqueeze(Gather(Shape(y), i)) | constant, …]) gets a
//! constant target instead. A dim read from y that is (symbolically) the data's
//! dim at the same position becomes 0 ("copy"), a known dim its number, and at
//! most one other dim −1 ("infer"). The shape subgraph then dies, and the
//! output shape becomes known for later guards.

use crate::pattern::{add_const, arg, const_ints, producer, shape};
use crate::Rule;
use anyhow::Result;
use cellm_ir::{Dim, Graph, Op, Tensor, ValueId};
use petgraph::stable_graph::NodeIndex;

pub struct ReshapeCanon;

enum Piece {
    Const(Vec<i64>),
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

impl Rule for ReshapeCanon {
    type Match = (NodeIndex, Vec<i64>);
    fn name(&self) -> &'static str {
        "reshape_canon"
    }

    fn guard(&self, g: &Graph, ix: NodeIndex) -> Option<(NodeIndex, Vec<i64>)> {
        let n = &g.nodes[ix];
        let Op::Reshape(r) = &n.op else { return None };
        let target = arg(n, 1)?;
        if r.allowzero || g.initializers.contains_key(&target) {
            return None;
        }
        let data = shape(g, arg(n, 0)?)?;
        let (_, cn) = producer(g, target)?;
        let Op::Concat(c) = &cn.op else { return None };
        if c.axis != 0 {
            return None;
        }
        let pieces = cn
            .inputs
            .iter()
            .map(|v| {
                let v = (*v)?;
                match const_ints(g, v) {
                    Some(c) => Some(Piece::Const(c)),
                    None => dim_ref(g, v).map(Piece::DimOf),
                }
            })
            .collect::<Option<Vec<Piece>>>()?;
        let mut out = Vec::new();
        for p in pieces {
            match p {
                // A constant 0 copies the data dim at its position, as before.
                Piece::Const(c) => out.extend(c),
                Piece::DimOf(d) => {
                    let pos = out.len();
                    out.push(if data.get(pos) == Some(&d) {
                        0
                    } else if let Some(k) = d.known() {
                        k as i64
                    } else {
                        -1
                    });
                }
            }
        }
        (out.iter().filter(|&&d| d == -1).count() <= 1).then_some((ix, out))
    }

    fn patch(&self, g: &mut Graph, (ix, dims): (NodeIndex, Vec<i64>)) -> Result<()> {
        let name = format!("{}/shape", g.nodes[ix].name);
        let c = add_const(g, &name, Tensor::from_vec(vec![dims.len()], dims));
        g.set_input(ix, 1, Some(c));
        Ok(())
    }
}
