//! Constant folding: a node whose inputs are all initializers is evaluated
//! once with the CPU reference kernels and its outputs become initializers.
//! Results larger than `max_bytes` are left alone, so that e.g. a Cast or
//! Transpose of a weight does not keep a second copy of the weight.

use crate::pattern::arg;
use crate::Rule;
use anyhow::{Context, Result};
use cellm_ir::{DType, Graph, Tensor, ValueId};
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

/// Whether folding would replace a quantized (8- or packed 4-bit) initializer
/// by a wider float one, e.g. DequantizeLinear or Cast of a weight: backends
/// dequantize inside their kernels, so the weight stays quantized. Small
/// results (zero points, a few gathered rows) still fold.
fn dequantizes_weight(args: &[Option<&Tensor>], outs: &[Tensor]) -> bool {
    let quant_bytes: usize = args
        .iter()
        .flatten()
        .filter(|t| matches!(t.dtype(), DType::U8 | DType::I8))
        .map(|t| t.bytes().len())
        .sum();
    let float_bytes: usize = outs
        .iter()
        .filter(|t| t.dtype().is_float())
        .map(|t| t.bytes().len())
        .sum();
    quant_bytes > 0 && float_bytes > quant_bytes && float_bytes > 4096
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
        if dequantizes_weight(&args, &outs) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pass::{Pass, RulePass};
    use cellm_ir::ops::DequantizeLinear;
    use cellm_ir::{Node, Op};

    /// y = DequantizeLinear(q, scale, zp) with every input an initializer.
    fn dequantize_graph(q: Tensor) -> Graph {
        let mut g = Graph::new("dq");
        let x = g.add_initializer("q", q);
        let s = g.add_initializer("scale", Tensor::scalar(0.5f32));
        let z = g.add_initializer("zp", Tensor::scalar(3u8));
        let y = g.value("y");
        let y2 = g.value("y2");
        g.add_node(Node {
            name: "dq".into(),
            op: Op::DequantizeLinear(DequantizeLinear {
                axis: 1,
                block_size: 0,
            }),
            inputs: vec![Some(x), Some(s), Some(z)],
            outputs: vec![Some(y)],
        })
        .expect("node");
        // A consumer, so that y is not a graph output (those never fold).
        g.add_node(Node {
            name: "neg".into(),
            op: Op::Unary(cellm_ir::ops::Unary {
                op: cellm_ir::ops::UnaryOp::Neg,
            }),
            inputs: vec![Some(y)],
            outputs: vec![Some(y2)],
        })
        .expect("node");
        g.outputs = vec![y2];
        g
    }

    #[test]
    fn quantized_weights_are_not_dequantized_into_float_initializers() {
        let weight = Tensor::from_vec(vec![64, 64], (0..4096).map(|i| (i % 251) as u8).collect());
        let mut g = dequantize_graph(weight);
        let folded = RulePass(ConstantFold::default()).run(&mut g).expect("fold");
        assert_eq!(folded, 0, "a 4 KiB u8 weight must stay quantized");
        assert!(g
            .initializers
            .values()
            .all(|t| t.dtype() != DType::F32 || t.len() == 1));

        // A handful of values (zero points, scales) still folds.
        let small = Tensor::from_vec(vec![2, 4], vec![1u8, 2, 3, 4, 5, 6, 7, 8]);
        let mut g = dequantize_graph(small);
        assert!(RulePass(ConstantFold::default()).run(&mut g).expect("fold") >= 1);
        let y = g.find("y").expect("y");
        let t = g.initializers.get(&y).expect("folded y");
        assert_eq!(t.f32s().expect("f32")[0], (1.0 - 3.0) * 0.5);
    }
}
