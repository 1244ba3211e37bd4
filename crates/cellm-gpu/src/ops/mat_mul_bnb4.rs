//! com.microsoft MatMulBnb4 (FP4 / NF4): the packed codes stay packed on the
//! device and are looked up in the 16-entry table inside the matmul kernels:
//! `shaders/mat_mul_bnb4_gemv.wgsl` for a few rows of A (decode),
//! `shaders/mat_mul_bnb4.wgsl` (64x64 tiles) otherwise.

use super::mat_mul_n_bits::GEMV_ROWS;
use super::{infer_shapes, need_float, u32_of, Args};
use crate::kernel::{DevTensor, Kern};
use anyhow::{anyhow, bail, Result};
use cellm_ir::ops::MatMulBnb4;
use cellm_ir::{DType, Op};

pub fn supported(args: &Args) -> bool {
    let float =
        |t: Option<&DevTensor>| t.is_some_and(|t| matches!(t.dtype, DType::F32 | DType::F16));
    float(args.od(0)) && args.od(1).is_some_and(|b| b.dtype == DType::U8) && float(args.od(2))
}

pub fn encode(k: &mut Kern, op: &MatMulBnb4, args: &Args) -> Result<Vec<DevTensor>> {
    let a = args.d(0, "MatMulBnb4 A")?;
    let b = args.d(1, "MatMulBnb4 B")?;
    let absmax = args.d(2, "MatMulBnb4 absmax")?;
    need_float(a, "MatMulBnb4 A")?;
    need_float(absmax, "MatMulBnb4 absmax")?;
    let (kd, n, bs) = (op.k, op.n, op.block_size);
    if bs == 0 {
        bail!("MatMulBnb4: block_size must be > 0");
    }
    let total = n * kd;
    if b.dtype != DType::U8 || b.len() != total.div_ceil(2) {
        bail!(
            "MatMulBnb4: B must be u8 with {} bytes, got {} {:?}",
            total.div_ceil(2),
            b.dtype,
            b.shape
        );
    }
    if absmax.len() != total.div_ceil(bs) {
        bail!(
            "MatMulBnb4: absmax must hold {} values, got {:?}",
            total.div_ceil(bs),
            absmax.shape
        );
    }
    if a.shape.last() != Some(&kd) {
        bail!("MatMulBnb4: A {:?} must end in K = {kd}", a.shape);
    }
    let (dtype, shape) = infer_shapes(&Op::MatMulBnb4(op.clone()), args)?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("MatMulBnb4: no output shape"))?;
    let out = k.alloc(dtype, shape)?;
    if out.is_empty() {
        return Ok(vec![out]);
    }
    if kd == 0 {
        bail!("MatMulBnb4: K = 0 is not supported on the GPU");
    }
    let m = a.len() / kd;
    let gemv = m <= GEMV_ROWS;
    let tiles = if gemv { n.div_ceil(8) } else { n.div_ceil(64) };
    let groups = if gemv {
        tiles * m
    } else {
        tiles * m.div_ceil(64)
    };
    let table = op.quant_type.code_book();
    let mut p = vec![
        u32_of(m, "MatMulBnb4 M")?,
        u32_of(n, "MatMulBnb4 N")?,
        u32_of(kd, "MatMulBnb4 K")?,
        u32_of(bs, "MatMulBnb4 block_size")?,
        u32_of(tiles, "MatMulBnb4")?,
        0,
        0,
        0,
    ];
    p.resize(16, 0);
    p.extend(table.iter().map(|v| v.to_bits()));
    let shader = if gemv {
        "mat_mul_bnb4_gemv"
    } else {
        "mat_mul_bnb4"
    };
    k.dispatch_groups(shader, &p, &[a, b, absmax, &out], groups)?;
    Ok(vec![out])
}
