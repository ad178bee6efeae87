//! Iterative reconstruction over any [`Projector`] (parallel or cone beam,
//! with or without the film's PSF): SIRT (optionally with ordered subsets),
//! CGLS, and total-variation regularised least squares by the
//! preconditioned primal-dual method of Chambolle and Pock.
//!
//! All three minimise (or, for SIRT, weight) the residual r = A x - b in the
//! norm of the statistical weights w (default 1): ||r||_w^2 = sum w r^2.
//! Every iteration reports ||A x_k - b||_w of its own iterate and the
//! relative change ||x_k - x_(k-1)|| / ||x_k|| to a monitor, which may stop
//! it; the stopping rules (count, relative change, discrepancy principle)
//! are applied here.
//!
//! Memory (V: one volume, P: one projection stack, float32): SIRT 3V + 4P
//! (+ V per subset for the column sums), CGLS 3V + 3P, TV 5V + 4P + the
//! gradient's d V (d = 2 or 3), besides the projector's own buffers.

use super::project::Projector;
use crate::error::{CoreError, CoreResult};
use rayon::prelude::*;

/// Options shared by the methods.
#[derive(Debug, Clone)]
pub struct IterOptions {
    /// Most iterations.
    pub iterations: usize,
    /// Clamp the iterate to x >= 0 (SIRT, TV).
    pub nonnegative: bool,
    /// Stop when ||x_k - x_(k-1)|| / ||x_k|| < tol.
    pub tol: Option<f64>,
    /// Stop at the first iterate with ||A x - b||_w <= this (the discrepancy
    /// principle: the noise's norm, e.g. sqrt(number of rays) x sigma).
    pub discrepancy: Option<f64>,
    /// Ordered subsets of the angles (SIRT).
    pub n_subsets: usize,
    /// lambda of 1/2 ||A x - b||_w^2 + lambda TV(x).
    pub tv_weight: f64,
    /// The volume's shape (nz, ny, nx) and whether TV couples the slices
    /// (3-D) or only acts within each (2-D, parallel beam: slices stay
    /// independent of how the stack is split into blocks).
    pub tv_shape: (usize, usize, usize),
    pub tv_3d: bool,
}

impl Default for IterOptions {
    fn default() -> Self {
        IterOptions {
            iterations: 50,
            nonnegative: true,
            tol: None,
            discrepancy: None,
            n_subsets: 1,
            tv_weight: 0.0,
            tv_shape: (0, 0, 0),
            tv_3d: false,
        }
    }
}

/// Why the iterations ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Iterations,
    Tolerance,
    Discrepancy,
    /// The monitor asked to stop.
    Callback,
    /// CGLS reached an exact solution (zero gradient).
    Converged,
}

impl Stop {
    pub fn name(self) -> &'static str {
        match self {
            Stop::Iterations => "iterations",
            Stop::Tolerance => "tolerance",
            Stop::Discrepancy => "discrepancy",
            Stop::Callback => "callback",
            Stop::Converged => "converged",
        }
    }
}

/// Per-iteration history.
#[derive(Debug, Clone)]
pub struct IterReport {
    /// ||A x_k - b||_w after iteration k (k = 1, 2, ...); entry 0 is x0's.
    pub residuals: Vec<f64>,
    /// ||x_k - x_(k-1)|| / ||x_k|| for k = 1, 2, ...
    pub changes: Vec<f64>,
    pub stop: Stop,
}

impl IterReport {
    pub fn iterations(&self) -> usize {
        self.changes.len()
    }
}

/// Called after every iteration with (k, residual, relative change, x_k);
/// returns false to stop.
pub type Monitor<'m> = dyn FnMut(usize, f64, f64, &[f32]) -> bool + Send + 'm;

