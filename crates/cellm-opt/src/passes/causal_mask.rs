//! Causal attention from an all-ones mask: exports build an additive causal
//! attention bias [B|1, H|1, S, T] from `attention_mask` (the onnxruntime-genai
//! builder's `attn_mask_reformat` preamble; the torchscript export's chain
//! also reads position_ids), a handful of small kernels per run. When the
//! runtime guarantees the mask is all ones and the positions are P..P+S (a KV
//! decoder never pads), that bias is the plain causal mask, which
//! MultiHeadAttention computes itself (`unidirectional`: keys after T - S + s
//! get f32::MIN, or are skipped on the GPU). So the bias input is dropped,
//! `unidirectional` set, and DCE removes the preamble.
//!
//! Changes what the graph computes for masks with zeros, so like `kv_cache`
//! it is applied by the decoder runtime ([`apply`]), not the default pipeline.
//!
//! Guard (at a grouped MultiHeadAttention, `kv_num_heads` set, where both
//! backends take the causal past as T - S; no key_padding_mask): the f32
//! attention bias depends only on the mask and positions inputs, constants
//! and shapes (Shape nodes, evaluated from the inferred shapes), and
//! evaluated on the CPU for several (batch, S, P) with an all-ones mask and
//! positions P..P+S it is exactly the causal bias: 0 for key t <= P + s,
//! <= -1e30 (or -inf) otherwise. Added to finite
//! scores, such values and f32::MIN both give softmax weight exactly 0
//! (exp underflows), and every row keeps key 0, so the outputs agree.

use crate::pattern::{arg, producer};
use crate::Rule;
use anyhow::Result;
use cellm_ir::{DType, Dim, Fact, Graph, Node, Op, Tensor, ValueId};
use petgraph::stable_graph::NodeIndex;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

/// (batch, S, P) the guard evaluates the bias at. Only at S > 1 with P > 0
/// (a prefill after a past) may the evaluation fail: the builder's preamble
/// supports only P = 0 or S = 1 there.
const PROBES: [(usize, usize, usize); 7] = [
    (1, 1, 0),
    (1, 1, 5),
    (1, 3, 4),
    (1, 6, 0),
    (2, 1, 4),
    (2, 3, 0),
    (2, 2, 3),
];

/// The most nodes a mask subgraph may have (the builder's has ~50).
const MAX_NODES: usize = 400;

/// The inputs the runtime guarantees: an all-ones mask [B, P + S] and
/// positions [B, S] = P..P+S in every row.
#[derive(Clone, Copy)]
pub struct Fed {
    pub mask: ValueId,
    pub positions: Option<ValueId>,
}

/// Scores at or below this are "masked": exp(x - max) is 0 in f32 for any
/// realistic max.
const MASKED: f32 = -1e30;

pub struct CausalMask {
    fed: Fed,
    /// Verdict per bias value (every layer reads the same one).
    seen: RefCell<HashMap<ValueId, bool>>,
}

impl Rule for CausalMask {
    type Match = NodeIndex;
    fn name(&self) -> &'static str {
        "causal_mask"
    }
    fn guard(&self, g: &Graph, ix: NodeIndex) -> Option<NodeIndex> {
        let n = &g.nodes[ix];
        let Op::MultiHeadAttention(op) = &n.op else {
            return None;
        };
        if op.kv_num_heads.is_none() || arg(n, 4).is_some() {
            return None;
        }
        let bias = arg(n, 5)?;
        if let Some(&ok) = self.seen.borrow().get(&bias) {
            return ok.then_some(ix);
        }
        let ok = is_causal_bias(g, bias, self.fed, op.num_heads).unwrap_or(false);
        self.seen.borrow_mut().insert(bias, ok);
        ok.then_some(ix)
    }
    fn patch(&self, g: &mut Graph, ix: NodeIndex) -> Result<()> {
        if let Op::MultiHeadAttention(op) = &mut g.nodes[ix].op {
            op.unidirectional = true;
        }
        g.set_input(ix, 5, None);
        Ok(())
    }
}

