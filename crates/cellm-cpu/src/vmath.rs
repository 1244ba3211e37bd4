//! Vectorisable f32 math over slices: branch-free polynomial `exp`, `tanh`,
//! `erf`, and the loops of the hot kernels (softmax lanes, GELU, SiLU·gate,
//! norm rows). Each public slice function is compiled twice, once for
//! the baseline target and once with AVX2+FMA, and picks at run time (the
//! workspace builds for baseline x86-64, whose SSE2 would give half the lanes).
//!
//! Accuracy (against libm, f32): `exp` ≤ 2 ulp; `tanh` ≤ 3 ulp; `erf` ≤ 2e-7
//! absolute. The kernels using them are tested against the primitive kernels
//! within 1e-5 relative.

/// Defines `pub fn $name(args)` that runs `$body` compiled with AVX2+FMA when
/// the CPU has them, and compiled for the baseline target otherwise. The
/// body sees a const `FMA` to pass on to the `*_k` math functions.
macro_rules! multiversion {
    ($(#[$m:meta])* pub fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        pub fn $name($($arg: $ty),*) $(-> $ret)? {
            // `FMA`: whether `mad` may fuse (only where the CPU has FMA; a
            // software fma would be far slower than a separate mul and add).
            #[inline(always)]
            fn generic<const FMA: bool>($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    generic::<true>($($arg),*)
                }
                if has_avx2() {
                    // SAFETY: the CPU supports AVX2 and FMA (checked at run time).
                    return unsafe { avx2($($arg),*) };
                }
            }
            generic::<false>($($arg),*)
        }
    };
}

/// Whether the running CPU has AVX2 and FMA (cached by std).
#[cfg(target_arch = "x86_64")]
#[inline]
pub fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// Lanes the accumulating loops keep apart (one AVX2 register).
const LANES: usize = 8;

/// a·b + c, fused when `F` (one rounding, and one instruction with FMA).
#[inline(always)]
fn mad<const F: bool>(a: f32, b: f32, c: f32) -> f32 {
    if F {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// e^x for f32: Cephes' range reduction and degree-6 polynomial; x < -87
/// gives 0 (true results there are denormal), x > 88 gives e^88.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    exp_k::<false>(x)
}

/// [`exp`], with fused multiply-adds when `F`.
#[inline(always)]
pub fn exp_k<const F: bool>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that n·LN2_HI is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5·2^23 rounds to an integer held in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    let xc = x.clamp(-87.0, 88.0);
    let t = mad::<F>(xc, LOG2E, MAGIC);
    let n = t - MAGIC;
    let r = mad::<F>(-n, LN2_LO, mad::<F>(-n, LN2_HI, xc));
    let mut p = 1.987_569_1e-4f32;
    p = mad::<F>(p, r, 1.398_199_9e-3);
    p = mad::<F>(p, r, 8.333_452e-3);
    p = mad::<F>(p, r, 4.166_579_6e-2);
    p = mad::<F>(p, r, 1.666_666_5e-1);
    p = mad::<F>(p, r, 5e-1);
    let y = mad::<F>(p * r, r, r + 1.0);
    let n_int = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    let scale = f32::from_bits((n_int.wrapping_add(127) as u32) << 23);
    if x < -87.0 {
        0.0
    } else {
        y * scale
    }
}

/// 1 / (1 + e^-x).
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// tanh for f32: Cephes' odd polynomial for |x| < 0.625, 1 - 2/(e^2|x| + 1)
/// beyond (both computed, one selected, so the loop stays branch-free).
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let a = x.abs();
    let z = x * x;
    let mut p = -5.704_988_7e-3f32;
    p = p * z + 2.063_909e-2;
    p = p * z - 5.373_971_6e-2;
    p = p * z + 1.333_144_2e-1;
    p = p * z - 3.333_328e-1;
    let small = p * z * x + x;
    let big = (1.0 - 2.0 / (exp(2.0 * a) + 1.0)).copysign(x);
    if a < 0.625 {
        small
    } else {
        big
    }
}

/// erf for f32: Maclaurin series through x^23 for |x| < 1 (keeps relative
/// accuracy near 0), Abramowitz–Stegun 7.1.26 beyond (|error| < 1.5e-7).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let (near, far) = erf_parts::<false>(x);
    if x.abs() < 1.0 {
        near
    } else {
        far
    }
}

/// 1 + erf(x) without the cancellation of adding 1 to erf(x) ≈ -1.
#[inline(always)]
fn one_plus_erf<const F: bool>(x: f32) -> f32 {
    let (near, _) = erf_parts::<F>(x);
    let a = x.abs();
    let q = erfc_tail::<F>(a);
    let far = if x < 0.0 { q } else { 2.0 - q };
    if a < 1.0 {
        1.0 + near
    } else {
        far
    }
}

