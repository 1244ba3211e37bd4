//! CPU kernel for MatMul (numpy semantics: batch dims broadcast, 1-D operands
//! promoted to a row (A) or a column (B) and the promoted dim dropped again).
//! f32/f64 go through `matrixmultiply` with explicit strides (broadcast batches
//! need no copy); f16 is computed in f32 and rounded once; integers are naive
//! with wrapping arithmetic (numpy's overflow behaviour).

use super::common::input;
use anyhow::{bail, Context, Result};
use cellm_ir::ops::MatMul;
use cellm_ir::shape::{broadcast_shapes, strides};
use cellm_ir::{DType, Tensor};
use half::f16;

pub fn run(_op: &MatMul, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let a = input(inputs, 0).context("MatMul input A")?;
    let b = input(inputs, 1).context("MatMul input B")?;
    if a.dtype() != b.dtype() {
        bail!("MatMul: A is {} but B is {}", a.dtype(), b.dtype());
    }
    let plan = Plan::new(a.shape(), b.shape()).context("MatMul")?;
    let out = match a.dtype() {
        DType::F32 => Tensor::from_vec(
            plan.out_shape.clone(),
            plan.run(a.view::<f32>()?, b.view::<f32>()?),
        ),
        DType::F64 => Tensor::from_vec(
            plan.out_shape.clone(),
            plan.run(a.view::<f64>()?, b.view::<f64>()?),
        ),
        DType::F16 => {
            let av: Vec<f32> = a.view::<f16>()?.iter().map(|v| v.to_f32()).collect();
            let bv: Vec<f32> = b.view::<f16>()?.iter().map(|v| v.to_f32()).collect();
            let c = plan.run(&av, &bv);
            Tensor::from_vec(
                plan.out_shape.clone(),
                c.into_iter().map(f16::from_f32).collect::<Vec<_>>(),
            )
        }
        DType::I64 => Tensor::from_vec(
            plan.out_shape.clone(),
            plan.run(a.view::<i64>()?, b.view::<i64>()?),
        ),
        DType::I32 => Tensor::from_vec(
            plan.out_shape.clone(),
            plan.run(a.view::<i32>()?, b.view::<i32>()?),
        ),
        other => bail!("MatMul: unsupported dtype {other}"),
    };
    Ok(vec![out])
}

/// Shapes and per-batch matrix offsets of one MatMul.
struct Plan {
    m: usize,
    k: usize,
    n: usize,
    /// Element offset of each output batch's A / B matrix (broadcast batches repeat).
    a_offsets: Vec<usize>,
    b_offsets: Vec<usize>,
    out_shape: Vec<usize>,
}

impl Plan {
    fn new(a_shape: &[usize], b_shape: &[usize]) -> Result<Plan> {
        if a_shape.is_empty() || b_shape.is_empty() {
            bail!("scalar operands are not allowed (A {a_shape:?}, B {b_shape:?})");
        }
        // Promote 1-D operands: A [K] -> [1, K], B [K] -> [K, 1].
        let a2: Vec<usize> = if a_shape.len() == 1 {
            vec![1, a_shape[0]]
        } else {
            a_shape.to_vec()
        };
        let b2: Vec<usize> = if b_shape.len() == 1 {
            vec![b_shape[0], 1]
        } else {
            b_shape.to_vec()
        };
        let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
        let (kb, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
        if k != kb {
            bail!("inner dims differ: A {a_shape:?} x B {b_shape:?}");
        }
        let a_batch = &a2[..a2.len() - 2];
        let b_batch = &b2[..b2.len() - 2];
        let batch = broadcast_shapes(a_batch, b_batch).with_context(|| {
            format!("batch dims of A {a_shape:?} and B {b_shape:?} do not broadcast")
        })?;
        let a_offsets = batch_offsets(a_batch, &batch, m * k);
        let b_offsets = batch_offsets(b_batch, &batch, k * n);
        let mut out_shape = batch.clone();
        if a_shape.len() > 1 {
            out_shape.push(m);
        }
        if b_shape.len() > 1 {
            out_shape.push(n);
        }
        Ok(Plan {
            m,
            k,
            n,
            a_offsets,
            b_offsets,
            out_shape,
        })
    }

    fn run<T: Gemm>(&self, a: &[T], b: &[T]) -> Vec<T> {
        let (m, k, n) = (self.m, self.k, self.n);
        let batches = self.a_offsets.len();
        let mut c = vec![T::default(); batches * m * n];
        if c.is_empty() || k == 0 {
            return c; // empty product: zeros (the sum over an empty K).
        }
        // Every batch reads the same B and A's batches are contiguous: one tall GEMM.
        let b_shared = self.b_offsets.iter().all(|&o| o == 0);
        let a_contiguous = self
            .a_offsets
            .iter()
            .enumerate()
            .all(|(i, &o)| o == i * m * k);
        if b_shared && a_contiguous {
            T::gemm(batches * m, k, n, a, b, &mut c);
            return c;
        }
        for (i, c_mat) in c.chunks_exact_mut(m * n).enumerate() {
            let a_mat = &a[self.a_offsets[i]..self.a_offsets[i] + m * k];
            let b_mat = &b[self.b_offsets[i]..self.b_offsets[i] + k * n];
            T::gemm(m, k, n, a_mat, b_mat, c_mat);
        }
        c
    }
}

/// Offsets (in elements) of the operand matrix for each index of the broadcast
/// batch shape `batch`; dims of size 1 (or missing) in `own` repeat.
fn batch_offsets(own: &[usize], batch: &[usize], mat_size: usize) -> Vec<usize> {
    let own_strides = strides(own);
    let lead = batch.len() - own.len();
    let total: usize = batch.iter().product();
    let mut out = Vec::with_capacity(total);
    let mut idx = vec![0usize; batch.len()];
    for _ in 0..total {
        let mut off = 0;
        for (j, (&d, &s)) in own.iter().zip(&own_strides).enumerate() {
            if d != 1 {
                off += idx[lead + j] * s;
            }
        }
        out.push(off * mat_size);
        for ax in (0..batch.len()).rev() {
            idx[ax] += 1;
            if idx[ax] < batch[ax] {
                break;
            }
            idx[ax] = 0;
        }
    }
    out
}

/// Up to this many rows of A, a row-streaming kernel beats packing B (decode
/// steps multiply one token's row by whole weight matrices).
const SMALL_M: usize = 4;

/// Columns per task of the small-M kernel: a multiple of 64 floats (whole
/// cache lines of every B row).
fn small_m_task_cols(m: usize, k: usize, n: usize) -> usize {
    let per = crate::par::rows_per_task(n.div_ceil(64), 64 * m * k);
    per * 64
}

/// C = A·B for a few rows of A: B streams through once (memory-bound), its
/// columns split over the cores; each task accumulates its slice of C rows.
fn gemm_small_m(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    use rayon::prelude::*;
    let w = small_m_task_cols(m, k, n);
    if w >= n {
        crate::vmath::gemm_rows(m, k, n, a, b, 0..n, c);
        return;
    }
    if m == 1 {
        // One row: the tasks' column ranges are disjoint slices of C.
        c[..n].par_chunks_mut(w).enumerate().for_each(|(t, cs)| {
            let j0 = t * w;
            crate::vmath::gemm_rows(1, k, n, a, b, j0..j0 + cs.len(), cs);
        });
        return;
    }
    let parts: Vec<Vec<f32>> = (0..n.div_ceil(w))
        .into_par_iter()
        .map(|t| {
            let cols = t * w..((t + 1) * w).min(n);
            let mut part = vec![0f32; m * cols.len()];
            crate::vmath::gemm_rows(m, k, n, a, b, cols, &mut part);
            part
        })
        .collect();
    for (t, part) in parts.iter().enumerate() {
        let j0 = t * w;
        let cw = part.len() / m;
        for i in 0..m {
            c[i * n + j0..i * n + j0 + cw].copy_from_slice(&part[i * cw..(i + 1) * cw]);
        }
    }
}

/// Row-major C[m,n] = A[m,k]·B[k,n] in f32 on dense slices (at least those
/// sizes), over all cores: the small-M streaming kernel for a few rows,
/// `matrixmultiply` (packed, threaded) otherwise.
pub(crate) fn sgemm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    <f32 as Gemm>::gemm(m, k, n, a, b, c)
}

