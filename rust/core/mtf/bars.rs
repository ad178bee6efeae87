//! Line-pair (bar) target kernels: local spectra of strip-averaged profiles
//! (group detection) and the per-group profile, frequency refinement and
//! folded contrast (the measurement). Python (`scintomo.mtf._detect`,
//! `scintomo.mtf.bars`) holds the same computations in numpy as references.

use std::cell::RefCell;
use std::sync::Arc;

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;
use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use crate::{CoreError, CoreResult, Pixel};

thread_local! {
    /// FFT plans of the refinement, cached per thread (sizes repeat across groups).
    static PLANNER: RefCell<RealFftPlanner<f64>> = RefCell::new(RealFftPlanner::new());
}

/// Per-window statistics of [`window_stats`], each (n_strips, n_windows).
pub struct WindowStats {
    /// Peak frequency (cycles/px), sub-bin Gaussian interpolation.
    pub freq: Array2<f64>,
    /// Fraction of the AC power in the three bins around the peak.
    pub conc: Array2<f64>,
    /// Power of the three peak bins per sample of windowed white noise
    /// (compare with the noise variance of the averaged profile).
    pub power: Array2<f64>,
}

fn hann(l: usize) -> Vec<f64> {
    (0..l)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * (i as f64 + 0.5) / l as f64).cos())
        .collect()
}

fn non_finite(what: &str) -> CoreError {
    CoreError::NonFinite {
        what: what.to_string(),
        count: 1,
    }
}

/// Local spectra for bar detection. Strips of `a` lines (step `step_a`) are
/// averaged along the bars and cut into windows of `l` samples across them
/// (step `step_l`); each window's profile minus its Hann-weighted mean, times
/// a Hann window, is Fourier transformed. `transpose = false`: the bars run
/// along the columns (strips of rows, profiles along a row); `true`: the
/// transposed image. Pixels the strips read must be finite.
pub fn window_stats<T: Pixel>(
    img: ArrayView2<'_, T>,
    transpose: bool,
    l: usize,
    a: usize,
    step_a: usize,
    step_l: usize,
) -> CoreResult<WindowStats> {
    let (h, w) = img.dim();
    let (vh, vw) = if transpose { (w, h) } else { (h, w) };
    if l < 6 || a == 0 || step_a == 0 || step_l == 0 {
        return Err(CoreError::parameter(format!(
            "window {l} px (>= 6), strip {a} lines and steps {step_a}, {step_l} (>= 1) required"
        )));
    }
    if vh < a || vw < l {
        return Err(CoreError::shape(format!(
            "image {h} x {w} smaller than one window ({a} x {l}, transpose = {transpose})"
        )));
    }
    let ns = (vh - a) / step_a + 1;
    let nw = (vw - l) / step_l + 1;
    let hw = hann(l);
    let hsum: f64 = hw.iter().sum();
    let h2: f64 = hw.iter().map(|v| v * v).sum();
    let fft: Arc<dyn RealToComplex<f64>> = RealFftPlanner::<f64>::new().plan_fft_forward(l);
    let nc = l / 2 + 1;
    let kmax = l / 2 - 1;
    let inv_a = 1.0 / a as f64;
    let rows: Vec<CoreResult<Vec<[f64; 3]>>> = (0..ns)
        .into_par_iter()
        .map_init(
            || {
                (
                    vec![0.0f64; vw],
                    vec![0.0f64; l],
                    vec![Complex::new(0.0, 0.0); nc],
                    fft.make_scratch_vec(),
                )
            },
            |(strip, buf, spec, scratch), s| {
                let r0 = s * step_a;
                strip.iter_mut().for_each(|v| *v = 0.0);
                if transpose {
                    // strip of image columns r0..r0+a; profile along the image rows
                    for (y, out) in strip.iter_mut().enumerate() {
                        let row = img.row(y);
                        let mut acc = 0.0;
                        for c in r0..r0 + a {
                            acc += row[c].to_f64();
                        }
                        *out = acc * inv_a;
                    }
                } else {
                    for r in r0..r0 + a {
                        for (out, v) in strip.iter_mut().zip(img.row(r).iter()) {
                            *out += v.to_f64();
                        }
                    }
                    strip.iter_mut().for_each(|v| *v *= inv_a);
                }
                if T::CAN_BE_NONFINITE && strip.iter().any(|v| !v.is_finite()) {
                    return Err(non_finite("image"));
                }
                let mut out = Vec::with_capacity(nw);
                for j in 0..nw {
                    let p = &strip[j * step_l..j * step_l + l];
                    let m = p.iter().zip(&hw).map(|(x, w)| x * w).sum::<f64>() / hsum;
                    for ((b, x), w) in buf.iter_mut().zip(p).zip(&hw) {
                        *b = (x - m) * w;
                    }
                    fft.process_with_scratch(buf, spec, scratch)
                        .map_err(|e| CoreError::numerical(format!("FFT failed: {e}")))?;
                    let pw = |k: usize| spec[k].norm_sqr();
                    let total: f64 = (1..nc).map(pw).sum();
                    let mut k = 1;
                    for kk in 2..=kmax {
                        if pw(kk) > pw(k) {
                            k = kk;
                        }
                    }
                    let k = k.max(2);
                    let (pm, pk, pp) = (pw(k - 1), pw(k), pw(k + 1));
                    let band = pm + pk + pp;
                    let mut d = 0.0;
                    if pm > 0.0 && pk > 0.0 && pp > 0.0 {
                        let (lm, l0, lp) = (pm.ln(), pk.ln(), pp.ln());
                        let den = lm - 2.0 * l0 + lp;
                        if den < 0.0 {
                            d = (0.5 * (lm - lp) / den).clamp(-0.5, 0.5);
                        }
                    }
                    let conc = if total > 0.0 { band / total } else { 0.0 };
                    out.push([(k as f64 + d) / l as f64, conc, band / (3.0 * h2)]);
                }
                Ok(out)
            },
        )
        .collect();
    let mut st = WindowStats {
        freq: Array2::zeros((ns, nw)),
        conc: Array2::zeros((ns, nw)),
        power: Array2::zeros((ns, nw)),
    };
    for (i, r) in rows.into_iter().enumerate() {
        for (j, v) in r?.into_iter().enumerate() {
            st.freq[[i, j]] = v[0];
            st.conc[[i, j]] = v[1];
            st.power[[i, j]] = v[2];
        }
    }
    Ok(st)
}

