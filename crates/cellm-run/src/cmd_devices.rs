//! `cellm-run devices`: the GPU adapters wgpu can see.

use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub struct DevicesArgs {}

pub fn run(_a: DevicesArgs) -> Result<()> {
    let adapters = cellm_gpu::list_adapters();
    if adapters.is_empty() {
        println!(
            "no GPU adapters found (WGPU_BACKEND={})",
            std::env::var("WGPU_BACKEND").unwrap_or_default()
        );
        return Ok(());
    }
    for (i, a) in adapters.iter().enumerate() {
        println!("[{i}] {}", a.name);
        println!(
            "    backend: {}  type: {}  driver: {}",
            a.backend, a.device_type, a.driver
        );
        println!(
            "    SHADER_F16: {}  SUBGROUP: {}  TIMESTAMP_QUERY: {}",
            a.shader_f16, a.subgroup, a.timestamp_query
        );
        println!(
            "    max storage binding: {} MiB  max buffer: {} MiB",
            a.max_storage_buffer_binding_size >> 20,
            a.max_buffer_size >> 20
        );
    }
    Ok(())
}
