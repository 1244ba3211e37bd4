//! CPU kernel for com.microsoft MatMulNBits (4 and 8 bits).
//!
//! Layout: B is [N, blocks, block*bits/8] bytes (4 bits: value 2i in the low
//! nibble of byte i, 2i+1 in the high one); scales [N * blocks]; zero points
//! are packed codes [N, ceil(blocks*bits/8)] (4 bits: low nibble first) or
//! floats like the scales, 2^(bits-1) when absent. The last block of a row is
//! zero-padded when K is not a multiple of the block.
//!
//! Three paths; none builds the whole f32 weight:
//! - [`run_fast`] (up to [`FAST_ROWS`] rows of A: decode steps): each rayon
//!   task owns a range of output columns and, per block, widens the codes in
//!   registers and multiply-accumulates in f32, using
//!   w = s·(q - zp) → Σ w·x = s·Σ q·x - s·zp·Σ x (block sums of x computed
//!   once per call). AVX2+FMA when the CPU has them, with software prefetch:
//!   a column's codes (K/2 bytes) are too short a run for the hardware
//!   prefetcher, and decode is bound by reading B.
//! - [`run_panels`] (more rows: prefill, vision): each task dequantizes an
//!   L2-sized panel of columns at a time and runs the f32 GEMM on it.
//! - [`run_slow`]: all of B dequantized, then the f32 GEMM; the obviously
//!   correct reference the tests hold the other two to.

use super::common::{f32_to_tensor, f32_values, input, opt_input};
use anyhow::{bail, Context, Result};
use cellm_ir::ops::{MatMul, MatMulNBits};
use cellm_ir::{DType, Tensor};
use half::f16;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;
use std::borrow::Cow;

/// Up to this many rows of A take the streaming kernel, which widens the
/// codes again for every group of [`ROW_GROUP`] rows; above it dequantized
/// panels and the blocked GEMM win (measured crossover on SmolLM2-135M's
/// shapes: 16-24 rows, 1 thread, AVX2).
pub const FAST_ROWS: usize = 16;
/// Rows of A that share one widening of the codes (register budget: two
/// vector registers per row and column in flight).
const ROW_GROUP: usize = 4;

/// Zero points as stored.
enum ZeroPoints<'a> {
    /// Absent: 2^(bits-1) for every block.
    Default(f32),
    /// Packed codes, `per_row` bytes a row of N.
    Packed { bytes: &'a [u8], per_row: usize },
    /// One float per (row, block).
    Float(Cow<'a, [f32]>),
}

/// The validated inputs of a MatMulNBits node.
struct Packed<'a> {
    k: usize,
    n: usize,
    bits: usize,
    bs: usize,
    blocks: usize,
    /// Bytes of one block of codes.
    blob: usize,
    codes: &'a [u8],
    scales: ScaleValues<'a>,
    zps: ZeroPoints<'a>,
}

