//! CPU kernel for ReduceMean/Sum/Max/Min/Prod. Floats accumulate in f64 and
//! round once; ints accumulate in i64 (wrapping) and Mean truncates. An empty
//! reduction gives Sum 0, Prod 1, Max -inf (ints: the dtype minimum), Min
//! +inf (ints: the maximum), Mean NaN (ints: 0).

use super::common::{for_each_row, input, int_list, opt_input, tensor_from_pod, with_num, Num};
use anyhow::{bail, Result};
use cellm_ir::ops::{Reduce, ReduceKind};
use cellm_ir::shape::{normalize_axis, numel};
use cellm_ir::{DType, Tensor};

/// Calls `f(out_index, in_index)` for every input element, in input order.
fn for_each_pair(shape: &[usize], reduced: &[bool], mut f: impl FnMut(usize, usize)) {
    let kept: Vec<usize> = shape
        .iter()
        .zip(reduced)
        .map(|(&d, &r)| if r { 1 } else { d })
        .collect();
    let mut out_strides = super::common::contiguous_strides(&kept);
    for (s, &r) in out_strides.iter_mut().zip(reduced) {
        if r {
            *s = 0;
        }
    }
    let mut pos = 0;
    for_each_row(shape, [&out_strides], [0], |[o], len, [s]| {
        for i in 0..len as isize {
            f((o + i * s) as usize, pos);
            pos += 1;
        }
    });
}

fn reduce_f64(
    kind: ReduceKind,
    x: &[f64],
    shape: &[usize],
    reduced: &[bool],
    n_out: usize,
    count: usize,
) -> Vec<f64> {
    let init = match kind {
        ReduceKind::Sum | ReduceKind::Mean => 0.0,
        ReduceKind::Prod => 1.0,
        ReduceKind::Max => f64::NEG_INFINITY,
        ReduceKind::Min => f64::INFINITY,
    };
    let mut acc = vec![init; n_out];
    let combine: fn(f64, f64) -> f64 = match kind {
        ReduceKind::Sum | ReduceKind::Mean => |a, b| a + b,
        ReduceKind::Prod => |a, b| a * b,
        // NaN propagates, as in onnxruntime.
        ReduceKind::Max => |a, b| {
            if a.is_nan() || b.is_nan() {
                f64::NAN
            } else {
                a.max(b)
            }
        },
        ReduceKind::Min => |a, b| {
            if a.is_nan() || b.is_nan() {
                f64::NAN
            } else {
                a.min(b)
            }
        },
    };
    for_each_pair(shape, reduced, |o, i| acc[o] = combine(acc[o], x[i]));
    if kind == ReduceKind::Mean {
        for a in &mut acc {
            *a /= count as f64;
        }
    }
    acc
}

fn reduce_i64(
    kind: ReduceKind,
    x: &[i64],
    shape: &[usize],
    reduced: &[bool],
    n_out: usize,
    count: usize,
    dtype: DType,
) -> Vec<i64> {
    let (lowest, highest) = match dtype {
        DType::I32 => (i32::MIN as i64, i32::MAX as i64),
        DType::I8 => (i8::MIN as i64, i8::MAX as i64),
        DType::U8 => (0, u8::MAX as i64),
        _ => (i64::MIN, i64::MAX),
    };
    let init = match kind {
        ReduceKind::Sum | ReduceKind::Mean => 0,
        ReduceKind::Prod => 1,
        ReduceKind::Max => lowest,
        ReduceKind::Min => highest,
    };
    let mut acc = vec![init; n_out];
    let combine: fn(i64, i64) -> i64 = match kind {
        ReduceKind::Sum | ReduceKind::Mean => i64::wrapping_add,
        ReduceKind::Prod => i64::wrapping_mul,
        ReduceKind::Max => i64::max,
        ReduceKind::Min => i64::min,
    };
    for_each_pair(shape, reduced, |o, i| acc[o] = combine(acc[o], x[i]));
    if kind == ReduceKind::Mean && count > 0 {
        for a in &mut acc {
            *a /= count as i64;
        }
    }
    acc
}

pub fn run(op: &Reduce, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let x = input(inputs, 0)?;
    let axes = match (&op.axes, opt_input(inputs, 1)) {
        (Some(a), _) => a.clone(),
        (None, Some(t)) => int_list(t, "Reduce axes")?,
        (None, None) => vec![],
    };
    let rank = x.rank();
    let mut reduced = vec![axes.is_empty(); rank];
    if axes.is_empty() && op.noop_with_empty_axes {
        return Ok(vec![x.clone()]);
    }
    for &a in &axes {
        let ax = normalize_axis(a, rank)?;
        if reduced[ax] {
            bail!("Reduce axis {a} is repeated");
        }
        reduced[ax] = true;
    }
    let count: usize = x
        .shape()
        .iter()
        .zip(&reduced)
        .filter(|(_, &r)| r)
        .map(|(&d, _)| d)
        .product();
    let kept_shape: Vec<usize> = x
        .shape()
        .iter()
        .zip(&reduced)
        .map(|(&d, &r)| if r { 1 } else { d })
        .collect();
    let out_shape: Vec<usize> = if op.keepdims {
        kept_shape.clone()
    } else {
        x.shape()
            .iter()
            .zip(&reduced)
            .filter(|(_, &r)| !r)
            .map(|(&d, _)| d)
            .collect()
    };
    let n_out = numel(&kept_shape);
    let dt = x.dtype();
    let out = if dt.is_float() {
        let acc = reduce_f64(op.kind, &x.to_f64_vec(), x.shape(), &reduced, n_out, count);
        with_num!(dt, T => tensor_from_pod(dt, out_shape, acc.into_iter().map(T::from_f64).collect::<Vec<T>>())?)
    } else if dt == DType::Bool {
        bail!("Reduce{:?} is not defined for bool tensors", op.kind);
    } else {
        let acc = reduce_i64(
            op.kind,
            &x.to_i64_vec()?,
            x.shape(),
            &reduced,
            n_out,
            count,
            dt,
        );
        with_num!(dt, T => tensor_from_pod(dt, out_shape, acc.into_iter().map(T::from_i64).collect::<Vec<T>>())?)
    };
    Ok(vec![out])
}
