//! Noise power spectrum of a series of flat images, IEC 62220-1-1:2015.
//!
//! NPS(u, v) = dx dy / (M Nx Ny) * sum_m |DFT(I_m - S_m)|^2 over M regions
//! of Nx x Ny pixels (256 x 256, 50% overlap in the standard), with S a 2-D
//! polynomial fitted to the frame (the standard) or to each region. This
//! kernel returns the sum over regions of |DFT|^2 on the half plane
//! (Nx, Ny/2 + 1) and the count; the scaling and the 1-D cuts are done in
//! Python, where they are cheap.

use std::sync::Arc;

use ndarray::{s, Array2, ArrayView2, ArrayView3, Axis};
use rayon::prelude::*;
use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};
use rustfft::{Fft, FftPlanner};

use crate::error::{CoreError, CoreResult};
use crate::pixel::Pixel;

/// Sum over regions of |DFT|^2, with what is needed to normalise it.
#[derive(Debug, Clone)]
pub struct NpsSum {
    /// (roi, roi / 2 + 1): rows are v (fftfreq order), columns u >= 0.
    pub power: Array2<f64>,
    /// Number of regions summed (frames x regions per frame).
    pub n_rois: usize,
    /// Mean of the raw (not detrended) signal over the regions.
    pub mean: f64,
}

/// Monomials x^a y^b with a + b <= order, in a fixed order.
fn monomials(order: usize) -> Vec<(usize, usize)> {
    let mut m = Vec::new();
    for total in 0..=order {
        for b in 0..=total {
            m.push((total - b, b));
        }
    }
    m
}

/// Coordinate of index i of n in [-1, 1] (well conditioned for the fit).
#[inline]
fn coord(i: usize, n: usize) -> f64 {
    if n <= 1 {
        0.0
    } else {
        2.0 * i as f64 / (n - 1) as f64 - 1.0
    }
}

fn solve(mut a: Vec<f64>, mut b: Vec<f64>) -> CoreResult<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let piv = (col..n)
            .max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))
            .unwrap_or(col);
        if a[piv * n + col].abs() < 1e-300 {
            return Err(CoreError::numerical(
                "singular polynomial detrend (region too small for the order)",
            ));
        }
        if piv != col {
            for k in 0..n {
                a.swap(piv * n + k, col * n + k);
            }
            b.swap(piv, col);
        }
        for row in (col + 1)..n {
            let f = a[row * n + col] / a[col * n + col];
            for k in col..n {
                a[row * n + k] -= f * a[col * n + k];
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let mut s = b[row];
        for k in (row + 1)..n {
            s -= a[row * n + k] * x[k];
        }
        x[row] = s / a[row * n + row];
    }
    Ok(x)
}

/// Least-squares coefficients of a 2-D polynomial of total degree `order`
/// (<= 4) in coordinates scaled to [-1, 1] over `img`, ordered as
/// [x^a y^b for total in 0..=order for b in 0..=total] (a = total - b).
/// The Gram matrix is separable on the pixel grid, so one pass with three
/// sums per row is enough.
pub fn poly_detrend_coefficients<T: Pixel>(
    img: ArrayView2<T>,
    order: usize,
) -> CoreResult<Vec<f64>> {
    let (h, w) = img.dim();
    if order > 4 {
        return Err(CoreError::parameter(format!(
            "detrend order must be 0..=4, got {order}"
        )));
    }
    let mons = monomials(order);
    if h * w < mons.len() || (order > 0 && (h <= order || w <= order)) {
        return Err(CoreError::shape(format!(
            "a {h} x {w} region is too small for a degree-{order} detrend"
        )));
    }
    let xp: Vec<Vec<f64>> = (0..=2 * order)
        .map(|p| (0..w).map(|i| coord(i, w).powi(p as i32)).collect())
        .collect();
    let sx: Vec<f64> = xp.iter().map(|v| v.iter().sum()).collect();
    let sy: Vec<f64> = (0..=2 * order)
        .map(|p| (0..h).map(|i| coord(i, h).powi(p as i32)).sum())
        .collect();
    let n = mons.len();
    let mut gram = vec![0.0; n * n];
    for (i, &(a1, b1)) in mons.iter().enumerate() {
        for (j, &(a2, b2)) in mons.iter().enumerate() {
            gram[i * n + j] = sx[a1 + a2] * sy[b1 + b2];
        }
    }
    // Per row: S_a = sum_x x^a v, then sum y^b S_a.
    let rhs = img
        .axis_iter(Axis(0))
        .into_par_iter()
        .enumerate()
        .map(|(r, row)| {
            let y = coord(r, h);
            let mut sa = vec![0.0f64; order + 1];
            for (c, &v) in row.iter().enumerate() {
                let v = v.to_f64();
                for (a, s) in sa.iter_mut().enumerate() {
                    *s += xp[a][c] * v;
                }
            }
            mons.iter()
                .map(|&(a, b)| y.powi(b as i32) * sa[a])
                .collect::<Vec<f64>>()
        })
        .reduce(
            || vec![0.0; n],
            |mut acc, v| {
                acc.iter_mut().zip(v).for_each(|(a, b)| *a += b);
                acc
            },
        );
    if rhs.iter().any(|v| !v.is_finite()) {
        return Err(CoreError::NonFinite {
            what: "frames".into(),
            count: 1,
        });
    }
    solve(gram, rhs)
}

