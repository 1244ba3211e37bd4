//! Graph statistics: which nodes run as device kernels, and kernel sequences.
//!
//! A node is a *kernel* when it does work on the device: not a view (Reshape,
//! Squeeze, Unsqueeze, Flatten, Identity only relabel a buffer), not `Shape`,
//! and not host-side shape math (every output an integer or bool tensor).

use anyhow::Result;
use cellm_ir::ops::UnaryOp;
use cellm_ir::{Graph, Op, ValueId};
use petgraph::stable_graph::NodeIndex;
use std::collections::{BTreeMap, HashSet};

/// Ops that only relabel their input's buffer.
pub fn is_view(op: &Op) -> bool {
    matches!(
        op,
        Op::Reshape(_) | Op::Squeeze(_) | Op::Unsqueeze(_) | Op::Flatten(_)
    ) || matches!(op, Op::Unary(u) if u.op == UnaryOp::Identity)
}

/// True when node `ix` runs as a device kernel (see the module docs).
pub fn is_kernel(g: &Graph, ix: NodeIndex) -> bool {
    let n = &g.nodes[ix];
    if is_view(&n.op) || matches!(n.op, Op::Shape(_)) {
        return false;
    }
    n.outputs
        .iter()
        .flatten()
        .any(|&v| g.values[v].fact.as_ref().is_none_or(|f| f.dtype.is_float()))
}

/// Kernel launches of one kernel node: its op name once per launch.
/// MultiHeadAttentionMatMul launches attention, then the projection (which
/// merges split-K partials when the keys were split).
fn launches(op: &Op) -> Vec<String> {
    match op {
        Op::MultiHeadAttentionMatMul(_) => vec![
            "MultiHeadAttentionMatMul/attention".into(),
            "MultiHeadAttentionMatMul/projection".into(),
        ],
        other => vec![other.name()],
    }
}

/// Kernel launches (op names) in topological order.
pub fn kernel_sequence(g: &Graph) -> Result<Vec<String>> {
    Ok(g.topo_order()?
        .into_iter()
        .filter(|&ix| is_kernel(g, ix))
        .flat_map(|ix| launches(&g.nodes[ix].op))
        .collect())
}

/// Kernels on the data path of `sources`: nodes reachable from them through
/// edges other than into `Shape` (so shape- and mask-building preambles that
/// only look at a source's shape are left out), in topological order.
pub fn data_path_kernels(g: &Graph, sources: &[ValueId]) -> Result<Vec<String>> {
    let mut live: HashSet<ValueId> = sources.iter().copied().collect();
    let mut seq = Vec::new();
    for ix in g.topo_order()? {
        let n = &g.nodes[ix];
        if matches!(n.op, Op::Shape(_)) {
            continue;
        }
        if n.inputs.iter().flatten().any(|v| live.contains(v)) {
            live.extend(n.outputs.iter().flatten().copied());
            if is_kernel(g, ix) {
                seq.extend(launches(&n.op));
            }
        }
    }
    Ok(seq)
}

/// Count per name, sorted by name.
pub fn histogram(names: &[String]) -> BTreeMap<String, usize> {
    let mut h = BTreeMap::new();
    for n in names {
        *h.entry(n.clone()).or_default() += 1;
    }
    h
}

/// Bytes of every intermediate (non-input, non-initializer) value whose shape
/// resolves under `bindings`; `None` when some intermediate does not resolve.
pub fn value_bytes(
    g: &Graph,
    v: ValueId,
    bindings: &std::collections::HashMap<String, usize>,
) -> Option<usize> {
    let f = g.values[v].fact.as_ref()?;
    let dims: Option<Vec<usize>> = f
        .shape
        .as_ref()?
        .iter()
        .map(|d| resolve(d, bindings))
        .collect();
    Some(dims?.iter().product::<usize>() * f.dtype.size())
}

/// Resolves a dim, evaluating derived expressions (`a+b`, `a*b`, `2*a`).
pub fn resolve(d: &cellm_ir::Dim, b: &std::collections::HashMap<String, usize>) -> Option<usize> {
    match d {
        cellm_ir::Dim::Known(n) => Some(*n),
        cellm_ir::Dim::Sym(s) => eval_expr(s.trim(), b),
    }
}

fn eval_expr(s: &str, b: &std::collections::HashMap<String, usize>) -> Option<usize> {
    if let Some(&n) = b.get(s) {
        return Some(n);
    }
    if let Ok(n) = s.parse::<usize>() {
        return Some(n);
    }
    let inner = s.strip_prefix('(').and_then(|x| x.strip_suffix(')'));
    if let Some(i) = inner.filter(|i| balanced(i)) {
        return eval_expr(i, b);
    }
    for sep in ['+', '*'] {
        let parts = split_top(s, sep);
        if parts.len() > 1 {
            let vals: Option<Vec<usize>> = parts.iter().map(|p| eval_expr(p.trim(), b)).collect();
            let vals = vals?;
            return Some(if sep == '+' {
                vals.iter().sum()
            } else {
                vals.iter().product()
            });
        }
    }
    None
}

fn balanced(s: &str) -> bool {
    let mut depth = 0i32;
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
    }
    depth == 0
}

fn split_top(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            c if c == sep && depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Peak bytes of live intermediates when nodes run in topological order and
/// each value is freed after its last reader (what the CPU interpreter does);
/// `None` when some intermediate's size is not known under `bindings`.
pub fn peak_intermediate_bytes(
    g: &Graph,
    bindings: &std::collections::HashMap<String, usize>,
) -> Result<Option<usize>> {
    let mut uses = g.use_counts();
    let (mut live, mut peak) = (0usize, 0usize);
    for ix in g.topo_order()? {
        let n = &g.nodes[ix];
        for &v in n.outputs.iter().flatten() {
            let Some(b) = value_bytes(g, v, bindings) else {
                return Ok(None);
            };
            live += b;
        }
        peak = peak.max(live);
        for &v in n.inputs.iter().flatten() {
            uses[v] -= 1;
            let intermediate = g.values[v].producer.is_some();
            if uses[v] == 0 && intermediate {
                live -= value_bytes(g, v, bindings).unwrap_or(0);
            }
        }
        // Outputs nobody reads are freed at once.
        for &v in n.outputs.iter().flatten() {
            if uses[v] == 0 {
                live -= value_bytes(g, v, bindings).unwrap_or(0);
            }
        }
    }
    Ok(Some(peak))
}
