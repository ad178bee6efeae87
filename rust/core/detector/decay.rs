//! Per-pixel afterglow decay fits of a time series of frames (T, H, W):
//!
//!   y(t) = A g_k(t) + B,  g_k(t) = exp(-k t)            (exponential)
//!                         g_k(t) = (1 + k t)^(-n)       (hyperbolic, n fixed;
//!                                   second-order kinetics for n = 1, Chen &
//!                                   McKeever, "Theory of thermoluminescence
//!                                   and related phenomena", 1997)
//!
//! with tau = 1 / k. A and B enter linearly, so they are eliminated (variable
//! projection, Golub & Pereyra 1973) and the residual sum of squares is
//! minimised over ln k alone by golden-section search in a bracket. This
//! cannot diverge and gives a finite answer for every pixel, including flat
//! or dark ones (where tau is then meaningless and A ~ 0).

use ndarray::{Array2, ArrayView2, ArrayView3, ArrayViewMut1, Axis, Zip};
use rayon::prelude::*;

use crate::error::{CoreError, CoreResult};
use crate::pixel::Pixel;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DecayModel {
    Exponential,
    Hyperbolic { n: f64 },
}

/// Per-pixel fitted parameters, each (H, W).
#[derive(Debug, Clone)]
pub struct DecayFit {
    pub amplitude: Array2<f32>,
    pub tau: Array2<f32>,
    pub offset: Array2<f32>,
    pub rss: Array2<f32>,
}

struct Series<'a> {
    t: &'a [f64],
    uniform_dt: Option<f64>,
    model: DecayModel,
    offset: bool,
}

/// Pixels fitted in lockstep: the golden-section search takes the same
/// number of steps for every pixel, so LANES pixels share each loop over the
/// frames (independent multiply chains, and SIMD across the lanes).
const LANES: usize = 8;
type L = [f64; LANES];

impl Series<'_> {
    /// (A, B, rss) of each lane for its k, given per-lane data sums (Sy, Syy)
    /// and the values y[j][lane].
    #[inline(always)]
    fn eval(&self, k: &L, y: &[L], sy: &L, syy: &L) -> (L, L, L) {
        let (mut se, mut see, mut sey) = ([0.0; LANES], [0.0; LANES], [0.0; LANES]);
        match (self.model, self.uniform_dt) {
            (DecayModel::Exponential, Some(dt)) => {
                let mut r = [0.0; LANES];
                let mut g = [0.0; LANES];
                for l in 0..LANES {
                    r[l] = (-k[l] * dt).exp();
                    g[l] = (-k[l] * self.t[0]).exp();
                }
                for v in y {
                    for l in 0..LANES {
                        se[l] += g[l];
                        see[l] += g[l] * g[l];
                        sey[l] += g[l] * v[l];
                        g[l] *= r[l];
                    }
                }
            }
            (DecayModel::Exponential, None) => {
                for (&t, v) in self.t.iter().zip(y) {
                    for l in 0..LANES {
                        let g = (-k[l] * t).exp();
                        se[l] += g;
                        see[l] += g * g;
                        sey[l] += g * v[l];
                    }
                }
            }
            (DecayModel::Hyperbolic { n }, _) => {
                for (&t, v) in self.t.iter().zip(y) {
                    for l in 0..LANES {
                        let g = (1.0 + k[l] * t).powf(-n);
                        se[l] += g;
                        see[l] += g * g;
                        sey[l] += g * v[l];
                    }
                }
            }
        }
        let m = y.len() as f64;
        let (mut a, mut b, mut rss) = ([0.0; LANES], [0.0; LANES], [0.0; LANES]);
        for l in 0..LANES {
            (a[l], b[l], rss[l]) = if self.offset {
                let det = see[l] * m - se[l] * se[l];
                if det <= 1e-12 * see[l] * m || !det.is_finite() {
                    let b = sy[l] / m;
                    (0.0, b, syy[l] - b * sy[l])
                } else {
                    let a = (sey[l] * m - se[l] * sy[l]) / det;
                    let b = (see[l] * sy[l] - se[l] * sey[l]) / det;
                    (a, b, (syy[l] - a * sey[l] - b * sy[l]).max(0.0))
                }
            } else if see[l] <= 0.0 {
                (0.0, 0.0, syy[l])
            } else {
                let a = sey[l] / see[l];
                (a, 0.0, (syy[l] - a * sey[l]).max(0.0))
            };
        }
        (a, b, rss)
    }
}

