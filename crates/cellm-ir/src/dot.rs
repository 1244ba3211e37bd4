//! Graphviz DOT rendering of a graph.

use crate::shape::fmt_shape;
use crate::Graph;
use std::fmt::Write;

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// DOT text: graph inputs as ellipses, ops as boxes, edges labelled with the
/// value's dtype and shape. Weights are not drawn (they would swamp the picture).
pub fn to_dot(g: &Graph) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "digraph {} {{", quote(&g.name));
    let _ = writeln!(s, "  rankdir=TB; node [fontsize=10]; edge [fontsize=8];");
    let label = |v: usize| match &g.values[v].fact {
        Some(f) => format!(
            "{} {}",
            f.dtype,
            f.shape
                .as_deref()
                .map(fmt_shape)
                .unwrap_or_else(|| "?".into())
        ),
        None => String::new(),
    };
    for &v in &g.inputs {
        let _ = writeln!(
            s,
            "  {} [shape=ellipse, label={}];",
            quote(&format!("in:{}", g.values[v].name)),
            quote(&format!("{}\\n{}", g.values[v].name, label(v)))
        );
    }
    for &v in &g.outputs {
        let _ = writeln!(
            s,
            "  {} [shape=ellipse, style=bold, label={}];",
            quote(&format!("out:{}", g.values[v].name)),
            quote(&format!("{}\\n{}", g.values[v].name, label(v)))
        );
    }
    for ix in g.nodes.node_indices() {
        let n = &g.nodes[ix];
        let _ = writeln!(
            s,
            "  n{} [shape=box, label={}];",
            ix.index(),
            quote(&format!("{}\\n{}", n.op.name(), n.name))
        );
        for v in n.inputs.iter().flatten() {
            if g.inputs.contains(v) {
                let _ = writeln!(
                    s,
                    "  {} -> n{} [label={}];",
                    quote(&format!("in:{}", g.values[*v].name)),
                    ix.index(),
                    quote(&label(*v))
                );
            }
        }
    }
    for e in g.nodes.edge_indices() {
        let (a, b) = g.nodes.edge_endpoints(e).expect("edge endpoints");
        let v = g.nodes[e];
        let _ = writeln!(
            s,
            "  n{} -> n{} [label={}];",
            a.index(),
            b.index(),
            quote(&label(v))
        );
    }
    for &v in &g.outputs {
        if let Some(p) = g.values[v].producer {
            let _ = writeln!(
                s,
                "  n{} -> {};",
                p.index(),
                quote(&format!("out:{}", g.values[v].name))
            );
        }
    }
    s.push_str("}\n");
    s
}
