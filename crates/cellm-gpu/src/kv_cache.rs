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

/// Device KV caches by past input name; made by [`crate::GpuSession::new_kv_cache`].
#[derive(Default)]
pub struct GpuKvCache {
    entries: HashMap<String, Entry>,
    pub(crate) cap_rows: usize,
}

impl GpuKvCache {
    pub(crate) fn with_capacity(cap_rows: usize) -> GpuKvCache {
        GpuKvCache {
            entries: HashMap::new(),
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
        self.entries.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.entries.keys()
    }

    pub fn rows(&self, name: &str) -> Option<usize> {
        self.entries.get(name).map(|e| e.rows)
    }

    /// Device bytes held by all caches.
    pub fn capacity_bytes(&self) -> u64 {
        self.entries
            .values()
            .flat_map(|e| e.buf.store.chunks.iter().map(|b| b.size()))
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
