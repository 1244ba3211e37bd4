//! `cellm-run bench`: load time and steady-state speed of the decoder graph,
//! the vision encoder and `.cellm` llama models on synthetic inputs (random
//! embeddings, pixels or token ids: the content does not change the work).
//! `benches/run.py` runs these next to onnxruntime and llama.cpp.
//!
//! Every case prints one human line; `--json` adds one JSON object as the last
//! stdout line. Times are medians over `--reps`; decode is the median over reps
//! of each rep's median step time.

use crate::backend_arg::BackendArg;
use crate::cmd_chat::KvEncoding;
use anyhow::{bail, Context, Result};
use cellm_format::{build_llama_decoder, CellmFile, LlamaGraphOptions};
use cellm_ir::{DType, Tensor};
use cellm_runtime::decoder::KvDecoder;
use cellm_runtime::model_dir::ModelDir;
use cellm_runtime::smolvlm::median;
use cellm_runtime::{Backend, ExecOptions, Executable};
use clap::{Args, Subcommand};
use half::f16;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

#[derive(Subcommand)]
pub enum BenchWhat {
    /// Prefill and decode tok/s of a KV-cached decoder graph at several context lengths.
    Decoder(DecoderArgs),
    /// Vision encoder seconds per image (one random frame per run).
    Vision(VisionArgs),
    /// Prefill and decode tok/s of a .cellm llama model (random prompt ids).
    Llm(LlmArgs),
}

#[derive(Args, Clone)]
pub struct CommonArgs {
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,
    /// Timed repetitions per case (0: only load the model).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Untimed runs first, against first-touch page faults of the mapped weights
    /// (decoder, llm: one-token forwards; vision: whole images).
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Seed of the synthetic inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// End with one JSON object line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Clone)]
pub struct GraphLoadArgs {
    /// SmolVLM ONNX variant (file suffix) when a model folder is given.
    #[arg(long, default_value = "fp32")]
    pub onnx_variant: String,
    /// Run the graph as imported, without the optimisation passes (and without a plan).
    #[arg(long)]
    pub no_opt: bool,
    /// Plans folder (default `$CELLM_CACHE_DIR/plans` or the user cache's `cellm/plans`).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Storage of MatMul weights and the decoder's KV caches: f32 (as in the
    /// model) or f16.
    #[arg(long, default_value = "f32", value_parser = ["f32", "f16"])]
    pub dtype: String,
}

#[derive(Args)]
pub struct DecoderArgs {
    /// A SmolVLM model folder (its decoder_model_merged graph) or a decoder .onnx file.
    pub model: PathBuf,
    /// Prompt lengths: each case prefills this many random embeddings.
    #[arg(long, value_delimiter = ',', default_value = "64,512,2048")]
    pub ctx: Vec<usize>,
    /// Single-token decode steps after each prefill.
    #[arg(long, default_value_t = 16)]
    pub steps: usize,
    #[command(flatten)]
    pub load: GraphLoadArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args)]
pub struct VisionArgs {
    /// A SmolVLM model folder (its vision_encoder graph) or a vision encoder .onnx file.
    pub model: PathBuf,
    #[command(flatten)]
    pub load: GraphLoadArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args)]
pub struct LlmArgs {
    /// A .cellm llama model (see `cellm-run convert`).
    pub model: PathBuf,
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: usize,
    /// Single-token decode steps after the prefill (each feeds back the argmax).
    #[arg(long, default_value_t = 32)]
    pub steps: usize,
    /// dtype of the KV cache.
    #[arg(long, value_enum, default_value_t = KvEncoding::F32)]
    pub kv_encoding: KvEncoding,
    /// Skip the checksum of the model file (it is not part of the load time then).
    #[arg(long)]
    pub no_verify: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

pub fn run(a: BenchArgs) -> Result<()> {
    match a.what {
        BenchWhat::Decoder(a) => bench_decoder(a),
        BenchWhat::Vision(a) => bench_vision(a),
        BenchWhat::Llm(a) => bench_llm(a),
    }
}

/// splitmix64: synthetic inputs need no statistical quality, only variety.
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn fill(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next_f32() * scale).collect()
    }
}

/// The graph file of `stem` in a model folder, or `path` itself when it is a file.
fn graph_path(path: &Path, stem: &str, variant: &str) -> Result<PathBuf> {
    if path.is_dir() {
        Ok(ModelDir::open(path, variant)?.onnx_path(stem))
    } else if path.is_file() {
        Ok(path.to_path_buf())
    } else {
        bail!("{} is neither a model folder nor a file", path.display())
    }
}

/// What a graph is loaded as: decoders get the in-place KV cache pass, as in
/// `vlm` and `chat`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum GraphKind {
    Plain,
    Decoder,
}

