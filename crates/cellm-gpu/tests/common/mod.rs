//! Shared test helpers: the device (fails without one unless
//! CELLM_ALLOW_NO_GPU=1) and tolerance checks.
//!
//! Run with `NODEVICE_SELECT=1` to silence Mesa's device-select layer warning.

#![allow(dead_code)]

pub mod op_check;

use cellm_gpu::{GpuContext, GpuSession, SessionOptions};
use cellm_ir::{DType, Graph};
use cellm_testkit::Runner;
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

/// How the golden tests configure a session.
#[derive(Clone, Copy)]
pub enum Mode {
    Default,
    NoShaderF16,
    Split1MiB,
}

/// A GPU session for `g`; checks that float weights sit on the device at their
/// own width (f16 as halves, padded to whole words).
pub fn session(g: Graph, mode: Mode) -> Option<Runner> {
    let ctx = gpu()?;
    let name = g.name.clone();
    let host_bytes: u64 = g
        .initializers
        .values()
        .filter(|t| matches!(t.dtype(), DType::F32 | DType::F16))
        .map(|t| {
            (t.len() as u64 * t.dtype().size() as u64)
                .div_ceil(4)
                .max(1)
                * 4
        })
        .sum();
    let opts = match mode {
        Mode::Default => SessionOptions::default(),
        Mode::NoShaderF16 => SessionOptions {
            disable_shader_f16: true,
            ..SessionOptions::default()
        },
        Mode::Split1MiB => SessionOptions {
            max_binding_bytes_override: Some(1 << 20),
            ..SessionOptions::default()
        },
    };
    let s = GpuSession::with_context(ctx, g, opts).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    println!(
        "  weights on the device: {} bytes (host {host_bytes})",
        s.weight_bytes()
    );
    assert_eq!(s.weight_bytes(), host_bytes, "{name}: device weight bytes");
    Some(Box::new(move |inputs| {
        let out = s.run(inputs)?;
        let st = s.last_stats();
        println!(
            "  run: {} dispatches, {} submits, {} mid-run readbacks; host ops {:?}",
            st.dispatches, st.submits, st.readbacks, st.host_ops
        );
        Ok(out)
    }))
}
