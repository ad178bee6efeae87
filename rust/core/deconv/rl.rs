//! Richardson-Lucy deconvolution of image stacks.
//!
//! Two boundary models:
//! - `Boundary::Zero`: scikit-image's `richardson_lucy` (constant 0.5 start,
//!   zero-padded 'same' convolutions, eps = 1e-12 added to the blurred
//!   estimate, no clipping), kept for comparison.
//! - `Boundary::Padded` (default): Bertero and Boccacci, A&A 437, 369 (2005).
//!   The object lives on the image grown by the PSF size minus one; the
//!   forward model keeps only the measured (and valid) pixels; the update is
//!   normalised by H^T applied to the mask of valid measured pixels, so the
//!   border is neither darkened nor ringing, and invalid pixels (dead, hot,
//!   saturated) are filled from their neighbours instead of smeared.
//!
//! Options of the padded model: Biggs-Andrews vector extrapolation (Biggs and
//! Andrews, Appl. Opt. 36, 1766, 1997) with the step clipped to [0, 1]; total
//! variation regularisation (Dey et al., Microsc. Res. Tech. 69, 260, 2006);
//! a stopping rule by the discrepancy principle with Poisson plus read noise
//! (stop when mean((y - Hx)^2 / (gain Hx + read_noise^2)) <= tau).
//!
//! PSF centre convention: element ((kh-1)/2, (kw-1)/2), as scipy's 'same'.

use std::sync::Mutex;

use ndarray::{ArrayView2, ArrayView3, ArrayViewMut3, Axis};
use rayon::prelude::*;

use super::conv::{fast_len, Grid, Scratch, Spectrum};
use crate::error::{CoreError, CoreResult};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Boundary {
    Zero,
    Padded,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Noise {
    /// Counts per detected photon (variance of a Poisson count in the
    /// image's units is gain * mean).
    pub gain: f32,
    /// Read noise standard deviation, in the image's units.
    pub read_noise: f32,
}

#[derive(Clone, Debug)]
pub struct RlOptions {
    pub iterations: usize,
    pub boundary: Boundary,
    pub accelerate: bool,
    /// TV weight lambda (0: off).
    pub tv: f32,
    pub noise: Option<Noise>,
    /// Discrepancy target (1.0: Morozov).
    pub tau: f32,
}

impl Default for RlOptions {
    fn default() -> Self {
        RlOptions {
            iterations: 30,
            boundary: Boundary::Padded,
            accelerate: true,
            tv: 0.0,
            noise: None,
            tau: 1.0,
        }
    }
}

/// What happened to one image.
#[derive(Clone, Debug, Default)]
pub struct RlReport {
    /// Iterations done (updates applied).
    pub iterations: usize,
    /// Discrepancy of each estimate whose blur was computed (empty without
    /// a noise model).
    pub discrepancy: Vec<f64>,
    /// Whether the discrepancy rule stopped the iterations.
    pub stopped: bool,
}

struct Geometry {
    h: usize,
    w: usize,
    /// Object grid (eh, ew) and offset of the measured image in it.
    eh: usize,
    ew: usize,
    oh: usize,
    ow: usize,
}

struct Work {
    s: Scratch,
    x: Vec<f32>,
    xprev: Vec<f32>,
    p: Vec<f32>,
    g1: Vec<f32>,
    g2: Vec<f32>,
    corr: Vec<f32>,
    blur: Vec<f32>,
    nx: Vec<f32>,
    ny: Vec<f32>,
}

struct Shared<'a> {
    geo: Geometry,
    grid: Grid,
    kf: Spectrum,
    ka: Spectrum,
    /// H^T(mask) when the mask is shared by all images (or absent).
    norm: Option<Vec<f32>>,
    opts: &'a RlOptions,
}

