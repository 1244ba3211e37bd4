//! FusedElementwise: a chain of float elementwise ops as one op, a small
//! straight-line program over registers. Registers `0..n_inputs` hold the
//! inputs (broadcast numpy-style to the output shape); instruction `j` writes
//! register `n_inputs + j`; the output is the last register. Values are
//! computed in f32 and rounded once to the output dtype (the inputs' dtype,
//! f32 or f16). Produced by the fusion pass
//! `cellm_opt::passes::elementwise_chain`; not an ONNX op.

use super::{need, BinaryOp, Fact, UnaryOp};
use crate::{DType, Tensor};

/// Most tensor inputs (with the output, within a kernel's 8 bindings).
pub const MAX_INPUTS: usize = 6;
/// Most instructions (so a program fits a device kernel's uniform block).
pub const MAX_INSTRS: usize = 32;

/// One instruction; operands name earlier registers.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Instr {
    /// An immediate scalar.
    Const(f32),
    Unary {
        op: UnaryOp,
        x: u16,
    },
    Binary {
        op: BinaryOp,
        a: u16,
        b: u16,
    },
}

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FusedElementwise {
    pub program: Vec<Instr>,
}

impl FusedElementwise {
    /// Unary ops a program may hold.
    pub fn unary_ok(op: UnaryOp) -> bool {
        use UnaryOp::*;
        matches!(
            op,
            Neg | Abs | Sqrt | Reciprocal | Exp | Log | Sigmoid | Tanh | Erf | Relu | Cos | Sin
        )
    }

    /// Binary ops a program may hold.
    pub fn binary_ok(op: BinaryOp) -> bool {
        use BinaryOp::*;
        matches!(op, Add | Sub | Mul | Div | Pow)
    }

    /// Checks the program against `n_inputs` inputs: sizes, the op set, and
    /// that every operand names an earlier register.
    pub fn validate(&self, n_inputs: usize) -> anyhow::Result<()> {
        if n_inputs == 0 || n_inputs > MAX_INPUTS {
            anyhow::bail!("takes 1 to {MAX_INPUTS} inputs, got {n_inputs}");
        }
        if self.program.is_empty() || self.program.len() > MAX_INSTRS {
            anyhow::bail!(
                "program must have 1 to {MAX_INSTRS} instructions, has {}",
                self.program.len()
            );
        }
        for (j, ins) in self.program.iter().enumerate() {
            let regs = n_inputs + j;
            let check = |r: u16| {
                if (r as usize) < regs {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!(
                        "instruction {j} reads register {r}, only {regs} are defined"
                    ))
                }
            };
            match *ins {
                Instr::Const(_) => {}
                Instr::Unary { op, x } => {
                    if !Self::unary_ok(op) {
                        anyhow::bail!("instruction {j}: {op:?} is not in the fused op set");
                    }
                    check(x)?;
                }
                Instr::Binary { op, a, b } => {
                    if !Self::binary_ok(op) {
                        anyhow::bail!("instruction {j}: {op:?} is not in the fused op set");
                    }
                    check(a)?;
                    check(b)?;
                }
            }
        }
        Ok(())
    }

    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        _consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        self.validate(inputs.len())?;
        let first = need(inputs, 0)?;
        if !matches!(first.dtype, DType::F32 | DType::F16) {
            anyhow::bail!("inputs must be f32 or f16, got {}", first.dtype);
        }
        let mut shape = first.shape.clone();
        for i in 1..inputs.len() {
            let f = need(inputs, i)?;
            if f.dtype != first.dtype {
                anyhow::bail!("input {i} is {} but input 0 is {}", f.dtype, first.dtype);
            }
            shape = match (&shape, &f.shape) {
                (Some(a), Some(b)) => Some(crate::shape::broadcast_sym(a, b)?),
                _ => None,
            };
        }
        Ok(vec![Fact {
            dtype: first.dtype,
            shape,
        }])
    }
}