/// Region growing on the (strip, window) grid of [`window_stats`]: seeds in
/// order of decreasing `score` (ties: grid order), each growing over
/// 8-neighbours with `ok` whose frequency is within `tol` (relative) of the
/// seed's. Returns the label of each cell (-1: not `ok`), labels numbered in
/// seed order.
pub fn grow_regions(
    ok: ArrayView2<'_, bool>,
    freq: ArrayView2<'_, f64>,
    score: ArrayView2<'_, f64>,
    tol: f64,
) -> CoreResult<Array2<i64>> {
    let (ns, nw) = ok.dim();
    if freq.dim() != (ns, nw) || score.dim() != (ns, nw) {
        return Err(CoreError::shape(
            "ok, freq and score must have the same shape",
        ));
    }
    let mut seeds: Vec<(usize, usize)> = ok
        .indexed_iter()
        .filter(|(_, &v)| v)
        .map(|(ij, _)| ij)
        .collect();
    seeds.sort_by(|a, b| score[*b].total_cmp(&score[*a]));
    let mut label = Array2::<i64>::from_elem((ns, nw), -1);
    let mut next = 0i64;
    let mut stack = Vec::new();
    for &(i0, j0) in &seeds {
        if label[(i0, j0)] >= 0 {
            continue;
        }
        let f0 = freq[(i0, j0)];
        label[(i0, j0)] = next;
        stack.push((i0, j0));
        while let Some((i, j)) = stack.pop() {
            for u in i.saturating_sub(1)..(i + 2).min(ns) {
                for v in j.saturating_sub(1)..(j + 2).min(nw) {
                    if ok[(u, v)] && label[(u, v)] < 0 && (freq[(u, v)] - f0).abs() <= tol * f0 {
                        label[(u, v)] = next;
                        stack.push((u, v));
                    }
                }
            }
        }
        next += 1;
    }
    Ok(label)
}

