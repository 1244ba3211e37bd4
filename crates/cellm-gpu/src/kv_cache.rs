//! Preallocated KV caches on the device: one buffer per past input in the
//! token-major layout [1, capacity, X]. A run binds the past input to a
//! prefix view of the buffer (no upload) and KvCacheAppend copies only the
//! new rows after it (one buffer copy, no kernel); the present value is the
//! longer prefix and is never read back.

use crate::kernel::{elem_bytes, DevTensor, Kern};
use anyhow::{anyhow, bail, Result};
use cellm_ir::DType;
use std::collections::HashMap;

struct Entry {
    dtype: DType,
    row: usize,
    rows: usize,
    /// [1, capacity, row].
    buf: DevTensor,
}

impl Entry {
    fn cap_rows(&self) -> usize {
        self.buf.shape[1]
    }
    fn prefix(&self, rows: usize) -> DevTensor {
        DevTensor {
            store: self.buf.store.clone(),
            dtype: self.dtype,
            shape: vec![1, rows, self.row],
        }
    }
}

/// An all-ones i64 input (an attention mask without padding) kept on the
/// device: a run binds it to a [1, len] prefix view, so a step uploads none
/// of it, however long the context.
struct Ones {
    /// [1, capacity] of 1i64.
    buf: DevTensor,
    len: usize,
}

/// Device KV caches by past input name; made by [`crate::GpuSession::new_kv_cache`].
#[derive(Default)]
pub struct GpuKvCache {
    entries: HashMap<String, Entry>,
    ones: HashMap<String, Ones>,
    /// Inputs of the next run only, already on the device (e.g. the
    /// embedding row another session computed): bound, not uploaded.
    bound: HashMap<String, DevTensor>,
    pub(crate) cap_rows: usize,
}

impl GpuKvCache {
    pub(crate) fn with_capacity(cap_rows: usize) -> GpuKvCache {
        GpuKvCache {
            entries: HashMap::new(),
            ones: HashMap::new(),
            bound: HashMap::new(),
            cap_rows: cap_rows.max(1),
        }
    }

    pub(crate) fn add(&mut self, k: &mut Kern, name: &str, dtype: DType, row: usize) -> Result<()> {
        let buf = k.alloc(dtype, vec![1, self.cap_rows, row])?;
        self.entries.insert(
            name.to_string(),
            Entry {
                dtype,
                row,
                rows: 0,
                buf,
            },
        );
        Ok(())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name) || self.ones.contains_key(name)
    }

    /// Makes input `name` a device-resident all-ones [1, len] i64 tensor:
    /// the buffer (capacity at least `len`, else the caches' capacity) is
    /// filled once here and regrown by doubling; callers leave `name` out of
    /// the run's inputs.
    pub(crate) fn set_ones(&mut self, k: &mut Kern, name: &str, len: usize) -> Result<()> {
        let have = self.ones.get(name).map_or(0, |o| o.buf.shape[1]);
        if len > have {
            let cap = len.max(have * 2).max(self.cap_rows);
            let buf = k.upload(&cellm_ir::Tensor::from_vec(vec![1, cap], vec![1i64; cap]))?;
            self.ones.insert(name.to_string(), Ones { buf, len });
        } else if let Some(o) = self.ones.get_mut(name) {
            o.len = len;
        }
        Ok(())
    }

    /// Binds input `name` of the next run (only) to `value`, a device tensor
    /// of this device (made by any session on the same context); callers
    /// leave `name` out of the run's inputs.
    pub fn bind_input(&mut self, name: &str, value: DevTensor) {
        self.bound.insert(name.to_string(), value);
    }

    /// Forgets the one-run bindings (after each run).
    pub(crate) fn clear_bound(&mut self) {
        self.bound.clear();
    }

    /// The device-resident inputs (all-ones masks and one-run bindings) as
    /// bound for the next run.
    pub(crate) fn resident_views(&self) -> impl Iterator<Item = (&String, DevTensor)> {
        self.ones
            .iter()
            .map(|(name, o)| {
                (
                    name,
                    DevTensor {
                        store: o.buf.store.clone(),
                        dtype: DType::I64,
                        shape: vec![1, o.len],
                    },
                )
            })
            .chain(self.bound.iter().map(|(name, d)| (name, d.clone())))
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.entries.keys()
    }

    pub fn rows(&self, name: &str) -> Option<usize> {
        self.entries.get(name).map(|e| e.rows)
    }

    /// Device bytes held by all caches (resident masks included).
    pub fn capacity_bytes(&self) -> u64 {
        self.entries
            .values()
            .map(|e| &e.buf)
            .chain(self.ones.values().map(|o| &o.buf))
            .flat_map(|b| b.store.chunks.iter().map(|c| c.size()))
            .sum()
    }

    /// The cached rows of `name` as a [1, rows, X] device tensor.
    pub fn view(&self, name: &str) -> Result<DevTensor> {
        let e = self
            .entries
            .get(name)
            .ok_or_else(|| anyhow!("no KV cache for '{name}'"))?;
        Ok(e.prefix(e.rows))
    }

    /// Copies `new` ([1, L, X]) after the cached rows of `name`; grows the
    /// buffer (one device copy) when full. Returns the longer view.
    pub(crate) fn append(
        &mut self,
        k: &mut Kern,
        name: &str,
        new: &DevTensor,
    ) -> Result<DevTensor> {
        let e = self
            .entries
            .get_mut(name)
            .ok_or_else(|| anyhow!("no KV cache for '{name}'"))?;
        let s = &new.shape;
        if new.dtype != e.dtype || s.len() != 3 || s[0] != 1 || s[2] != e.row {
            bail!(
                "KV cache '{name}' holds {} rows of {} but got {} {s:?}",
                e.dtype,
                e.row,
                new.dtype
            );
        }
        let row_bytes = e.row as u64 * elem_bytes(e.dtype)?;
        let need = e.rows + s[1];
        if need > e.cap_rows() {
            let cap = need.max(e.cap_rows() * 2);
            let bigger = k.alloc(e.dtype, vec![1, cap, e.row])?;
            k.copy_range(&e.buf, 0, &bigger, 0, e.rows as u64 * row_bytes)?;
            e.buf = bigger;
        }
        k.copy_range(
            new,
            0,
            &e.buf,
            e.rows as u64 * row_bytes,
            s[1] as u64 * row_bytes,
        )?;
        e.rows = need;
        Ok(e.prefix(need))
    }

    /// Keeps the first `rows` rows of every cache.
    pub fn truncate(&mut self, rows: usize) {
        for e in self.entries.values_mut() {
            e.rows = e.rows.min(rows);
        }
    }

    pub fn reset(&mut self) {
        self.truncate(0);
    }
}
