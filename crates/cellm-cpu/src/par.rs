//! Splitting kernel work over the cores (rayon's global pool). Small work runs
//! inline: a task hand-off costs a few microseconds, and a decode step has
//! hundreds of tiny ops.

use rayon::prelude::*;

/// Below this many "units" of work (≈ elements of a cheap elementwise op) a
/// kernel runs on the calling thread.
pub const MIN_PARALLEL_WORK: usize = 1 << 15;

/// Worker threads available to kernels.
pub fn threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// Rows per task when `rows` rows cost `cost_per_row` units each: one task
/// when the whole job is small, else a few tasks per thread (for balance).
pub fn rows_per_task(rows: usize, cost_per_row: usize) -> usize {
    let total = rows.saturating_mul(cost_per_row.max(1));
    if rows <= 1 || total < MIN_PARALLEL_WORK || threads() == 1 {
        return rows.max(1);
    }
    let tasks = (threads() * 4)
        .min(total / (MIN_PARALLEL_WORK / 4).max(1))
        .clamp(1, rows);
    rows.div_ceil(tasks)
}

/// Calls `f(first_row, rows)` on consecutive groups of `row_len`-element rows
/// of `data` (its length a multiple of `row_len`), in parallel when the work
/// (`cost_per_row` units a row) is large enough.
pub fn for_rows_mut<T: Send>(
    data: &mut [T],
    row_len: usize,
    cost_per_row: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    if row_len == 0 || data.is_empty() {
        return;
    }
    let rows = data.len() / row_len;
    let per = rows_per_task(rows, cost_per_row);
    if per >= rows {
        f(0, data);
        return;
    }
    data.par_chunks_mut(per * row_len)
        .enumerate()
        .for_each(|(i, chunk)| f(i * per, chunk));
}

/// Like [`for_rows_mut`], with a second per-row array `side` (`side_per_row`
/// elements a row, e.g. row statistics) split at the same rows.
pub fn for_rows_mut_with<T: Send, S: Send>(
    data: &mut [T],
    row_len: usize,
    side: &mut [S],
    side_per_row: usize,
    cost_per_row: usize,
    f: impl Fn(usize, &mut [T], &mut [S]) + Sync + Send,
) {
    if row_len == 0 || data.is_empty() {
        return;
    }
    let rows = data.len() / row_len;
    debug_assert!(side_per_row > 0 && side.len() == rows * side_per_row);
    let per = rows_per_task(rows, cost_per_row);
    if per >= rows || side_per_row == 0 {
        f(0, data, side);
        return;
    }
    data.par_chunks_mut(per * row_len)
        .zip(side.par_chunks_mut((per * side_per_row).max(1)))
        .enumerate()
        .for_each(|(i, (chunk, s))| f(i * per, chunk, s));
}

/// Elementwise: calls `f(offset, out_chunk)` over chunks of `out`, in
/// parallel for large outputs; `cost` is the work per element (1 = a few
/// flops, more for transcendental functions).
pub fn for_chunks_mut<T: Send>(
    out: &mut [T],
    cost: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    // Chunks of 4096 elements keep task boundaries cache-line aligned.
    const BLOCK: usize = 4096;
    let blocks = out.len().div_ceil(BLOCK);
    if blocks == 0 {
        return;
    }
    let per = rows_per_task(blocks, BLOCK * cost.max(1));
    if per >= blocks {
        f(0, out);
        return;
    }
    out.par_chunks_mut(per * BLOCK)
        .enumerate()
        .for_each(|(i, chunk)| f(i * per * BLOCK, chunk));
}

/// A new vector of `len` elements filled by `f(offset, chunk)` (see
/// [`for_chunks_mut`]). Starts zeroed: `T: Default` keeps this safe code.
pub fn fill_vec<T: Send + Copy + Default>(
    len: usize,
    cost: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) -> Vec<T> {
    let mut out = vec![T::default(); len];
    for_chunks_mut(&mut out, cost, f);
    out
}

/// Runs `a` and `b`, in parallel when the pool has more than one thread.
pub fn join<A: FnOnce() -> RA + Send, B: FnOnce() -> RB + Send, RA: Send, RB: Send>(
    a: A,
    b: B,
) -> (RA, RB) {
    rayon::join(a, b)
}
