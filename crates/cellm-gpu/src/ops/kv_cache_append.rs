//! KvCacheAppend: [B, P, X] ++ [B, L, X] → [B, P+L, X] by two buffer copies
//! per batch row (no kernel). The executor appends in place instead when the
//! past input is bound to a [`crate::GpuKvCache`].

use super::Args;
use crate::kernel::{elem_bytes, DevTensor, Kern};
use anyhow::{bail, Result};

pub fn encode(k: &mut Kern, args: &Args) -> Result<Vec<DevTensor>> {
    let past = args.d(0, "KvCacheAppend past")?;
    let new = args.d(1, "KvCacheAppend new")?;
    let (ps, ns) = (&past.shape, &new.shape);
    if ps.len() != 3 || ns.len() != 3 || ps[0] != ns[0] || ps[2] != ns[2] || past.dtype != new.dtype
    {
        bail!("KvCacheAppend: past {ps:?} and new {ns:?} must be [B, P, X] and [B, L, X] of one dtype");
    }
    let (b, p, l, x) = (ps[0], ps[1], ns[1], ps[2]);
    let out = k.alloc(past.dtype, vec![b, p + l, x])?;
    let row = x as u64 * elem_bytes(past.dtype)?;
    let (p, l) = (p as u64, l as u64);
    for bi in 0..b as u64 {
        k.copy_range(past, bi * p * row, &out, bi * (p + l) * row, p * row)?;
        k.copy_range(new, bi * l * row, &out, (bi * (p + l) + p) * row, l * row)?;
    }
    Ok(vec![out])
}

/// Buffer copies need 4-byte aligned rows.
pub fn supported(args: &Args) -> bool {
    args.od(0).is_some_and(|p| {
        p.shape.len() == 3
            && elem_bytes(p.dtype).is_ok_and(|e| (p.shape[2] as u64 * e).is_multiple_of(4))
    })
}
