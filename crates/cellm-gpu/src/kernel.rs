//! The encoding context every op kernel uses: device buffers, pipelines,
//! uniforms, dispatches, uploads and readbacks.
//!
//! Device storage: f32 as f32 words, f16 as f16 halves (2 bytes, the host
//! layout; native `array<f16>` with SHADER_F16, packed pairs in `u32` words
//! without), u8/i8 as bytes (the host layout, four per word: quantized
//! weights keep their size), i64/i32 as i32 words and bools as u32 0/1.
//! Kernels reach elements only through the accessors `shaders.rs` generates
//! for each binding, so one kernel serves every storage kind. A tensor larger
//! than one storage binding (or than one buffer) lives in several buffers
//! ("chunks") of `chunk_bytes` each and is bound chunk by chunk.

use crate::device::{Caps, GpuContext};
use crate::shaders;
use anyhow::{anyhow, bail, Result};
use cellm_ir::{DType, Tensor};
use half::f16;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use wgpu::util::DeviceExt;

/// Threads per workgroup of the 1-D kernels (matches `@workgroup_size(64)`).
pub const WG: u32 = 64;
/// Bytes of every uniform block (`array<vec4<u32>, 32>` in WGSL).
pub const UNIFORM_BYTES: usize = 512;
/// Most dims a kernel handles (uniform arrays hold 8 entries).
pub const MAX_RANK: usize = 8;

/// The buffers behind a device tensor.
pub struct Store {
    /// One buffer per chunk; every chunk but the last holds exactly the
    /// session's `chunk_bytes`.
    pub chunks: Vec<wgpu::Buffer>,
    /// f16 halves rather than 32-bit words.
    pub half: bool,
}

/// A tensor in device memory (see the module docs for the storage format).
#[derive(Clone)]
pub struct DevTensor {
    pub store: Arc<Store>,
    pub dtype: DType,
    pub shape: Vec<usize>,
}

impl DevTensor {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Same storage under another shape (a view, no copy).
    pub fn view(&self, shape: Vec<usize>) -> Result<DevTensor> {
        if shape.iter().product::<usize>() != self.len() {
            bail!("cannot view {:?} as {shape:?}", self.shape);
        }
        Ok(DevTensor {
            store: self.store.clone(),
            dtype: self.dtype,
            shape,
        })
    }
    /// Same storage under another dtype of the same storage kind.
    pub fn retyped(&self, dtype: DType) -> DevTensor {
        DevTensor {
            store: self.store.clone(),
            dtype,
            shape: self.shape.clone(),
        }
    }
    pub fn layout(&self) -> shaders::BindLayout {
        shaders::BindLayout {
            half: self.store.half,
            chunks: self.store.chunks.len() as u32,
            bytes: match self.dtype {
                DType::U8 => Some(shaders::ByteElems::Unsigned),
                DType::I8 => Some(shaders::ByteElems::Signed),
                _ => None,
            },
        }
    }
}

/// Bytes per element on the device.
pub fn elem_bytes(dtype: DType) -> Result<u64> {
    Ok(match dtype {
        DType::F16 => 2,
        DType::U8 | DType::I8 => 1,
        DType::F64 => bail!("f64 tensors are not supported on the GPU"),
        _ => 4,
    })
}

/// How kernels interpret a dtype's elements: float (f32 or f16 storage), i32 word or bool word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Word {
    F32 = 0,
    I32 = 1,
    Bool = 2,
}

pub fn word_of(dtype: DType) -> Result<Word> {
    Ok(match dtype {
        DType::F32 | DType::F16 => Word::F32,
        DType::I64 | DType::I32 | DType::I8 | DType::U8 => Word::I32,
        DType::Bool => Word::Bool,
        DType::F64 => bail!("f64 tensors are not supported on the GPU"),
    })
}

