use cellm_ir::Op;
#[test]
fn dbg() {
    for f in ["../../models/micro/onnx_torchscript/decoder_model_merged.onnx", "../../models/micro/onnx/decoder_model_merged.onnx", "../../models/micro/onnx/vision_encoder.onnx"] {
        let mut g = cellm_onnx::load(std::path::Path::new(f)).unwrap();
        cellm_opt::optimize(&mut g).unwrap();
        for ix in g.topo_order().unwrap() {
            let n = &g.nodes[ix];
            if !n.name.contains("layers.0") { continue; }
            let fmt = |v: &Option<usize>| v.map(|v| format!("{}:{}", &g.values[v].name.chars().rev().take(25).collect::<String>().chars().rev().collect::<String>(), g.values[v].fact.as_ref().and_then(|f| f.shape.as_ref()).map(|s| cellm_ir::shape::fmt_shape(s)).unwrap_or_default())).unwrap_or("-".into());
            let ins: Vec<String> = n.inputs.iter().map(fmt).collect();
            let outs: Vec<String> = n.outputs.iter().map(fmt).collect();
            let extra = match &n.op { Op::Transpose(t) => format!("{:?}", t.perm), _ => String::new() };
            println!("{} {} {:?} -> {:?}", n.op.name(), extra, ins, outs);
        }
        println!("=====");
    }
}
