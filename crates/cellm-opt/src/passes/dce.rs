//! Dead code elimination: a node none of whose outputs is read (by a node or
//! as a graph output) is removed; initializers nobody reads are dropped.

use crate::Rule;
use anyhow::Result;
use cellm_ir::Graph;
use petgraph::stable_graph::NodeIndex;
use petgraph::Direction;

pub struct Dce;

impl Rule for Dce {
    type Match = NodeIndex;
    fn name(&self) -> &'static str {
        "dce"
    }
    fn reverse(&self) -> bool {
        true
    }
    fn guard(&self, g: &Graph, ix: NodeIndex) -> Option<NodeIndex> {
        let has_reader = g
            .nodes
            .edges_directed(ix, Direction::Outgoing)
            .next()
            .is_some();
        let is_output = g.nodes[ix]
            .outputs
            .iter()
            .flatten()
            .any(|v| g.outputs.contains(v));
        (!has_reader && !is_output).then_some(ix)
    }
    fn patch(&self, g: &mut Graph, ix: NodeIndex) -> Result<()> {
        g.remove_node(ix);
        Ok(())
    }
}

/// Drops initializers that no node reads and that are not graph outputs
/// (fusions leave their old constants behind).
pub fn prune_initializers(g: &mut Graph) -> usize {
    let uses = g.use_counts();
    let before = g.initializers.len();
    g.initializers.retain(|v, _| uses[*v] > 0);
    before - g.initializers.len()
}
