//! Paganin's single-distance phase retrieval (Paganin, Mayo, Gureyev, Miller
//! and Wilkins, J. Microsc. 206, 33, 2002, eq. 10) on a stack of
//! flat-fielded projections: each image (edge-padded by half its size on
//! each side, as `numpy.pad(mode="edge")`) is low-pass filtered by
//! 1 / (1 + pi lambda z (delta/beta) |f|^2), f in cycles per metre.
//!
//! One image at a time, each on all threads: the row r2c transforms, the
//! column transforms (forward, filter, inverse: the spectrum is never
//! stored whole in row order twice) and the inverse row transforms of the
//! rows kept run in parallel. Columns and rows go in blocks of `BLOCK` so
//! each transposing gather reads whole cache lines. float32 data and FFTs,
//! the filter computed in float64.

use crate::error::{CoreError, CoreResult};
use crate::rfft::RealFft;
use ndarray::{Array3, ArrayView2, ArrayView3, Axis};
use rayon::prelude::*;
use rustfft::num_complex::Complex32;
use rustfft::FftPlanner;

/// Columns (rows) per transposing block: 8 complex values = one 64-byte line.
const BLOCK: usize = 8;

/// What the filter needs besides the data, in SI units.
#[derive(Debug, Clone)]
pub struct Paganin {
    /// Pixel size at the sample, metres.
    pub pixel_size: f64,
    /// Propagation distance, metres.
    pub distance: f64,
    /// X-ray wavelength, metres.
    pub wavelength: f64,
    /// delta / beta of the material.
    pub delta_beta: f64,
    /// Pad by half the image on each side (edge values).
    pub pad: bool,
    /// Return -ln of the filtered transmission (else the transmission).
    pub log: bool,
}

impl Paganin {
    fn check(&self) -> CoreResult<()> {
        for (v, name) in [
            (self.pixel_size, "pixel size"),
            (self.distance, "distance"),
            (self.wavelength, "wavelength"),
            (self.delta_beta, "delta/beta"),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(CoreError::parameter(format!(
                    "{name} must be finite and > 0, got {v}"
                )));
            }
        }
        Ok(())
    }
}

/// Phase retrieval of a (image, row, column) stack of transmissions I / I0.
/// Returns the filtered transmission or its -ln, float32, same shape.
pub fn paganin(stack: ArrayView3<f32>, p: &Paganin) -> CoreResult<Array3<f32>> {
    p.check()?;
    let (ni, nr, nc) = stack.dim();
    if ni == 0 || nr == 0 || nc == 0 {
        return Err(CoreError::shape(format!(
            "transmission must be a non-empty (image, row, column) stack, got {:?}",
            stack.dim()
        )));
    }
    let bad = stack.iter().filter(|v| !v.is_finite()).count();
    if bad > 0 {
        return Err(CoreError::NonFinite {
            what: "transmission".into(),
            count: bad,
        });
    }
    let (pr, pc) = if p.pad { (nr / 2, nc / 2) } else { (0, 0) };
    let plan = Plan::new(nr, nc, pr, pc, p);
    let mut out = Array3::<f32>::zeros((ni, nr, nc));
    let mut spec = vec![Complex32::new(0.0, 0.0); plan.rp * plan.kc];
    let mut cols = vec![Complex32::new(0.0, 0.0); plan.kc * plan.rp];
    for (img, mut o) in stack.outer_iter().zip(out.outer_iter_mut()) {
        let o = o
            .as_slice_mut()
            .ok_or_else(|| CoreError::numerical("output not contiguous"))?;
        plan.image(img, o, &mut spec, &mut cols)?;
    }
    Ok(out)
}

struct Plan {
    nr: usize,
    nc: usize,
    pr: usize,
    pc: usize,
    /// Padded rows and columns.
    rp: usize,
    cp: usize,
    /// Complex values per row after r2c.
    kc: usize,
    fwd: RealFft,
    inv: RealFft,
    col_fwd: std::sync::Arc<dyn rustfft::Fft<f32>>,
    col_inv: std::sync::Arc<dyn rustfft::Fft<f32>>,
    /// Filter along the columns' frequency (per padded row index) and the
    /// rows' (per r2c bin), as the two terms of 1 + a fy^2 + a fx^2.
    fy2: Vec<f64>,
    fx2: Vec<f64>,
    log: bool,
}

