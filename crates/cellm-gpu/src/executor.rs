//! Runs a graph on the GPU: device kernels for tensor math, the host for
//! small integer shape arithmetic (Shape, Gather/Concat/... on host-known i64
//! values) and for the data-dependent NonZero (one readback).
//!
//! One command encoder and one submit per run unless a host op needs a
//! device value (NonZero, or a shape parameter computed on the device); only
//! the graph outputs are read back.

use crate::device::GpuContext;
use crate::kernel::{BufferPool, DevTensor, Kern, KernConfig, PipelineCache, RunStats};
use crate::kv_cache::GpuKvCache;
use crate::ops::{self, Args};
use anyhow::{anyhow, Context, Result};
use cellm_ir::{DType, Graph, Op, Tensor, ValueId};
use petgraph::stable_graph::NodeIndex;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Knobs mostly for tests.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// Fill every new device buffer with all-ones words (NaN / -1) so a kernel
    /// that leaves outputs unwritten is caught.
    pub poison_buffers: bool,
    /// Compute integer ops whose inputs are all on the host on the host. Off
    /// forces them onto the device (to test the integer kernels).
    pub host_shape_math: bool,
    /// Lowers the largest storage binding / buffer a tensor chunk may use
    /// (tests force tiny limits to exercise split tensors).
    pub max_binding_bytes_override: Option<u64>,
    /// Ignore SHADER_F16 even where the device has it (tests the packed-f16
    /// kernels on such devices).
    pub disable_shader_f16: bool,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            poison_buffers: false,
            host_shape_math: true,
            max_binding_bytes_override: None,
            disable_shader_f16: false,
        }
    }
}

/// A graph bound to a device, with its weights uploaded.
pub struct GpuSession {
    ctx: Arc<GpuContext>,
    // Boxed: keeps the session small next to a CPU graph in enums.
    graph: Box<Graph>,
    order: Vec<NodeIndex>,
    /// Initializers on the device, uploaded once (floats at creation, the
    /// few integer ones that device kernels read on first use).
    weights: Mutex<HashMap<ValueId, DevTensor>>,
    pipelines: PipelineCache,
    pool: BufferPool,
    opts: SessionOptions,
    cfg: KernConfig,
    last_stats: Mutex<RunStats>,
}

#[derive(Clone, Default)]
struct Slot {
    host: Option<Tensor>,
    dev: Option<DevTensor>,
}

impl Slot {
    fn dtype(&self) -> Option<DType> {
        self.host
            .as_ref()
            .map(|t| t.dtype())
            .or(self.dev.as_ref().map(|d| d.dtype))
    }
    fn shape(&self) -> Option<Vec<usize>> {
        self.host
            .as_ref()
            .map(|t| t.shape().to_vec())
            .or(self.dev.as_ref().map(|d| d.shape.clone()))
    }
}

fn is_int(d: DType) -> bool {
    matches!(
        d,
        DType::I64 | DType::I32 | DType::I8 | DType::U8 | DType::Bool
    )
}

/// Shape's output from the input's shape alone (ONNX start/end clamping).
fn shape_of(op: &cellm_ir::ops::Shape, shape: &[usize]) -> Tensor {
    let r = shape.len() as i64;
    let fix = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let start = fix(op.start);
    let end = fix(op.end.unwrap_or(r));
    let dims: Vec<i64> = if start < end {
        shape[start..end].iter().map(|&d| d as i64).collect()
    } else {
        vec![]
    };
    Tensor::from_vec(vec![dims.len()], dims)
}

impl GpuSession {
    /// Opens the default device (see [`crate::device`]) and uploads the weights.
    pub fn new(graph: Graph) -> Result<GpuSession> {
        GpuSession::with_context(GpuContext::new()?, graph, SessionOptions::default())
    }

