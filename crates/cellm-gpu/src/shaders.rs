//! WGSL sources (`/shaders/*.wgsl`), assembled per capability set and per
//! binding layout.
//!
//! Every module is `enable` lines + `prelude.wgsl` + the kernel. A kernel
//! declares its storage buffers with `//#bind NAME r|rw` lines (bindings 1..,
//! in order) and touches them only through generated accessors:
//! `ld_NAME(i) -> f32`, `lw_NAME(i) -> u32` (raw element bits), `li_NAME(i)`,
//! and for `rw` bindings `st_NAME(i, f32)`, `sw_NAME(i, u32)`, `si_NAME(i, i32)`.
//! What the accessors compile to depends on the tensor bound there
//! ([`BindLayout`]): 32-bit words, or f16 halves (native `array<f16>` with
//! SHADER_F16, otherwise two halves packed per `u32`, written with atomics
//! because two threads may own the two halves of one word); and tensors
//! larger than one storage binding are split over several bindings
//! ("chunks") of `chunk_bytes` each, the accessor picking the chunk.

use crate::device::Caps;
use anyhow::{bail, Result};
use std::fmt::Write as _;

const PRELUDE: &str = include_str!("../../../shaders/prelude.wgsl");

macro_rules! kernels {
    ($($name:literal),* $(,)?) => {
        /// Kernel names and their raw sources.
        pub const KERNELS: &[(&str, &str)] = &[
            $(($name, include_str!(concat!("../../../shaders/", $name, ".wgsl"))),)*
        ];
    };
}

kernels!(
    "binary",
    "cast",
    "constant_of_shape",
    "conv",
    "gather",
    "gather_nd",
    "gemv",
    "layer_norm",
    "mat_mul",
    "multi_head_attention",
    "reduce",
    "rotary_embedding",
    "scatter_nd",
    "simplified_layer_norm",
    "skip_simplified_layer_norm",
    "softmax",
    "strided_copy",
    "trilu",
    "unary",
    "where_op",
);

/// How the tensor at one binding is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BindLayout {
    /// f16 halves (2 bytes per element) rather than 32-bit words.
    pub half: bool,
    /// Number of buffers (each at most `chunk_bytes`) the tensor spans.
    pub chunks: u32,
}

impl BindLayout {
    pub const WORD: BindLayout = BindLayout {
        half: false,
        chunks: 1,
    };
    pub const HALF: BindLayout = BindLayout {
        half: true,
        chunks: 1,
    };
}

/// The `//#bind` declarations of a kernel: (name, writable).
pub fn bindings(body: &str) -> Vec<(String, bool)> {
    body.lines()
        .filter_map(|l| l.trim().strip_prefix("//#bind "))
        .filter_map(|rest| {
            let mut it = rest.split_whitespace();
            let name = it.next()?.to_string();
            Some((name, it.next() == Some("rw")))
        })
        .collect()
}

/// Per-chunk access expressions: (load f32, load raw bits, store f32, store bits).
fn chunk_exprs(a: &str, half: bool, native: bool, rw: bool) -> [String; 4] {
    if !half {
        return [
            format!("return bitcast<f32>({a}[o]);"),
            format!("return {a}[o];"),
            format!("{a}[o] = bitcast<u32>(v);"),
            format!("{a}[o] = v;"),
        ];
    }
    if native {
        return [
            format!("return f32({a}[o]);"),
            // f16 -> f32 -> f16 is exact, so this is the element's bit pattern.
            format!("return pack2x16float(vec2<f32>(f32({a}[o]), 0.0));"),
            format!("{a}[o] = f16(v);"),
            format!("{a}[o] = f16(unpack2x16float(v).x);"),
        ];
    }
    let word = if rw {
        format!("atomicLoad(&{a}[o >> 1u])")
    } else {
        format!("{a}[o >> 1u]")
    };
    // Each thread clears then sets only its own half of the shared word.
    let store = format!(
        "let sh = (o & 1u) * 16u; atomicAnd(&{a}[o >> 1u], ~(0xffffu << sh)); atomicOr(&{a}[o >> 1u], (v & 0xffffu) << sh);"
    );
    [
        format!("return unpack2x16float({word})[o & 1u];"),
        format!("return ({word} >> ((o & 1u) * 16u)) & 0xffffu;"),
        format!("sw_c{a}(o, pack2x16float(vec2<f32>(v, 0.0)));"),
        store,
    ]
}

