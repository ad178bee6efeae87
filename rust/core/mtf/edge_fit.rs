//! One-call slanted-edge geometry: ISO 12233 centroids, windowed centroid
//! passes, matched-filter refinement of the edge line until it converges, the
//! oversampled projection of the ROI, the flat-field noise, and a bootstrap over
//! rows that reuses the per-row edge estimates (one weighted projection per
//! resample). Pixels are read in their own type; sums are float64.

use ndarray::{ArrayView2, Axis};
use rayon::prelude::*;

use crate::pixel::Pixel;
use crate::{CoreError, CoreResult};

/// Result of [`fit_edge`].
#[derive(Debug, Clone)]
pub struct EdgeFit {
    /// Edge column as a polynomial of the row index, ascending powers.
    pub coeffs: Vec<f64>,
    /// Rows projected (whole phase cycles, from row 0).
    pub rows_used: usize,
    /// Per-row edge estimate (line + last matched-filter shift), `rows_used` long.
    pub edges: Vec<f64>,
    /// Per-bin value sums, offset sums and counts of the final projection.
    pub sums: Vec<f64>,
    pub psum: Vec<f64>,
    pub counts: Vec<u64>,
    /// Offset (px) of the lower edge of bin 0.
    pub origin: f64,
    /// Matched-filter refinements done, and whether the line converged.
    pub iterations: usize,
    pub converged: bool,
    /// +1 when the values rise with the column, -1 otherwise.
    pub sign: f64,
    /// Std of one pixel from the outer fifths (horizontal differences / sqrt 2).
    pub noise: f64,
}

#[inline]
fn poly(coeffs: &[f64], r: f64) -> f64 {
    coeffs.iter().rev().fold(0.0, |acc, c| acc * r + c)
}

