//! CPU kernel for MatMulMultiRotary: MatMulMulti's kernel, then
//! RotaryEmbeddingPair's on its first two outputs, with the merged
//! cos_sin_cache [max_pos, 2C] split back into cos and sin [max_pos, C].
//! [`mat_mul_multi_rotary_slow`] is built from primitives (MatMul per weight,
//! Slice for the caches, one RotaryEmbedding per rotated output): the test
//! reference.

use super::common::{f32_to_tensor, input};
use super::{mat_mul_multi, rotary_embedding_pair};
use anyhow::{bail, Context, Result};
use cellm_ir::ops::mat_mul_multi_rotary::FIRST_WEIGHT;
use cellm_ir::ops::{MatMulMulti, MatMulMultiRotary, Slice};
use cellm_ir::{DType, Op, Tensor};

/// (cos, sin), each [max_pos, C] in f32, of a merged [max_pos, 2C] cache.
pub fn split_cache(cs: &Tensor) -> Result<(Tensor, Tensor)> {
    let [rows, w] = *cs.shape() else {
        bail!(
            "MatMulMultiRotary: cos_sin_cache must be 2-D, got {:?}",
            cs.shape()
        );
    };
    if w % 2 != 0 {
        bail!("MatMulMultiRotary: cos_sin_cache width {w} is odd");
    }
    let c = w / 2;
    let v = cs.to_f32_vec().context("MatMulMultiRotary cos_sin_cache")?;
    let (mut cos, mut sin) = (Vec::with_capacity(rows * c), Vec::with_capacity(rows * c));
    for row in v.chunks_exact(w.max(1)).take(rows) {
        cos.extend_from_slice(&row[..c]);
        sin.extend_from_slice(&row[c..]);
    }
    Ok((
        Tensor::from_vec(vec![rows, c], cos),
        Tensor::from_vec(vec![rows, c], sin),
    ))
}

/// (cos, sin, positions) for only the cache rows that 2-D `pos` [B, S] uses:
/// row i of the small caches is position `pos[i]`, and the new positions
/// are 0..B·S. Splitting the whole [max_pos, 2C] cache each call copied
/// megabytes per layer and step. None for other position forms.
fn used_rows(cs: &Tensor, pos: &Tensor) -> Result<Option<(Tensor, Tensor, Tensor)>> {
    let (&[rows, w], 2) = (cs.shape(), pos.shape().len()) else {
        return Ok(None);
    };
    let Ok(ids) = pos.view::<i64>() else {
        return Ok(None);
    };
    if w % 2 != 0 {
        bail!("MatMulMultiRotary: cos_sin_cache width {w} is odd");
    }
    let c = w / 2;
    // Widen only the rows used (an f16 cache is not converted whole per call).
    let row: Box<dyn Fn(usize) -> Vec<f32> + '_> = match cs.dtype() {
        cellm_ir::DType::F32 => {
            let v = cs.view::<f32>()?;
            Box::new(move |r| v[r * w..(r + 1) * w].to_vec())
        }
        cellm_ir::DType::F16 => {
            let v = cs.view::<half::f16>()?;
            Box::new(move |r| v[r * w..(r + 1) * w].iter().map(|h| h.to_f32()).collect())
        }
        _ => return Ok(None),
    };
    let (mut cos, mut sin) = (
        Vec::with_capacity(ids.len() * c),
        Vec::with_capacity(ids.len() * c),
    );
    for &p in ids {
        let r = usize::try_from(p)
            .ok()
            .filter(|&r| r < rows)
            .with_context(|| {
                format!(
                    "MatMulMultiRotary: position {p} is outside the cache ({rows} cos/sin rows)"
                )
            })?;
        let vals = row(r);
        cos.extend_from_slice(&vals[..c]);
        sin.extend_from_slice(&vals[c..]);
    }
    let n = ids.len();
    Ok(Some((
        Tensor::from_vec(vec![n, c], cos),
        Tensor::from_vec(vec![n, c], sin),
        Tensor::from_vec(pos.shape().to_vec(), (0..n as i64).collect()),
    )))
}