/// Polynomial value along one row: coefficients of x^a at height y.
fn row_poly(coefs: &[f64], order: usize, y: f64) -> Vec<f64> {
    let mut c = vec![0.0; order + 1];
    for (&(a, b), &k) in monomials(order).iter().zip(coefs) {
        c[a] += k * y.powi(b as i32);
    }
    c
}

struct Scratch {
    rows: Vec<f32>,
    spec: Vec<Complex<f32>>,
    rscratch: Vec<Complex<f32>>,
    cscratch: Vec<Complex<f32>>,
    acc: Vec<f64>,
    sum: f64,
    count: usize,
}

/// Sum of |DFT|^2 of detrended `roi` x `roi` regions, stepped by `step`
/// pixels, over all frames. `per_roi = false` fits the polynomial to each
/// whole frame (IEC 62220-1-1:2015), `true` to each region.
pub fn nps_sum<T: Pixel>(
    frames: ArrayView3<T>,
    roi: usize,
    step: usize,
    order: usize,
    per_roi: bool,
) -> CoreResult<NpsSum> {
    let (nf, h, w) = frames.dim();
    if nf == 0 {
        return Err(CoreError::shape("no frames"));
    }
    if roi < 4 || step == 0 {
        return Err(CoreError::parameter(format!(
            "roi must be >= 4 and step >= 1 (got {roi}, {step})"
        )));
    }
    if roi > h || roi > w {
        return Err(CoreError::shape(format!(
            "a {roi} x {roi} region does not fit in {h} x {w} frames"
        )));
    }
    let frame_fit: Vec<Option<Vec<f64>>> = if per_roi {
        vec![None; nf]
    } else {
        frames
            .axis_iter(Axis(0))
            .map(|f| poly_detrend_coefficients(f, order).map(Some))
            .collect::<CoreResult<_>>()?
    };
    let r0s: Vec<usize> = (0..=h - roi).step_by(step).collect();
    let c0s: Vec<usize> = (0..=w - roi).step_by(step).collect();
    let mut tasks = Vec::with_capacity(nf * r0s.len() * c0s.len());
    for f in 0..nf {
        for &r in &r0s {
            for &c in &c0s {
                tasks.push((f, r, c));
            }
        }
    }
    let nc = roi / 2 + 1;
    let rfft: Arc<dyn RealToComplex<f32>> = RealFftPlanner::<f32>::new().plan_fft_forward(roi);
    let cfft: Arc<dyn Fft<f32>> = FftPlanner::<f32>::new().plan_fft_forward(roi);
    let new_scratch = || Scratch {
        rows: vec![0.0; roi],
        spec: vec![Complex::new(0.0, 0.0); roi * nc],
        rscratch: rfft.make_scratch_vec(),
        cscratch: vec![Complex::new(0.0, 0.0); cfft.get_inplace_scratch_len()],
        acc: vec![0.0; roi * nc],
        sum: 0.0,
        count: 0,
    };
    let total = tasks
        .par_iter()
        .try_fold(new_scratch, |mut st, &(f, r0, c0)| -> CoreResult<Scratch> {
            let region = frames.slice(s![f, r0..r0 + roi, c0..c0 + roi]);
            let (coefs, rh, rw, ro, co) = match &frame_fit[f] {
                Some(c) => (c.clone(), h, w, r0, c0),
                None => (poly_detrend_coefficients(region, order)?, roi, roi, 0, 0),
            };
            let xs: Vec<f64> = (0..roi).map(|i| coord(co + i, rw)).collect();
            let mut rsum = 0.0f64;
            let mut rowbuf = vec![Complex::new(0.0f32, 0.0); nc];
            for (i, row) in region.axis_iter(Axis(0)).enumerate() {
                let pc = row_poly(&coefs, order, coord(ro + i, rh));
                let mut c = [0.0f64; 5];
                c[..pc.len()].copy_from_slice(&pc);
                for ((dst, &v), &x) in st.rows.iter_mut().zip(row.iter()).zip(&xs) {
                    let v = v.to_f64();
                    rsum += v;
                    // Horner over the (zero-padded) degree <= 4 coefficients
                    let p = (((c[4] * x + c[3]) * x + c[2]) * x + c[1]) * x + c[0];
                    *dst = (v - p) as f32;
                }
                rfft.process_with_scratch(&mut st.rows, &mut rowbuf, &mut st.rscratch)
                    .map_err(|e| CoreError::numerical(format!("FFT: {e}")))?;
                // column-major spectrum: column c holds the row transforms' bin c
                for (c, z) in rowbuf.iter().enumerate() {
                    st.spec[c * roi + i] = *z;
                }
            }
            if !rsum.is_finite() {
                return Err(CoreError::NonFinite {
                    what: "frames".into(),
                    count: 1,
                });
            }
            // acc is kept column-major like spec (contiguous updates); transposed once at the end
            for (col, acc) in st
                .spec
                .chunks_exact_mut(roi)
                .zip(st.acc.chunks_exact_mut(roi))
            {
                cfft.process_with_scratch(col, &mut st.cscratch);
                for (a, z) in acc.iter_mut().zip(col.iter()) {
                    *a += z.norm_sqr() as f64;
                }
            }
            st.sum += rsum;
            st.count += 1;
            Ok(st)
        })
        .try_reduce(new_scratch, |mut a, b| {
            a.acc.iter_mut().zip(&b.acc).for_each(|(x, y)| *x += y);
            a.sum += b.sum;
            a.count += b.count;
            Ok(a)
        })?;
    let acc = total.acc;
    let power = Array2::from_shape_fn((roi, nc), |(r, c)| acc[c * roi + r]);
    Ok(NpsSum {
        power,
        n_rois: total.count,
        mean: total.sum / (total.count * roi * roi) as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn detrend_recovers_a_quadratic() {
        let (h, w) = (40, 50);
        let img = Array2::from_shape_fn((h, w), |(r, c)| {
            let (y, x) = (coord(r, h), coord(c, w));
            (1.0 + 2.0 * x - 3.0 * y + 0.5 * x * x + 0.25 * x * y - 0.75 * y * y) as f32
        });
        let c = poly_detrend_coefficients(img.view(), 2).unwrap();
        // order: 1, x, y, x^2, xy, y^2
        let want = [1.0, 2.0, -3.0, 0.5, 0.25, -0.75];
        for (a, b) in c.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{c:?}");
        }
    }

    #[test]
    fn white_noise_power_is_variance_times_pixels() {
        // Deterministic pseudo-random values with variance 1/12.
        let mut s = 12345u64;
        let frames = Array3::from_shape_fn((2, 64, 64), |_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f64 / (1u64 << 31) as f64) as f32 + 10.0
        });
        let r = nps_sum(frames.view(), 32, 16, 0, false).unwrap();
        assert_eq!(r.n_rois, 2 * 3 * 3);
        let mean_power = r.power.slice(s![1.., 1..]).mean().unwrap() / r.n_rois as f64;
        let want = 32.0 * 32.0 / 12.0;
        assert!(
            (mean_power / want - 1.0).abs() < 0.05,
            "{mean_power} vs {want}"
        );
        assert!((r.mean - 10.5).abs() < 0.02);
    }

    #[test]
    fn bad_sizes_are_errors() {
        let f = Array3::<f32>::zeros((1, 8, 8));
        assert!(nps_sum(f.view(), 16, 8, 0, false).is_err());
        assert!(nps_sum(f.view(), 8, 0, 0, false).is_err());
        let mut g = Array3::<f32>::zeros((1, 8, 8));
        g[[0, 3, 3]] = f32::NAN;
        assert!(nps_sum(g.view(), 8, 8, 0, true).is_err());
    }
}
