//! MatMulMulti: Y_w = A·B_w for up to three 2-D weights in one launch
//! (`shaders/mat_mul_multi_gemv.wgsl` for one row, the decode steps;
//! `shaders/mat_mul_multi.wgsl`, 64x64 tiles, otherwise). A's leading dims
//! are flattened into rows; each weight keeps its own buffer, and may be f16
//! under f32 A. More weights, or tensors split over more storage bindings
//! than the device allows per launch, take one MatMulEpilogue launch per
//! weight instead (same results).

use super::mat_mul_silu_mul::weight_dtype_ok;
use super::{need_float, u32_of, Args};
use crate::kernel::{DevTensor, Kern};
use anyhow::{bail, Result};
use cellm_ir::DType;

/// Weight slots of the fused kernels.
const SLOTS: usize = 3;

/// Float A of rank >= 2; each weight 2-D with A's K, dtypes as for MatMul.
pub fn supported(args: &Args) -> bool {
    let Some(a) = args.od(0) else { return false };
    let ws: Vec<Option<&DevTensor>> = (1..args.dev.len()).map(|i| args.od(i)).collect();
    matches!(a.dtype, DType::F32 | DType::F16)
        && a.shape.len() >= 2
        && !ws.is_empty()
        && ws.iter().all(|w| {
            w.is_some_and(|w| {
                w.shape.len() == 2
                    && Some(&w.shape[0]) == a.shape.last()
                    && weight_dtype_ok(a.dtype, w.dtype)
            })
        })
}

pub fn encode(k: &mut Kern, args: &Args) -> Result<Vec<DevTensor>> {
    let a = args.d(0, "MatMulMulti A")?;
    need_float(a, "MatMulMulti A")?;
    let ws = (1..args.dev.len().max(2))
        .map(|i| args.d(i, &format!("MatMulMulti weight {}", i - 1)))
        .collect::<Result<Vec<_>>>()?;
    let Some((&kdim, lead)) = a.shape.split_last().filter(|(_, l)| !l.is_empty()) else {
        bail!("MatMulMulti: A {:?} must have rank >= 2", a.shape);
    };
    let m: usize = lead.iter().product();
    let mut ns = Vec::with_capacity(ws.len());
    for (i, w) in ws.iter().enumerate() {
        if w.shape.len() != 2 || w.shape[0] != kdim {
            bail!(
                "MatMulMulti: A {:?} and weight {i} {:?} do not multiply",
                a.shape,
                w.shape
            );
        }
        if !weight_dtype_ok(a.dtype, w.dtype) {
            bail!(
                "MatMulMulti: A is {} but weight {i} is {}",
                a.dtype,
                w.dtype
            );
        }
        ns.push(w.shape[1]);
    }
    let mut outs = Vec::with_capacity(ws.len());
    for &n in &ns {
        let mut shape = lead.to_vec();
        shape.push(n);
        outs.push(k.alloc(a.dtype, shape)?);
    }
    // Unused slots: weights bound to A (read-only), outputs to a one-word dummy.
    let dummy = k.alloc(a.dtype, vec![0])?;
    let mut ts: Vec<&DevTensor> = vec![a];
    ts.extend((0..SLOTS).map(|i| ws.get(i).copied().unwrap_or(a)));
    ts.extend((0..SLOTS).map(|i| outs.get(i).unwrap_or(&dummy)));
    let bindings: u32 = ts.iter().map(|t| t.layout().chunks).sum();
    let fits = ws.len() <= SLOTS && bindings <= k.ctx.limits.max_storage_buffers_per_shader_stage;
    if !fits || m == 0 || kdim == 0 {
        // One MatMulEpilogue per weight (it also writes zeros when K = 0).
        let mut res = Vec::with_capacity(ws.len());
        for w in &ws {
            let one = Args {
                dev: vec![Some(a.clone()), Some((*w).clone())],
                host: vec![],
                wanted: vec![],
            };
            res.extend(super::mat_mul_epilogue::encode(k, &one)?);
        }
        return Ok(res);
    }
    let mut p = vec![0u32; 15];
    p[0] = u32_of(m, "MatMulMulti M")?;
    p[1] = u32_of(kdim, "MatMulMulti K")?;
    p[2] = ws.len() as u32;
    for (i, &n) in ns.iter().enumerate() {
        p[4 + i] = u32_of(n, "MatMulMulti N")?;
    }
    if m == 1 {
        let tiles: Vec<usize> = ns.iter().map(|n| n.div_ceil(16)).collect();
        let total: usize = tiles.iter().sum();
        for (i, &t) in tiles.iter().enumerate() {
            p[8 + i] = u32_of(t, "MatMulMulti")?;
        }
        p[11] = u32_of(total, "MatMulMulti")?;
        k.dispatch_groups("mat_mul_multi_gemv", &p, &ts, total)?;
    } else {
        let tm = m.div_ceil(64);
        let groups: Vec<usize> = ns.iter().map(|n| n.div_ceil(64) * tm).collect();
        let total: usize = groups.iter().sum();
        for (i, &n) in ns.iter().enumerate() {
            p[8 + i] = u32_of(n.div_ceil(64), "MatMulMulti")?;
        }
        p[11] = u32_of(tm, "MatMulMulti")?;
        p[12] = u32_of(groups[0], "MatMulMulti")?;
        p[13] = u32_of(groups.get(1).copied().unwrap_or(0), "MatMulMulti")?;
        p[14] = u32_of(total, "MatMulMulti")?;
        k.dispatch_groups("mat_mul_multi", &p, &ts, total)?;
    }
    Ok(outs)
}