/// Packs `words` into a uniform block.
pub fn uniform_bytes(words: &[u32]) -> Result<Vec<u8>> {
    if words.len() * 4 > UNIFORM_BYTES {
        bail!("uniform block of {} words is too large", words.len());
    }
    let mut out = vec![0u8; UNIFORM_BYTES];
    out[..words.len() * 4].copy_from_slice(bytemuck::cast_slice(words));
    Ok(out)
}

/// Row-major strides.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    cellm_ir::shape::strides(shape)
}

/// Strides of `shape` broadcast to `out` (0 on broadcast dims), right-aligned.
pub fn broadcast_strides(shape: &[usize], out: &[usize]) -> Result<Vec<usize>> {
    if shape.len() > out.len() {
        bail!("cannot broadcast {shape:?} to {out:?}");
    }
    let st = strides(shape);
    let off = out.len() - shape.len();
    let mut r = vec![0; out.len()];
    for i in 0..shape.len() {
        if shape[i] == out[off + i] {
            r[off + i] = if shape[i] == 1 { 0 } else { st[i] };
        } else if shape[i] != 1 {
            bail!("cannot broadcast {shape:?} to {out:?}");
        }
    }
    Ok(r)
}

/// Pads a dims list to `MAX_RANK` words (fails above it).
pub fn dims8(v: &[usize], what: &str) -> Result<[u32; MAX_RANK]> {
    if v.len() > MAX_RANK {
        bail!(
            "{what}: rank {} exceeds the GPU limit of {MAX_RANK}",
            v.len()
        );
    }
    let mut r = [0u32; MAX_RANK];
    for (d, &x) in r.iter_mut().zip(v) {
        *d = u32::try_from(x).map_err(|_| anyhow!("{what}: {x} does not fit 32 bits"))?;
    }
    Ok(r)
}

/// Counters of one run.
#[derive(Clone, Debug, Default)]
pub struct RunStats {
    pub dispatches: usize,
    pub submits: usize,
    /// Device → host copies made in the middle of a run (not counting outputs).
    pub readbacks: usize,
    /// Ops run on the host, by op name.
    pub host_ops: std::collections::BTreeMap<String, usize>,
    /// Ops run on the device, by op name.
    pub device_ops: std::collections::BTreeMap<String, usize>,
    /// Bytes of graph inputs and values uploaded during the run (weights
    /// uploaded at session creation not counted).
    pub host_to_device_bytes: u64,
    /// Bytes read back: graph outputs and mid-run readbacks.
    pub device_to_host_bytes: u64,
}

pub type PipelineCache = Mutex<HashMap<String, Arc<wgpu::ComputePipeline>>>;

/// Free device buffers by size, reused by later allocations of a session
/// (liveness-based memory planning: a value's buffers come back here after
/// its last reader, within a run and across runs).
#[derive(Default)]
pub struct BufferPool {
    free: Mutex<HashMap<u64, Vec<wgpu::Buffer>>>,
    /// Uniform blocks of finished runs (kept apart from storage buffers,
    /// which are reused within a run).
    uniform_blocks: Mutex<Vec<wgpu::Buffer>>,
}

impl BufferPool {
    /// Allocation size for `size` bytes: rounded up to 1/8 of its power of
    /// two (at most 12.5% slack) so growing values (a longer attention row
    /// each decode step) still find buffers.
    fn bucket(size: u64) -> u64 {
        let step = (size.next_power_of_two() / 8).max(256);
        size.div_ceil(step) * step
    }

    fn take(&self, size: u64) -> Option<wgpu::Buffer> {
        self.free.lock().ok()?.get_mut(&size)?.pop()
    }

    fn give(&self, b: wgpu::Buffer) {
        if let Ok(mut f) = self.free.lock() {
            f.entry(b.size()).or_default().push(b);
        }
    }

    fn take_uniform_block(&self) -> Option<wgpu::Buffer> {
        self.uniform_blocks.lock().ok()?.pop()
    }

    fn give_uniform_blocks(&self, blocks: impl Iterator<Item = wgpu::Buffer>) {
        if let Ok(mut f) = self.uniform_blocks.lock() {
            f.extend(blocks);
        }
    }

