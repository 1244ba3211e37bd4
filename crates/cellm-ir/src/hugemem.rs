//! Maps weight files so the CPU can stream them from huge pages.
//!
//! Why: a decode step reads every weight once, front to back. With 4 KiB
//! pages the hardware prefetchers stop at every page boundary and each 4 KiB
//! costs a TLB walk; on the 2-core AMD EPYC we benchmark on, a 540 MB
//! streaming sum reads 29.5 GB/s (2 threads) from a file mapped in small
//! pages and 35.5 from the same file mapped in 2 MiB pages.
//!
//! Linux (6.x, on filesystems with large folios such as ext4 and xfs) keeps a
//! file's page cache in large folios and maps whole 2 MiB ones with one
//! entry. Pages that first arrive through mmap faults come in small folios
//! unless the mapping asks for huge pages (`MADV_HUGEPAGE`), whatever the
//! system's THP mode is; so every weight file is mapped through here. Elsewhere
//! the advice is skipped and the map works the same in small pages.

use anyhow::{Context, Result};
use bytes::Bytes;
use std::path::Path;

/// Maps `path` read-only (huge pages advised); an empty file gives empty
/// bytes (mapping zero bytes is not portable).
pub fn map_file(path: &Path) -> Result<Bytes> {
    let file =
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    map(&file).with_context(|| format!("{}: cannot mmap", path.display()))
}

/// [`map_file`] for a file that is already open.
pub fn map(file: &std::fs::File) -> std::io::Result<Bytes> {
    if file.metadata()?.len() == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: the map is read-only; like every mmap-based loader we rely on
    // the file not being truncated while the model is in use.
    let map = unsafe { memmap2::Mmap::map(file) }?;
    #[cfg(target_os = "linux")]
    {
        // Advice only: refused (no THP in this kernel), the map still works.
        let _ = map.advise(memmap2::Advice::HugePage);
    }
    Ok(Bytes::from_owner(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_file_bytes_and_names_a_missing_file() {
        let dir = std::env::temp_dir().join(format!("cellm-hugemem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Larger than a huge page, with a tail, so a mapping in 2 MiB pages
        // still has to end where the file does.
        let data: Vec<u8> = (0..(5 << 20) + 123).map(|i| (i * 7 % 251) as u8).collect();
        let path = dir.join("weights.bin");
        std::fs::write(&path, &data).unwrap();
        assert_eq!(&map_file(&path).unwrap()[..], &data[..]);

        let empty = dir.join("empty.bin");
        std::fs::write(&empty, b"").unwrap();
        assert!(map_file(&empty).unwrap().is_empty());

        let missing = dir.join("missing.bin");
        let err = format!("{:#}", map_file(&missing).unwrap_err());
        assert!(err.contains("missing.bin"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
