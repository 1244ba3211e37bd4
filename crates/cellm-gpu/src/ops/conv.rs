//! 2-D Conv, direct (`shaders/conv.wgsl`).

use super::{need_float, u32_of, Args};
use crate::kernel::{DevTensor, Kern};
use anyhow::{bail, Result};
use cellm_ir::ops::{AutoPad, Conv};

pub fn encode(k: &mut Kern, op: &Conv, args: &Args) -> Result<Vec<DevTensor>> {
    let x = args.d(0, "Conv X")?;
    let w = args.d(1, "Conv W")?;
    let bias = args.od(2);
    need_float(x, "Conv X")?;
    let (xs, ws) = (&x.shape, &w.shape);
    if xs.len() != 4 || ws.len() != 4 {
        bail!("Conv: only 2-D convolution runs on the GPU (X {xs:?}, W {ws:?})");
    }
    let g = op.group.max(1);
    let (nb, cin, h, wd) = (xs[0], xs[1], xs[2], xs[3]);
    let (cout, cpg, kh, kw) = (ws[0], ws[1], ws[2], ws[3]);
    if cin != cpg * g || cout % g != 0 {
        bail!("Conv: X {xs:?} / W {ws:?} do not match group {g}");
    }
    if let Some(kshape) = &op.kernel_shape {
        if kshape[..] != [kh, kw] {
            bail!("Conv: kernel_shape {kshape:?} does not match W {ws:?}");
        }
    }
    let get = |v: &[usize], i: usize, d: usize| v.get(i).copied().unwrap_or(d);
    let (sh, sw) = (get(&op.strides, 0, 1), get(&op.strides, 1, 1));
    let (dh, dw) = (get(&op.dilations, 0, 1), get(&op.dilations, 1, 1));
    let ekh = (kh - 1) * dh + 1;
    let ekw = (kw - 1) * dw + 1;
    let (pt, pl, pb, pr) = match op.auto_pad {
        AutoPad::NotSet => (
            get(&op.pads, 0, 0),
            get(&op.pads, 1, 0),
            get(&op.pads, 2, 0),
            get(&op.pads, 3, 0),
        ),
        AutoPad::Valid => (0, 0, 0, 0),
        AutoPad::SameUpper | AutoPad::SameLower => {
            let total = |n: usize, s: usize, e: usize| (n.div_ceil(s) - 1) * s + e;
            let th = total(h, sh, ekh).saturating_sub(h);
            let tw = total(wd, sw, ekw).saturating_sub(wd);
            if op.auto_pad == AutoPad::SameUpper {
                (th / 2, tw / 2, th - th / 2, tw - tw / 2)
            } else {
                (th - th / 2, tw - tw / 2, th / 2, tw / 2)
            }
        }
    };
    if h + pt + pb < ekh || wd + pl + pr < ekw {
        bail!("Conv: kernel {ws:?} is larger than the padded input {xs:?}");
    }
    let oh = (h + pt + pb - ekh) / sh + 1;
    let ow = (wd + pl + pr - ekw) / sw + 1;
    let out = k.alloc(x.dtype, vec![nb, cout, oh, ow])?;
    let n = out.len();
    let p = [
        n,
        cin,
        h,
        wd,
        cout,
        oh,
        ow,
        kh,
        kw,
        sh,
        sw,
        pt,
        pl,
        dh,
        dw,
        g,
        usize::from(bias.is_some()),
    ]
    .iter()
    .map(|&v| u32_of(v, "Conv"))
    .collect::<Result<Vec<_>>>()?;
    let bias_buf = bias.unwrap_or(w);
    k.dispatch_1d("conv", &p, &[x, w, bias_buf, &out], n)?;
    Ok(vec![out])
}
