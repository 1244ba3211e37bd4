//! com.microsoft MatMulBnb4: required `K`, `N`, `block_size`, `quant_type`
//! (0 = FP4, 1 = NF4). Inputs: A, B (packed codes), absmax.

use super::{check_inputs, check_outputs, ImportCtx};
use crate::{attr, proto::NodeProto};
use anyhow::{anyhow, bail, Result};
use cellm_ir::ops::{Bnb4Type, MatMulBnb4};
use cellm_ir::Op;

pub fn import(node: &NodeProto, _ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 3, 3)?;
    check_outputs(node, 1)?;
    let required = |name: &str| -> Result<i64> {
        attr::int(node, name)?.ok_or_else(|| anyhow!("attribute '{name}' is required"))
    };
    let positive = |name: &str| -> Result<usize> {
        let v = required(name)?;
        usize::try_from(v)
            .ok()
            .filter(|&x| x > 0)
            .ok_or_else(|| anyhow!("attribute '{name}' = {v} must be > 0"))
    };
    let quant_type = match required("quant_type")? {
        0 => Bnb4Type::Fp4,
        1 => Bnb4Type::Nf4,
        other => bail!("attribute 'quant_type' = {other} must be 0 (FP4) or 1 (NF4)"),
    };
    Ok(Op::MatMulBnb4(MatMulBnb4 {
        k: positive("K")?,
        n: positive("N")?,
        block_size: positive("block_size")?,
        quant_type,
    }))
}
