//! MTF kernels. Slanted edge (ISO 12233 e-SFR): per-row derivative centroids and
//! the projection of pixels into oversampled bins along the rows (here), the
//! whole edge geometry in one call (`edge_fit`); line-pair targets (`bars`).

pub mod bars;
pub mod edge_fit;

use ndarray::{ArrayView2, Axis};
use rayon::prelude::*;

use crate::{CoreError, CoreResult};

/// Centroid (column coordinate, px) of one row's derivative, sign-normalised by
/// `sign`, windowed around a first unwindowed estimate.
fn centroid(row: &[f64], sign: f64, scratch: &mut Vec<f64>) -> f64 {
    let n = row.len() - 1;
    scratch.clear();
    scratch.extend(row.windows(2).map(|p| (p[1] - p[0]) * sign));
    let (mut s, mut sx) = (0.0, 0.0);
    for (j, d) in scratch.iter().enumerate() {
        s += d;
        sx += d * (j as f64 + 0.5);
    }
    let c0 = if s != 0.0 { sx / s } else { n as f64 / 2.0 };
    // Hamming window 0.54 + 0.46 cos(pi (j - c) / half) with the cosine advanced by
    // rotation (one complex multiply per sample instead of a cos call)
    let centre = c0 - 0.5;
    let half = centre.max(n as f64 - 1.0 - centre).max(1.0);
    let delta = std::f64::consts::PI / half;
    let (mut cr, mut ci) = ((-centre * delta).cos(), (-centre * delta).sin());
    let (dr, di) = (delta.cos(), delta.sin());
    let (mut s, mut sx) = (0.0, 0.0);
    for (j, d) in scratch.iter().enumerate() {
        let x = j as f64 - centre;
        if x.abs() <= half {
            let w = (0.54 + 0.46 * cr) * d;
            s += w;
            sx += w * (j as f64 + 0.5);
        }
        let t = cr * dr - ci * di;
        ci = cr * di + ci * dr;
        cr = t;
    }
    if s != 0.0 {
        sx / s
    } else {
        c0
    }
}

/// Per-row centroids of the Hamming-windowed row derivative of `img` (H, W).
pub fn row_centroids(img: ArrayView2<'_, f64>) -> CoreResult<Vec<f64>> {
    let (h, w) = img.dim();
    if h == 0 || w < 3 {
        return Err(CoreError::shape(format!(
            "edge ROI must have >= 1 row and >= 3 columns, got {h} x {w}"
        )));
    }
    let total: f64 = img.axis_iter(Axis(0)).map(|r| r[w - 1] - r[0]).sum::<f64>();
    let sign = if total < 0.0 { -1.0 } else { 1.0 };
    let out: Vec<f64> = img
        .axis_iter(Axis(0))
        .into_par_iter()
        .map_init(
            || (Vec::with_capacity(w), Vec::with_capacity(w)),
            |(buf, scratch), r| {
                buf.clear();
                buf.extend(r.iter().copied());
                centroid(buf, sign, scratch)
            },
        )
        .collect();
    Ok(out)
}

/// (value sums, offset sums, counts, origin) of [`bin_esf`].
pub type Binned = (Vec<f64>, Vec<f64>, Vec<u64>, f64);

/// Sums and counts of the pixels of the first `rows` rows in bins of
/// 1/`oversampling` px of the horizontal offset `col - edge(row)`, where
/// `edge(row) = sum_k coeffs[k] row^k`. Returns (sums, offset sums, counts,
/// origin): bin `i` covers offsets `origin + [i, i+1) / oversampling`; the
/// offset sums give each bin's mean position (exact sample positions).
pub fn bin_esf(
    img: ArrayView2<'_, f64>,
    coeffs: &[f64],
    rows: usize,
    oversampling: usize,
) -> CoreResult<Binned> {
    let (h, w) = img.dim();
    if rows == 0 || rows > h || w == 0 {
        return Err(CoreError::shape(format!(
            "rows = {rows} must be in 1..={h} and the ROI non-empty"
        )));
    }
    if oversampling == 0 || coeffs.is_empty() || coeffs.iter().any(|c| !c.is_finite()) {
        return Err(CoreError::parameter(
            "oversampling must be >= 1 and the edge fit finite",
        ));
    }
    let edge = |r: usize| -> f64 { coeffs.iter().rev().fold(0.0, |acc, c| acc * r as f64 + c) };
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for r in 0..rows {
        let e = edge(r);
        lo = lo.min(-e);
        hi = hi.max(w as f64 - 1.0 - e);
    }
    let origin = lo.floor();
    let os = oversampling as f64;
    let nb = ((hi - origin) * os).floor() as usize + 1;
    if nb > 1 << 26 {
        return Err(CoreError::numerical("edge fit too steep: too many bins"));
    }
    let chunk = rows.div_ceil(rayon::current_num_threads().max(1)).max(16);
    let (sums, pos, counts) = (0..rows)
        .into_par_iter()
        .chunks(chunk)
        .map(|rs| {
            let mut s = vec![0.0f64; nb];
            let mut p = vec![0.0f64; nb];
            let mut c = vec![0u64; nb];
            for r in rs {
                let row = img.row(r);
                let base = -edge(r) - origin;
                for (j, v) in row.iter().enumerate() {
                    let off = j as f64 + base;
                    let idx = ((off * os) as usize).min(nb - 1);
                    s[idx] += v;
                    p[idx] += off;
                    c[idx] += 1;
                }
            }
            (s, p, c)
        })
        .reduce(
            || (vec![0.0; nb], vec![0.0; nb], vec![0u64; nb]),
            |(mut a, mut ap, mut ac), (b, bp, bc)| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                ap.iter_mut().zip(&bp).for_each(|(x, y)| *x += y);
                ac.iter_mut().zip(&bc).for_each(|(x, y)| *x += y);
                (a, ap, ac)
            },
        );
    Ok((sums, pos, counts, origin))
}

