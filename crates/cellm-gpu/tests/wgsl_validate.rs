//! Every WGSL module, as assembled for each capability set (with and without
//! SHADER_F16, with and without subgroups), must parse and validate with naga
//! (the WGSL front end wgpu itself uses). Needs no GPU.

use cellm_gpu::shaders::{all_sources, needs_f16, KERNELS};
use cellm_gpu::Caps;
use naga::valid::{Capabilities, ValidationFlags, Validator};

#[test]
fn all_modules_validate_for_every_capability_set() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for caps in Caps::all() {
        // pack2x16float/unpack2x16float: wgpu grants this on every native backend
        // (DownlevelFlags::SHADER_F16_IN_F32), with or without SHADER_F16.
        let mut naga_caps = Capabilities::SHADER_FLOAT16_IN_FLOAT32;
        if caps.shader_f16 {
            naga_caps |= Capabilities::SHADER_FLOAT16;
        }
        if caps.subgroups {
            naga_caps |= Capabilities::SUBGROUP;
        }
        let sources = all_sources(caps);
        // Every kernel that the capability set allows must be present.
        let expected = KERNELS.iter().filter(|(n, _)| caps.shader_f16 || !needs_f16(n)).count();
        assert_eq!(sources.len(), expected, "{caps:?}: some kernels failed to assemble");
        for (name, src) in sources {
            checked += 1;
            let module = match naga::front::wgsl::parse_str(&src) {
                Ok(m) => m,
                Err(e) => {
                    failures.push(format!("{name} {caps:?}: parse: {}", e.emit_to_string(&src)));
                    continue;
                }
            };
            if let Err(e) = Validator::new(ValidationFlags::all(), naga_caps).validate(&module) {
                failures.push(format!("{name} {caps:?}: validate: {}", e.emit_to_string(&src)));
            }
        }
    }
    println!("validated {checked} modules");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn native_f16_kernels_are_refused_without_the_feature() {
    let caps = Caps { shader_f16: false, subgroups: false };
    assert!(cellm_gpu::shaders::source("f16_pack_native", caps).is_err());
    assert!(cellm_gpu::shaders::source("f16_pack", caps).is_ok());
}
