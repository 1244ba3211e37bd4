//! Compiled plans cached on disk.
//!
//! A plan is the optimised form of one or more ONNX graphs: ops, attributes,
//! value facts, and for every initializer where its bytes live: a byte range of
//! the (mmap'd) model file, or the plan's own blob for constants the passes
//! made. Weights are never copied into the plan; loading a plan maps the model
//! files again and slices them.
//!
//! File layout (all integers little-endian):
//! `MAGIC | format u32 | header_len u64 | header (JSON) | zero pad to 64 | blob | xxh3-64 of all before`.
//! A plan whose checksum, magic, format or key does not match is not used.
//!
//! Plans are keyed by the model files' content hash (xxh3-128 of their bytes),
//! the compiler version, the options and the device's capabilities; the key
//! names the file, so a modified model simply misses the cache.

use crate::backend::{opt_options, Backend};
use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use cellm_ir::{DType, Fact, Graph, Layout, Node, Op, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use xxhash_rust::xxh3::{xxh3_128, xxh3_64, Xxh3};

/// Bumped whenever the plan layout or what a plan means changes.
pub const PLAN_FORMAT_VERSION: u32 = 3;
const MAGIC: &[u8; 8] = b"CELLMPLN";
/// Blob start and each blob tensor are aligned to this many bytes (≥ any dtype).
const ALIGN: usize = 64;

/// Compile options that change the plan (and so are part of its key).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PlanOptions {
    /// Storage dtype of MatMul weights: "f32" (as in the model) or "f16".
    pub dtype: String,
    /// KV-cache capacity; recorded in the key, no pass uses it yet.
    pub max_seq: Option<usize>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            dtype: "f32".into(),
            max_seq: None,
        }
    }
}

impl PlanInfo {
    /// The stderr lines: the rejection (if any), then "plan: cached|compiled PATH".
    pub fn report(&self) -> String {
        let mut s = String::new();
        if let Some(why) = &self.rejected {
            s.push_str(&format!(
                "plan: {} is unusable ({why}); recompiling\n",
                self.path.display()
            ));
        }
        s.push_str(&format!(
            "plan: {} {}",
            self.status.as_str(),
            self.path.display()
        ));
        s
    }

    /// The `--json` line: `{"plan": PATH, "status": ..., "seconds": S}`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "plan": self.path.display().to_string(),
            "status": self.status.as_str(),
            "seconds": self.seconds,
        })
    }
}

/// Whether a plan was read from the cache or compiled now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanStatus {
    Cached,
    Compiled,
}

impl PlanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanStatus::Cached => "cached",
            PlanStatus::Compiled => "compiled",
        }
    }
}

/// The outcome of [`load_or_compile`].
pub struct LoadedPlan {
    /// Optimised graphs, in the order of the model files given.
    pub graphs: Vec<Graph>,
    pub info: PlanInfo,
}

/// Where a plan is and how it was obtained.
#[derive(Clone, Debug)]
pub struct PlanInfo {
    pub path: PathBuf,
    pub status: PlanStatus,
    /// Wall time of loading or compiling (hashing included).
    pub seconds: f64,
    /// Why a plan that was present could not be used (corrupt, truncated…).
    pub rejected: Option<String>,
}

/// Plans folder: `--cache-dir`, else `$CELLM_CACHE_DIR/plans`, else the
/// user's cache dir `cellm/plans`.
pub fn cache_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(d) = flag {
        return d.to_path_buf();
    }
    std::env::var_os("CELLM_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("cellm")))
        .unwrap_or_else(|| std::env::temp_dir().join("cellm"))
        .join("plans")
}

/// Compiler identity: crate version and plan format.
pub fn compiler_version() -> String {
    // The pass list is part of it: a cellm with other passes compiles other
    // plans, so plans from before a pass was added are recompiled.
    let passes: Vec<&str> = cellm_opt::Pipeline::default_passes()
        .passes
        .iter()
        .map(|p| p.name())
        .collect();
    format!(
        "cellm {} plan-format {PLAN_FORMAT_VERSION} passes {}",
        env!("CARGO_PKG_VERSION"),
        passes.join(",")
    )
}

