//! Common subexpression elimination: two nodes with the same op (attributes
//! included) reading the same values compute the same thing, so readers of the
//! second are moved to the first. Small initializers with equal contents are
//! merged first, so that duplicated constants do not hide equal nodes.

use crate::Pass;
use anyhow::Result;
use cellm_ir::{Graph, ValueId};
use petgraph::stable_graph::NodeIndex;
use std::collections::HashMap;

/// Initializers up to this size are compared by content (shape constants,
/// scalars); weights are never equal in practice and are not worth hashing.
const MAX_MERGED_CONST_BYTES: usize = 4096;

pub struct Cse;

impl Pass for Cse {
    fn name(&self) -> &'static str {
        "cse"
    }

    fn run(&self, g: &mut Graph) -> Result<usize> {
        let mut n = merge_constants(g)?;
        let mut seen: HashMap<(String, Vec<Option<ValueId>>), Vec<NodeIndex>> = HashMap::new();
        for ix in g.topo_order()? {
            if !g.nodes.contains_node(ix) {
                continue;
            }
            let key = (g.nodes[ix].op.name(), g.nodes[ix].inputs.clone());
            let same = seen.get(&key).and_then(|cands| {
                cands.iter().copied().find(|&c| {
                    g.nodes[c].op == g.nodes[ix].op
                        && g.nodes[c].outputs.len() == g.nodes[ix].outputs.len()
                })
            });
            let Some(keep) = same else {
                seen.entry(key).or_default().push(ix);
                continue;
            };
            // Outputs the kept node dropped cannot take over readers.
            let pairs: Vec<(Option<ValueId>, Option<ValueId>)> = g.nodes[ix]
                .outputs
                .iter()
                .copied()
                .zip(g.nodes[keep].outputs.iter().copied())
                .collect();
            if pairs.iter().any(|(d, k)| d.is_some() && k.is_none()) {
                seen.entry(key).or_default().push(ix);
                continue;
            }
            g.remove_node(ix);
            for (dup, kept) in pairs {
                if let (Some(d), Some(k)) = (dup, kept) {
                    g.replace_uses(d, k)?;
                }
            }
            n += 1;
        }
        Ok(n)
    }
}

fn merge_constants(g: &mut Graph) -> Result<usize> {
    let mut by_content: HashMap<(String, Vec<usize>, Vec<u8>), ValueId> = HashMap::new();
    let mut ids: Vec<ValueId> = g
        .initializers
        .iter()
        .filter(|(v, t)| {
            t.bytes().len() <= MAX_MERGED_CONST_BYTES
                && !g.outputs.contains(v)
                && !g.inputs.contains(v)
        })
        .map(|(v, _)| *v)
        .collect();
    // Deterministic: keep the oldest value of each group.
    ids.sort();
    let mut n = 0;
    for v in ids {
        let t = &g.initializers[&v];
        let key = (
            format!("{} {:?}", t.dtype(), t.layout()),
            t.shape().to_vec(),
            t.bytes().to_vec(),
        );
        match by_content.get(&key) {
            Some(&keep) => {
                if !g.consumers(v).is_empty() {
                    g.replace_uses(v, keep)?;
                    n += 1;
                }
            }
            None => {
                by_content.insert(key, v);
            }
        }
    }
    Ok(n)
}
