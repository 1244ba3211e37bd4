//! Transpose: attribute `perm`, default: the axes reversed.

use super::{check_inputs, check_outputs, ImportCtx};
use crate::{attr, proto::NodeProto};
use anyhow::{bail, Result};
use cellm_ir::ops::Transpose;
use cellm_ir::Op;

pub fn import(node: &NodeProto, _ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 1, 1)?;
    check_outputs(node, 1)?;
    let perm = attr::usizes(node, "perm")?;
    if let Some(p) = &perm {
        let mut seen = vec![false; p.len()];
        for &a in p {
            if a >= p.len() || std::mem::replace(&mut seen[a], true) {
                bail!("attribute 'perm' = {p:?} is not a permutation");
            }
        }
    }
    Ok(Op::Transpose(Transpose { perm }))
}
