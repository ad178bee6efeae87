//! Wiener / Tikhonov deconvolution of image stacks:
//! X = conj(K) Y / (|K|^2 + balance |L|^2), L the discrete Laplacian.
//!
//! - `WienerBoundary::Periodic`: scikit-image's `restoration.wiener` (the
//!   image is taken as periodic; PSF centre at (kh/2, kw/2) as its `ir2tf`).
//! - `WienerBoundary::Reflect` (default): the image minus its mean is padded
//!   by symmetric reflection and the pad is tapered to zero with a cosine
//!   (Tukey) ramp, so the periodic extension has no jump and the edges do not
//!   ring; the mean is added back (divided by the PSF's sum, the filter's DC
//!   gain). PSF centre at ((kh-1)/2, (kw-1)/2).

use std::sync::Mutex;

use ndarray::{ArrayView2, ArrayView3, ArrayViewMut2, ArrayViewMut3, Axis};
use rayon::prelude::*;
use rustfft::num_complex::Complex32;

use super::conv::{fast_len, Grid, Scratch, Spectrum};
use crate::error::{CoreError, CoreResult};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WienerBoundary {
    Periodic,
    Reflect,
}

#[derive(Clone, Debug)]
pub struct WienerOptions {
    pub balance: f32,
    pub boundary: WienerBoundary,
    /// Pad (rows, columns) on each side for `Reflect`; None: the PSF size.
    pub pad: Option<(usize, usize)>,
}

/// Symmetric reflection of index i (may be outside [0, n)) into [0, n).
fn reflect(i: isize, n: usize) -> usize {
    let p = 2 * n as isize;
    let m = i.rem_euclid(p);
    if m < n as isize {
        m as usize
    } else {
        (p - 1 - m) as usize
    }
}

/// Cosine taper weight for index i of a padded axis of length n + 2 pad.
fn taper(i: usize, n: usize, pad: usize) -> f32 {
    if pad == 0 {
        return 1.0;
    }
    let d = if i < pad {
        pad - i
    } else if i >= pad + n {
        i + 1 - pad - n
    } else {
        return 1.0;
    };
    let t = d as f32 / (pad as f32 + 1.0);
    0.5 * (1.0 + (std::f32::consts::PI * t).cos())
}

