//! Lab-scan corrections (issue 18) applied to every pixel of a block:
//! the beam-hardening polynomial, the detector's undistortion remap and the
//! per-view drift shifts.
//!
//! All three are memory-bound one-pass kernels; what they save over the
//! numpy/scipy versions is the temporaries (float64 copies, coordinate
//! arrays rebuilt per frame) and the single thread. The interpolation is
//! bilinear with the edges continued (scipy.ndimage's `order=1,
//! mode="nearest"`: the two neighbours' indices clamped to the frame), so the
//! Python tests compare with scipy to float32 rounding.

use ndarray::{ArrayView2, ArrayView3, ArrayViewD, ArrayViewMut2, ArrayViewMut3, ArrayViewMutD};
use ndarray::{Axis, Zip};
use rayon::prelude::*;

use crate::error::{CoreError, CoreResult};

/// The polynomial p_mono = sum_k c_k p^k (k = 1..n, no constant term) of a
/// beam-hardening linearisation, continued along its tangent above `p_max`.
#[derive(Clone, Debug)]
pub struct Linearisation {
    coefficients: Vec<f64>,
    p_max: f64,
    y_max: f64,
    slope: f64,
}

impl Linearisation {
    /// `coefficients` are c_1 .. c_n; `p_max` the largest calibrated value.
    pub fn new(coefficients: &[f64], p_max: f64) -> CoreResult<Self> {
        if coefficients.is_empty() {
            return Err(CoreError::parameter(
                "beam hardening needs at least one coefficient",
            ));
        }
        if coefficients.iter().any(|c| !c.is_finite()) {
            return Err(CoreError::parameter(
                "beam-hardening coefficients must be finite",
            ));
        }
        if p_max.is_nan() {
            return Err(CoreError::parameter("p_max must not be NaN"));
        }
        let (mut y_max, mut slope) = (0.0, 0.0);
        if p_max.is_finite() {
            for (k, &c) in coefficients.iter().enumerate() {
                let n = (k + 1) as i32;
                y_max += c * p_max.powi(n);
                slope += c * f64::from(n) * p_max.powi(n - 1);
            }
        }
        Ok(Self {
            coefficients: coefficients.to_vec(),
            p_max,
            y_max,
            slope,
        })
    }

    /// The corrected value of `p` and whether it was extrapolated.
    #[inline(always)]
    fn eval(&self, p: f32) -> (f32, bool) {
        let x = f64::from(p);
        if x > self.p_max {
            return ((self.y_max + self.slope * (x - self.p_max)) as f32, true);
        }
        // Horner on c_n .. c_1, then the factor x of the missing constant term
        let mut y = 0.0;
        for &c in self.coefficients.iter().rev() {
            y = y * x + c;
        }
        ((y * x) as f32, false)
    }

    /// `LANES` values at once: independent Horner chains the compiler keeps in
    /// vector registers (one value at a time waits on each multiply-add's latency).
    #[inline(always)]
    fn lanes(&self, s: &[f32]) -> ([f32; LANES], u64) {
        let mut x = [0f64; LANES];
        for (xl, &v) in x.iter_mut().zip(s) {
            *xl = f64::from(v);
        }
        let mut y = [0f64; LANES];
        for &c in self.coefficients.iter().rev() {
            for (yl, &xl) in y.iter_mut().zip(&x) {
                *yl = *yl * xl + c;
            }
        }
        let mut out = [0f32; LANES];
        let mut above = 0u64;
        for ((o, &xl), &yl) in out.iter_mut().zip(&x).zip(&y) {
            let a = xl > self.p_max;
            let tangent = self.y_max + self.slope * (xl - self.p_max);
            *o = (if a { tangent } else { yl * xl }) as f32;
            above += u64::from(a);
        }
        (out, above)
    }

    fn chunk(&self, src: &[f32], dst: &mut [f32]) -> u64 {
        let mut above = 0u64;
        let mut s = src.chunks_exact(LANES);
        let mut d = dst.chunks_exact_mut(LANES);
        for (si, di) in (&mut s).zip(&mut d) {
            let (v, a) = self.lanes(si);
            di.copy_from_slice(&v);
            above += a;
        }
        for (o, &p) in d.into_remainder().iter_mut().zip(s.remainder()) {
            let (v, a) = self.eval(p);
            *o = v;
            above += u64::from(a);
        }
        above
    }

    fn chunk_inplace(&self, data: &mut [f32]) -> u64 {
        let mut above = 0u64;
        let mut d = data.chunks_exact_mut(LANES);
        for di in &mut d {
            let (v, a) = self.lanes(di);
            di.copy_from_slice(&v);
            above += a;
        }
        for v in d.into_remainder() {
            let (y, a) = self.eval(*v);
            *v = y;
            above += u64::from(a);
        }
        above
    }
}