/// One bar group's measurement: `hi`, `lo` (max and min of the per-phase-bin
/// medians of the folded profile), the refined frequency (cycles/px) and
/// whether the bars are vertical (profile across columns).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupContrast {
    pub hi: f64,
    pub lo: f64,
    pub freq: f64,
    pub vertical: bool,
}

/// Which way the bars of a group run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orientation {
    /// Choose from the data: the profile with the larger variance of its
    /// differences (the one across the bars).
    Auto,
    Vertical,
    Horizontal,
}

fn diff_var(p: &[f64]) -> f64 {
    if p.len() < 2 {
        return 0.0;
    }
    let n = (p.len() - 1) as f64;
    let mean = p.windows(2).map(|w| w[1] - w[0]).sum::<f64>() / n;
    p.windows(2)
        .map(|w| (w[1] - w[0] - mean).powi(2))
        .sum::<f64>()
        / n
}

/// |DTFT|^2 of `p` at frequency `f` (cycles/sample), by rotation.
fn dtft_power(p: &[f64], f: f64) -> f64 {
    let (dc, ds) = (
        (2.0 * std::f64::consts::PI * f).cos(),
        (2.0 * std::f64::consts::PI * f).sin(),
    );
    let (mut c, mut s) = (1.0f64, 0.0f64);
    let (mut re, mut im) = (0.0, 0.0);
    for (i, v) in p.iter().enumerate() {
        re += v * c;
        im -= v * s;
        let t = c * dc - s * ds;
        s = c * ds + s * dc;
        c = t;
        // re-anchor now and then against drift of the rotation
        if i % 256 == 255 {
            let ang = 2.0 * std::f64::consts::PI * f * (i + 1) as f64;
            c = ang.cos();
            s = ang.sin();
        }
    }
    re * re + im * im
}

/// Peak of the `nfft`-point zero-padded spectrum of `p - mean` on the grid
/// `k / nfft` within `[0.93 f, 1.07 f]`: a coarse zero-padded FFT (4x the
/// length, plans cached per thread) locates the peak, the fine grid is
/// evaluated around it directly.
fn refine_frequency(p: &[f64], f: f64) -> CoreResult<f64> {
    let n = p.len();
    let lg = (n as f64).log2().ceil() as u32;
    let nfft = 1usize << (lg + 2).max(15);
    let nc = (1usize << (lg + 2)).min(nfft);
    let mean = p.iter().sum::<f64>() / n as f64;
    let q: Vec<f64> = p.iter().map(|v| v - mean).collect();
    let fft = PLANNER.with(|pl| pl.borrow_mut().plan_fft_forward(nc));
    let mut buf = vec![0.0; nc];
    buf[..n].copy_from_slice(&q);
    let mut spec = fft.make_output_vec();
    fft.process(&mut buf, &mut spec)
        .map_err(|e| CoreError::numerical(format!("FFT failed: {e}")))?;
    let (flo, fhi) = (0.93 * f, 1.07 * f);
    // fine-grid indices in the band
    let k_lo = (flo * nfft as f64).ceil() as usize;
    let k_hi = ((fhi * nfft as f64).floor() as usize).min(nfft / 2);
    if k_lo > k_hi {
        return Ok(f);
    }
    let r = nfft / nc;
    // coarse bins whose neighbourhood meets the band
    let c_lo = k_lo / r;
    let c_hi = (k_hi / r + 1).min(nc / 2);
    let mut best_c = c_lo;
    let mut best = f64::NEG_INFINITY;
    for (c, z) in spec.iter().enumerate().take(c_hi + 1).skip(c_lo) {
        let kf = c * r;
        if kf + r < k_lo || kf > k_hi + r {
            continue;
        }
        let v = z.norm_sqr();
        if v > best {
            best = v;
            best_c = c;
        }
    }
    let a = (best_c * r).saturating_sub(r).max(k_lo);
    let b = (best_c * r + r).min(k_hi);
    let mut best_k = a;
    let mut best_v = f64::NEG_INFINITY;
    for k in a..=b.max(a) {
        if k > k_hi {
            break;
        }
        let v = dtft_power(&q, k as f64 / nfft as f64);
        if v > best_v {
            best_v = v;
            best_k = k;
        }
    }
    Ok(best_k as f64 / nfft as f64)
}