fn check(
    op: &dyn Projector,
    b: &[f32],
    w: Option<&[f32]>,
    x: &[f32],
    o: &IterOptions,
) -> CoreResult<()> {
    if b.len() != op.proj_len() {
        return Err(CoreError::shape(format!(
            "{} projection values for a projector of {}",
            b.len(),
            op.proj_len()
        )));
    }
    if x.len() != op.vol_len() {
        return Err(CoreError::shape(format!(
            "x0 has {} voxels, the volume {}",
            x.len(),
            op.vol_len()
        )));
    }
    let count = |v: &[f32]| v.par_iter().filter(|a| !a.is_finite()).count();
    let bad = count(b);
    if bad > 0 {
        return Err(CoreError::NonFinite {
            what: "projections".into(),
            count: bad,
        });
    }
    let bad = count(x);
    if bad > 0 {
        return Err(CoreError::NonFinite {
            what: "x0".into(),
            count: bad,
        });
    }
    if let Some(w) = w {
        if w.len() != b.len() {
            return Err(CoreError::shape(format!(
                "weights have {} values, the projections {}",
                w.len(),
                b.len()
            )));
        }
        let bad = w
            .par_iter()
            .filter(|a| !(a.is_finite() && **a >= 0.0))
            .count();
        if bad > 0 {
            return Err(CoreError::parameter(format!(
                "weights must be finite and >= 0 ({bad} are not)"
            )));
        }
    }
    if o.n_subsets == 0 || o.n_subsets > op.n_angles() {
        return Err(CoreError::parameter(format!(
            "n_subsets must be between 1 and the number of angles ({}), got {}",
            op.n_angles(),
            o.n_subsets
        )));
    }
    if let Some(t) = o.tol {
        if !(t.is_finite() && t > 0.0) {
            return Err(CoreError::parameter(format!("tol must be > 0, got {t}")));
        }
    }
    if let Some(d) = o.discrepancy {
        if !(d.is_finite() && d >= 0.0) {
            return Err(CoreError::parameter(format!(
                "the discrepancy target must be >= 0, got {d}"
            )));
        }
    }
    if !(o.tv_weight.is_finite() && o.tv_weight >= 0.0) {
        return Err(CoreError::parameter(format!(
            "tv_weight must be >= 0, got {}",
            o.tv_weight
        )));
    }
    Ok(())
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.par_iter()
        .with_min_len(4096)
        .zip(b)
        .map(|(x, y)| *x as f64 * *y as f64)
        .sum()
}

fn norm2(a: &[f32]) -> f64 {
    dot(a, a)
}

/// sum w (ax - b)^2.
fn wres2(ax: &[f32], b: &[f32], w: Option<&[f32]>) -> f64 {
    match w {
        None => ax
            .par_iter()
            .with_min_len(4096)
            .zip(b)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum(),
        Some(w) => ax
            .par_iter()
            .with_min_len(4096)
            .zip(b)
            .zip(w)
            .map(|((a, b), w)| *w as f64 * ((a - b) as f64).powi(2))
            .sum(),
    }
}

/// 1 / v where |v| > eps, else 0 (ASTRA's SIRT normalisation).
fn inv(v: &mut [f32]) {
    const EPS: f32 = 1e-6;
    v.par_iter_mut()
        .for_each(|a| *a = if a.abs() > EPS { 1.0 / *a } else { 0.0 });
}

/// Book-keeping shared by the loops: record, test the rules, call the monitor.
struct Rules<'a, 'm> {
    o: &'a IterOptions,
    rep: IterReport,
    monitor: &'a mut Monitor<'m>,
}

impl<'a, 'm> Rules<'a, 'm> {
    fn new(o: &'a IterOptions, res0: f64, monitor: &'a mut Monitor<'m>) -> Self {
        Rules {
            o,
            rep: IterReport {
                residuals: vec![res0],
                changes: Vec::new(),
                stop: Stop::Iterations,
            },
            monitor,
        }
    }

    /// Record iteration k; Some(reason) when it is the last.
    fn after(&mut self, k: usize, res: f64, change: f64, x: &[f32]) -> Option<Stop> {
        self.rep.residuals.push(res);
        self.rep.changes.push(change);
        if !(self.monitor)(k, res, change, x) {
            return Some(Stop::Callback);
        }
        if self.o.discrepancy.is_some_and(|d| res <= d) {
            return Some(Stop::Discrepancy);
        }
        if self.o.tol.is_some_and(|t| change < t) {
            return Some(Stop::Tolerance);
        }
        None
    }

    fn finish(mut self, stop: Stop) -> IterReport {
        self.rep.stop = stop;
        self.rep
    }
}