/// Loads one graph as `exec`/`vlm` do (through the plan cache unless `--no-opt`).
/// Returns the executable and the plan status ("cached", "compiled" or "none").
fn load_graph(
    path: &Path,
    kind: GraphKind,
    l: &GraphLoadArgs,
    backend: &Backend,
) -> Result<(Executable, String)> {
    if l.no_opt {
        if l.dtype != "f32" {
            bail!(
                "--dtype {} needs the optimisation passes; drop --no-opt",
                l.dtype
            );
        }
        let opts = ExecOptions {
            optimize: false,
            ..Default::default()
        };
        let g = cellm_onnx::load(path).with_context(|| format!("importing {}", path.display()))?;
        let exe = match kind {
            GraphKind::Plain => Executable::with_options(g, backend, &opts)?,
            GraphKind::Decoder => Executable::decoder(g, backend, &opts)?,
        };
        return Ok((exe, "none".into()));
    }
    let dir = cellm_runtime::plan::cache_dir(l.cache_dir.as_deref());
    let plan = cellm_runtime::plan::load_or_compile(
        std::slice::from_ref(&path.to_path_buf()),
        &cellm_runtime::plan::PlanOptions {
            dtype: l.dtype.clone(),
            ..Default::default()
        },
        backend,
        &dir,
        false,
    )
    .with_context(|| format!("loading {}", path.display()))?;
    let status = plan.info.status.as_str().to_string();
    let graph = plan
        .graphs
        .into_iter()
        .next()
        .context("the plan holds no graph")?;
    let exe = match kind {
        GraphKind::Plain => Executable::prepared(graph, backend),
        GraphKind::Decoder => Executable::prepared_decoder(graph, backend, &l.dtype),
    }
    .with_context(|| format!("loading {}", path.display()))?;
    Ok((exe, status))
}

/// Worker threads of the CPU kernels (rayon's pool; `RAYON_NUM_THREADS` sets it).
fn cpu_threads(backend: &Backend) -> Option<usize> {
    match backend {
        Backend::Cpu => Some(cellm_cpu::par::threads()),
        _ => None,
    }
}

fn tok_s(tokens: usize, seconds: f64) -> f64 {
    if seconds > 0.0 {
        tokens as f64 / seconds
    } else {
        0.0
    }
}

/// Prefill and decode timings of one case over `reps`.
struct RunTimes {
    prefill_s: f64,
    step_s: f64,
}

/// Untimed one-row forwards, so that the first timed case does not pay the
/// first-touch page faults of the mapped weights (the whole model runs for one row).
fn warm_up(decoder: &mut KvDecoder, warmup: usize, row: &[f32]) -> Result<()> {
    for _ in 0..warmup {
        decoder.reset();
        decoder.forward(row).context("warm-up run")?;
    }
    decoder.reset();
    Ok(())
}

/// Runs the prompt; returns the last position's logits.
type PrefillFn<'a> = dyn FnMut(&mut KvDecoder) -> Result<Vec<f32>> + 'a;
/// One decode step given the previous logits; returns the new ones.
type StepFn<'a> = dyn FnMut(&mut KvDecoder, &[f32]) -> Result<Vec<f32>> + 'a;

/// Runs `prefill` then `steps` decode steps, `reps` times, resetting the cache
/// first each time; `step(logits)` does one decode step after the logits of the
/// previous one.
fn time_prefill_decode(
    decoder: &mut KvDecoder,
    reps: usize,
    steps: usize,
    prefill: &mut PrefillFn,
    step: &mut StepFn,
) -> Result<RunTimes> {
    let mut prefill_times = vec![];
    let mut step_medians = vec![];
    for _ in 0..reps {
        decoder.reset();
        let t = Instant::now();
        let mut logits = prefill(decoder)?;
        prefill_times.push(t.elapsed().as_secs_f64());
        let mut st = Vec::with_capacity(steps);
        for _ in 0..steps {
            let t = Instant::now();
            logits = step(decoder, &logits)?;
            st.push(t.elapsed().as_secs_f64());
        }
        step_medians.push(median(&st));
    }
    Ok(RunTimes {
        prefill_s: median(&prefill_times),
        step_s: median(&step_medians),
    })
}

fn print_json(j: &Value) {
    println!("{j}");
}

