//! CPU kernel for KvCacheAppend: [B, P, X] ++ [B, L, X] → [B, P+L, X].
//!
//! `run` is the functional form (a copy). The interpreter calls
//! [`crate::kv_cache::KvCache::append`] instead when the past input is bound
//! to a cache, which writes only the new rows in place.

use anyhow::{bail, Context, Result};
use cellm_ir::Tensor;

pub fn run(inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let past = inputs
        .first()
        .copied()
        .flatten()
        .context("KvCacheAppend past (input 0) is required")?;
    let new = inputs
        .get(1)
        .copied()
        .flatten()
        .context("KvCacheAppend new (input 1) is required")?;
    let (ps, ns) = (past.shape(), new.shape());
    if ps.len() != 3 || ns.len() != 3 || ps[0] != ns[0] || ps[2] != ns[2] {
        bail!("KvCacheAppend: past {ps:?} and new {ns:?} must be [B, P, X] and [B, L, X]");
    }
    if past.dtype() != new.dtype() {
        bail!(
            "KvCacheAppend: past is {} but new is {}",
            past.dtype(),
            new.dtype()
        );
    }
    let (b, p, l, x) = (ps[0], ps[1], ns[1], ps[2]);
    let es = past.dtype().size();
    let mut out = Vec::with_capacity(b * (p + l) * x * es);
    for bi in 0..b {
        out.extend_from_slice(&past.bytes()[bi * p * x * es..(bi + 1) * p * x * es]);
        out.extend_from_slice(&new.bytes()[bi * l * x * es..(bi + 1) * l * x * es]);
    }
    Ok(vec![Tensor::from_bytes(
        past.dtype(),
        vec![b, p + l, x],
        out.into(),
    )?])
}
