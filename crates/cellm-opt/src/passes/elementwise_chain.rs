//! Elementwise chain fusion: connected float Unary/Binary nodes of one dtype
//! (f32 or f16; ops in `FusedElementwise`'s set) become one
//! `FusedElementwise` node, one kernel instead of one per op. Starting at a
//! node (consumers are visited first, so the start is a chain's last op), it
//! greedily takes producers whose output is read exactly once (by the chain)
//! and is not a graph output, while the program keeps within the op's limits
//! (inputs, instructions, live registers). One-element constants become
//! immediates; everything else entering the chain becomes an input. It fuses
//! only when that removes a node, and only when the inputs alone broadcast to
//! the chain's output shape (an immediate must not widen the rank).
//!
//! It runs after every pattern fusion has settled (`late`), so it only takes
//! what Gelu, SiluMul, the norms, rotary and epilogue fusions leave.

use crate::pattern::{dtype, out, producer, readers, replace_node, shape};
use crate::Rule;
use anyhow::{Context, Result};
use cellm_ir::ops::fused_elementwise::{MAX_INPUTS, MAX_INSTRS};
use cellm_ir::ops::{BinaryOp, FusedElementwise, Instr};
use cellm_ir::{DType, Graph, Node, Op, ValueId};
use petgraph::stable_graph::NodeIndex;
use std::collections::HashMap;

/// Live values a program may need at once (the GPU kernel's registers).
const MAX_LIVE: usize = 16;

pub struct ElementwiseChain;

pub struct Match {
    root: NodeIndex,
    interior: Vec<NodeIndex>,
    inputs: Vec<ValueId>,
    program: Vec<Instr>,
}

/// Value of a one-element initializer (float, or an integer Pow exponent).
fn scalar(g: &Graph, v: ValueId) -> Option<f32> {
    let t = g.initializers.get(&v)?;
    if t.len() != 1 || t.dtype() == DType::Bool {
        return None;
    }
    t.to_f64_vec().first().map(|&x| x as f32)
}

/// The output dtype of node `ix` when the pass may merge it: an op of the
/// fused set with an f32/f16 output, reading values of that dtype (or
/// scalar constants).
fn member(g: &Graph, ix: NodeIndex) -> Option<DType> {
    let n = &g.nodes[ix];
    let arity = match &n.op {
        Op::Unary(u) if FusedElementwise::unary_ok(u.op) => 1,
        Op::Binary(b) if FusedElementwise::binary_ok(b.op) => 2,
        _ => return None,
    };
    if n.inputs.len() != arity || n.outputs.len() != 1 {
        return None;
    }
    let dt = dtype(g, out(n, 0)?)?;
    if !matches!(dt, DType::F32 | DType::F16) {
        return None;
    }
    let pow = matches!(&n.op, Op::Binary(b) if b.op == BinaryOp::Pow);
    for (slot, v) in n.inputs.iter().enumerate() {
        let v = (*v)?;
        let same = dtype(g, v) == Some(dt);
        let float_const = same && scalar(g, v).is_some();
        let exponent = pow && slot == 1 && scalar(g, v).is_some();
        if !(same || float_const || exponent) {
            return None;
        }
    }
    Some(dt)
}

/// Tensor leaves of the region rooted at `root`, in first-use order.
fn leaves(g: &Graph, region: &[NodeIndex], v: ValueId, acc: &mut Vec<ValueId>) {
    match producer(g, v) {
        Some((p, n)) if region.contains(&p) => {
            for x in n.inputs.iter().flatten() {
                leaves(g, region, *x, acc);
            }
        }
        _ => {
            if scalar(g, v).is_none() && !acc.contains(&v) {
                acc.push(v);
            }
        }
    }
}

/// Emits the instructions computing `v`; returns its register.
fn emit(
    g: &Graph,
    region: &[NodeIndex],
    v: ValueId,
    inputs: &[ValueId],
    prog: &mut Vec<Instr>,
    consts: &mut HashMap<u32, u16>,
) -> Option<u16> {
    let reg = |prog: &Vec<Instr>| (inputs.len() + prog.len()) as u16;
    if let Some((p, n)) = producer(g, v).filter(|(p, _)| region.contains(p)) {
        let _ = p;
        let mut ops = Vec::with_capacity(2);
        for x in n.inputs.iter().flatten() {
            ops.push(emit(g, region, *x, inputs, prog, consts)?);
        }
        let ins = match (&n.op, ops.as_slice()) {
            (Op::Unary(u), [x]) => Instr::Unary { op: u.op, x: *x },
            (Op::Binary(b), [a, c]) => Instr::Binary {
                op: b.op,
                a: *a,
                b: *c,
            },
            _ => return None,
        };
        let r = reg(prog);
        prog.push(ins);
        return Some(r);
    }
    if let Some(c) = scalar(g, v) {
        if let Some(&r) = consts.get(&c.to_bits()) {
            return Some(r);
        }
        let r = reg(prog);
        prog.push(Instr::Const(c));
        consts.insert(c.to_bits(), r);
        return Some(r);
    }
    inputs.iter().position(|&x| x == v).map(|k| k as u16)
}

