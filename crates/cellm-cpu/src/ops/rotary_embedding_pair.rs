//! CPU kernel for RotaryEmbeddingPair: RotaryEmbedding's kernel on x0 and on
//! x1 with the shared position_ids and caches (and each input's num_heads).
//! [`rotary_embedding_pair_slow`] runs the two single ops through `eval`
//! (the test reference).

use super::common::input;
use super::rotary_embedding;
use anyhow::{Context, Result};
use cellm_ir::ops::RotaryEmbeddingPair;
use cellm_ir::{Op, Tensor};

pub fn run(op: &RotaryEmbeddingPair, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let shared = [
        input(inputs, 2).context("RotaryEmbeddingPair position_ids")?,
        input(inputs, 3).context("RotaryEmbeddingPair cos_cache")?,
        input(inputs, 4).context("RotaryEmbeddingPair sin_cache")?,
    ];
    let mut out = Vec::with_capacity(2);
    for i in 0..2 {
        let x = input(inputs, i).with_context(|| format!("RotaryEmbeddingPair input x{i}"))?;
        let ins = [Some(x), Some(shared[0]), Some(shared[1]), Some(shared[2])];
        let y = rotary_embedding::run(&op.single(i), &ins)
            .with_context(|| format!("RotaryEmbeddingPair x{i}"))?;
        out.extend(y);
    }
    Ok(out)
}

/// The two RotaryEmbedding ops, each through `eval`.
pub fn rotary_embedding_pair_slow(
    op: &RotaryEmbeddingPair,
    xs: [&Tensor; 2],
    pos: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
) -> Result<Vec<Tensor>> {
    let mut out = Vec::with_capacity(2);
    for (i, x) in xs.iter().enumerate() {
        let ins = [Some(*x), Some(pos), Some(cos), Some(sin)];
        out.extend(super::eval(&Op::RotaryEmbedding(op.single(i)), &ins)?);
    }
    Ok(out)
}
