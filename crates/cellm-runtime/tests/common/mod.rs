//! Helpers shared by the runtime's integration tests: the backends to run on,
//! seeds, and the logits comparison.

#![allow(dead_code)] // each test file uses some of them

use cellm_runtime::backend::Backend;
use rand::{Rng, SeedableRng};
use std::sync::Arc;

pub use cellm_testkit::fixture;

/// The GPU backend; a missing adapter fails the test unless
/// CELLM_ALLOW_NO_GPU=1 (then the GPU case is skipped).
pub fn gpu() -> Option<Backend> {
    match cellm_gpu::GpuContext::new() {
        Ok(ctx) => Some(Backend::Gpu(Arc::clone(&ctx))),
        Err(e) if std::env::var("CELLM_ALLOW_NO_GPU").as_deref() == Ok("1") => {
            eprintln!("skipping GPU case (CELLM_ALLOW_NO_GPU=1): {e}");
            None
        }
        Err(e) => panic!("no usable GPU adapter ({e}); set CELLM_ALLOW_NO_GPU=1 to skip"),
    }
}

/// The CPU, and the GPU unless it may be skipped and is missing.
pub fn cpu_and_gpu() -> Vec<Backend> {
    std::iter::once(Backend::Cpu).chain(gpu()).collect()
}

/// A generator from a fresh seed, printed so a failure can be replayed.
pub fn seeded() -> (u64, rand::rngs::StdRng) {
    let seed: u64 = rand::rng().random();
    println!("seed {seed}");
    (seed, rand::rngs::StdRng::seed_from_u64(seed))
}

/// Largest |got - want| over max(1, max |want|).
pub fn max_rel(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(1f64, |m, &w| m.max(w.abs() as f64));
    got.iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w as f64).abs() / scale)
        .fold(0.0, f64::max)
}