/// Least-squares shift (px) of each of the first `rows` rows against a tabulated
/// ESF: `row(x) ~ esf(x - edge(row) - shift)`; the ESF and its derivative `grad`
/// are sampled at `origin + i * step` (linear interpolation); pixels outside the
/// table are skipped (pass only the part of the ESF where it changes).
pub fn row_shifts(
    img: ArrayView2<'_, f64>,
    coeffs: &[f64],
    rows: usize,
    origin: f64,
    step: f64,
    esf: &[f64],
    grad: &[f64],
) -> CoreResult<Vec<f64>> {
    let (h, w) = img.dim();
    if rows == 0 || rows > h {
        return Err(CoreError::shape(format!(
            "rows = {rows} must be in 1..={h}"
        )));
    }
    if esf.len() < 2 || esf.len() != grad.len() || step.is_nan() || step <= 0.0 {
        return Err(CoreError::parameter(
            "esf and grad must have the same length >= 2 and step > 0",
        ));
    }
    let n = esf.len();
    let interp = |t: &[f64], u: f64| -> f64 {
        if u <= 0.0 {
            return t[0];
        }
        let i = u as usize;
        if i >= n - 1 {
            return t[n - 1];
        }
        let a = u - i as f64;
        t[i] + a * (t[i + 1] - t[i])
    };
    let edge = |r: usize| -> f64 { coeffs.iter().rev().fold(0.0, |acc, c| acc * r as f64 + c) };
    let out = (0..rows)
        .into_par_iter()
        .map(|r| {
            let base = (-edge(r) - origin) / step;
            let (mut num, mut den) = (0.0, 0.0);
            // columns whose offset falls inside the table
            let inv = 1.0 / step;
            let j0 = ((-base * step).ceil().max(0.0)) as usize;
            let j1 = (((n - 1) as f64 - base) * step).floor();
            let j1 = if j1 < 0.0 {
                0
            } else {
                (j1 as usize + 1).min(w)
            };
            for j in j0..j1.max(j0) {
                let u = j as f64 * inv + base;
                let v = img[[r, j]];
                let d = interp(grad, u);
                num += (v - interp(esf, u)) * d;
                den += d * d;
            }
            if den > 0.0 {
                -num / den
            } else {
                0.0
            }
        })
        .collect();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn centroid_of_step_is_between_pixels() {
        let img = Array2::from_shape_fn((4, 10), |(_, c)| if c >= 5 { 1.0 } else { 0.0 });
        let c = row_centroids(img.view()).unwrap();
        for v in c {
            assert!((v - 4.5).abs() < 1e-12, "{v}");
        }
    }

    #[test]
    fn bins_count_every_pixel() {
        let img = Array2::from_shape_fn((20, 16), |(r, c)| (r * 16 + c) as f64);
        let (s, _, c, _) = bin_esf(img.view(), &[7.3, 0.1], 20, 4).unwrap();
        assert_eq!(c.iter().sum::<u64>(), 320);
        let total: f64 = img.sum();
        assert!((s.iter().sum::<f64>() - total).abs() < 1e-6);
    }

    #[test]
    fn row_shift_recovers_a_known_offset() {
        // ESF = logistic on a 0.25 px grid; rows hold it shifted by 0.3 px
        let step = 0.25;
        let origin = -20.0;
        let xs: Vec<f64> = (0..161).map(|i| origin + i as f64 * step).collect();
        let f = |x: f64| 1.0 / (1.0 + (-x).exp());
        let esf: Vec<f64> = xs.iter().map(|&x| f(x)).collect();
        let grad: Vec<f64> = xs.iter().map(|&x| f(x) * (1.0 - f(x))).collect();
        let img = Array2::from_shape_fn((3, 32), |(_, c)| f(c as f64 - 16.0 - 0.3));
        let s = row_shifts(img.view(), &[16.0], 3, origin, step, &esf, &grad).unwrap();
        for v in s {
            assert!((v - 0.3).abs() < 0.02, "{v}");
        }
    }

    #[test]
    fn bad_rows_is_an_error() {
        let img = Array2::<f64>::zeros((4, 4));
        assert!(bin_esf(img.view(), &[0.0], 5, 4).is_err());
        assert!(row_centroids(Array2::<f64>::zeros((0, 4)).view()).is_err());
    }
}
