//! Runs a graph on the CPU in topological order, binding symbolic dims from the
//! inputs and freeing each intermediate after its last reader.

use crate::kv_cache::KvCache;
use anyhow::{anyhow, bail, Result};
use cellm_ir::{DType, Dim, Graph, Node, Op, Tensor};
use std::collections::HashMap;

/// Symbol → size, bound from the inputs of one run.
pub type Bindings = HashMap<String, usize>;

/// Checks `inputs` against the graph's declared inputs and binds symbolic
/// dims; errors name the input and the offending dim.
pub fn bind_inputs(graph: &Graph, inputs: &HashMap<String, Tensor>) -> Result<Bindings> {
    let shapes: HashMap<&str, (DType, &[usize])> = inputs
        .iter()
        .map(|(k, t)| (k.as_str(), (t.dtype(), t.shape())))
        .collect();
    bind_input_shapes(graph, &shapes)
}

/// [`bind_inputs`] from each input's dtype and shape alone (inputs that live
/// elsewhere, e.g. in a device KV cache, have no host tensor).
pub fn bind_input_shapes(
    graph: &Graph,
    inputs: &HashMap<&str, (DType, &[usize])>,
) -> Result<Bindings> {
    let mut bindings = Bindings::new();
    for &v in &graph.inputs {
        let info = &graph.values[v];
        let &(dtype, given) = inputs
            .get(info.name.as_str())
            .ok_or_else(|| anyhow!("missing input '{}'", info.name))?;
        let Some(fact) = &info.fact else { continue };
        if dtype != fact.dtype {
            bail!(
                "input '{}' must be {} but is {}",
                info.name,
                fact.dtype,
                dtype
            );
        }
        let Some(shape) = &fact.shape else { continue };
        if shape.len() != given.len() {
            bail!(
                "input '{}' must have rank {} ({}) but has shape {:?}",
                info.name,
                shape.len(),
                cellm_ir::shape::fmt_shape(shape),
                given
            );
        }
        for (i, (d, &n)) in shape.iter().zip(given).enumerate() {
            match d {
                Dim::Known(k) if *k != n => bail!(
                    "input '{}' dim {i} must be {k} but is {n} (shape {:?})",
                    info.name,
                    given
                ),
                Dim::Sym(s) => match bindings.get(s) {
                    Some(&prev) if prev != n => bail!(
                        "input '{}' dim {i} ('{s}') is {n}, but another input set '{s}' = {prev}",
                        info.name
                    ),
                    _ => {
                        bindings.insert(s.clone(), n);
                    }
                },
                _ => {}
            }
        }
    }
    for name in inputs.keys() {
        if graph.find(name).is_none_or(|v| !graph.inputs.contains(&v)) {
            bail!("'{name}' is not an input of graph '{}'", graph.name);
        }
    }
    Ok(bindings)
}

/// Runs `graph` on `inputs` (by input name) and returns the graph outputs by name.
pub fn run(graph: &Graph, inputs: &HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
    run_inner(graph, inputs, None)
}

/// Like [`run`], with the graph inputs named in `cache` bound to views of
/// those caches (callers leave them out of `inputs`), and every KvCacheAppend
/// whose past is such an input appending in place. On error the caches are
/// rewound to where they were.
pub fn run_with_cache(
    graph: &Graph,
    inputs: &HashMap<String, Tensor>,
    cache: &mut KvCache,
) -> Result<HashMap<String, Tensor>> {
    let mut all = inputs.clone();
    let mut start = None;
    for name in cache.names() {
        if all.contains_key(name) {
            bail!("input '{name}' is held by the KV cache and must not be passed");
        }
        start = start.or(cache.rows(name));
    }
    let names: Vec<String> = cache.names().cloned().collect();
    for name in names {
        all.insert(name.clone(), cache.view(&name)?);
    }
    let result = run_inner(graph, &all, Some(cache));
    if result.is_err() {
        if let Some(rows) = start {
            cache.truncate(rows);
        }
    }
    result
}

