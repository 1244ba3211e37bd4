//! f16 weight storage (`--dtype f16`): the f32 weight matrices of MatMuls
//! (B operands that are initializers) are stored as f16, halving their bytes
//! and the bandwidth a decode step reads. The MatMul then takes f32 A and f16
//! B and still accumulates and outputs f32, so activations, softmax and norm
//! statistics stay f32. Small weights (< 1024 values) are left alone.
//!
//! Not in the default pipeline: it changes numerics (about 1e-3 relative), so
//! it runs only when asked for ([`apply`]).

use crate::pattern::{arg, dtype, weight_slots};
use anyhow::Result;
use cellm_ir::{DType, Graph, Tensor};
use half::f16;
use std::collections::HashMap;

/// Fewer values than this are not worth a conversion.
const MIN_VALUES: usize = 1024;

/// Rewrites every eligible MatMul; returns how many weights were converted.
pub fn apply(g: &mut Graph) -> Result<usize> {
    let mut converted: HashMap<usize, usize> = HashMap::new();
    let mut n = 0;
    for ix in g.topo_order()? {
        let node = &g.nodes[ix];
        // The fused products take f16 weights as MatMul does.
        let slots = weight_slots(node);
        if slots.is_empty() {
            continue;
        }
        let Some(a) = arg(node, 0) else {
            continue;
        };
        if dtype(g, a) != Some(DType::F32) {
            continue;
        }
        for slot in slots {
            let Some(b) = arg(&g.nodes[ix], slot) else {
                continue;
            };
            let Some(w) = g.initializers.get(&b) else {
                continue;
            };
            if w.dtype() != DType::F32 || w.len() < MIN_VALUES {
                continue;
            }
            let half = match converted.get(&b) {
                Some(&h) => h,
                None => {
                    let values: Vec<f16> =
                        w.view::<f32>()?.iter().map(|&v| f16::from_f32(v)).collect();
                    let t = Tensor::from_vec(w.shape().to_vec(), values);
                    let name = format!("{}.f16", g.value_name(b));
                    let h = crate::pattern::add_const(g, &name, t);
                    converted.insert(b, h);
                    n += 1;
                    h
                }
            };
            g.set_input(ix, slot, Some(half));
        }
    }
    if n > 0 {
        super::dce::prune_initializers(g);
        g.infer_facts()?;
        g.validate()?;
    }
    Ok(n)
}
