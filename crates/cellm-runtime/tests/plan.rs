//! Plans on disk: a cached plan runs bit-identically to a fresh compile, a
//! modified model misses the cache, a corrupt or truncated plan is rejected
//! with one message and recompiled, and plans are written atomically.
//!
//! Every test works on a copy of the micro decoder in its own temporary
//! folder (no shared state with other tests or the user's cache).

use anyhow::{Context, Result};
use cellm_ir::{npy, Graph, Tensor};
use cellm_runtime::plan::{self, PlanOptions, PlanStatus};
use cellm_runtime::Backend;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

mod common;
use common::fixture;

/// A fresh temporary folder, unique per test and run.
fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let d = std::env::temp_dir().join(format!(
        "cellm-plan-test-{tag}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Copies the micro decoder into `dir` (writable, unlike the fixtures).
fn copy_decoder(dir: &Path) -> PathBuf {
    let to = dir.join("decoder_model_merged.onnx");
    std::fs::copy(fixture("micro/onnx/decoder_model_merged.onnx"), &to).expect("copy model");
    to
}

/// Step-0 decoder inputs from the onnxruntime golden files (empty past).
fn step0_inputs(g: &Graph) -> HashMap<String, Tensor> {
    let read = |n: &str| npy::read(&fixture(&format!("micro/golden/{n}"))).expect("golden");
    let mut m = HashMap::new();
    m.insert("inputs_embeds".into(), read("step0_inputs_embeds.npy"));
    m.insert("attention_mask".into(), read("step0_attention_mask.npy"));
    m.insert("position_ids".into(), read("step0_position_ids.npy"));
    for &v in &g.inputs {
        let name = g.value_name(v);
        if name.starts_with("past_key_values.") {
            let f = g.values[v].fact.clone().expect("declared past");
            let s = f.shape.expect("past shape");
            let d = |i: usize| s[i].known().expect("fixed kv dim");
            m.insert(
                name.to_string(),
                Tensor::zeros(f.dtype, vec![1, d(1), 0, d(3)]),
            );
        }
    }
    m
}

/// Runs the (single) graph of a plan on the CPU.
fn run(graphs: &[Graph]) -> HashMap<String, Tensor> {
    let g = &graphs[0];
    cellm_cpu::run(g, &step0_inputs(g)).expect("run")
}

fn same_bits(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>) -> bool {
    a.len() == b.len()
        && a.iter().all(|(k, t)| {
            b.get(k)
                .is_some_and(|u| u.shape() == t.shape() && u.bytes() == t.bytes())
        })
}

fn compile(model: &Path, cache: &Path) -> Result<plan::LoadedPlan> {
    plan::load_or_compile(
        &[model.to_path_buf()],
        &PlanOptions::default(),
        &Backend::Cpu,
        cache,
        false,
    )
}

#[test]
fn cached_plan_runs_bit_identical_to_fresh_compile() -> Result<()> {
    let dir = temp_dir("roundtrip");
    let model = copy_decoder(&dir);
    let cache = dir.join("plans");
    let fresh = compile(&model, &cache)?;
    assert_eq!(fresh.info.status, PlanStatus::Compiled);
    assert!(fresh.info.rejected.is_none());
    let cached = compile(&model, &cache)?;
    assert_eq!(cached.info.status, PlanStatus::Cached);
    assert_eq!(cached.info.path, fresh.info.path);
    // The plan refers to the model's aligned weights and holds only aligned
    // copies of the misaligned ones and the decode weights it re-stored in
    // panels, so it is never bigger than graph + weights + panel copies, and
    // every weight a cached load hands out is aligned.
    let plan_bytes = std::fs::metadata(&fresh.info.path)?.len();
    let model_bytes = std::fs::metadata(&model)?.len();
    let panel_bytes: u64 = fresh.graphs[0]
        .initializers
        .values()
        .filter(|t| t.layout() != cellm_ir::Layout::RowMajor)
        .map(|t| t.bytes().len() as u64)
        .sum();
    println!("plan {plan_bytes} bytes for a {model_bytes}-byte model, {panel_bytes} in panels");
    assert!(
        panel_bytes > 0,
        "a CPU plan stores its decode weights in panels"
    );
    assert!(plan_bytes < model_bytes + panel_bytes + (1 << 20));
    for t in cached.graphs[0].initializers.values() {
        let p = t.bytes().as_ptr() as usize;
        assert_eq!(
            p % t.dtype().size().max(1),
            0,
            "a cached weight is misaligned"
        );
    }
    assert_eq!(
        cached.graphs[0].nodes.node_count(),
        fresh.graphs[0].nodes.node_count()
    );
    let (a, b) = (run(&fresh.graphs), run(&cached.graphs));
    assert!(same_bits(&a, &b), "cached plan's outputs differ");
    // And the plan is really the optimised graph: same outputs as optimising now.
    let mut g = cellm_onnx::load(&model)?;
    cellm_runtime::backend::compile_for(&mut g, &Backend::Cpu, "f32")?;
    assert!(
        same_bits(&run(&[g]), &b),
        "plan differs from a fresh optimise"
    );
    // --force compiles even with a valid plan.
    let forced = plan::load_or_compile(
        std::slice::from_ref(&model),
        &PlanOptions::default(),
        &Backend::Cpu,
        &cache,
        true,
    )?;
    assert_eq!(forced.info.status, PlanStatus::Compiled);
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

/// A CPU plan with `--dtype f16` stores its weights in column panels; a
/// cached load keeps the layout (not a scrambled row-major tensor) and runs
/// bit-identically to the fresh compile.
#[test]
fn cpu_f16_plan_keeps_panel_weights() -> Result<()> {
    let dir = temp_dir("panels");
    let model = copy_decoder(&dir);
    let cache = dir.join("plans");
    let opts = PlanOptions {
        dtype: "f16".into(),
        ..Default::default()
    };
    let load = || {
        plan::load_or_compile(
            std::slice::from_ref(&model),
            &opts,
            &Backend::Cpu,
            &cache,
            false,
        )
    };
    let fresh = load()?;
    let cached = load()?;
    assert_eq!(cached.info.status, PlanStatus::Cached);
    let layouts = |graphs: &[Graph]| -> Vec<(usize, cellm_ir::Layout)> {
        let mut v: Vec<_> = graphs[0]
            .initializers
            .iter()
            .map(|(&id, t)| (id, t.layout()))
            .collect();
        v.sort_by_key(|p| p.0);
        v
    };
    let panels = layouts(&cached.graphs)
        .iter()
        .filter(|(_, l)| *l != cellm_ir::Layout::RowMajor)
        .count();
    assert!(panels > 0, "no weight in panels");
    assert_eq!(layouts(&cached.graphs), layouts(&fresh.graphs));
    for (id, t) in &fresh.graphs[0].initializers {
        assert!(
            cached.graphs[0].initializers[id] == *t,
            "initializer {id} changed"
        );
    }
    assert!(same_bits(&run(&fresh.graphs), &run(&cached.graphs)));
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

#[test]
fn modified_model_is_recompiled() -> Result<()> {
    let dir = temp_dir("stale");
    let model = copy_decoder(&dir);
    let cache = dir.join("plans");
    let first = compile(&model, &cache)?;
    let before = run(&first.graphs);
    // Touching alone keeps the content (and so the key): still cached.
    let bytes = std::fs::read(&model)?;
    std::fs::write(&model, &bytes)?;
    assert_eq!(compile(&model, &cache)?.info.status, PlanStatus::Cached);

    // Change one weight byte: find the lm_head weight's bytes in the file.
    let g = cellm_onnx::load(&model)?;
    let (v, w) = g
        .initializers
        .iter()
        .max_by_key(|(_, t)| t.bytes().len())
        .context("no initializers")?;
    println!(
        "modifying '{}' ({} bytes)",
        g.value_name(*v),
        w.bytes().len()
    );
    let needle = &w.bytes()[..64];
    let at = bytes
        .windows(64)
        .position(|win| win == needle)
        .context("weight bytes not found in the file")?;
    let mut changed = bytes.clone();
    changed[at + 3] ^= 0x40; // the exponent byte of the first f32
    std::fs::write(&model, &changed)?;
    let second = compile(&model, &cache)?;
    assert_eq!(second.info.status, PlanStatus::Compiled);
    assert_ne!(second.info.path, first.info.path);
    assert!(
        !same_bits(&before, &run(&second.graphs)),
        "outputs did not change with the weight"
    );
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

fn corrupt_then_check(tag: &str, damage: impl Fn(&mut Vec<u8>)) -> Result<()> {
    let dir = temp_dir(tag);
    let model = copy_decoder(&dir);
    let cache = dir.join("plans");
    let first = compile(&model, &cache)?;
    let want = run(&first.graphs);
    let mut bytes = std::fs::read(&first.info.path)?;
    damage(&mut bytes);
    std::fs::write(&first.info.path, &bytes)?;
    let again = compile(&model, &cache)?;
    assert_eq!(again.info.status, PlanStatus::Compiled);
    let why = again
        .info
        .rejected
        .clone()
        .context("no rejection message")?;
    println!("{}", again.info.report());
    assert_eq!(
        again.info.report().lines().count(),
        2,
        "one message + status"
    );
    assert!(!why.is_empty());
    assert!(same_bits(&want, &run(&again.graphs)));
    // The rewritten plan is whole again.
    assert_eq!(compile(&model, &cache)?.info.status, PlanStatus::Cached);
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

#[test]
fn truncated_plan_is_recompiled() -> Result<()> {
    corrupt_then_check("truncated", |b| b.truncate(b.len() / 2))?;
    corrupt_then_check("empty", |b| b.clear())
}

#[test]
fn flipped_byte_is_recompiled() -> Result<()> {
    // A bit flip anywhere (header, attribute floats, trailer) is caught by the checksum.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    println!("seed {seed}");
    corrupt_then_check("flip", move |b| {
        let i = (seed as usize) % b.len();
        b[i] ^= 1 << (seed % 8);
    })?;
    corrupt_then_check("flip-mid", |b| {
        let i = b.len() / 3;
        b[i] ^= 0x10;
    })
}

#[test]
fn plans_are_written_atomically() -> Result<()> {
    let dir = temp_dir("atomic");
    let path = dir.join("sub").join("x.plan");
    plan::write_atomic(&path, b"first")?;
    plan::write_atomic(&path, b"second, longer")?;
    assert_eq!(std::fs::read(&path)?, b"second, longer");
    // Only the target is left: no temporary files.
    let names: Vec<_> = std::fs::read_dir(dir.join("sub"))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()?;
    assert_eq!(names, vec![std::ffi::OsString::from("x.plan")]);
    // A failed write (target is a folder) leaves the old state and no temp file.
    let blocked = dir.join("sub").join("blocked");
    std::fs::create_dir_all(blocked.join("inner"))?;
    assert!(plan::write_atomic(&blocked, b"x").is_err());
    let mut left: Vec<_> = std::fs::read_dir(dir.join("sub"))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()?;
    left.sort();
    assert_eq!(
        left,
        vec![
            std::ffi::OsString::from("blocked"),
            std::ffi::OsString::from("x.plan")
        ]
    );
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