/// Scales borrowed as f32, or kept as f16 and widened a column at a time.
enum ScaleValues<'a> {
    F32(Cow<'a, [f32]>),
    F16(&'a [f16]),
}

impl<'a> Packed<'a> {
    fn new(
        op: &MatMulNBits,
        b: &'a Tensor,
        scales: &'a Tensor,
        zero_points: Option<&'a Tensor>,
    ) -> Result<Packed<'a>> {
        let bits = op.bits;
        if bits != 4 && bits != 8 {
            bail!("MatMulNBits: bits must be 4 or 8, got {bits}");
        }
        let (k, n, bs) = (op.k, op.n, op.block_size);
        if bs < 16 || !bs.is_power_of_two() {
            bail!("MatMulNBits: block_size {bs} must be a power of two >= 16");
        }
        let blocks = k.div_ceil(bs);
        let blob = bs * bits / 8;
        if b.dtype() != DType::U8 || b.len() != n * blocks * blob {
            bail!(
                "MatMulNBits: B must be u8 [{n}, {blocks}, {blob}], got {} {:?}",
                b.dtype(),
                b.shape()
            );
        }
        if scales.len() != n * blocks {
            bail!(
                "MatMulNBits: scales must hold {} values (N {n} x {blocks} blocks), got {:?}",
                n * blocks,
                scales.shape()
            );
        }
        let scale_values = match scales.dtype() {
            DType::F16 => ScaleValues::F16(scales.view::<f16>()?),
            DType::F32 | DType::F64 => ScaleValues::F32(f32_values(scales, "MatMulNBits scales")?),
            other => bail!("MatMulNBits: scales must be a float tensor, got {other}"),
        };
        let zps = match zero_points {
            None => ZeroPoints::Default((1u32 << (bits - 1)) as f32),
            Some(z) if z.dtype() == DType::U8 => {
                let per_row = (blocks * bits).div_ceil(8);
                if z.len() != n * per_row {
                    bail!(
                        "MatMulNBits: packed zero_points must hold {} bytes, got {:?}",
                        n * per_row,
                        z.shape()
                    );
                }
                ZeroPoints::Packed {
                    bytes: z.view::<u8>()?,
                    per_row,
                }
            }
            Some(z) => {
                if z.len() != n * blocks || z.dtype() != scales.dtype() {
                    bail!(
                        "MatMulNBits: float zero_points must be {} [{n}, {blocks}], got {} {:?}",
                        scales.dtype(),
                        z.dtype(),
                        z.shape()
                    );
                }
                ZeroPoints::Float(f32_values(z, "MatMulNBits zero_points")?)
            }
        };
        Ok(Packed {
            k,
            n,
            bits,
            bs,
            blocks,
            blob,
            codes: b.view::<u8>()?,
            scales: scale_values,
            zps,
        })
    }

    /// Code `j` of a block's bytes.
    fn code(&self, block: &[u8], j: usize) -> u8 {
        if self.bits == 8 {
            block[j]
        } else if j.is_multiple_of(2) {
            block[j / 2] & 0x0f
        } else {
            block[j / 2] >> 4
        }
    }

    /// Zero point of (column `col`, block `blk`).
    fn zero_point(&self, col: usize, blk: usize) -> f32 {
        match &self.zps {
            ZeroPoints::Default(z) => *z,
            ZeroPoints::Float(v) => v[col * self.blocks + blk],
            ZeroPoints::Packed { bytes, per_row } => {
                let row = &bytes[col * per_row..(col + 1) * per_row];
                f32::from(if self.bits == 8 {
                    row[blk]
                } else if blk.is_multiple_of(2) {
                    row[blk / 2] & 0x0f
                } else {
                    row[blk / 2] >> 4
                })
            }
        }
    }

    /// Writes column `col`'s scales and zero points (one per block) into
    /// `scale_buf`/`zp_buf` where they are not stored as f32, and returns
    /// slices of them.
    fn column_params<'s>(
        &'s self,
        col: usize,
        scale_buf: &'s mut [f32],
        zp_buf: &'s mut [f32],
    ) -> (&'s [f32], &'s [f32]) {
        let range = col * self.blocks..(col + 1) * self.blocks;
        let scales: &[f32] = match &self.scales {
            ScaleValues::F32(v) => &v[range.clone()],
            ScaleValues::F16(v) => {
                v[range.clone()].convert_to_f32_slice(scale_buf);
                scale_buf
            }
        };
        let zps: &[f32] = match &self.zps {
            ZeroPoints::Float(v) => &v[range],
            ZeroPoints::Default(z) => {
                zp_buf.fill(*z);
                zp_buf
            }
            ZeroPoints::Packed { .. } => {
                for (blk, z) in zp_buf.iter_mut().enumerate() {
                    *z = self.zero_point(col, blk);
                }
                zp_buf
            }
        };
        (scales, zps)
    }
}

/// Dense [K, N] weights from the packed codes (4 or 8 bits).
pub fn dequantize(
    op: &MatMulNBits,
    b: &Tensor,
    scales: &Tensor,
    zero_points: Option<&Tensor>,
) -> Result<Vec<f32>> {
    let p = Packed::new(op, b, scales, zero_points)?;
    let (k, n, bs, blocks) = (p.k, p.n, p.bs, p.blocks);
    let mut w = vec![0f32; k * n];
    let mut scale_buf = vec![0f32; blocks];
    let mut zp_buf = vec![0f32; blocks];
    for row in 0..n {
        let (sv, zv) = p.column_params(row, &mut scale_buf, &mut zp_buf);
        for blk in 0..blocks {
            let (s, zp) = (sv[blk], zv[blk]);
            let base = (row * blocks + blk) * p.blob;
            let block = &p.codes[base..base + p.blob];
            for j in 0..bs {
                let kk = blk * bs + j;
                if kk >= k {
                    break;
                }
                w[kk * n + row] = (f32::from(p.code(block, j)) - zp) * s;
            }
        }
    }
    Ok(w)
}

