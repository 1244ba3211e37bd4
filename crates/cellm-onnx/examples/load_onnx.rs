//! Loads ONNX files and prints the load time, node count and I/O, or the
//! error. `cargo run --release -p cellm-onnx --example load_onnx -- FILE...`

use cellm_ir::shape::fmt_shape;
use std::time::Instant;

fn main() {
    for arg in std::env::args().skip(1) {
        let path = std::path::Path::new(&arg);
        // The first load also pays for page faults; best of 5 shows the steady cost.
        let mut best = f64::INFINITY;
        let mut first = None;
        let mut result = None;
        for _ in 0..5 {
            let t = Instant::now();
            let r = cellm_onnx::load(path);
            let secs = t.elapsed().as_secs_f64();
            best = best.min(secs);
            first.get_or_insert(secs);
            result = Some(r);
        }
        let first = first.unwrap_or(best);
        match result {
            Some(Ok(g)) => {
                println!(
                    "{arg}: {} nodes, {} initializers, first load {:.2} ms, best of 5 {:.2} ms",
                    g.nodes.node_count(),
                    g.initializers.len(),
                    first * 1e3,
                    best * 1e3
                );
                for (what, ids) in [("in ", &g.inputs), ("out", &g.outputs)] {
                    for &v in ids {
                        match &g.values[v].fact {
                            Some(f) => println!(
                                "  {what} {} {} {}",
                                g.value_name(v),
                                f.dtype,
                                f.shape
                                    .as_deref()
                                    .map(fmt_shape)
                                    .unwrap_or_else(|| "?".into())
                            ),
                            None => println!("  {what} {} (no fact)", g.value_name(v)),
                        }
                    }
                }
            }
            Some(Err(e)) => println!("{arg}: error: {e:#}"),
            None => {}
        }
    }
}