/// (max, min) of the per-bin medians of `p` folded at frequency `f`: the
/// first and last period are dropped for trains of >= 6 periods; `n_bins`
/// phase bins (`None`: `clamp(len / 3, 4, 48)`).
fn fold_contrast(p: &[f64], f: f64, n_bins: Option<usize>) -> (f64, f64) {
    let n = p.len();
    let keep = |x: usize| {
        if n as f64 * f >= 6.0 {
            let xf = x as f64;
            xf >= 1.0 / f && xf < n as f64 - 1.0 / f
        } else {
            true
        }
    };
    let kept: Vec<usize> = (0..n).filter(|&x| keep(x)).collect();
    let nb = n_bins
        .unwrap_or_else(|| (kept.len() / 3).clamp(4, 48))
        .max(1);
    let mut bins: Vec<Vec<f64>> = vec![Vec::new(); nb];
    for &x in &kept {
        let phase = (x as f64 * f).rem_euclid(1.0);
        let idx = ((phase * nb as f64) as usize).min(nb - 1);
        bins[idx].push(p[x]);
    }
    let (mut hi, mut lo) = (f64::NEG_INFINITY, f64::INFINITY);
    for b in bins.iter_mut().filter(|b| !b.is_empty()) {
        b.sort_unstable_by(|u, v| u.total_cmp(v));
        let m = b.len();
        let med = if m % 2 == 1 {
            b[m / 2]
        } else {
            0.5 * (b[m / 2 - 1] + b[m / 2])
        };
        hi = hi.max(med);
        lo = lo.min(med);
    }
    (hi, lo)
}

/// Add the pixels of `row` into `cols` (f64) and return their sum (four
/// partial sums, so that both loops vectorise).
#[inline]
fn add_row<T: Pixel>(cols: &mut [f64], row: &[T], want_sum: bool) -> f64 {
    for (o, v) in cols.iter_mut().zip(row) {
        *o += v.to_f64();
    }
    if !want_sum {
        return 0.0;
    }
    let mut acc = [0.0f64; 4];
    let mut it = row.chunks_exact(4);
    for c in &mut it {
        for k in 0..4 {
            acc[k] += c[k].to_f64();
        }
    }
    let tail: f64 = it.remainder().iter().map(|v| v.to_f64()).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Column means and (if `want_rows`) row means, float64, of
/// `img[r0..r1, c0..c1]`; rows in parallel chunks.
fn roi_means<T: Pixel>(
    img: &ArrayView2<'_, T>,
    roi: [usize; 4],
    want_rows: bool,
) -> (Vec<f64>, Vec<f64>) {
    let [r0, r1, c0, c1] = roi;
    let w = c1 - c0;
    let chunk = 32;
    let parts: Vec<(Vec<f64>, Vec<f64>)> = (r0..r1)
        .step_by(chunk)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|a| {
            let b = (a + chunk).min(r1);
            let mut cols = vec![0.0f64; w];
            let mut rows = Vec::with_capacity(b - a);
            let mut tmp: Vec<T> = Vec::new();
            for r in a..b {
                let row = img.row(r);
                let sum = match row.as_slice() {
                    Some(sl) => add_row(&mut cols, &sl[c0..c1], want_rows),
                    None => {
                        tmp.clear();
                        tmp.extend(row.iter().skip(c0).take(w).copied());
                        add_row(&mut cols, &tmp, want_rows)
                    }
                };
                rows.push(sum / w as f64);
            }
            (cols, rows)
        })
        .collect();
    let mut cols = vec![0.0f64; w];
    let mut rows = Vec::with_capacity(if want_rows { r1 - r0 } else { 0 });
    for (c, r) in parts {
        cols.iter_mut().zip(&c).for_each(|(x, y)| *x += y);
        if want_rows {
            rows.extend(r);
        }
    }
    let inv = 1.0 / (r1 - r0) as f64;
    cols.iter_mut().for_each(|v| *v *= inv);
    (cols, rows)
}

