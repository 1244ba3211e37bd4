//! Whole-graph goldens: the CPU interpreter against onnxruntime on the SmolVLM
//! look-alike exports (models/micro, models/tiny; see models/FIXTURES.md).
//! Harness and tolerances: `cellm_testkit`.

use cellm_ir::Graph;
use cellm_testkit::{fixture, Runner};

fn cpu(g: Graph) -> Option<Runner> {
    Some(Box::new(move |inputs| cellm_cpu::run(&g, inputs)))
}

cellm_testkit::float_golden_tests!(cpu);

/// Guards the fixture lookup itself: without the files every test above would fail loudly,
/// but this names the cause.
#[test]
fn fixtures_are_present() {
    let p = fixture("micro/golden/manifest.json");
    assert!(p.exists(), "{} is missing", p.display());
}
