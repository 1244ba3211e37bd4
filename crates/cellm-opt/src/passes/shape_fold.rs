//! Shape-subgraph folding: `Shape(x)` becomes a constant when the dims it
//! reports are known at compile time, and `Gather(Shape(x), i)` when the
//! gathered dims are (even if others stay symbolic). Constant folding then
//! evaluates the rest of the chain (Concat/Unsqueeze/Range/Equal/Where…).

use crate::pattern::{arg, const_ints, out, producer, shape};
use crate::Rule;
use anyhow::Result;
use cellm_ir::{Dim, Graph, Op, Tensor, ValueId};
use petgraph::stable_graph::NodeIndex;

pub struct ShapeFold;

pub struct Folded {
    node: NodeIndex,
    value: ValueId,
    tensor: Tensor,
}

/// The dims `Shape{start, end}` reports for a value of shape `dims`.
fn shape_slice(dims: &[Dim], start: i64, end: Option<i64>) -> &[Dim] {
    let r = dims.len() as i64;
    let clamp = |i: i64| (if i < 0 { i + r } else { i }).clamp(0, r) as usize;
    let (s, e) = (clamp(start), clamp(end.unwrap_or(r)));
    if s >= e {
        &[]
    } else {
        &dims[s..e]
    }
}

fn known(dims: &[Dim]) -> Option<Vec<i64>> {
    dims.iter().map(|d| d.known().map(|n| n as i64)).collect()
}

impl Rule for ShapeFold {
    type Match = Folded;
    fn name(&self) -> &'static str {
        "shape_fold"
    }

    fn guard(&self, g: &Graph, ix: NodeIndex) -> Option<Folded> {
        let n = &g.nodes[ix];
        let value = out(n, 0)?;
        if g.outputs.contains(&value) {
            return None;
        }
        match &n.op {
            Op::Shape(s) => {
                let dims = shape_slice(shape(g, arg(n, 0)?)?, s.start, s.end);
                let vals = known(dims)?;
                Some(Folded {
                    node: ix,
                    value,
                    tensor: Tensor::from_vec(vec![vals.len()], vals),
                })
            }
            Op::Gather(gather) => {
                let (_, sn) = producer(g, arg(n, 0)?)?;
                let Op::Shape(s) = &sn.op else { return None };
                if gather.axis != 0 {
                    return None;
                }
                let dims = shape_slice(shape(g, arg(sn, 0)?)?, s.start, s.end);
                let idx_v = arg(n, 1)?;
                let idx = const_ints(g, idx_v)?;
                let idx_shape = g.initializers.get(&idx_v)?.shape().to_vec();
                let len = dims.len() as i64;
                let vals = idx
                    .iter()
                    .map(|&i| {
                        let i = if i < 0 { i + len } else { i };
                        if !(0..len).contains(&i) {
                            return None;
                        }
                        dims[i as usize].known().map(|d| d as i64)
                    })
                    .collect::<Option<Vec<i64>>>()?;
                Some(Folded {
                    node: ix,
                    value,
                    tensor: Tensor::from_vec(idx_shape, vals),
                })
            }
            _ => None,
        }
    }

    fn patch(&self, g: &mut Graph, m: Folded) -> Result<()> {
        g.remove_node(m.node);
        let name = g.value_name(m.value).to_string();
        g.add_initializer(&name, m.tensor);
        Ok(())
    }
}