/// The bias subgraph copied into a graph of its own: its inputs are the
/// fed inputs and the values whose shapes it reads. None when it reads any
/// other input's values or is too large.
fn subgraph(
    g: &Graph,
    bias: ValueId,
    fed: Fed,
    bindings: &HashMap<String, usize>,
) -> Option<Graph> {
    let mut nodes = HashSet::new();
    let mut leaves = HashSet::new();
    let mut consts = HashSet::new();
    let mut stack = vec![bias];
    let mut visited = HashSet::new();
    while let Some(v) = stack.pop() {
        if !visited.insert(v) {
            continue;
        }
        if g.initializers.contains_key(&v) {
            consts.insert(v);
            continue;
        }
        if g.inputs.contains(&v) {
            // Only the fed inputs' values; others only through Shape (below).
            if v != fed.mask && Some(v) != fed.positions {
                return None;
            }
            leaves.insert(v);
            continue;
        }
        let (ix, n) = producer(g, v)?;
        nodes.insert(ix);
        if nodes.len() > MAX_NODES {
            return None;
        }
        if let Op::Shape(_) = n.op {
            // Any value's shape, from its inferred fact (the optimiser
            // relies on those too); the sub graph takes it as an input.
            let x = arg(n, 0)?;
            let resolved = g.values[x]
                .fact
                .as_ref()
                .and_then(|f| f.shape.as_ref())
                .is_some_and(|sh| sh.iter().all(|d| resolve(d, bindings).is_some()));
            if g.inputs.contains(&x) || resolved {
                leaves.insert(x);
                continue;
            }
        }
        stack.extend(n.inputs.iter().flatten().copied());
    }
    let mut sub = Graph::new("causal_mask_probe");
    for &v in &leaves {
        sub.add_input(g.value_name(v), g.values[v].fact.clone()?);
    }
    for &v in &consts {
        sub.add_initializer(g.value_name(v), g.initializers[&v].clone());
    }
    for ix in g.topo_order().ok()? {
        if !nodes.contains(&ix) {
            continue;
        }
        let n = &g.nodes[ix];
        let map = |vs: &[Option<ValueId>], sub: &mut Graph| -> Vec<Option<ValueId>> {
            vs.iter()
                .map(|v| v.map(|v| sub.value(g.value_name(v))))
                .collect()
        };
        let inputs = map(&n.inputs, &mut sub);
        let outputs = map(&n.outputs, &mut sub);
        sub.add_node(Node {
            name: n.name.clone(),
            op: n.op.clone(),
            inputs,
            outputs,
        })
        .ok()?;
    }
    let out = sub.find(g.value_name(bias))?;
    sub.outputs.push(out);
    Some(sub)
}

/// Symbol → size for one probe, from the roles of the decoder inputs:
/// inputs_embeds / input_ids / position_ids [B, S, ..], attention_mask
/// [B, P + S], past inputs [B, P, X] (cache layout) or [B, H, P, D].
/// None when a symbol would get two sizes.
fn probe_bindings(
    g: &Graph,
    mask: ValueId,
    (b, s, p): (usize, usize, usize),
) -> Option<HashMap<String, usize>> {
    let mut out: HashMap<String, usize> = HashMap::new();
    let mut bind = |d: &Dim, n: usize| -> Option<()> {
        if let Dim::Sym(sym) = d {
            if *out.entry(sym.clone()).or_insert(n) != n {
                return None;
            }
        }
        Some(())
    };
    for &v in &g.inputs {
        let Some(shape) = g.values[v].fact.as_ref().and_then(|f| f.shape.as_ref()) else {
            continue;
        };
        let name = g.value_name(v);
        let dims: Vec<(usize, usize)> = if v == mask {
            vec![(0, b), (1, p + s)]
        } else if matches!(name, "inputs_embeds" | "input_ids" | "position_ids") {
            vec![(0, b), (1, s)]
        } else if name.starts_with("past_key_values.") {
            match shape.len() {
                3 => vec![(0, b), (1, p)],
                4 => vec![(0, b), (2, p)],
                _ => vec![],
            }
        } else {
            vec![]
        };
        for (i, n) in dims {
            bind(shape.get(i)?, n)?;
        }
    }
    Some(out)
}

