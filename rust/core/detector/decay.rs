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

use ndarray::{Array2, ArrayView3, Axis, Zip};
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

impl Series<'_> {
    /// (A, B, rss) for one k, given the data sums (Sy, Syy) and values y.
    #[inline]
    fn eval(&self, k: f64, y: &[f64], sy: f64, syy: f64) -> (f64, f64, f64) {
        let (mut se, mut see, mut sey) = (0.0, 0.0, 0.0);
        match (self.model, self.uniform_dt) {
            (DecayModel::Exponential, Some(dt)) => {
                let r = (-k * dt).exp();
                let mut g = (-k * self.t[0]).exp();
                for &v in y {
                    se += g;
                    see += g * g;
                    sey += g * v;
                    g *= r;
                }
            }
            (DecayModel::Exponential, None) => {
                for (&t, &v) in self.t.iter().zip(y) {
                    let g = (-k * t).exp();
                    se += g;
                    see += g * g;
                    sey += g * v;
                }
            }
            (DecayModel::Hyperbolic { n }, _) => {
                for (&t, &v) in self.t.iter().zip(y) {
                    let g = (1.0 + k * t).powf(-n);
                    se += g;
                    see += g * g;
                    sey += g * v;
                }
            }
        }
        let m = y.len() as f64;
        if self.offset {
            let det = see * m - se * se;
            if det <= 1e-12 * see * m || !det.is_finite() {
                let b = sy / m;
                return (0.0, b, syy - b * sy);
            }
            let a = (sey * m - se * sy) / det;
            let b = (see * sy - se * sey) / det;
            (a, b, (syy - a * sey - b * sy).max(0.0))
        } else {
            if see <= 0.0 {
                return (0.0, 0.0, syy);
            }
            let a = sey / see;
            (a, 0.0, (syy - a * sey).max(0.0))
        }
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
        return Err(CoreError::shape(format!("{nt} frames but {} times", t.len())));
    }
    let need = if offset { 3 } else { 2 };
    if nt < need {
        return Err(CoreError::shape(format!("a decay fit needs at least {need} frames, got {nt}")));
    }
    if h == 0 || w == 0 {
        return Err(CoreError::shape("empty frames"));
    }
    if t.iter().any(|v| !v.is_finite()) || t.windows(2).any(|p| p[1] <= p[0]) {
        return Err(CoreError::parameter("times must be finite and strictly increasing"));
    }
    if !(k_min > 0.0 && k_max > k_min && k_max.is_finite()) {
        return Err(CoreError::parameter(format!("need 0 < k_min < k_max, got {k_min}, {k_max}")));
    }
    if let DecayModel::Hyperbolic { n } = model {
        if !(n > 0.0 && n.is_finite()) {
            return Err(CoreError::parameter(format!("hyperbolic exponent must be > 0, got {n}")));
        }
        if t[0] < 0.0 {
            return Err(CoreError::parameter("hyperbolic decay needs times >= 0"));
        }
    }
    if !(rel_tol > 0.0 && rel_tol < 1.0) {
        return Err(CoreError::parameter(format!("rel_tol must be in (0, 1), got {rel_tol}")));
    }
    let dt0 = t[1] - t[0];
    let uniform = t.windows(2).all(|p| ((p[1] - p[0]) - dt0).abs() <= 1e-9 * dt0.abs().max(1e-300));
    let series = Series { t, uniform_dt: uniform.then_some(dt0), model, offset };
    let (lo, hi) = (k_min.ln(), k_max.ln());
    const INV_PHI: f64 = 0.618_033_988_749_894_8;
    let n_iter = ((rel_tol.ln() - (hi - lo).ln()) / INV_PHI.ln()).ceil().max(1.0) as usize;

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
        .map(|(mut ra, mut rt, mut rb, mut rr, block)| {
            // block: (T, W) for this row; gather each pixel's series contiguously
            let mut buf = vec![0.0f64; nt * w];
            for (j, trow) in block.axis_iter(Axis(0)).enumerate() {
                for (c, &v) in trow.iter().enumerate() {
                    buf[c * nt + j] = v.to_f64();
                }
            }
            let mut bad = 0usize;
            for c in 0..w {
                let y = &buf[c * nt..(c + 1) * nt];
                let sy: f64 = y.iter().sum();
                let syy: f64 = y.iter().map(|v| v * v).sum();
                if !syy.is_finite() {
                    bad += 1;
                    continue;
                }
                let (mut a, mut b) = (lo, hi);
                let mut x1 = b - INV_PHI * (b - a);
                let mut x2 = a + INV_PHI * (b - a);
                let mut f1 = series.eval(x1.exp(), y, sy, syy).2;
                let mut f2 = series.eval(x2.exp(), y, sy, syy).2;
                for _ in 0..n_iter {
                    if f1 <= f2 {
                        b = x2;
                        x2 = x1;
                        f2 = f1;
                        x1 = b - INV_PHI * (b - a);
                        f1 = series.eval(x1.exp(), y, sy, syy).2;
                    } else {
                        a = x1;
                        x1 = x2;
                        f1 = f2;
                        x2 = a + INV_PHI * (b - a);
                        f2 = series.eval(x2.exp(), y, sy, syy).2;
                    }
                }
                let k = (0.5 * (a + b)).exp();
                let (amp, off, rss) = series.eval(k, y, sy, syy);
                ra[c] = amp as f32;
                rt[c] = (1.0 / k) as f32;
                rb[c] = off as f32;
                rr[c] = rss as f32;
            }
            bad
        })
        .sum();
    if bad > 0 {
        return Err(CoreError::NonFinite { what: "frames".into(), count: bad });
    }
    Ok(out)
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
            let tt: Vec<f64> = if nonuniform { t.iter().map(|v| v * (1.0 + 0.01 * v)).collect() } else { t.clone() };
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
                    assert!((f.tau[[r, c]] as f64 / tau - 1.0).abs() < 1e-3, "{model:?} {:?}", f.tau);
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
        let f = decay_fit(frames.view(), &t, DecayModel::Exponential, true, 0.01, 10.0, 1e-5).unwrap();
        assert!(f.tau.iter().all(|v| v.is_finite()));
        assert!(f.offset.iter().all(|v| (v - 3.0).abs() < 1e-3));
        assert!(decay_fit(frames.view(), &t[..4], DecayModel::Exponential, true, 0.01, 10.0, 1e-5).is_err());
        let back = [0.0, 2.0, 1.0, 3.0, 4.0];
        assert!(decay_fit(frames.view(), &back, DecayModel::Exponential, true, 0.01, 10.0, 1e-5).is_err());
        assert!(decay_fit(frames.view(), &t, DecayModel::Exponential, true, 10.0, 1.0, 1e-5).is_err());
    }
}
