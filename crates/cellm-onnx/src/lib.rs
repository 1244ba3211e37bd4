//! ONNX importer: decodes a model (weights stay in the mmap'd file) into a
//! `cellm_ir::Graph`.
//!
//! Protobuf decoding uses hand-written prost structs (`proto`), so no
//! `protoc` is needed. The file is mmap'd and decoded from a `Bytes` that owns
//! the map: `raw_data` fields become slices of it, so weights are not copied
//! (only re-aligned when the protobuf left them misaligned for their dtype).

pub mod attr;
pub mod ops;
pub mod proto;
pub mod tensor;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use cellm_ir::{DType, Dim, Fact, Graph, Node};
use prost::Message;
use proto::{GraphProto, ModelProto, NodeProto, ValueInfoProto};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use tensor::TensorReader;

/// Default-domain opsets the importer understands (attribute/input forms of
/// every supported op are handled across this range).
pub const ONNX_OPSETS: std::ops::RangeInclusive<i64> = 11..=22;
/// The only com.microsoft opset version there is.
pub const MS_OPSET: i64 = 1;

/// Loads an ONNX model file into a validated, topologically checked graph.
/// Errors name the file, and the node, op type and domain where there is one.
pub fn load(path: &Path) -> Result<Graph> {
    let name = path.display().to_string();
    let data = cellm_ir::hugemem::map_file(path)?;
    load_bytes(data, &name, path.parent())
}

/// Loads a model from bytes. `name` prefixes every error (normally the file
/// path); `dir` is where external data files are looked up.
pub fn load_bytes(data: Bytes, name: &str, dir: Option<&Path>) -> Result<Graph> {
    if data.is_empty() {
        bail!("{name}: not a valid ONNX model: the file is empty");
    }
    // Decoding from `Bytes` (not `&[u8]`) makes prost slice `raw_data` out of
    // the buffer instead of copying it.
    let model =
        ModelProto::decode(data).map_err(|e| anyhow!("{name}: not a valid ONNX model: {e}"))?;
    import_model(&model, dir).map_err(|e| anyhow!("{name}: {e:#}"))
}

/// Normalised domain: "" for the ONNX default domain.
fn domain_key(domain: &str) -> &str {
    if domain == "ai.onnx" {
        ""
    } else {
        domain
    }
}

fn display_domain(domain: &str) -> &str {
    if domain.is_empty() {
        "ai.onnx"
    } else {
        domain
    }
}

fn import_model(model: &ModelProto, dir: Option<&Path>) -> Result<Graph> {
    // Protobuf decodes almost any byte string without error (unknown fields
    // are skipped), so check that this is a model at all.
    if model.ir_version <= 0 {
        bail!("not a valid ONNX model: no ir_version");
    }
    let g = model
        .graph
        .as_ref()
        .ok_or_else(|| anyhow!("not a valid ONNX model: no graph"))?;
    if model.opset_import.is_empty() {
        bail!("not a valid ONNX model: no opset_import");
    }

    let mut opsets: HashMap<&str, i64> = HashMap::new();
    for o in &model.opset_import {
        let d = domain_key(&o.domain);
        if d.is_empty() && !ONNX_OPSETS.contains(&o.version) {
            bail!(
                "opset ai.onnx {} is not supported (supported: {}..={})",
                o.version,
                ONNX_OPSETS.start(),
                ONNX_OPSETS.end()
            );
        }
        if d == ops::MS && o.version != MS_OPSET {
            bail!(
                "opset com.microsoft {} is not supported (supported: {MS_OPSET})",
                o.version
            );
        }
        // Other domains are refused when a node uses one (unsupported op),
        // so that a model merely declaring, say, ai.onnx.ml still loads.
        opsets.insert(d, o.version);
    }
    import_graph(g, &opsets, dir)
}

