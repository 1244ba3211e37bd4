//! In-place KV caches (the `kv_cache` pass + KvDecoder's caches) against the
//! plain decoder that concatenates past and new K/V every step: same logits
//! over a prefill and several decode steps, after a reset, and past a cache
//! capacity that forces the buffers to grow; on the CPU and on the GPU.

use anyhow::Result;
use cellm_runtime::backend::{optimize_for, Backend, ExecOptions, Executable};
use cellm_runtime::decoder::KvDecoder;
use rand::{Rng, SeedableRng};

mod common;
use common::{cpu_and_gpu, fixture, gpu, max_rel, seeded};

/// The optimised decoder that feeds present back as past (no cache pass).
fn plain(file: &str) -> Result<KvDecoder> {
    let mut g = cellm_onnx::load(&fixture(file))?;
    optimize_for(&mut g, &Backend::Cpu)?;
    let d = KvDecoder::new(Executable::prepared(g, &Backend::Cpu)?)?;
    assert!(!d.uses_kv_cache());
    Ok(d)
}

fn cached(file: &str, backend: &Backend, max_seq: usize) -> Result<KvDecoder> {
    let g = cellm_onnx::load(&fixture(file))?;
    let exe = Executable::decoder(g, backend, &ExecOptions::default())?;
    let d = KvDecoder::with_max_seq(exe, max_seq)?;
    assert!(d.uses_kv_cache(), "the kv_cache pass did not match {file}");
    Ok(d)
}

/// [`cached`] without the `causal_mask` pass, so the graph still reads its
/// attention mask (that pass drops the mask preamble of the runtime's form).
fn cached_reading_mask(file: &str, backend: &Backend, max_seq: usize) -> Result<KvDecoder> {
    let mut g = cellm_onnx::load(&fixture(file))?;
    optimize_for(&mut g, backend)?;
    assert!(cellm_opt::passes::kv_cache::apply(&mut g)? > 0);
    cellm_opt::passes::last_logits::apply(&mut g, "logits")?;
    KvDecoder::with_max_seq(Executable::prepared(g, backend)?, max_seq)
}

/// Prefill 7 random rows, then 6 single steps; logits must match the plain
/// decoder's at every step. `tol`: f32 ≈ 1e-4 of the largest logit (the
/// cache path sums attention in another order); the GPU adds its own
/// rounding order, so the same bound holds there.
fn compare(file: &str, backend: &Backend, max_seq: usize, tol: f64) -> Result<()> {
    let seed: u64 = rand::rng().random();
    println!("{file} on {}: seed {seed}", backend.name());
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut reference = plain(file)?;
    let mut fast = cached(file, backend, max_seq)?;
    let hidden = reference.hidden_size();
    let mut rows = |n: usize| -> Vec<f32> {
        (0..n * hidden)
            .map(|_| rng.random_range(-0.5..0.5))
            .collect()
    };
    let steps: Vec<Vec<f32>> = std::iter::once(rows(7))
        .chain((0..6).map(|_| rows(1)))
        .collect();
    for round in 0..2 {
        for (i, x) in steps.iter().enumerate() {
            let want = reference.forward(x)?;
            let got = fast.forward(x)?;
            let err = max_rel(&got, &want);
            assert!(
                err <= tol,
                "{file} on {} round {round} step {i}: max rel diff {err:.2e} > {tol:.0e} (seed {seed})",
                backend.name()
            );
            assert_eq!(fast.past_len(), reference.past_len());
        }
        // A new conversation must not see the old rows.
        reference.reset();
        fast.reset();
    }
    Ok(())
}

#[test]
fn cpu_cache_matches_concat_decoder() -> Result<()> {
    compare(
        "micro/onnx/decoder_model_merged.onnx",
        &Backend::Cpu,
        2048,
        1e-4,
    )?;
    // Capacity 4 < 7 prefill rows: the caches grow (one copy) mid-run.
    compare(
        "micro/onnx/decoder_model_merged.onnx",
        &Backend::Cpu,
        4,
        1e-4,
    )?;
    // The torchscript export reaches the same form.
    compare(
        "micro/onnx_torchscript/decoder_model_merged.onnx",
        &Backend::Cpu,
        16,
        1e-4,
    )
}

