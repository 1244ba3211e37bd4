//! Shared test helpers: the device (fails without one unless
//! CELLM_ALLOW_NO_GPU=1) and tolerance checks.
//!
//! Run with `NODEVICE_SELECT=1` to silence Mesa's device-select layer warning.

#![allow(dead_code)]

use cellm_gpu::GpuContext;
use std::sync::{Arc, OnceLock};

/// The test device, or `None` (test skipped) when no adapter exists and
/// CELLM_ALLOW_NO_GPU=1. Without that variable a missing adapter fails.
pub fn gpu() -> Option<Arc<GpuContext>> {
    static CTX: OnceLock<Result<Arc<GpuContext>, String>> = OnceLock::new();
    let ctx = CTX.get_or_init(|| {
        let r = GpuContext::new().map_err(|e| format!("{e:#}"));
        if let Ok(c) = &r {
            eprintln!("GPU adapter: {} caps {:?}", c.adapter, c.caps);
        }
        r
    });
    match ctx {
        Ok(c) => Some(c.clone()),
        Err(e) if std::env::var("CELLM_ALLOW_NO_GPU").as_deref() == Ok("1") => {
            eprintln!("skipping GPU test (CELLM_ALLOW_NO_GPU=1): {e}");
            None
        }
        Err(e) => panic!("no usable GPU adapter ({e}); set CELLM_ALLOW_NO_GPU=1 to skip GPU tests"),
    }
}