/// (series value, tail value) of erf(x).
#[inline(always)]
fn erf_parts<const F: bool>(x: f32) -> (f32, f32) {
    // 2/√π · (-1)^n / (n! (2n+1)) for n = 0..11.
    const C: [f32; 12] = [
        std::f32::consts::FRAC_2_SQRT_PI,
        -0.376_126_4,
        0.112_837_92,
        -2.686_617e-2,
        5.223_977_6e-3,
        -8.548_327e-4,
        1.205_533_3e-4,
        -1.492_565e-5,
        1.646_211_4e-6,
        -1.636_584_8e-7,
        1.480_719_3e-8,
        -1.229_055_5e-9,
    ];
    let z = x * x;
    let mut p = C[11];
    for &c in C[..11].iter().rev() {
        p = mad::<F>(p, z, c);
    }
    let near = p * x;
    let far = (1.0 - erfc_tail::<F>(x.abs())).copysign(x);
    (near, far)
}

/// erfc(a) for a ≥ 0 by Abramowitz–Stegun 7.1.26.
#[inline(always)]
fn erfc_tail<const F: bool>(a: f32) -> f32 {
    let t = 1.0 / mad::<F>(0.327_591_1, a, 1.0);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152 + t * 1.061_405_4))));
    poly * exp_k::<F>(-a * a)
}

/// √(2/π), the tanh-GELU input scale.
pub const GELU_TANH_SCALE: f32 = 0.797_884_6;
/// The cubic coefficient of the tanh-GELU.
pub const GELU_TANH_CUBIC: f32 = 0.044_715;

/// tanh-GELU, written as x·sigmoid(2u) (= 0.5·x·(1 + tanh u)), which has no
/// cancellation for negative x.
#[inline(always)]
pub fn gelu_tanh<const F: bool>(x: f32) -> f32 {
    let u = GELU_TANH_SCALE * mad::<F>(GELU_TANH_CUBIC * x * x, x, x);
    x / (1.0 + exp_k::<F>(-2.0 * u))
}

/// Exact GELU: 0.5·x·(1 + erf(x/√2)).
#[inline(always)]
pub fn gelu_erf<const F: bool>(x: f32) -> f32 {
    0.5 * x * one_plus_erf::<F>(x * std::f32::consts::FRAC_1_SQRT_2)
}

multiversion! {
    /// y = tanh-GELU(x), elementwise (`y.len() == x.len()`).
    pub fn gelu_tanh_slice(x: &[f32], y: &mut [f32]) {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = gelu_tanh::<FMA>(v);
        }
    }
}

multiversion! {
    /// y = GELU(x) (erf form), elementwise.
    pub fn gelu_erf_slice(x: &[f32], y: &mut [f32]) {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = gelu_erf::<FMA>(v);
        }
    }
}

multiversion! {
    /// y = gate·sigmoid(gate)·up, elementwise.
    pub fn silu_mul_slice(gate: &[f32], up: &[f32], y: &mut [f32]) {
        for ((o, &g), &u) in y.iter_mut().zip(gate).zip(up) {
            *o = g * u / (1.0 + exp_k::<FMA>(-g));
        }
    }
}

multiversion! {
    /// Largest element (−∞ for an empty slice; NaN elements are skipped, as
    /// `f32::max` does).
    pub fn max_slice(x: &[f32]) -> f32 {
        let mut acc = [f32::NEG_INFINITY; LANES];
        let mut chunks = x.chunks_exact(LANES);
        for c in &mut chunks {
            for l in 0..LANES {
                acc[l] = acc[l].max(c[l]);
            }
        }
        let mut m = chunks.remainder().iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        for a in acc {
            m = m.max(a);
        }
        m
    }
}

multiversion! {
    /// x ← e^(x − sub) in place; returns the sum of the new values. Two
    /// loops (a plain map, then a lane-split sum): the map vectorises where
    /// one fused loop did not (callers pass rows that stay in cache).
    pub fn exp_sub_sum(x: &mut [f32], sub: f32) -> f32 {
        for v in x.iter_mut() {
            *v = exp_k::<FMA>(*v - sub);
        }
        let mut acc = [0f32; LANES];
        let mut chunks = x.chunks_exact(LANES);
        for c in &mut chunks {
            for l in 0..LANES {
                acc[l] += c[l];
            }
        }
        chunks.remainder().iter().sum::<f32>() + acc.iter().sum::<f32>()
    }
}

multiversion! {
    /// x ← x · s.
    pub fn scale_slice(x: &mut [f32], s: f32) {
        for v in x {
            *v *= s;
        }
    }
}