fn import_graph(g: &GraphProto, opsets: &HashMap<&str, i64>, dir: Option<&Path>) -> Result<Graph> {
    let mut graph = Graph::new(g.name.clone());
    let mut reader = TensorReader::new(dir);

    for t in &g.initializer {
        if t.name.is_empty() {
            bail!("an initializer has no name");
        }
        if graph.find(&t.name).is_some() {
            bail!("initializer '{}' is defined twice", t.name);
        }
        let tensor = reader
            .read(t)
            .with_context(|| format!("initializer '{}'", t.name))?;
        graph.add_initializer(&t.name, tensor);
    }

    // Constant nodes become initializers first, so op importers can read them
    // and nodes may reference them in any order.
    let is_constant = |n: &NodeProto| domain_key(&n.domain).is_empty() && n.op_type == "Constant";
    for (i, n) in g.node.iter().enumerate().filter(|(_, n)| is_constant(n)) {
        let node_name = node_display_name(n, i);
        let out = match n.output.as_slice() {
            [o] if !o.is_empty() => o,
            _ => bail!("node '{node_name}' (Constant): expects exactly one named output"),
        };
        if graph.find(out).is_some() {
            bail!("node '{node_name}' (Constant): value '{out}' is defined twice");
        }
        let tensor = constant_value(n, &mut reader)
            .with_context(|| format!("node '{node_name}' (Constant)"))?;
        graph.add_initializer(out, tensor);
    }

    // Graph inputs that are initializers are defaults (IR < 4 listed every
    // weight as an input); they stay initializers.
    let mut sym_counter = 0usize;
    let mut seen_inputs = HashSet::new();
    for vi in &g.input {
        if !seen_inputs.insert(vi.name.as_str()) {
            bail!("graph input '{}' is declared twice", vi.name);
        }
        if graph
            .find(&vi.name)
            .is_some_and(|v| graph.initializers.contains_key(&v))
        {
            continue;
        }
        let fact = value_fact(vi, &mut sym_counter)
            .with_context(|| format!("graph input '{}'", vi.name))?
            .ok_or_else(|| anyhow!("graph input '{}' has no tensor type", vi.name))?;
        graph.add_input(&vi.name, fact);
    }

    let mut declared_outputs = Vec::new();
    for vi in &g.output {
        if vi.name.is_empty() {
            bail!("a graph output has no name");
        }
        let fact = value_fact(vi, &mut sym_counter)
            .with_context(|| format!("graph output '{}'", vi.name))?;
        let v = graph.value(&vi.name);
        graph.outputs.push(v);
        if let Some(f) = fact {
            declared_outputs.push((v, f));
        }
    }

    for (i, n) in g.node.iter().enumerate().filter(|(_, n)| !is_constant(n)) {
        let node_name = node_display_name(n, i);
        let domain = domain_key(&n.domain);
        let opset = *opsets.get(domain).ok_or_else(|| {
            anyhow!(
                "node '{node_name}': op '{}:{}' is in a domain the model does not import",
                display_domain(domain),
                n.op_type
            )
        })?;
        let import = ops::lookup(domain, &n.op_type).ok_or_else(|| {
            anyhow!(
                "node '{node_name}': unsupported op '{}:{}' (opset {opset})",
                display_domain(domain),
                n.op_type
            )
        })?;
        let op = import(
            n,
            &ops::ImportCtx {
                opset,
                graph: &graph,
            },
        )
        .with_context(|| format!("node '{node_name}' ({})", n.op_type))?;
        let name_to_value = |graph: &mut Graph, s: &String| {
            if s.is_empty() {
                None
            } else {
                Some(graph.value(s))
            }
        };
        let inputs = n
            .input
            .iter()
            .map(|s| name_to_value(&mut graph, s))
            .collect();
        let outputs = n
            .output
            .iter()
            .map(|s| name_to_value(&mut graph, s))
            .collect();
        graph.add_node(Node {
            name: node_name.clone(),
            op,
            inputs,
            outputs,
        })?;
    }

    graph.validate()?;
    infer_facts(&mut graph)?;
    for (v, declared) in declared_outputs {
        let name = graph.value_name(v).to_string();
        let merged = merge_declared(&declared, graph.values[v].fact.as_ref())
            .with_context(|| format!("graph output '{name}'"))?;
        graph.values[v].fact = Some(merged);
    }
    Ok(graph)
}

/// A node's name for messages and the IR; unnamed nodes get `<op_type>_<index>`.
fn node_display_name(n: &NodeProto, index: usize) -> String {
    if n.name.is_empty() {
        format!("{}_{index}", n.op_type)
    } else {
        n.name.clone()
    }
}

/// The value of a Constant node (attributes `value`, `value_float(s)`,
/// `value_int(s)`).
fn constant_value(n: &NodeProto, reader: &mut TensorReader) -> Result<cellm_ir::Tensor> {
    use cellm_ir::Tensor;
    let present: Vec<&str> = attr::names(n).collect();
    if present.len() != 1 {
        bail!("expects exactly one value attribute, got {present:?}");
    }
    Ok(match present[0] {
        "value" => {
            let t =
                attr::tensor(n, "value")?.ok_or_else(|| anyhow!("attribute 'value' is missing"))?;
            reader.read(t).context("attribute 'value'")?
        }
        "value_float" => Tensor::scalar(attr::float_or(n, "value_float", 0.0)?),
        "value_int" => Tensor::scalar(attr::int_or(n, "value_int", 0)?),
        "value_floats" => {
            let v = attr::floats(n, "value_floats")?.unwrap_or_default();
            Tensor::from_vec(vec![v.len()], v)
        }
        "value_ints" => {
            let v = attr::ints(n, "value_ints")?.unwrap_or_default();
            Tensor::from_vec(vec![v.len()], v)
        }
        other => {
            bail!("attribute '{other}' is not supported (string and sparse constants are not)")
        }
    })
}