    pub fn with_context(
        ctx: Arc<GpuContext>,
        graph: Graph,
        opts: SessionOptions,
    ) -> Result<GpuSession> {
        let order = graph.topo_order()?;
        let mut caps = ctx.caps;
        if opts.disable_shader_f16 {
            caps.shader_f16 = false;
        }
        let cfg = KernConfig::new(
            &ctx,
            caps,
            opts.max_binding_bytes_override,
            opts.poison_buffers,
        )?;
        let session = GpuSession {
            cfg,
            ctx,
            order,
            weights: Mutex::new(HashMap::new()),
            pipelines: Mutex::new(HashMap::new()),
            pool: BufferPool::default(),
            opts,
            last_stats: Mutex::new(RunStats::default()),
            graph: Box::new(graph),
        };
        {
            let mut k = Kern::new(
                &session.ctx,
                &session.pipelines,
                KernConfig {
                    poison: false,
                    ..session.cfg
                },
            );
            let mut w = HashMap::new();
            for (&v, t) in &session.graph.initializers {
                // Float weights and packed 4/8-bit ones (uploaded as they are).
                if matches!(t.dtype(), DType::F32 | DType::F16 | DType::U8 | DType::I8) {
                    let d = k.upload(t).with_context(|| {
                        format!("uploading weight '{}'", session.graph.value_name(v))
                    })?;
                    w.insert(v, d);
                }
            }
            k.flush();
            *session
                .weights
                .lock()
                .map_err(|_| anyhow!("weight cache poisoned"))? = w;
        }
        Ok(session)
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// Device bytes held by the uploaded weights (f16 weights stay f16).
    pub fn weight_bytes(&self) -> u64 {
        self.weights
            .lock()
            .map(|w| {
                w.values()
                    .flat_map(|t| t.store.chunks.iter().map(|b| b.size()))
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Counters of the last run (dispatches, submits, readbacks, host ops).
    pub fn last_stats(&self) -> RunStats {
        self.last_stats
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Same contract as `cellm_cpu::run`: inputs by name, outputs by name.
    pub fn run(&self, inputs: &HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
        Ok(self.run_inner(inputs, None, false)?.0)
    }

    /// Like [`GpuSession::run`], but the outputs stay on the device (no
    /// readback, no wait): for feeding another session on the same context
    /// (an embedding row into the decoder) without a round trip.
    pub fn run_on_device(
        &self,
        inputs: &HashMap<String, Tensor>,
    ) -> Result<HashMap<String, DevTensor>> {
        Ok(self.run_inner(inputs, None, true)?.1)
    }

    /// Empty device KV caches (capacity `cap_rows` tokens) for the graph
    /// inputs `names`, each declared [B, P, X] with X known.
    pub fn new_kv_cache(&self, names: &[String], cap_rows: usize) -> Result<GpuKvCache> {
        let g = &self.graph;
        let mut k = Kern::new(
            &self.ctx,
            &self.pipelines,
            KernConfig {
                poison: false,
                ..self.cfg
            },
        );
        let mut cache = GpuKvCache::with_capacity(cap_rows);
        for name in names {
            let fact = g
                .find(name)
                .filter(|v| g.inputs.contains(v))
                .and_then(|v| g.values[v].fact.clone())
                .ok_or_else(|| anyhow!("'{name}' is not a declared input of graph '{}'", g.name))?;
            let row = match fact.shape.as_deref() {
                Some([_, _, x]) => x.known(),
                _ => None,
            }
            .ok_or_else(|| anyhow!("KV cache input '{name}' must be [B, P, X] with X fixed"))?;
            cache.add(&mut k, name, fact.dtype, row)?;
        }
        k.flush();
        Ok(cache)
    }

    /// Keeps input `name` of the next runs with `cache` on the device as an
    /// all-ones [1, len] i64 tensor (an attention mask with no padding):
    /// nothing is uploaded per run; the buffer is filled once and regrown
    /// by doubling when `len` passes its capacity.
    pub fn set_resident_ones(&self, cache: &mut GpuKvCache, name: &str, len: usize) -> Result<()> {
        let mut k = Kern::new(
            &self.ctx,
            &self.pipelines,
            KernConfig {
                poison: false,
                ..self.cfg
            },
        );
        cache.set_ones(&mut k, name, len)?;
        k.flush();
        Ok(())
    }

    /// Like [`GpuSession::run`], with the inputs held by `cache` bound to its
    /// device buffers (callers leave them out of `inputs`) and KvCacheAppend on
    /// them writing the new rows in place. Outputs made by those appends (the
    /// present values) stay on the device and are not returned. On error the
    /// caches are rewound.
    pub fn run_with_cache(
        &self,
        inputs: &HashMap<String, Tensor>,
        cache: &mut GpuKvCache,
    ) -> Result<HashMap<String, Tensor>> {
        let start = cache.names().next().and_then(|n| cache.rows(n));
        let result = self
            .run_inner(inputs, Some(&mut *cache), false)
            .map(|r| r.0);
        cache.clear_bound();
        if result.is_err() {
            if let Some(rows) = start {
                cache.truncate(rows);
            }
        }
        result
    }

    /// Runs the graph; outputs are read back, or with `keep_on_device`
    /// returned as device tensors (the second map).
    #[allow(clippy::type_complexity)]
    fn run_inner(
        &self,
        inputs: &HashMap<String, Tensor>,
        mut cache: Option<&mut GpuKvCache>,
        keep_on_device: bool,
    ) -> Result<(HashMap<String, Tensor>, HashMap<String, DevTensor>)> {
        let g = &self.graph;
        let mut views: HashMap<String, DevTensor> = HashMap::new();
        if let Some(c) = cache.as_deref() {
            for name in c.names() {
                if inputs.contains_key(name) {
                    return Err(anyhow!(
                        "input '{name}' is held by the KV cache and must not be passed"
                    ));
                }
                views.insert(name.clone(), c.view(name)?);
            }
            for (name, view) in c.resident_views() {
                if inputs.contains_key(name) {
                    return Err(anyhow!(
                        "input '{name}' is device-resident and must not be passed"
                    ));
                }
                views.insert(name.clone(), view);
            }
        }
        {
            let mut shapes: HashMap<&str, (DType, &[usize])> = inputs
                .iter()
                .map(|(k, t)| (k.as_str(), (t.dtype(), t.shape())))
                .collect();
            for (k, d) in &views {
                shapes.insert(k.as_str(), (d.dtype, &d.shape[..]));
            }
            cellm_cpu::interpreter::bind_input_shapes(g, &shapes)?;
        }
        let mut k = Kern::new(&self.ctx, &self.pipelines, self.cfg).with_pool(&self.pool);
        let mut slots: Vec<Slot> = vec![Slot::default(); g.values.len()];
        for &v in &g.inputs {
            slots[v].host = inputs.get(g.value_name(v)).cloned();
            if let Some(d) = views.get(g.value_name(v)) {
                slots[v].dev = Some(d.clone());
            }
        }
        {
            let w = self
                .weights
                .lock()
                .map_err(|_| anyhow!("weight cache poisoned"))?;
            for (&v, t) in &g.initializers {
                slots[v].host = Some(t.clone());
                slots[v].dev = w.get(&v).cloned();
            }
        }
        let mut uses = g.use_counts();
        // Values written in place into a KV cache: never read back.
        let mut in_cache = vec![false; g.values.len()];
        for &ix in &self.order {
            let node = &g.nodes[ix];
            let appended = match cache.as_deref_mut() {
                Some(c) => self
                    .append_in_place(&mut k, node, &slots, c)
                    .with_context(|| format!("node '{}' ({})", node.name, node.op.name()))?,
                None => None,
            };
            if let Some((out, d)) = appended {
                slots[out] = Slot {
                    host: None,
                    dev: Some(d),
                };
                in_cache[out] = true;
                *k.stats.device_ops.entry(node.op.name()).or_default() += 1;
            } else {
                self.run_node(&mut k, node, &mut slots, &uses)
                    .with_context(|| format!("node '{}' ({})", node.name, node.op.name()))?;
            }
            for v in node.inputs.iter().flatten() {
                uses[*v] -= 1;
                if uses[*v] == 0 && !g.initializers.contains_key(v) {
                    if let Some(d) = std::mem::take(&mut slots[*v]).dev {
                        k.recycle(d);
                    }
                }
            }
            // Outputs nobody reads free at once.
            for v in node.outputs.iter().flatten() {
                if uses[*v] == 0 {
                    if let Some(d) = std::mem::take(&mut slots[*v]).dev {
                        k.recycle(d);
                    }
                }
            }
        }
        let mut out = HashMap::new();
        let mut pending: Vec<(String, DevTensor)> = Vec::new();
        for &v in &g.outputs {
            if in_cache[v] {
                continue;
            }
            let name = g.value_name(v).to_string();
            let slot = &slots[v];
            match (&slot.host, &slot.dev) {
                (Some(t), _) => {
                    out.insert(name, t.clone());
                }
                (None, Some(d)) => pending.push((name, d.clone())),
                (None, None) => return Err(anyhow!("output '{name}' was not computed")),
            }
        }
        let mut on_device = HashMap::new();
        if keep_on_device {
            for (name, t) in out.drain() {
                on_device.insert(name, k.upload(&t)?);
            }
            k.flush();
            on_device.extend(pending);
        } else {
            let refs: Vec<&DevTensor> = pending.iter().map(|(_, d)| d).collect();
            let tensors = k.read_back(&refs)?;
            for ((name, _), t) in pending.into_iter().zip(tensors) {
                out.insert(name, t);
            }
        }
        // Every buffer not held elsewhere (weights, caches, kept outputs) goes
        // back to the pool: read_back waited, and without it queue order keeps
        // this session's later runs after this one.
        for (v, slot) in slots.into_iter().enumerate() {
            if let (Some(d), false) = (slot.dev, g.initializers.contains_key(&v)) {
                k.recycle(d);
            }
        }
        if let Ok(mut s) = self.last_stats.lock() {
            *s = k.stats.clone();
        }
        Ok((out, on_device))
    }

    fn host_value(&self, k: &mut Kern, slot: &mut Slot) -> Result<Tensor> {
        if let Some(t) = &slot.host {
            return Ok(t.clone());
        }
        let d = slot
            .dev
            .as_ref()
            .ok_or_else(|| anyhow!("value is not available"))?;
        let t = k.read_back(&[d])?.remove(0);
        k.stats.readbacks += 1;
        slot.host = Some(t.clone());
        Ok(t)
    }

    fn dev_value(&self, k: &mut Kern, v: ValueId, slot: &mut Slot) -> Result<DevTensor> {
        if let Some(d) = &slot.dev {
            return Ok(d.clone());
        }
        let t = slot
            .host
            .as_ref()
            .ok_or_else(|| anyhow!("value is not available"))?;
        let d = k.upload(t)?;
        if self.graph.initializers.contains_key(&v) {
            if let Ok(mut w) = self.weights.lock() {
                w.insert(v, d.clone());
            }
        }
        slot.dev = Some(d.clone());
        Ok(d)
    }

    /// KvCacheAppend whose past is a cache-bound graph input (at its full
    /// length): appends in place and returns (output value, longer view).
    fn append_in_place(
        &self,
        k: &mut Kern,
        node: &cellm_ir::Node,
        slots: &[Slot],
        cache: &mut GpuKvCache,
    ) -> Result<Option<(ValueId, DevTensor)>> {
        let g = &self.graph;
        if !matches!(node.op, Op::KvCacheAppend(_)) {
            return Ok(None);
        }
        let (Some(Some(past)), Some(Some(new)), Some(Some(out))) = (
            node.inputs.first(),
            node.inputs.get(1),
            node.outputs.first(),
        ) else {
            return Ok(None);
        };
        let name = g.value_name(*past);
        let past_rows = slots[*past]
            .dev
            .as_ref()
            .and_then(|d| d.shape.get(1).copied());
        if !g.inputs.contains(past) || cache.rows(name).is_none() || cache.rows(name) != past_rows {
            return Ok(None);
        }
        let Some(new_dev) = slots[*new].dev.clone() else {
            return Ok(None);
        };
        Ok(Some((*out, cache.append(k, name, &new_dev)?)))
    }

    fn run_node(
        &self,
        k: &mut Kern,
        node: &cellm_ir::Node,
        slots: &mut [Slot],
        uses: &[usize],
    ) -> Result<()> {
        let g = &self.graph;
        for v in node.inputs.iter().flatten() {
            if slots[*v].dtype().is_none() {
                return Err(anyhow!("value '{}' is not available", g.value_name(*v)));
            }
        }
        if let Op::Shape(s) = &node.op {
            let v = node
                .inputs
                .first()
                .copied()
                .flatten()
                .ok_or_else(|| anyhow!("Shape needs an input"))?;
            let shape = slots[v]
                .shape()
                .ok_or_else(|| anyhow!("Shape input is not available"))?;
            if let Some(Some(o)) = node.outputs.first() {
                slots[*o] = Slot {
                    host: Some(shape_of(s, &shape)),
                    dev: None,
                };
            }
            *k.stats.host_ops.entry(node.op.name()).or_default() += 1;
            return Ok(());
        }
        let all_host = node
            .inputs
            .iter()
            .flatten()
            .all(|v| slots[*v].host.is_some());
        let out_dtypes: Vec<Option<DType>> = node
            .outputs
            .iter()
            .map(|o| o.and_then(|o| g.values[o].fact.as_ref().map(|f| f.dtype)))
            .collect();
        let int_outputs =
            !out_dtypes.is_empty() && out_dtypes.iter().all(|d| d.is_some_and(is_int));
        let host_math = self.opts.host_shape_math && all_host && int_outputs;
        let mut on_host = host_math || matches!(node.op, Op::NonZero(_) | Op::Range(_));
        let wanted = node
            .outputs
            .iter()
            .map(|o| o.is_some_and(|o| uses[o] > 0 || g.outputs.contains(&o)))
            .collect();
        let mut args = Args {
            dev: vec![],
            host: vec![],
            wanted,
        };
        if !on_host {
            let params = ops::param_inputs(&node.op);
            for (i, v) in node.inputs.iter().enumerate() {
                let (mut d, mut h) = (None, None);
                if let Some(v) = v {
                    if params.contains(&i) {
                        h = Some(self.host_value(k, &mut slots[*v])?);
                    } else {
                        d = Some(self.dev_value(k, *v, &mut slots[*v])?);
                    }
                }
                args.dev.push(d);
                args.host.push(h);
            }
            on_host = !ops::device_supported(&node.op, &args);
        }
        if on_host {
            let mut host_in = Vec::with_capacity(node.inputs.len());
            for v in &node.inputs {
                host_in.push(match v {
                    Some(v) => Some(self.host_value(k, &mut slots[*v])?),
                    None => None,
                });
            }
            let refs: Vec<Option<&Tensor>> = host_in.iter().map(|t| t.as_ref()).collect();
            let outs = cellm_cpu::ops::eval(&node.op, &refs)?;
            for (slot, t) in node.outputs.iter().zip(outs) {
                if let Some(o) = slot {
                    slots[*o] = Slot {
                        host: Some(t),
                        dev: None,
                    };
                }
            }
            *k.stats.host_ops.entry(node.op.name()).or_default() += 1;
            return Ok(());
        }
        let outs = ops::encode(k, &node.op, &args)?;
        // f16 outputs are stored as f16, so every value is rounded on store.
        for (slot, d) in node.outputs.iter().zip(outs) {
            if let Some(o) = slot {
                slots[*o] = Slot {
                    host: None,
                    dev: Some(d),
                };
            }
        }
        *k.stats.device_ops.entry(node.op.name()).or_default() += 1;
        Ok(())
    }
}