multiversion! {
    /// Σ x (f64 accumulation in independent lanes).
    pub fn sum_f64(x: &[f32]) -> f64 {
        let mut acc = [0f64; LANES];
        let mut chunks = x.chunks_exact(LANES);
        for c in &mut chunks {
            for l in 0..LANES {
                acc[l] += c[l] as f64;
            }
        }
        chunks.remainder().iter().map(|&v| v as f64).sum::<f64>() + acc.iter().sum::<f64>()
    }
}

multiversion! {
    /// Σ (x − c)² (f64 accumulation in independent lanes).
    pub fn sum_sq_dev_f64(x: &[f32], c: f64) -> f64 {
        let mut acc = [0f64; LANES];
        let mut chunks = x.chunks_exact(LANES);
        for ch in &mut chunks {
            for l in 0..LANES {
                let d = ch[l] as f64 - c;
                acc[l] += d * d;
            }
        }
        let tail: f64 = chunks.remainder().iter().map(|&v| (v as f64 - c) * (v as f64 - c)).sum();
        tail + acc.iter().sum::<f64>()
    }
}

multiversion! {
    /// y = x · s · w (elementwise over x, w; one scalar s).
    pub fn scale_mul(x: &[f32], s: f32, w: &[f32], y: &mut [f32]) {
        for ((o, &v), &m) in y.iter_mut().zip(x).zip(w) {
            *o = v * s * m;
        }
    }
}

multiversion! {
    /// y = (x − mean) · inv · w (+ b), elementwise.
    pub fn normalize_affine(x: &[f32], mean: f32, inv: f32, w: &[f32], b: Option<&[f32]>, y: &mut [f32]) {
        match b {
            Some(b) => {
                for (((o, &v), &m), &c) in y.iter_mut().zip(x).zip(w).zip(b) {
                    *o = (v - mean) * inv * m + c;
                }
            }
            None => {
                for ((o, &v), &m) in y.iter_mut().zip(x).zip(w) {
                    *o = (v - mean) * inv * m;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relative (or, near zero, absolute) error against f64 references over a
    /// dense sweep of inputs; bounds are the documented accuracies with a
    /// small margin.
    fn sweep(lo: f32, hi: f32, f: impl Fn(&[f32], &mut [f32]), r: impl Fn(f64) -> f64, tol: f64) {
        let n = 200_001;
        let x: Vec<f32> = (0..n)
            .map(|i| lo + (hi - lo) * i as f32 / (n - 1) as f32)
            .collect();
        let mut y = vec![f32::NAN; n];
        f(&x, &mut y);
        for (&xv, &yv) in x.iter().zip(&y) {
            let want = r(xv as f64);
            let err = (yv as f64 - want).abs() / want.abs().max(1.0);
            assert!(err <= tol, "x = {xv}: got {yv}, want {want} (err {err:e})");
        }
    }

    #[test]
    fn exp_matches_f64() {
        sweep(
            -86.0,
            88.0,
            |x, y| {
                // The sum itself overflows here; only the values are checked.
                y.copy_from_slice(x);
                exp_sub_sum(y, 0.0);
            },
            |v| v.exp(),
            // Relative: results above 1 are checked relatively by `sweep`; below 1
            // absolutely, so also check relative error on a log scale below.
            3e-7,
        );
        for i in -860..=880 {
            let v = i as f32 / 10.0;
            let want = (v as f64).exp();
            let got = exp(v) as f64;
            assert!(
                ((got - want) / want).abs() < 3e-7,
                "exp({v}) = {got}, want {want}"
            );
        }
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn gelu_forms_match_f64() {
        let tanh_ref = |v: f64| {
            0.5 * v
                * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v.powi(3))).tanh())
        };
        // Erf reference through libm's f64 erf.
        let erf_ref = |v: f64| 0.5 * v * (1.0 + libm::erf(v / std::f64::consts::SQRT_2));
        sweep(-12.0, 12.0, gelu_tanh_slice, tanh_ref, 1e-6);
        sweep(-12.0, 12.0, gelu_erf_slice, erf_ref, 1e-6);
    }

    #[test]
    fn tanh_erf_sigmoid_match_f64() {
        for i in -4000..=4000 {
            let v = i as f32 / 400.0;
            let t = (v as f64).tanh();
            assert!(
                ((tanh(v) as f64) - t).abs() <= 4e-7 * t.abs().max(1e-30) + 1e-30,
                "tanh({v})"
            );
            let e = libm::erf(v as f64);
            assert!(((erf(v) as f64) - e).abs() <= 2e-7, "erf({v})");
            let s = 1.0 / (1.0 + (-(v as f64)).exp());
            assert!(((sigmoid(v) as f64) - s).abs() <= 3e-7 * s, "sigmoid({v})");
        }
    }
}