/// Dtype and symbolic shape of a declared value; `None` when it has no tensor
/// type. Dims without a value or name get a fresh symbol `?<n>`.
fn value_fact(vi: &ValueInfoProto, sym_counter: &mut usize) -> Result<Option<Fact>> {
    let Some(tt) = vi.r#type.as_ref().and_then(|t| t.tensor_type.as_ref()) else {
        return Ok(None);
    };
    let dtype = DType::from_onnx(tt.elem_type).ok_or_else(|| {
        anyhow!(
            "unsupported dtype {} ({})",
            tt.elem_type,
            tensor::onnx_type_name(tt.elem_type)
        )
    })?;
    let shape = tt
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| {
                    use proto::tensor_shape_proto::dimension::Value;
                    Ok(match &d.value {
                        Some(Value::DimValue(n)) => Dim::Known(
                            usize::try_from(*n).map_err(|_| anyhow!("negative dim {n}"))?,
                        ),
                        Some(Value::DimParam(p)) if !p.is_empty() => Dim::Sym(p.clone()),
                        _ => {
                            *sym_counter += 1;
                            Dim::Sym(format!("?{sym_counter}"))
                        }
                    })
                })
                .collect::<Result<Vec<Dim>>>()
        })
        .transpose()?;
    Ok(Some(Fact::new(dtype, shape)))
}

/// Runs shape/dtype inference. When an op's inference fails, it is retried
/// with the input shapes forgotten: if that works, the failure was about
/// shapes (possibly a gap in symbolic inference), so the node's outputs keep
/// just their dtype and a warning is logged. If it still fails, the error is
/// about dtypes or structure and is fatal, naming the node.
fn infer_facts(graph: &mut Graph) -> Result<()> {
    if graph.infer_facts().is_ok() {
        return Ok(());
    }
    for ix in graph.topo_order()? {
        let node = &graph.nodes[ix];
        let facts: Vec<Option<&Fact>> = node
            .inputs
            .iter()
            .map(|v| v.and_then(|v| graph.values[v].fact.as_ref()))
            .collect();
        let consts: Vec<Option<&cellm_ir::Tensor>> = node
            .inputs
            .iter()
            .map(|v| v.and_then(|v| graph.initializers.get(&v)))
            .collect();
        let out = match node.op.infer(&facts, &consts) {
            Ok(out) => out,
            Err(e) => {
                let shapeless: Vec<Option<Fact>> = facts
                    .iter()
                    .map(|f| f.map(|f| Fact::new(f.dtype, None)))
                    .collect();
                let shapeless: Vec<Option<&Fact>> = shapeless.iter().map(Option::as_ref).collect();
                match node.op.infer(&shapeless, &consts) {
                    Ok(out) => {
                        tracing::warn!(
                            "node '{}' ({}): shape inference failed, output shapes left unknown: {e:#}",
                            node.name,
                            node.op.name()
                        );
                        out
                    }
                    Err(_) => bail!("node '{}' ({}): {e:#}", node.name, node.op.name()),
                }
            }
        };
        let outputs = node.outputs.clone();
        for (v, f) in outputs.into_iter().zip(out) {
            if let Some(v) = v {
                graph.values[v].fact = Some(f);
            }
        }
    }
    Ok(())
}

/// A graph output's fact: the declared one, refined by what inference knows.
/// Known dims win over symbols, declared symbol names over inferred ones. A
/// dtype mismatch is an error; a shape conflict keeps the declaration (the
/// model's author states it) and logs a warning.
fn merge_declared(declared: &Fact, inferred: Option<&Fact>) -> Result<Fact> {
    let Some(inferred) = inferred else {
        return Ok(declared.clone());
    };
    if inferred.dtype != declared.dtype {
        bail!(
            "declared {} but the graph computes {}",
            declared.dtype,
            inferred.dtype
        );
    }
    let shape = match (&declared.shape, &inferred.shape) {
        (Some(d), Some(i)) if d.len() == i.len() => {
            let mut out = Vec::with_capacity(d.len());
            for (dd, id) in d.iter().zip(i) {
                out.push(match (dd, id) {
                    (Dim::Known(a), Dim::Known(b)) if a != b => {
                        tracing::warn!(
                            "declared dim {a} but inference says {b}; keeping the declaration"
                        );
                        dd.clone()
                    }
                    (Dim::Sym(_), Dim::Known(_)) => id.clone(),
                    _ => dd.clone(),
                });
            }
            Some(out)
        }
        (Some(d), Some(i)) => {
            tracing::warn!(
                "declared rank {} but inference says {}; keeping the declaration",
                d.len(),
                i.len()
            );
            Some(d.clone())
        }
        (Some(d), None) => Some(d.clone()),
        (None, i) => i.clone(),
    };
    Ok(Fact::new(declared.dtype, shape))
}