fn rel(d2: f64, x2: f64) -> f64 {
    if x2 > 0.0 {
        (d2 / x2).sqrt()
    } else if d2 > 0.0 {
        f64::INFINITY
    } else {
        0.0
    }
}

/// x += c * t (clamped at 0 with `nonneg`); returns (||dx||^2, ||x||^2).
fn update(x: &mut [f32], c: &[f32], t: &[f32], nonneg: bool) -> (f64, f64) {
    x.par_iter_mut()
        .with_min_len(4096)
        .zip(c)
        .zip(t)
        .map(|((x, c), t)| {
            let mut v = *x + c * t;
            if nonneg && v < 0.0 {
                v = 0.0;
            }
            let d = (v - *x) as f64;
            *x = v;
            (d * d, v as f64 * v as f64)
        })
        .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1))
}

/// SIRT as ASTRA's: x += C A^T R (b - A x), R = 1 / row sums, C = 1 / column
/// sums (with weights: R = w / (A 1), C = 1 / (A^T w)), clamped at 0 with
/// `nonnegative`. With n_subsets > 1, ordered subsets of interleaved angles
/// (each subset normalised by its own sums); the residual then is the sum
/// over the sweep of each subset's residual before its update.
pub fn sirt(
    op: &dyn Projector,
    b: &[f32],
    w: Option<&[f32]>,
    x: &mut [f32],
    o: &IterOptions,
    monitor: &mut Monitor,
) -> CoreResult<IterReport> {
    check(op, b, w, x, o)?;
    let na = op.n_angles();
    let per = op.proj_len() / na;
    let ns = o.n_subsets;
    struct Sub<'a> {
        op: Box<dyn Projector + 'a>,
        b: Vec<f32>,
        w: Option<Vec<f32>>,
        r: Vec<f32>,
        c: Vec<f32>,
    }
    let gather = |v: &[f32], angles: &[usize]| -> Vec<f32> {
        let mut out = Vec::with_capacity(angles.len() * per);
        for &a in angles {
            out.extend_from_slice(&v[a * per..(a + 1) * per]);
        }
        out
    };
    let mut subs = Vec::with_capacity(ns);
    for s in 0..ns {
        let angles: Vec<usize> = (s..na).step_by(ns).collect();
        let sop: Box<dyn Projector> = if ns == 1 {
            op.subset(&(0..na).collect::<Vec<_>>())
        } else {
            op.subset(&angles)
        };
        let sb = if ns == 1 {
            b.to_vec()
        } else {
            gather(b, &angles)
        };
        let sw = w.map(|w| {
            if ns == 1 {
                w.to_vec()
            } else {
                gather(w, &angles)
            }
        });
        let ones = vec![1f32; sop.vol_len()];
        let mut r = vec![0f32; sop.proj_len()];
        sop.forward(&ones, &mut r);
        inv(&mut r);
        let mut c = vec![0f32; sop.vol_len()];
        match &sw {
            Some(sw) => {
                r.par_iter_mut().zip(sw).for_each(|(r, w)| *r *= w);
                sop.back(sw, &mut c);
            }
            None => {
                let ones = vec![1f32; sop.proj_len()];
                sop.back(&ones, &mut c);
            }
        }
        inv(&mut c);
        subs.push(Sub {
            op: sop,
            b: sb,
            w: sw,
            r,
            c,
        });
    }
    let mut ax = vec![0f32; per * na.div_ceil(ns)];
    let mut t = vec![0f32; op.vol_len()];
    let res_of = |s: &Sub, ax: &[f32]| wres2(ax, &s.b, s.w.as_deref());
    // Residual of x0 (whole set).
    let (r0, mut ax_ok) = if ns == 1 {
        let s = &subs[0];
        s.op.forward(x, &mut ax[..s.b.len()]);
        (res_of(s, &ax[..s.b.len()]).sqrt(), true)
    } else {
        let mut r2 = 0.0;
        for s in &subs {
            let m = s.b.len();
            s.op.forward(x, &mut ax[..m]);
            r2 += res_of(s, &ax[..m]);
        }
        (r2.sqrt(), false)
    };
    let mut rules = Rules::new(o, r0, monitor);
    if o.discrepancy.is_some_and(|d| r0 <= d) {
        return Ok(rules.finish(Stop::Discrepancy));
    }
    for k in 1..=o.iterations {
        let mut d2 = 0.0;
        let mut x2 = 0.0;
        let mut r2 = 0.0;
        for s in &subs {
            let m = s.b.len();
            let axs = &mut ax[..m];
            if !ax_ok {
                s.op.forward(x, axs);
                r2 += res_of(s, axs);
            }
            ax_ok = false;
            // ax <- R (b - A x)
            axs.par_iter_mut()
                .with_min_len(4096)
                .zip(&s.b)
                .zip(&s.r)
                .for_each(|((a, b), r)| *a = (b - *a) * r);
            s.op.back(axs, &mut t);
            let (d, xx) = update(x, &s.c, &t, o.nonnegative);
            d2 += d;
            x2 = xx;
        }
        let res = if ns == 1 {
            let s = &subs[0];
            s.op.forward(x, &mut ax[..s.b.len()]);
            ax_ok = true;
            res_of(s, &ax[..s.b.len()]).sqrt()
        } else {
            r2.sqrt()
        };
        if let Some(stop) = rules.after(k, res, rel(d2, x2), x) {
            return Ok(rules.finish(stop));
        }
    }
    Ok(rules.finish(Stop::Iterations))
}

