//! The film's blur in the detector plane as part of the forward model:
//! A = B P, B the 2-D convolution of each projection (rows x columns) with
//! the PSF, zero outside the detector ('same' size, centred at ((kh - 1) / 2,
//! (kw - 1) / 2)), B^T the correlation with it. For parallel beam the rows
//! are the slices, so B couples slices: the operator always acts on a whole
//! block of them. FFTs on a grid of (rows + kh - 1) x (cols + kw - 1), large
//! enough that the circular convolution never wraps, planned once and shared
//! by the subsets of ordered-subset methods (`deconv::conv`).

use std::sync::Arc;

use super::{Projector, SyncPtr};
use crate::deconv::conv::{fast_len, Grid, Spectrum};
use crate::error::{CoreError, CoreResult};
use rayon::prelude::*;

struct Conv {
    grid: Grid,
    /// The PSF placed for B (convolution) and for B^T (correlation).
    fwd: Spectrum,
    adj: Spectrum,
    nr: usize,
    nc: usize,
}

impl Conv {
    fn new(psf: &[f32], kh: usize, kw: usize, nr: usize, nc: usize) -> CoreResult<Self> {
        if kh == 0 || kw == 0 || psf.len() != kh * kw {
            return Err(CoreError::shape(format!(
                "the PSF must be a non-empty 2-D array, got {kh} x {kw} for {} values",
                psf.len()
            )));
        }
        if kh > nr || kw > nc {
            return Err(CoreError::shape(format!(
                "the PSF ({kh} x {kw}) is larger than the detector ({nr} rows x {nc} columns): \
                 crop it, or reconstruct more rows"
            )));
        }
        let bad = psf.iter().filter(|v| !v.is_finite()).count();
        if bad > 0 {
            return Err(CoreError::NonFinite {
                what: "psf".into(),
                count: bad,
            });
        }
        let grid = Grid::new(fast_len(nr + kh - 1), fast_len(nc + kw - 1))?;
        let (ch, cw) = ((kh - 1) / 2, (kw - 1) / 2);
        let fwd = grid.place(psf, kh, kw, ch as isize, cw as isize, false)?;
        // y[s] = sum_a k[a] x[s - a + c]; its transpose sums k[a] y[s + a - c]:
        // the flipped kernel with shift (k - 1 - c), exact for even sizes too.
        let adj = grid.place(
            psf,
            kh,
            kw,
            (kh - 1 - ch) as isize,
            (kw - 1 - cw) as isize,
            true,
        )?;
        Ok(Conv {
            grid,
            fwd,
            adj,
            nr,
            nc,
        })
    }

    /// Every (nr, nc) image of `data` blurred in place (or correlated).
    fn apply(&self, data: &mut [f32], adjoint: bool) {
        let (nr, nc) = (self.nr, self.nc);
        let spec = if adjoint { &self.adj } else { &self.fwd };
        let g = &self.grid;
        let mul = g.product(spec);
        let one = |img: &mut [f32], s: &mut crate::deconv::conv::Scratch, par: bool| {
            let p = SyncPtr(img.as_mut_ptr());
            // The row pass reads all input rows before any output row is
            // emitted, so the image is overwritten in place.
            let fill = |r: usize, row: &mut [f32]| {
                // SAFETY: rows are read here, all before `emit` writes any.
                let src = unsafe { p.slice(r * nc, nc) };
                row.copy_from_slice(src);
            };
            let emit = |r: usize, row: &mut [f32]| {
                // SAFETY: each output row is emitted once, by one task.
                let dst = unsafe { p.slice(r * nc, nc) };
                dst.copy_from_slice(&row[..nc]);
            };
            g.convolve_emit(&fill, nr, nc, &mul, &emit, nr, nc, s, par);
        };
        let n_img = data.len() / (nr * nc);
        if n_img >= rayon::current_num_threads() {
            data.par_chunks_mut(nr * nc)
                .for_each_init(|| g.scratch(), |s, img| one(img, s, false));
        } else {
            let mut s = g.scratch();
            for img in data.chunks_mut(nr * nc) {
                one(img, &mut s, true);
            }
        }
    }
}

/// `inner` followed by the PSF in the detector plane.
pub struct Blurred<'a> {
    inner: Box<dyn Projector + 'a>,
    conv: Arc<Conv>,
}

