//! Runs every case of `graphs/conformance/` (single-node ONNX graphs with
//! onnxruntime 1.32 goldens, see `graphs/make_conformance.py`) through the
//! importer and the CPU interpreter, and fails listing every case that does
//! not match. Tolerances are documented in `cellm_conformance`.
//!
//! `CELLM_CONFORMANCE_FILTER=<substring>` runs only the matching cases;
//! `CELLM_CONFORMANCE_REPORT=<path>` also writes the table to a file;
//! `CELLM_CONFORMANCE_VERBOSE=1` lists passing cases too;
//! `CELLM_CONFORMANCE_ROOT=<dir>` runs another copy of the suite.

use cellm_conformance::{default_root, report, run_all};
use std::path::PathBuf;

#[test]
fn conformance_all_ops() {
    let filter = std::env::var("CELLM_CONFORMANCE_FILTER").ok();
    let verbose = std::env::var_os("CELLM_CONFORMANCE_VERBOSE").is_some();
    let root = std::env::var_os("CELLM_CONFORMANCE_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(default_root);
    let results = match run_all(&root, filter.as_deref()) {
        Ok(r) => r,
        Err(e) => panic!("conformance suite did not load: {e:#}"),
    };
    assert!(!results.is_empty(), "no case matches filter {filter:?}");
    let table = report(&results, verbose);
    println!("{table}");
    if let Some(path) = std::env::var_os("CELLM_CONFORMANCE_REPORT") {
        if let Err(e) = std::fs::write(&path, &table) {
            eprintln!("cannot write report to {}: {e}", path.to_string_lossy());
        }
    }
    let failed = results.iter().filter(|r| !r.passed()).count();
    assert_eq!(
        failed, 0,
        "{failed} conformance case(s) failed, see the table above"
    );
}