/// Row-major C[m,n] = A[m,k] * B[k,n] on dense slices of exactly those sizes.
pub(crate) trait Gemm: Copy + Default {
    fn gemm(m: usize, k: usize, n: usize, a: &[Self], b: &[Self], c: &mut [Self]);
}

impl Gemm for f32 {
    fn gemm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
        assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
        if m <= SMALL_M {
            gemm_small_m(m, k, n, a, b, c);
            return;
        }
        // SAFETY: the asserts above keep every strided access in bounds.
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                1.0,
                a.as_ptr(),
                k as isize,
                1,
                b.as_ptr(),
                n as isize,
                1,
                0.0,
                c.as_mut_ptr(),
                n as isize,
                1,
            );
        }
    }
}

impl Gemm for f64 {
    fn gemm(m: usize, k: usize, n: usize, a: &[f64], b: &[f64], c: &mut [f64]) {
        assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
        // SAFETY: the asserts above keep every strided access in bounds.
        unsafe {
            matrixmultiply::dgemm(
                m,
                k,
                n,
                1.0,
                a.as_ptr(),
                k as isize,
                1,
                b.as_ptr(),
                n as isize,
                1,
                0.0,
                c.as_mut_ptr(),
                n as isize,
                1,
            );
        }
    }
}

macro_rules! naive_int_gemm {
    ($t:ty) => {
        impl Gemm for $t {
            fn gemm(m: usize, k: usize, n: usize, a: &[$t], b: &[$t], c: &mut [$t]) {
                for i in 0..m {
                    let c_row = &mut c[i * n..(i + 1) * n];
                    for p in 0..k {
                        let av = a[i * k + p];
                        let b_row = &b[p * n..(p + 1) * n];
                        for (cv, &bv) in c_row.iter_mut().zip(b_row) {
                            *cv = cv.wrapping_add(av.wrapping_mul(bv));
                        }
                    }
                }
            }
        }
    };
}
naive_int_gemm!(i64);
naive_int_gemm!(i32);

/// Strided f32 GEMM for the other kernels: C = alpha * A * B + beta * C, where
/// element (i, j) of X lives at `x[i * rs + j * cs]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm_strided(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    beta: f32,
    c: &mut [f32],
    (rsc, csc): (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |rs: usize, cs: usize, rows: usize, cols: usize| {
        (rows.saturating_sub(1)) * rs + (cols.saturating_sub(1)) * cs
    };
    assert!(k == 0 || (last(rsa, csa, m, k) < a.len() && last(rsb, csb, k, n) < b.len()));
    assert!(last(rsc, csc, m, n) < c.len());
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                let v = &mut c[i * rsc + j * csc];
                *v = if beta == 0.0 { 0.0 } else { *v * beta };
            }
        }
        return;
    }
    // SAFETY: the asserts above bound the largest index each operand is read or written at.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            beta,
            c.as_mut_ptr(),
            rsc as isize,
            csc as isize,
        );
    }
}