impl<'a> Blurred<'a> {
    /// `psf` (kh, kw) row-major, applied to projections of `n_rows` x
    /// `n_cols`; refused when it is larger than the detector can use.
    pub fn new(
        inner: Box<dyn Projector + 'a>,
        psf: &[f32],
        kh: usize,
        kw: usize,
        n_rows: usize,
        n_cols: usize,
    ) -> CoreResult<Self> {
        if n_rows == 0 || n_cols == 0 || n_rows * n_cols * inner.n_angles() != inner.proj_len() {
            return Err(CoreError::shape(format!(
                "a {n_rows} x {n_cols} detector does not fit the projector's {} values over {} angles",
                inner.proj_len(),
                inner.n_angles()
            )));
        }
        Ok(Blurred {
            inner,
            conv: Arc::new(Conv::new(psf, kh, kw, n_rows, n_cols)?),
        })
    }
}

impl Projector for Blurred<'_> {
    fn vol_len(&self) -> usize {
        self.inner.vol_len()
    }

    fn proj_len(&self) -> usize {
        self.inner.proj_len()
    }

    fn n_angles(&self) -> usize {
        self.inner.n_angles()
    }

    fn forward(&self, x: &[f32], y: &mut [f32]) {
        self.inner.forward(x, y);
        self.conv.apply(y, false);
    }

    fn back(&self, y: &[f32], x: &mut [f32]) {
        let mut t = y.to_vec();
        self.conv.apply(&mut t, true);
        self.inner.back(&t, x);
    }

    fn subset(&self, angles: &[usize]) -> Box<dyn Projector + '_> {
        Box::new(Blurred {
            inner: self.inner.subset(angles),
            conv: self.conv.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{adjoint_error, rng};
    use super::super::ParallelProjector;
    use super::*;

    #[test]
    fn adjoint_with_psf() {
        // Odd and even PSFs, asymmetric (so B^T != B).
        for (kh, kw) in [(5, 3), (4, 6), (1, 1)] {
            let mut r = rng(kh as u64 * 10 + kw as u64);
            let psf: Vec<f32> = (0..kh * kw).map(|_| r() + 0.6).collect();
            let (n, nd, nz) = (12, 14, 6);
            let theta: Vec<f64> = (0..9).map(|a| a as f64 * 0.37).collect();
            let p = ParallelProjector::new(&theta, &vec![6.4; nz], n, nd).unwrap();
            let op = Blurred::new(Box::new(p), &psf, kh, kw, nz, nd).unwrap();
            let e = adjoint_error(&op, 5);
            assert!(e < 1e-4, "{kh} x {kw}: {e}");
            let sub = op.subset(&[1, 4, 7]);
            assert!(adjoint_error(sub.as_ref(), 6) < 1e-4);
        }
    }

    /// B of a delta is the PSF, centred on the delta (against a direct sum).
    #[test]
    fn blur_is_the_convolution() {
        let (kh, kw, nr, nc) = (3, 5, 7, 9);
        let mut r = rng(1);
        let psf: Vec<f32> = (0..kh * kw).map(|_| r() + 0.5).collect();
        let x: Vec<f32> = (0..nr * nc).map(|_| r()).collect();
        let c = Conv::new(&psf, kh, kw, nr, nc).unwrap();
        let mut y = x.clone();
        c.apply(&mut y, false);
        for i in 0..nr as isize {
            for j in 0..nc as isize {
                let mut s = 0f64;
                for a in 0..kh as isize {
                    for b in 0..kw as isize {
                        let (u, v) = (i - a + 1, j - b + 2);
                        if u >= 0 && v >= 0 && u < nr as isize && v < nc as isize {
                            s += psf[(a * kw as isize + b) as usize] as f64
                                * x[(u * nc as isize + v) as usize] as f64;
                        }
                    }
                }
                let got = y[(i * nc as isize + j) as usize] as f64;
                assert!((got - s).abs() < 1e-5, "({i}, {j}): {got} {s}");
            }
        }
    }

    #[test]
    fn psf_too_large() {
        let p = ParallelProjector::new(&[0.0], &[1.0; 3], 4, 4).unwrap();
        assert!(matches!(
            Blurred::new(Box::new(p), &[1.0; 6 * 3], 6, 3, 3, 4),
            Err(CoreError::Shape(_))
        ));
    }
}