/// A [..., K] times dense f32 weights [K, N], plus an optional bias [N], in A's dtype.
pub fn matmul_dense(
    a: &Tensor,
    w: Vec<f32>,
    k: usize,
    n: usize,
    bias: Option<&Tensor>,
    what: &str,
) -> Result<Tensor> {
    if a.shape().last() != Some(&k) {
        bail!("{what}: A {:?} must end in K = {k}", a.shape());
    }
    let af = Tensor::from_vec(a.shape().to_vec(), f32_values(a, what)?.into_owned());
    let wt = Tensor::from_vec(vec![k, n], w);
    let y = super::mat_mul::run(&MatMul, &[Some(&af), Some(&wt)]).context(what.to_string())?;
    let y0 = y
        .first()
        .with_context(|| format!("{what}: matmul gave no output"))?;
    let mut v = y0.f32s()?.to_vec();
    if let Some(b) = bias {
        let bv = f32_values(b, what)?;
        if bv.len() != n {
            bail!("{what}: bias has {} values, expected N = {n}", bv.len());
        }
        v.iter_mut().enumerate().for_each(|(i, x)| *x += bv[i % n]);
    }
    f32_to_tensor(a.dtype(), y0.shape().to_vec(), v)
}

/// The inputs every path reads: A, B, scales, zero points, bias.
struct Inputs<'a> {
    a: &'a Tensor,
    b: &'a Tensor,
    scales: &'a Tensor,
    zero_points: Option<&'a Tensor>,
    bias: Option<&'a Tensor>,
}

fn inputs<'a>(inputs: &[Option<&'a Tensor>]) -> Result<Inputs<'a>> {
    let a = input(inputs, 0).context("MatMulNBits input A")?;
    let b = input(inputs, 1).context("MatMulNBits input B")?;
    let scales = input(inputs, 2).context("MatMulNBits input scales")?;
    if opt_input(inputs, 4).is_some() {
        bail!("MatMulNBits: g_idx (act-order) is not supported");
    }
    Ok(Inputs {
        a,
        b,
        scales,
        zero_points: opt_input(inputs, 3),
        bias: opt_input(inputs, 5),
    })
}

pub fn run(op: &MatMulNBits, ins: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let i = inputs(ins)?;
    let rows: usize = i.a.shape().iter().rev().skip(1).product();
    if rows <= FAST_ROWS {
        run_fast(op, ins)
    } else {
        run_panels(op, ins)
    }
}

/// Dequantize all of B to f32, then the f32 GEMM: the straightforward
/// reference the tests hold the other paths to.
pub fn run_slow(op: &MatMulNBits, ins: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let i = inputs(ins)?;
    let w = dequantize(op, i.b, i.scales, i.zero_points)?;
    Ok(vec![matmul_dense(
        i.a,
        w,
        op.k,
        op.n,
        i.bias,
        "MatMulNBits",
    )?])
}

/// Rows of A prepared for the streaming kernel: zero-padded to whole blocks,
/// 4-bit: each group of 16 values reordered to [x0, x2, .., x14, x1, x3, ..,
/// x15] (the order in which the kernel widens 8 bytes of codes: low nibbles,
/// then high nibbles), and per-block sums of x for the zero-point term.
struct PreparedRows {
    /// [rows, blocks * bs]
    x: Vec<f32>,
    /// [rows, blocks]
    sums: Vec<f32>,
    row_len: usize,
}

fn prepare_rows(a: &[f32], rows: usize, p: &Packed) -> PreparedRows {
    let row_len = p.blocks * p.bs;
    let mut x = vec![0f32; rows * row_len];
    let mut sums = vec![0f32; rows * p.blocks];
    for r in 0..rows {
        let src = &a[r * p.k..(r + 1) * p.k];
        let dst = &mut x[r * row_len..(r + 1) * row_len];
        if p.bits == 4 {
            for (kk, &v) in src.iter().enumerate() {
                let (g, j) = (kk / 16, kk % 16);
                dst[g * 16 + (j % 2) * 8 + j / 2] = v;
            }
        } else {
            dst[..p.k].copy_from_slice(src);
        }
        for (blk, s) in sums[r * p.blocks..(r + 1) * p.blocks]
            .iter_mut()
            .enumerate()
        {
            let end = ((blk + 1) * p.bs).min(p.k);
            *s = src[blk * p.bs..end].iter().sum();
        }
    }
    PreparedRows { x, sums, row_len }
}

/// Zero points as the kernels read them.
#[derive(Clone, Copy)]
enum Zps<'a> {
    /// One value for every block (absent zero points: 2^(bits-1)).
    Same(f32),
    /// [N * blocks]
    PerBlock(&'a [f32]),
}

impl Zps<'_> {
    fn at(&self, i: usize) -> f32 {
        match self {
            Zps::Same(z) => *z,
            Zps::PerBlock(v) => v[i],
        }
    }
}