const LANES: usize = 8;
const CHUNK: usize = 16384;

/// Linearise `input` into `out` (same shape); returns how many values lay
/// above `p_max` (extrapolated linearly).
pub fn linearise(
    input: ArrayViewD<f32>,
    lin: &Linearisation,
    mut out: ArrayViewMutD<f32>,
) -> CoreResult<u64> {
    if input.shape() != out.shape() {
        return Err(CoreError::shape(format!(
            "output is {:?}, input {:?}",
            out.shape(),
            input.shape()
        )));
    }
    if let (Some(s), Some(d)) = (input.as_slice(), out.as_slice_mut()) {
        return Ok(s
            .par_chunks(CHUNK)
            .zip(d.par_chunks_mut(CHUNK))
            .map(|(s, d)| lin.chunk(s, d))
            .sum());
    }
    Ok(Zip::from(&mut out).and(&input).par_fold(
        || 0u64,
        |n, o, &p| {
            let (v, a) = lin.eval(p);
            *o = v;
            n + u64::from(a)
        },
        |a, b| a + b,
    ))
}

/// Linearise `data` in place; returns the count of extrapolated values.
pub fn linearise_inplace(mut data: ArrayViewMutD<f32>, lin: &Linearisation) -> CoreResult<u64> {
    if let Some(d) = data.as_slice_mut() {
        return Ok(d.par_chunks_mut(CHUNK).map(|c| lin.chunk_inplace(c)).sum());
    }
    Ok(Zip::from(&mut data).par_fold(
        || 0u64,
        |n, v| {
            let (y, a) = lin.eval(*v);
            *v = y;
            n + u64::from(a)
        },
        |a, b| a + b,
    ))
}

/// Bilinear taps of one coordinate: the two clamped indices and the weight
/// of the second (scipy.ndimage `order=1, mode="nearest"`).
#[inline(always)]
fn taps(x: f64, n: usize) -> (usize, usize, f32) {
    let last = n as f64 - 1.0;
    if x.is_nan() {
        return (0, 0, f32::NAN);
    }
    let f = x.floor();
    let w = (x - f) as f32;
    let clamp = |v: f64| v.clamp(0.0, last) as usize;
    (clamp(f), clamp(f + 1.0), w)
}

/// A precomputed bilinear remap of (H_in, W_in) frames onto (H, W) frames:
/// output pixel (r, c) takes the input at (rows[r, c], cols[r, c]).
pub struct Remap {
    /// Flat indices of the four taps (top-left, top-right, bottom-left, bottom-right).
    idx: Vec<[u32; 4]>,
    /// Weights of the column and row second taps.
    w: Vec<[f32; 2]>,
    out_shape: (usize, usize),
    in_shape: (usize, usize),
}

impl Remap {
    pub fn new(
        rows: ArrayView2<f64>,
        cols: ArrayView2<f64>,
        in_shape: (usize, usize),
    ) -> CoreResult<Self> {
        if rows.shape() != cols.shape() {
            return Err(CoreError::shape(format!(
                "row map is {:?}, column map {:?}",
                rows.shape(),
                cols.shape()
            )));
        }
        let (hi, wi) = in_shape;
        if hi == 0 || wi == 0 || rows.is_empty() {
            return Err(CoreError::shape("remap of an empty frame"));
        }
        if hi.checked_mul(wi).is_none_or(|n| n > u32::MAX as usize) {
            return Err(CoreError::shape(format!(
                "frames of {hi} x {wi} pixels are too large for a remap"
            )));
        }
        let mut idx = Vec::with_capacity(rows.len());
        let mut w = Vec::with_capacity(rows.len());
        for (&y, &x) in rows.iter().zip(cols.iter()) {
            let (r0, r1, fy) = taps(y, hi);
            let (c0, c1, fx) = taps(x, wi);
            let at = |r: usize, c: usize| (r * wi + c) as u32;
            idx.push([at(r0, c0), at(r0, c1), at(r1, c0), at(r1, c1)]);
            w.push([fx, fy]);
        }
        Ok(Self {
            idx,
            w,
            out_shape: (rows.nrows(), rows.ncols()),
            in_shape,
        })
    }

    fn frame(&self, src: &[f32], dst: &mut [f32]) {
        for ((o, i), &[fx, fy]) in dst.iter_mut().zip(&self.idx).zip(&self.w) {
            let top = src[i[0] as usize] + fx * (src[i[1] as usize] - src[i[0] as usize]);
            let bottom = src[i[2] as usize] + fx * (src[i[3] as usize] - src[i[2] as usize]);
            *o = top + fy * (bottom - top);
        }
    }
}

