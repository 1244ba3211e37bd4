//! Slice: Slice(data, starts, ends, axes?, steps?) (opset >= 10 form).

use super::{const_ints, len_1d, need, normalize_axes, opt, unknown_dims, Fact};
use crate::{DType, Dim, Tensor};

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Slice;

/// Bounds at or beyond this are "to the end" sentinels (exporters use
/// i64::MAX / i32::MAX and their negatives).
const HUGE: i64 = i32::MAX as i64;

/// Length of `[start:end:step]` over a dim of size `n`, ONNX clamping rules.
pub(crate) fn slice_len(n: usize, start: i64, end: i64, step: i64) -> usize {
    if n == 0 {
        return 0;
    }
    let n = n as i128;
    let (start, end, step) = (start as i128, end as i128, step as i128);
    let fix = |v: i128| if v < 0 { v + n } else { v };
    if step > 0 {
        let (s, e) = (fix(start).clamp(0, n), fix(end).clamp(0, n));
        if e <= s {
            0
        } else {
            ((e - s + step - 1) / step) as usize
        }
    } else {
        let (s, e) = (fix(start).clamp(0, n - 1), fix(end).clamp(-1, n - 1));
        if s <= e {
            0
        } else {
            ((s - e + (-step) - 1) / (-step)) as usize
        }
    }
}

/// The sliced length of a symbolic dim: only a whole-dim slice keeps it.
fn sym_slice(d: &Dim, start: i64, end: i64, step: i64) -> Dim {
    let whole = match step {
        1 => (start == 0 || start <= -HUGE) && end >= HUGE,
        -1 => start >= HUGE && end <= -HUGE,
        _ => false,
    };
    if whole {
        d.clone()
    } else {
        Dim::unknown()
    }
}

impl Slice {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let x = need(inputs, 0)?;
        let names = ["starts", "ends", "axes", "steps"];
        for (i, name) in names.iter().enumerate() {
            let Some(f) = (if i < 2 {
                Some(need(inputs, i + 1)?)
            } else {
                opt(inputs, i + 1)
            }) else {
                continue;
            };
            if !matches!(f.dtype, DType::I64 | DType::I32) {
                anyhow::bail!("{name} must be i64 or i32, got {}", f.dtype);
            }
        }
        let Some(xs) = &x.shape else {
            return Ok(vec![Fact {
                dtype: x.dtype,
                shape: None,
            }]);
        };
        let rank = xs.len();
        let starts = const_ints(consts, 1)?;
        let ends = const_ints(consts, 2)?;
        let steps = if opt(inputs, 4).is_some() {
            const_ints(consts, 4)?
        } else {
            None
        };
        let n_axes = starts
            .as_ref()
            .map(|v| v.len())
            .or_else(|| len_1d(inputs, 1));
        let axes = match opt(inputs, 3) {
            Some(_) => const_ints(consts, 3)?
                .map(|a| normalize_axes(&a, rank))
                .transpose()?,
            None => n_axes.map(|n| (0..n).collect()),
        };
        let Some(axes) = axes else {
            // Which axes are sliced is known only at run time.
            return Ok(vec![Fact {
                dtype: x.dtype,
                shape: Some(unknown_dims(rank)),
            }]);
        };
        if axes.len() > rank {
            anyhow::bail!("{} axes sliced on a rank-{rank} input", axes.len());
        }
        let mut out = xs.clone();
        let (Some(starts), Some(ends)) = (starts, ends) else {
            for &a in &axes {
                out[a] = Dim::unknown();
            }
            return Ok(vec![Fact {
                dtype: x.dtype,
                shape: Some(out),
            }]);
        };
        let steps = match (opt(inputs, 4), steps) {
            (None, _) => vec![1; axes.len()],
            (Some(_), Some(s)) => s,
            (Some(_), None) => {
                for &a in &axes {
                    out[a] = Dim::unknown();
                }
                return Ok(vec![Fact {
                    dtype: x.dtype,
                    shape: Some(out),
                }]);
            }
        };
        if starts.len() != axes.len() || ends.len() != axes.len() || steps.len() != axes.len() {
            anyhow::bail!(
                "starts ({}), ends ({}), axes ({}) and steps ({}) differ in length",
                starts.len(),
                ends.len(),
                axes.len(),
                steps.len()
            );
        }
        for (k, &a) in axes.iter().enumerate() {
            let (s, e, st) = (starts[k], ends[k], steps[k]);
            if st == 0 {
                anyhow::bail!("step for axis {a} is 0");
            }
            out[a] = match &xs[a] {
                Dim::Known(n) => Dim::Known(slice_len(*n, s, e, st)),
                d => sym_slice(d, s, e, st),
            };
        }
        Ok(vec![Fact {
            dtype: x.dtype,
            shape: Some(out),
        }])
    }
}