/// Weighted least-squares polynomial (order 1 or 2) of `ys` against the row
/// index, ascending coefficients; rows with weight 0 or a non-finite value are skipped.
pub fn polyfit_rows(ys: &[f64], ws: &[f64], order: usize) -> Option<Vec<f64>> {
    let n = order + 1;
    let len = ys.len() as f64;
    let (rc, sc) = ((len - 1.0) / 2.0, (len / 2.0).max(1.0));
    let mut a = [[0.0f64; 3]; 3];
    let mut b = [0.0f64; 3];
    let mut used = 0usize;
    for (r, (&y, &w)) in ys.iter().zip(ws).enumerate() {
        if w <= 0.0 || !y.is_finite() {
            continue;
        }
        used += 1;
        let t = (r as f64 - rc) / sc;
        let p = [1.0, t, t * t];
        for i in 0..n {
            b[i] += w * p[i] * y;
            for j in 0..n {
                a[i][j] += w * p[i] * p[j];
            }
        }
    }
    if used < n + 1 {
        return None;
    }
    // Gaussian elimination with partial pivoting
    for col in 0..n {
        let piv = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[piv][col].abs() < 1e-300 {
            return None;
        }
        a.swap(col, piv);
        b.swap(col, piv);
        for row in col + 1..n {
            let f = a[row][col] / a[col][col];
            let pivot_row = a[col];
            for (x, p) in a[row][col..n].iter_mut().zip(&pivot_row[col..n]) {
                *x -= f * p;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = [0.0f64; 3];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| a[i][k] * x[k]).sum();
        x[i] = (b[i] - s) / a[i][i];
    }
    // back to powers of r: t = (r - rc) / sc
    let (u, v) = (1.0 / sc, -rc / sc); // t = u r + v
    let out = if order == 1 {
        vec![x[0] + x[1] * v, x[1] * u]
    } else {
        vec![
            x[0] + x[1] * v + x[2] * v * v,
            x[1] * u + 2.0 * x[2] * u * v,
            x[2] * u * u,
        ]
    };
    out.iter().all(|c| c.is_finite()).then_some(out)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_unstable_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Least squares with one rejection of gross outliers (5 MAD + `slack` px).
fn robust_fit(ys: &[f64], order: usize, slack: f64) -> Option<Vec<f64>> {
    let ones = vec![1.0; ys.len()];
    let fit = polyfit_rows(ys, &ones, order)?;
    let res: Vec<f64> = ys
        .iter()
        .enumerate()
        .map(|(r, y)| y - poly(&fit, r as f64))
        .collect();
    let mut fin: Vec<f64> = res.iter().copied().filter(|v| v.is_finite()).collect();
    let med = median(&mut fin);
    let mut dev: Vec<f64> = fin.iter().map(|v| (v - med).abs()).collect();
    let mad = median(&mut dev) * 1.4826 + 1e-12;
    let ws: Vec<f64> = res
        .iter()
        .map(|v| {
            if v.abs() < 5.0 * mad + slack {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    polyfit_rows(ys, &ws, order).or(Some(fit))
}

/// Centroid (column, px) of the Hamming-windowed derivative of one row (ISO 12233).
fn iso_centroid(d: &[f64]) -> f64 {
    let n = d.len();
    let (mut s, mut sx) = (0.0, 0.0);
    for (j, v) in d.iter().enumerate() {
        s += v;
        sx += v * (j as f64 + 0.5);
    }
    let c0 = if s != 0.0 { sx / s } else { n as f64 / 2.0 };
    let centre = c0 - 0.5;
    let half = centre.max(n as f64 - 1.0 - centre).max(1.0);
    let delta = std::f64::consts::PI / half;
    // cos(delta (j - centre)) by four interleaved rotations (independent chains)
    let mut cr = [0.0f64; 4];
    let mut ci = [0.0f64; 4];
    for l in 0..4 {
        let a = (l as f64 - centre) * delta;
        cr[l] = a.cos();
        ci[l] = a.sin();
    }
    let (dr, di) = ((4.0 * delta).cos(), (4.0 * delta).sin());
    let mut s = [0.0f64; 4];
    let mut sx = [0.0f64; 4];
    for (q, chunk) in d.chunks(4).enumerate() {
        for (l, v) in chunk.iter().enumerate() {
            let j = (4 * q + l) as f64;
            // |j - centre| <= half for every column by the choice of half
            let w = (0.54 + 0.46 * cr[l]) * v;
            s[l] += w;
            sx[l] += w * (j + 0.5);
        }
        for l in 0..4 {
            let t = cr[l] * dr - ci[l] * di;
            ci[l] = cr[l] * di + ci[l] * dr;
            cr[l] = t;
        }
    }
    let s: f64 = s.iter().sum();
    let sx: f64 = sx.iter().sum();
    if s != 0.0 {
        sx / s
    } else {
        c0
    }
}

/// Centroid of the derivative restricted to columns within `half` px of `e`
/// (NaN when the windowed derivative does not sum to a positive value).
fn window_centroid<T: Pixel>(row: &[T], sign: f64, e: f64, half: f64) -> f64 {
    let w = row.len();
    let j0 = (e - half).floor().max(0.0) as usize;
    let j1 = ((e + half).ceil().max(0.0) as usize).min(w - 1);
    let (mut s, mut sx) = (0.0, 0.0);
    for j in j0..j1 {
        let d = (row[j + 1].to_f64() - row[j].to_f64()) * sign;
        s += d;
        sx += d * (j as f64 + 0.5);
    }
    if s > 0.0 {
        sx / s
    } else {
        f64::NAN
    }
}

/// Adds columns `j0..j1` of one row (weight `k`) into the value sums `s`, and
/// its count and position terms into the strided difference arrays `cd`, `qd`
/// (length `nb + os`, see [`finish_bins`]). The bin index
/// `floor((j - e - origin) * os)` is `j * os + floor((-e - origin) * os)` for an
/// integer `os`: it advances by `os` per column.
#[allow(clippy::too_many_arguments)]
#[inline]
fn bin_row<T: Pixel>(
    row: &ndarray::ArrayView1<'_, T>,
    j0: usize,
    j1: usize,
    e: f64,
    origin: f64,
    os: usize,
    k: f64,
    s: &mut [f64],
    cd: &mut [f64],
    qd: &mut [f64],
) {
    let nb = s.len() as i64;
    let osl = os as i64;
    let base = ((-e - origin) * os as f64).floor() as i64;
    // first column whose bin index is >= 0, last one < nb
    let mut ja = j0 as i64;
    if base + ja * osl < 0 {
        ja = (-base + osl - 1).div_euclid(osl);
    }
    let jb = (j1 as i64).min((nb - 1 - base).div_euclid(osl) + 1);
    if jb <= ja {
        return;
    }
    let (ia, ie) = ((base + ja * osl) as usize, (base + jb * osl) as usize);
    // fractional offset of this row's bins: (j - e) = (i / os + origin) - frac
    let frac = base as f64 / os as f64 + e + origin;
    cd[ia] += k;
    cd[ie] -= k;
    qd[ia] += k * frac;
    qd[ie] -= k * frac;
    let (ja, jb) = (ja as usize, jb as usize);
    match row.as_slice() {
        Some(sl) => {
            for (t, v) in sl[ja..jb].iter().enumerate() {
                s[ia + t * os] += k * v.to_f64();
            }
        }
        None => {
            for j in ja..jb {
                s[ia + (j - ja) * os] += k * row[j].to_f64();
            }
        }
    }
}

/// Projection accumulators: value sums per bin and the strided difference
/// arrays of counts and offsets (see [`bin_row`]).
struct Bins {
    s: Vec<f64>,
    cd: Vec<f64>,
    qd: Vec<f64>,
}

impl Bins {
    fn new(nb: usize, os: usize) -> Self {
        Bins {
            s: vec![0.0; nb],
            cd: vec![0.0; nb + os],
            qd: vec![0.0; nb + os],
        }
    }

    /// Bins rows `rows` (weight `weight(r)`; rows of weight 0 are skipped) of
    /// `img` by `col - edge(row)`, the edge `poly(coeffs, row)`; only offsets
    /// within `[lo, hi]` are binned.
    #[allow(clippy::too_many_arguments)]
    fn add_rows<T: Pixel>(
        &mut self,
        img: &ArrayView2<'_, T>,
        coeffs: &[f64],
        rows: impl Iterator<Item = usize>,
        weight: impl Fn(usize) -> f64,
        (lo, hi): (f64, f64),
        origin: f64,
        os: usize,
    ) {
        let w = img.ncols() as f64;
        for r in rows {
            let k = weight(r);
            if k == 0.0 {
                continue;
            }
            let e = poly(coeffs, r as f64);
            let j0 = (e + lo).ceil().max(0.0) as usize;
            let j1 = ((e + hi).floor() + 1.0).clamp(0.0, w) as usize;
            let row = img.row(r);
            bin_row(
                &row,
                j0,
                j1.max(j0),
                e,
                origin,
                os,
                k,
                &mut self.s,
                &mut self.cd,
                &mut self.qd,
            );
        }
    }

    fn merge(mut self, o: Bins) -> Bins {
        for (a, b) in [
            (&mut self.s, &o.s),
            (&mut self.cd, &o.cd),
            (&mut self.qd, &o.qd),
        ] {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
        self
    }

    /// (value sums, offset sums, counts), `nb` each.
    fn finish(mut self, origin: f64, os: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let nb = self.s.len();
        let p = finish_bins(&mut self.cd, &mut self.qd, nb, origin, os);
        self.cd.truncate(nb);
        (self.s, p, self.cd)
    }
}

/// Counts and offset sums from the strided difference arrays of [`bin_row`].
fn finish_bins(cd: &mut [f64], qd: &mut [f64], nb: usize, origin: f64, os: usize) -> Vec<f64> {
    for i in os..nb {
        cd[i] += cd[i - os];
        qd[i] += qd[i - os];
    }
    (0..nb)
        .map(|i| (i as f64 / os as f64 + origin) * cd[i] - qd[i])
        .collect()
}

/// Projection of the first `rows` rows (weights per row, None: 1) into bins of
/// 1/`os` px of `col - edge(row)` starting at `origin`; only offsets within
/// `[lo, hi]` are binned. Returns (value sums, offset sums, counts).
#[allow(clippy::too_many_arguments)]
fn project<T: Pixel>(
    img: &ArrayView2<'_, T>,
    coeffs: &[f64],
    rows: usize,
    weights: Option<&[f64]>,
    origin: f64,
    nb: usize,
    os: f64,
    lo: f64,
    hi: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let osi = os as usize;
    let chunk = rows.div_ceil(rayon::current_num_threads().max(1)).max(64);
    let idx: Vec<usize> = (0..rows).collect();
    let (s, p, mut cd) = idx
        .par_chunks(chunk)
        .map(|rs| {
            let mut b = Bins::new(nb, osi);
            let wt = |r: usize| weights.map_or(1.0, |wt| wt[r]);
            b.add_rows(img, coeffs, rs.iter().copied(), wt, (lo, hi), origin, osi);
            b
        })
        .reduce(|| Bins::new(nb, osi), Bins::merge)
        .finish(origin, osi);
    // counts are sums of weights: remove the rounding of the running sums
    cd.iter_mut()
        .for_each(|v| *v = if v.abs() < 1e-9 { 0.0 } else { *v });
    (s, p, cd)
}

/// Bin means at their mean positions, resampled linearly onto the regular grid
/// `origin + (i + 0.5) / os` (constant beyond the populated bins).
pub fn resample_bins(s: &[f64], p: &[f64], c: &[f64], origin: f64, os: f64) -> Option<Vec<f64>> {
    let pts: Vec<(f64, f64)> = (0..s.len())
        .filter(|&i| c[i] > 0.0)
        .map(|i| (p[i] / c[i], s[i] / c[i]))
        .collect();
    if pts.len() < 2 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len());
    let mut k = 0usize;
    for i in 0..s.len() {
        let x = origin + (i as f64 + 0.5) / os;
        while k + 1 < pts.len() && pts[k + 1].0 < x {
            k += 1;
        }
        let v = if x <= pts[0].0 {
            pts[0].1
        } else if k + 1 >= pts.len() {
            pts[pts.len() - 1].1
        } else {
            let (x0, y0) = pts[k];
            let (x1, y1) = pts[k + 1];
            if x1 > x0 {
                y0 + (x - x0) * (y1 - y0) / (x1 - x0)
            } else {
                y0
            }
        };
        out.push(v);
    }
    Some(out)
}

/// Per-row least-squares shift of the rows against the tabulated ESF (see
/// `row_shifts`); NaN when a row has no pixel in the table.
fn shifts<T: Pixel>(
    img: &ArrayView2<'_, T>,
    coeffs: &[f64],
    rows: usize,
    x0: f64,
    step: f64,
    esf: &[f64],
    grad: &[f64],
) -> Vec<f64> {
    let n = esf.len();
    let w = img.ncols();
    (0..rows)
        .into_par_iter()
        .map(|r| {
            let e = poly(coeffs, r as f64);
            let j0 = (e + x0).ceil().max(0.0) as usize;
            let j1 = ((e + x0 + (n - 1) as f64 * step).floor() + 1.0).clamp(0.0, w as f64) as usize;
            let row = img.row(r);
            let (mut num, mut den) = (0.0, 0.0);
            for j in j0..j1.max(j0) {
                let u = (j as f64 - e - x0) / step;
                let i = (u.max(0.0) as usize).min(n - 2);
                let a = (u - i as f64).clamp(0.0, 1.0);
                let ev = esf[i] + a * (esf[i + 1] - esf[i]);
                let d = grad[i] + a * (grad[i + 1] - grad[i]);
                num += (row[j].to_f64() - ev) * d;
                den += d * d;
            }
            if den > 0.0 {
                -num / den
            } else {
                f64::NAN
            }
        })
        .collect()
}

/// Bin range (origin, count) covering every offset of the first `rows` rows.
fn bin_range(coeffs: &[f64], rows: usize, w: usize, os: f64) -> CoreResult<(f64, usize)> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for r in [0, rows - 1]
        .into_iter()
        .chain((0..rows).step_by(rows.div_ceil(64).max(1)))
    {
        let e = poly(coeffs, r as f64);
        lo = lo.min(-e);
        hi = hi.max(w as f64 - 1.0 - e);
    }
    if coeffs.len() > 2 {
        // a parabola may peak between the sampled rows
        for r in 0..rows {
            let e = poly(coeffs, r as f64);
            lo = lo.min(-e);
            hi = hi.max(w as f64 - 1.0 - e);
        }
    }
    let origin = lo.floor();
    let nbf = ((hi - origin) * os).floor() + 1.0;
    if !nbf.is_finite() || nbf > (1u64 << 26) as f64 {
        return Err(CoreError::numerical(
            "edge fit too steep: too many bins (is there an edge in the ROI?)",
        ));
    }
    Ok((origin, nbf as usize))
}

/// Whole phase cycles: the number of rows over which the edge moves by a whole
/// number of pixels (all rows when the edge is vertical to 1e-6).
fn whole_cycles(coeffs: &[f64], h: usize) -> usize {
    let mid = (h as f64 - 1.0) / 2.0;
    let slope = coeffs[1]
        + if coeffs.len() > 2 {
            2.0 * coeffs[2] * mid
        } else {
            0.0
        };
    let s = slope.abs();
    if s <= 1e-6 {
        return h;
    }
    let ncyc = (h as f64 * s).floor();
    if ncyc < 1.0 {
        return h;
    }
    ((ncyc / s).round() as usize).clamp(2, h)
}

/// Noise of one pixel: std of the horizontal differences in the outer fifth of
/// the columns on each side, averaged over the sides, divided by sqrt 2.
fn flat_noise<T: Pixel>(img: &ArrayView2<'_, T>) -> f64 {
    let w = img.ncols();
    let kc = (w / 5).max(2).min(w);
    let side = |a: usize| -> f64 {
        let (s, s2, n) = img
            .axis_iter(Axis(0))
            .into_par_iter()
            .map(|row| {
                let (mut s, mut s2) = (0.0, 0.0);
                for j in a..a + kc - 1 {
                    let d = row[j + 1].to_f64() - row[j].to_f64();
                    s += d;
                    s2 += d * d;
                }
                (s, s2, (kc - 1) as f64)
            })
            .reduce(|| (0.0, 0.0, 0.0), |x, y| (x.0 + y.0, x.1 + y.1, x.2 + y.2));
        if n == 0.0 {
            return 0.0;
        }
        let m = s / n;
        (s2 / n - m * m).max(0.0).sqrt()
    };
    0.5 * (side(0) + side(w - kc)) / std::f64::consts::SQRT_2
}

/// Total rise along the rows and along the columns: (sum over rows of
/// last - first, sum over columns of last - first). For an edge crossing the ROI
/// these are the contrast times the edge's vertical and horizontal extents, so
/// |x| > |y| means a near-vertical edge; noise cancels in the telescoped sums.
pub fn gradient_sums<T: Pixel>(img: ArrayView2<'_, T>) -> (f64, f64) {
    let (h, w) = img.dim();
    if h == 0 || w == 0 {
        return (0.0, 0.0);
    }
    let gx: f64 = img
        .axis_iter(Axis(0))
        .map(|r| r[w - 1].to_f64() - r[0].to_f64())
        .sum();
    let (top, bottom) = (img.row(0), img.row(h - 1));
    let gy: f64 = top
        .iter()
        .zip(bottom.iter())
        .map(|(a, b)| b.to_f64() - a.to_f64())
        .sum();
    (gx, gy)
}

/// ESF on the regular grid, its derivative, and the part where it changes:
/// returns (x of the first table entry, esf, grad) of the significant part.
fn esf_table(
    s: &[f64],
    p: &[f64],
    c: &[f64],
    origin: f64,
    os: f64,
) -> CoreResult<(f64, Vec<f64>, Vec<f64>)> {
    let esf = resample_bins(s, p, c, origin, os).ok_or_else(|| {
        CoreError::numerical("too few populated bins: is there an edge in the ROI?")
    })?;
    let n = esf.len();
    if n < 8 {
        return Err(CoreError::numerical(
            "too few populated bins: is there an edge in the ROI?",
        ));
    }
    let mut grad = vec![0.0; n];
    grad[0] = (esf[1] - esf[0]) * os;
    grad[n - 1] = (esf[n - 1] - esf[n - 2]) * os;
    for i in 1..n - 1 {
        grad[i] = (esf[i + 1] - esf[i - 1]) * os / 2.0;
    }
    // |9-tap moving average| > 2% of its peak, plus 8 bins each side
    let mut sm = vec![0.0; n];
    for (i, v) in sm.iter_mut().enumerate() {
        let a = i.saturating_sub(4);
        let b = (i + 5).min(n);
        *v = (grad[a..b].iter().sum::<f64>() / 9.0).abs();
    }
    // bins only a few rows reach are noisy: leave them out of the test
    let mut cs: Vec<f64> = c.iter().copied().filter(|&v| v > 0.0).collect();
    let full = 0.5 * median(&mut cs);
    for (v, &cnt) in sm.iter_mut().zip(c) {
        if cnt < full {
            *v = 0.0;
        }
    }
    let peak = sm.iter().cloned().fold(0.0, f64::max);
    let sig: Vec<usize> = (0..n).filter(|&i| sm[i] > 0.02 * peak).collect();
    let (a0, a1) = match (sig.first(), sig.last()) {
        (Some(&f), Some(&l)) => (f.saturating_sub(8), (l + 9).min(n)),
        _ => (0, n),
    };
    Ok((
        origin + (a0 as f64 + 0.5) / os,
        esf[a0..a1].to_vec(),
        grad[a0..a1].to_vec(),
    ))
}

/// Full slanted-edge geometry of an (H, W) ROI whose edge runs along the
/// columns: see the module doc. `max_refine`: matched-filter refinements at
/// most (stops when the line moves by less than `tol_px` at any row).
/// Largest oversampling (bins per pixel) of the projected ESF; ISO 12233
/// uses 4, and beyond a few dozen the bins hold no data.
pub const MAX_OVERSAMPLING: usize = 64;

pub fn fit_edge<T: Pixel>(
    img: ArrayView2<'_, T>,
    order: usize,
    oversampling: usize,
    max_refine: usize,
    tol_px: f64,
) -> CoreResult<EdgeFit> {
    let (h, w) = img.dim();
    if h < 4 || w < 8 {
        return Err(CoreError::shape(format!(
            "the edge ROI must be at least 4 x 8 px, got {h} x {w}"
        )));
    }
    if !(1..=2).contains(&order) || !(1..=MAX_OVERSAMPLING).contains(&oversampling) {
        return Err(CoreError::parameter(format!(
            "fit order must be 1 or 2 and oversampling 1..={MAX_OVERSAMPLING}, got {order} and {oversampling}"
        )));
    }
    let os = oversampling as f64;
    let total: f64 = img
        .axis_iter(Axis(0))
        .map(|r| r[w - 1].to_f64() - r[0].to_f64())
        .sum();
    let sign = if total < 0.0 { -1.0 } else { 1.0 };
    // 1. ISO 12233 centroids (Hamming-windowed derivative) of blocks of 4 rows
    //    (each row of a block gets the block's centroid) and a robust line
    const BLOCK: usize = 4;
    let nblk = h.div_ceil(BLOCK);
    let blk: Vec<f64> = (0..nblk)
        .into_par_iter()
        .map_init(
            || (vec![0.0f64; w], Vec::with_capacity(w)),
            |(acc, d), b| {
                acc.iter_mut().for_each(|v| *v = 0.0);
                for r in b * BLOCK..((b + 1) * BLOCK).min(h) {
                    acc.iter_mut()
                        .zip(img.row(r))
                        .for_each(|(a, v)| *a += v.to_f64());
                }
                d.clear();
                d.extend(acc.windows(2).map(|p| (p[1] - p[0]) * sign));
                iso_centroid(d)
            },
        )
        .collect();
    let cents: Vec<f64> = (0..h).map(|r| blk[r / BLOCK]).collect();
    let no_edge = || CoreError::numerical("cannot fit an edge line: is there an edge in the ROI?");
    let mut fit = robust_fit(&cents, order, 0.5).ok_or_else(no_edge)?;
    // 2. centroids in windows around the line, halving the window down to 8 px
    let mut half = (w as f64 / 4.0).max(8.0);
    loop {
        let cw: Vec<f64> = (0..h)
            .into_par_iter()
            .map(|r| {
                let row = img.row(r);
                let e = poly(&fit, r as f64);
                match row.as_slice() {
                    Some(sl) => window_centroid(sl, sign, e, half),
                    None => {
                        let v: Vec<T> = row.iter().copied().collect();
                        window_centroid(&v, sign, e, half)
                    }
                }
            })
            .collect();
        if cw.iter().filter(|v| v.is_finite()).count() > h / 2 {
            if let Some(f) = robust_fit(&cw, order, 0.2) {
                fit = f;
            }
        }
        if half <= 8.0 {
            break;
        }
        half = (half / 2.0).max(8.0);
    }
    let rows = whole_cycles(&fit, h);
    // 3. matched-filter refinement until the line stops moving
    //    (the first ESF from a band of +-32 px around the line: the shifts use
    //    only the part where the ESF changes)
    let band = 32.0f64.min(w as f64);
    let o1 = -band - 1.0;
    let n1 = (2.0 * (band + 1.0) * os) as usize + 1;
    let (s, p, c) = project(&img, &fit, rows, None, o1, n1, os, -band, band);
    let (mut x0, mut esf, mut grad) = esf_table(&s, &p, &c, o1, os)?;
    let mut iterations = 0;
    let mut converged = max_refine == 0;
    let mut edges: Vec<f64> = (0..rows).map(|r| poly(&fit, r as f64)).collect();
    // the band re-projected in each refinement: the first table's extent
    let lo = x0 - 1.0;
    let hi = x0 + esf.len() as f64 / os + 1.0;
    let o2 = (lo * os).floor() / os;
    let n2 = ((hi - o2) * os).ceil() as usize + 1;
    let mut prev_moved = f64::INFINITY;
    while iterations < max_refine {
        iterations += 1;
        let sh = shifts(&img, &fit, rows, x0, 1.0 / os, &esf, &grad);
        let cand: Vec<f64> = (0..rows).map(|r| poly(&fit, r as f64) + sh[r]).collect();
        let Some(new) = robust_fit(&cand, order, 0.1) else {
            break;
        };
        let moved = [0.0, (rows - 1) as f64 / 2.0, (rows - 1) as f64]
            .iter()
            .map(|&r| (poly(&new, r) - poly(&fit, r)).abs())
            .fold(0.0, f64::max);
        fit = new;
        edges = cand;
        // converged: the line stops moving, or (noisy data) it no longer moves
        // less from one refinement to the next
        if moved < tol_px || (iterations >= 3 && moved > 0.8 * prev_moved) {
            converged = true;
            break;
        }
        prev_moved = moved;
        if iterations < max_refine {
            // re-project only the band of the ESF that the shifts use
            let (s, p, c) = project(&img, &fit, rows, None, o2, n2, os, lo, hi);
            (x0, esf, grad) = esf_table(&s, &p, &c, o2, os)?;
        }
    }
    // 4. final projection of every pixel of the used rows
    let (origin, nb) = bin_range(&fit, rows, w, os)?;
    let (sums, psum, cf) = project(
        &img,
        &fit,
        rows,
        None,
        origin,
        nb,
        os,
        f64::NEG_INFINITY,
        f64::INFINITY,
    );
    let counts = cf.iter().map(|&v| v.round().max(0.0) as u64).collect();
    Ok(EdgeFit {
        coeffs: fit,
        rows_used: rows,
        edges,
        sums,
        psum,
        counts,
        origin,
        iterations,
        converged,
        sign,
        noise: flat_noise(&img),
    })
}

/// SplitMix64: a small, well-mixed generator for the bootstrap draws.
struct SplitMix(u64);
impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64 * n as f64) as usize % n
    }
}

/// Bootstrap over rows: each resample draws `edges.len()` rows with
/// replacement, refits the edge polynomial to their per-row edges, projects
/// them (weighted by multiplicity) into the `nb` bins starting at `origin`,
/// and resamples the bin means onto the regular grid. Only offsets within
/// `[lo, hi]` px are projected (the window of the MTF); bins outside hold the
/// nearest projected value. Returns `n_boot * nb` values (row-major).
#[allow(clippy::too_many_arguments)]
pub fn bootstrap_esf<T: Pixel>(
    img: ArrayView2<'_, T>,
    edges: &[f64],
    order: usize,
    origin: f64,
    nb: usize,
    oversampling: usize,
    n_boot: usize,
    seed: u64,
    lo: f64,
    hi: f64,
) -> CoreResult<Vec<f64>> {
    let rows = edges.len();
    if rows < 4
        || rows > img.nrows()
        || nb < 2
        || !(1..=MAX_OVERSAMPLING).contains(&oversampling)
        || !(1..=2).contains(&order)
    {
        return Err(CoreError::parameter(format!(
            "bootstrap: need >= 4 rows within the image, >= 2 bins, oversampling 1..={MAX_OVERSAMPLING}, order 1 or 2",
        )));
    }
    // Bins are indexed by the projected distance; more than the image's
    // diagonal times the oversampling cannot hold data.
    let max_bins = ((img.nrows() + img.ncols()) * oversampling).max(2) * 2;
    if nb > max_bins {
        return Err(CoreError::parameter(format!(
            "bootstrap: {nb} bins for a {} x {} image at oversampling {oversampling} (at most {max_bins})",
            img.nrows(),
            img.ncols()
        )));
    }
    // The resamples are collected, then flattened: twice n_boot x nb f64.
    crate::mem::check_bytes(
        2.0 * n_boot as f64 * nb as f64 * 8.0,
        &format!("n_bootstrap = {n_boot} ({nb} bins each)"),
    )?;
    let os = oversampling as f64;
    let osi = oversampling;
    let out: Vec<Vec<f64>> = (0..n_boot)
        .into_par_iter()
        .map(|b| {
            let mut rng = SplitMix(seed ^ (b as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
            let mut k = vec![0.0f64; rows];
            for _ in 0..rows {
                k[rng.below(rows)] += 1.0;
            }
            let Some(fit) = polyfit_rows(edges, &k, order) else {
                return vec![f64::NAN; nb];
            };
            // one thread per resample: project serially
            let mut bins = Bins::new(nb, osi);
            bins.add_rows(&img, &fit, 0..rows, |r| k[r], (lo, hi), origin, osi);
            let (s, p, c) = bins.finish(origin, osi);
            resample_bins(&s, &p, &c, origin, os).unwrap_or_else(|| vec![f64::NAN; nb])
        })
        .collect();
    Ok(out.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn erf_edge(h: usize, w: usize, x0: f64, slope: f64, sigma: f64) -> Array2<f32> {
        // logistic edge with scale ~sigma
        Array2::from_shape_fn((h, w), |(r, c)| {
            let x = c as f64 - (x0 + slope * r as f64);
            (0.1 + 0.8 / (1.0 + (-x / sigma).exp())) as f32
        })
    }

    #[test]
    fn polyfit_recovers_a_line_and_a_parabola() {
        let ys: Vec<f64> = (0..50).map(|r| 3.0 + 0.25 * r as f64).collect();
        let f = polyfit_rows(&ys, &[1.0; 50], 1).unwrap();
        assert!((f[0] - 3.0).abs() < 1e-9 && (f[1] - 0.25).abs() < 1e-12);
        let ys: Vec<f64> = (0..50)
            .map(|r| 1.0 - 0.5 * r as f64 + 0.01 * (r * r) as f64)
            .collect();
        let f = polyfit_rows(&ys, &[1.0; 50], 2).unwrap();
        assert!(
            (f[0] - 1.0).abs() < 1e-8 && (f[1] + 0.5).abs() < 1e-9 && (f[2] - 0.01).abs() < 1e-11
        );
    }

    #[test]
    fn fit_edge_finds_the_line() {
        let img = erf_edge(120, 64, 30.3, 0.0875, 0.7);
        let f = fit_edge(img.view(), 1, 4, 20, 1e-4).unwrap();
        // the logistic is symmetric: the edge is where it crosses the middle
        assert!((f.coeffs[0] - 30.3).abs() < 0.01, "{:?}", f.coeffs);
        assert!((f.coeffs[1] - 0.0875).abs() < 1e-4, "{:?}", f.coeffs);
        assert!(f.converged);
        let n: u64 = f.counts.iter().sum();
        assert_eq!(n as usize, f.rows_used * 64);
        assert!(f.noise < 1e-6);
    }

    #[test]
    fn bootstrap_gives_the_same_esf_on_clean_data() {
        let img = erf_edge(80, 48, 20.0, 0.1, 1.0);
        let f = fit_edge(img.view(), 1, 4, 10, 1e-4).unwrap();
        let nb = f.sums.len();
        let main = resample_bins(
            &f.sums,
            &f.psum,
            &f.counts.iter().map(|&c| c as f64).collect::<Vec<_>>(),
            f.origin,
            4.0,
        )
        .unwrap();
        let b = bootstrap_esf(img.view(), &f.edges, 1, f.origin, nb, 4, 3, 7, -1e9, 1e9).unwrap();
        assert_eq!(b.len(), 3 * nb);
        // interior bins agree (the ends depend on which rows were drawn)
        for i in nb / 4..3 * nb / 4 {
            assert!((b[i] - main[i]).abs() < 2e-3, "{i} {} {}", b[i], main[i]);
        }
    }

    #[test]
    fn no_edge_is_an_error_not_a_panic() {
        let img = Array2::<f32>::zeros((3, 4));
        assert!(fit_edge(img.view(), 1, 4, 2, 1e-3).is_err());
        let flat = Array2::<f32>::from_elem((20, 20), 1.0);
        let _ = fit_edge(flat.view(), 1, 4, 2, 1e-3); // error or a result, no panic
        assert!(fit_edge(img.view(), 3, 4, 2, 1e-3).is_err());
    }
}
