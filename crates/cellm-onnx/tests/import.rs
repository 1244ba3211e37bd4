//! Importer tests: the micro fixtures (checked against `onnx_inspect.json`,
//! written by the python onnx package), small models written by python onnx
//! (`tests/data/make_test_models.py`), models built here with the prost
//! structs, and malformed files.

use bytes::Bytes;
use cellm_ir::{DType, Dim, Graph, Op};
use cellm_onnx::proto::{
    attribute_type, tensor_shape_proto, type_proto, AttributeProto, GraphProto, ModelProto,
    NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use prost::Message;
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fixture file: `<workspace>/models/<rel>` if present, else the shared
/// fixture folder next to the workspace.
fn fixture(rel: &str) -> PathBuf {
    let local = workspace_root().join("models").join(rel);
    if local.exists() {
        return local;
    }
    workspace_root().join("../shared/fixtures").join(rel)
}

fn test_data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

/// A fresh scratch folder (no tempfile crate in the workspace).
fn scratch_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("cellm-onnx-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn err_text(r: anyhow::Result<Graph>) -> String {
    match r {
        Ok(_) => panic!("expected an error, the model loaded"),
        Err(e) => format!("{e:#}"),
    }
}

// ---------------------------------------------------------------- fixtures

fn dtype_from_inspect(s: &str) -> DType {
    match s {
        "float" => DType::F32,
        "float16" => DType::F16,
        "double" => DType::F64,
        "int64" => DType::I64,
        "int32" => DType::I32,
        "int8" => DType::I8,
        "uint8" => DType::U8,
        "bool" => DType::Bool,
        other => panic!("onnx_inspect.json dtype '{other}' not mapped in the test"),
    }
}

fn dims_from_inspect(v: &serde_json::Value) -> Vec<Dim> {
    v.as_array()
        .expect("shape array")
        .iter()
        .map(|d| match d {
            serde_json::Value::Number(n) => Dim::Known(n.as_u64().expect("dim") as usize),
            serde_json::Value::String(s) => Dim::Sym(s.clone()),
            other => panic!("odd dim {other}"),
        })
        .collect()
}

fn check_io(g: &Graph, ids: &[usize], expected: &serde_json::Value, what: &str, file: &str) {
    let expected = expected.as_array().expect("io list");
    assert_eq!(ids.len(), expected.len(), "{file}: number of graph {what}s");
    for (&v, e) in ids.iter().zip(expected) {
        let name = e["name"].as_str().expect("name");
        assert_eq!(g.value_name(v), name, "{file}: {what} order/name");
        let fact = g.values[v]
            .fact
            .as_ref()
            .unwrap_or_else(|| panic!("{file}: {what} '{name}' has no fact"));
        assert_eq!(
            fact.dtype,
            dtype_from_inspect(e["dtype"].as_str().expect("dtype")),
            "{file}: {what} '{name}' dtype"
        );
        assert_eq!(
            fact.shape.as_ref(),
            Some(&dims_from_inspect(&e["shape"])),
            "{file}: {what} '{name}' shape"
        );
    }
}

/// Every micro model listed in onnx_inspect.json: files whose ops are all
/// supported must import with the listed I/O and node count (Constant nodes
/// become initializers); the others must fail naming an unsupported op.
#[test]
fn micro_fixtures_match_onnx_inspect() {
    let inspect_path = fixture("micro/onnx_inspect.json");
    let inspect: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&inspect_path).expect("read onnx_inspect.json"))
            .expect("parse");
    let supported = |op: &str| {
        let (domain, op_type) = op.split_once(':').unwrap_or(("", op));
        op_type == "Constant" || cellm_onnx::ops::lookup(domain, op_type).is_some()
    };
    let must_import = [
        "micro/onnx/decoder_model_merged.onnx",
        "micro/onnx/decoder_model_merged_fp16.onnx",
        "micro/onnx/embed_tokens.onnx",
        "micro/onnx/embed_tokens_fp16.onnx",
        "micro/onnx/vision_encoder.onnx",
        "micro/onnx/vision_encoder_fp16.onnx",
        "micro/onnx_torchscript/decoder_model_merged.onnx",
    ];
    let (mut imported, mut refused) = (Vec::new(), Vec::new());
    for entry in inspect.as_array().expect("list") {
        let file = entry["file"].as_str().expect("file");
        let path = fixture(file);
        if !path.exists() {
            // `_quantized` and some embed variants are documented as not stored.
            assert!(!must_import.contains(&file), "{file} is missing");
            continue;
        }
        let ops = entry["op_types"].as_object().expect("op_types");
        let unsupported: Vec<&str> = ops
            .keys()
            .map(String::as_str)
            .filter(|op| !supported(op))
            .collect();
        if unsupported.is_empty() {
            let g = cellm_onnx::load(&path).unwrap_or_else(|e| panic!("{file}: {e:#}"));
            check_io(&g, &g.inputs, &entry["inputs"], "input", file);
            check_io(&g, &g.outputs, &entry["outputs"], "output", file);
            let constants = ops.get("Constant").and_then(|c| c.as_u64()).unwrap_or(0);
            let nodes = entry["nodes"].as_u64().expect("nodes");
            assert_eq!(
                g.nodes.node_count() as u64,
                nodes - constants,
                "{file}: node count"
            );
            g.topo_order().unwrap_or_else(|e| panic!("{file}: {e:#}"));
            // Same op histogram as onnx reports, Constant aside.
            for (op, count) in ops {
                if op == "Constant" {
                    continue;
                }
                let got = g
                    .op_histogram()
                    .into_iter()
                    .find(|(k, _)| k == op)
                    .map(|(_, c)| c)
                    .unwrap_or(0);
                assert_eq!(
                    got as u64,
                    count.as_u64().expect("count"),
                    "{file}: count of {op}"
                );
            }
            imported.push(file);
        } else {
            let msg = err_text(cellm_onnx::load(&path));
            assert!(
                msg.contains(&path.display().to_string()),
                "{file}: error does not name the file: {msg}"
            );
            assert!(msg.contains("unsupported op"), "{file}: {msg}");
            assert!(
                unsupported.iter().any(|op| {
                    let (d, o) = op.split_once(':').unwrap_or(("ai.onnx", op));
                    msg.contains(&format!("'{d}:{o}'"))
                }),
                "{file}: error names none of {unsupported:?}: {msg}"
            );
            refused.push(file);
        }
    }
    for f in must_import {
        assert!(imported.contains(&f), "{f} was not imported");
    }
    // The quantized variants (issue 7) import like the float ones.
    for variant in [
        "_q4.onnx",
        "_q4f16.onnx",
        "_int8.onnx",
        "_uint8.onnx",
        "_bnb4.onnx",
    ] {
        assert!(
            imported.iter().any(|f| f.ends_with(variant)),
            "no {variant} file was imported"
        );
    }
    eprintln!("imported {imported:?}\nrefused {refused:?}");
}