fn check_psf(psf: &ArrayView2<f32>) -> CoreResult<Vec<f32>> {
    let v = super::psf_values(psf)?;
    if v.iter().any(|&x| x < 0.0) {
        return Err(CoreError::parameter(
            "psf has negative values; Richardson-Lucy needs a non-negative PSF",
        ));
    }
    let sum: f64 = v.iter().map(|&x| x as f64).sum();
    if sum <= 0.0 {
        return Err(CoreError::parameter("psf sums to zero"));
    }
    Ok(v)
}

fn check_opts(o: &RlOptions) -> CoreResult<()> {
    if o.boundary == Boundary::Zero && (o.accelerate || o.tv != 0.0) {
        return Err(CoreError::parameter(
            "boundary='zero' (scikit-image's model) has no acceleration or TV; use boundary='padded'",
        ));
    }
    if !(o.tv.is_finite() && (0.0..0.5).contains(&o.tv)) {
        return Err(CoreError::parameter(format!(
            "tv weight must be in [0, 0.5), got {}",
            o.tv
        )));
    }
    if let Some(n) = o.noise {
        if !(n.gain.is_finite() && n.gain >= 0.0 && n.read_noise.is_finite() && n.read_noise >= 0.0)
            || (n.gain == 0.0 && n.read_noise == 0.0)
        {
            return Err(CoreError::parameter(
                "noise model needs gain >= 0 and read_noise >= 0, not both zero",
            ));
        }
        if !(o.tau.is_finite() && o.tau > 0.0) {
            return Err(CoreError::parameter(format!(
                "tau must be > 0, got {}",
                o.tau
            )));
        }
    }
    Ok(())
}

