//! `.cellm` container: round trip of every dtype, zero-copy reads, corrupt and
//! truncated files; GGML block dequantization against a bit-level reference.

use cellm_format::format::{write_cellm, CellmFile, Header, PendingTensor};
use cellm_format::quant::{dequantize, quantize, WeightDType};
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};

fn seed() -> u64 {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7);
    eprintln!("seed {s}");
    s
}

/// `name` in a folder of its own, so a test that lists its folder (no
/// temporary files left) does not see another test's write in progress.
fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir()
        .join(format!("cellm-format-test-{}", std::process::id()))
        .join(format!("{name}.d"));
    std::fs::create_dir_all(&d).expect("temp dir");
    d.join(name)
}

fn random_values(rng: &mut impl Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-2.0f32..2.0)).collect()
}

/// Writes one tensor of each dtype; returns (name, dtype, shape, bytes).
fn write_sample(
    path: &Path,
    rng: &mut impl Rng,
) -> Vec<(String, WeightDType, Vec<usize>, Vec<u8>)> {
    let specs = [
        ("a.f32", WeightDType::F32, vec![3usize, 5]),
        ("b.f16", WeightDType::F16, vec![7]),
        ("c.q4_0", WeightDType::Q4_0, vec![2, 64]),
        ("d.q4_1", WeightDType::Q4_1, vec![3, 32]),
        ("e.q8_0", WeightDType::Q8_0, vec![1, 96]),
    ];
    let mut want = vec![];
    let mut pending = vec![];
    for (name, dtype, shape) in specs {
        let n: usize = shape.iter().product();
        let bytes = quantize(dtype, &random_values(rng, n)).expect("quantize");
        want.push((name.to_string(), dtype, shape.clone(), bytes.clone()));
        pending.push(PendingTensor {
            name: name.to_string(),
            dtype,
            shape,
            produce: Box::new(move || Ok(bytes)),
        });
    }
    let header = Header {
        architecture: "llama".into(),
        config: serde_json::json!({"model_type": "llama", "hidden_size": 8}),
        tokenizer: Some(serde_json::json!({"model": {"type": "BPE"}})),
        chat_template: Some("{{ messages }}".into()),
        ..Default::default()
    };
    let mut calls = 0;
    write_cellm(path, &header, pending, &mut |done, total| {
        calls += 1;
        assert!(done <= total);
    })
    .expect("write");
    assert_eq!(calls, 5, "progress is reported once per tensor");
    want
}

#[test]
fn round_trip_every_dtype_zero_copy() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    let path = tmp("round_trip.cellm");
    let want = write_sample(&path, &mut rng);
    let f = CellmFile::open(&path).expect("open");
    assert_eq!(f.header.architecture, "llama");
    assert_eq!(f.header.config["hidden_size"], 8);
    assert_eq!(f.header.chat_template.as_deref(), Some("{{ messages }}"));
    assert!(f.header.tokenizer.is_some());
    for (name, dtype, shape, bytes) in &want {
        let t = f.tensor(name).expect("tensor");
        assert_eq!(t.dtype, *dtype, "{name}");
        assert_eq!(&t.shape, shape, "{name}");
        assert_eq!(&t.data[..], &bytes[..], "{name}");
        // Data is aligned in the file, so typed views need no copy.
        assert_eq!(
            t.data.as_ptr() as usize % 64,
            0,
            "{name} is 64-byte aligned"
        );
    }
    // f32 tensors become IR tensors over the same memory.
    let t = f.tensor("a.f32").expect("tensor");
    let ir = t.to_ir().expect("ir");
    assert_eq!(ir.bytes().as_ptr(), t.data.as_ptr(), "no copy");
    assert!(f.tensor("missing").is_err());
    // Writing is atomic: no temp files are left next to the output.
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().expect("dir"))
        .expect("ls")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn corrupt_and_truncated_files_are_named_errors() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    let path = tmp("good.cellm");
    write_sample(&path, &mut rng);
    let good = std::fs::read(&path).expect("read");

    // A flipped bit in the data section: checksum error naming the file.
    let bad = tmp("flipped.cellm");
    let mut b = good.clone();
    let at = b.len() - 70;
    b[at] ^= 0x10;
    std::fs::write(&bad, &b).expect("write");
    let e = format!("{:#}", CellmFile::open(&bad).err().expect("must fail"));
    assert!(e.contains("checksum") && e.contains("flipped.cellm"), "{e}");
    // The unverified fast path does not hash, so it opens.
    assert!(CellmFile::open_unverified(&bad).is_ok());

    // Truncated at several points: header, data, preamble.
    for keep in [good.len() - 1, good.len() / 2, 100, 30, 0] {
        let p = tmp("truncated.cellm");
        std::fs::write(&p, &good[..keep]).expect("write");
        let e = format!("{:#}", CellmFile::open(&p).err().expect("must fail"));
        assert!(
            e.contains("truncated") && e.contains("truncated.cellm"),
            "{keep}: {e}"
        );
    }

    // Wrong magic.
    let p = tmp("magic.cellm");
    let mut m = good.clone();
    m[0] = b'X';
    std::fs::write(&p, &m).expect("write");
    let e = format!("{:#}", CellmFile::open(&p).err().expect("must fail"));
    assert!(e.contains("not a .cellm file"), "{e}");

    // A corrupt header with a checksum that matches it is still caught by the table checks.
    let p = tmp("table.cellm");
    let mut t = good.clone();
    let json_len = u64::from_le_bytes(t[16..24].try_into().expect("8 bytes")) as usize;
    let header = String::from_utf8(t[64..64 + json_len].to_vec()).expect("utf8");
    let broken = header.replacen("\"shape\":[3,5]", "\"shape\":[9,5]", 1);
    assert_ne!(header, broken);
    t[64..64 + json_len].copy_from_slice(broken.as_bytes());
    std::fs::write(&p, &t).expect("write");
    let e = format!(
        "{:#}",
        CellmFile::open_unverified(&p).err().expect("must fail")
    );
    assert!(e.contains("corrupt tensor table"), "{e}");
}

