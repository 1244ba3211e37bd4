//! Constant folding: a node whose inputs are all initializers is evaluated
//! once with the CPU reference kernels and its outputs become initializers.
//! Results larger than `max_bytes` are left alone, so that e.g. a Cast or
//! Transpose of a weight does not keep a second copy of the weight.

use crate::pattern::arg;
use crate::Rule;
use anyhow::{Context, Result};
use cellm_ir::{Graph, Tensor, ValueId};
use petgraph::stable_graph::NodeIndex;

pub struct ConstantFold {
    pub max_bytes: usize,
}

impl Default for ConstantFold {
    fn default() -> Self {
        ConstantFold {
            max_bytes: 16 << 20,
        }
    }
}

pub struct Folded {
    node: NodeIndex,
    outputs: Vec<(ValueId, Tensor)>,
}

impl Rule for ConstantFold {
    type Match = Folded;
    fn name(&self) -> &'static str {
        "constant_fold"
    }

    fn guard(&self, g: &Graph, ix: NodeIndex) -> Option<Folded> {
        let n = &g.nodes[ix];
        // Nodes without inputs (none today) are left to their importer.
        n.inputs.iter().flatten().next()?;
        let args: Vec<Option<&Tensor>> = (0..n.inputs.len())
            .map(|i| match arg(n, i) {
                Some(v) => g.initializers.get(&v).map(Some),
                None => Some(None),
            })
            .collect::<Option<_>>()?;
        // Graph outputs stay computed by a node: backends expect to produce them.
        if n.outputs.iter().flatten().any(|v| g.outputs.contains(v)) {
            return None;
        }
        // An input-size guard keeps us from even trying huge evaluations.
        let in_bytes: usize = args.iter().flatten().map(|t| t.bytes().len()).sum();
        if in_bytes > 4 * self.max_bytes {
            return None;
        }
        let outs = cellm_cpu::ops::eval(&n.op, &args).ok()?;
        if outs.iter().any(|t| t.bytes().len() > self.max_bytes) {
            return None;
        }
        let outputs = n
            .outputs
            .iter()
            .zip(outs)
            .filter_map(|(v, t)| v.map(|v| (v, t)))
            .collect();
        Some(Folded { node: ix, outputs })
    }

    fn patch(&self, g: &mut Graph, m: Folded) -> Result<()> {
        g.remove_node(m.node).context("folded node vanished")?;
        for (v, t) in m.outputs {
            let name = g.value_name(v).to_string();
            g.add_initializer(&name, t);
        }
        Ok(())
    }
}
