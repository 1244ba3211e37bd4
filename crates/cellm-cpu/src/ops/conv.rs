//! CPU kernel for Conv: N-d (N >= 1) NCHW convolution with groups, strides,
//! dilations, explicit or automatic padding and optional bias. Lowered to
//! im2col + one GEMM per (image, group). f16 is computed in f32 and rounded once.

use super::common::{f32_to_tensor, f32_values, input, opt_input};
use super::mat_mul::sgemm_strided;
use anyhow::{bail, Context, Result};
use cellm_ir::ops::{AutoPad, Conv};
use cellm_ir::{DType, Tensor};

pub fn run(op: &Conv, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let x = input(inputs, 0).context("Conv input X")?;
    let w = input(inputs, 1).context("Conv input W")?;
    let bias = opt_input(inputs, 2);
    if !matches!(x.dtype(), DType::F32 | DType::F16) {
        bail!("Conv: unsupported dtype {}", x.dtype());
    }
    if w.dtype() != x.dtype() || bias.is_some_and(|b| b.dtype() != x.dtype()) {
        bail!("Conv: X, W and B must share a dtype (X is {})", x.dtype());
    }
    let geo = Geometry::new(op, x.shape(), w.shape()).context("Conv")?;
    let bias_v = match bias {
        Some(b) => {
            if b.len() != geo.m {
                bail!("Conv: bias has {} values, expected {}", b.len(), geo.m);
            }
            Some(f32_values(b, "Conv bias")?)
        }
        None => None,
    };
    let xv = f32_values(x, "Conv X")?;
    let wv = f32_values(w, "Conv W")?;
    let y = geo.run(&xv, &wv, bias_v.as_deref());
    Ok(vec![f32_to_tensor(x.dtype(), geo.out_shape(), y)?])
}

/// Resolved shapes of one convolution.
struct Geometry {
    n: usize,
    c: usize,
    m: usize,
    group: usize,
    in_sp: Vec<usize>,
    kernel: Vec<usize>,
    out_sp: Vec<usize>,
    strides: Vec<usize>,
    dilations: Vec<usize>,
    pad_begin: Vec<usize>,
}

impl Geometry {
    fn new(op: &Conv, x: &[usize], w: &[usize]) -> Result<Geometry> {
        if x.len() < 3 {
            bail!("X must be [N, C, spatial...], got {x:?}");
        }
        if w.len() != x.len() {
            bail!("W {w:?} must have the rank of X {x:?}");
        }
        let nd = x.len() - 2;
        let group = op.group.max(1);
        let (n, c, m, cg) = (x[0], x[1], w[0], w[1]);
        if c != cg * group || m % group != 0 {
            bail!("channels do not fit group {group}: X {x:?}, W {w:?}");
        }
        let kernel = w[2..].to_vec();
        if let Some(ks) = &op.kernel_shape {
            if *ks != kernel {
                bail!("kernel_shape {ks:?} differs from W's spatial dims {kernel:?}");
            }
        }
        let per_dim = |v: &[usize], name: &str| -> Result<Vec<usize>> {
            match v.len() {
                0 => Ok(vec![1; nd]),
                l if l == nd => Ok(v.to_vec()),
                l => bail!("{name} has {l} values for {nd} spatial dims"),
            }
        };
        let strides = per_dim(&op.strides, "strides")?;
        let dilations = per_dim(&op.dilations, "dilations")?;
        if strides.contains(&0) || dilations.contains(&0) {
            bail!("strides {strides:?} and dilations {dilations:?} must be positive");
        }
        let in_sp = x[2..].to_vec();
        let span = |d: usize| dilations[d] * (kernel[d].max(1) - 1) + 1;
        let (pad_begin, pad_end) = match op.auto_pad {
            AutoPad::NotSet => match op.pads.len() {
                0 => (vec![0; nd], vec![0; nd]),
                l if l == 2 * nd => (op.pads[..nd].to_vec(), op.pads[nd..].to_vec()),
                l => bail!("pads has {l} values for {nd} spatial dims"),
            },
            AutoPad::Valid => (vec![0; nd], vec![0; nd]),
            AutoPad::SameUpper | AutoPad::SameLower => {
                // Output = ceil(in / stride); the odd pad goes at the end (UPPER) or begin (LOWER).
                let mut b = vec![0; nd];
                let mut e = vec![0; nd];
                for d in 0..nd {
                    let out = in_sp[d].div_ceil(strides[d]);
                    let total = ((out.max(1) - 1) * strides[d] + span(d)).saturating_sub(in_sp[d]);
                    let small = total / 2;
                    if op.auto_pad == AutoPad::SameUpper {
                        (b[d], e[d]) = (small, total - small);
                    } else {
                        (b[d], e[d]) = (total - small, small);
                    }
                }
                (b, e)
            }
        };
        let mut out_sp = Vec::with_capacity(nd);
        for d in 0..nd {
            let padded = in_sp[d] + pad_begin[d] + pad_end[d];
            if padded < span(d) {
                bail!("kernel {kernel:?} (dilations {dilations:?}) exceeds padded input {x:?}");
            }
            out_sp.push((padded - span(d)) / strides[d] + 1);
        }
        Ok(Geometry {
            n,
            c,
            m,
            group,
            in_sp,
            kernel,
            out_sp,
            strides,
            dilations,
            pad_begin,
        })
    }