/// Apply `map` to every frame of `stack` (N, H_in, W_in) into `out` (N, H, W).
pub fn remap(stack: ArrayView3<f32>, map: &Remap, mut out: ArrayViewMut3<f32>) -> CoreResult<()> {
    let (n, hi, wi) = stack.dim();
    let (no, ho, wo) = out.dim();
    if (hi, wi) != map.in_shape || (ho, wo) != map.out_shape || n != no {
        return Err(CoreError::shape(format!(
            "remap from {:?} to {:?} frames, given {:?} into {:?}",
            map.in_shape,
            map.out_shape,
            stack.shape(),
            out.shape()
        )));
    }
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(stack.axis_iter(Axis(0)).into_par_iter())
        .for_each(|(mut o, s)| {
            let src_owned;
            let src = match s.as_slice() {
                Some(v) => v,
                None => {
                    src_owned = s.iter().copied().collect::<Vec<f32>>();
                    &src_owned
                }
            };
            match o.as_slice_mut() {
                Some(d) => map.frame(src, d),
                None => {
                    let mut tmp = vec![0f32; ho * wo];
                    map.frame(src, &mut tmp);
                    o.iter_mut().zip(tmp).for_each(|(a, b)| *a = b);
                }
            }
        });
    Ok(())
}

/// Undo per-view shifts: `out[i, r, c] = stack[i](r + shifts[i, 0], c + shifts[i, 1])`,
/// bilinear, edges continued (scipy.ndimage.shift(frame, -shift, order=1, mode="nearest")).
pub fn shift_frames(
    stack: ArrayView3<f32>,
    shifts: ArrayView2<f64>,
    mut out: ArrayViewMut3<f32>,
) -> CoreResult<()> {
    let (n, h, w) = stack.dim();
    if out.dim() != (n, h, w) {
        return Err(CoreError::shape(format!(
            "output is {:?}, input {:?}",
            out.shape(),
            stack.shape()
        )));
    }
    if shifts.dim() != (n, 2) {
        return Err(CoreError::shape(format!(
            "shifts must be ({n}, 2), got {:?}",
            shifts.shape()
        )));
    }
    if shifts.iter().any(|s| !s.is_finite()) {
        return Err(CoreError::parameter("shifts must be finite"));
    }
    if n == 0 || h == 0 || w == 0 {
        return Ok(());
    }
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(stack.axis_iter(Axis(0)).into_par_iter())
        .zip(shifts.axis_iter(Axis(0)).into_par_iter())
        .for_each(|((o, s), sh)| shift_frame(s, sh[0], sh[1], o));
    Ok(())
}