/// The builder's decoder is not topologically sorted; the importer sorts it
/// and keeps the com.microsoft attributes.
#[test]
fn decoder_is_sorted_and_keeps_contrib_attributes() {
    let path = fixture("micro/onnx/decoder_model_merged.onnx");
    let g = cellm_onnx::load(&path).expect("load");
    let order = g.topo_order().expect("topo order");
    assert_eq!(order.len(), g.nodes.node_count());
    // Producers precede consumers in the order.
    let pos: std::collections::HashMap<_, _> =
        order.iter().enumerate().map(|(i, &ix)| (ix, i)).collect();
    for &ix in &order {
        for v in g.nodes[ix].inputs.iter().flatten() {
            if let Some(p) = g.values[*v].producer {
                assert!(
                    pos[&p] < pos[&ix],
                    "'{}' runs before its producer",
                    g.nodes[ix].name
                );
            }
        }
    }
    let mha: Vec<_> = g
        .nodes
        .node_weights()
        .filter_map(|n| match &n.op {
            Op::MultiHeadAttention(m) => Some(m.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(mha.len(), 2);
    for m in mha {
        // micro: 4 heads, head_dim 8 → scale 1/sqrt(8) as the builder wrote it.
        assert_eq!(m.num_heads, 4);
        assert!((m.scale.expect("scale") - 1.0 / 8f32.sqrt()).abs() < 1e-6);
        assert_eq!(m.mask_filter_value, -10000.0);
        assert!(!m.unidirectional);
    }
    // The logits weight: vocab 49280 x hidden 32 somewhere among initializers.
    assert!(g
        .initializers
        .values()
        .any(|t| t.len() == 49280 * 32 && t.dtype() == DType::F32));
}

/// raw_data decoded from `Bytes` is a slice of the buffer, and the tensor
/// keeps it whenever the slice is aligned for its dtype (no copy).
#[test]
fn weights_are_not_copied() {
    let path = fixture("micro/onnx/decoder_model_merged.onnx");
    let data = Bytes::from(std::fs::read(&path).expect("read"));
    let base = data.as_ptr() as usize;
    let range = base..base + data.len();
    let model = ModelProto::decode(data.clone()).expect("decode");
    let g = cellm_onnx::load_bytes(data.clone(), "decoder", None).expect("load");
    let (mut kept, mut realigned) = (0, 0);
    for t in &model.graph.expect("graph").initializer {
        let raw = t.raw_data.as_ptr() as usize;
        assert!(
            range.contains(&raw),
            "raw_data of '{}' was copied by prost",
            t.name
        );
        let tensor = &g.initializers[&g.find(&t.name).expect("init")];
        let size = tensor.dtype().size();
        let now = tensor.bytes().as_ptr() as usize;
        if raw.checked_rem(size) == Some(0) {
            assert_eq!(now, raw, "'{}' was copied though aligned", t.name);
            kept += 1;
        } else {
            assert_eq!(
                now.checked_rem(size),
                Some(0),
                "'{}' copy is misaligned",
                t.name
            );
            realigned += 1;
        }
        assert_eq!(&tensor.bytes()[..], &t.raw_data[..], "'{}' content", t.name);
    }
    // Both cases occur in this file (alignment inside protobuf is chance).
    assert!(
        kept > 0 && realigned > 0,
        "kept {kept}, realigned {realigned}"
    );
}

// -------------------------------------------- models written by python onnx

#[test]
fn external_data_is_read_from_the_model_folder() {
    let g = cellm_onnx::load(&test_data("external/model.onnx")).expect("load");
    let w = &g.initializers[&g.find("w").expect("w")];
    assert_eq!(w.shape(), &[2, 3]);
    assert_eq!(w.f32s().expect("f32"), &[-1.0, -0.5, 0.0, 0.5, 1.0, 1.5]);
    // Stored at offset 24 of the same file.
    let b = &g.initializers[&g.find("b").expect("b")];
    assert_eq!(b.i64s().expect("i64"), &[10, 20, 30]);
    assert_eq!(g.inputs.len(), 1);
    assert_eq!(
        g.values[g.inputs[0]].fact.as_ref().expect("fact").shape,
        Some(vec![Dim::Sym("n".into()), Dim::Known(3)])
    );

    // Without the folder (load_bytes with dir None) external data is an error.
    let data = Bytes::from(std::fs::read(test_data("external/model.onnx")).expect("read"));
    let msg = err_text(cellm_onnx::load_bytes(data, "ext.onnx", None));
    assert!(
        msg.starts_with("ext.onnx: ") && msg.contains("initializer 'w'"),
        "{msg}"
    );
}

#[test]
fn external_data_errors_name_the_tensor() {
    let dir = scratch_dir("ext-bad");
    std::fs::copy(test_data("external/model.onnx"), dir.join("model.onnx")).expect("copy");
    // weights.bin missing
    let msg = err_text(cellm_onnx::load(&dir.join("model.onnx")));
    assert!(
        msg.contains("initializer 'w'") && msg.contains("weights.bin"),
        "{msg}"
    );
    // weights.bin too short for the second tensor's offset 24 + 24
    std::fs::write(dir.join("weights.bin"), [0u8; 30]).expect("write");
    let msg = err_text(cellm_onnx::load(&dir.join("model.onnx")));
    assert!(
        msg.contains("initializer 'b'") && msg.contains("outside the file"),
        "{msg}"
    );
    // a location leaving the model's folder is refused
    let mut model = ModelProto::decode(Bytes::from(
        std::fs::read(test_data("external/model.onnx")).expect("read"),
    ))
    .expect("decode");
    let graph = model.graph.as_mut().expect("graph");
    for e in &mut graph.initializer[0].external_data {
        if e.key == "location" {
            e.value = "../weights.bin".into();
        }
    }
    std::fs::write(dir.join("escape.onnx"), model.encode_to_vec()).expect("write");
    let msg = err_text(cellm_onnx::load(&dir.join("escape.onnx")));
    assert!(
        msg.contains("not a path inside the model's folder"),
        "{msg}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn typed_fields_constants_and_unsorted_nodes() {
    let g = cellm_onnx::load(&test_data("typed_fields.onnx")).expect("load");
    let init =
        |name: &str| g.initializers[&g.find(name).unwrap_or_else(|| panic!("{name}"))].clone();
    assert_eq!(init("t_f32").f32s().expect("f32"), &[1.25, -3.5]);
    assert_eq!(init("t_f64").view::<f64>().expect("f64"), &[0.1, -7.0]);
    assert_eq!(init("t_i64").i64s().expect("i64"), &[-1, 0, 1 << 40]);
    assert_eq!(init("t_i32").view::<i32>().expect("i32"), &[-5, 7]);
    assert_eq!(init("t_i8").view::<i8>().expect("i8"), &[-128, 127]);
    assert_eq!(init("t_u8").view::<u8>().expect("u8"), &[0, 255]);
    assert_eq!(init("t_bool").dtype(), DType::Bool);
    assert_eq!(init("t_bool").bools().expect("bool"), &[1, 0, 1]);
    let f16s: Vec<f32> = init("t_f16").to_f32_vec().expect("f16");
    assert_eq!(f16s, vec![1.5, -2.0]);
    // Constant nodes: value_float is a scalar, value_ints a 1-D tensor.
    assert_eq!(init("c_float").shape(), &[] as &[usize]);
    assert_eq!(init("c_float").f32s().expect("f32"), &[2.0]);
    assert_eq!(init("c_floats").f32s().expect("f32"), &[1.0, 2.0]);
    assert_eq!(init("c_int").i64s().expect("i64"), &[-3]);
    assert_eq!(init("c_ints").i64s().expect("i64"), &[4, 5, 6]);
    assert_eq!(init("c_tensor").shape(), &[1, 2]);
    assert_eq!(init("c_tensor").view::<i32>().expect("i32"), &[1, 2]);
    // t_f32 is listed as a graph input too; it stays an initializer.
    assert_eq!(
        g.inputs
            .iter()
            .map(|&v| g.value_name(v))
            .collect::<Vec<_>>(),
        vec!["x"]
    );
    // Two real nodes, given consumer first.
    assert_eq!(g.nodes.node_count(), 2);
    let order: Vec<_> = g
        .topo_order()
        .expect("sorted")
        .into_iter()
        .map(|ix| g.nodes[ix].name.clone())
        .collect();
    assert_eq!(order, vec!["add", "mul"]);
    // The output's dim had neither value nor name: a fresh '?' symbol
    // (or what inference knows better).
    let y = g.values[g.outputs[0]].fact.as_ref().expect("y fact");
    assert_eq!(y.dtype, DType::F32);
    match y.shape.as_deref() {
        Some([Dim::Sym(s)]) => assert!(s.starts_with('?'), "{s}"),
        Some([Dim::Known(2)]) => {}
        other => panic!("unexpected y shape {other:?}"),
    }
}

// ------------------------------------------------------ malformed files

#[test]
fn empty_file_is_an_error_naming_it() {
    let dir = scratch_dir("empty");
    let path = dir.join("empty.onnx");
    std::fs::write(&path, b"").expect("write");
    let msg = err_text(cellm_onnx::load(&path));
    assert!(
        msg.starts_with(&format!("{}: not a valid ONNX model", path.display())),
        "{msg}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn truncated_file_is_an_error_naming_it() {
    let data = std::fs::read(fixture("micro/onnx/vision_encoder.onnx")).expect("read");
    let dir = scratch_dir("trunc");
    let path = dir.join("half.onnx");
    std::fs::write(&path, &data[..data.len() / 2]).expect("write");
    let msg = err_text(cellm_onnx::load(&path));
    assert!(
        msg.starts_with(&format!("{}: not a valid ONNX model", path.display())),
        "{msg}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn missing_file_is_an_error_naming_it() {
    let path = Path::new("/nonexistent/cellm/model.onnx");
    let msg = err_text(cellm_onnx::load(path));
    assert!(msg.contains("/nonexistent/cellm/model.onnx"), "{msg}");
}

/// Random bytes must give an error, never a panic (protobuf decodes some
/// garbage "successfully", so the importer checks the model's structure).
#[test]
fn random_bytes_are_an_error() {
    use rand::{Rng, SeedableRng};
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    eprintln!("random_bytes_are_an_error seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for len in [1usize, 7, 100, 4096, 100_000] {
        for _ in 0..20 {
            let data: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            let msg = err_text(cellm_onnx::load_bytes(Bytes::from(data), "rnd.onnx", None));
            assert!(msg.starts_with("rnd.onnx: "), "seed {seed}: {msg}");
        }
    }
    // A text file is not a model either.
    let msg = err_text(cellm_onnx::load_bytes(
        Bytes::from_static(b"hello, I am not protobuf\n"),
        "t.onnx",
        None,
    ));
    assert!(msg.contains("not a valid ONNX model"), "{msg}");
}

// -------------------------------------- models built here (prost structs)

fn tensor_type(elem: DType, dims: &[Option<i64>]) -> Option<TypeProto> {
    use tensor_shape_proto::{dimension::Value, Dimension};
    Some(TypeProto {
        tensor_type: Some(type_proto::Tensor {
            elem_type: elem.to_onnx(),
            shape: Some(TensorShapeProto {
                dim: dims
                    .iter()
                    .map(|d| Dimension {
                        value: d.map(Value::DimValue),
                        ..Default::default()
                    })
                    .collect(),
            }),
        }),
        ..Default::default()
    })
}

fn vi(name: &str, elem: DType, dims: &[Option<i64>]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: tensor_type(elem, dims),
        ..Default::default()
    }
}

fn node(
    name: &str,
    op: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        name: name.into(),
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attrs,
        ..Default::default()
    }
}

fn ints_attr(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::INTS,
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn i64_init(name: &str, v: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        data_type: DType::I64.to_onnx(),
        dims: vec![v.len() as i64],
        int64_data: v.to_vec(),
        ..Default::default()
    }
}

fn model(
    opset: i64,
    nodes: Vec<NodeProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
) -> ModelProto {
    model_with(vec![("", opset)], nodes, vec![], inputs, outputs)
}

fn model_with(
    opsets: Vec<(&str, i64)>,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
) -> ModelProto {
    ModelProto {
        ir_version: 8,
        opset_import: opsets
            .into_iter()
            .map(|(d, v)| OperatorSetIdProto {
                domain: d.into(),
                version: v,
            })
            .collect(),
        graph: Some(GraphProto {
            name: "g".into(),
            node: nodes,
            initializer: inits,
            input: inputs,
            output: outputs,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn load_model(m: &ModelProto, name: &str) -> anyhow::Result<Graph> {
    cellm_onnx::load_bytes(Bytes::from(m.encode_to_vec()), name, None)
}

fn x_to_y(op: NodeProto, opset: i64) -> ModelProto {
    model(
        opset,
        vec![op],
        vec![vi("x", DType::F32, &[Some(2), Some(3)])],
        vec![vi("y", DType::F32, &[None, None])],
    )
}

#[test]
fn unsupported_op_names_file_node_domain_and_opset() {
    let m = x_to_y(node("foo_node", "Foo", &["x"], &["y"], vec![]), 14);
    let msg = err_text(load_model(&m, "m.onnx"));
    assert_eq!(
        msg,
        "m.onnx: node 'foo_node': unsupported op 'ai.onnx:Foo' (opset 14)"
    );

    let mut m = x_to_y(node("nb", "QOrderedMatMul", &["x"], &["y"], vec![]), 17);
    m.graph.as_mut().expect("g").node[0].domain = "com.microsoft".into();
    m.opset_import.push(OperatorSetIdProto {
        domain: "com.microsoft".into(),
        version: 1,
    });
    let msg = err_text(load_model(&m, "q.onnx"));
    assert_eq!(
        msg,
        "q.onnx: node 'nb': unsupported op 'com.microsoft:QOrderedMatMul' (opset 1)"
    );

    // A domain the importer does not know.
    let mut m = x_to_y(node("ml", "Scaler", &["x"], &["y"], vec![]), 17);
    m.graph.as_mut().expect("g").node[0].domain = "ai.onnx.ml".into();
    m.opset_import.push(OperatorSetIdProto {
        domain: "ai.onnx.ml".into(),
        version: 3,
    });
    let msg = err_text(load_model(&m, "ml.onnx"));
    assert!(
        msg.contains("unsupported op 'ai.onnx.ml:Scaler' (opset 3)"),
        "{msg}"
    );
}

#[test]
fn opset_range_is_enforced() {
    let relu = || node("r", "Relu", &["x"], &["y"], vec![]);
    for bad in [10, 23] {
        let msg = err_text(load_model(&x_to_y(relu(), bad), "m.onnx"));
        assert!(
            msg.contains(&format!("opset ai.onnx {bad} is not supported")),
            "{msg}"
        );
    }
    for good in [11, 22] {
        load_model(&x_to_y(relu(), good), "m.onnx")
            .unwrap_or_else(|e| panic!("opset {good}: {e:#}"));
    }
    let mut m = x_to_y(relu(), 14);
    m.opset_import.push(OperatorSetIdProto {
        domain: "com.microsoft".into(),
        version: 2,
    });
    let msg = err_text(load_model(&m, "m.onnx"));
    assert!(
        msg.contains("opset com.microsoft 2 is not supported"),
        "{msg}"
    );
}

#[test]
fn bad_attributes_name_node_and_attribute() {
    // axis given as a FLOAT
    let axis = AttributeProto {
        name: "axis".into(),
        r#type: attribute_type::FLOAT,
        f: 1.0,
        ..Default::default()
    };
    let m = model_with(
        vec![("", 14)],
        vec![node(
            "gather_1",
            "Gather",
            &["x", "idx"],
            &["y"],
            vec![axis],
        )],
        vec![i64_init("idx", &[0])],
        vec![vi("x", DType::F32, &[Some(2), Some(3)])],
        vec![vi("y", DType::F32, &[None, None])],
    );
    let msg = err_text(load_model(&m, "m.onnx"));
    assert!(
        msg.contains("node 'gather_1' (Gather)") && msg.contains("attribute 'axis' should be INT"),
        "{msg}"
    );

    // Concat without its required axis
    let m = x_to_y(node("cat", "Concat", &["x", "x"], &["y"], vec![]), 14);
    let msg = err_text(load_model(&m, "m.onnx"));
    assert!(
        msg.contains("node 'cat' (Concat)") && msg.contains("attribute 'axis' is required"),
        "{msg}"
    );

    // Cast to a dtype the IR lacks (STRING)
    let to = AttributeProto {
        name: "to".into(),
        r#type: attribute_type::INT,
        i: 8,
        ..Default::default()
    };
    let m = x_to_y(node("c", "Cast", &["x"], &["y"], vec![to]), 14);
    let msg = err_text(load_model(&m, "m.onnx"));
    assert!(
        msg.contains("node 'c' (Cast)") && msg.contains("attribute 'to' = 8 (STRING)"),
        "{msg}"
    );

    // Softmax before opset 13 with its default (coerce-to-2D) axis
    let m = x_to_y(node("sm", "Softmax", &["x"], &["y"], vec![]), 12);
    let msg = err_text(load_model(&m, "m.onnx"));
    assert!(
        msg.contains("node 'sm' (Softmax)") && msg.contains("'axis' = 1"),
        "{msg}"
    );
}

/// Squeeze/Unsqueeze/Reduce axes: attribute before their input form, input
/// after, and Softmax's default axis by opset.
#[test]
fn attribute_and_input_forms_by_opset() {
    let first_op = |g: &Graph| g.nodes.node_weights().next().expect("node").op.clone();

    let m = x_to_y(
        node(
            "u",
            "Unsqueeze",
            &["x"],
            &["y"],
            vec![ints_attr("axes", &[0])],
        ),
        11,
    );
    let g = load_model(&m, "m").expect("load");
    assert_eq!(
        first_op(&g),
        Op::Unsqueeze(cellm_ir::ops::Unsqueeze {
            axes: Some(vec![0])
        })
    );

    let m = model_with(
        vec![("", 13)],
        vec![node("u", "Unsqueeze", &["x", "axes"], &["y"], vec![])],
        vec![i64_init("axes", &[0])],
        vec![vi("x", DType::F32, &[Some(2), Some(3)])],
        vec![vi("y", DType::F32, &[None, None, None])],
    );
    let g = load_model(&m, "m").expect("load");
    assert_eq!(
        first_op(&g),
        Op::Unsqueeze(cellm_ir::ops::Unsqueeze { axes: None })
    );
    assert_eq!(g.nodes.node_weights().next().expect("n").inputs.len(), 2);

    let m = x_to_y(node("u", "Unsqueeze", &["x"], &["y"], vec![]), 13);
    let msg = err_text(load_model(&m, "m"));
    assert!(msg.contains("axes are required"), "{msg}");

    let m = x_to_y(node("s", "Squeeze", &["x"], &["y"], vec![]), 13);
    assert_eq!(
        first_op(&load_model(&m, "m").expect("load")),
        Op::Squeeze(cellm_ir::ops::Squeeze { axes: None })
    );

    let keep0 = AttributeProto {
        name: "keepdims".into(),
        r#type: attribute_type::INT,
        i: 0,
        ..Default::default()
    };
    let m = x_to_y(
        node(
            "r",
            "ReduceMean",
            &["x"],
            &["y"],
            vec![ints_attr("axes", &[-1]), keep0],
        ),
        14,
    );
    assert_eq!(
        first_op(&load_model(&m, "m").expect("load")),
        Op::Reduce(cellm_ir::ops::Reduce {
            kind: cellm_ir::ops::ReduceKind::Mean,
            axes: Some(vec![-1]),
            keepdims: false,
            noop_with_empty_axes: false
        })
    );
    let m = model_with(
        vec![("", 18)],
        vec![node("r", "ReduceSum", &["x", "axes"], &["y"], vec![])],
        vec![i64_init("axes", &[1])],
        vec![vi("x", DType::F32, &[Some(2), Some(3)])],
        vec![vi("y", DType::F32, &[None, None])],
    );
    match first_op(&load_model(&m, "m").expect("load")) {
        Op::Reduce(r) => {
            assert!(r.axes.is_none() && r.keepdims && r.kind == cellm_ir::ops::ReduceKind::Sum)
        }
        other => panic!("{other:?}"),
    }

    let m = x_to_y(node("sm", "Softmax", &["x"], &["y"], vec![]), 13);
    assert_eq!(
        first_op(&load_model(&m, "m").expect("load")),
        Op::Softmax(cellm_ir::ops::Softmax { axis: -1 })
    );

    // Split into two outputs, sizes from the attribute (opset 11).
    let m = model(
        11,
        vec![node(
            "sp",
            "Split",
            &["x"],
            &["a", "b"],
            vec![ints_attr("split", &[1, 2]), ints_attr("axis", &[])],
        )],
        vec![vi("x", DType::F32, &[Some(2), Some(3)])],
        vec![
            vi("a", DType::F32, &[Some(2), Some(1)]),
            vi("b", DType::F32, &[Some(2), Some(2)]),
        ],
    );
    // 'axis' given as INTS is a type error naming the attribute.
    let msg = err_text(load_model(&m, "m"));
    assert!(
        msg.contains("node 'sp' (Split)") && msg.contains("attribute 'axis'"),
        "{msg}"
    );
}

/// Empty input names are omitted inputs, empty output names unrequested outputs.
#[test]
fn empty_names_are_none() {
    let m = model_with(
        vec![("", 14), ("com.microsoft", 1)],
        vec![{
            let mut n = node(
                "sln",
                "SkipSimplifiedLayerNormalization",
                &["x", "x", "g"],
                &["y", "", "", "sum"],
                vec![],
            );
            n.domain = "com.microsoft".into();
            n
        }],
        vec![TensorProto {
            name: "g".into(),
            data_type: DType::F32.to_onnx(),
            dims: vec![3],
            float_data: vec![1.0; 3],
            ..Default::default()
        }],
        vec![vi("x", DType::F32, &[Some(2), Some(3)])],
        vec![
            vi("y", DType::F32, &[Some(2), Some(3)]),
            vi("sum", DType::F32, &[Some(2), Some(3)]),
        ],
    );
    let g = load_model(&m, "m").expect("load");
    let n = g.nodes.node_weights().next().expect("node");
    assert_eq!(n.outputs.len(), 4);
    assert!(
        n.outputs[0].is_some()
            && n.outputs[1].is_none()
            && n.outputs[2].is_none()
            && n.outputs[3].is_some()
    );
    match &n.op {
        // onnxruntime's default epsilon for this op
        Op::SkipSimplifiedLayerNormalization(s) => assert_eq!(s.epsilon, 1e-12),
        other => panic!("{other:?}"),
    }

    let m = model_with(
        vec![("", 14)],
        vec![node(
            "sl",
            "Slice",
            &["x", "st", "en", "", "st"],
            &["y"],
            vec![],
        )],
        vec![i64_init("st", &[0]), i64_init("en", &[1])],
        vec![vi("x", DType::F32, &[Some(2), Some(3)])],
        vec![vi("y", DType::F32, &[None, None])],
    );
    let g = load_model(&m, "m").expect("load");
    let n = g.nodes.node_weights().next().expect("node");
    assert_eq!(n.inputs.len(), 5);
    assert!(n.inputs[3].is_none() && n.inputs[4].is_some());
}

#[test]
fn dangling_input_is_an_error() {
    let m = model(
        14,
        vec![node("a", "Add", &["x", "nowhere"], &["y"], vec![])],
        vec![vi("x", DType::F32, &[Some(2)])],
        vec![vi("y", DType::F32, &[Some(2)])],
    );
    let msg = err_text(load_model(&m, "m.onnx"));
    assert!(
        msg.starts_with("m.onnx: ") && msg.contains("'nowhere'"),
        "{msg}"
    );
}

/// Declared output facts are kept where inference knows less: here the
/// declared symbol survives; a known dim from inference would replace it.
#[test]
fn declared_output_facts_are_not_degraded() {
    use tensor_shape_proto::{dimension::Value, Dimension};
    let mut y = vi("y", DType::F32, &[]);
    if let Some(tt) = y.r#type.as_mut().and_then(|t| t.tensor_type.as_mut()) {
        tt.shape = Some(TensorShapeProto {
            dim: vec![
                Dimension {
                    value: Some(Value::DimParam("batch".into())),
                    ..Default::default()
                },
                Dimension {
                    value: Some(Value::DimValue(3)),
                    ..Default::default()
                },
            ],
        });
    }
    // MatMul of an unknown-shaped x: inference can at best give symbols.
    let m = model_with(
        vec![("", 14)],
        vec![node("mm", "MatMul", &["x", "w"], &["y"], vec![])],
        vec![TensorProto {
            name: "w".into(),
            data_type: DType::F32.to_onnx(),
            dims: vec![3, 3],
            float_data: vec![0.0; 9],
            ..Default::default()
        }],
        vec![ValueInfoProto {
            name: "x".into(),
            r#type: Some(TypeProto {
                tensor_type: Some(type_proto::Tensor {
                    elem_type: DType::F32.to_onnx(),
                    shape: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }],
        vec![y],
    );
    let g = load_model(&m, "m").expect("load");
    let fact = g.values[g.outputs[0]].fact.as_ref().expect("fact");
    assert_eq!(
        fact.shape,
        Some(vec![Dim::Sym("batch".into()), Dim::Known(3)])
    );
}

fn add_with_weight(w_dtype: DType, w_dims: &[usize]) -> ModelProto {
    let n: usize = w_dims.iter().product();
    let mut w = TensorProto {
        name: "w".into(),
        data_type: w_dtype.to_onnx(),
        dims: w_dims.iter().map(|&d| d as i64).collect(),
        ..Default::default()
    };
    match w_dtype {
        DType::F32 => w.float_data = vec![0.5; n],
        DType::I64 => w.int64_data = vec![1; n],
        other => panic!("test helper lacks {other}"),
    }
    model_with(
        vec![("", 14)],
        vec![node("add_w", "Add", &["x", "w"], &["y"], vec![])],
        vec![w],
        vec![vi("x", DType::F32, &[Some(2), Some(3)])],
        vec![vi("y", DType::F32, &[Some(2), Some(3)])],
    )
}

/// A shape conflict found by inference is not fatal (symbolic inference may
/// have gaps): the node's outputs keep their dtype and the declared output
/// fact stays.
#[test]
fn shape_inference_failure_is_not_fatal() {
    let g = load_model(&add_with_weight(DType::F32, &[4, 5]), "m").expect("load");
    let fact = g.values[g.outputs[0]].fact.as_ref().expect("fact");
    assert_eq!(fact.dtype, DType::F32);
    assert_eq!(fact.shape, Some(vec![Dim::Known(2), Dim::Known(3)]));
}

/// A dtype error is fatal and names the node.
#[test]
fn dtype_inference_failure_is_fatal() {
    let msg = err_text(load_model(&add_with_weight(DType::I64, &[2, 3]), "m.onnx"));
    assert!(msg.starts_with("m.onnx: node 'add_w' (Add): "), "{msg}");
}

/// Real models with random bytes overwritten load or fail, but never panic.
#[test]
fn corrupted_models_never_panic() {
    use rand::{Rng, SeedableRng};
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    eprintln!("corrupted_models_never_panic seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut ok, mut failed) = (0, 0);
    for rel in [
        "micro/onnx/vision_encoder.onnx",
        "micro/onnx_torchscript/decoder_model_merged.onnx",
    ] {
        let original = std::fs::read(fixture(rel)).expect("read");
        // The graph structure, not the weights, makes decoding interesting:
        // nodes are serialised first and graph inputs/outputs last, so
        // corrupt within the first or the last 64 KiB.
        let window = original.len().min(64 * 1024);
        for _ in 0..150 {
            let mut data = original.clone();
            let tail = rng.random::<bool>();
            for _ in 0..rng.random_range(1..8) {
                let mut i = rng.random_range(0..window);
                if tail {
                    i += original.len() - window;
                }
                data[i] = rng.random();
            }
            match cellm_onnx::load_bytes(Bytes::from(data), "corrupt.onnx", None) {
                Ok(_) => ok += 1,
                Err(e) => {
                    assert!(
                        format!("{e:#}").starts_with("corrupt.onnx: "),
                        "seed {seed}: {e:#}"
                    );
                    failed += 1;
                }
            }
        }
    }
    eprintln!("corrupted models: {ok} loaded, {failed} refused");
}