impl Plan {
    fn new(nr: usize, nc: usize, pr: usize, pc: usize, p: &Paganin) -> Self {
        let (rp, cp) = (nr + 2 * pr, nc + 2 * pc);
        let kc = cp / 2 + 1;
        let mut planner = FftPlanner::<f32>::new();
        // a = pi lambda z (delta/beta), f = k / (n d): a f^2 = (a / d^2) (k / n)^2.
        let a = std::f64::consts::PI * p.wavelength * p.distance * p.delta_beta
            / (p.pixel_size * p.pixel_size);
        let fy2 = (0..rp)
            .map(|i| {
                // numpy.fft.fftfreq order: 0, 1, ..., then negative.
                let k = if i <= (rp - 1) / 2 {
                    i as f64
                } else {
                    i as f64 - rp as f64
                };
                a * (k / rp as f64).powi(2)
            })
            .collect();
        let fx2 = (0..kc)
            .map(|k| a * (k as f64 / cp as f64).powi(2))
            .collect();
        Plan {
            nr,
            nc,
            pr,
            pc,
            rp,
            cp,
            kc,
            fwd: RealFft::forward(cp),
            inv: RealFft::inverse(cp),
            col_fwd: planner.plan_fft_forward(rp),
            col_inv: planner.plan_fft_inverse(rp),
            fy2,
            fx2,
            log: p.log,
        }
    }