/// The streaming kernel (any number of rows; [`run`] uses it up to [`FAST_ROWS`]).
pub fn run_fast(op: &MatMulNBits, ins: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    streaming(op, ins, Path::Stream, true)
}

/// [`run_fast`] without SIMD (what CPUs without AVX2+FMA run; for the tests).
pub fn run_fast_portable(op: &MatMulNBits, ins: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    streaming(op, ins, Path::Stream, false)
}

/// The panel kernel (more rows than [`FAST_ROWS`]: prefill, vision): each
/// task dequantizes a panel of columns at a time (about 256 KiB, L2-sized)
/// and multiplies all rows of A by it with the f32 GEMM, so the whole f32
/// weight never exists and B is read once.
pub fn run_panels(op: &MatMulNBits, ins: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    streaming(op, ins, Path::Panels, true)
}

/// [`run_panels`] without SIMD in the dequantization (for the tests).
pub fn run_panels_portable(op: &MatMulNBits, ins: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    streaming(op, ins, Path::Panels, false)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    Stream,
    Panels,
}

fn streaming(
    op: &MatMulNBits,
    ins: &[Option<&Tensor>],
    path: Path,
    simd: bool,
) -> Result<Vec<Tensor>> {
    let i = inputs(ins)?;
    let p = Packed::new(op, i.b, i.scales, i.zero_points)?;
    let (k, n) = (p.k, p.n);
    if i.a.shape().last() != Some(&k) {
        bail!("MatMulNBits: A {:?} must end in K = {k}", i.a.shape());
    }
    if !matches!(i.a.dtype(), DType::F32 | DType::F16) {
        bail!("MatMulNBits: A must be f32 or f16, got {}", i.a.dtype());
    }
    let bias = match i.bias {
        Some(b) => {
            let v = f32_values(b, "MatMulNBits bias")?;
            if v.len() != n {
                bail!("MatMulNBits: bias has {} values, expected N = {n}", v.len());
            }
            Some(v)
        }
        None => None,
    };
    let mut out_shape = i.a.shape().to_vec();
    *out_shape.last_mut().context("MatMulNBits: A is a scalar")? = n;
    let rows: usize = i.a.shape()[..i.a.rank() - 1].iter().product();
    let av = f32_values(i.a, "MatMulNBits A")?;
    let prep = prepare_rows(&av, rows, &p);
    // f16 scales and packed zero points are widened once per call (1/32 of
    // the codes' element count); f32 ones (what `.cellm` files give) are read in place.
    let scales: Cow<[f32]> = match &p.scales {
        ScaleValues::F32(v) => Cow::Borrowed(v),
        ScaleValues::F16(v) => {
            let mut w = vec![0f32; v.len()];
            v.convert_to_f32_slice(&mut w);
            Cow::Owned(w)
        }
    };
    let zp_values: Option<Cow<[f32]>> = match &p.zps {
        ZeroPoints::Default(_) => None,
        ZeroPoints::Float(v) => Some(Cow::Borrowed(v)),
        ZeroPoints::Packed { .. } => Some(Cow::Owned(
            (0..n * p.blocks)
                .map(|i| p.zero_point(i / p.blocks, i % p.blocks))
                .collect(),
        )),
    };
    let zps = match (&p.zps, &zp_values) {
        (ZeroPoints::Default(z), _) => Zps::Same(*z),
        (_, Some(v)) => Zps::PerBlock(v),
        (_, None) => bail!("MatMulNBits: zero points were not read"),
    };
    let t = Tile {
        codes: p.codes,
        scales: &scales,
        zps,
        x: &prep.x,
        sums: &prep.sums,
        row_len: prep.row_len,
        blocks: p.blocks,
        bs: p.bs,
        blob: p.blob,
    };
    let mut out = match path {
        Path::Stream => stream_rows(&t, rows, n, k, p.bits, simd),
        Path::Panels => panel_rows(&t, rows, n, k, p.bits, simd),
    };
    if let Some(b) = &bias {
        for row in out.chunks_exact_mut(n.max(1)) {
            row.iter_mut().zip(b.iter()).for_each(|(o, b)| *o += b);
        }
    }
    Ok(vec![f32_to_tensor(i.a.dtype(), out_shape, out)?])
}