/// Fit every pixel of `frames` (T, H, W) recorded at times `t` (T, any unit;
/// tau comes out in the same unit) with `k = 1 / tau` searched in
/// [k_min, k_max] to a relative precision `rel_tol`.
pub fn decay_fit<T: Pixel>(
    frames: ArrayView3<T>,
    t: &[f64],
    model: DecayModel,
    offset: bool,
    k_min: f64,
    k_max: f64,
    rel_tol: f64,
) -> CoreResult<DecayFit> {
    let (nt, h, w) = frames.dim();
    if nt != t.len() {
        return Err(CoreError::shape(format!(
            "{nt} frames but {} times",
            t.len()
        )));
    }
    let need = if offset { 3 } else { 2 };
    if nt < need {
        return Err(CoreError::shape(format!(
            "a decay fit needs at least {need} frames, got {nt}"
        )));
    }
    if h == 0 || w == 0 {
        return Err(CoreError::shape("empty frames"));
    }
    if t.iter().any(|v| !v.is_finite()) || t.windows(2).any(|p| p[1] <= p[0]) {
        return Err(CoreError::parameter(
            "times must be finite and strictly increasing",
        ));
    }
    if !(k_min > 0.0 && k_max > k_min && k_max.is_finite()) {
        return Err(CoreError::parameter(format!(
            "need 0 < k_min < k_max, got {k_min}, {k_max}"
        )));
    }
    if let DecayModel::Hyperbolic { n } = model {
        if !(n > 0.0 && n.is_finite()) {
            return Err(CoreError::parameter(format!(
                "hyperbolic exponent must be > 0, got {n}"
            )));
        }
        if t[0] < 0.0 {
            return Err(CoreError::parameter("hyperbolic decay needs times >= 0"));
        }
    }
    if !(rel_tol > 0.0 && rel_tol < 1.0) {
        return Err(CoreError::parameter(format!(
            "rel_tol must be in (0, 1), got {rel_tol}"
        )));
    }
    let dt0 = t[1] - t[0];
    let uniform = t
        .windows(2)
        .all(|p| ((p[1] - p[0]) - dt0).abs() <= 1e-9 * dt0.abs().max(1e-300));
    let series = Series {
        t,
        uniform_dt: uniform.then_some(dt0),
        model,
        offset,
    };
    let (lo, hi) = (k_min.ln(), k_max.ln());
    let n_iter = ((rel_tol.ln() - (hi - lo).ln()) / INV_PHI.ln())
        .ceil()
        .max(1.0) as usize;

    let mut out = DecayFit {
        amplitude: Array2::zeros((h, w)),
        tau: Array2::zeros((h, w)),
        offset: Array2::zeros((h, w)),
        rss: Array2::zeros((h, w)),
    };
    let bad: usize = Zip::from(out.amplitude.axis_iter_mut(Axis(0)))
        .and(out.tau.axis_iter_mut(Axis(0)))
        .and(out.offset.axis_iter_mut(Axis(0)))
        .and(out.rss.axis_iter_mut(Axis(0)))
        .and(frames.axis_iter(Axis(1)))
        .into_par_iter()
        .map(|(ra, rt, rb, rr, block)| fit_row(block, &series, lo, hi, n_iter, [ra, rt, rb, rr]))
        .sum();
    if bad > 0 {
        return Err(CoreError::NonFinite {
            what: "frames".into(),
            count: bad,
        });
    }
    Ok(out)
}

const INV_PHI: f64 = 0.618_033_988_749_894_8;

type Row<'a> = ArrayViewMut1<'a, f32>;

