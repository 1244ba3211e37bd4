//! CPU kernel for the elementwise binary ops (numpy broadcasting). f16 math
//! runs in f32 and rounds back once; integer arithmetic wraps like C, and
//! integer Div truncates toward zero.

use super::common::{broadcast_map2, input, pod_view, tensor_from_pod, with_num, Num};
use anyhow::{bail, Result};
use cellm_ir::ops::{Binary, BinaryOp};
use cellm_ir::{DType, Tensor};
use half::f16;

/// Remainder with the sign of the divisor (numpy `mod`), from the truncated one.
macro_rules! floor_mod {
    ($r:expr, $b:expr, $zero:expr) => {{
        let (r, b) = ($r, $b);
        if r != $zero && ((r < $zero) != (b < $zero)) {
            r + b
        } else {
            r
        }
    }};
}

macro_rules! float_fn {
    ($name:ident, $T:ty) => {
        fn $name(op: BinaryOp) -> Result<fn($T, $T) -> $T> {
            Ok(match op {
                BinaryOp::Add => |a, b| a + b,
                BinaryOp::Sub => |a, b| a - b,
                BinaryOp::Mul => |a, b| a * b,
                BinaryOp::Div => |a, b| a / b,
                BinaryOp::Pow => <$T>::powf,
                // Rust's float `%` is C's fmod.
                BinaryOp::Mod { fmod: true } => |a, b| a % b,
                BinaryOp::Mod { fmod: false } => |a, b| floor_mod!(a % b, b, 0.0),
                other => bail!("{other:?} is not an arithmetic op"),
            })
        }
    };
}
float_fn!(f32_fn, f32);
float_fn!(f64_fn, f64);

macro_rules! int_fn {
    ($name:ident, $T:ty) => {
        /// Div/Mod assume the divisor was checked for zeros.
        fn $name(op: BinaryOp) -> Result<fn($T, $T) -> $T> {
            Ok(match op {
                BinaryOp::Add => |a: $T, b| a.wrapping_add(b),
                BinaryOp::Sub => |a: $T, b| a.wrapping_sub(b),
                BinaryOp::Mul => |a: $T, b| a.wrapping_mul(b),
                BinaryOp::Div => |a: $T, b| a.wrapping_div(b),
                BinaryOp::Mod { fmod: true } => |a: $T, b| a.wrapping_rem(b),
                #[allow(unused_comparisons)]
                BinaryOp::Mod { fmod: false } => |a: $T, b| floor_mod!(a.wrapping_rem(b), b, 0),
                // Integer powers go through f64 and truncate back.
                BinaryOp::Pow => |a: $T, b: $T| <$T as Num>::from_f64(a.to_f64().powf(b.to_f64())),
                other => bail!("{other:?} is not an arithmetic op"),
            })
        }
    };
}
int_fn!(i64_fn, i64);
int_fn!(i32_fn, i32);
int_fn!(i8_fn, i8);
int_fn!(u8_fn, u8);

fn map_typed<T: Num, O: bytemuck::Pod + Send + Sync>(
    a: &Tensor,
    b: &Tensor,
    out_dtype: DType,
    f: impl Fn(T, T) -> O,
) -> Result<Tensor> {
    let (shape, out) = broadcast_map2(a.view::<T>()?, a.shape(), b.view::<T>()?, b.shape(), f)?;
    tensor_from_pod(out_dtype, shape, out)
}

fn arithmetic(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let dt = a.dtype();
    if matches!(op, BinaryOp::Div | BinaryOp::Mod { .. }) && !dt.is_float() && dt != DType::Bool {
        // Integer division by zero has no defined result; refuse it.
        if b.to_i64_vec()?.contains(&0) {
            bail!("integer {op:?} by zero");
        }
    }
    if dt == DType::F32 {
        if let Some(t) = f32_fast(op, a, b) {
            return t;
        }
    }
    match dt {
        DType::F32 => map_typed(a, b, dt, f32_fn(op)?),
        DType::F64 => map_typed(a, b, dt, f64_fn(op)?),
        DType::F16 => {
            let f = f32_fn(op)?;
            map_typed(a, b, dt, |x: f16, y: f16| {
                f16::from_f32(f(x.to_f32(), y.to_f32()))
            })
        }
        DType::I64 => map_typed(a, b, dt, i64_fn(op)?),
        DType::I32 => map_typed(a, b, dt, i32_fn(op)?),
        DType::I8 => map_typed(a, b, dt, i8_fn(op)?),
        DType::U8 => map_typed(a, b, dt, u8_fn(op)?),
        DType::Bool => bail!("{op:?} is not defined for bool tensors"),
    }
}

