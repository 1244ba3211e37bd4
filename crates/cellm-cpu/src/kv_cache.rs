//! Preallocated KV caches for the interpreter: one buffer per past input in
//! the token-major layout [1, capacity, X]. The past value of a run is a
//! zero-copy view of the first rows; KvCacheAppend writes the new rows after
//! them in place, so a decode step copies only its own K/V rows.
//!
//! Soundness: views cover rows `[0, rows)` as they were when the view was
//! made, and appends only write rows at or after the current `rows`, so no
//! written byte is ever visible through a live view. Shrinking (reset,
//! truncate) reuses the buffer only when no view is alive; otherwise the
//! cache moves to a fresh buffer.

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use cellm_ir::{DType, Tensor};
use std::collections::HashMap;
use std::sync::Arc;

/// A fixed-size, 8-byte aligned, zero-initialised allocation written through
/// a raw pointer (never through a `&mut`) so views may coexist with appends.
struct Storage {
    ptr: *mut u64,
    words: usize,
}

// The pointer is owned; see the module docs for why shared reads are fine.
unsafe impl Send for Storage {}
unsafe impl Sync for Storage {}

impl Storage {
    fn new(bytes: usize) -> Arc<Storage> {
        let words = bytes.div_ceil(8).max(1);
        // Zeroed allocations are mapped lazily, so capacity costs no RSS until written.
        let b: Box<[u64]> = vec![0u64; words].into_boxed_slice();
        Arc::new(Storage {
            ptr: Box::into_raw(b) as *mut u64,
            words,
        })
    }
    fn bytes(&self) -> usize {
        self.words * 8
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        // SAFETY: ptr/words came from Box::into_raw of a [u64] of that length.
        unsafe {
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                self.ptr, self.words,
            )))
        };
    }
}

/// The first `len` bytes of a storage, kept alive by the view.
struct Prefix {
    storage: Arc<Storage>,
    len: usize,
}

impl AsRef<[u8]> for Prefix {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: len <= storage bytes; these bytes are never written while a view exists.
        unsafe { std::slice::from_raw_parts(self.storage.ptr as *const u8, self.len) }
    }
}

struct Entry {
    dtype: DType,
    /// Elements per token row (heads × head size).
    row: usize,
    cap_rows: usize,
    rows: usize,
    storage: Arc<Storage>,
}

impl Entry {
    fn row_bytes(&self) -> usize {
        self.row * self.dtype.size()
    }

    /// Moves to a fresh buffer of `cap_rows` keeping the first `keep` rows.
    fn reallocate(&mut self, cap_rows: usize, keep: usize) {
        let fresh = Storage::new(cap_rows * self.row_bytes());
        let n = keep * self.row_bytes();
        // SAFETY: both allocations hold at least n bytes; fresh has no views yet.
        unsafe {
            std::ptr::copy_nonoverlapping(self.storage.ptr as *const u8, fresh.ptr as *mut u8, n)
        };
        self.storage = fresh;
        self.cap_rows = cap_rows;
    }
}

/// KV caches by past input name (e.g. `past_key_values.0.key`).
#[derive(Default)]
pub struct KvCache {
    entries: HashMap<String, Entry>,
}

impl KvCache {
    pub fn new() -> KvCache {
        KvCache::default()
    }

    /// Adds an empty cache for past input `name` with rows of `row` elements.
    pub fn add(&mut self, name: &str, dtype: DType, row: usize, cap_rows: usize) {
        let cap_rows = cap_rows.max(1);
        self.entries.insert(
            name.to_string(),
            Entry {
                dtype,
                row,
                cap_rows,
                rows: 0,
                storage: Storage::new(cap_rows * row * dtype.size()),
            },
        );
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.entries.keys()
    }

    /// Rows held by cache `name`.
    pub fn rows(&self, name: &str) -> Option<usize> {
        self.entries.get(name).map(|e| e.rows)
    }

    /// Bytes allocated for all caches.
    pub fn capacity_bytes(&self) -> usize {
        self.entries.values().map(|e| e.storage.bytes()).sum()
    }

    /// The cached rows of `name` as a [1, rows, X] tensor (no copy).
    pub fn view(&self, name: &str) -> Result<Tensor> {
        let e = self
            .entries
            .get(name)
            .ok_or_else(|| anyhow!("no KV cache for '{name}'"))?;
        let len = e.rows * e.row_bytes();
        let bytes = Bytes::from_owner(Prefix {
            storage: e.storage.clone(),
            len,
        });
        Tensor::from_bytes(e.dtype, vec![1, e.rows, e.row], bytes)
    }

    /// Writes `new` ([1, L, X]) after the cached rows of `name` and returns the
    /// longer view. Grows the buffer (one copy) when the capacity is exceeded.
    pub fn append(&mut self, name: &str, new: &Tensor) -> Result<Tensor> {
        let e = self
            .entries
            .get_mut(name)
            .ok_or_else(|| anyhow!("no KV cache for '{name}'"))?;
        let s = new.shape();
        if new.dtype() != e.dtype || s.len() != 3 || s[0] != 1 || s[2] != e.row {
            bail!(
                "KV cache '{name}' holds {} rows of {} but got {} {s:?}",
                e.dtype,
                e.row,
                new.dtype()
            );
        }
        let need = e.rows + s[1];
        if need > e.cap_rows {
            let cap = need.max(e.cap_rows * 2);
            let keep = e.rows;
            e.reallocate(cap, keep);
        }
        let off = e.rows * e.row_bytes();
        let src = new.bytes();
        // SAFETY: [off, off + src.len()) lies inside the storage (need <= cap_rows)
        // and past every live view (views end at or before `off`).
        unsafe {
            std::ptr::copy_nonoverlapping(
                src.as_ptr(),
                (e.storage.ptr as *mut u8).add(off),
                src.len(),
            )
        };
        e.rows = need;
        self.view(name)
    }

    /// Keeps the first `rows` rows of every cache (a rewind).
    pub fn truncate(&mut self, rows: usize) {
        for e in self.entries.values_mut() {
            if rows >= e.rows {
                continue;
            }
            if Arc::strong_count(&e.storage) > 1 {
                // A view still covers the rows about to be rewritten.
                let cap = e.cap_rows;
                e.reallocate(cap, rows);
            }
            e.rows = rows;
        }
    }

    /// Empties every cache (a new conversation).
    pub fn reset(&mut self) {
        self.truncate(0);
    }
}