/// Fit the pixels of one row: `block` is (T, W); `out` = [A, tau, B, rss] rows.
/// Returns the number of pixels with non-finite data.
fn fit_row<T: Pixel>(
    block: ArrayView2<T>,
    series: &Series,
    lo: f64,
    hi: f64,
    n_iter: usize,
    out: [Row; 4],
) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { fit_row_avx2(block, series, lo, hi, n_iter, out) };
        }
    }
    fit_row_generic(block, series, lo, hi, n_iter, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fit_row_avx2<T: Pixel>(
    block: ArrayView2<T>,
    series: &Series,
    lo: f64,
    hi: f64,
    n_iter: usize,
    out: [Row; 4],
) -> usize {
    fit_row_generic(block, series, lo, hi, n_iter, out)
}

#[inline(always)]
fn fit_row_generic<T: Pixel>(
    block: ArrayView2<T>,
    series: &Series,
    lo: f64,
    hi: f64,
    n_iter: usize,
    mut out: [Row; 4],
) -> usize {
    let (nt, w) = block.dim();
    // block: (T, W) for this row; gather LANES pixels' series as y[j][lane]
    let mut y = vec![[0.0f64; LANES]; nt];
    let mut bad = 0usize;
    for c0 in (0..w).step_by(LANES) {
        let nl = LANES.min(w - c0);
        for (j, trow) in block.axis_iter(Axis(0)).enumerate() {
            for l in 0..LANES {
                // padding lanes repeat the last pixel; their results are dropped
                y[j][l] = trow[c0 + l.min(nl - 1)].to_f64();
            }
        }
        let (mut sy, mut syy) = ([0.0; LANES], [0.0; LANES]);
        for v in &y {
            for l in 0..LANES {
                sy[l] += v[l];
                syy[l] += v[l] * v[l];
            }
        }
        let finite = syy.map(|v| v.is_finite());
        bad += finite[..nl].iter().filter(|f| !**f).count();
        let (mut a, mut b) = ([lo; LANES], [hi; LANES]);
        let mut x1 = [0.0; LANES];
        let mut x2 = [0.0; LANES];
        for l in 0..LANES {
            x1[l] = hi - INV_PHI * (hi - lo);
            x2[l] = lo + INV_PHI * (hi - lo);
        }
        let mut f1 = series.eval(&x1.map(f64::exp), &y, &sy, &syy).2;
        let mut f2 = series.eval(&x2.map(f64::exp), &y, &sy, &syy).2;
        for _ in 0..n_iter {
            let mut left = [false; LANES];
            let mut xn = [0.0; LANES];
            for l in 0..LANES {
                left[l] = f1[l] <= f2[l];
                if left[l] {
                    b[l] = x2[l];
                    x2[l] = x1[l];
                    f2[l] = f1[l];
                    x1[l] = b[l] - INV_PHI * (b[l] - a[l]);
                    xn[l] = x1[l];
                } else {
                    a[l] = x1[l];
                    x1[l] = x2[l];
                    f1[l] = f2[l];
                    x2[l] = a[l] + INV_PHI * (b[l] - a[l]);
                    xn[l] = x2[l];
                }
            }
            let fnew = series.eval(&xn.map(f64::exp), &y, &sy, &syy).2;
            for l in 0..LANES {
                if left[l] {
                    f1[l] = fnew[l];
                } else {
                    f2[l] = fnew[l];
                }
            }
        }
        let mut k = [0.0; LANES];
        for l in 0..LANES {
            k[l] = (0.5 * (a[l] + b[l])).exp();
        }
        let (amp, off, rss) = series.eval(&k, &y, &sy, &syy);
        for l in 0..nl {
            out[0][c0 + l] = amp[l] as f32;
            out[1][c0 + l] = (1.0 / k[l]) as f32;
            out[2][c0 + l] = off[l] as f32;
            out[3][c0 + l] = rss[l] as f32;
        }
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn recovers_exponential_and_hyperbolic() {
        let t: Vec<f64> = (0..30).map(|i| 0.5 * i as f64).collect();
        for (model, nonuniform) in [
            (DecayModel::Exponential, false),
            (DecayModel::Exponential, true),
            (DecayModel::Hyperbolic { n: 1.5 }, false),
        ] {
            let tt: Vec<f64> = if nonuniform {
                t.iter().map(|v| v * (1.0 + 0.01 * v)).collect()
            } else {
                t.clone()
            };
            let frames = Array3::from_shape_fn((30, 2, 3), |(j, r, c)| {
                let tau = 2.0 + r as f64 + c as f64;
                let g = match model {
                    DecayModel::Exponential => (-tt[j] / tau).exp(),
                    DecayModel::Hyperbolic { n } => (1.0 + tt[j] / tau).powf(-n),
                };
                (100.0 * g + 5.0) as f32
            });
            let f = decay_fit(frames.view(), &tt, model, true, 1e-3, 1e2, 1e-7).unwrap();
            for r in 0..2 {
                for c in 0..3 {
                    let tau = 2.0 + r as f64 + c as f64;
                    assert!(
                        (f.tau[[r, c]] as f64 / tau - 1.0).abs() < 1e-3,
                        "{model:?} {:?}",
                        f.tau
                    );
                    assert!((f.amplitude[[r, c]] - 100.0).abs() < 0.05);
                    assert!((f.offset[[r, c]] - 5.0).abs() < 0.05);
                }
            }
        }
    }

    #[test]
    fn flat_pixels_are_finite_and_bad_input_is_refused() {
        let frames = Array3::<f32>::from_elem((5, 2, 2), 3.0);
        let t = [0.0, 1.0, 2.0, 3.0, 4.0];
        let f = decay_fit(
            frames.view(),
            &t,
            DecayModel::Exponential,
            true,
            0.01,
            10.0,
            1e-5,
        )
        .unwrap();
        assert!(f.tau.iter().all(|v| v.is_finite()));
        assert!(f.offset.iter().all(|v| (v - 3.0).abs() < 1e-3));
        assert!(decay_fit(
            frames.view(),
            &t[..4],
            DecayModel::Exponential,
            true,
            0.01,
            10.0,
            1e-5
        )
        .is_err());
        let back = [0.0, 2.0, 1.0, 3.0, 4.0];
        assert!(decay_fit(
            frames.view(),
            &back,
            DecayModel::Exponential,
            true,
            0.01,
            10.0,
            1e-5
        )
        .is_err());
        assert!(decay_fit(
            frames.view(),
            &t,
            DecayModel::Exponential,
            true,
            10.0,
            1.0,
            1e-5
        )
        .is_err());
    }
}
