//! Column-panel storage of weights for the CPU's decode steps (CPU plans).
//! A decode step multiplies one row by every weight, so it is bound by how
//! fast B streams from memory. Row-major [K, N] halves make the one-row
//! product keep its N outputs in memory and re-read them for every few rows
//! of B; stored as K×32 panels (cellm-ir's [`Layout::Panels`]), each panel
//! streams front to back with its 32 outputs in registers. Measured on the
//! 2-core dev VM: f16 16–22 GB/s before, 26–44 GB/s after; f32 through
//! `gemm` 24–29 GB/s, in panels 27–33 GB/s (see BENCHMARKS.md).
//!
//! Guard: a 2-D f16 or f32 row-major initializer of at least [`MIN_VALUES`]
//! values, read only as the weight of MatMul-family ops
//! (`pattern::weight_slots`) whose A is f32, the form the CPU kernels take
//! in panels, and whose A may have few rows: no known leading dim of A above
//! the kernels' GEMV row limit. Products of many rows only (the vision
//! encoder's 1024 patches) gain nothing from panels (its f32 weights in
//! panels, through the many-row tile kernel: 1.82–2.08 s per image against
//! 1.66–1.98 row-major), so they keep the model's own bytes instead of a
//! copy. Patch: the same value, re-stored in panels; the graph's shapes and
//! values are unchanged.
//!
//! Only for CPU plans: the GPU kernels read row-major weights and its upload
//! refuses a panel-stored tensor.

use crate::pattern::{arg, dtype, shape, weight_slots};
use anyhow::Result;
use cellm_cpu::panels::GEMV_MAX_ROWS;
use cellm_ir::{DType, Dim, Graph, Layout};

/// Outputs per panel: four AVX2 f32 vectors, accumulated in registers.
pub const PANEL_WIDTH: usize = 32;
/// Smaller weights stream in microseconds either way.
const MIN_VALUES: usize = 1024;

/// Re-stores every eligible weight; returns how many.
pub fn apply(g: &mut Graph) -> Result<usize> {
    let mut ids: Vec<_> = g.initializers.keys().copied().collect();
    ids.sort();
    let mut n = 0;
    for v in ids {
        let t = &g.initializers[&v];
        if !matches!(t.dtype(), DType::F16 | DType::F32)
            || t.rank() != 2
            || t.layout() != Layout::RowMajor
            || t.len() < MIN_VALUES
            || g.outputs.contains(&v)
        {
            continue;
        }
        let readers = g.consumers(v);
        let only_weights = !readers.is_empty()
            && readers.iter().all(|&ix| {
                let node = &g.nodes[ix];
                let slots = weight_slots(node);
                let a = arg(node, 0);
                let a_is_f32 = a.and_then(|a| dtype(g, a)) == Some(DType::F32);
                // Leading dims of A (all but K): a known one above the GEMV
                // limit means the product never streams B.
                let few_rows = a.and_then(|a| shape(g, a)).is_some_and(|s| {
                    s.split_last().is_some_and(|(_, lead)| {
                        lead.iter()
                            .all(|d| !matches!(d, Dim::Known(n) if *n > GEMV_MAX_ROWS))
                    })
                });
                a_is_f32
                    && few_rows
                    && node
                        .inputs
                        .iter()
                        .enumerate()
                        .all(|(i, x)| *x != Some(v) || slots.contains(&i))
            });
        if !only_weights {
            continue;
        }
        let packed = t.to_panels(PANEL_WIDTH)?;
        g.initializers.insert(v, packed);
        n += 1;
    }
    Ok(n)
}