/// Backend name and the capabilities that change kernels or passes.
pub fn device_key(backend: &Backend) -> String {
    let skip = opt_options(backend).skip;
    match backend {
        Backend::Cpu => format!("cpu skip={skip:?}"),
        Backend::Gpu(ctx) => format!(
            "gpu adapter={} shader_f16={} subgroups={} skip={skip:?}",
            ctx.adapter.name, ctx.caps.shader_f16, ctx.caps.subgroups
        ),
    }
}

/// One mapped model file and its content hash.
struct ModelFile {
    path: PathBuf,
    data: Bytes,
    hash: u128,
}

/// What identifies a file's contents without reading them: size, mtime
/// and inode. A model file whose identity is unchanged keeps its content hash
/// (stored in `hashes.json` of the plans folder), so a cached start does not
/// read 1 GB of weights just to hash them. Like make and cargo, this trusts
/// that contents do not change under an unchanged size and mtime.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
struct FileIdentity {
    size: u64,
    mtime_ns: u128,
    inode: u64,
}

#[derive(Clone, Serialize, Deserialize)]
struct KnownHash {
    identity: FileIdentity,
    hash: String,
}

fn identity(path: &Path) -> Option<FileIdentity> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let inode = 0;
    Some(FileIdentity {
        size: m.len(),
        mtime_ns: m
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_nanos(),
        inode,
    })
}

fn hashes_path(dir: &Path) -> PathBuf {
    dir.join("hashes.json")
}

