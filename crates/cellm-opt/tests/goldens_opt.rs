//! Whole-graph goldens with the optimisation passes on: every fixture graph is
//! optimised by `cellm_opt::optimize`, then run by the CPU interpreter and
//! compared with the onnxruntime outputs. Harness and tolerances: `cellm_testkit`.

use cellm_ir::Graph;
use cellm_testkit::Runner;

/// Optimises (the passes must never grow a graph), then runs on the CPU.
fn optimised_cpu(mut g: Graph) -> Option<Runner> {
    let before = g.nodes.node_count();
    let report = cellm_opt::optimize(&mut g).unwrap_or_else(|e| panic!("{}: {e:#}", g.name));
    let after = g.nodes.node_count();
    println!(
        "{before} nodes -> {after} after passes ({:?})",
        report.rewrites
    );
    assert!(
        after <= before,
        "passes grew the graph from {before} to {after} nodes"
    );
    Some(Box::new(move |inputs| cellm_cpu::run(&g, inputs)))
}

cellm_testkit::float_golden_tests!(optimised_cpu);

/// The CPU plans' form: the passes, then the decoder weights in column panels
/// (`weight_panels`, which the runtime applies to every CPU plan), so the
/// panel GEMV and GEMM paths meet onnxruntime's outputs too.
mod panels {
    use cellm_ir::Graph;
    use cellm_testkit::Runner;

    fn optimised_cpu_panels(mut g: Graph) -> Option<Runner> {
        cellm_opt::optimize(&mut g).unwrap_or_else(|e| panic!("{}: {e:#}", g.name));
        let n = cellm_opt::passes::weight_panels::apply(&mut g)
            .unwrap_or_else(|e| panic!("{}: {e:#}", g.name));
        println!("{n} weights in panels");
        Some(Box::new(move |inputs| cellm_cpu::run(&g, inputs)))
    }

    cellm_testkit::float_golden_tests!(optimised_cpu_panels);
}
