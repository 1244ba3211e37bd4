//! MatMulSiluMul: Y = silu(A·Wg)·(A·Wu) with Wg, Wu 2-D weights, one launch:
//! `shaders/mat_mul_silu_mul_gemv.wgsl` for one row (decode steps),
//! `shaders/mat_mul_silu_mul.wgsl` (64x64 tiles) otherwise. A's leading dims
//! are flattened into rows. Either weight may be f16 under f32 A (the
//! accessors widen halves). Tensors split over more storage bindings than the
//! device allows per launch take MatMulEpilogue twice and SiluMul instead.

use super::{need_float, u32_of, Args};
use crate::kernel::{DevTensor, Kern};
use anyhow::{bail, Result};
use cellm_ir::DType;

/// Whether a weight of `b` multiplies activations of `a` on the device.
pub(crate) fn weight_dtype_ok(a: DType, b: DType) -> bool {
    b == a || (a == DType::F32 && b == DType::F16)
}

/// Float A of rank >= 2; both weights 2-D, of one shape, dtypes as above.
pub fn supported(args: &Args) -> bool {
    let (Some(a), Some(wg), Some(wu)) = (args.od(0), args.od(1), args.od(2)) else {
        return false;
    };
    matches!(a.dtype, DType::F32 | DType::F16)
        && a.shape.len() >= 2
        && wg.shape.len() == 2
        && wg.shape == wu.shape
        && weight_dtype_ok(a.dtype, wg.dtype)
        && weight_dtype_ok(a.dtype, wu.dtype)
}

pub fn encode(k: &mut Kern, args: &Args) -> Result<Vec<DevTensor>> {
    let a = args.d(0, "MatMulSiluMul A")?;
    let wg = args.d(1, "MatMulSiluMul gate weight")?;
    let wu = args.d(2, "MatMulSiluMul up weight")?;
    need_float(a, "MatMulSiluMul A")?;
    let (Some((&kdim, lead)), [kb, n]) = (a.shape.split_last(), wg.shape.as_slice()) else {
        bail!(
            "MatMulSiluMul: A {:?} must have rank >= 2 and the gate weight {:?} be 2-D",
            a.shape,
            wg.shape
        );
    };
    let n = *n;
    if lead.is_empty() || *kb != kdim || wu.shape != wg.shape {
        bail!(
            "MatMulSiluMul: A {:?}, gate weight {:?} and up weight {:?} do not multiply",
            a.shape,
            wg.shape,
            wu.shape
        );
    }
    for w in [wg, wu] {
        if !weight_dtype_ok(a.dtype, w.dtype) {
            bail!(
                "MatMulSiluMul: A is {} but a weight is {}",
                a.dtype,
                w.dtype
            );
        }
    }
    let m: usize = lead.iter().product();
    let mut shape = lead.to_vec();
    shape.push(n);
    let out = k.alloc(a.dtype, shape)?;
    if out.is_empty() {
        return Ok(vec![out]);
    }
    let ts = [a, wg, wu, &out];
    let bindings: u32 = ts.iter().map(|t| t.layout().chunks).sum();
    if bindings > k.ctx.limits.max_storage_buffers_per_shader_stage {
        // Split over more bindings than one launch may use: the products,
        // then the activation (same results, three launches).
        let mut prod = vec![];
        for w in [wg, wu] {
            let one = Args {
                dev: vec![Some(a.clone()), Some(w.clone())],
                host: vec![],
                wanted: vec![],
            };
            prod.extend(super::mat_mul_epilogue::encode(k, &one)?);
        }
        let act = Args {
            dev: prod.into_iter().map(Some).collect(),
            host: vec![],
            wanted: vec![],
        };
        return super::silu_mul::encode(k, &act);
    }
    let (mu, nu, ku) = (
        u32_of(m, "MatMulSiluMul M")?,
        u32_of(n, "MatMulSiluMul N")?,
        u32_of(kdim, "MatMulSiluMul K")?,
    );
    if m == 1 {
        let tiles = n.div_ceil(16);
        let p = [mu, nu, ku, u32_of(tiles, "MatMulSiluMul")?];
        k.dispatch_groups("mat_mul_silu_mul_gemv", &p, &ts, tiles)?;
    } else {
        let (tn, tm) = (n.div_ceil(64), m.div_ceil(64));
        let p = [
            mu,
            nu,
            ku,
            0,
            u32_of(tn, "MatMulSiluMul")?,
            u32_of(tm, "MatMulSiluMul")?,
        ];
        k.dispatch_groups("mat_mul_silu_mul", &p, &ts, tn * tm)?;
    }
    Ok(vec![out])
}
