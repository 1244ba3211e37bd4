//! The encoding context every op kernel uses: device buffers, pipelines,
//! uniforms, dispatches, uploads and readbacks.
//!
//! Device storage: every element is one 32-bit word. f32 and f16 values are
//! stored as f32 (f16 values are rounded to f16 precision by every kernel
//! that makes them, so they hold exactly what an f16 tensor would), integers
//! (i64/i32/i8/u8) as i32 and bools as u32 0/1. f16 tensors cross the
//! host/device boundary packed (two per word) and are widened/narrowed by the
//! `f16_convert` kernels. One word per element keeps every data-movement
//! kernel dtype-agnostic.

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

/// A tensor in device memory (see the module docs for the storage format).
#[derive(Clone)]
pub struct DevTensor {
    pub buf: Arc<wgpu::Buffer>,
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
        Ok(DevTensor { buf: self.buf.clone(), dtype: self.dtype, shape })
    }
}

/// Kind of word a dtype is stored as on the device.
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
        bail!("{what}: rank {} exceeds the GPU limit of {MAX_RANK}", v.len());
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
}

pub type PipelineCache = Mutex<HashMap<String, Arc<wgpu::ComputePipeline>>>;

/// Encoding state of one run.
pub struct Kern<'a> {
    pub ctx: &'a GpuContext,
    pipelines: &'a PipelineCache,
    encoder: Option<wgpu::CommandEncoder>,
    /// Fill new buffers with all-ones words (NaN / -1) so unwritten outputs show.
    pub poison: bool,
    pub stats: RunStats,
}