fn bench_decoder(a: DecoderArgs) -> Result<()> {
    let c = &a.common;
    if a.ctx.contains(&0) {
        bail!("--ctx values must be positive");
    }
    let backend = c.backend.resolve()?;
    let path = graph_path(&a.model, "decoder_model_merged", &a.load.onnx_variant)?;
    let t0 = Instant::now();
    let (exe, plan) = load_graph(&path, GraphKind::Decoder, &a.load, &backend)?;
    // Caches sized for the longest case (as `--max-seq` sizes them for a
    // user), so no case pays for growing them.
    let longest = a.ctx.iter().max().copied().unwrap_or(0) + a.steps;
    let max_seq = longest.max(cellm_runtime::decoder::DEFAULT_MAX_SEQ);
    let mut decoder = KvDecoder::with_max_seq(exe, max_seq)?;
    let load_s = t0.elapsed().as_secs_f64();
    let hidden = decoder.hidden_size();
    println!(
        "cellm decoder {} on {}: loaded in {load_s:.3} s (plan {plan})",
        path.display(),
        backend.name()
    );
    let mut rng = SplitMix(c.seed);
    let mut cases = vec![];
    if c.reps > 0 {
        warm_up(&mut decoder, c.warmup, &rng.fill(hidden, 0.5))?;
        for &ctx in &a.ctx {
            // Embedding-sized values (|x| ≲ 0.5) keep the activations in their usual range.
            let prompt = rng.fill(ctx * hidden, 0.5);
            let row = rng.fill(hidden, 0.5);
            let times = time_prefill_decode(
                &mut decoder,
                c.reps,
                a.steps,
                &mut |d| d.forward(&prompt),
                &mut |d, _| d.forward(&row),
            )
            .with_context(|| format!("decoder case ctx {ctx}"))?;
            // The GPU's own count for the last timed decode step (the device
            // picks its attention kernels by context length).
            let dispatches = decoder.last_gpu_stats().map(|s| s.dispatches);
            let case = json!({
                "ctx": ctx,
                "prefill_s": times.prefill_s,
                "prefill_tok_s": tok_s(ctx, times.prefill_s),
                "decode_s_per_token": times.step_s,
                "decode_tok_s": tok_s(1, times.step_s),
                "gpu_dispatches_per_decode_step": dispatches,
            });
            println!(
                "  ctx {ctx:>5}: prefill {:.4} s ({:.1} tok/s), decode {:.2} ms/token ({:.1} tok/s){}",
                times.prefill_s,
                tok_s(ctx, times.prefill_s),
                times.step_s * 1e3,
                tok_s(1, times.step_s),
                dispatches.map_or(String::new(), |d| format!(", {d} dispatches per step")),
            );
            cases.push(case);
        }
    }
    if c.json {
        print_json(&json!({
            "bench": "decoder",
            "engine": "cellm",
            "backend": backend.name(),
            "threads": cpu_threads(&backend),
            "model": path.display().to_string(),
            "plan": plan,
            "load_s": load_s,
            "reps": c.reps,
            "warmup": c.warmup,
            "steps": a.steps,
            "hidden": hidden,
            "cases": cases,
        }));
    }
    Ok(())
}

/// Side of the square frame the encoder takes: the input's fixed last dim, else
/// the folder's vision_config.image_size, else 512 (SmolVLM's).
fn image_side(exe: &Executable, model: &Path) -> usize {
    let g = exe.graph();
    let from_graph = g
        .find("pixel_values")
        .and_then(|v| g.values[v].fact.as_ref())
        .and_then(|f| f.shape.as_ref())
        .and_then(|s| s.last())
        .and_then(|d| d.known());
    let from_config = || {
        let dir = if model.is_dir() {
            model.to_path_buf()
        } else {
            model.parent()?.parent()?.to_path_buf()
        };
        let cfg = cellm_runtime::model_dir::read_json(&dir.join("config.json")).ok()?;
        cfg.get("vision_config")?
            .get("image_size")?
            .as_u64()
            .map(|v| v as usize)
    };
    from_graph.or_else(from_config).unwrap_or(512)
}