    /// Bytes held by free buffers.
    pub fn free_bytes(&self) -> u64 {
        self.free
            .lock()
            .map(|f| f.iter().map(|(s, v)| s * v.len() as u64).sum())
            .unwrap_or(0)
    }
}

impl Drop for Kern<'_> {
    /// Uniform blocks go back to the pool's own list at the end of the run:
    /// their queue writes land before a submit's commands, so a block must
    /// never serve a later run before this run's commands are all submitted.
    fn drop(&mut self) {
        self.pass = None;
        if let Some(pool) = self.pool {
            pool.give_uniform_blocks(self.uniforms.blocks.drain(..));
        }
    }
}

/// Per-session settings of the encoder.
#[derive(Clone, Copy, Debug)]
pub struct KernConfig {
    /// Capabilities the kernels may use (the device's, possibly narrowed).
    pub caps: Caps,
    /// Largest buffer / storage binding a tensor chunk may occupy.
    pub chunk_bytes: u64,
    /// Fill new buffers with all-ones bytes (NaN / -1) so unwritten outputs show.
    pub poison: bool,
}

impl KernConfig {
    /// The device's limits, optionally lowered (tests force small chunks).
    pub fn new(
        ctx: &GpuContext,
        caps: Caps,
        max_binding_override: Option<u64>,
        poison: bool,
    ) -> Result<KernConfig> {
        let mut max = ctx
            .limits
            .max_storage_buffer_binding_size
            .min(ctx.limits.max_buffer_size);
        if let Some(o) = max_binding_override {
            max = max.min(o);
        }
        // Chunks stay 256-byte multiples so every chunk boundary is aligned
        // for copies and for both element sizes.
        let chunk_bytes = max / 256 * 256;
        if chunk_bytes == 0 {
            bail!("storage binding limit of {max} bytes is too small");
        }
        Ok(KernConfig {
            caps,
            chunk_bytes,
            poison,
        })
    }
}

/// Encoding state of one run.
pub struct Kern<'a> {
    pub ctx: &'a GpuContext,
    pipelines: &'a PipelineCache,
    pool: Option<&'a BufferPool>,
    encoder: Option<wgpu::CommandEncoder>,
    /// The open compute pass: consecutive dispatches share one pass (a pass
    /// per dispatch costs real time per kernel on discrete GPUs).
    pass: Option<wgpu::ComputePass<'static>>,
    uniforms: UniformArena,
    pub cfg: KernConfig,
    pub stats: RunStats,
}

/// Uniform blocks of one run. Dispatches take consecutive slots of a few
/// large buffers, written with one queue write per submit: a buffer per
/// dispatch cost tens of microseconds each (hundreds per decode step).
#[derive(Default)]
struct UniformArena {
    blocks: Vec<wgpu::Buffer>,
    /// Bytes of every slot taken so far in this run.
    data: Vec<u8>,
    /// Slots already written to their blocks.
    written: usize,
}

/// Slots per uniform block (64 KiB blocks).
const UNIFORM_SLOTS: usize = 128;
const UNIFORM_BLOCK_BYTES: u64 = (UNIFORM_SLOTS * UNIFORM_BYTES) as u64;

fn chunk_sizes(total: u64, chunk: u64) -> Vec<u64> {
    let total = total.max(4).div_ceil(4) * 4;
    let mut v = Vec::new();
    let mut left = total;
    while left > 0 {
        let c = left.min(chunk);
        v.push(c);
        left -= c;
    }
    v
}

const USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

