//! CPU kernel for MatMul (numpy semantics: batch dims broadcast, 1-D operands
//! promoted to a row (A) or a column (B) and the promoted dim dropped again).
//! f32/f64 go through the `gemm` crate (packed, AVX2/AVX-512 microkernels
//! chosen at run time, split over rayon's threads) with explicit strides
//! (broadcast batches need no copy; one row of A, as in decode steps, takes
//! gemm's GEMV path, which measured as fast as a hand-written streaming
//! kernel); f16 is computed in f32 and rounded once; integers are naive with
//! wrapping arithmetic (numpy's overflow behaviour).

use super::common::input;
use anyhow::{bail, Context, Result};
use cellm_ir::ops::MatMul;
use cellm_ir::shape::{broadcast_shapes, strides};
use cellm_ir::{DType, Tensor};
use half::f16;

pub fn run(_op: &MatMul, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let a = input(inputs, 0).context("MatMul input A")?;
    let b = input(inputs, 1).context("MatMul input B")?;
    if a.dtype() == DType::F32 && b.dtype() == DType::F16 {
        // f16-stored weights (see mat_mul_mixed.rs).
        if let Some(out) = super::mat_mul_mixed::run(a, b)? {
            return Ok(vec![out]);
        }
        let wide = super::mat_mul_mixed::widen(b)?;
        return run(_op, &[Some(a), Some(&wide)]);
    }
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

/// Row-major C[m,n] = A[m,k]·B[k,n] in f32 on dense slices (at least those
/// sizes), through `gemm` over all cores (its own GEMV path for one row).
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
        // SAFETY: the assert above keeps every access of the dense row-major
        // operands in bounds.
        unsafe { dense_gemm(m, k, n, a.as_ptr(), b.as_ptr(), c.as_mut_ptr()) }
    }
}

impl Gemm for f64 {
    fn gemm(m: usize, k: usize, n: usize, a: &[f64], b: &[f64], c: &mut [f64]) {
        assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
        // SAFETY: as for f32.
        unsafe { dense_gemm(m, k, n, a.as_ptr(), b.as_ptr(), c.as_mut_ptr()) }
    }
}

/// Row-major C[m,n] = A[m,k]·B[k,n] through `gemm` on all rayon threads.
///
/// # Safety
/// `a`, `b`, `c` must hold at least m·k, k·n, m·n elements.
unsafe fn dense_gemm<T: Copy + 'static + num_one::One>(
    m: usize,
    k: usize,
    n: usize,
    a: *const T,
    b: *const T,
    c: *mut T,
) {
    if m == 0 || n == 0 {
        return;
    }
    // gemm computes dst = alpha·dst + beta·lhs·rhs; read_dst = false ignores
    // the (uninitialised-for-it) old dst.
    gemm::gemm(
        m,
        n,
        k,
        c,
        1,
        n as isize,
        false,
        a,
        1,
        k as isize,
        b,
        1,
        n as isize,
        T::ZERO,
        T::ONE,
        false,
        false,
        false,
        gemm::Parallelism::Rayon(0),
    );
}

/// 0 and 1 of the float types `gemm` runs.
mod num_one {
    pub trait One {
        const ZERO: Self;
        const ONE: Self;
    }
    impl One for f32 {
        const ZERO: f32 = 0.0;
        const ONE: f32 = 1.0;
    }
    impl One for f64 {
        const ZERO: f64 = 0.0;
        const ONE: f64 = 1.0;
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
    // SAFETY: the asserts above bound the largest index each operand is read
    // or written at. gemm computes dst = alpha·dst + beta·lhs·rhs, so our
    // (alpha, beta) swap places; beta = 0 must not read C (it may hold NaN).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            csc as isize,
            rsc as isize,
            beta != 0.0,
            a.as_ptr(),
            csa as isize,
            rsa as isize,
            b.as_ptr(),
            csb as isize,
            rsb as isize,
            beta,
            alpha,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    }
}
