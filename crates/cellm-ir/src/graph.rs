//! The graph: ops as petgraph nodes, edges carry the value that flows from the
//! producer to the consumer.

use crate::ops::{Fact, Op};
use crate::Tensor;
use anyhow::{anyhow, bail, Result};
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use std::collections::HashMap;

pub type ValueId = usize;

#[derive(Clone, Debug)]
pub struct ValueInfo {
    pub name: String,
    /// Dtype and shape, once declared or inferred.
    pub fact: Option<Fact>,
    pub producer: Option<NodeIndex>,
}

#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    pub op: Op,
    /// `None` for an omitted optional input.
    pub inputs: Vec<Option<ValueId>>,
    /// `None` for an output nobody asked for.
    pub outputs: Vec<Option<ValueId>>,
}

#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub name: String,
    pub nodes: StableDiGraph<Node, ValueId>,
    pub values: Vec<ValueInfo>,
    pub inputs: Vec<ValueId>,
    pub outputs: Vec<ValueId>,
    /// Values known before the graph runs: weights and constants.
    pub initializers: HashMap<ValueId, Tensor>,
    pub value_by_name: HashMap<String, ValueId>,
}

impl Graph {
    pub fn new(name: impl Into<String>) -> Graph {
        Graph {
            name: name.into(),
            ..Default::default()
        }
    }

    /// The value called `name`, created if new.
    pub fn value(&mut self, name: &str) -> ValueId {
        if let Some(&v) = self.value_by_name.get(name) {
            return v;
        }
        let id = self.values.len();
        self.values.push(ValueInfo {
            name: name.to_string(),
            fact: None,
            producer: None,
        });
        self.value_by_name.insert(name.to_string(), id);
        id
    }

    pub fn find(&self, name: &str) -> Option<ValueId> {
        self.value_by_name.get(name).copied()
    }

    pub fn value_name(&self, v: ValueId) -> &str {
        &self.values[v].name
    }

    pub fn add_input(&mut self, name: &str, fact: Fact) -> ValueId {
        let v = self.value(name);
        self.values[v].fact = Some(fact);
        self.inputs.push(v);
        v
    }

    pub fn add_initializer(&mut self, name: &str, t: Tensor) -> ValueId {
        let v = self.value(name);
        self.values[v].fact = Some(Fact::new(
            t.dtype(),
            Some(t.shape().iter().map(|&d| d.into()).collect()),
        ));
        self.initializers.insert(v, t);
        v
    }

    /// Adds a node and wires it to the producers of its inputs. Nodes may be
    /// added in any order; edges to producers added later are made by them.
    pub fn add_node(&mut self, node: Node) -> Result<NodeIndex> {
        let outputs = node.outputs.clone();
        let inputs = node.inputs.clone();
        let name = node.name.clone();
        let ix = self.nodes.add_node(node);
        for v in outputs.into_iter().flatten() {
            if let Some(prev) = self.values[v].producer {
                bail!(
                    "value '{}' is produced by both '{}' and '{}'",
                    self.values[v].name,
                    self.nodes[prev].name,
                    name
                );
            }
            if self.initializers.contains_key(&v) {
                bail!(
                    "node '{name}' writes '{}', which is an initializer",
                    self.values[v].name
                );
            }
            self.values[v].producer = Some(ix);
            // Connect consumers that were added before this producer.
            let consumers: Vec<NodeIndex> = self
                .nodes
                .node_indices()
                .filter(|&c| c != ix && self.nodes[c].inputs.contains(&Some(v)))
                .collect();
            for c in consumers {
                self.nodes.add_edge(ix, c, v);
            }
        }
        for v in inputs.into_iter().flatten() {
            if let Some(p) = self.values[v].producer {
                if p != ix || self.nodes[ix].outputs.contains(&Some(v)) {
                    self.nodes.add_edge(p, ix, v);
                }
            }
        }
        Ok(ix)
    }

    /// Nodes in an order where producers come before consumers.
    pub fn topo_order(&self) -> Result<Vec<NodeIndex>> {
        petgraph::algo::toposort(&self.nodes, None).map_err(|cycle| {
            anyhow!(
                "the graph has a cycle through node '{}'",
                self.nodes[cycle.node_id()].name
            )
        })
    }

    /// Checks that every value read is a graph input, an initializer or the
    /// output of some node, and that the graph's outputs are all produced.
    pub fn validate(&self) -> Result<()> {
        let is_available = |v: ValueId| {
            self.inputs.contains(&v)
                || self.initializers.contains_key(&v)
                || self.values[v].producer.is_some()
        };
        for ix in self.nodes.node_indices() {
            let n = &self.nodes[ix];
            for v in n.inputs.iter().flatten() {
                if !is_available(*v) {
                    bail!(
                        "node '{}' ({}) reads '{}', which no node, input or initializer provides",
                        n.name,
                        n.op.name(),
                        self.values[*v].name
                    );
                }
            }
        }
        for &v in &self.outputs {
            if !is_available(v) {
                bail!("graph output '{}' is never produced", self.values[v].name);
            }
        }
        self.topo_order()?;
        Ok(())
    }