fn run_inner(
    graph: &Graph,
    inputs: &HashMap<String, Tensor>,
    cache: Option<&mut KvCache>,
) -> Result<HashMap<String, Tensor>> {
    // Kernels fork onto rayon's pool hundreds of times a decode step. From a
    // pool thread a fork is a push the idle worker steals; from outside it
    // is an injection plus a blocking wait each time. So the whole run moves
    // into the pool once.
    if rayon::current_thread_index().is_none() {
        return rayon::scope(|_| run_in_pool(graph, inputs, cache));
    }
    run_in_pool(graph, inputs, cache)
}

fn run_in_pool(
    graph: &Graph,
    inputs: &HashMap<String, Tensor>,
    mut cache: Option<&mut KvCache>,
) -> Result<HashMap<String, Tensor>> {
    bind_inputs(graph, inputs)?;
    let order = graph.topo_order()?;
    let mut uses = graph.use_counts();
    let mut values: Vec<Option<Tensor>> = vec![None; graph.values.len()];
    for &v in &graph.inputs {
        values[v] = inputs.get(&graph.values[v].name).cloned();
    }
    for (&v, t) in &graph.initializers {
        values[v] = Some(t.clone());
    }
    // CELLM_PROFILE=1 prints seconds per op type after the run (to stderr).
    let mut profile: Option<HashMap<String, (f64, usize)>> =
        std::env::var_os("CELLM_PROFILE").map(|_| HashMap::new());
    for ix in order {
        let node = &graph.nodes[ix];
        let started = std::time::Instant::now();
        let args: Vec<Option<&Tensor>> =
            node.inputs
                .iter()
                .map(|v| match v {
                    Some(v) => values[*v].as_ref().map(Some).ok_or_else(|| {
                        anyhow!("value '{}' is not available", graph.values[*v].name)
                    }),
                    None => Ok(None),
                })
                .collect::<Result<_>>()
                .map_err(|e| anyhow!("node '{}' ({}): {e}", node.name, node.op.name()))?;
        let outs = match (&node.op, cache.as_deref_mut()) {
            (Op::KvCacheAppend(_), Some(c)) => append_in_place(graph, node, &args, c),
            _ => crate::ops::eval(&node.op, &args),
        }
        .map_err(|e| anyhow!("node '{}' ({}): {e:#}", node.name, node.op.name()))?;
        if let Some(p) = profile.as_mut() {
            let e = p.entry(node.op.name()).or_default();
            e.0 += started.elapsed().as_secs_f64();
            e.1 += 1;
        }
        for (slot, t) in node.outputs.iter().zip(outs) {
            if let Some(v) = slot {
                values[*v] = Some(t);
            }
        }
        for v in node.inputs.iter().flatten() {
            uses[*v] -= 1;
            if uses[*v] == 0 && !graph.initializers.contains_key(v) {
                values[*v] = None;
            }
        }
    }
    if let Some(p) = profile {
        let mut rows: Vec<_> = p.into_iter().collect();
        rows.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
        for (op, (secs, n)) in rows {
            eprintln!("profile {:>40} {:>5} nodes {:>9.4} s", op, n, secs);
        }
    }
    let mut out = HashMap::new();
    for &v in &graph.outputs {
        let t = values[v]
            .clone()
            .ok_or_else(|| anyhow!("output '{}' was not computed", graph.values[v].name))?;
        out.insert(graph.values[v].name.clone(), t);
    }
    Ok(out)
}

/// KvCacheAppend on a cache-bound past input: writes the new rows in place.
/// Any other past (e.g. an intermediate) takes the functional copy.
fn append_in_place(
    graph: &Graph,
    node: &Node,
    args: &[Option<&Tensor>],
    cache: &mut KvCache,
) -> Result<Vec<Tensor>> {
    let past = node.inputs.first().copied().flatten();
    let name = past
        .filter(|v| graph.inputs.contains(v))
        .map(|v| graph.values[v].name.as_str());
    let (Some(name), Some(Some(past_t)), Some(Some(new))) = (name, args.first(), args.get(1))
    else {
        return crate::ops::eval(&node.op, args);
    };
    if cache.rows(name) != past_t.shape().get(1).copied() {
        return crate::ops::eval(&node.op, args);
    }
    Ok(vec![cache.append(name, new)?])
}