/// Richardson-Lucy on each image of `stack` (n, h, w) into `out`.
/// `mask`: (1, h, w) or (n, h, w), non-zero = valid; only with
/// `Boundary::Padded`.
pub fn richardson_lucy(
    stack: ArrayView3<f32>,
    psf: ArrayView2<f32>,
    mask: Option<ArrayView3<u8>>,
    mut out: ArrayViewMut3<f32>,
    opts: &RlOptions,
) -> CoreResult<Vec<RlReport>> {
    check_opts(opts)?;
    let (n, h, w) = stack.dim();
    if n == 0 || h == 0 || w == 0 {
        return Err(CoreError::shape(format!(
            "empty stack of shape ({n}, {h}, {w})"
        )));
    }
    if out.dim() != (n, h, w) {
        return Err(CoreError::shape(format!(
            "out has shape {:?}, stack ({n}, {h}, {w})",
            out.dim()
        )));
    }
    let k = check_psf(&psf)?;
    let (kh, kw) = psf.dim();
    if let Some(m) = &mask {
        if opts.boundary == Boundary::Zero {
            return Err(CoreError::parameter("a mask needs boundary='padded'"));
        }
        let (mn, mh, mw) = m.dim();
        if (mh, mw) != (h, w) || !(mn == 1 || mn == n) {
            return Err(CoreError::shape(format!(
                "mask has shape ({mn}, {mh}, {mw}); images are ({n}, {h}, {w})"
            )));
        }
    }
    let bad: usize = stack
        .axis_iter(Axis(0))
        .into_par_iter()
        .map(|im| im.iter().filter(|v| !v.is_finite()).count())
        .sum();
    if bad > 0 {
        return Err(CoreError::NonFinite {
            what: "images".into(),
            count: bad,
        });
    }

    let (ch, cw) = ((kh - 1) / 2, (kw - 1) / 2);
    let (geo, grid, kf, ka) = match opts.boundary {
        Boundary::Zero => {
            let grid = Grid::new(fast_len(h + kh - 1), fast_len(w + kw - 1))?;
            let kf = grid.place(&k, kh, kw, ch as isize, cw as isize, false)?;
            let ka = grid.place(&k, kh, kw, ch as isize, cw as isize, true)?;
            (
                Geometry {
                    h,
                    w,
                    eh: h,
                    ew: w,
                    oh: 0,
                    ow: 0,
                },
                grid,
                kf,
                ka,
            )
        }
        Boundary::Padded => {
            let (eh, ew) = (h + kh - 1, w + kw - 1);
            let grid = Grid::new(fast_len(eh), fast_len(ew))?;
            let kf = grid.place(&k, kh, kw, kh as isize - 1, kw as isize - 1, false)?;
            let ka = grid.place(&k, kh, kw, 0, 0, true)?;
            (
                Geometry {
                    h,
                    w,
                    eh,
                    ew,
                    oh: kh - 1 - ch,
                    ow: kw - 1 - cw,
                },
                grid,
                kf,
                ka,
            )
        }
    };
    let par_inner = n < rayon::current_num_threads();
    let mut sh = Shared {
        geo,
        grid,
        kf,
        ka,
        norm: None,
        opts,
    };
    let pool: Mutex<Vec<Work>> = Mutex::new(Vec::new());
    let take = |sh: &Shared| -> CoreResult<Work> {
        let got = pool
            .lock()
            .map_err(|_| CoreError::numerical("workspace pool poisoned"))?
            .pop();
        Ok(got.unwrap_or_else(|| new_work(sh)))
    };
    let give = |w: Work| {
        if let Ok(mut p) = pool.lock() {
            p.push(w);
        }
    };
    if opts.boundary == Boundary::Padded && mask.as_ref().is_none_or(|m| m.dim().0 == 1) {
        let mut wk = take(&sh)?;
        let m0 = mask.as_ref().map(|m| m.index_axis(Axis(0), 0));
        sh.norm = Some(adjoint_of_mask(&sh, m0.as_ref(), &mut wk, true));
        give(wk);
    }

    let run_one = |i: usize, mut o: ndarray::ArrayViewMut2<f32>| -> CoreResult<RlReport> {
        let mut wk = take(&sh)?;
        let y = stack.index_axis(Axis(0), i);
        let m = mask
            .as_ref()
            .map(|m| m.index_axis(Axis(0), if m.dim().0 == 1 { 0 } else { i }));
        let rep = one_image(&sh, y, m, &mut wk, par_inner);
        let g = &sh.geo;
        for (r, mut orow) in o.axis_iter_mut(Axis(0)).enumerate() {
            let src = &wk.x[(r + g.oh) * g.ew + g.ow..(r + g.oh) * g.ew + g.ow + g.w];
            for (d, &v) in orow.iter_mut().zip(src) {
                *d = v;
            }
        }
        give(wk);
        Ok(rep)
    };
    let reports: CoreResult<Vec<RlReport>> = if par_inner {
        out.axis_iter_mut(Axis(0))
            .enumerate()
            .map(|(i, o)| run_one(i, o))
            .collect()
    } else {
        out.axis_iter_mut(Axis(0))
            .into_par_iter()
            .enumerate()
            .map(|(i, o)| run_one(i, o))
            .collect()
    };
    reports
}

fn new_work(sh: &Shared) -> Work {
    let g = &sh.geo;
    let e = g.eh * g.ew;
    let m = g.h * g.w;
    let accel = sh.opts.accelerate;
    let tv = sh.opts.tv > 0.0;
    Work {
        s: sh.grid.scratch(),
        x: vec![0.0; e],
        xprev: if accel { vec![0.0; e] } else { Vec::new() },
        p: if accel { vec![0.0; e] } else { Vec::new() },
        g1: if accel { vec![0.0; e] } else { Vec::new() },
        g2: if accel { vec![0.0; e] } else { Vec::new() },
        corr: vec![0.0; e],
        blur: vec![0.0; m],
        nx: if tv { vec![0.0; e] } else { Vec::new() },
        ny: if tv { vec![0.0; e] } else { Vec::new() },
    }
}

