//! Every WGSL module, as assembled for each capability set (with and without
//! SHADER_F16, with and without subgroups) and for every binding layout (32-bit
//! words or f16 halves at each binding, one chunk or tensors split over three
//! bindings), must parse and validate with naga (the WGSL front end wgpu
//! itself uses). Needs no GPU.

use cellm_gpu::shaders::{all_sources, bindings, layout_variants, source, BindLayout, KERNELS};
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
        // Every kernel in every layout variant must be present.
        let expected: usize = KERNELS
            .iter()
            .map(|(_, b)| layout_variants(bindings(b).len()).len())
            .sum();
        assert_eq!(sources.len(), expected, "{caps:?}: variant count");
        for (name, src) in sources {
            checked += 1;
            let module = match naga::front::wgsl::parse_str(&src) {
                Ok(m) => m,
                Err(e) => {
                    failures.push(format!(
                        "{name} {caps:?}: parse: {}",
                        e.emit_to_string(&src)
                    ));
                    continue;
                }
            };
            if let Err(e) = Validator::new(ValidationFlags::all(), naga_caps).validate(&module) {
                failures.push(format!(
                    "{name} {caps:?}: validate: {}",
                    e.emit_to_string(&src)
                ));
            }
        }
    }
    println!("validated {checked} modules");
    assert!(checked > 0);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn layouts_change_the_generated_storage() {
    let no_f16 = Caps {
        shader_f16: false,
        subgroups: false,
    };
    let f16 = Caps {
        shader_f16: true,
        subgroups: false,
    };
    let words = [BindLayout::WORD; 2];
    let halves = [BindLayout::HALF; 2];
    let plain = source("unary", no_f16, &words, 1 << 16).expect("words");
    assert!(!plain.contains("enable f16"));
    let packed = source("unary", no_f16, &halves, 1 << 16).expect("packed");
    assert!(packed.contains("atomic<u32>") && !packed.contains("enable f16"));
    let native = source("unary", f16, &halves, 1 << 16).expect("native");
    assert!(native.contains("enable f16") && native.contains("array<f16>"));
    let split = [BindLayout {
        half: false,
        chunks: 3,
        bytes: None,
    }; 2];
    let chunked = source("unary", no_f16, &split, 1 << 16).expect("chunked");
    assert!(chunked.contains("@binding(6)") && !chunked.contains("@binding(7)"));
    // The layout count must match the kernel's declarations.
    assert!(source("unary", no_f16, &[BindLayout::WORD], 1 << 16).is_err());
}