fn weights<'a>(inputs: &[Option<&'a Tensor>]) -> Result<Vec<&'a Tensor>> {
    if inputs.len() < FIRST_WEIGHT + 2 {
        bail!("MatMulMultiRotary needs A, position_ids, cos_sin_cache and two or more weights");
    }
    (FIRST_WEIGHT..inputs.len())
        .map(|i| {
            input(inputs, i)
                .with_context(|| format!("MatMulMultiRotary weight {}", i - FIRST_WEIGHT))
        })
        .collect()
}

pub fn run(op: &MatMulMultiRotary, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let a = input(inputs, 0).context("MatMulMultiRotary input A")?;
    let pos = input(inputs, 1).context("MatMulMultiRotary position_ids")?;
    let cs = input(inputs, 2).context("MatMulMultiRotary cos_sin_cache")?;
    let ws = weights(inputs)?;
    let (cos, sin, pos) = match used_rows(cs, pos)? {
        Some((cos, sin, p)) => (cos, sin, std::borrow::Cow::Owned(p)),
        None => {
            let (cos, sin) = split_cache(cs)?;
            (cos, sin, std::borrow::Cow::Borrowed(pos))
        }
    };
    let mut mm_in = vec![Some(a)];
    mm_in.extend(ws.iter().map(|w| Some(*w)));
    let mut ys = mat_mul_multi::run(&MatMulMulti, &mm_in)?;
    let rest = ys.split_off(2);
    let rot = rotary_embedding_pair::run(
        &op.pair(),
        &[
            Some(&ys[0]),
            Some(&ys[1]),
            Some(pos.as_ref()),
            Some(&cos),
            Some(&sin),
        ],
    )
    .context("MatMulMultiRotary rotary")?;
    round_f16_outputs(op, rot.into_iter().chain(rest).collect())
}

/// Rounds the outputs `op.f16_outputs` names to f16 (computed in f32, rounded once).
fn round_f16_outputs(op: &MatMulMultiRotary, mut outs: Vec<Tensor>) -> Result<Vec<Tensor>> {
    for &i in &op.f16_outputs {
        let Some(t) = outs.get_mut(i) else {
            bail!(
                "MatMulMultiRotary: f16 output {i} of {} outputs",
                outs.len()
            );
        };
        if t.dtype() != DType::F16 {
            *t = f32_to_tensor(DType::F16, t.shape().to_vec(), t.to_f32_vec()?)?;
        }
    }
    Ok(outs)
}

/// The unfused graph, op by op through `eval`.
pub fn mat_mul_multi_rotary_slow(
    op: &MatMulMultiRotary,
    inputs: &[Option<&Tensor>],
) -> Result<Vec<Tensor>> {
    let a = input(inputs, 0).context("MatMulMultiRotary input A")?;
    let pos = input(inputs, 1).context("MatMulMultiRotary position_ids")?;
    let cs = input(inputs, 2).context("MatMulMultiRotary cos_sin_cache")?;
    let ws = weights(inputs)?;
    let mut ys = mat_mul_multi::mat_mul_multi_slow(a, &ws)?;
    let c = (cs.shape().get(1).copied().unwrap_or(0) / 2) as i64;
    let half = |start: i64, end: i64| -> Result<Tensor> {
        let s = Tensor::from_vec(vec![1], vec![start]);
        let e = Tensor::from_vec(vec![1], vec![end]);
        let ax = Tensor::from_vec(vec![1], vec![1i64]);
        super::eval(
            &Op::Slice(Slice),
            &[Some(cs), Some(&s), Some(&e), Some(&ax)],
        )?
        .pop()
        .context("Slice output")
    };
    let (cos, sin) = (half(0, c)?, half(c, 2 * c)?);
    let rest = ys.split_off(2);
    let rot = rotary_embedding_pair::rotary_embedding_pair_slow(
        &op.pair(),
        [&ys[0], &ys[1]],
        pos,
        &cos,
        &sin,
    )?;
    round_f16_outputs(op, rot.into_iter().chain(rest).collect())
}