#[test]
fn gpu_cache_matches_concat_decoder() -> Result<()> {
    let Some(gpu) = gpu() else { return Ok(()) };
    compare("micro/onnx/decoder_model_merged.onnx", &gpu, 2048, 1e-4)?;
    compare("micro/onnx/decoder_model_merged.onnx", &gpu, 4, 1e-4)
}

/// One decode step on the GPU moves only the step's embedding row and
/// position id up (the attention mask stays on the device, the K/V too) and
/// the last logits back: a constant number of bytes, whatever the context
/// length (checked at 22 through 200 positions, past the cache's capacity of
/// 64, where the caches and the mask grow).
#[test]
fn gpu_decode_step_transfers_no_kv() -> Result<()> {
    let Some(gpu) = gpu() else { return Ok(()) };
    let mut d = cached("micro/onnx/decoder_model_merged.onnx", &gpu, 64)?;
    let hidden = d.hidden_size();
    d.forward(&vec![0.1; 20 * hidden])?;
    let up = (hidden * 4) as u64 + 8; // embeds + position_ids
    let vocab = 49280u64;
    for step in 0..180 {
        d.forward(&vec![0.2; hidden])?;
        let s = d.last_gpu_stats().expect("GPU stats");
        assert!(
            s.host_to_device_bytes <= up,
            "step {step} (past {}): uploaded {} bytes, expected at most {up}",
            d.past_len() - 1,
            s.host_to_device_bytes
        );
        assert_eq!(
            s.device_to_host_bytes,
            vocab * 4,
            "only the last logits come back"
        );
    }
    Ok(())
}

/// The device-resident mask is the mask the host would upload: with fresh
/// random embeddings, 12 greedy steps give the same tokens and logits with
/// and without it (the same integers reach the same kernels, so the logits
/// agree to 1e-6 of their scale, a margin for any reduction-order change).
#[test]
fn gpu_resident_mask_matches_uploaded_mask() -> Result<()> {
    let Some(gpu) = gpu() else { return Ok(()) };
    let file = "micro/onnx/decoder_model_merged.onnx";
    let (seed, mut rng) = seeded();
    let mut resident = cached_reading_mask(file, &gpu, 8)?;
    let mut uploaded = cached_reading_mask(file, &gpu, 8)?;
    uploaded.set_resident_mask(false);
    let hidden = resident.hidden_size();
    // A random "embedding table" of 64 rows: token id → row id % 64.
    let table: Vec<f32> = (0..64 * hidden)
        .map(|_| rng.random_range(-0.5..0.5))
        .collect();
    let row = |id: usize| table[(id % 64) * hidden..(id % 64 + 1) * hidden].to_vec();
    let prompt: Vec<f32> = (0..5).flat_map(|i| row(i * 7)).collect();
    let argmax = |l: &[f32]| {
        l.iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
            .expect("logits")
    };
    let (mut a, mut b) = (resident.forward(&prompt)?, uploaded.forward(&prompt)?);
    let (mut ids_a, mut ids_b) = (vec![], vec![]);
    for step in 0..12 {
        let err = max_rel(&a, &b);
        assert!(
            err <= 1e-6,
            "step {step}: max rel diff {err:.2e} (seed {seed})"
        );
        ids_a.push(argmax(&a));
        ids_b.push(argmax(&b));
        a = resident.forward(&row(ids_a[step]))?;
        b = uploaded.forward(&row(ids_b[step]))?;
    }
    assert_eq!(ids_a, ids_b, "greedy tokens (seed {seed})");
    let up_a = resident
        .last_gpu_stats()
        .expect("stats")
        .host_to_device_bytes;
    let up_b = uploaded
        .last_gpu_stats()
        .expect("stats")
        .host_to_device_bytes;
    assert!(
        up_a < up_b,
        "the resident mask uploaded {up_a} bytes, the uploaded one {up_b}"
    );
    Ok(())
}

