//! DequantizeLinear / QuantizeLinear: `axis` default 1, `block_size` default 0
//! (opset 21), QuantizeLinear's `output_dtype` (opset 21) u8 by default and
//! `saturate` (float8 only, ignored for u8/i8). DynamicQuantizeLinear: none.

use super::{check_inputs, check_outputs, ImportCtx};
use crate::{attr, proto::NodeProto};
use anyhow::{anyhow, bail, Result};
use cellm_ir::ops::{DequantizeLinear, DynamicQuantizeLinear, QuantizeLinear};
use cellm_ir::{DType, Op};

pub fn import_dequantize(node: &NodeProto, _ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 2, 3)?;
    check_outputs(node, 1)?;
    Ok(Op::DequantizeLinear(DequantizeLinear {
        axis: attr::int_or(node, "axis", 1)?,
        block_size: attr::usize_or(node, "block_size", 0)?,
    }))
}

pub fn import_quantize(node: &NodeProto, _ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 2, 3)?;
    check_outputs(node, 1)?;
    let output_dtype = match attr::int(node, "output_dtype")? {
        None | Some(0) => DType::U8,
        Some(code) => {
            let dt = i32::try_from(code)
                .ok()
                .and_then(DType::from_onnx)
                .ok_or_else(|| anyhow!("attribute 'output_dtype' = {code} is not a known type"))?;
            if !matches!(dt, DType::U8 | DType::I8) {
                bail!("attribute 'output_dtype' = {dt} is not supported (u8 or i8)");
            }
            dt
        }
    };
    Ok(Op::QuantizeLinear(QuantizeLinear {
        axis: attr::int_or(node, "axis", 1)?,
        block_size: attr::usize_or(node, "block_size", 0)?,
        output_dtype,
    }))
}

pub fn import_dynamic(node: &NodeProto, _ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 1, 1)?;
    check_outputs(node, 3)?;
    Ok(Op::DynamicQuantizeLinear(DynamicQuantizeLinear))
}