/// f32 Add/Sub/Mul/Div where one operand has the output's size and the other
/// the same size, one element, or repeats along rows (a trailing-dims
/// suffix, e.g. a bias [N] against [.., N]): monomorphised loops that
/// vectorise, split over the cores. `None` for the other cases.
fn f32_fast(op: BinaryOp, a: &Tensor, b: &Tensor) -> Option<Result<Tensor>> {
    macro_rules! with_op {
        ($f:expr) => {
            f32_map2(a, b, $f)
        };
    }
    match op {
        BinaryOp::Add => with_op!(|x: f32, y: f32| x + y),
        BinaryOp::Sub => with_op!(|x: f32, y: f32| x - y),
        BinaryOp::Mul => with_op!(|x: f32, y: f32| x * y),
        BinaryOp::Div => with_op!(|x: f32, y: f32| x / y),
        _ => None,
    }
}

/// How the smaller operand lines up with the larger one's elements.
enum Repeat {
    /// Elementwise, same length.
    Same,
    /// One value for every element.
    Scalar,
    /// The small operand's `len` values repeat along consecutive rows.
    Rows(usize),
}

fn repeat_of(small: &[usize], big: &[usize]) -> Option<Repeat> {
    let n: usize = small.iter().product();
    if small == big {
        return Some(Repeat::Same);
    }
    if n == 1 && small.len() <= big.len() {
        return Some(Repeat::Scalar);
    }
    // Leading 1s dropped, the rest must equal big's trailing dims.
    let core: Vec<usize> = small.iter().copied().skip_while(|&d| d == 1).collect();
    (core.len() <= big.len()
        && big[big.len() - core.len()..] == core[..]
        && small.len() <= big.len())
    .then_some(Repeat::Rows(n))
}

fn f32_map2(
    a: &Tensor,
    b: &Tensor,
    f: impl Fn(f32, f32) -> f32 + Sync + Send + Copy,
) -> Option<Result<Tensor>> {
    let (av, bv) = (a.f32s().ok()?, b.f32s().ok()?);
    // The output has the larger operand's shape (checked by the repeat match).
    let (big_is_a, rep) = if let Some(r) = repeat_of(b.shape(), a.shape()) {
        (true, r)
    } else {
        (false, repeat_of(a.shape(), b.shape())?)
    };
    let (big, small, shape) = if big_is_a {
        (av, bv, a.shape().to_vec())
    } else {
        (bv, av, b.shape().to_vec())
    };
    let g = move |x: f32, y: f32| if big_is_a { f(x, y) } else { f(y, x) };
    let out = crate::par::fill_vec(big.len(), 1, |off, o| {
        let xs = &big[off..off + o.len()];
        match rep {
            Repeat::Same => {
                let ys = &small[off..off + o.len()];
                for ((o, &x), &y) in o.iter_mut().zip(xs).zip(ys) {
                    *o = g(x, y);
                }
            }
            Repeat::Scalar => {
                let y = small[0];
                for (o, &x) in o.iter_mut().zip(xs) {
                    *o = g(x, y);
                }
            }
            Repeat::Rows(len) => {
                // Row segments, so the inner loop is a plain zip.
                let mut i = 0;
                while i < o.len() {
                    let p = (off + i) % len;
                    let take = (len - p).min(o.len() - i);
                    let (os, xr, yr) = (&mut o[i..i + take], &xs[i..i + take], &small[p..p + take]);
                    for ((o, &x), &y) in os.iter_mut().zip(xr).zip(yr) {
                        *o = g(x, y);
                    }
                    i += take;
                }
            }
        }
    });
    Some(Ok(Tensor::from_vec(shape, out)))
}