/// Row means of `img[r0..r1, c0..c1]` for horizontal bars: the columns are
/// summed as in [`roi_means`] and not needed, so each row is summed once.
fn roi_row_means<T: Pixel>(img: &ArrayView2<'_, T>, roi: [usize; 4]) -> Vec<f64> {
    let [r0, r1, c0, c1] = roi;
    let w = c1 - c0;
    (r0..r1)
        .into_par_iter()
        .map(|r| {
            let row = img.row(r);
            let s: f64 = match row.as_slice() {
                Some(sl) => {
                    let mut acc = [0.0f64; 4];
                    let mut it = sl[c0..c1].chunks_exact(4);
                    for c in &mut it {
                        for k in 0..4 {
                            acc[k] += c[k].to_f64();
                        }
                    }
                    let tail: f64 = it.remainder().iter().map(|v| v.to_f64()).sum();
                    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
                }
                None => row.iter().skip(c0).take(w).map(|v| v.to_f64()).sum(),
            };
            s / w as f64
        })
        .collect()
}

/// Measure bar groups: for each `rois[i] = [r0, r1, c0, c1]` (half-open) with
/// nominal frequency `freqs[i]` (cycles/px), the profile across the bars
/// (averaged along them), optionally the frequency refined on the data
/// (+-7%), and the folded contrast. Groups run in parallel.
pub fn group_contrasts<T: Pixel>(
    img: ArrayView2<'_, T>,
    rois: &[[usize; 4]],
    freqs: &[f64],
    orientation: &[Orientation],
    refine: bool,
    n_bins: Option<usize>,
) -> CoreResult<Vec<GroupContrast>> {
    let (h, w) = img.dim();
    if rois.len() != freqs.len() || rois.len() != orientation.len() {
        return Err(CoreError::shape(
            "rois, freqs and orientation must have the same length",
        ));
    }
    for (roi, f) in rois.iter().zip(freqs) {
        let [r0, r1, c0, c1] = *roi;
        if !(r0 < r1 && r1 <= h && c0 < c1 && c1 <= w) {
            return Err(CoreError::parameter(format!(
                "group region {roi:?} outside the image of shape ({h}, {w})"
            )));
        }
        if !(f.is_finite() && *f > 0.0 && *f < 0.5) {
            return Err(CoreError::parameter(format!(
                "group frequency {f} cycles/px not in (0, 0.5)"
            )));
        }
    }
    rois.par_iter()
        .zip(freqs.par_iter())
        .zip(orientation.par_iter())
        .map(|((roi, &f), &o)| {
            let (vertical, p) = match o {
                Orientation::Vertical => (true, roi_means(&img, *roi, false).0),
                Orientation::Horizontal => (false, roi_row_means(&img, *roi)),
                Orientation::Auto => {
                    let (cols, rows) = roi_means(&img, *roi, true);
                    if diff_var(&cols) >= diff_var(&rows) {
                        (true, cols)
                    } else {
                        (false, rows)
                    }
                }
            };
            if T::CAN_BE_NONFINITE && p.iter().any(|v| !v.is_finite()) {
                return Err(non_finite("image (bar group region)"));
            }
            if p.len() < 4 {
                return Err(CoreError::shape(
                    "a bar group's profile needs at least 4 pixels",
                ));
            }
            let fr = if refine { refine_frequency(&p, f)? } else { f };
            let (hi, lo) = fold_contrast(&p, fr, n_bins);
            Ok(GroupContrast {
                hi,
                lo,
                freq: fr,
                vertical,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bars(h: usize, w: usize, f: f64) -> Array2<f32> {
        Array2::from_shape_fn((h, w), |(_, c)| {
            if (c as f64 * f).rem_euclid(1.0) < 0.5 {
                1.0
            } else {
                0.0
            }
        })
    }

    #[test]
    fn window_peak_at_the_bar_frequency() {
        let f = 0.125; // 4 periods in a 32 px window
        let img = bars(64, 256, f);
        let st = window_stats(img.view(), false, 32, 16, 8, 8).unwrap();
        for v in st.freq.iter() {
            assert!((v - f).abs() < 0.01 * f, "{v}");
        }
        assert!(st.conc.iter().all(|&c| c > 0.8));
        // transposed image, transposed analysis: the same numbers
        let t = img.t().to_owned();
        let st2 = window_stats(t.view(), true, 32, 16, 8, 8).unwrap();
        assert!((&st.freq - &st2.freq).iter().all(|d| d.abs() < 1e-12));
    }

    #[test]
    fn an_edge_peaks_at_the_lowest_bin() {
        let img = Array2::from_shape_fn((32, 64), |(_, c)| if c >= 30 { 1.0f32 } else { 0.0 });
        let st = window_stats(img.view(), false, 32, 16, 8, 8).unwrap();
        // interpolated peak bin <= 2.5 (fewer than 2.5 periods): rejected by the caller
        assert!(st.freq.iter().all(|&f| f * 32.0 <= 2.5), "{:?}", st.freq);
    }

    #[test]
    fn contrast_and_frequency_of_a_square_wave() {
        let f = 0.1;
        let img = bars(40, 400, f);
        let r = group_contrasts(
            img.view(),
            &[[0, 40, 0, 400]],
            &[0.104],
            &[Orientation::Auto],
            true,
            None,
        )
        .unwrap();
        assert!(r[0].vertical);
        assert!((r[0].freq - f).abs() < 1e-4, "{}", r[0].freq);
        assert!((r[0].hi - 1.0).abs() < 1e-12 && r[0].lo.abs() < 1e-12);
    }

    #[test]
    fn regions_split_by_frequency() {
        // two touching blocks of different frequency, one of a third frequency apart
        let ok = Array2::from_shape_fn((4, 9), |(_, j)| j != 6);
        let freq = Array2::from_shape_fn((4, 9), |(_, j)| match j {
            0..=2 => 0.10,
            3..=5 => 0.13,
            _ => 0.101,
        });
        let score = Array2::from_shape_fn((4, 9), |(i, j)| (i * 9 + j) as f64);
        let l = grow_regions(ok.view(), freq.view(), score.view(), 0.05).unwrap();
        assert_eq!(l[(0, 6)], -1);
        assert_eq!(l[(0, 7)], 0); // highest score seeds first
        assert!(l[(0, 0)] >= 0 && l[(0, 0)] == l[(3, 2)]);
        assert!(l[(0, 3)] != l[(0, 2)] && l[(0, 3)] != l[(0, 7)]);
    }

    #[test]
    fn bad_input_is_an_error() {
        let img = Array2::<f32>::zeros((10, 10));
        assert!(window_stats(img.view(), false, 32, 8, 4, 8).is_err());
        let o = [Orientation::Auto];
        assert!(group_contrasts(img.view(), &[[0, 11, 0, 5]], &[0.1], &o, true, None).is_err());
        assert!(group_contrasts(img.view(), &[[0, 10, 0, 5]], &[0.6], &o, true, None).is_err());
        let mut nan = Array2::<f32>::zeros((10, 10));
        nan[[3, 3]] = f32::NAN;
        assert!(group_contrasts(nan.view(), &[[0, 10, 0, 10]], &[0.2], &o, false, None).is_err());
        assert!(window_stats(nan.view(), false, 8, 8, 4, 2).is_err());
    }
}