/// Row-major [rows, n] by the streaming kernels.
fn stream_rows(t: &Tile, rows: usize, n: usize, k: usize, bits: usize, simd: bool) -> Vec<f32> {
    // Column-major [N, rows] while tasks own column ranges; transposed below.
    let mut out_t = vec![0f32; n * rows];
    if rows > 0 && n > 0 {
        let cols_per_task = crate::par::rows_per_task(n, rows * k);
        let work = |c0: usize, chunk: &mut [f32]| {
            let cols = chunk.len() / rows;
            for r0 in (0..rows).step_by(ROW_GROUP) {
                let group = (rows - r0).min(ROW_GROUP);
                let g = t.rows(r0, group);
                let out = OutCols {
                    out: &mut *chunk,
                    first_col: c0,
                    rows,
                    r0,
                };
                tile_group(&g, group, bits, c0..c0 + cols, out, simd);
            }
        };
        if cols_per_task >= n {
            work(0, &mut out_t);
        } else {
            out_t
                .par_chunks_mut(cols_per_task * rows)
                .enumerate()
                .for_each(|(i, chunk)| work(i * cols_per_task, chunk));
        }
    }
    if rows == 1 {
        return out_t;
    }
    let mut out = vec![0f32; rows * n];
    for c in 0..n {
        for r in 0..rows {
            out[r * n + c] = out_t[c * rows + r];
        }
    }
    out
}

/// Row-major [rows, n] by dequantized panels and the f32 GEMM.
fn panel_rows(t: &Tile, rows: usize, n: usize, k: usize, bits: usize, simd: bool) -> Vec<f32> {
    let mut out = vec![0f32; rows * n];
    if rows == 0 || n == 0 {
        return out;
    }
    let panel = (PANEL_FLOATS / t.row_len.max(1)).clamp(8, 512);
    // Tasks own column ranges (whole panels) and fill their own [rows, cols] blocks.
    let cols_per_task = crate::par::rows_per_task(n, rows * k).next_multiple_of(panel);
    let task = |c0: usize| -> (usize, Vec<f32>) {
        let c1 = (c0 + cols_per_task).min(n);
        let width = c1 - c0;
        let mut local = vec![0f32; rows * width];
        let mut w = vec![0f32; panel.min(width) * t.row_len];
        for p0 in (c0..c1).step_by(panel) {
            let cols = p0..(p0 + panel).min(c1);
            let w = &mut w[..cols.len() * t.row_len];
            dequantize_panel(t, cols.clone(), bits, w, simd);
            gemm_bt(
                rows,
                cols.len(),
                t.row_len,
                t.x,
                w,
                &mut local[p0 - c0..],
                width,
            );
        }
        (c0, local)
    };
    let parts: Vec<(usize, Vec<f32>)> = if cols_per_task >= n {
        vec![task(0)]
    } else {
        (0..n)
            .step_by(cols_per_task)
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(task)
            .collect()
    };
    for (c0, local) in parts {
        let width = local.len() / rows;
        for r in 0..rows {
            out[r * n + c0..r * n + c0 + width].copy_from_slice(&local[r * width..(r + 1) * width]);
        }
    }
    out
}

/// f32 values of one dequantized panel: about 256 KiB, so it stays in L2
/// while the GEMM reads it.
const PANEL_FLOATS: usize = 1 << 17;

/// Columns `cols` of B as f32, [cols, row_len] (each column in the order of
/// the prepared rows), into `w`.
fn dequantize_panel(
    t: &Tile,
    cols: std::ops::Range<usize>,
    bits: usize,
    w: &mut [f32],
    simd: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if simd && crate::vmath::has_avx2() {
        // SAFETY: AVX2 and FMA are present (checked at run time); the
        // function asserts the lengths it relies on.
        unsafe { avx2::dequantize_panel(t, cols, bits, w) };
        return;
    }
    for (i, col) in cols.enumerate() {
        let dst = &mut w[i * t.row_len..(i + 1) * t.row_len];
        let codes = &t.codes[col * t.blocks * t.blob..(col + 1) * t.blocks * t.blob];
        for blk in 0..t.blocks {
            let s = t.scales[col * t.blocks + blk];
            let zp = t.zps.at(col * t.blocks + blk);
            let block = &codes[blk * t.blob..(blk + 1) * t.blob];
            let d = &mut dst[blk * t.bs..(blk + 1) * t.bs];
            if bits == 4 {
                for (g, bytes) in block.chunks_exact(8).enumerate() {
                    for (i, &b) in bytes.iter().enumerate() {
                        d[g * 16 + i] = (f32::from(b & 0x0f) - zp) * s;
                        d[g * 16 + 8 + i] = (f32::from(b >> 4) - zp) * s;
                    }
                }
            } else {
                for (o, &b) in d.iter_mut().zip(block) {
                    *o = (f32::from(b) - zp) * s;
                }
            }
        }
    }
}