pub fn wiener(
    stack: ArrayView3<f32>,
    psf: ArrayView2<f32>,
    mut out: ArrayViewMut3<f32>,
    opts: &WienerOptions,
) -> CoreResult<()> {
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
    let (kh, kw) = psf.dim();
    if kh == 0 || kw == 0 {
        return Err(CoreError::shape("psf is empty"));
    }
    let k: Vec<f32> = psf.iter().copied().collect();
    let bad = k.iter().filter(|v| !v.is_finite()).count();
    if bad > 0 {
        return Err(CoreError::NonFinite {
            what: "psf".into(),
            count: bad,
        });
    }
    let ksum: f64 = k.iter().map(|&v| v as f64).sum();
    if !(opts.balance.is_finite() && opts.balance >= 0.0) {
        return Err(CoreError::parameter(format!(
            "balance must be >= 0, got {}",
            opts.balance
        )));
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

    let (ph, pw) = match opts.boundary {
        WienerBoundary::Periodic => (0, 0),
        WienerBoundary::Reflect => opts.pad.unwrap_or((kh, kw)),
    };
    let (grid, shift) = match opts.boundary {
        WienerBoundary::Periodic => {
            if kh > h || kw > w {
                return Err(CoreError::shape(format!(
                    "psf {kh} x {kw} is larger than the image {h} x {w}"
                )));
            }
            (Grid::new(h, w)?, ((kh / 2) as isize, (kw / 2) as isize))
        }
        WienerBoundary::Reflect => {
            let g = Grid::new(fast_len(h + 2 * ph), fast_len(w + 2 * pw))?;
            // Output row i reads padded row i + ph: fold that shift into K.
            (
                g,
                (
                    ((kh - 1) / 2) as isize - ph as isize,
                    ((kw - 1) / 2) as isize - pw as isize,
                ),
            )
        }
    };
    if opts.boundary == WienerBoundary::Reflect && ksum.abs() < 1e-12 {
        return Err(CoreError::parameter("psf sums to zero"));
    }
    let kspec = grid.place(&k, kh, kw, shift.0, shift.1, false)?;
    let lpow = grid.laplacian_power();
    let nn = (grid.nh * grid.nw) as f32;
    let b = opts.balance;
    let filt = Spectrum {
        data: kspec
            .data
            .par_iter()
            .zip(&lpow)
            .map(|(&ks, &lp)| {
                let kk = ks * nn;
                let den = kk.norm_sqr() + b * lp;
                if den > 0.0 {
                    kk.conj() / den / nn
                } else {
                    Complex32::new(0.0, 0.0)
                }
            })
            .collect(),
    };
    let dc = if opts.boundary == WienerBoundary::Reflect {
        (1.0 / ksum) as f32
    } else {
        0.0
    };

    let par_inner = n < rayon::current_num_threads();
    let pool: Mutex<Vec<(Scratch, Vec<f32>)>> = Mutex::new(Vec::new());
    let (gh, gw) = (h + 2 * ph, w + 2 * pw);
    let run_one = |i: usize, mut o: ArrayViewMut2<f32>| {
        let mut ws = pool
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_else(|| (grid.scratch(), vec![0.0f32; gh * gw]));
        let y = stack.index_axis(Axis(0), i);
        let mean = if opts.boundary == WienerBoundary::Reflect {
            (y.iter().map(|&v| v as f64).sum::<f64>() / (h * w) as f64) as f32
        } else {
            0.0
        };
        let (scr, buf) = (&mut ws.0, &mut ws.1);
        if opts.boundary == WienerBoundary::Periodic {
            for (d, &v) in buf.iter_mut().zip(y.iter()) {
                *d = v;
            }
        } else {
            let wc: Vec<f32> = (0..gw).map(|c| taper(c, w, pw)).collect();
            let rowfill = |r: usize, row: &mut [f32]| {
                let yr = y.row(reflect(r as isize - ph as isize, h));
                let tr = taper(r, h, ph);
                for (c, d) in row.iter_mut().enumerate() {
                    *d = (yr[reflect(c as isize - pw as isize, w)] - mean) * tr * wc[c];
                }
            };
            if par_inner {
                buf.par_chunks_mut(gw)
                    .enumerate()
                    .for_each(|(r, row)| rowfill(r, row));
            } else {
                buf.chunks_mut(gw)
                    .enumerate()
                    .for_each(|(r, row)| rowfill(r, row));
            }
        }
        let mut res = vec![0.0f32; h * w];
        grid.convolve(buf, gh, gw, &filt, &mut res, h, w, scr, par_inner);
        for (d, &v) in o.iter_mut().zip(&res) {
            *d = v + mean * dc;
        }
        if let Ok(mut p) = pool.lock() {
            p.push(ws);
        }
    };
    if par_inner {
        out.axis_iter_mut(Axis(0))
            .enumerate()
            .for_each(|(i, o)| run_one(i, o));
    } else {
        out.axis_iter_mut(Axis(0))
            .into_par_iter()
            .enumerate()
            .for_each(|(i, o)| run_one(i, o));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_indices() {
        let got: Vec<usize> = (-3..7).map(|i| reflect(i, 4)).collect();
        assert_eq!(got, vec![2, 1, 0, 0, 1, 2, 3, 3, 2, 1]);
    }

    #[test]
    fn delta_psf_with_zero_balance_is_identity() {
        let y = ndarray::Array3::<f32>::from_shape_fn((2, 9, 12), |(k, i, j)| {
            (k + i * 3 + j * j) as f32 * 0.1 + 1.0
        });
        let psf = ndarray::arr2(&[[0.0f32, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]);
        for boundary in [WienerBoundary::Periodic, WienerBoundary::Reflect] {
            let mut out = ndarray::Array3::<f32>::zeros((2, 9, 12));
            wiener(
                y.view(),
                psf.view(),
                out.view_mut(),
                &WienerOptions {
                    balance: 0.0,
                    boundary,
                    pad: None,
                },
            )
            .unwrap();
            let err = (&out - &y).iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(err < 1e-4, "{boundary:?}: {err}");
        }
    }
}