impl<'a> Kern<'a> {
    pub fn new(ctx: &'a GpuContext, pipelines: &'a PipelineCache, poison: bool) -> Kern<'a> {
        Kern { ctx, pipelines, encoder: None, poison, stats: RunStats::default() }
    }

    pub fn caps(&self) -> Caps {
        self.ctx.caps
    }

    fn encoder(&mut self) -> &mut wgpu::CommandEncoder {
        let dev = &self.ctx.device;
        self.encoder
            .get_or_insert_with(|| dev.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("cellm run") }))
    }

    fn check_size(&self, bytes: u64, what: &str) -> Result<()> {
        let max = (self.ctx.limits.max_storage_buffer_binding_size as u64).min(self.ctx.limits.max_buffer_size);
        if bytes > max {
            bail!("{what}: {bytes} bytes exceed the device's storage binding limit of {max} bytes (split binding is not implemented)");
        }
        Ok(())
    }

    /// A new device tensor; at least one word so it can always be bound.
    pub fn alloc(&mut self, dtype: DType, shape: Vec<usize>) -> Result<DevTensor> {
        word_of(dtype)?;
        let n: usize = shape.iter().product();
        let bytes = (n.max(1) * 4) as u64;
        self.check_size(bytes, &format!("{dtype} tensor {shape:?}"))?;
        let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
        let buf = if self.poison {
            self.ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: &vec![0xffu8; bytes as usize],
                usage,
            })
        } else {
            self.ctx.device.create_buffer(&wgpu::BufferDescriptor { label: None, size: bytes, usage, mapped_at_creation: false })
        };
        Ok(DevTensor { buf: Arc::new(buf), dtype, shape })
    }

    /// A compute pipeline for `name`'s source (compiled once per session).
    fn pipeline(&self, name: &str) -> Result<Arc<wgpu::ComputePipeline>> {
        let key = name.to_string();
        let mut cache = self.pipelines.lock().map_err(|_| anyhow!("pipeline cache poisoned"))?;
        if let Some(p) = cache.get(&key) {
            return Ok(p.clone());
        }
        let src = shaders::source(name, self.ctx.caps)?;
        let module = self.ctx.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(src.into()),
        });
        let p = Arc::new(self.ctx.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(name),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        }));
        cache.insert(key, p.clone());
        Ok(p)
    }

    /// Dispatches `shader` with `params` at binding 0 and `bufs` at 1.. .
    pub fn dispatch(&mut self, shader: &str, params: &[u32], bufs: &[&wgpu::Buffer], groups: [u32; 3]) -> Result<()> {
        if groups.contains(&0) {
            return Ok(());
        }
        let max = self.ctx.limits.max_compute_workgroups_per_dimension;
        if groups.iter().any(|&g| g > max) {
            bail!("{shader}: dispatch {groups:?} exceeds {max} workgroups per dimension");
        }
        let pipeline = self.pipeline(shader)?;
        let uniform = self.ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None,
            contents: &uniform_bytes(params)?,
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() }];
        for (i, b) in bufs.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry { binding: i as u32 + 1, resource: b.as_entire_binding() });
        }
        let bg = self.ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let enc = self.encoder();
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bg, &[]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        drop(pass);
        self.stats.dispatches += 1;
        Ok(())
    }

    /// Dispatches one thread per item (`n` items), folding large counts into y.
    pub fn dispatch_1d(&mut self, shader: &str, params: &[u32], bufs: &[&wgpu::Buffer], n: usize) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let groups = n.div_ceil(WG as usize);
        let max = self.ctx.limits.max_compute_workgroups_per_dimension as usize;
        let x = groups.min(max);
        let y = groups.div_ceil(x);
        self.dispatch(shader, params, bufs, [x as u32, y as u32, 1])
    }

    /// Dispatches `n` workgroups (one per item), folding large counts into y.
    pub fn dispatch_groups(&mut self, shader: &str, params: &[u32], bufs: &[&wgpu::Buffer], n: usize) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let max = self.ctx.limits.max_compute_workgroups_per_dimension as usize;
        let x = n.min(max);
        let y = n.div_ceil(x);
        self.dispatch(shader, params, bufs, [x as u32, y as u32, 1])
    }

    pub fn copy(&mut self, src: &DevTensor, dst: &DevTensor, words: usize) {
        if words > 0 {
            self.encoder().copy_buffer_to_buffer(&src.buf, 0, &dst.buf, 0, (words * 4) as u64);
        }
    }

    pub fn clear(&mut self, t: &DevTensor) {
        self.encoder().clear_buffer(&t.buf, 0, None);
    }

    /// Copies a host tensor to the device (converting to device words).
    pub fn upload(&mut self, t: &Tensor) -> Result<DevTensor> {
        let n = t.len();
        let words: Vec<u32> = match t.dtype() {
            DType::F32 => bytemuck::cast_slice::<u8, u32>(t.bytes()).to_vec(),
            DType::F16 => {
                // Packed two per word; widened on the device.
                let mut packed = vec![0u32; n.div_ceil(2).max(1)];
                bytemuck::cast_slice_mut::<u32, u8>(&mut packed)[..n * 2].copy_from_slice(t.bytes());
                self.check_size((packed.len() * 4) as u64, "f16 upload")?;
                let src = self.buffer_from_words(&packed);
                let out = self.alloc(DType::F16, t.shape().to_vec())?;
                let shader = if self.caps().shader_f16 { "f16_unpack_native" } else { "f16_unpack" };
                self.dispatch_1d(shader, &[n as u32], &[&src, &out.buf], n)?;
                return Ok(out);
            }
            DType::I64 => t
                .view::<i64>()?
                .iter()
                // i64 values live as i32 on the device; the huge "to the end" sentinels clamp.
                .map(|&v| v.clamp(i32::MIN as i64, i32::MAX as i64) as i32 as u32)
                .collect(),
            DType::I32 => bytemuck::cast_slice::<u8, u32>(t.bytes()).to_vec(),
            DType::I8 => t.view::<i8>()?.iter().map(|&v| v as i32 as u32).collect(),
            DType::U8 | DType::Bool => t.bytes().iter().map(|&v| v as u32).collect(),
            DType::F64 => bail!("f64 tensors are not supported on the GPU"),
        };
        self.check_size((words.len().max(1) * 4) as u64, &format!("upload of {t:?}"))?;
        let buf = self.buffer_from_words(if words.is_empty() { &[0] } else { &words });
        Ok(DevTensor { buf: Arc::new(buf), dtype: t.dtype(), shape: t.shape().to_vec() })
    }

    fn buffer_from_words(&self, words: &[u32]) -> wgpu::Buffer {
        self.ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None,
            contents: bytemuck::cast_slice(words),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        })
    }

    /// Submits what was encoded so far.
    pub fn flush(&mut self) {
        if let Some(enc) = self.encoder.take() {
            self.ctx.queue.submit([enc.finish()]);
            self.stats.submits += 1;
        }
    }

    /// Copies device tensors back to the host (one submit for all of them).
    pub fn read_back(&mut self, ts: &[&DevTensor]) -> Result<Vec<Tensor>> {
        let mut staged = Vec::new();
        for t in ts {
            let n = t.len();
            let (src, bytes) = if t.dtype == DType::F16 {
                let packed = self.alloc(DType::I32, vec![n.div_ceil(2).max(1)])?;
                let shader = if self.caps().shader_f16 { "f16_pack_native" } else { "f16_pack" };
                let items = if self.caps().shader_f16 { n } else { n.div_ceil(2) };
                self.dispatch_1d(shader, &[n as u32], &[&t.buf, &packed.buf], items)?;
                (packed.buf.clone(), (n.div_ceil(2).max(1) * 4) as u64)
            } else {
                (t.buf.clone(), (n.max(1) * 4) as u64)
            };
            let staging = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("readback"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            self.encoder().copy_buffer_to_buffer(&src, 0, &staging, 0, bytes);
            staged.push(staging);
        }
        self.flush();
        let (tx, rx) = std::sync::mpsc::channel();
        for (i, s) in staged.iter().enumerate() {
            let tx = tx.clone();
            s.slice(..).map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send((i, r));
            });
        }
        drop(tx);
        self.ctx.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| anyhow!("GPU poll failed: {e}"))?;
        for (i, r) in rx.iter() {
            r.map_err(|e| anyhow!("mapping readback buffer {i} failed: {e}"))?;
        }
        let mut out = Vec::with_capacity(ts.len());
        for (t, s) in ts.iter().zip(&staged) {
            let view = s.slice(..).get_mapped_range()?;
            let words: &[u32] = bytemuck::cast_slice(&view);
            let n = t.len();
            let shape = t.shape.clone();
            let tensor = match t.dtype {
                DType::F32 => Tensor::from_vec(shape, bytemuck::cast_slice::<u32, f32>(&words[..n]).to_vec()),
                DType::F16 => {
                    let halves: &[f16] = bytemuck::cast_slice(words);
                    Tensor::from_vec(shape, halves[..n].to_vec())
                }
                DType::I64 => Tensor::from_vec(shape, words[..n].iter().map(|&w| w as i32 as i64).collect()),
                DType::I32 => Tensor::from_vec(shape, words[..n].iter().map(|&w| w as i32).collect()),
                DType::I8 => Tensor::from_vec(shape, words[..n].iter().map(|&w| w as i32 as i8).collect()),
                DType::U8 => Tensor::from_vec(shape, words[..n].iter().map(|&w| w as u8).collect()),
                DType::Bool => Tensor::from_bools(shape, words[..n].iter().map(|&w| w != 0).collect()),
                DType::F64 => bail!("f64 tensors are not supported on the GPU"),
            };
            drop(view);
            s.unmap();
            out.push(tensor);
        }
        Ok(out)
    }
}
