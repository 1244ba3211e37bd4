//! Helpers shared by the pass tests: hand-built graphs, and the micro
//! models after the default pipeline.

#![allow(dead_code)] // each test file uses some of them

use cellm_ir::{Graph, Node, Op};

/// `models/<rel>` imported and optimised by the default pipeline.
pub fn optimized_model(rel: &str) -> Graph {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models")
        .join(rel);
    let mut g = cellm_onnx::load(&p).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
    cellm_opt::optimize(&mut g).unwrap_or_else(|e| panic!("{rel}: {e:#}"));
    g
}

/// A fresh seed (printed), or CELLM_TEST_SEED to replay one.
pub fn seed() -> u64 {
    let s = std::env::var("CELLM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    println!("seed {s} (CELLM_TEST_SEED to replay)");
    s
}

/// Adds node `name` running `op` on the named values (created on first use).
pub fn node(g: &mut Graph, name: &str, op: Op, ins: &[&str], outs: &[&str]) {
    let inputs = ins.iter().map(|n| Some(g.value(n))).collect();
    let outputs = outs.iter().map(|n| Some(g.value(n))).collect();
    g.add_node(Node {
        name: name.into(),
        op,
        inputs,
        outputs,
    })
    .expect("add node");
}