/// H^T applied to the mask of valid measured pixels (all ones without one).
fn adjoint_of_mask(
    sh: &Shared,
    mask: Option<&ArrayView2<u8>>,
    wk: &mut Work,
    par: bool,
) -> Vec<f32> {
    let g = &sh.geo;
    let ones: Vec<f32> = match mask {
        None => vec![1.0; g.h * g.w],
        Some(m) => m.iter().map(|&v| (v != 0) as u8 as f32).collect(),
    };
    let mut norm = vec![0.0f32; g.eh * g.ew];
    sh.grid.convolve(
        &ones, g.h, g.w, &sh.ka, &mut norm, g.eh, g.ew, &mut wk.s, par,
    );
    // Rounding leaves values of order 1e-7 where the true value is zero.
    let thr = 1e-4 * norm.iter().copied().fold(0.0f32, f32::max);
    for v in norm.iter_mut() {
        if *v < thr {
            *v = 0.0;
        }
    }
    norm
}

/// Apply `f` to chunks of equal-length slices, in parallel or not.
fn each<F>(par: bool, len: usize, f: F)
where
    F: Fn(std::ops::Range<usize>) + Sync + Send,
{
    const CH: usize = 1 << 15;
    if par {
        (0..len.div_ceil(CH))
            .into_par_iter()
            .for_each(|c| f(c * CH..((c + 1) * CH).min(len)));
    } else {
        f(0..len);
    }
}

fn sum_chunks<F>(par: bool, len: usize, f: F) -> f64
where
    F: Fn(std::ops::Range<usize>) -> f64 + Sync + Send,
{
    const CH: usize = 1 << 15;
    if par {
        (0..len.div_ceil(CH))
            .into_par_iter()
            .map(|c| f(c * CH..((c + 1) * CH).min(len)))
            .sum()
    } else {
        f(0..len)
    }
}

fn sum2_chunks<F>(par: bool, len: usize, f: F) -> (f64, f64)
where
    F: Fn(std::ops::Range<usize>) -> (f64, f64) + Sync + Send,
{
    const CH: usize = 1 << 15;
    if par {
        (0..len.div_ceil(CH))
            .into_par_iter()
            .map(|c| f(c * CH..((c + 1) * CH).min(len)))
            .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1))
    } else {
        f(0..len)
    }
}

/// Raw pointer that may be shared across threads for writes to disjoint
/// ranges (each chunk of `each` touches only its own range).
#[derive(Clone, Copy)]
struct Ptr(*mut f32);
unsafe impl Send for Ptr {}
unsafe impl Sync for Ptr {}
impl Ptr {
    /// # Safety
    /// Callers write only to indices of their own disjoint range.
    #[inline(always)]
    unsafe fn slice<'a>(self, r: &std::ops::Range<usize>) -> &'a mut [f32] {
        std::slice::from_raw_parts_mut(self.0.add(r.start), r.len())
    }
}

