//! Adapter selection and device creation.
//!
//! Selection honours `WGPU_BACKEND` (through wgpu's own env parsing) and
//! `WGPU_ADAPTER_NAME` (substring of the adapter name, case-insensitive), and
//! otherwise prefers discrete, then integrated, then virtual GPUs over CPU
//! adapters such as llvmpipe.

use anyhow::{anyhow, Context, Result};
use std::sync::Arc;

/// Optional features the kernels can use; every kernel also has a path
/// without them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Caps {
    pub shader_f16: bool,
    pub subgroups: bool,
}

impl Caps {
    /// Every capability combination, for validating all shader variants.
    pub fn all() -> [Caps; 4] {
        [
            Caps {
                shader_f16: false,
                subgroups: false,
            },
            Caps {
                shader_f16: true,
                subgroups: false,
            },
            Caps {
                shader_f16: false,
                subgroups: true,
            },
            Caps {
                shader_f16: true,
                subgroups: true,
            },
        ]
    }
}

/// What `cellm-run devices` prints about one adapter.
#[derive(Clone, Debug)]
pub struct AdapterReport {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub shader_f16: bool,
    pub subgroup: bool,
    pub timestamp_query: bool,
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
}

impl std::fmt::Display for AdapterReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}, {}, driver {}) f16={} subgroup={} timestamp_query={} max_storage_binding={} MiB max_buffer={} MiB",
            self.name,
            self.backend,
            self.device_type,
            self.driver,
            self.shader_f16,
            self.subgroup,
            self.timestamp_query,
            self.max_storage_buffer_binding_size >> 20,
            self.max_buffer_size >> 20
        )
    }
}

/// Backends searched: `WGPU_BACKEND` when set, else the primary ones (Vulkan,
/// Metal, DX12). GL is left out unless asked for: it lacks the compute features
/// the kernels use, and probing it prints EGL errors on headless machines.
fn backends() -> wgpu::Backends {
    wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY)
}

/// On a headless Linux machine, the Vulkan loader's Wayland probe prints
/// "error: XDG_RUNTIME_DIR is invalid" to stderr. With no Wayland session there
/// is nothing to find, so point it at an empty private folder and keep quiet.
fn quiet_headless_wsi() {
    if cfg!(target_os = "linux")
        && std::env::var_os("XDG_RUNTIME_DIR").is_none()
        && std::env::var_os("WAYLAND_DISPLAY").is_none()
    {
        let user = std::env::var("USER").unwrap_or_default();
        let dir = std::env::temp_dir().join(format!("cellm-xdg-{user}"));
        if std::fs::create_dir_all(&dir).is_ok() {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
            }
            std::env::set_var("XDG_RUNTIME_DIR", &dir);
        }
    }
}

fn instance() -> wgpu::Instance {
    quiet_headless_wsi();
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends();
    wgpu::Instance::new(desc)
}

fn enumerate() -> Vec<wgpu::Adapter> {
    let inst = instance();
    let backends = backends();
    pollster::block_on(inst.enumerate_adapters(backends))
}

fn report(a: &wgpu::Adapter) -> AdapterReport {
    let info = a.get_info();
    let f = a.features();
    let l = a.limits();
    AdapterReport {
        name: info.name,
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
        shader_f16: f.contains(wgpu::Features::SHADER_F16),
        subgroup: f.contains(wgpu::Features::SUBGROUP),
        timestamp_query: f.contains(wgpu::Features::TIMESTAMP_QUERY),
        max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
        max_buffer_size: l.max_buffer_size,
    }
}

/// Every adapter wgpu can see under the current `WGPU_BACKEND`.
pub fn list_adapters() -> Vec<AdapterReport> {
    enumerate().iter().map(report).collect()
}

fn type_rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// A device and queue plus what the kernels may rely on.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: AdapterReport,
    pub caps: Caps,
    pub limits: wgpu::Limits,
}

impl GpuContext {
    /// Picks an adapter (see the module docs) and opens a device on it.
    pub fn new() -> Result<Arc<GpuContext>> {
        let mut adapters = enumerate();
        if let Ok(want) = std::env::var("WGPU_ADAPTER_NAME") {
            let want = want.to_lowercase();
            adapters.retain(|a| a.get_info().name.to_lowercase().contains(&want));
            if adapters.is_empty() {
                return Err(anyhow!(
                    "no GPU adapter's name contains WGPU_ADAPTER_NAME='{want}'"
                ));
            }
        }
        adapters.sort_by_key(|a| type_rank(a.get_info().device_type));
        let adapter = adapters.into_iter().next().ok_or_else(|| {
            anyhow!("no GPU adapter found (is a Vulkan/Metal/DX12 driver installed? WGPU_BACKEND may restrict the search)")
        })?;
        let report = report(&adapter);
        let available = adapter.features();
        let mut features = wgpu::Features::empty();
        for f in [wgpu::Features::SHADER_F16, wgpu::Features::SUBGROUP] {
            if available.contains(f) {
                features |= f;
            }
        }
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("cellm"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .with_context(|| format!("opening a device on adapter {}", report.name))?;
        let caps = Caps {
            shader_f16: features.contains(wgpu::Features::SHADER_F16),
            subgroups: features.contains(wgpu::Features::SUBGROUP),
        };
        Ok(Arc::new(GpuContext {
            device,
            queue,
            adapter: report,
            caps,
            limits,
        }))
    }
}