/// CGLS (Hestenes and Stiefel 1952; Bjorck 1996 alg. 7.4.1) on the weighted
/// problem min ||W^(1/2) (A x - b)||, from x0. Unconstrained.
pub fn cgls(
    op: &dyn Projector,
    b: &[f32],
    w: Option<&[f32]>,
    x: &mut [f32],
    o: &IterOptions,
    monitor: &mut Monitor,
) -> CoreResult<IterReport> {
    check(op, b, w, x, o)?;
    if o.nonnegative {
        return Err(CoreError::parameter(
            "CGLS is unconstrained: use nonnegative=False (or SIRT / TV for x >= 0)",
        ));
    }
    if o.n_subsets != 1 {
        return Err(CoreError::parameter("CGLS has no ordered subsets"));
    }
    let sw: Option<Vec<f32>> = w.map(|w| w.par_iter().map(|v| v.sqrt()).collect());
    let scale = |v: &mut [f32]| {
        if let Some(sw) = &sw {
            v.par_iter_mut().zip(sw).for_each(|(a, s)| *a *= s);
        }
    };
    // r = W^(1/2) (b - A x)
    let mut r = vec![0f32; op.proj_len()];
    op.forward(x, &mut r);
    r.par_iter_mut().zip(b).for_each(|(a, b)| *a = b - *a);
    scale(&mut r);
    let mut rules = Rules::new(o, norm2(&r).sqrt(), monitor);
    if o.discrepancy.is_some_and(|d| rules.rep.residuals[0] <= d) {
        return Ok(rules.finish(Stop::Discrepancy));
    }
    let mut tmp = r.clone();
    scale(&mut tmp);
    let mut s = vec![0f32; op.vol_len()];
    op.back(&tmp, &mut s);
    let mut p = s.clone();
    let mut gamma = norm2(&s);
    let mut q = vec![0f32; op.proj_len()];
    for k in 1..=o.iterations {
        if gamma == 0.0 {
            return Ok(rules.finish(Stop::Converged));
        }
        op.forward(&p, &mut q);
        scale(&mut q);
        let delta = norm2(&q);
        if delta == 0.0 {
            return Ok(rules.finish(Stop::Converged));
        }
        let alpha = (gamma / delta) as f32;
        let (d2, x2) = x
            .par_iter_mut()
            .with_min_len(4096)
            .zip(&p)
            .map(|(x, p)| {
                let d = alpha * p;
                *x += d;
                ((d as f64).powi(2), (*x as f64).powi(2))
            })
            .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
        r.par_iter_mut().zip(&q).for_each(|(r, q)| *r -= alpha * q);
        let res = norm2(&r).sqrt();
        tmp.copy_from_slice(&r);
        scale(&mut tmp);
        op.back(&tmp, &mut s);
        let g = norm2(&s);
        let beta = (g / gamma) as f32;
        gamma = g;
        p.par_iter_mut()
            .zip(&s)
            .for_each(|(p, s)| *p = s + beta * *p);
        if let Some(stop) = rules.after(k, res, rel(d2, x2), x) {
            return Ok(rules.finish(stop));
        }
    }
    Ok(rules.finish(Stop::Iterations))
}

