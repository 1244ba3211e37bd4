//! ConvInteger, 2-D direct (`shaders/conv_integer.wgsl`): u8/i8 input and
//! weight stay byte-stored, products accumulate in i32.

use super::{u32_of, Args};
use crate::kernel::{DevTensor, Kern};
use anyhow::{bail, Result};
use cellm_ir::ops::{AutoPad, ConvInteger};
use cellm_ir::DType;

fn is8(t: Option<&DevTensor>) -> bool {
    t.is_some_and(|t| matches!(t.dtype, DType::U8 | DType::I8))
}

pub fn supported(args: &Args) -> bool {
    is8(args.od(0))
        && is8(args.od(1))
        && args.od(0).is_some_and(|x| x.shape.len() == 4)
        && args.od(1).is_some_and(|w| w.shape.len() == 4)
}

pub fn encode(k: &mut Kern, op: &ConvInteger, args: &Args) -> Result<Vec<DevTensor>> {
    let x = args.d(0, "ConvInteger X")?;
    let w = args.d(1, "ConvInteger W")?;
    let xzp = args.od(2);
    let wzp = args.od(3);
    let conv = &op.conv;
    let (xs, ws) = (&x.shape, &w.shape);
    if xs.len() != 4 || ws.len() != 4 {
        bail!("ConvInteger: only 2-D convolution runs on the GPU (X {xs:?}, W {ws:?})");
    }
    let g = conv.group.max(1);
    let (nb, cin, h, wd) = (xs[0], xs[1], xs[2], xs[3]);
    let (cout, cpg, kh, kw) = (ws[0], ws[1], ws[2], ws[3]);
    if cin != cpg * g || cout % g != 0 {
        bail!("ConvInteger: X {xs:?} / W {ws:?} do not match group {g}");
    }
    if let Some(kshape) = &conv.kernel_shape {
        if kshape[..] != [kh, kw] {
            bail!("ConvInteger: kernel_shape {kshape:?} does not match W {ws:?}");
        }
    }
    for (z, t, what) in [(xzp, x, "x_zero_point"), (wzp, w, "w_zero_point")] {
        if let Some(z) = z {
            if z.dtype != t.dtype {
                bail!(
                    "ConvInteger: {what} is {} but the operand is {}",
                    z.dtype,
                    t.dtype
                );
            }
        }
    }
    if xzp.is_some_and(|z| z.len() != 1) {
        bail!("ConvInteger: x_zero_point must be a single value");
    }
    let wz_mode = match wzp {
        None => 0,
        Some(z) if z.len() == 1 => 1,
        Some(z) if z.len() == cout => 2,
        Some(z) => bail!(
            "ConvInteger: w_zero_point has {} values, expected 1 or {cout}",
            z.len()
        ),
    };
    let get = |v: &[usize], i: usize, d: usize| v.get(i).copied().unwrap_or(d);
    let (sh, sw) = (get(&conv.strides, 0, 1), get(&conv.strides, 1, 1));
    let (dh, dw) = (get(&conv.dilations, 0, 1), get(&conv.dilations, 1, 1));
    if sh == 0 || sw == 0 || dh == 0 || dw == 0 || kh == 0 || kw == 0 {
        bail!("ConvInteger: strides, dilations and kernel dims must be positive");
    }
    let ekh = (kh - 1) * dh + 1;
    let ekw = (kw - 1) * dw + 1;
    let (pt, pl, pb, pr) = match conv.auto_pad {
        AutoPad::NotSet => (
            get(&conv.pads, 0, 0),
            get(&conv.pads, 1, 0),
            get(&conv.pads, 2, 0),
            get(&conv.pads, 3, 0),
        ),
        AutoPad::Valid => (0, 0, 0, 0),
        AutoPad::SameUpper | AutoPad::SameLower => {
            let total = |n: usize, s: usize, e: usize| (n.div_ceil(s).max(1) - 1) * s + e;
            let th = total(h, sh, ekh).saturating_sub(h);
            let tw = total(wd, sw, ekw).saturating_sub(wd);
            if conv.auto_pad == AutoPad::SameUpper {
                (th / 2, tw / 2, th - th / 2, tw - tw / 2)
            } else {
                (th - th / 2, tw - tw / 2, th / 2, tw / 2)
            }
        }
    };
    if h + pt + pb < ekh || wd + pl + pr < ekw {
        bail!("ConvInteger: kernel {ws:?} is larger than the padded input {xs:?}");
    }
    let oh = (h + pt + pb - ekh) / sh + 1;
    let ow = (wd + pl + pr - ekw) / sw + 1;
    let out = k.alloc(DType::I32, vec![nb, cout, oh, ow])?;
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
        usize::from(xzp.is_some()),
        wz_mode,
    ]
    .iter()
    .map(|&v| u32_of(v, "ConvInteger"))
    .collect::<Result<Vec<_>>>()?;
    // Absent zero points bind read-only stand-ins the kernel never reads.
    k.dispatch_1d(
        "conv_integer",
        &p,
        &[x, w, xzp.unwrap_or(x), wzp.unwrap_or(w), &out],
        n,
    )?;
    Ok(vec![out])
}