    /// Infers dtype and shape of every value in topological order. Declared
    /// facts of graph inputs and initializers are kept.
    pub fn infer_facts(&mut self) -> Result<()> {
        for ix in self.topo_order()? {
            let node = &self.nodes[ix];
            let facts: Vec<Option<&Fact>> = node
                .inputs
                .iter()
                .map(|v| v.and_then(|v| self.values[v].fact.as_ref()))
                .collect();
            let consts: Vec<Option<&Tensor>> = node
                .inputs
                .iter()
                .map(|v| v.and_then(|v| self.initializers.get(&v)))
                .collect();
            let out = node
                .op
                .infer(&facts, &consts)
                .map_err(|e| anyhow!("node '{}' ({}): {e:#}", node.name, node.op.name()))?;
            let outputs = node.outputs.clone();
            for (v, f) in outputs.into_iter().zip(out) {
                if let Some(v) = v {
                    self.values[v].fact = Some(f);
                }
            }
        }
        Ok(())
    }

    /// Number of nodes reading each value, plus one per graph output.
    pub fn use_counts(&self) -> Vec<usize> {
        let mut uses = vec![0; self.values.len()];
        for ix in self.nodes.node_indices() {
            for v in self.nodes[ix].inputs.iter().flatten() {
                uses[*v] += 1;
            }
        }
        for &v in &self.outputs {
            uses[v] += 1;
        }
        uses
    }

    /// Op histogram: "domain:Op" (or "Op") → count, sorted by name.
    pub fn op_histogram(&self) -> Vec<(String, usize)> {
        let mut h: HashMap<String, usize> = HashMap::new();
        for ix in self.nodes.node_indices() {
            let op = &self.nodes[ix].op;
            let key = if op.domain().is_empty() {
                op.name()
            } else {
                format!("{}:{}", op.domain(), op.name())
            };
            *h.entry(key).or_default() += 1;
        }
        let mut v: Vec<_> = h.into_iter().collect();
        v.sort();
        v
    }
}

/// Editing helpers for rewrite passes.
impl Graph {
    /// Nodes reading `v` (each once, even when it reads `v` twice).
    pub fn consumers(&self, v: ValueId) -> Vec<NodeIndex> {
        self.nodes
            .node_indices()
            .filter(|&c| self.nodes[c].inputs.contains(&Some(v)))
            .collect()
    }

    /// Removes a node and its edges; its outputs lose their producer (so a
    /// later `add_node` or `add_initializer` may provide them again).
    pub fn remove_node(&mut self, ix: NodeIndex) -> Option<Node> {
        let node = self.nodes.remove_node(ix)?;
        for v in node.outputs.iter().flatten() {
            if self.values[*v].producer == Some(ix) {
                self.values[*v].producer = None;
            }
        }
        Some(node)
    }

    /// Sets input `slot` of node `ix` to `v`, keeping edges in step.
    pub fn set_input(&mut self, ix: NodeIndex, slot: usize, v: Option<ValueId>) {
        let old = self.nodes[ix].inputs[slot];
        self.nodes[ix].inputs[slot] = v;
        if let Some(old) = old {
            if !self.nodes[ix].inputs.contains(&Some(old)) {
                self.drop_edges_into(ix, old);
            }
        }
        if let Some(v) = v {
            if let Some(p) = self.values[v].producer {
                if !self.nodes.edges_connecting(p, ix).any(|e| *e.weight() == v) {
                    self.nodes.add_edge(p, ix, v);
                }
            }
        }
    }

    fn drop_edges_into(&mut self, ix: NodeIndex, v: ValueId) {
        use petgraph::visit::EdgeRef;
        let stale: Vec<_> = self
            .nodes
            .edges_directed(ix, petgraph::Direction::Incoming)
            .filter(|e| *e.weight() == v)
            .map(|e| e.id())
            .collect();
        for e in stale {
            self.nodes.remove_edge(e);
        }
    }

    /// Makes every reader of `old` read `new` instead. A graph output keeps its
    /// name: `new` takes over the name of `old` when `new` is an ordinary
    /// intermediate; otherwise an Identity node copies `new` into `old`.
    pub fn replace_uses(&mut self, old: ValueId, new: ValueId) -> Result<()> {
        if old == new {
            return Ok(());
        }
        for c in self.consumers(old) {
            let slots: Vec<usize> = (0..self.nodes[c].inputs.len())
                .filter(|&i| self.nodes[c].inputs[i] == Some(old))
                .collect();
            for i in slots {
                self.set_input(c, i, Some(new));
            }
        }
        if !self.outputs.contains(&old) {
            return Ok(());
        }
        let new_is_plain = !self.inputs.contains(&new)
            && !self.outputs.contains(&new)
            && !self.initializers.contains_key(&new)
            && self.values[old].producer.is_none();
        if new_is_plain {
            // Swap names so the graph output is still called what it was.
            let (old_name, new_name) =
                (self.values[old].name.clone(), self.values[new].name.clone());
            self.values[old].name = new_name.clone();
            self.values[new].name = old_name.clone();
            self.value_by_name.insert(old_name, new);
            self.value_by_name.insert(new_name, old);
            for o in self.outputs.iter_mut().filter(|o| **o == old) {
                *o = new;
            }
            return Ok(());
        }
        if self.values[old].producer.is_some() {
            bail!(
                "cannot reroute graph output '{}': it still has a producer",
                self.values[old].name
            );
        }
        let name = format!("{}/keep_output", self.values[old].name);
        self.add_node(Node {
            name,
            op: Op::Unary(crate::ops::Unary {
                op: crate::ops::UnaryOp::Identity,
            }),
            inputs: vec![Some(new)],
            outputs: vec![Some(old)],
        })?;
        Ok(())
    }

    /// A fresh value named after `hint` (suffixed until unique).
    pub fn fresh_value(&mut self, hint: &str) -> ValueId {
        let mut name = hint.to_string();
        let mut i = 0;
        while self.value_by_name.contains_key(&name) {
            i += 1;
            name = format!("{hint}_{i}");
        }
        self.value(&name)
    }
}