/// Forward-difference gradient with Neumann ends (the last difference along
/// each axis is 0), over (y, x) or (z, y, x).
struct Grad {
    shape: (usize, usize, usize),
    dims: usize,
}

impl Grad {
    fn strides(&self) -> [(usize, usize); 3] {
        let (nz, ny, nx) = self.shape;
        // (stride, length) of x, y, z.
        [(1, nx), (nx, ny), (nx * ny, nz)]
    }

    /// Index along axis d of voxel v.
    #[inline]
    fn coord(&self, v: usize, d: usize) -> usize {
        let (st, len) = self.strides()[d];
        (v / st) % len
    }
}

/// Total-variation regularised least squares, min 1/2 ||A x - b||_w^2 +
/// lambda TV(x) (isotropic TV, over each slice or the whole volume), x >= 0
/// with `nonnegative`, by the diagonally preconditioned primal-dual hybrid
/// gradient method (Chambolle and Pock 2011; Pock and Chambolle 2011,
/// alpha = 1): sigma = 1 / row sums of |K|, tau = 1 / column sums, K = [A;
/// grad], so no operator norm is needed. A x of each iterate is kept, so
/// the extrapolation costs no extra projection: one forward and one back
/// projection per iteration.
pub fn tv(
    op: &dyn Projector,
    b: &[f32],
    w: Option<&[f32]>,
    x: &mut [f32],
    o: &IterOptions,
    monitor: &mut Monitor,
) -> CoreResult<IterReport> {
    check(op, b, w, x, o)?;
    let (nz, ny, nx) = o.tv_shape;
    if nz * ny * nx != op.vol_len() {
        return Err(CoreError::shape(format!(
            "TV shape {:?} does not match the volume's {} voxels",
            o.tv_shape,
            op.vol_len()
        )));
    }
    if o.n_subsets != 1 {
        return Err(CoreError::parameter("TV has no ordered subsets"));
    }
    let g = Grad {
        shape: o.tv_shape,
        dims: if o.tv_3d { 3 } else { 2 },
    };
    let nv = op.vol_len();
    let np = op.proj_len();
    let lambda = o.tv_weight as f32;
    // Preconditioners.
    let mut sigma = vec![0f32; np];
    op.forward(&vec![1f32; nv], &mut sigma);
    inv(&mut sigma);
    let mut tau = vec![0f32; nv];
    op.back(&vec![1f32; np], &mut tau);
    let gsum = if lambda > 0.0 {
        2.0 * g.dims as f32
    } else {
        0.0
    };
    tau.par_iter_mut().for_each(|t| {
        let s = *t + gsum;
        *t = if s > 1e-6 { 1.0 / s } else { 0.0 };
    });
    let sigma_g = 0.5f32;
    let mut ax = vec![0f32; np];
    op.forward(x, &mut ax);
    let mut axbar = ax.clone();
    let mut xbar = x.to_vec();
    let mut yd = vec![0f32; np];
    let mut yg = vec![0f32; if lambda > 0.0 { g.dims * nv } else { 0 }];
    let mut t = vec![0f32; nv];
    let mut rules = Rules::new(o, wres2(&ax, b, w).sqrt(), monitor);
    if o.discrepancy.is_some_and(|d| rules.rep.residuals[0] <= d) {
        return Ok(rules.finish(Stop::Discrepancy));
    }
    let strides = g.strides();
    for k in 1..=o.iterations {
        // Data dual: prox of sigma f*, f = 1/2 ||. - b||_w^2.
        yd.par_iter_mut()
            .with_min_len(4096)
            .enumerate()
            .for_each(|(i, y)| {
                let s = sigma[i];
                let v = *y + s * axbar[i];
                let wi = w.map_or(1.0, |w| w[i]);
                *y = if wi + s > 0.0 {
                    (v - s * b[i]) * wi / (wi + s)
                } else {
                    0.0
                };
            });
        // Gradient dual: projection onto |y| <= lambda per voxel.
        if lambda > 0.0 {
            let xb = &xbar;
            let dims = g.dims;
            yg.par_chunks_mut(dims)
                .with_min_len(1024)
                .enumerate()
                .for_each(|(v, y)| {
                    let mut n2 = 0f32;
                    for (d, yd) in y.iter_mut().enumerate() {
                        let (st, len) = strides[d];
                        let gd = if g.coord(v, d) + 1 < len {
                            xb[v + st] - xb[v]
                        } else {
                            0.0
                        };
                        *yd += sigma_g * gd;
                        n2 += *yd * *yd;
                    }
                    let sc = (n2.sqrt() / lambda).max(1.0);
                    for yd in y.iter_mut() {
                        *yd /= sc;
                    }
                });
        }
        // Primal: x - tau (A^T yd - div yg), clamped; xbar = 2 x_new - x.
        op.back(&yd, &mut t);
        let ygr = &yg;
        let dims = g.dims;
        let (d2, x2) = x
            .par_iter_mut()
            .with_min_len(4096)
            .zip(xbar.par_iter_mut())
            .enumerate()
            .map(|(v, (xv, xb))| {
                let mut div = 0f32;
                if lambda > 0.0 {
                    for (d, &(st, len)) in strides.iter().enumerate().take(dims) {
                        let c = g.coord(v, d);
                        if c + 1 < len {
                            div += ygr[v * dims + d];
                        }
                        if c > 0 {
                            div -= ygr[(v - st) * dims + d];
                        }
                    }
                }
                let mut nv = *xv - tau[v] * (t[v] - div);
                if o.nonnegative && nv < 0.0 {
                    nv = 0.0;
                }
                let dlt = nv - *xv;
                *xb = nv + dlt;
                *xv = nv;
                ((dlt as f64).powi(2), (nv as f64).powi(2))
            })
            .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
        // A x_new, and A xbar = 2 A x_new - A x by linearity.
        op.forward(x, &mut axbar);
        ax.par_iter_mut()
            .zip(axbar.par_iter_mut())
            .for_each(|(a, ab)| {
                let new = *ab;
                *ab = 2.0 * new - *a;
                *a = new;
            });
        let res = wres2(&ax, b, w).sqrt();
        if let Some(stop) = rules.after(k, res, rel(d2, x2), x) {
            return Ok(rules.finish(stop));
        }
    }
    Ok(rules.finish(Stop::Iterations))
}

