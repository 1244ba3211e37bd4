//! Fixture lookup shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fixture file: `<workspace>/models/<rel>` if present, else
/// `<workspace>/../shared/fixtures/<rel>`. Fails the test when neither has it.
pub fn fixture(rel: &str) -> PathBuf {
    let root = workspace_root();
    let candidates = [
        root.join("models").join(rel),
        root.join("../shared/fixtures").join(rel),
    ];
    for c in &candidates {
        if c.exists() {
            return c.clone();
        }
    }
    panic!("fixture {rel} not found in {candidates:?}");
}

pub fn read_json(rel: &str) -> serde_json::Value {
    let p = fixture(rel);
    let text =
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", p.display()))
}
