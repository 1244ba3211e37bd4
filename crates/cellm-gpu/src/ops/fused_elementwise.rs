//! FusedElementwise in one dispatch (`shaders/fused_elementwise.wgsl`): a
//! WGSL interpreter runs the register program, which travels in the uniform
//! block, so every program shares one shader (no per-program compiles).
//!
//! Uniform words: [n, rank, n_inputs | out_reg << 8, code_len] @0,
//! out shape[8] @4, broadcast strides[8] of input k @12 + 8k (6 inputs),
//! code @60 (68 words). One word per instruction: op | dst << 8 | a << 16 |
//! b << 24; `Const` (op 0) is followed by its f32 bits. The IR program is
//! SSA; here its registers are reallocated (a register is reused once its
//! last reader has run) onto the shader's `NREG` physical registers.

use super::{u32_of, Args};
use crate::kernel::{broadcast_strides, dims8, DevTensor, Kern};
use anyhow::{bail, Context, Result};
use cellm_ir::ops::{BinaryOp, FusedElementwise, Instr, UnaryOp};
use cellm_ir::shape::broadcast_shapes;
use cellm_ir::DType;

/// Physical registers of the shader (`array<f32, 16>`).
const NREG: usize = 16;
/// Input slots (`//#bind x0..x5`).
const SLOTS: usize = 6;
const CODE_AT: usize = 60;
const CODE_WORDS: usize = 128 - CODE_AT;

fn opcode(ins: &Instr) -> Result<u32> {
    Ok(match *ins {
        Instr::Const(_) => 0,
        Instr::Unary { op, .. } => match op {
            UnaryOp::Neg => 1,
            UnaryOp::Abs => 2,
            UnaryOp::Sqrt => 3,
            UnaryOp::Reciprocal => 4,
            UnaryOp::Exp => 5,
            UnaryOp::Log => 6,
            UnaryOp::Sigmoid => 7,
            UnaryOp::Tanh => 8,
            UnaryOp::Erf => 9,
            UnaryOp::Relu => 10,
            UnaryOp::Cos => 11,
            UnaryOp::Sin => 12,
            other => bail!("{other:?} is not in the fused op set"),
        },
        Instr::Binary { op, .. } => match op {
            BinaryOp::Add => 16,
            BinaryOp::Sub => 17,
            BinaryOp::Mul => 18,
            BinaryOp::Div => 19,
            BinaryOp::Pow => 20,
            other => bail!("{other:?} is not in the fused op set"),
        },
    })
}

/// The encoded program and its output register, or why it does not fit.
pub fn pack(op: &FusedElementwise, n_inputs: usize) -> Result<(Vec<u32>, u32)> {
    op.validate(n_inputs)?;
    let n_virt = n_inputs + op.program.len();
    // Last instruction reading each virtual register (the output: never freed).
    let mut last = vec![usize::MAX; n_virt];
    for (j, ins) in op.program.iter().enumerate() {
        match *ins {
            Instr::Const(_) => {}
            Instr::Unary { x, .. } => last[x as usize] = j,
            Instr::Binary { a, b, .. } => {
                last[a as usize] = j;
                last[b as usize] = j;
            }
        }
    }
    last[n_virt - 1] = usize::MAX;
    let mut phys = vec![0u32; n_virt];
    let mut free: Vec<u32> = (n_inputs as u32..NREG as u32).rev().collect();
    for (k, p) in phys.iter_mut().enumerate().take(n_inputs) {
        *p = k as u32;
    }
    let mut code = Vec::new();
    for (j, ins) in op.program.iter().enumerate() {
        let (a, b) = match *ins {
            Instr::Const(_) => (0, 0),
            Instr::Unary { x, .. } => (x as usize, x as usize),
            Instr::Binary { a, b, .. } => (a as usize, b as usize),
        };
        let (pa, pb) = (phys[a], phys[b]);
        // The shader reads operands before writing, so dst may reuse them.
        if !matches!(ins, Instr::Const(_)) {
            for r in if a == b { vec![a] } else { vec![a, b] } {
                if last[r] == j {
                    free.push(phys[r]);
                }
            }
        }
        let dst = free
            .pop()
            .with_context(|| format!("program needs more than {NREG} live registers"))?;
        phys[n_inputs + j] = dst;
        code.push(opcode(ins)? | dst << 8 | pa << 16 | pb << 24);
        if let Instr::Const(c) = *ins {
            code.push(c.to_bits());
        }
    }
    if code.len() > CODE_WORDS {
        bail!(
            "program is {} words, the uniform block holds {CODE_WORDS}",
            code.len()
        );
    }
    Ok((code, phys[n_virt - 1]))
}

/// f32/f16 inputs of one dtype, rank ≤ 8, and a program that fits.
pub fn supported(op: &FusedElementwise, args: &Args) -> bool {
    let Some(Some(first)) = args.dev.first() else {
        return false;
    };
    let n = args.dev.len();
    matches!(first.dtype, DType::F32 | DType::F16)
        && args.dev.iter().all(|t| {
            t.as_ref()
                .is_some_and(|t| t.dtype == first.dtype && t.shape.len() <= 8)
        })
        && pack(op, n).is_ok()
}

pub fn encode(k: &mut Kern, op: &FusedElementwise, args: &Args) -> Result<Vec<DevTensor>> {
    let n_in = args.dev.len();
    let xs = (0..n_in)
        .map(|i| args.d(i, &format!("FusedElementwise input {i}")))
        .collect::<Result<Vec<_>>>()?;
    let dtype = xs[0].dtype;
    if !matches!(dtype, DType::F32 | DType::F16) || xs.iter().any(|x| x.dtype != dtype) {
        bail!("FusedElementwise: inputs must all be f32 or all f16");
    }
    let mut shape = xs[0].shape.clone();
    for x in &xs[1..] {
        shape = broadcast_shapes(&shape, &x.shape).context("FusedElementwise inputs")?;
    }
    let (code, out_reg) = pack(op, n_in).context("FusedElementwise")?;
    let out = k.alloc(dtype, shape.clone())?;
    let n = out.len();
    let mut p = vec![
        u32_of(n, "FusedElementwise")?,
        shape.len() as u32,
        n_in as u32 | out_reg << 8,
        code.len() as u32,
    ];
    p.extend(dims8(&shape, "FusedElementwise")?);
    for s in 0..SLOTS {
        match xs.get(s) {
            Some(x) => p.extend(dims8(
                &broadcast_strides(&x.shape, &shape)?,
                "FusedElementwise",
            )?),
            None => p.extend([0u32; 8]),
        }
    }
    p.extend(&code);
    // Unused slots rebind the input with the fewest chunks (never read).
    let spare = *xs
        .iter()
        .min_by_key(|x| x.layout().chunks)
        .context("FusedElementwise: no inputs")?;
    let mut ts: Vec<&DevTensor> = (0..SLOTS).map(|s| *xs.get(s).unwrap_or(&spare)).collect();
    ts.push(&out);
    k.dispatch_1d("fused_elementwise", &p, &ts, n)?;
    Ok(vec![out])
}