#[cfg(test)]
mod tests {
    use super::super::project::ParallelProjector;
    use super::*;

    fn phantom(n: usize) -> Vec<f32> {
        let h = (n as f64 - 1.0) / 2.0;
        (0..n * n)
            .map(|p| {
                let (r, c) = ((p / n) as f64 - h, (p % n) as f64 - h);
                let mut v = 0.0;
                if r * r + c * c < (0.4 * n as f64).powi(2) {
                    v += 1.0;
                }
                if (r - 3.0).powi(2) + (c + 4.0).powi(2) < 16.0 {
                    v += 0.5;
                }
                v
            })
            .collect()
    }

    fn setup(n: usize, na: usize) -> (ParallelProjector, Vec<f32>, Vec<f32>) {
        let theta: Vec<f64> = (0..na)
            .map(|a| a as f64 * std::f64::consts::PI / na as f64)
            .collect();
        let op = ParallelProjector::new(&theta, &[(n as f64 - 1.0) / 2.0], n, n).unwrap();
        let x = phantom(n);
        let mut b = vec![0f32; op.proj_len()];
        op.forward(&x, &mut b);
        (op, x, b)
    }

    fn keep_going() -> impl FnMut(usize, f64, f64, &[f32]) -> bool + Send {
        |_, _, _, _| true
    }

