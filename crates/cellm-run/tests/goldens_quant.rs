//! Whole-chain goldens for the quantized micro variants on the CPU: each
//! variant against onnxruntime's outputs for that same variant. Cases and
//! tolerances (with their reasons): `cellm_testkit::quant_goldens`.

use cellm_ir::Graph;
use cellm_testkit::Runner;

fn cpu(g: Graph) -> Option<Runner> {
    Some(Box::new(move |inputs| cellm_cpu::run(&g, inputs)))
}

cellm_testkit::quant_golden_tests!(cpu);
