//! The generic strided word copy behind the data-movement ops.

use super::u32_of;
use crate::kernel::{dims8, DevTensor, Kern, MAX_RANK};
use anyhow::{bail, Result};

/// One strided copy: `shape` is the iteration space; `src_strides` may be
/// negative (reversed slices); `src_mods` wraps coordinates (Tile).
pub struct Copy<'a> {
    pub shape: &'a [usize],
    pub src_base: isize,
    pub src_strides: &'a [isize],
    pub src_mods: Option<&'a [usize]>,
    pub dst_base: usize,
    pub dst_strides: &'a [usize],
}

pub fn encode(k: &mut Kern, src: &DevTensor, dst: &DevTensor, c: &Copy) -> Result<()> {
    let n: usize = c.shape.iter().product();
    if n == 0 {
        return Ok(());
    }
    let rank = c.shape.len();
    if rank > MAX_RANK || c.src_strides.len() != rank || c.dst_strides.len() != rank {
        bail!("strided copy: rank {rank} is unsupported or strides do not match");
    }
    let mut words = vec![
        u32_of(n, "strided copy")?,
        rank as u32,
        i32::try_from(c.src_base)? as u32,
        u32_of(c.dst_base, "dst base")?,
    ];
    words.extend(dims8(c.shape, "strided copy shape")?);
    let mut ss = [0u32; MAX_RANK];
    for (d, &s) in ss.iter_mut().zip(c.src_strides) {
        *d = i32::try_from(s)? as u32;
    }
    words.extend(ss);
    let mods: Vec<usize> = match c.src_mods {
        Some(m) => m.to_vec(),
        None => c.shape.to_vec(),
    };
    words.extend(dims8(&mods, "strided copy mods")?);
    words.extend(dims8(c.dst_strides, "strided copy dst strides")?);
    k.dispatch_1d("strided_copy", &words, &[src, dst], n)
}