    #[test]
    fn residuals_fall() {
        let (op, _, b) = setup(24, 30);
        let o = IterOptions {
            iterations: 15,
            ..Default::default()
        };
        for alg in 0..3 {
            let mut x = vec![0f32; op.vol_len()];
            let mut m = keep_going();
            let rep = match alg {
                0 => sirt(&op, &b, None, &mut x, &o, &mut m).unwrap(),
                1 => cgls(
                    &op,
                    &b,
                    None,
                    &mut x,
                    &IterOptions {
                        nonnegative: false,
                        ..o.clone()
                    },
                    &mut m,
                )
                .unwrap(),
                _ => tv(
                    &op,
                    &b,
                    None,
                    &mut x,
                    &IterOptions {
                        tv_weight: 0.01,
                        tv_shape: (1, 24, 24),
                        ..o.clone()
                    },
                    &mut m,
                )
                .unwrap(),
            };
            let r = &rep.residuals;
            assert_eq!(r.len(), 16);
            assert!(r[15] < 0.3 * r[0], "alg {alg}: {r:?}");
            if alg < 2 {
                assert!(
                    r.windows(2).all(|p| p[1] <= p[0] * (1.0 + 1e-6)),
                    "alg {alg}: {r:?}"
                );
            }
        }
    }

    #[test]
    fn stopping_rules() {
        let (op, _, b) = setup(16, 20);
        let mut x = vec![0f32; op.vol_len()];
        let mut m = keep_going();
        let o = IterOptions {
            iterations: 500,
            tol: Some(1e-2),
            ..Default::default()
        };
        let rep = sirt(&op, &b, None, &mut x, &o, &mut m).unwrap();
        assert_eq!(rep.stop, Stop::Tolerance);
        assert!(rep.iterations() < 500 && *rep.changes.last().unwrap() < 1e-2);
        let mut x = vec![0f32; op.vol_len()];
        let o = IterOptions {
            iterations: 500,
            discrepancy: Some(1.0),
            ..Default::default()
        };
        let rep = sirt(&op, &b, None, &mut x, &o, &mut m).unwrap();
        assert_eq!(rep.stop, Stop::Discrepancy);
        let r = &rep.residuals;
        assert!(r[r.len() - 1] <= 1.0 && r[r.len() - 2] > 1.0);
        let mut x = vec![0f32; op.vol_len()];
        let mut stop3 = |k: usize, _: f64, _: f64, _: &[f32]| k < 3;
        let rep = sirt(&op, &b, None, &mut x, &IterOptions::default(), &mut stop3).unwrap();
        assert_eq!((rep.stop, rep.iterations()), (Stop::Callback, 3));
    }

    #[test]
    fn ordered_subsets_converge() {
        let (op, truth, b) = setup(24, 32);
        let err = |x: &[f32]| -> f64 {
            x.iter()
                .zip(&truth)
                .map(|(a, b)| ((a - b) as f64).powi(2))
                .sum::<f64>()
                .sqrt()
        };
        let mut m = keep_going();
        let mut x1 = vec![0f32; op.vol_len()];
        let o = IterOptions {
            iterations: 10,
            ..Default::default()
        };
        sirt(&op, &b, None, &mut x1, &o, &mut m).unwrap();
        let mut x4 = vec![0f32; op.vol_len()];
        sirt(
            &op,
            &b,
            None,
            &mut x4,
            &IterOptions { n_subsets: 4, ..o },
            &mut m,
        )
        .unwrap();
        assert!(err(&x4) < err(&x1), "{} {}", err(&x4), err(&x1));
    }

    #[test]
    fn bad_input() {
        let (op, _, b) = setup(8, 6);
        let mut x = vec![0f32; op.vol_len()];
        let mut m = keep_going();
        let o = IterOptions::default();
        let mut nan = b.clone();
        nan[3] = f32::NAN;
        assert!(matches!(
            sirt(&op, &nan, None, &mut x, &o, &mut m),
            Err(CoreError::NonFinite { .. })
        ));
        assert!(matches!(
            sirt(&op, &b, Some(&[1.0; 3]), &mut x, &o, &mut m),
            Err(CoreError::Shape(_))
        ));
        let o7 = IterOptions {
            n_subsets: 7,
            ..Default::default()
        };
        assert!(matches!(
            sirt(&op, &b, None, &mut x, &o7, &mut m),
            Err(CoreError::Parameter(_))
        ));
        assert!(matches!(
            cgls(&op, &b, None, &mut x, &o, &mut m),
            Err(CoreError::Parameter(_))
        ));
    }
}