/// A dim under `bindings`; shape inference names sums "a+b".
fn resolve(d: &Dim, bindings: &HashMap<String, usize>) -> Option<usize> {
    match d {
        Dim::Known(n) => Some(*n),
        Dim::Sym(s) => s
            .split('+')
            .map(|part| bindings.get(part).copied().or_else(|| part.parse().ok()))
            .sum(),
    }
}

/// True when `bias` evaluates to exactly the causal bias at every probe.
fn is_causal_bias(g: &Graph, bias: ValueId, fed: Fed, heads: usize) -> Option<bool> {
    if g.values[bias].fact.as_ref()?.dtype != DType::F32 {
        return Some(false);
    }
    let sub = subgraph(g, bias, fed, &probe_bindings(g, fed.mask, PROBES[0])?)?;
    for probe in PROBES {
        let (b, s, p) = probe;
        let bindings = probe_bindings(g, fed.mask, probe)?;
        let mut feeds = HashMap::new();
        for &v in &sub.inputs {
            let name = sub.value_name(v).to_string();
            let f: &Fact = sub.values[v].fact.as_ref()?;
            let dims = f
                .shape
                .as_ref()?
                .iter()
                .map(|d| resolve(d, &bindings))
                .collect::<Option<Vec<usize>>>()?;
            let t = if name == g.value_name(fed.mask) {
                if f.dtype != DType::I64 || dims != [b, p + s] {
                    return Some(false);
                }
                Tensor::from_vec(dims, vec![1i64; b * (p + s)])
            } else if Some(name.as_str()) == fed.positions.map(|v| g.value_name(v)) {
                if f.dtype != DType::I64 || dims != [b, s] {
                    return Some(false);
                }
                let row = (p as i64..(p + s) as i64).collect::<Vec<_>>();
                Tensor::from_vec(dims, row.repeat(b))
            } else {
                // Only its shape is read.
                Tensor::zeros(f.dtype, dims)
            };
            feeds.insert(name, t);
        }
        let out = cellm_cpu::run(&sub, &feeds);
        let out = match out {
            Ok(out) => out,
            // The builder's bias is only defined for a prefill (P = 0) or
            // single steps (S = 1); where the original fails, causal
            // attention computes more, not something different.
            Err(_) if s > 1 && p > 0 => continue,
            Err(_) => return Some(false),
        };
        let t = out.get(g.value_name(bias))?;
        let shape = t.shape();
        let total = p + s;
        if shape.len() != 4
            || !(shape[0] == 1 || shape[0] == b)
            || !(shape[1] == 1 || shape[1] == heads)
            || shape[2..] != [s, total]
        {
            return Some(false);
        }
        let vals = t.to_f32_vec().ok()?;
        for (i, &x) in vals.iter().enumerate() {
            let (row, key) = ((i / total) % s, i % total);
            let ok = if key <= p + row {
                x == 0.0
            } else {
                x <= MASKED
            };
            if !ok {
                return Some(false);
            }
        }
    }
    Some(true)
}

/// Rewrites the attentions whose bias is the causal mask built from the
/// input `mask_name` (and `positions_name`); returns how many. Callers must
/// guarantee that on every run the mask is all ones and the positions are
/// P..P+S (P: the keys before this run's S queries).
pub fn apply(g: &mut Graph, mask_name: &str, positions_name: Option<&str>) -> Result<usize> {
    use crate::Pass;
    let input = |name: &str| g.find(name).filter(|v| g.inputs.contains(v));
    let Some(mask) = input(mask_name) else {
        return Ok(0);
    };
    let positions = positions_name.and_then(input);
    let n = crate::RulePass(CausalMask {
        fed: Fed { mask, positions },
        seen: RefCell::new(HashMap::new()),
    })
    .run(g)?;
    if n > 0 {
        g.infer_facts()?;
        crate::RulePass(super::dce::Dce).run(g)?;
        super::dce::prune_initializers(g);
        g.infer_facts()?;
        g.validate()?;
    }
    Ok(n)
}
