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

use super::conv::{fast_len, Grid, Ptr as CPtr, Scratch, Spectrum};
use crate::error::{CoreError, CoreResult};
use crate::fastmath::avx2_dispatch;

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
    let (n, h, w) = super::stack_dims(&stack, &out)?;
    let (kh, kw) = psf.dim();
    let k = super::psf_values(&psf)?;
    let ksum: f64 = k.iter().map(|&v| v as f64).sum();
    if !(opts.balance.is_finite() && opts.balance >= 0.0) {
        return Err(CoreError::parameter(format!(
            "balance must be >= 0, got {}",
            opts.balance
        )));
    }
    // Fewer images than threads: the threads share each image's passes.
    let par_inner = n < rayon::current_num_threads();
    // Reflect: the image means, row sums added in row order (the same value
    // on any number of threads). A sum of finite f32 values cannot overflow
    // f64, so finite sums are the finite check too; periodic needs its own.
    let row_sum = |r: ndarray::ArrayView1<f32>| r.iter().map(|&v| v as f64).sum::<f64>();
    let image_sum = |y: ArrayView2<f32>| -> f64 {
        if par_inner {
            let sums: Vec<f64> = y.axis_iter(Axis(0)).into_par_iter().map(row_sum).collect();
            sums.iter().sum()
        } else {
            y.axis_iter(Axis(0)).map(row_sum).sum()
        }
    };
    let means: Vec<f32> = match opts.boundary {
        WienerBoundary::Reflect => {
            let sums: Vec<f64> = if par_inner {
                stack.axis_iter(Axis(0)).map(image_sum).collect()
            } else {
                stack
                    .axis_iter(Axis(0))
                    .into_par_iter()
                    .map(image_sum)
                    .collect()
            };
            if sums.iter().any(|v| !v.is_finite()) {
                // Counts the bad values for the message.
                super::check_finite_images(&stack)?;
            }
            sums.iter().map(|&v| (v / (h * w) as f64) as f32).collect()
        }
        WienerBoundary::Periodic => {
            super::check_finite_images(&stack)?;
            vec![0.0; n]
        }
    };

    let (ph, pw) = match opts.boundary {
        WienerBoundary::Periodic => (0, 0),
        WienerBoundary::Reflect => opts.pad.unwrap_or((kh, kw)),
    };
    // A pad wider than the image (or the PSF, the default pad) only reflects
    // the reflection again: it cannot help, and pad = 10^7 aborted the
    // process allocating the grid (issue 17).
    if ph > h.max(kh) || pw > w.max(kw) {
        return Err(CoreError::parameter(format!(
            "pad ({ph}, {pw}) must be at most the image size ({h}, {w}) or the PSF size ({kh}, {kw}), whichever is larger"
        )));
    }
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
    let nn = (grid.nh * grid.nw) as f32;
    let b = opts.balance;
    // With fewer images than threads, and for a single image, the filter
    // is built inside the fused column pass, group by group, from the
    // kernel's few non-zero row spectra: no full-size spectrum buffers are
    // allocated or touched (the extra column FFT per group costs less than
    // the filter's full 2-D FFT and its passes over memory, unless many
    // images share the filter).
    let fused = par_inner || n == 1;
    let filt = if fused {
        None
    } else {
        let kspec = grid.place(&k, kh, kw, shift.0, shift.1, false)?;
        let lpow = grid.laplacian_power();
        Some(Spectrum {
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
        })
    };
    let (nh, nw) = (grid.nh, grid.nw);
    // Kernel rows placed on the grid (row a at (a - sh) mod nh, column b at
    // (b - sw) mod nw), as (grid row, row spectrum), unscaled.
    let krows: Vec<(usize, Vec<Complex32>)> = if fused {
        if kh > nh || kw > nw {
            return Err(CoreError::shape(format!(
                "kernel {kh} x {kw} does not fit the FFT grid {nh} x {nw}"
            )));
        }
        (0..kh)
            .map(|a| {
                let mut row = vec![0.0f32; nw];
                for bb in 0..kw {
                    let c = (bb as isize - shift.1).rem_euclid(nw as isize) as usize;
                    row[c] += k[a * kw + bb];
                }
                let mut spec = vec![Complex32::new(0.0, 0.0); grid.wc];
                grid.row_fft(&mut row, &mut spec);
                let r = (a as isize - shift.0).rem_euclid(nh as isize) as usize;
                (r, spec)
            })
            .collect()
    } else {
        Vec::new()
    };
    let tau = 2.0 * std::f64::consts::PI;
    // The Laplacian's transfer at (u, v) is (cu[u] + cv)^2 with
    // cu[u] = 2 - 2 cos(2 pi u / nh), cv likewise over the columns.
    let cu: Vec<f32> = if fused {
        (0..nh)
            .map(|u| (2.0 - 2.0 * (tau * u as f64 / nh as f64).cos()) as f32)
            .collect()
    } else {
        Vec::new()
    };
    let fused_mul =
        |c0: usize, buf: &mut [Complex32], ex: &mut Vec<Complex32>, cs: &mut [Complex32]| {
            let ng = buf.len() / nh;
            ex.clear();
            ex.resize(ng * nh, Complex32::new(0.0, 0.0));
            for (r, ks) in &krows {
                for j in 0..ng {
                    ex[j * nh + r] = ks[c0 + j];
                }
            }
            grid.col_fft(ex, cs);
            for j in 0..ng {
                let cv = (2.0 - 2.0 * (tau * (c0 + j) as f64 / nw as f64).cos()) as f32;
                let col = &mut buf[j * nh..(j + 1) * nh];
                filter_column(col, &ex[j * nh..(j + 1) * nh], &cu, cv, b, nn);
            }
        };
    let dc = if opts.boundary == WienerBoundary::Reflect {
        (1.0 / ksum) as f32
    } else {
        0.0
    };

    // Column source index and taper weight of each padded column (Reflect).
    let cidx: Vec<usize> = (0..w + 2 * pw)
        .map(|c| reflect(c as isize - pw as isize, w))
        .collect();
    let wc: Vec<f32> = (0..w + 2 * pw).map(|c| taper(c, w, pw)).collect();
    let pool: Mutex<Vec<Scratch>> = Mutex::new(Vec::new());
    let (gh, gw) = (h + 2 * ph, w + 2 * pw);
    let run_one = |i: usize, mut o: ArrayViewMut2<f32>| {
        let mut ws = pool
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_else(|| grid.scratch());
        let y = stack.index_axis(Axis(0), i);
        let mean = means[i];
        let scr = &mut ws;
        let fill = |r: usize, d: &mut [f32]| {
            if opts.boundary == WienerBoundary::Periodic {
                let yr = y.row(r);
                match yr.as_slice() {
                    Some(src) => d.copy_from_slice(src),
                    None => d.iter_mut().zip(yr.iter()).for_each(|(d, &v)| *d = v),
                }
            } else {
                let yr = y.row(reflect(r as isize - ph as isize, h));
                let tr = taper(r, h, ph);
                match yr.as_slice() {
                    Some(src) => {
                        // Tapered reflections at both ends, a straight copy
                        // (weight 1 on the columns) in between.
                        let (left, rest) = d.split_at_mut(pw);
                        let (mid, right) = rest.split_at_mut(w);
                        for (j, dv) in left.iter_mut().enumerate() {
                            *dv = (src[cidx[j]] - mean) * tr * wc[j];
                        }
                        for (dv, &v) in mid.iter_mut().zip(src) {
                            *dv = (v - mean) * tr;
                        }
                        for (j, dv) in right.iter_mut().enumerate() {
                            let c = pw + w + j;
                            *dv = (src[cidx[c]] - mean) * tr * wc[c];
                        }
                    }
                    None => {
                        for ((d, &c), &t) in d.iter_mut().zip(&cidx).zip(&wc) {
                            *d = (yr[c] - mean) * tr * t;
                        }
                    }
                }
            }
        };
        // The mean comes back (times the filter's DC gain) as each output
        // row is written.
        let add = mean * dc;
        let mut res = Vec::new();
        let (dst, contiguous) = match o.as_slice_mut() {
            Some(os) => (os, true),
            None => {
                res = vec![0.0f32; h * w];
                (&mut res[..], false)
            }
        };
        let op = CPtr(dst.as_mut_ptr());
        let emit = |r: usize, row: &mut [f32]| {
            // SAFETY: row r of the h x w output is written by this call only.
            let d = unsafe { op.row(r, w) };
            for (d, &v) in d.iter_mut().zip(row.iter()) {
                *d = v + add;
            }
        };
        match &filt {
            Some(f) => {
                grid.convolve_emit(&fill, gh, gw, &grid.product(f), &emit, h, w, scr, par_inner)
            }
            None => grid.convolve_emit(&fill, gh, gw, &fused_mul, &emit, h, w, scr, par_inner),
        }
        if !contiguous {
            o.iter_mut().zip(&res).for_each(|(d, &v)| *d = v);
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

avx2_dispatch! {
    /// Column v of the Wiener filter applied in place: x *= conj(K) /
    /// (nn (|K|^2 + b (cu + cv)^2)), zero where the denominator is; `kc` is
    /// the column of K, the PSF's transfer; nn undoes the unnormalised FFTs.
    fn filter_column(x: &mut [Complex32], kc: &[Complex32], cu: &[f32], cv: f32, b: f32, nn: f32) {
        for ((v, &k), &c) in x.iter_mut().zip(kc).zip(cu) {
            let (kr, ki) = (k.re, k.im);
            let lp = (c + cv) * (c + cv);
            let den = kr * kr + ki * ki + b * lp;
            // One division per point; den > 0 selects, branch-free.
            let s = if den > 0.0 { 1.0 / (den * nn) } else { 0.0 };
            let (vr, vi) = (v.re, v.im);
            *v = Complex32::new((vr * kr + vi * ki) * s, (vi * kr - vr * ki) * s);
        }
    }
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
