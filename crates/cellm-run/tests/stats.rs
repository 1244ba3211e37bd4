//! `cellm-run stats` on the micro model folder: the JSON line holds every
//! graph with the documented keys; the decoder, in the form the runtime runs
//! it, copies no KV bytes and uploads only its position id per step; and
//! `--dtype f16` halves the KV cache per position and about halves the
//! weights without changing the kernels.

mod common;

use common::{cellm_run, fixture};
use serde_json::Value;

fn stats(dtype: &str) -> Value {
    let out = cellm_run()
        .arg("stats")
        .arg(fixture("micro"))
        .args(["--past", "64", "--dtype", dtype, "--json"])
        .output()
        .expect("run cellm-run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cellm-run stats --dtype {dtype} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().expect("some stdout");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {last}"))
}

fn num(j: &Value, key: &str) -> u64 {
    j[key]
        .as_u64()
        .unwrap_or_else(|| panic!("'{key}' missing or not a count in {j}"))
}

#[test]
fn stats_json_and_f16_storage() {
    let (f32s, f16s) = (stats("f32"), stats("f16"));
    for name in ["vision_encoder", "embed_tokens", "decoder_model_merged"] {
        let g = &f32s["graphs"][name];
        for key in [
            "nodes_before",
            "nodes_after",
            "dispatches_prefill",
            "dispatches_per_decode_step",
            "kv_bytes_copied_per_decode_step",
            "host_to_device_bytes_per_decode_step",
            "device_to_host_bytes_per_decode_step",
            "peak_intermediate_bytes_before",
            "peak_intermediate_bytes_after",
        ] {
            assert!(g.get(key).is_some(), "{name}: no '{key}' in {g}");
        }
        assert!(num(g, "nodes_after") <= num(g, "nodes_before"), "{name}");
    }
    let (d32, d16) = (
        &f32s["graphs"]["decoder_model_merged"],
        &f16s["graphs"]["decoder_model_merged"],
    );
    assert_eq!(num(d32, "kv_bytes_copied_per_decode_step"), 0);
    assert!(
        num(d32, "host_to_device_bytes_per_decode_step") <= 8,
        "{d32}"
    );
    // f16: the same kernels, f16 caches (exactly half), f16 weight matrices
    // (the small norm weights stay f32, so a little over half).
    assert_eq!(
        num(d16, "dispatches_per_decode_step"),
        num(d32, "dispatches_per_decode_step")
    );
    assert_eq!(
        2 * num(d16, "kv_cache_bytes_per_position"),
        num(d32, "kv_cache_bytes_per_position")
    );
    let ratio = num(d16, "weight_bytes") as f64 / num(d32, "weight_bytes") as f64;
    assert!((0.5..0.55).contains(&ratio), "f16/f32 weight bytes {ratio}");
}

#[test]
fn stats_rejects_an_unknown_dtype() {
    let out = cellm_run()
        .arg("stats")
        .arg(fixture("micro"))
        .args(["--dtype", "f8"])
        .output()
        .expect("run cellm-run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--dtype f8"), "{err}");
}

/// The dispatch counts `stats` reports are what the GPU launches: a 20-row
/// prefill (above the fused q/k/v kernel's 16 rows, so its two-launch form)
/// and a decode step of the micro decoder, for both dtypes.
#[test]
fn stats_dispatch_counts_match_the_gpu() {
    use cellm_runtime::backend::{optimize_for, Backend, Executable};
    use cellm_runtime::decoder::KvDecoder;
    let ctx = match cellm_gpu::GpuContext::new() {
        Ok(ctx) => ctx,
        Err(e) if std::env::var("CELLM_ALLOW_NO_GPU").as_deref() == Ok("1") => {
            eprintln!("skipping (CELLM_ALLOW_NO_GPU=1): {e}");
            return;
        }
        Err(e) => panic!("no usable GPU adapter ({e}); set CELLM_ALLOW_NO_GPU=1 to skip"),
    };
    let gpu = Backend::Gpu(ctx);
    for dtype in ["f32", "f16"] {
        let out = cellm_run()
            .arg("stats")
            .arg(fixture("micro"))
            .args(["--prefill", "20", "--dtype", dtype, "--json"])
            .output()
            .expect("run cellm-run");
        assert!(out.status.success());
        let stdout = String::from_utf8_lossy(&out.stdout);
        let j: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        let d = &j["graphs"]["decoder_model_merged"];

        let path = fixture("micro/onnx/decoder_model_merged.onnx");
        let mut g = cellm_onnx::load(&path).unwrap();
        optimize_for(&mut g, &gpu).unwrap();
        cellm_runtime::backend::apply_dtype(&mut g, dtype).unwrap();
        let exe = Executable::prepared_decoder(g, &gpu, dtype).unwrap();
        let mut dec = KvDecoder::with_max_seq(exe, 64).unwrap();
        let hidden = dec.hidden_size();
        dec.forward(&vec![0.1; 20 * hidden]).unwrap();
        let prefill = dec.last_gpu_stats().unwrap().dispatches as u64;
        dec.forward(&vec![0.2; hidden]).unwrap();
        let step = dec.last_gpu_stats().unwrap().dispatches as u64;
        assert_eq!(prefill, num(d, "dispatches_prefill"), "{dtype} prefill");
        assert_eq!(step, num(d, "dispatches_per_decode_step"), "{dtype} step");
    }
}