/// Which decoders keep their mask resident: the cached form, not the plain one.
#[test]
fn resident_mask_only_for_cached_decoders() -> Result<()> {
    use cellm_runtime::decoder::resident_mask_input;
    let file = "micro/onnx/decoder_model_merged.onnx";
    let mut g = cellm_onnx::load(&fixture(file))?;
    optimize_for(&mut g, &Backend::Cpu)?;
    assert!(resident_mask_input(&g).is_none(), "plain decoder");
    let exe = Executable::decoder(
        cellm_onnx::load(&fixture(file))?,
        &Backend::Cpu,
        &ExecOptions::default(),
    )?;
    let m = resident_mask_input(exe.graph()).expect("cached decoder's mask");
    assert_eq!(exe.graph().value_name(m), "attention_mask");
    Ok(())
}

/// `--dtype f16` (MatMul weights stored as f16, f32 accumulation) stays
/// within f16 rounding of the f32 decoder: weights carry ~5e-4 relative
/// error each, so logits move by well under 2e-2 of their scale.
#[test]
fn f16_weights_close_to_f32() -> Result<()> {
    let backends = cpu_and_gpu();
    for backend in backends {
        let file = "micro/onnx/decoder_model_merged.onnx";
        let mut reference = plain(file)?;
        let opts = ExecOptions {
            plan_options: cellm_runtime::plan::PlanOptions {
                dtype: "f16".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        let exe = Executable::decoder(cellm_onnx::load(&fixture(file))?, &backend, &opts)?;
        let g = exe.graph();
        let (mut halves, mut left) = (0, 0);
        for ix in g.nodes.node_indices() {
            let n = &g.nodes[ix];
            // The weight inputs of MatMul and of the fused products.
            let slots = match n.op {
                cellm_ir::Op::MatMul(_) | cellm_ir::Op::MatMulEpilogue(_) => 1..2,
                cellm_ir::Op::MatMulSiluMul(_) | cellm_ir::Op::MatMulMulti(_) => 1..n.inputs.len(),
                cellm_ir::Op::MatMulMultiRotary(_) => {
                    cellm_ir::ops::mat_mul_multi_rotary::FIRST_WEIGHT..n.inputs.len()
                }
                cellm_ir::Op::MultiHeadAttentionMatMul(_) => {
                    let w = cellm_ir::ops::multi_head_attention_mat_mul::WEIGHT;
                    w..w + 1
                }
                _ => continue,
            };
            for w in slots.filter_map(|i| n.inputs[i].and_then(|b| g.initializers.get(&b))) {
                match w.dtype() {
                    cellm_ir::DType::F16 => halves += 1,
                    _ if w.len() >= 1024 => left += 1,
                    _ => {}
                }
            }
        }
        assert!(
            halves >= 11 && left == 0,
            "{halves} weights f16, {left} large ones left f32"
        );
        let mut fast = KvDecoder::new(exe)?;
        let hidden = reference.hidden_size();
        let x: Vec<f32> = (0..5 * hidden)
            .map(|i| ((i * 37 % 101) as f32 / 101.0) - 0.5)
            .collect();
        for (i, rows) in [&x[..], &x[..hidden], &x[hidden..2 * hidden]]
            .iter()
            .enumerate()
        {
            let want = reference.forward(rows)?;
            let got = fast.forward(rows)?;
            let err = max_rel(&got, &want);
            assert!(
                err < 2e-2,
                "{} step {i}: f16 weights moved logits by {err:.2e}",
                backend.name()
            );
            assert!(err > 0.0, "f16 weights changed nothing: were they used?");
        }
    }
    Ok(())
}

/// A prefill longer than `PREFILL_CHUNK` runs in chunks after the cached
/// prefix; its logits and the steps after it match the plain decoder's,
/// which takes all rows at once (f32 bound 1e-4 of the largest logit: the
/// chunks sum attention in another order), on the CPU and the GPU.
#[test]
fn long_prefill_runs_in_chunks() -> Result<()> {
    use cellm_runtime::decoder::PREFILL_CHUNK;
    let file = "micro/onnx/decoder_model_merged.onnx";
    let (seed, mut rng) = seeded();
    let backends = cpu_and_gpu();
    for backend in &backends {
        let mut reference = plain(file)?;
        let mut fast = cached(file, backend, 64)?;
        let hidden = reference.hidden_size();
        // Two whole chunks and a part, then single steps.
        let rows = 2 * PREFILL_CHUNK + 37;
        for (i, n) in [rows, 1, 1].into_iter().enumerate() {
            let x: Vec<f32> = (0..n * hidden)
                .map(|_| rng.random_range(-0.5..0.5))
                .collect();
            let err = max_rel(&fast.forward(&x)?, &reference.forward(&x)?);
            assert!(
                err <= 1e-4,
                "{} step {i} ({n} rows): max rel diff {err:.2e} (seed {seed})",
                backend.name()
            );
            assert_eq!(fast.past_len(), reference.past_len());
        }
    }
    Ok(())
}

/// A cached decoder whose KV caches are f16 (`--dtype f16`'s runtime form);
/// `weights_f16` also stores the weights as f16 (all of `--dtype f16`).
fn f16_cached(file: &str, backend: &Backend, weights_f16: bool) -> Result<KvDecoder> {
    let mut g = cellm_onnx::load(&fixture(file))?;
    let dtype = if weights_f16 { "f16" } else { "f32" };
    // The plan's form: on the CPU, f16 weights in column panels.
    cellm_runtime::backend::compile_for(&mut g, backend, dtype)?;
    cellm_runtime::backend::with_kv_cache(&mut g, "f16")?;
    let pasts: Vec<_> = g
        .inputs
        .iter()
        .filter(|&&v| g.value_name(v).starts_with("past_key_values"))
        .map(|&v| g.values[v].fact.as_ref().map(|f| f.dtype))
        .collect();
    assert!(
        !pasts.is_empty() && pasts.iter().all(|&d| d == Some(cellm_ir::DType::F16)),
        "{file}: caches {pasts:?}"
    );
    let d = KvDecoder::with_max_seq(Executable::prepared(g, backend)?, 64)?;
    assert!(d.uses_kv_cache());
    Ok(d)
}

/// f16 KV caches (`--dtype f16` stores keys and values as f16; attention
/// widens them and stays f32) over a 7-row prefill and 6 steps, on the CPU
/// and the GPU, against the f32 decoder:
/// - caches alone: each key/value carries ≤ 2^-11 relative rounding; scores
///   q·k on these random nets reach tens, so softmax weights move by up to
///   ~1%: logits stay within 2e-2 of their scale (f16's bound; measured
///   1–9e-3), but they must move (the caches were used);
/// - the caches take half the bytes of f32 caches of the same capacity;
/// - with f16 weights too, GPU and CPU agree within 1e-3 (same f16 weights,
///   f32 sums in different orders; a key rounded on either side of an f16
///   step moves logits ~1e-5).
#[test]
fn f16_kv_caches_close_to_f32() -> Result<()> {
    let file = "micro/onnx/decoder_model_merged.onnx";
    let (seed, mut rng) = seeded();
    let backends = cpu_and_gpu();
    let hidden = plain(file)?.hidden_size();
    let steps: Vec<Vec<f32>> = [7usize, 1, 1, 1, 1, 1, 1]
        .iter()
        .map(|&n| {
            (0..n * hidden)
                .map(|_| rng.random_range(-0.5..0.5))
                .collect()
        })
        .collect();
    let mut all_f16_logits: Vec<Vec<Vec<f32>>> = vec![];
    for backend in &backends {
        let mut reference = cached(file, backend, 64)?;
        let mut half_kv = f16_cached(file, backend, false)?;
        let mut all_f16 = f16_cached(file, backend, true)?;
        let mut moved = 0.0f64;
        let mut logits = vec![];
        for (i, x) in steps.iter().enumerate() {
            let want = reference.forward(x)?;
            let got = half_kv.forward(x)?;
            let err = max_rel(&got, &want);
            assert!(
                err < 2e-2,
                "{} step {i}: f16 caches moved logits by {err:.2e} (seed {seed})",
                backend.name()
            );
            moved = moved.max(err);
            logits.push(all_f16.forward(x)?);
        }
        println!("{}: f16 caches moved logits by {moved:.2e}", backend.name());
        assert!(
            moved > 0.0,
            "{}: f16 caches changed nothing",
            backend.name()
        );
        // Half, up to the GPU's per-buffer alignment padding.
        let f32_bytes = reference.kv_cache_bytes().expect("caches") as f64;
        let f16_bytes = half_kv.kv_cache_bytes().expect("caches") as f64;
        assert!(
            (0.5..0.53).contains(&(f16_bytes / f32_bytes)),
            "{}: f16 caches {f16_bytes} bytes, f32 {f32_bytes}",
            backend.name()
        );
        all_f16_logits.push(logits);
    }
    if let [cpu, gpu] = &all_f16_logits[..] {
        for (i, (c, g)) in cpu.iter().zip(gpu).enumerate() {
            let err = max_rel(g, c);
            assert!(
                err < 1e-3,
                "--dtype f16 step {i}: GPU vs CPU {err:.2e} (seed {seed})"
            );
        }
    }
    Ok(())
}

/// A decode step fed by embed_tokens' device output (no readback, no
/// upload) gives the logits of the host round trip, and uploads only its
/// position id: the embedding row and the mask stay on the device.
#[test]
fn gpu_device_embedding_rows_match_host_rows() -> Result<()> {
    use cellm_ir::Tensor;
    use cellm_runtime::EmbedRows;
    use std::collections::HashMap;
    let Some(gpu) = gpu() else { return Ok(()) };
    let embed_graph = cellm_onnx::load(&fixture("micro/onnx/embed_tokens.onnx"))?;
    let embed = Executable::new(embed_graph, &gpu)?;
    let file = "micro/onnx/decoder_model_merged.onnx";
    let mut on_device = cached(file, &gpu, 8)?;
    let mut on_host = cached(file, &gpu, 8)?;
    assert!(on_device.takes_device_rows(cellm_ir::DType::F32));
    let (seed, mut rng) = seeded();
    let ids_in = |id: i64| {
        HashMap::from([(
            "input_ids".to_string(),
            Tensor::from_vec(vec![1, 1], vec![id]),
        )])
    };
    let vocab = embed
        .graph()
        .initializers
        .values()
        .map(|t| t.shape()[0])
        .max()
        .expect("embedding table");
    let ids: Vec<i64> = (0..6).map(|_| rng.random_range(0..vocab as i64)).collect();
    let prompt_in = HashMap::from([("input_ids".to_string(), Tensor::from_vec(vec![1, 6], ids))]);
    let prompt = embed.run(&prompt_in)?["inputs_embeds"].to_f32_vec()?;
    let (mut a, mut b) = (on_device.forward(&prompt)?, on_host.forward(&prompt)?);
    for step in 0..10 {
        let err = max_rel(&a, &b);
        assert!(
            err <= 1e-6,
            "step {step}: max rel diff {err:.2e} (seed {seed})"
        );
        let id = rng.random_range(0..vocab as i64);
        let rows = embed.run_for_rows(&ids_in(id), "inputs_embeds")?;
        assert!(
            matches!(rows, EmbedRows::Device(_)),
            "GPU rows stay on the device"
        );
        a = on_device.forward_rows(rows)?;
        let host = embed.run(&ids_in(id))?["inputs_embeds"].to_f32_vec()?;
        b = on_host.forward(&host)?;
        let up = on_device
            .last_gpu_stats()
            .expect("stats")
            .host_to_device_bytes;
        // position_ids [1, 1] i64 go up as one 4-byte device word.
        assert!(
            up <= 8,
            "step {step}: decoder uploaded {up} bytes (seed {seed})"
        );
    }
    Ok(())
}