fn one_image(
    sh: &Shared,
    y: ArrayView2<f32>,
    mask: Option<ArrayView2<u8>>,
    wk: &mut Work,
    par: bool,
) -> RlReport {
    let g = &sh.geo;
    let o = sh.opts;
    let (h, w) = (g.h, g.w);
    let yv: Vec<f32> = y.iter().copied().collect();
    let mv: Option<Vec<f32>> = mask
        .as_ref()
        .map(|m| m.iter().map(|&v| (v != 0) as u8 as f32).collect());
    let mut rep = RlReport::default();
    let zero = o.boundary == Boundary::Zero;

    // Normalisation H^T(mask) on the object grid.
    let own_norm;
    let norm: &[f32] = match (&sh.norm, zero) {
        (_, true) => &[],
        (Some(nrm), false) => nrm,
        (None, false) => {
            own_norm = adjoint_of_mask(sh, mask.as_ref(), wk, par);
            &own_norm
        }
    };

    // Start: scikit-image's 0.5, else the mean of the valid data where the
    // object is seen at all.
    if zero {
        wk.x.fill(0.5);
    } else {
        let (s, c) = match &mv {
            None => (
                yv.iter().map(|&v| v.max(0.0) as f64).sum::<f64>(),
                (h * w) as f64,
            ),
            Some(m) => yv.iter().zip(m).fold((0.0, 0.0), |(s, c), (&v, &mk)| {
                (s + (v.max(0.0) * mk) as f64, c + mk as f64)
            }),
        };
        let x0 = if c > 0.0 { (s / c) as f32 } else { 0.0 };
        for (x, &nv) in wk.x.iter_mut().zip(norm) {
            *x = if nv > 0.0 { x0 } else { 0.0 };
        }
    }
    let scale = {
        let s: f64 = yv.iter().map(|&v| v.abs() as f64).sum::<f64>() / (h * w) as f64;
        s.max(1e-30) as f32
    };
    let n_valid = mv
        .as_ref()
        .map_or((h * w) as f64, |m| m.iter().map(|&v| v as f64).sum());
    let e = g.eh * g.ew;
    let mut alpha;
    // g_k . g_(k-1), |g_(k-1)|^2 and |g_k|^2 for the next step length.
    let (mut num_next, mut den_next, mut gg_last) = (0.0f64, 0.0f64, 0.0f64);
    let mut k = 0usize;
    while k < o.iterations {
        // Prediction point p (Biggs-Andrews) or x itself.
        let use_p = o.accelerate && k >= 2;
        if o.accelerate {
            alpha = 0.0f64;
            // The dot products were accumulated in the previous update.
            if use_p && den_next > 0.0 {
                alpha = (num_next / den_next).clamp(0.0, 1.0);
            }
            let a = alpha as f32;
            let (x, xp) = (&wk.x, &wk.xprev);
            let pp = Ptr(wk.p.as_mut_ptr());
            each(par, e, |r| {
                // SAFETY: each chunk writes its own range of p.
                let p = unsafe { pp.slice(&r) };
                for ((pv, &xv), &xpv) in p.iter_mut().zip(&x[r.clone()]).zip(&xp[r.clone()]) {
                    *pv = if use_p {
                        (xv + a * (xv - xpv)).max(0.0)
                    } else {
                        xv
                    };
                }
            });
        }
        // Blur the prediction onto the measured pixels.
        {
            let p: &[f32] = if o.accelerate { &wk.p } else { &wk.x };
            sh.grid
                .convolve(p, g.eh, g.ew, &sh.kf, &mut wk.blur, h, w, &mut wk.s, par);
        }

        // Discrepancy principle (Poisson + read noise).
        if let Some(nz) = o.noise {
            let (b, mvr) = (&wk.blur, &mv);
            let yv = &yv;
            let chi2 = sum_chunks(par, h * w, |r| {
                let mut acc = 0.0f64;
                for i in r {
                    let valid = mvr.as_ref().is_none_or(|m| m[i] > 0.0);
                    if valid {
                        let bv = b[i].max(0.0);
                        let var = (nz.gain * bv + nz.read_noise * nz.read_noise).max(1e-30) as f64;
                        let d = (yv[i] - b[i]) as f64;
                        acc += d * d / var;
                    }
                }
                acc
            });
            let d = chi2 / n_valid.max(1.0);
            rep.discrepancy.push(d);
            if d <= o.tau as f64 {
                if o.accelerate {
                    std::mem::swap(&mut wk.x, &mut wk.p);
                }
                rep.stopped = true;
                break;
            }
        }

        // Ratio y / Hp on the measured pixels (in place in `blur`).
        {
            let bp = Ptr(wk.blur.as_mut_ptr());
            let (yv, mvr) = (&yv, &mv);
            let tiny = 1e-12f32 * scale;
            each(par, h * w, |r| {
                // SAFETY: each chunk writes its own range of blur.
                let b = unsafe { bp.slice(&r) };
                if zero {
                    for (bv, &yy) in b.iter_mut().zip(&yv[r.clone()]) {
                        *bv = yy / (*bv + 1e-12);
                    }
                } else {
                    for (i, bv) in r.clone().zip(b.iter_mut()) {
                        let m = mvr.as_ref().map_or(1.0, |m| m[i]);
                        *bv = if *bv > tiny {
                            m * yv[i].max(0.0) / *bv
                        } else {
                            0.0
                        };
                    }
                }
            });
        }
        // Correction H^T(ratio) on the object grid.
        sh.grid.convolve(
            &wk.blur,
            h,
            w,
            &sh.ka,
            &mut wk.corr,
            g.eh,
            g.ew,
            &mut wk.s,
            par,
        );

        // TV term (Dey 2006): normalised gradient field of p.
        if o.tv > 0.0 {
            let p: &[f32] = if o.accelerate { &wk.p } else { &wk.x };
            tv_normals(p, g.eh, g.ew, 1e-3 * scale, &mut wk.nx, &mut wk.ny);
        }

        // Update x <- p * H^T(y / Hp) / (H^T mask - lambda div(grad p / |grad p|)).
        let (ew, tv) = (g.ew, o.tv);
        let (corr, nx, ny) = (&wk.corr, &wk.nx, &wk.ny);
        let upd = |i: usize, pv: f32| -> f32 {
            if zero {
                return pv * corr[i];
            }
            let nv = norm[i];
            if nv <= 0.0 {
                return 0.0;
            }
            let mut den = nv;
            if tv > 0.0 {
                let (row, col) = (i / ew, i % ew);
                let mut div = nx[i] + ny[i];
                if col > 0 {
                    div -= nx[i - 1];
                }
                if row > 0 {
                    div -= ny[i - ew];
                }
                den = (nv - tv * div).max(0.05 * nv);
            }
            pv * corr[i] / den
        };
        if o.accelerate {
            // g2 <- g1, xprev <- x; then x <- update(p), g1 <- x - p.
            std::mem::swap(&mut wk.g1, &mut wk.g2);
            std::mem::swap(&mut wk.x, &mut wk.xprev);
            let (p, g2) = (&wk.p, &wk.g2);
            let (xp, gp) = (Ptr(wk.x.as_mut_ptr()), Ptr(wk.g1.as_mut_ptr()));
            let (num, gg) = sum2_chunks(par, e, |r| {
                // SAFETY: each chunk writes its own range of x and g1.
                let (xo, go) = unsafe { (xp.slice(&r), gp.slice(&r)) };
                let (mut num, mut gg) = (0.0f64, 0.0f64);
                for (j, i) in r.clone().enumerate() {
                    let v = upd(i, p[i]);
                    let gn = v - p[i];
                    xo[j] = v;
                    go[j] = gn;
                    num += gn as f64 * g2[i] as f64;
                    gg += gn as f64 * gn as f64;
                }
                (num, gg)
            });
            num_next = num;
            den_next = gg_last;
            gg_last = gg;
        } else {
            let xp = Ptr(wk.x.as_mut_ptr());
            each(par, e, |r| {
                // SAFETY: each chunk writes its own range of x.
                let xo = unsafe { xp.slice(&r) };
                for (j, i) in r.clone().enumerate() {
                    xo[j] = upd(i, xo[j]);
                }
            });
        }
        k += 1;
    }
    rep.iterations = k;
    rep
}

/// grad p / |grad p| by forward differences (zero at the far border).
fn tv_normals(p: &[f32], eh: usize, ew: usize, eps: f32, nx: &mut [f32], ny: &mut [f32]) {
    let e2 = eps * eps;
    for r in 0..eh {
        for c in 0..ew {
            let i = r * ew + c;
            let gx = if c + 1 < ew { p[i + 1] - p[i] } else { 0.0 };
            let gy = if r + 1 < eh { p[i + ew] - p[i] } else { 0.0 };
            let inv = 1.0 / (gx * gx + gy * gy + e2).sqrt();
            nx[i] = gx * inv;
            ny[i] = gy * inv;
        }
    }
}