fn bench_vision(a: VisionArgs) -> Result<()> {
    let c = &a.common;
    let backend = c.backend.resolve()?;
    let path = graph_path(&a.model, "vision_encoder", &a.load.onnx_variant)?;
    let t0 = Instant::now();
    let (exe, plan) = load_graph(&path, GraphKind::Plain, &a.load, &backend)?;
    let load_s = t0.elapsed().as_secs_f64();
    let side = image_side(&exe, &a.model);
    println!(
        "cellm vision {} on {}: loaded in {load_s:.3} s (plan {plan})",
        path.display(),
        backend.name()
    );
    let mut rng = SplitMix(c.seed);
    let shape = vec![1, 1, 3, side, side];
    // Normalised pixels lie in [-1, 1].
    let pixels = rng.fill(3 * side * side, 1.0);
    let pixel_values = match exe.input_dtype("pixel_values") {
        Some(DType::F16) => Tensor::from_vec(
            shape,
            pixels.iter().map(|&v| f16::from_f32(v)).collect::<Vec<_>>(),
        ),
        Some(DType::F32) | None => Tensor::from_vec(shape, pixels),
        Some(other) => bail!("vision encoder pixel_values has unsupported dtype {other}"),
    };
    let mut inputs = HashMap::new();
    inputs.insert("pixel_values".to_string(), pixel_values);
    if exe.graph().find("pixel_attention_mask").is_some() {
        inputs.insert(
            "pixel_attention_mask".to_string(),
            Tensor::from_bools(vec![1, 1, side, side], vec![true; side * side]),
        );
    }
    let mut times = vec![];
    if c.reps > 0 {
        for rep in 0..c.warmup + c.reps {
            let t = Instant::now();
            let out = exe.run(&inputs).context("vision encoder")?;
            let s = t.elapsed().as_secs_f64();
            if out.is_empty() {
                bail!("vision encoder returned no outputs");
            }
            if rep >= c.warmup {
                times.push(s);
            }
        }
    }
    let per_image = median(&times);
    if c.reps > 0 {
        println!(
            "  one {side}x{side} image: {per_image:.4} s (median of {})",
            c.reps
        );
    }
    if c.json {
        print_json(&json!({
            "bench": "vision",
            "engine": "cellm",
            "backend": backend.name(),
            "threads": cpu_threads(&backend),
            "model": path.display().to_string(),
            "plan": plan,
            "load_s": load_s,
            "reps": c.reps,
            "warmup": c.warmup,
            "image_side": side,
            "s_per_image": per_image,
            "times_s": times,
        }));
    }
    Ok(())
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

fn bench_llm(a: LlmArgs) -> Result<()> {
    let c = &a.common;
    if a.prompt_tokens == 0 {
        bail!("--prompt-tokens must be positive");
    }
    let backend = c.backend.resolve()?;
    let t0 = Instant::now();
    let file = if a.no_verify {
        CellmFile::open_unverified(&a.model)?
    } else {
        CellmFile::open(&a.model)?
    };
    let opts = LlamaGraphOptions {
        kv_dtype: match a.kv_encoding {
            KvEncoding::F16 => DType::F16,
            KvEncoding::F32 => DType::F32,
        },
    };
    let model = build_llama_decoder(&file, &opts)
        .with_context(|| format!("building the decoder of {}", a.model.display()))?;
    let embedder = model.embedder.clone();
    let exe = Executable::decoder(model.graph, &backend, &ExecOptions::default())?;
    let mut decoder = KvDecoder::new(exe)?;
    let load_s = t0.elapsed().as_secs_f64();
    let vocab = embedder.vocab();
    if vocab == 0 {
        bail!("{}: the embedding table is empty", a.model.display());
    }
    println!(
        "cellm llm {} on {}: loaded in {load_s:.3} s",
        a.model.display(),
        backend.name()
    );
    let mut rng = SplitMix(c.seed);
    let prompt: Vec<u32> = (0..a.prompt_tokens)
        .map(|_| (rng.next_u64() % vocab as u64) as u32)
        .collect();
    let mut result = json!({
        "bench": "llm",
        "engine": "cellm",
        "backend": backend.name(),
        "threads": cpu_threads(&backend),
        "model": a.model.display().to_string(),
        "load_s": load_s,
        "reps": c.reps,
        "warmup": c.warmup,
        "prompt_tokens": a.prompt_tokens,
        "steps": a.steps,
    });
    if c.reps > 0 {
        // Embedding lookups are timed too: llama.cpp's graph does them as well.
        warm_up(&mut decoder, c.warmup, &embedder.embed(&prompt[..1])?)?;
        let times = time_prefill_decode(
            &mut decoder,
            c.reps,
            a.steps,
            &mut |d| d.forward(&embedder.embed(&prompt)?),
            &mut |d, logits| d.forward(&embedder.embed(&[argmax(logits)])?),
        )?;
        println!(
            "  prefill {} tokens {:.4} s ({:.1} tok/s), decode {:.2} ms/token ({:.1} tok/s)",
            a.prompt_tokens,
            times.prefill_s,
            tok_s(a.prompt_tokens, times.prefill_s),
            times.step_s * 1e3,
            tok_s(1, times.step_s)
        );
        let extra = json!({
            "prefill_s": times.prefill_s,
            "prefill_tok_s": tok_s(a.prompt_tokens, times.prefill_s),
            "decode_s_per_token": times.step_s,
            "decode_tok_s": tok_s(1, times.step_s),
        });
        if let (Some(r), Some(e)) = (result.as_object_mut(), extra.as_object()) {
            r.extend(e.clone());
        }
    }
    if c.json {
        print_json(&result);
    }
    Ok(())
}