/// Declarations and accessors for one `//#bind` line.
fn emit_binding(
    out: &mut String,
    name: &str,
    rw: bool,
    lay: BindLayout,
    first_binding: u32,
    native: bool,
    chunk_bytes: u64,
) {
    let elem = if !lay.half {
        "u32"
    } else if native {
        "f16"
    } else if rw {
        "atomic<u32>"
    } else {
        "u32"
    };
    let access = if rw { "read_write" } else { "read" };
    let chunk_elems = chunk_bytes / if lay.half { 2 } else { 4 };
    let chunks = lay.chunks.max(1);
    for c in 0..chunks {
        let _ = writeln!(
            out,
            "@group(0) @binding({}) var<storage, {access}> {name}_{c}: array<{elem}>;",
            first_binding + c
        );
    }
    let kinds: [(&str, &str, &str); 4] = [
        ("ld", "", "-> f32"),
        ("lw", "", "-> u32"),
        ("st", ", v: f32", ""),
        ("sw", ", v: u32", ""),
    ];
    for (k, (prefix, extra, ret)) in kinds.iter().enumerate() {
        if k >= 2 && !rw {
            break;
        }
        // Per-chunk helpers, then the public accessor that picks the chunk.
        for c in 0..chunks {
            let a = format!("{name}_{c}");
            let exprs = chunk_exprs(&a, lay.half, native, rw);
            let body = if k == 2 && lay.half && !native {
                format!("sw_c{name}_{c}(o, pack2x16float(vec2<f32>(v, 0.0)));")
            } else {
                exprs[k].clone()
            };
            let _ = writeln!(out, "fn {prefix}_c{a}(o: u32{extra}) {ret} {{ {body} }}");
        }
        let call_args = if extra.is_empty() { "" } else { ", v" };
        let ret_kw = if ret.is_empty() { "" } else { "return " };
        let mut body = String::new();
        if chunks == 1 {
            let _ = write!(body, "{ret_kw}{prefix}_c{name}_0(i{call_args});");
        } else {
            let _ = write!(
                body,
                "let c = i / {chunk_elems}u; let o = i % {chunk_elems}u; "
            );
            for c in 0..chunks - 1 {
                let _ = write!(
                    body,
                    "if (c == {c}u) {{ {ret_kw}{prefix}_c{name}_{c}(o{call_args}); {} }} ",
                    if ret.is_empty() { "return;" } else { "" }
                );
            }
            let _ = write!(
                body,
                "{ret_kw}{prefix}_c{name}_{}(o{call_args});",
                chunks - 1
            );
        }
        let _ = writeln!(out, "fn {prefix}_{name}(i: u32{extra}) {ret} {{ {body} }}");
    }
    let _ = writeln!(
        out,
        "fn li_{name}(i: u32) -> i32 {{ return bitcast<i32>(lw_{name}(i)); }}"
    );
    if rw {
        let _ = writeln!(
            out,
            "fn si_{name}(i: u32, v: i32) {{ sw_{name}(i, bitcast<u32>(v)); }}"
        );
    }
}

/// The complete module for `name` under `caps`, with the given layout of each
/// `//#bind` binding (in declaration order) and chunk size in bytes.
pub fn source(name: &str, caps: Caps, layouts: &[BindLayout], chunk_bytes: u64) -> Result<String> {
    let Some((_, body)) = KERNELS.iter().find(|(n, _)| *n == name) else {
        bail!("no WGSL kernel named '{name}'");
    };
    let binds = bindings(body);
    if binds.len() != layouts.len() {
        bail!(
            "kernel '{name}' has {} storage bindings, {} were given",
            binds.len(),
            layouts.len()
        );
    }
    if chunk_bytes < 4 || !chunk_bytes.is_multiple_of(4) {
        bail!("chunk size {chunk_bytes} must be a positive multiple of 4 bytes");
    }
    let native = caps.shader_f16;
    let mut out = String::new();
    if native && layouts.iter().any(|l| l.half) {
        out.push_str("enable f16;\n");
    }
    out.push_str(PRELUDE);
    out.push('\n');
    let mut next = 1u32;
    let mut it = binds.iter().zip(layouts);
    for line in body.lines() {
        if line.trim().starts_with("//#bind ") {
            if let Some(((bname, rw), lay)) = it.next() {
                emit_binding(&mut out, bname, *rw, *lay, next, native, chunk_bytes);
                next += lay.chunks.max(1);
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

/// Layout variants to validate for a kernel with `n` bindings: every
/// word/half combination with one chunk, plus all-halves and all-words with
/// three chunks.
pub fn layout_variants(n: usize) -> Vec<Vec<BindLayout>> {
    let mut v = Vec::new();
    for mask in 0..(1u32 << n) {
        v.push(
            (0..n)
                .map(|b| BindLayout {
                    half: mask & (1 << b) != 0,
                    chunks: 1,
                })
                .collect(),
        );
    }
    for half in [false, true] {
        v.push(vec![BindLayout { half, chunks: 3 }; n]);
    }
    v
}

/// Every module variant under `caps` (for validation): (label, source).
pub fn all_sources(caps: Caps) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, body) in KERNELS {
        let n = bindings(body).len();
        for lay in layout_variants(n) {
            let label = format!("{name} {lay:?}");
            match source(name, caps, &lay, 1 << 16) {
                Ok(s) => out.push((label, s)),
                Err(e) => out.push((label, format!("assembly failed: {e:#}"))),
            }
        }
    }
    out
}
