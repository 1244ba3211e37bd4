//! cellm's GPU backend: graphs run as WGSL compute kernels through wgpu.
//!
//! - [`device`]: adapter selection (`WGPU_BACKEND`, `WGPU_ADAPTER_NAME`) and
//!   the capability set (SHADER_F16, SUBGROUP).
//! - [`kernel`]: device storage (f32 words, f16 halves, tensors split over
//!   several buffers when larger than one binding), dispatch and transfers.
//! - [`shaders`]: WGSL assembly with per-binding generated accessors.
//! - [`executor`]: [`GpuSession`], same run contract as `cellm_cpu::run`.
//! - [`ops`]: one file per op; WGSL sources in `/shaders`.

pub mod device;
pub mod executor;
pub mod kernel;
pub mod kv_cache;
pub mod ops;
pub mod shaders;

pub use device::{list_adapters, AdapterReport, Caps, GpuContext};
pub use executor::{GpuSession, SessionOptions};
pub use kernel::{DevTensor, RunStats};
pub use kv_cache::GpuKvCache;