fn shift_frame(src: ArrayView2<f32>, dy: f64, dx: f64, mut dst: ArrayViewMut2<f32>) {
    let (h, w) = src.dim();
    // the fraction is the same for every pixel of the frame: one vertical blend
    // of two source rows, then one horizontal blend with a constant offset
    let kx = dx.floor();
    let fx = (dx - kx) as f32;
    let kx = kx as i64;
    let mut row = vec![0f32; w];
    let mut line = vec![0f32; w];
    for r in 0..h {
        let (r0, r1, fy) = taps(r as f64 + dy, h);
        let (a, b) = (src.row(r0), src.row(r1));
        match (a.as_slice(), b.as_slice()) {
            (Some(a), Some(b)) => {
                for ((t, &x), &y) in row.iter_mut().zip(a).zip(b) {
                    *t = x + fy * (y - x);
                }
            }
            _ => {
                for ((t, &x), &y) in row.iter_mut().zip(a.iter()).zip(b.iter()) {
                    *t = x + fy * (y - x);
                }
            }
        }
        let wi = w as i64;
        // columns c whose taps c + kx and c + kx + 1 both lie inside the row
        let lo = (-kx).clamp(0, wi) as usize;
        let hi = (wi - 1 - kx).clamp(0, wi) as usize;
        let clamp = |v: i64| v.clamp(0, wi - 1) as usize;
        for (c, l) in line.iter_mut().enumerate().take(lo.min(w)) {
            let j = c as i64 + kx;
            let (x, y) = (row[clamp(j)], row[clamp(j + 1)]);
            *l = x + fx * (y - x);
        }
        if hi > lo {
            let off = (lo as i64 + kx) as usize;
            let (a, b) = (
                &row[off..off + (hi - lo)],
                &row[off + 1..off + 1 + (hi - lo)],
            );
            for ((l, &x), &y) in line[lo..hi].iter_mut().zip(a).zip(b) {
                *l = x + fx * (y - x);
            }
        }
        for (c, l) in line.iter_mut().enumerate().skip(hi.max(lo)) {
            let j = c as i64 + kx;
            let (x, y) = (row[clamp(j)], row[clamp(j + 1)]);
            *l = x + fx * (y - x);
        }
        let mut d = dst.row_mut(r);
        match d.as_slice_mut() {
            Some(d) => d.copy_from_slice(&line),
            None => d.iter_mut().zip(&line).for_each(|(a, &b)| *a = b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, Array3};

    fn bilinear(img: &Array2<f32>, y: f64, x: f64) -> f64 {
        let (h, w) = img.dim();
        let cl = |v: f64, n: usize| v.clamp(0.0, n as f64 - 1.0) as usize;
        let (fy, fx) = (y.floor(), x.floor());
        let (ty, tx) = (y - fy, x - fx);
        let g = |r: f64, c: f64| f64::from(img[[cl(r, h), cl(c, w)]]);
        (1.0 - ty) * ((1.0 - tx) * g(fy, fx) + tx * g(fy, fx + 1.0))
            + ty * ((1.0 - tx) * g(fy + 1.0, fx) + tx * g(fy + 1.0, fx + 1.0))
    }

    fn frames(n: usize, h: usize, w: usize) -> Array3<f32> {
        Array3::from_shape_fn((n, h, w), |(i, r, c)| {
            ((i * 7 + r * 13 + c * 31) % 17) as f32 + 0.25 * (r as f32).sin()
        })
    }

    #[test]
    fn polynomial_matches_direct_sum_and_tangent_beyond_p_max() {
        let lin = Linearisation::new(&[1.0, 0.1, -0.01], 3.0).unwrap();
        // 8 + 5 values: the vector lanes and the remainder
        let x = ndarray::Array1::from_iter((0..13).map(|i| [0.0f32, 0.5, 2.0, 3.0, 4.0][i % 5]))
            .into_dyn();
        let mut out = x.clone();
        let above = linearise(x.view(), &lin, out.view_mut()).unwrap();
        assert_eq!(above, 2);
        let f = |p: f64| p + 0.1 * p * p - 0.01 * p * p * p;
        let slope = 1.0 + 0.2 * 3.0 - 0.03 * 9.0;
        for (&p, &y) in x.iter().zip(out.iter()) {
            let p = f64::from(p);
            let want = if p > 3.0 {
                f(3.0) + slope * (p - 3.0)
            } else {
                f(p)
            };
            assert!((f64::from(y) - want).abs() < 1e-6, "{p} {y}");
        }
        let mut inplace = x.clone();
        assert_eq!(linearise_inplace(inplace.view_mut(), &lin).unwrap(), 2);
        assert_eq!(inplace, out);
    }

    #[test]
    fn bad_coefficients_are_parameter_errors() {
        assert!(Linearisation::new(&[], 1.0).is_err());
        assert!(Linearisation::new(&[f64::NAN], 1.0).is_err());
        assert!(Linearisation::new(&[1.0], f64::NAN).is_err());
    }

    #[test]
    fn shift_matches_clamped_bilinear_sampling() {
        let s = frames(4, 9, 23);
        let shifts = ndarray::arr2(&[[0.3, -1.7], [-2.25, 30.5], [0.0, 0.0], [12.0, -0.01]]);
        let mut out = Array3::zeros(s.dim());
        shift_frames(s.view(), shifts.view(), out.view_mut()).unwrap();
        for i in 0..4 {
            let img = s.index_axis(Axis(0), i).to_owned();
            for r in 0..9 {
                for c in 0..23 {
                    let want = bilinear(&img, r as f64 + shifts[[i, 0]], c as f64 + shifts[[i, 1]]);
                    assert!(
                        (f64::from(out[[i, r, c]]) - want).abs() < 1e-4,
                        "{i} {r} {c}"
                    );
                }
            }
        }
    }

    #[test]
    fn remap_matches_clamped_bilinear_sampling() {
        let s = frames(3, 11, 17);
        let rows = Array2::from_shape_fn((5, 17), |(r, c)| r as f64 * 2.1 - 1.3 + 0.01 * c as f64);
        let cols = Array2::from_shape_fn((5, 17), |(r, c)| c as f64 * 1.07 - 0.6 + 0.2 * r as f64);
        let map = Remap::new(rows.view(), cols.view(), (11, 17)).unwrap();
        let mut out = Array3::zeros((3, 5, 17));
        remap(s.view(), &map, out.view_mut()).unwrap();
        for i in 0..3 {
            let img = s.index_axis(Axis(0), i).to_owned();
            for r in 0..5 {
                for c in 0..17 {
                    let want = bilinear(&img, rows[[r, c]], cols[[r, c]]);
                    assert!((f64::from(out[[i, r, c]]) - want).abs() < 1e-4);
                }
            }
        }
        let mut wrong = Array3::zeros((3, 4, 17));
        assert!(remap(s.view(), &map, wrong.view_mut()).is_err());
    }

    #[test]
    fn non_finite_shifts_are_refused() {
        let s = frames(1, 3, 3);
        let mut out = Array3::zeros(s.dim());
        let bad = ndarray::arr2(&[[f64::NAN, 0.0]]);
        assert!(shift_frames(s.view(), bad.view(), out.view_mut()).is_err());
    }
}