impl<'a> Kern<'a> {
    pub fn new(ctx: &'a GpuContext, pipelines: &'a PipelineCache, cfg: KernConfig) -> Kern<'a> {
        Kern {
            ctx,
            pipelines,
            pool: None,
            encoder: None,
            pass: None,
            uniforms: UniformArena::default(),
            cfg,
            stats: RunStats::default(),
        }
    }

    /// Allocates from (and recycles into) `pool`; ignored while poisoning,
    /// which needs fresh all-ones buffers.
    pub fn with_pool(mut self, pool: &'a BufferPool) -> Kern<'a> {
        if !self.cfg.poison {
            self.pool = Some(pool);
        }
        self
    }

    /// Returns `t`'s buffers to the pool when nothing else holds them.
    pub fn recycle(&mut self, t: DevTensor) {
        let Some(pool) = self.pool else { return };
        if let Ok(store) = Arc::try_unwrap(t.store) {
            for b in store.chunks {
                pool.give(b);
            }
        }
    }

    pub fn caps(&self) -> Caps {
        self.cfg.caps
    }

    /// The run's encoder, for commands outside compute passes (ends the open pass).
    fn encoder(&mut self) -> &mut wgpu::CommandEncoder {
        self.pass = None;
        let dev = &self.ctx.device;
        self.encoder.get_or_insert_with(|| {
            dev.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("cellm run"),
            })
        })
    }

    /// A new device tensor; at least one word so it can always be bound.
    pub fn alloc(&mut self, dtype: DType, shape: Vec<usize>) -> Result<DevTensor> {
        word_of(dtype)?;
        let n: usize = shape.iter().product();
        let bytes = n as u64 * elem_bytes(dtype)?;
        let chunks = chunk_sizes(bytes, self.cfg.chunk_bytes)
            .into_iter()
            .map(|size| {
                if self.cfg.poison {
                    self.ctx
                        .device
                        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                            label: None,
                            contents: &vec![0xffu8; size as usize],
                            usage: USAGE,
                        })
                } else if let Some(pool) = self.pool {
                    // Never past the largest binding a chunk may use.
                    let size = BufferPool::bucket(size).min(self.cfg.chunk_bytes.max(size));
                    pool.take(size).unwrap_or_else(|| {
                        self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                            label: None,
                            size,
                            usage: USAGE,
                            mapped_at_creation: false,
                        })
                    })
                } else {
                    self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                        label: None,
                        size,
                        usage: USAGE,
                        mapped_at_creation: false,
                    })
                }
            })
            .collect();
        Ok(DevTensor {
            store: Arc::new(Store {
                chunks,
                half: dtype == DType::F16,
            }),
            dtype,
            shape,
        })
    }

    /// A compute pipeline for `name` under these binding layouts (compiled
    /// once per session and layout).
    fn pipeline(
        &self,
        name: &str,
        layouts: &[shaders::BindLayout],
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        let mut key = name.to_string();
        for l in layouts {
            key.push_str(match (l.half, l.bytes) {
                (_, Some(shaders::ByteElems::Unsigned)) => " u",
                (_, Some(shaders::ByteElems::Signed)) => " s",
                (true, None) => " h",
                (false, None) => " w",
            });
            key.push_str(&l.chunks.to_string());
        }
        let mut cache = self
            .pipelines
            .lock()
            .map_err(|_| anyhow!("pipeline cache poisoned"))?;
        if let Some(p) = cache.get(&key) {
            return Ok(p.clone());
        }
        let src = shaders::source(name, self.cfg.caps, layouts, self.cfg.chunk_bytes)?;
        let module = self
            .ctx
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(src.into()),
            });
        let p = Arc::new(self.ctx.device.create_compute_pipeline(
            &wgpu::ComputePipelineDescriptor {
                label: Some(name),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            },
        ));
        cache.insert(key, p.clone());
        Ok(p)
    }

    /// Dispatches `shader` with `params` at binding 0 and `ts` (each tensor's
    /// chunks in turn) at 1.. .
    pub fn dispatch(
        &mut self,
        shader: &str,
        params: &[u32],
        ts: &[&DevTensor],
        groups: [u32; 3],
    ) -> Result<()> {
        if groups.contains(&0) {
            return Ok(());
        }
        let max = self.ctx.limits.max_compute_workgroups_per_dimension;
        if groups.iter().any(|&g| g > max) {
            bail!("{shader}: dispatch {groups:?} exceeds {max} workgroups per dimension");
        }
        let layouts: Vec<shaders::BindLayout> = ts.iter().map(|t| t.layout()).collect();
        let n_bind: u32 = layouts.iter().map(|l| l.chunks).sum();
        let max_bind = self.ctx.limits.max_storage_buffers_per_shader_stage;
        if n_bind > max_bind {
            bail!("{shader}: {n_bind} storage buffers (tensors split in chunks) exceed the device's {max_bind} per shader stage");
        }
        let pipeline = self.pipeline(shader, &layouts)?;
        let (uniform, offset) = self.uniform_slot(params)?;
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &uniform,
                offset,
                size: wgpu::BufferSize::new(UNIFORM_BYTES as u64),
            }),
        }];
        for t in ts {
            for b in &t.store.chunks {
                entries.push(wgpu::BindGroupEntry {
                    binding: entries.len() as u32,
                    resource: b.as_entire_binding(),
                });
            }
        }
        let bg = self
            .ctx
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            });
        let pass = self.pass();
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bg, &[]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        self.stats.dispatches += 1;
        Ok(())
    }

    /// The open compute pass, begun on the run's encoder when none is open.
    fn pass(&mut self) -> &mut wgpu::ComputePass<'static> {
        if self.pass.is_none() {
            let pass = self
                .encoder()
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: None,
                    timestamp_writes: None,
                })
                .forget_lifetime();
            self.pass = Some(pass);
        }
        self.pass.as_mut().expect("pass just opened")
    }

    /// The next uniform slot holding `params`: its block and byte offset.
    fn uniform_slot(&mut self, params: &[u32]) -> Result<(wgpu::Buffer, u64)> {
        let bytes = uniform_bytes(params)?;
        let a = &mut self.uniforms;
        let slot = a.data.len() / UNIFORM_BYTES;
        let block = slot / UNIFORM_SLOTS;
        if block == a.blocks.len() {
            let pooled = self.pool.and_then(|p| p.take_uniform_block());
            a.blocks.push(pooled.unwrap_or_else(|| {
                self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("uniforms"),
                    size: UNIFORM_BLOCK_BYTES,
                    usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            }));
        }
        a.data.extend_from_slice(&bytes);
        Ok((
            a.blocks[block].clone(),
            ((slot % UNIFORM_SLOTS) * UNIFORM_BYTES) as u64,
        ))
    }

    /// Queues the writes of the uniform slots taken since the last submit
    /// (queue writes land before the next submit's commands).
    fn write_uniforms(&mut self) {
        let a = &mut self.uniforms;
        let used = a.data.len() / UNIFORM_BYTES;
        let mut slot = a.written;
        while slot < used {
            let block = slot / UNIFORM_SLOTS;
            let end = used.min((block + 1) * UNIFORM_SLOTS);
            self.ctx.queue.write_buffer(
                &a.blocks[block],
                ((slot % UNIFORM_SLOTS) * UNIFORM_BYTES) as u64,
                &a.data[slot * UNIFORM_BYTES..end * UNIFORM_BYTES],
            );
            slot = end;
        }
        a.written = used;
    }

    /// Dispatches one thread per item (`n` items), folding large counts into y.
    pub fn dispatch_1d(
        &mut self,
        shader: &str,
        params: &[u32],
        ts: &[&DevTensor],
        n: usize,
    ) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.dispatch_groups_of(shader, params, ts, n.div_ceil(WG as usize))
    }

    /// Dispatches `n` workgroups (one per item), folding large counts into y
    /// (kernels compute the flat group id as `x + y * num_workgroups.x`).
    pub fn dispatch_groups(
        &mut self,
        shader: &str,
        params: &[u32],
        ts: &[&DevTensor],
        n: usize,
    ) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.dispatch_groups_of(shader, params, ts, n)
    }

    fn dispatch_groups_of(
        &mut self,
        shader: &str,
        params: &[u32],
        ts: &[&DevTensor],
        groups: usize,
    ) -> Result<()> {
        let max = self.ctx.limits.max_compute_workgroups_per_dimension as usize;
        let x = groups.min(max);
        let y = groups.div_ceil(x);
        if y > max {
            bail!("{shader}: {groups} workgroups exceed {max}x{max}");
        }
        self.dispatch(shader, params, ts, [x as u32, y as u32, 1])
    }

    /// Copies all of `src` into `dst` (same dtype and element count).
    pub fn copy(&mut self, src: &DevTensor, dst: &DevTensor) -> Result<()> {
        if src.len() != dst.len()
            || src.store.half != dst.store.half
            || elem_bytes(src.dtype)? != elem_bytes(dst.dtype)?
        {
            bail!(
                "copy between mismatched tensors {:?} and {:?}",
                src.shape,
                dst.shape
            );
        }
        let pairs: Vec<(wgpu::Buffer, wgpu::Buffer)> = src
            .store
            .chunks
            .iter()
            .zip(&dst.store.chunks)
            .map(|(a, b)| (a.clone(), b.clone()))
            .collect();
        for (a, b) in pairs {
            let size = a.size().min(b.size());
            self.encoder().copy_buffer_to_buffer(&a, 0, &b, 0, size);
        }
        Ok(())
    }

    /// Copies `len` bytes from byte `src_off` of `src` to byte `dst_off` of
    /// `dst` (storage bytes, across chunk boundaries; offsets and length are
    /// multiples of 4).
    pub fn copy_range(
        &mut self,
        src: &DevTensor,
        src_off: u64,
        dst: &DevTensor,
        dst_off: u64,
        len: u64,
    ) -> Result<()> {
        if !(src_off | dst_off | len).is_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT) {
            bail!("copy of {len} bytes at {src_off} -> {dst_off} is not 4-byte aligned");
        }
        let chunk = self.cfg.chunk_bytes;
        let (mut s, mut d, mut left) = (src_off, dst_off, len);
        while left > 0 {
            let (sc, so) = ((s / chunk) as usize, s % chunk);
            let (dc, dof) = ((d / chunk) as usize, d % chunk);
            let (Some(sb), Some(db)) = (src.store.chunks.get(sc), dst.store.chunks.get(dc)) else {
                bail!("copy range {s}..+{left} runs past a tensor's storage");
            };
            let n = left.min(sb.size() - so).min(db.size() - dof);
            if n == 0 {
                bail!("copy range {s}..+{left} runs past a tensor's storage");
            }
            let (sb, db) = (sb.clone(), db.clone());
            self.encoder().copy_buffer_to_buffer(&sb, so, &db, dof, n);
            s += n;
            d += n;
            left -= n;
        }
        Ok(())
    }

    pub fn clear(&mut self, t: &DevTensor) {
        for b in t.store.chunks.clone() {
            self.encoder().clear_buffer(&b, 0, None);
        }
    }

    /// Copies a host tensor to the device (converting to device words).
    pub fn upload(&mut self, t: &Tensor) -> Result<DevTensor> {
        if t.layout() != cellm_ir::Layout::RowMajor {
            // CPU plans store decode weights in panels; GPU plans never do.
            bail!("cannot upload {t:?}: the GPU reads row-major tensors (a CPU plan?)");
        }
        let words: Vec<u32>;
        let bytes: &[u8] = match t.dtype() {
            DType::F32 | DType::F16 | DType::I32 | DType::U8 | DType::I8 => t.bytes(),
            DType::I64 => {
                words = t
                    .view::<i64>()?
                    .iter()
                    // i64 values live as i32 on the device; the huge "to the end" sentinels clamp.
                    .map(|&v| v.clamp(i32::MIN as i64, i32::MAX as i64) as i32 as u32)
                    .collect();
                bytemuck::cast_slice(&words)
            }
            DType::Bool => {
                words = t.bytes().iter().map(|&v| v as u32).collect();
                bytemuck::cast_slice(&words)
            }
            DType::F64 => bail!("f64 tensors are not supported on the GPU"),
        };
        self.stats.host_to_device_bytes += bytes.len() as u64;
        let mut off = 0usize;
        let mut chunks = Vec::new();
        for size in chunk_sizes(bytes.len() as u64, self.cfg.chunk_bytes) {
            let size = size as usize;
            let end = (off + size).min(bytes.len());
            let mut part = bytes[off.min(end)..end].to_vec();
            part.resize(size, 0);
            chunks.push(
                self.ctx
                    .device
                    .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: None,
                        contents: &part,
                        usage: USAGE,
                    }),
            );
            off += size;
        }
        Ok(DevTensor {
            store: Arc::new(Store {
                chunks,
                half: t.dtype() == DType::F16,
            }),
            dtype: t.dtype(),
            shape: t.shape().to_vec(),
        })
    }

    /// Submits what was encoded so far.
    pub fn flush(&mut self) {
        self.pass = None;
        self.write_uniforms();
        if let Some(enc) = self.encoder.take() {
            self.ctx.queue.submit([enc.finish()]);
            self.stats.submits += 1;
        }
    }

    /// Copies device tensors back to the host (one submit for all of them).
    pub fn read_back(&mut self, ts: &[&DevTensor]) -> Result<Vec<Tensor>> {
        let mut staged: Vec<Vec<wgpu::Buffer>> = Vec::new();
        for t in ts {
            let mut per = Vec::new();
            for src in t.store.chunks.clone() {
                let staging = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("readback"),
                    size: src.size(),
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                self.encoder()
                    .copy_buffer_to_buffer(&src, 0, &staging, 0, src.size());
                per.push(staging);
            }
            staged.push(per);
        }
        self.flush();
        let (tx, rx) = std::sync::mpsc::channel();
        for (i, s) in staged.iter().flatten().enumerate() {
            let tx = tx.clone();
            s.slice(..).map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send((i, r));
            });
        }
        drop(tx);
        self.ctx
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| anyhow!("GPU poll failed: {e}"))?;
        for (i, r) in rx.iter() {
            r.map_err(|e| anyhow!("mapping readback buffer {i} failed: {e}"))?;
        }
        let mut out = Vec::with_capacity(ts.len());
        for (t, per) in ts.iter().zip(&staged) {
            let mut bytes: Vec<u8> = Vec::new();
            for s in per {
                bytes.extend_from_slice(&s.slice(..).get_mapped_range()?);
                s.unmap();
            }
            let n = t.len();
            let need = n * elem_bytes(t.dtype)? as usize;
            self.stats.device_to_host_bytes += need as u64;
            if bytes.len() < need {
                bail!(
                    "readback of {:?}: {} bytes, expected {need}",
                    t.shape,
                    bytes.len()
                );
            }
            let shape = t.shape.clone();
            let tensor = if t.dtype == DType::F16 {
                let halves: Vec<f16> = bytes[..need]
                    .chunks_exact(2)
                    .map(|b| f16::from_bits(u16::from_le_bytes([b[0], b[1]])))
                    .collect();
                Tensor::from_vec(shape, halves)
            } else if t.dtype == DType::U8 {
                Tensor::from_vec(shape, bytes[..need].to_vec())
            } else if t.dtype == DType::I8 {
                Tensor::from_vec(shape, bytes[..need].iter().map(|&b| b as i8).collect())
            } else {
                let words: Vec<u32> = bytes[..need]
                    .chunks_exact(4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                match t.dtype {
                    DType::F32 => {
                        Tensor::from_vec(shape, words.iter().map(|&w| f32::from_bits(w)).collect())
                    }
                    DType::I64 => {
                        Tensor::from_vec(shape, words.iter().map(|&w| w as i32 as i64).collect())
                    }
                    DType::I32 => {
                        Tensor::from_vec(shape, words.iter().map(|&w| w as i32).collect())
                    }
                    DType::Bool => {
                        Tensor::from_bools(shape, words.iter().map(|&w| w != 0).collect())
                    }
                    DType::F16 | DType::F64 | DType::U8 | DType::I8 => {
                        bail!("unexpected dtype {}", t.dtype)
                    }
                }
            };
            out.push(tensor);
        }
        Ok(out)
    }
}