/// Most values live at once while the program runs (inputs stay live).
fn peak_live(n_in: usize, prog: &[Instr]) -> usize {
    let total = n_in + prog.len();
    let mut last = vec![usize::MAX; total];
    for (j, ins) in prog.iter().enumerate() {
        match *ins {
            Instr::Const(_) => {}
            Instr::Unary { x, .. } => last[x as usize] = j,
            Instr::Binary { a, b, .. } => {
                last[a as usize] = j;
                last[b as usize] = j;
            }
        }
    }
    let mut live = 0usize;
    let mut peak = n_in;
    for (j, _) in prog.iter().enumerate() {
        // Operands dying here free their registers before the result takes one.
        live -= (n_in..n_in + j).filter(|&r| last[r] == j).count();
        live += 1;
        peak = peak.max(n_in + live);
    }
    peak
}

/// The program of `region` (rooted at `root`) when it fits the op's limits.
fn build(g: &Graph, root: NodeIndex, region: &[NodeIndex]) -> Option<(Vec<ValueId>, Vec<Instr>)> {
    let y = out(&g.nodes[root], 0)?;
    let mut inputs = Vec::new();
    leaves(g, region, y, &mut inputs);
    if inputs.is_empty() || inputs.len() > MAX_INPUTS {
        return None;
    }
    let mut prog = Vec::new();
    emit(g, region, y, &inputs, &mut prog, &mut HashMap::new())?;
    (prog.len() <= MAX_INSTRS && peak_live(inputs.len(), &prog) <= MAX_LIVE)
        .then_some((inputs, prog))
}

impl Rule for ElementwiseChain {
    type Match = Match;
    fn name(&self) -> &'static str {
        "elementwise_chain"
    }

    /// Chains are taken from their last op.
    fn reverse(&self) -> bool {
        true
    }

    fn late(&self) -> bool {
        true
    }

    fn guard(&self, g: &Graph, root: NodeIndex) -> Option<Match> {
        let dt = member(g, root)?;
        let mut region = vec![root];
        loop {
            let mut grew = false;
            let mut i = 0;
            while i < region.len() {
                let n = &g.nodes[region[i]];
                for v in n.inputs.iter().flatten() {
                    let Some((p, _)) = producer(g, *v) else {
                        continue;
                    };
                    // readers() counts graph outputs too.
                    if region.contains(&p) || readers(g, *v) != 1 || member(g, p) != Some(dt) {
                        continue;
                    }
                    let mut trial = region.clone();
                    trial.push(p);
                    if build(g, root, &trial).is_some() {
                        region = trial;
                        grew = true;
                    }
                }
                i += 1;
            }
            if !grew {
                break;
            }
        }
        if region.len() < 2 {
            return None;
        }
        let (inputs, program) = build(g, root, &region)?;
        // The inputs alone must give the output shape (immediates drop out).
        let mut s = shape(g, inputs[0])?.to_vec();
        for &x in &inputs[1..] {
            s = cellm_ir::shape::broadcast_sym(&s, shape(g, x)?).ok()?;
        }
        if s.as_slice() != shape(g, out(&g.nodes[root], 0)?)? {
            return None;
        }
        Some(Match {
            root,
            interior: region[1..].to_vec(),
            inputs,
            program,
        })
    }

    fn patch(&self, g: &mut Graph, m: Match) -> Result<()> {
        let y = out(&g.nodes[m.root], 0).context("chain output")?;
        let name = format!("{}/fused_elementwise", g.nodes[m.root].name);
        replace_node(
            g,
            m.root,
            Node {
                name,
                op: Op::FusedElementwise(FusedElementwise { program: m.program }),
                inputs: m.inputs.into_iter().map(Some).collect(),
                outputs: vec![Some(y)],
            },
        )?;
        // Read only inside the chain, so now unread.
        for ix in m.interior {
            g.remove_node(ix);
        }
        Ok(())
    }
}