/// dst[r·dst_stride + c] = Σ_k x[r·k_len + k]·w[c·k_len + k] for r < rows,
/// c < cols (A times the panel transposed), on the calling thread.
fn gemm_bt(
    rows: usize,
    cols: usize,
    k_len: usize,
    x: &[f32],
    w: &[f32],
    dst: &mut [f32],
    dst_stride: usize,
) {
    if rows == 0 || cols == 0 || k_len == 0 {
        return;
    }
    assert!(x.len() >= rows * k_len && w.len() >= cols * k_len);
    assert!(cols <= dst_stride && dst.len() >= (rows - 1) * dst_stride + cols);
    // SAFETY: the asserts keep every element gemm touches (x: rows × k_len
    // row-major; w: cols × k_len, column c at c·k_len; dst: rows × cols with
    // row stride dst_stride) inside the slices.
    unsafe {
        gemm::gemm(
            rows,
            cols,
            k_len,
            dst.as_mut_ptr(),
            1,
            dst_stride as isize,
            false,
            x.as_ptr(),
            1,
            k_len as isize,
            w.as_ptr(),
            k_len as isize,
            1,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// What the kernels read: every column's codes, scales and zero points, and
/// prepared rows of A (a group of up to [`ROW_GROUP`] in the streaming kernels).
#[derive(Clone, Copy)]
struct Tile<'a> {
    /// [N, blocks, blob]
    codes: &'a [u8],
    /// [N * blocks]
    scales: &'a [f32],
    zps: Zps<'a>,
    /// [R, row_len]
    x: &'a [f32],
    /// [R, blocks]
    sums: &'a [f32],
    row_len: usize,
    blocks: usize,
    bs: usize,
    blob: usize,
}

impl<'a> Tile<'a> {
    /// The same columns for prepared rows `r0..r0 + count`.
    fn rows(&self, r0: usize, count: usize) -> Tile<'a> {
        Tile {
            x: &self.x[r0 * self.row_len..(r0 + count) * self.row_len],
            sums: &self.sums[r0 * self.blocks..(r0 + count) * self.blocks],
            ..*self
        }
    }
}

/// A task's slice of the column-major output: column c, row r0 + r at
/// `out[(c - first_col) * rows + r0 + r]`.
struct OutCols<'a> {
    out: &'a mut [f32],
    first_col: usize,
    rows: usize,
    r0: usize,
}

impl OutCols<'_> {
    fn set(&mut self, col: usize, r: usize, v: f32) {
        self.out[(col - self.first_col) * self.rows + self.r0 + r] = v;
    }
}

/// Columns `cols` for the `group` rows of `t`: a const-generic kernel per
/// (rows, bits), columns `C` at a time (4 for one row, 2 for two, else 1: the
/// accumulators must fit the 16 vector registers), the rest one by one.
fn tile_group(
    t: &Tile,
    group: usize,
    bits: usize,
    cols: std::ops::Range<usize>,
    mut out: OutCols,
    simd: bool,
) {
    macro_rules! go {
        ($r:literal, $c:literal, $bits:literal) => {{
            let wide_end = cols.start + (cols.len() / $c) * $c;
            kernel::<$r, $c, $bits>(t, cols.start..wide_end, &mut out, simd);
            kernel::<$r, 1, $bits>(t, wide_end..cols.end, &mut out, simd);
        }};
    }
    match (group, bits) {
        (1, 4) => go!(1, 4, 4),
        (2, 4) => go!(2, 2, 4),
        (3, 4) => go!(3, 1, 4),
        (_, 4) => go!(4, 1, 4),
        (1, _) => go!(1, 4, 8),
        (2, _) => go!(2, 2, 8),
        (3, _) => go!(3, 1, 8),
        _ => go!(4, 1, 8),
    }
}

