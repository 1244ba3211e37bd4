//! MatMulEpilogue: Y = A·B (+ bias) (+ residual) with B one 2-D weight
//! (`shaders/mat_mul_epilogue.wgsl`, 64x64 tiles; one row takes
//! `shaders/mat_mul_epilogue_gemv.wgsl`). A's leading dims are flattened into
//! rows; bias and residual are added as the outputs are stored. B may be f16
//! under f32 A (f16 weights; the accessors widen halves).

use super::{need_float, u32_of, Args};
use crate::kernel::{DevTensor, Kern};
use anyhow::{bail, Result};

/// Float operands of one dtype, B 2-D, A of rank ≥ 2.
pub fn supported(args: &Args) -> bool {
    let (Some(a), Some(b)) = (args.od(0), args.od(1)) else {
        return false;
    };
    let float = matches!(a.dtype, cellm_ir::DType::F32 | cellm_ir::DType::F16);
    // B may be f16 under f32 A (the accessors widen halves).
    let b_ok =
        b.dtype == a.dtype || (a.dtype == cellm_ir::DType::F32 && b.dtype == cellm_ir::DType::F16);
    let same = b_ok
        && [args.od(2), args.od(3)]
            .iter()
            .flatten()
            .all(|t| t.dtype == a.dtype);
    // The residual broadcasting against the product runs on the host.
    let res_ok = args.od(3).is_none_or(|r| {
        let mut y = a.shape[..a.shape.len().saturating_sub(1)].to_vec();
        y.push(b.shape.last().copied().unwrap_or(0));
        r.shape == y
    });
    float && same && res_ok && a.shape.len() >= 2 && b.shape.len() == 2
}

pub fn encode(k: &mut Kern, args: &Args) -> Result<Vec<DevTensor>> {
    let a = args.d(0, "MatMulEpilogue A")?;
    let b = args.d(1, "MatMulEpilogue B")?;
    need_float(a, "MatMulEpilogue A")?;
    let bias = args.od(2);
    let res = args.od(3);
    let (Some((&kdim, lead)), [kb, n]) = (a.shape.split_last(), b.shape.as_slice()) else {
        bail!(
            "MatMulEpilogue: A {:?} must have rank >= 2 and B {:?} be 2-D",
            a.shape,
            b.shape
        );
    };
    let n = *n;
    if lead.is_empty() || *kb != kdim {
        bail!(
            "MatMulEpilogue: A {:?} and B {:?} do not multiply",
            a.shape,
            b.shape
        );
    }
    let m: usize = lead.iter().product();
    let mut shape = lead.to_vec();
    shape.push(n);
    let b_ok =
        b.dtype == a.dtype || (a.dtype == cellm_ir::DType::F32 && b.dtype == cellm_ir::DType::F16);
    if !b_ok {
        bail!("MatMulEpilogue: A is {} but B is {}", a.dtype, b.dtype);
    }
    for t in [bias, res].into_iter().flatten() {
        if t.dtype != a.dtype {
            bail!("MatMulEpilogue: operands mix {} and {}", a.dtype, t.dtype);
        }
    }
    if let Some(t) = bias {
        if t.shape != [n] {
            bail!("MatMulEpilogue: bias must be [{n}], got {:?}", t.shape);
        }
    }
    if let Some(t) = res {
        if t.shape != shape {
            bail!(
                "MatMulEpilogue: residual must be {shape:?}, got {:?}",
                t.shape
            );
        }
    }
    let out = k.alloc(a.dtype, shape)?;
    if out.is_empty() {
        return Ok(vec![out]);
    }
    let flags = u32::from(bias.is_some()) | (u32::from(res.is_some()) << 1);
    let tiles_n = n.div_ceil(64);
    let p = [
        u32_of(m, "MatMulEpilogue M")?,
        u32_of(n, "MatMulEpilogue N")?,
        u32_of(kdim, "MatMulEpilogue K")?,
        flags,
        u32_of(tiles_n, "MatMulEpilogue")?,
        u32_of(m.div_ceil(64), "MatMulEpilogue")?,
    ];
    // Absent terms are bound to A (read-only, never read: the flags say so).
    let ts = [a, b, bias.unwrap_or(a), res.unwrap_or(a), &out];
    if m == 1 {
        k.dispatch_groups("mat_mul_epilogue_gemv", &p, &ts, tiles_n)?;
    } else {
        k.dispatch_groups("mat_mul_epilogue", &p, &ts, tiles_n * m.div_ceil(64))?;
    }
    Ok(vec![out])
}
