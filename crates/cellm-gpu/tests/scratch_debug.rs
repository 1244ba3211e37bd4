mod common;
use cellm_gpu::{GpuSession, SessionOptions};
use cellm_ir::{npy, Tensor};
use std::collections::HashMap;
#[test]
fn dbg() {
    let mut g = cellm_onnx::load(std::path::Path::new("../../models/micro/onnx/vision_encoder.onnx")).unwrap();
    for n in ["/Equal_output_0", "/Cast_output_0", "/ReduceSum_output_0", "/Equal_1_output_0", "/Not_output_0"] {
        let v = g.find(n).unwrap();
        g.outputs.push(v);
    }
    let pv = npy::read(std::path::Path::new("../../models/micro/golden/pixel_values.npy")).unwrap();
    let one = pv.to_f32_vec().unwrap();
    let mut three = one.clone();
    three.extend(std::iter::repeat_n(0.0, one.len()));
    three.extend(one.iter().map(|v| -v));
    let mut shape = pv.shape().to_vec();
    shape[1] = 3;
    let pv3 = Tensor::from_vec(shape.clone(), three);
    let mask3 = Tensor::from_bools(vec![1, 3, shape[3], shape[4]], vec![true; 3 * shape[3] * shape[4]]);
    let map: HashMap<String, Tensor> = [("pixel_values".to_string(), pv3), ("pixel_attention_mask".to_string(), mask3)].into_iter().collect();
    let cpu = cellm_cpu::run(&g, &map).unwrap();
    let s = GpuSession::with_context(common::gpu().unwrap(), g, SessionOptions::default()).unwrap();
    let gpu = s.run(&map).unwrap();
    for n in ["/Equal_output_0", "/Cast_output_0", "/ReduceSum_output_0", "/Equal_1_output_0", "/Not_output_0"] {
        let (a, b) = (&cpu[n], &gpu[n]);
        let (x, y) = (a.to_f64_vec(), b.to_f64_vec());
        let diff = x.iter().zip(&y).filter(|(p, q)| p != q).count();
        println!("{n}: cpu {a:?} gpu {b:?} diffs {diff} first cpu {:?} gpu {:?}", &x[..x.len().min(3)], &y[..y.len().min(3)]);
    }
}