    fn out_shape(&self) -> Vec<usize> {
        let mut s = vec![self.n, self.m];
        s.extend(&self.out_sp);
        s
    }

    fn run(&self, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
        let cg = self.c / self.group;
        let mg = self.m / self.group;
        let kprod: usize = self.kernel.iter().product();
        let in_prod: usize = self.in_sp.iter().product();
        let out_prod: usize = self.out_sp.iter().product();
        let rows = cg * kprod;
        let mut y = vec![0f32; self.n * self.m * out_prod];
        let mut cols = vec![0f32; rows * out_prod];
        for img in 0..self.n {
            for g in 0..self.group {
                let x_g =
                    &x[(img * self.c + g * cg) * in_prod..(img * self.c + (g + 1) * cg) * in_prod];
                self.im2col(x_g, cg, &mut cols);
                let w_g = &w[g * mg * rows..(g + 1) * mg * rows];
                let y_g = &mut y
                    [(img * self.m + g * mg) * out_prod..(img * self.m + (g + 1) * mg) * out_prod];
                sgemm_strided(
                    mg,
                    rows,
                    out_prod,
                    1.0,
                    w_g,
                    (rows, 1),
                    &cols,
                    (out_prod, 1),
                    0.0,
                    y_g,
                    (out_prod, 1),
                );
            }
        }
        if let Some(bias) = bias {
            for (i, plane) in y.chunks_exact_mut(out_prod.max(1)).enumerate() {
                let b = bias[i % self.m];
                plane.iter_mut().for_each(|v| *v += b);
            }
        }
        y
    }

    /// cols[(ch, kernel pos), out pos] = padded input sample seen by that kernel tap.
    fn im2col(&self, x: &[f32], channels: usize, cols: &mut [f32]) {
        let nd = self.in_sp.len();
        let kprod: usize = self.kernel.iter().product();
        let in_prod: usize = self.in_sp.iter().product();
        let out_prod: usize = self.out_sp.iter().product();
        let in_strides = cellm_ir::shape::strides(&self.in_sp);
        let last = nd - 1;
        let (ol, sl, dl, pl, il) = (
            self.out_sp[last],
            self.strides[last],
            self.dilations[last],
            self.pad_begin[last],
            self.in_sp[last],
        );
        let mut kidx = vec![0usize; nd];
        for kp in 0..kprod {
            // kidx = multi-index of kernel position kp.
            let mut rem = kp;
            for d in (0..nd).rev() {
                kidx[d] = rem % self.kernel[d];
                rem /= self.kernel[d];
            }
            for ch in 0..channels {
                let x_ch = &x[ch * in_prod..(ch + 1) * in_prod];
                let row = &mut cols[(ch * kprod + kp) * out_prod..(ch * kprod + kp + 1) * out_prod];
                // Walk output positions: outer dims by counter, last dim innermost.
                let outer: usize = out_prod / ol.max(1);
                let mut oidx = vec![0usize; nd.saturating_sub(1)];
                for o in 0..outer {
                    let dst = &mut row[o * ol..(o + 1) * ol];
                    // Input offset of the outer dims, or None when padding.
                    let mut base = Some(0usize);
                    for d in 0..last {
                        let pos = (oidx[d] * self.strides[d] + kidx[d] * self.dilations[d])
                            as isize
                            - self.pad_begin[d] as isize;
                        if pos < 0 || pos as usize >= self.in_sp[d] {
                            base = None;
                            break;
                        }
                        base = base.map(|b| b + pos as usize * in_strides[d]);
                    }
                    match base {
                        None => dst.fill(0.0),
                        Some(base) => {
                            let k_off = (kidx[last] * dl) as isize - pl as isize;
                            for (j, v) in dst.iter_mut().enumerate() {
                                let pos = (j * sl) as isize + k_off;
                                *v = if pos >= 0 && (pos as usize) < il {
                                    x_ch[base + pos as usize]
                                } else {
                                    0.0
                                };
                            }
                        }
                    }
                    for d in (0..last).rev() {
                        oidx[d] += 1;
                        if oidx[d] < self.out_sp[d] {
                            break;
                        }
                        oidx[d] = 0;
                    }
                }
            }
        }
    }
}