/// Pow whose exponent dtype differs from the base's. Float bases use the
/// exponent at full precision (f32 math for f32/f16 bases, f64 for f64);
/// integer bases go through f64 and truncate back.
fn pow_mixed(base: &Tensor, exponent: &Tensor) -> Result<Tensor> {
    if exponent.dtype() == DType::Bool {
        bail!("Pow exponent cannot be bool");
    }
    let e = exponent.to_f64_vec();
    let es = exponent.shape();
    let (bs, dt) = (base.shape(), base.dtype());
    match dt {
        DType::F32 => {
            let (shape, out) = broadcast_map2(base.f32s()?, bs, &e, es, |a, x| a.powf(x as f32))?;
            tensor_from_pod(dt, shape, out)
        }
        DType::F16 => {
            let pow = |a: f16, x: f64| f16::from_f32(a.to_f32().powf(x as f32));
            let (shape, out) = broadcast_map2(base.view::<f16>()?, bs, &e, es, pow)?;
            tensor_from_pod(dt, shape, out)
        }
        DType::Bool => bail!("Pow is not defined for bool tensors"),
        _ => with_num!(dt, T => {
            let pow = |a: T, x: f64| T::from_f64(a.to_f64().powf(x));
            let (shape, out) = broadcast_map2(base.view::<T>()?, bs, &e, es, pow)?;
            tensor_from_pod(dt, shape, out)
        }),
    }
}

fn compare(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    fn typed<T: Num>(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let f: fn(T, T) -> u8 = match op {
            BinaryOp::Equal => |x, y| u8::from(x == y),
            BinaryOp::Less => |x, y| u8::from(x < y),
            BinaryOp::LessOrEqual => |x, y| u8::from(x <= y),
            BinaryOp::Greater => |x, y| u8::from(x > y),
            BinaryOp::GreaterOrEqual => |x, y| u8::from(x >= y),
            other => bail!("{other:?} is not a comparison"),
        };
        map_typed(a, b, DType::Bool, f)
    }
    if a.dtype() == DType::Bool {
        if op != BinaryOp::Equal {
            bail!("{op:?} is not defined for bool tensors");
        }
        let (shape, out) = broadcast_map2(a.bools()?, a.shape(), b.bools()?, b.shape(), |x, y| {
            u8::from(x == y)
        })?;
        return tensor_from_pod(DType::Bool, shape, out);
    }
    with_num!(a.dtype(), T => typed::<T>(op, a, b))
}

fn logical(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if a.dtype() != DType::Bool {
        bail!("{op:?} takes bool tensors, got {}", a.dtype());
    }
    let (x, y) = (pod_view::<u8>(a)?, pod_view::<u8>(b)?);
    let (shape, out) = match op {
        BinaryOp::And => broadcast_map2(x, a.shape(), y, b.shape(), |p, q| {
            u8::from(p != 0 && q != 0)
        })?,
        _ => broadcast_map2(x, a.shape(), y, b.shape(), |p, q| {
            u8::from(p != 0 || q != 0)
        })?,
    };
    tensor_from_pod(DType::Bool, shape, out)
}

pub fn run(op: &Binary, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let a = input(inputs, 0)?;
    let b = input(inputs, 1)?;
    if a.dtype() != b.dtype() && op.op != BinaryOp::Pow {
        bail!(
            "{:?} needs inputs of one dtype, got {} and {}",
            op.op,
            a.dtype(),
            b.dtype()
        );
    }
    let out = match op.op {
        BinaryOp::And | BinaryOp::Or => logical(op.op, a, b)?,
        o if o.is_comparison() => compare(o, a, b)?,
        BinaryOp::Pow if a.dtype() != b.dtype() => pow_mixed(a, b)?,
        o => arithmetic(o, a, b)?,
    };
    Ok(vec![out])
}