fn known_hashes(dir: &Path) -> HashMap<String, KnownHash> {
    std::fs::read(hashes_path(dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn map_model(path: &Path, known: &mut HashMap<String, KnownHash>) -> Result<ModelFile> {
    let data = cellm_ir::hugemem::map_file(path)?;
    let key = std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string();
    let id = identity(path);
    let cached = known
        .get(&key)
        .filter(|k| Some(&k.identity) == id.as_ref())
        .and_then(|k| u128::from_str_radix(&k.hash, 16).ok());
    let hash = match cached {
        Some(h) => h,
        None => {
            let h = xxh3_128(&data);
            if let Some(identity) = id {
                known.insert(
                    key,
                    KnownHash {
                        identity,
                        hash: format!("{h:032x}"),
                    },
                );
            }
            h
        }
    };
    Ok(ModelFile {
        path: path.to_path_buf(),
        data,
        hash,
    })
}

fn plan_key(
    files: &[ModelFile],
    opts: &PlanOptions,
    builder: &str,
    backend: &Backend,
) -> Result<String> {
    let mut h = Xxh3::new();
    for f in files {
        h.update(&f.hash.to_le_bytes());
    }
    h.update(compiler_version().as_bytes());
    h.update(serde_json::to_string(opts)?.as_bytes());
    // Only non-ONNX builders add to the key, so ONNX plans keep their names.
    if !builder.is_empty() {
        h.update(b"builder ");
        h.update(builder.as_bytes());
    }
    h.update(device_key(backend).as_bytes());
    Ok(format!("{:032x}", h.digest128()))
}

/// Loads the plan for `models` from `dir` when a valid one is there, else
/// imports and optimises the models and writes the plan (atomically).
/// A present but unusable plan is reported in `rejected` and replaced.
pub fn load_or_compile(
    models: &[PathBuf],
    opts: &PlanOptions,
    backend: &Backend,
    dir: &Path,
    force: bool,
) -> Result<LoadedPlan> {
    load_or_compile_built(models, opts, "", backend, dir, force, &mut |path, data| {
        let name = path.display().to_string();
        cellm_onnx::load_bytes(data.clone(), &name, path.parent())
    })
}

/// [`load_or_compile`] for graphs that are not ONNX files but are built in
/// code from the model files (e.g. the llama decoder from a `.cellm` file):
/// `build(path, mapped bytes)` makes the unoptimised graph of one file, and
/// `builder` names the builder and its options (e.g. the KV dtype). Both the
/// files' contents and `builder` are part of the plan key, so a changed
/// file or option compiles a new plan. Weights the builder made (transposed,
/// re-laid out) are stored in the plan's blob, so a cached start maps them
/// instead of building them again.
pub fn load_or_compile_built(
    models: &[PathBuf],
    opts: &PlanOptions,
    builder: &str,
    backend: &Backend,
    dir: &Path,
    force: bool,
    build: &mut dyn FnMut(&Path, &Bytes) -> Result<Graph>,
) -> Result<LoadedPlan> {
    let t = Instant::now();
    if !matches!(opts.dtype.as_str(), "f32" | "f16") {
        bail!("--dtype {}: expected f16 or f32", opts.dtype);
    }
    if models.is_empty() {
        bail!("no model files to compile");
    }
    let mut known = known_hashes(dir);
    let before = known.len();
    let files = models
        .iter()
        .map(|p| map_model(p, &mut known))
        .collect::<Result<Vec<_>>>()?;
    if known.len() != before {
        // Best effort: a failed write only costs a re-hash next time.
        let _ = std::fs::create_dir_all(dir).and_then(|_| {
            let bytes = serde_json::to_vec(&known).map_err(std::io::Error::other)?;
            write_atomic(&hashes_path(dir), &bytes).map_err(std::io::Error::other)
        });
    }
    let key = plan_key(&files, opts, builder, backend)?;
    if std::env::var_os("CELLM_PLAN_TIMING").is_some() {
        eprintln!(
            "plan: hashed {} model files in {:.3} s",
            files.len(),
            t.elapsed().as_secs_f64()
        );
    }
    // One file: its stem; a model folder's graphs: the folder's name.
    let named = if models.len() == 1 {
        models[0].file_stem()
    } else {
        models[0]
            .parent()
            .and_then(Path::parent)
            .and_then(Path::file_name)
    };
    let stem = named
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let path = dir.join(format!("{stem}-{key}.plan"));
    let mut rejected = None;
    if !force && path.exists() {
        match read_plan(&path, &key, &files) {
            Ok(graphs) => {
                return Ok(LoadedPlan {
                    graphs,
                    info: PlanInfo {
                        path,
                        status: PlanStatus::Cached,
                        seconds: t.elapsed().as_secs_f64(),
                        rejected: None,
                    },
                })
            }
            Err(e) => rejected = Some(format!("{e:#}")),
        }
    }
    let mut graphs = Vec::with_capacity(files.len());
    for f in &files {
        let mut g = build(&f.path, &f.data)?;
        crate::backend::compile_for(&mut g, backend, &opts.dtype)?;
        graphs.push(g);
    }
    write_plan(&path, &key, &files, &graphs, builder.is_empty())
        .with_context(|| format!("writing plan {}", path.display()))?;
    Ok(LoadedPlan {
        graphs,
        info: PlanInfo {
            path,
            status: PlanStatus::Compiled,
            seconds: t.elapsed().as_secs_f64(),
            rejected,
        },
    })
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: u32,
    compiler: String,
    key: String,
    graphs: Vec<PlanGraph>,
}

#[derive(Serialize, Deserialize)]
struct PlanGraph {
    name: String,
    values: Vec<PlanValue>,
    nodes: Vec<PlanNode>,
    inputs: Vec<usize>,
    outputs: Vec<usize>,
    initializers: Vec<PlanInit>,
}

#[derive(Serialize, Deserialize)]
struct PlanValue {
    name: String,
    fact: Option<Fact>,
}

#[derive(Serialize, Deserialize)]
struct PlanNode {
    name: String,
    op: Op,
    inputs: Vec<Option<usize>>,
    outputs: Vec<Option<usize>>,
}

#[derive(Serialize, Deserialize)]
struct PlanInit {
    value: usize,
    dtype: DType,
    shape: Vec<usize>,
    /// Byte order of `src` (column panels for CPU decode weights).
    layout: Layout,
    src: Src,
}

/// Where an initializer's bytes are.
#[derive(Serialize, Deserialize)]
enum Src {
    /// Bytes `offset..offset+len` of the graph's model file.
    Model { offset: usize, len: usize },
    /// Bytes `offset..offset+len` of the plan's blob.
    Blob { offset: usize, len: usize },
}

/// The byte range of `t` inside `file`, when its storage is a slice of it.
fn range_in(file: &Bytes, t: &Tensor) -> Option<usize> {
    let b = t.bytes();
    if b.is_empty() {
        return None;
    }
    let base = file.as_ptr() as usize;
    let p = b.as_ptr() as usize;
    (p >= base && p + b.len() <= base + file.len()).then(|| p - base)
}

/// Byte ranges of the model's `raw_data` initializers, by name. The importer
/// copies the ones the protobuf left misaligned for their dtype, so their
/// tensors are not slices of the file; this finds their bytes in the file.
fn raw_ranges(file: &Bytes) -> HashMap<String, (usize, usize)> {
    use prost::Message;
    let Ok(model) = cellm_onnx::proto::ModelProto::decode(file.clone()) else {
        return HashMap::new();
    };
    let base = file.as_ptr() as usize;
    model
        .graph
        .map(|g| g.initializer)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| {
            let (p, n) = (t.raw_data.as_ptr() as usize, t.raw_data.len());
            (n > 0 && p >= base && p + n <= base + file.len()).then(|| (t.name, (p - base, n)))
        })
        .collect()
}

/// Where `t` (initializer `name`) is in the model file: its own slice, or the
/// raw bytes of the same-named model initializer when they are equal.
fn model_range(
    file: &Bytes,
    raw: &HashMap<String, (usize, usize)>,
    name: &str,
    t: &Tensor,
) -> Option<usize> {
    range_in(file, t).or_else(|| {
        let &(off, len) = raw.get(name)?;
        (len == t.bytes().len() && file[off..off + len] == t.bytes()[..]).then_some(off)
    })
}

/// `onnx`: the model files are ONNX (their raw initializer bytes are looked up).
fn write_plan(
    path: &Path,
    key: &str,
    files: &[ModelFile],
    graphs: &[Graph],
    onnx: bool,
) -> Result<()> {
    let mut blob: Vec<u8> = Vec::new();
    let mut pgs = Vec::with_capacity(graphs.len());
    for (g, f) in graphs.iter().zip(files) {
        let raw = if onnx {
            raw_ranges(&f.data)
        } else {
            HashMap::new()
        };
        let order = g.topo_order()?;
        let nodes = order
            .iter()
            .map(|&ix| {
                let n = &g.nodes[ix];
                PlanNode {
                    name: n.name.clone(),
                    op: n.op.clone(),
                    inputs: n.inputs.clone(),
                    outputs: n.outputs.clone(),
                }
            })
            .collect();
        let mut inits: Vec<(&usize, &Tensor)> = g.initializers.iter().collect();
        inits.sort_by_key(|(v, _)| **v);
        let initializers = inits
            .into_iter()
            .map(|(&value, t)| {
                let len = t.bytes().len();
                // Misaligned weights (ONNX raw_data sits at any offset) go
                // to the blob aligned, so a cached load maps them in place
                // instead of copying them.
                let aligned = |o: &usize| o.is_multiple_of(t.dtype().size().max(1));
                let src = match model_range(&f.data, &raw, g.value_name(value), t).filter(aligned) {
                    Some(offset) => Src::Model { offset, len },
                    None => {
                        let offset = blob.len().next_multiple_of(ALIGN);
                        blob.resize(offset, 0);
                        blob.extend_from_slice(t.bytes());
                        Src::Blob { offset, len }
                    }
                };
                PlanInit {
                    value,
                    dtype: t.dtype(),
                    shape: t.shape().to_vec(),
                    layout: t.layout(),
                    src,
                }
            })
            .collect();
        pgs.push(PlanGraph {
            name: g.name.clone(),
            values: g
                .values
                .iter()
                .map(|v| PlanValue {
                    name: v.name.clone(),
                    fact: v.fact.clone(),
                })
                .collect(),
            nodes,
            inputs: g.inputs.clone(),
            outputs: g.outputs.clone(),
            initializers,
        });
    }
    let header = serde_json::to_vec(&Header {
        format: PLAN_FORMAT_VERSION,
        compiler: compiler_version(),
        key: key.to_string(),
        graphs: pgs,
    })?;
    let mut out = Vec::with_capacity(header.len() + blob.len() + 128);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&PLAN_FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    out.resize(out.len().next_multiple_of(ALIGN), 0);
    out.extend_from_slice(&blob);
    let sum = xxh3_64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    write_atomic(path, &out)
}

/// Writes `bytes` to a temporary file next to `path`, then renames it over
/// `path`, so readers see the old plan or the whole new one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent folder", path.display()))?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{nanos}",
        path.file_name()
            .map(|s| s.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let result = (|| -> Result<()> {
        let mut f = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn read_plan(path: &Path, key: &str, files: &[ModelFile]) -> Result<Vec<Graph>> {
    let data = cellm_ir::hugemem::map_file(path)?;
    let n = data.len();
    if n < MAGIC.len() + 4 + 8 + 8 {
        bail!("truncated ({n} bytes)");
    }
    let (body, sum) = data.split_at(n - 8);
    let want = u64::from_le_bytes(sum.try_into()?);
    if xxh3_64(body) != want {
        bail!("checksum mismatch (corrupt or truncated)");
    }
    if &body[..8] != MAGIC {
        bail!("not a cellm plan");
    }
    let format = u32::from_le_bytes(body[8..12].try_into()?);
    if format != PLAN_FORMAT_VERSION {
        bail!("plan format {format}, this cellm writes {PLAN_FORMAT_VERSION}");
    }
    let hlen = usize::try_from(u64::from_le_bytes(body[12..20].try_into()?))?;
    let hend = 20usize
        .checked_add(hlen)
        .filter(|&e| e <= body.len())
        .ok_or_else(|| anyhow!("header length {hlen} is past the end"))?;
    let header: Header = serde_json::from_slice(&body[20..hend]).context("bad header")?;
    if header.key != key || header.compiler != compiler_version() {
        bail!("key or compiler does not match");
    }
    if header.graphs.len() != files.len() {
        bail!(
            "{} graphs for {} model files",
            header.graphs.len(),
            files.len()
        );
    }
    let blob = data.slice(hend.next_multiple_of(ALIGN).min(body.len())..body.len());
    header
        .graphs
        .into_iter()
        .zip(files)
        .map(|(pg, f)| rebuild(pg, &f.data, &blob))
        .collect()
}

fn rebuild(pg: PlanGraph, model: &Bytes, blob: &Bytes) -> Result<Graph> {
    let mut g = Graph::new(pg.name);
    for (i, v) in pg.values.into_iter().enumerate() {
        let id = g.value(&v.name);
        if id != i {
            bail!("value '{}' is listed twice", v.name);
        }
        g.values[id].fact = v.fact;
    }
    let nvalues = g.values.len();
    let check = |v: usize| {
        if v < nvalues {
            Ok(v)
        } else {
            Err(anyhow!("value id {v} out of range"))
        }
    };
    for init in pg.initializers {
        let (bytes, offset, len) = match init.src {
            Src::Model { offset, len } => (model, offset, len),
            Src::Blob { offset, len } => (blob, offset, len),
        };
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| anyhow!("initializer bytes {offset}+{len} are out of range"))?;
        let t = Tensor::from_bytes_in(
            init.dtype,
            init.shape,
            init.layout,
            bytes.slice(offset..end),
        )?;
        g.initializers.insert(check(init.value)?, t);
    }
    for v in pg.inputs.iter().chain(&pg.outputs) {
        check(*v)?;
    }
    g.inputs = pg.inputs;
    g.outputs = pg.outputs;
    for n in pg.nodes {
        for v in n.inputs.iter().chain(&n.outputs).flatten() {
            check(*v)?;
        }
        g.add_node(Node {
            name: n.name,
            op: n.op,
            inputs: n.inputs,
            outputs: n.outputs,
        })?;
    }
    g.validate()?;
    Ok(g)
}