/// Bit-level reference decoder, written from the GGML block layouts.
fn reference_dequant(dtype: WeightDType, b: &[u8]) -> Vec<f32> {
    let h = |i: usize| half::f16::from_bits(b[i] as u16 | (b[i + 1] as u16) << 8).to_f32();
    let mut out = vec![];
    let bs = dtype.block_bytes();
    for blk in 0..b.len() / bs {
        let o = blk * bs;
        let mut vals = [0f32; 32];
        for (j, v) in vals.iter_mut().enumerate() {
            *v = match dtype {
                WeightDType::Q4_0 => {
                    let byte = b[o + 2 + j % 16];
                    let q = if j < 16 { byte & 15 } else { byte >> 4 };
                    (q as f32 - 8.0) * h(o)
                }
                WeightDType::Q4_1 => {
                    let byte = b[o + 4 + j % 16];
                    let q = if j < 16 { byte & 15 } else { byte >> 4 };
                    q as f32 * h(o) + h(o + 2)
                }
                WeightDType::Q8_0 => (b[o + 2 + j] as i8) as f32 * h(o),
                _ => unreachable!(),
            };
        }
        out.extend_from_slice(&vals);
    }
    out
}

#[test]
fn block_dequant_matches_reference_and_error_bounds() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    for dtype in [WeightDType::Q4_0, WeightDType::Q4_1, WeightDType::Q8_0] {
        // Random raw blocks (any bit pattern with finite scales) decode like the reference.
        let n_blocks = 50;
        let mut raw = vec![0u8; n_blocks * dtype.block_bytes()];
        rng.fill(&mut raw[..]);
        for blk in 0..n_blocks {
            let o = blk * dtype.block_bytes();
            let scales = if dtype == WeightDType::Q4_1 { 2 } else { 1 };
            for s in 0..scales {
                let v = half::f16::from_f32(rng.random_range(-0.5f32..0.5)).to_le_bytes();
                raw[o + 2 * s..o + 2 * s + 2].copy_from_slice(&v);
            }
        }
        let ours = dequantize(dtype, &raw, n_blocks * 32).expect("dequant");
        assert_eq!(ours, reference_dequant(dtype, &raw), "{dtype}");

        // Quantize → dequantize stays within half a step of each block's scale
        // (plus f16 rounding of the scale, ~1e-3 relative).
        let x = random_values(&mut rng, 32 * 40);
        let q = quantize(dtype, &x).expect("quantize");
        let y = dequantize(dtype, &q, x.len()).expect("dequant");
        for (bx, by) in x.chunks(32).zip(y.chunks(32)) {
            let (lo, hi) = bx
                .iter()
                .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
            let amax = lo.abs().max(hi.abs());
            let step = match dtype {
                WeightDType::Q4_0 => amax / 8.0,
                WeightDType::Q4_1 => (hi - lo) / 15.0,
                _ => amax / 127.0,
            };
            // q4_0 maps the signed extreme to -8, so the opposite one may clip by a full step.
            let slack = if dtype == WeightDType::Q4_0 { 1.0 } else { 0.5 };
            for (a, b) in bx.iter().zip(by) {
                assert!(
                    (a - b).abs() <= step * slack + amax * 2e-3 + 1e-6,
                    "{dtype}: {a} vs {b} (step {step})"
                );
            }
        }
    }
}
