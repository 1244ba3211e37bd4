//! Helpers shared by the hand-built-graph pass tests.

use cellm_ir::{Graph, Node, Op};

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