/// Columns `cols` (a multiple of `C` long) for `R` rows.
fn kernel<const R: usize, const C: usize, const BITS: usize>(
    t: &Tile,
    cols: std::ops::Range<usize>,
    out: &mut OutCols,
    simd: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if simd && crate::vmath::has_avx2() {
        // SAFETY: the CPU has AVX2 and FMA (checked at run time). The kernel
        // reads codes, scales and zero points of columns < N and rows of
        // `t.x` / `t.sums` < R, within the lengths `Packed::new` and
        // `prepare_rows` establish (`avx2::columns` asserts them).
        unsafe { avx2::columns::<R, C, BITS>(t, cols, out) };
        return;
    }
    for col in cols {
        let codes = &t.codes[col * t.blocks * t.blob..(col + 1) * t.blocks * t.blob];
        let mut sum = [0f32; R];
        for blk in 0..t.blocks {
            let block = &codes[blk * t.blob..(blk + 1) * t.blob];
            let s = t.scales[col * t.blocks + blk];
            let zp = t.zps.at(col * t.blocks + blk);
            for (r, acc) in sum.iter_mut().enumerate() {
                let x = &t.x[r * t.row_len + blk * t.bs..r * t.row_len + (blk + 1) * t.bs];
                let mut dot = 0f32;
                if BITS == 4 {
                    // Groups of 8 bytes: low nibbles meet x[0..8], high x[8..16] (see prepare_rows).
                    for (g, bytes) in block.chunks_exact(8).enumerate() {
                        for (i, &b) in bytes.iter().enumerate() {
                            dot += f32::from(b & 0x0f) * x[g * 16 + i];
                            dot += f32::from(b >> 4) * x[g * 16 + 8 + i];
                        }
                    }
                } else {
                    for (&b, &xv) in block.iter().zip(x) {
                        dot += f32::from(b) * xv;
                    }
                }
                *acc += s * dot - s * zp * t.sums[r * t.blocks + blk];
            }
        }
        for (r, &v) in sum.iter().enumerate() {
            out.set(col, r, v);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{OutCols, Tile, Zps};
    use std::arch::x86_64::*;

    /// Column groups ahead whose codes are prefetched.
    const PREFETCH_GROUPS: usize = 2;

    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    /// Per column group and block: dot[r][c] = Σ q·x with the codes widened 8
    /// at a time to f32, then acc[r][c] += s·dot; only the `acc` chains carry
    /// across blocks. The zero-point term Σ_blocks s·zp·Σx follows per
    /// column, 8 blocks at a time.
    // Indexing the small register arrays by (row, column) reads clearer than
    // iterator chains over two nested const-sized arrays.
    #[allow(clippy::needless_range_loop)]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn columns<const R: usize, const C: usize, const BITS: usize>(
        t: &Tile,
        cols: std::ops::Range<usize>,
        out: &mut OutCols,
    ) {
        let (blocks, blob, bs) = (t.blocks, t.blob, t.bs);
        let col_bytes = blocks * blob;
        assert!(cols.end * col_bytes <= t.codes.len() && cols.end * blocks <= t.scales.len());
        if let Zps::PerBlock(z) = t.zps {
            assert!(cols.end * blocks <= z.len());
        }
        assert!(t.x.len() >= R * t.row_len && t.row_len >= blocks * bs);
        assert!(t.sums.len() >= R * blocks && bs.is_multiple_of(16) && blob * 8 == bs * BITS);
        let low = _mm256_set1_epi32(0x0f);
        let groups = bs / 16;
        let mut col = cols.start;
        while col + C <= cols.end {
            let mut acc = [[_mm256_setzero_ps(); C]; R];
            let codes = t.codes.as_ptr().add(col * col_bytes);
            let scales = t.scales.as_ptr().add(col * blocks);
            let zps = match t.zps {
                Zps::PerBlock(z) => Some(z.as_ptr().add(col * blocks)),
                Zps::Same(_) => None,
            };
            for blk in 0..blocks {
                // The C columns' codes are one contiguous run, read at C·blob
                // bytes a block; each column alone is too short (K/2 bytes) for
                // the hardware prefetcher, so fetch the run PREFETCH_GROUPS
                // groups ahead (hints: out-of-range addresses do not fault).
                let ahead = codes.wrapping_add(PREFETCH_GROUPS * C * col_bytes + blk * C * blob);
                for line in (0..C * blob).step_by(64) {
                    _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line).cast());
                }
                // Scales (and zero points) likewise: C·4 bytes a block.
                let ahead = PREFETCH_GROUPS * C * blocks + blk * C;
                _mm_prefetch::<_MM_HINT_T0>(scales.wrapping_add(ahead).cast());
                if let Some(z) = zps {
                    _mm_prefetch::<_MM_HINT_T0>(z.wrapping_add(ahead).cast());
                }
                let mut dot = [[_mm256_setzero_ps(); C]; R];
                for g in 0..groups {
                    let xo = blk * bs + g * 16;
                    for c in 0..C {
                        let src = codes.add(c * col_bytes + blk * blob);
                        let (w0, w1) = if BITS == 4 {
                            // 8 bytes → 8 lanes; low nibbles are values 2i, high 2i+1.
                            let q = _mm256_cvtepu8_epi32(_mm_loadl_epi64(src.add(g * 8).cast()));
                            (
                                _mm256_cvtepi32_ps(_mm256_and_si256(q, low)),
                                _mm256_cvtepi32_ps(_mm256_srli_epi32(q, 4)),
                            )
                        } else {
                            let q0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(src.add(g * 16).cast()));
                            let q1 =
                                _mm256_cvtepu8_epi32(_mm_loadl_epi64(src.add(g * 16 + 8).cast()));
                            (_mm256_cvtepi32_ps(q0), _mm256_cvtepi32_ps(q1))
                        };
                        for r in 0..R {
                            let x = t.x.as_ptr().add(r * t.row_len + xo);
                            dot[r][c] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x), dot[r][c]);
                            dot[r][c] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x.add(8)), dot[r][c]);
                        }
                    }
                }
                for c in 0..C {
                    let s = _mm256_broadcast_ss(&*scales.add(c * blocks + blk));
                    for r in 0..R {
                        acc[r][c] = _mm256_fmadd_ps(dot[r][c], s, acc[r][c]);
                    }
                }
            }
            for c in 0..C {
                let z = zero_point_terms::<R>(t, col + c);
                for r in 0..R {
                    out.set(col + c, r, hsum(acc[r][c]) - z[r]);
                }
            }
            col += C;
        }
    }

    /// Columns `cols` of B as f32 in the prepared rows' order: (q - zp)·s
    /// with the codes widened 8 at a time.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dequantize_panel(
        t: &Tile,
        cols: std::ops::Range<usize>,
        bits: usize,
        w: &mut [f32],
    ) {
        let (blocks, blob, bs) = (t.blocks, t.blob, t.bs);
        let col_bytes = blocks * blob;
        assert!(cols.end * col_bytes <= t.codes.len() && cols.end * blocks <= t.scales.len());
        if let Zps::PerBlock(z) = t.zps {
            assert!(cols.end * blocks <= z.len());
        }
        assert!(w.len() >= cols.len() * t.row_len && t.row_len >= blocks * bs);
        assert!(bs.is_multiple_of(16) && blob * 8 == bs * bits);
        let low = _mm256_set1_epi32(0x0f);
        for (i, col) in cols.enumerate() {
            let codes = t.codes.as_ptr().add(col * col_bytes);
            let dst = w.as_mut_ptr().add(i * t.row_len);
            for blk in 0..blocks {
                let s = *t.scales.get_unchecked(col * blocks + blk);
                let sv = _mm256_set1_ps(s);
                let bias = _mm256_set1_ps(-t.zps.at(col * blocks + blk) * s);
                let src = codes.add(blk * blob);
                let d = dst.add(blk * bs);
                for g in 0..bs / 16 {
                    let (w0, w1) = if bits == 4 {
                        let q = _mm256_cvtepu8_epi32(_mm_loadl_epi64(src.add(g * 8).cast()));
                        (
                            _mm256_cvtepi32_ps(_mm256_and_si256(q, low)),
                            _mm256_cvtepi32_ps(_mm256_srli_epi32(q, 4)),
                        )
                    } else {
                        let q0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(src.add(g * 16).cast()));
                        let q1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(src.add(g * 16 + 8).cast()));
                        (_mm256_cvtepi32_ps(q0), _mm256_cvtepi32_ps(q1))
                    };
                    _mm256_storeu_ps(d.add(g * 16), _mm256_fmadd_ps(w0, sv, bias));
                    _mm256_storeu_ps(d.add(g * 16 + 8), _mm256_fmadd_ps(w1, sv, bias));
                }
            }
        }
    }

    /// Σ_blocks s·zp·Σx of column `col` for each row.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn zero_point_terms<const R: usize>(t: &Tile, col: usize) -> [f32; R] {
        let blocks = t.blocks;
        let s = t.scales.as_ptr().add(col * blocks);
        let (same, zp) = match t.zps {
            Zps::Same(z) => (z, None),
            Zps::PerBlock(v) => (1.0, Some(v.as_ptr().add(col * blocks))),
        };
        let mut acc = [_mm256_setzero_ps(); R];
        let mut blk = 0;
        while blk + 8 <= blocks {
            let mut sz = _mm256_loadu_ps(s.add(blk));
            if let Some(zp) = zp {
                sz = _mm256_mul_ps(sz, _mm256_loadu_ps(zp.add(blk)));
            }
            for (r, a) in acc.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(
                    sz,
                    _mm256_loadu_ps(t.sums.as_ptr().add(r * blocks + blk)),
                    *a,
                );
            }
            blk += 8;
        }
        let mut out = [0f32; R];
        for r in 0..R {
            let mut v = hsum(acc[r]);
            for b in blk..blocks {
                let sz = *s.add(b) * zp.map_or(1.0, |z| *z.add(b));
                v += sz * *t.sums.get_unchecked(r * blocks + b);
            }
            out[r] = v * same;
        }
        out
    }
}