    /// Filter one image into `out` (nr x nc, row-major). `spec` (rp x kc)
    /// and `cols` (kc x rp) are work arrays.
    fn image(
        &self,
        img: ArrayView2<f32>,
        out: &mut [f32],
        spec: &mut [Complex32],
        cols: &mut [Complex32],
    ) -> CoreResult<()> {
        let (nr, nc, pr, pc, cp, kc, rp) = (
            self.nr, self.nc, self.pr, self.pc, self.cp, self.kc, self.rp,
        );
        let sc = self.fwd.scratch_len().max(self.inv.scratch_len());
        // 1. Rows: edge padding (the nearest image row and column) and r2c.
        spec.par_chunks_mut(kc).enumerate().for_each_init(
            || (vec![0.0f32; cp], vec![Complex32::new(0.0, 0.0); sc]),
            |(buf, scratch), (i, s)| {
                let src = img.index_axis(Axis(0), i.saturating_sub(pr).min(nr - 1));
                let (first, last) = (src[0], src[nc - 1]);
                buf[..pc].fill(first);
                for (b, &v) in buf[pc..pc + nc].iter_mut().zip(src.iter()) {
                    *b = v;
                }
                buf[pc + nc..].fill(last);
                self.fwd.r2c(buf, s, scratch);
            },
        );
        // 2. Columns, BLOCK at a time: gather, FFT, filter, inverse FFT,
        // stored transposed (kc x rp).
        let csc = self
            .col_fwd
            .get_inplace_scratch_len()
            .max(self.col_inv.get_inplace_scratch_len());
        let spec_ro: &[Complex32] = spec;
        // The 1 / (rp cp) normalisation of the two inverse transforms.
        let norm = 1.0 / (rp as f64 * cp as f64);
        cols.par_chunks_mut(BLOCK * rp).enumerate().for_each_init(
            || vec![Complex32::new(0.0, 0.0); csc],
            |scratch, (b, blk)| {
                let k0 = b * BLOCK;
                let nb = blk.len() / rp;
                for (i, row) in spec_ro.chunks_exact(kc).enumerate() {
                    for j in 0..nb {
                        blk[j * rp + i] = row[k0 + j];
                    }
                }
                for (j, col) in blk.chunks_exact_mut(rp).enumerate() {
                    self.col_fwd.process_with_scratch(col, scratch);
                    let fx2 = self.fx2[k0 + j];
                    for (v, &fy2) in col.iter_mut().zip(&self.fy2) {
                        *v *= (norm / (1.0 + fx2 + fy2)) as f32;
                    }
                    self.col_inv.process_with_scratch(col, scratch);
                }
            },
        );
        // 3. The rows kept, BLOCK at a time: gather from the transposed
        // spectrum, c2r, crop, and -ln where asked.
        let cols_ro: &[Complex32] = cols;
        let nonpos = out
            .par_chunks_mut(BLOCK * nc)
            .enumerate()
            .map_init(
                || {
                    (
                        vec![Complex32::new(0.0, 0.0); BLOCK * kc],
                        vec![0.0f32; cp],
                        vec![Complex32::new(0.0, 0.0); sc],
                    )
                },
                |(rows, buf, scratch), (b, blk)| {
                    let r0 = pr + b * BLOCK;
                    let nb = blk.len() / nc;
                    for (k, col) in cols_ro.chunks_exact(rp).enumerate() {
                        for j in 0..nb {
                            rows[j * kc + k] = col[r0 + j];
                        }
                    }
                    let mut bad = 0usize;
                    for (j, o) in blk.chunks_exact_mut(nc).enumerate() {
                        self.inv.c2r(&mut rows[j * kc..(j + 1) * kc], buf, scratch);
                        for (v, &f) in o.iter_mut().zip(&buf[pc..pc + nc]) {
                            if self.log {
                                bad += usize::from(f <= 0.0 || f.is_nan());
                                *v = -f.ln();
                            } else {
                                *v = f;
                            }
                        }
                    }
                    bad
                },
            )
            .sum::<usize>();
        if nonpos > 0 {
            return Err(CoreError::numerical(format!(
                "filtered transmission <= 0 at {nonpos} pixel(s): is the input I / I0 rather than -log?"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    fn params(pad: bool, log: bool) -> Paganin {
        Paganin {
            pixel_size: 1e-6,
            distance: 0.05,
            wavelength: 1.239841984e-9 / 20.0,
            delta_beta: 100.0,
            pad,
            log,
        }
    }

    /// A cosine of k cycles across the (unpadded, periodic) image comes out
    /// scaled by the filter at its frequency, along rows and along columns.
    #[test]
    fn cosine_scaled_by_filter() {
        let (nr, nc, k) = (48usize, 64usize, 5usize);
        let p = params(false, false);
        let a = std::f64::consts::PI * p.wavelength * p.distance * p.delta_beta;
        for along_rows in [false, true] {
            let n = if along_rows { nc } else { nr };
            let img = Array3::from_shape_fn((2, nr, nc), |(_, r, c)| {
                let x = if along_rows { c } else { r };
                1.0 + 0.01 * (2.0 * std::f32::consts::PI * (k * x) as f32 / n as f32).cos()
            });
            let out = paganin(img.view(), &p).unwrap();
            let f = k as f64 / (n as f64 * p.pixel_size);
            let want = 0.01 / (1.0 + a * f * f);
            // The cosine's peak sits at x = 0.
            let peak = out[[1, 0, 0]] as f64 - 1.0;
            assert!((peak - want).abs() < 1e-5, "{along_rows}: {peak} vs {want}");
        }
    }

    #[test]
    fn flat_stays_flat_and_errors() {
        let img = Array3::from_elem((1, 9, 7), 0.5f32);
        let out = paganin(img.view(), &params(true, true)).unwrap();
        for v in out.iter() {
            assert!((v - 0.5f32.ln().abs()).abs() < 1e-5, "{v}");
        }
        let neg = Array3::from_elem((1, 4, 4), -1.0f32);
        assert!(matches!(
            paganin(neg.view(), &params(false, true)),
            Err(CoreError::Numerical(_))
        ));
        let mut nan = Array3::from_elem((1, 4, 4), 1.0f32);
        nan[[0, 1, 1]] = f32::NAN;
        assert!(matches!(
            paganin(nan.view(), &params(false, true)),
            Err(CoreError::NonFinite { .. })
        ));
        let mut bad = params(false, true);
        bad.distance = 0.0;
        assert!(matches!(
            paganin(img.view(), &bad),
            Err(CoreError::Parameter(_))
        ));
        let empty = Array3::<f32>::zeros((0, 4, 4));
        assert!(matches!(
            paganin(empty.view(), &params(true, true)),
            Err(CoreError::Shape(_))
        ));
    }
}
