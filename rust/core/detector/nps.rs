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
        .fold(
            || (vec![0.0f64; n], Vec::<f64>::new()),
            |(mut acc, mut tmp), (r, row)| {
                let y = coord(r, h);
                let sa = match row.to_slice() {
                    Some(v) => row_moments(v, &xp, order),
                    None => {
                        tmp.clear();
                        tmp.extend(row.iter().map(|v| v.to_f64()));
                        row_moments(&tmp, &xp, order)
                    }
                };
                for (acc, &(a, b)) in acc.iter_mut().zip(&mons) {
                    *acc += y.powi(b as i32) * sa[a];
                }
                (acc, tmp)
            },
        )
        .map(|(acc, _)| acc)
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

/// S_a = sum_i x_i^a v_i for a = 0..=order, with AVX2/FMA where the CPU
/// has it.
fn row_moments<T: Pixel>(v: &[T], xp: &[Vec<f64>], order: usize) -> [f64; 5] {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA; the function is safe Rust.
            return unsafe { row_moments_avx2(v, xp, order) };
        }
    }
    row_moments_body(v, xp, order)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_moments_avx2<T: Pixel>(v: &[T], xp: &[Vec<f64>], order: usize) -> [f64; 5] {
    row_moments_body(v, xp, order)
}

#[inline(always)]
fn row_moments_body<T: Pixel>(v: &[T], xp: &[Vec<f64>], order: usize) -> [f64; 5] {
    // eight lanes per power so that the sums vectorise
    let mut lanes = [[0.0f64; 8]; 5];
    let n = v.len();
    let full = n - n % 8;
    for i in (0..full).step_by(8) {
        let mut x8 = [0.0f64; 8];
        for k in 0..8 {
            x8[k] = v[i + k].to_f64();
        }
        for (a, l) in lanes.iter_mut().enumerate().take(order + 1) {
            let p = &xp[a][i..i + 8];
            for k in 0..8 {
                l[k] += p[k] * x8[k];
            }
        }
    }
    let mut sa = [0.0f64; 5];
    for (a, s) in sa.iter_mut().enumerate().take(order + 1) {
        *s =
            lanes[a].iter().sum::<f64>() + (full..n).map(|i| xp[a][i] * v[i].to_f64()).sum::<f64>();
    }
    sa
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
    tot: Totals,
}

/// One thread's running sums: |DFT|^2 column-major ((roi / 2 + 1) x roi),
/// raw pixel sum and region count.
struct Totals {
    acc: Vec<f64>,
    sum: f64,
    count: usize,
}

impl Totals {
    fn new(roi: usize, nc: usize) -> Self {
        Totals {
            acc: vec![0.0; nc * roi],
            sum: 0.0,
            count: 0,
        }
    }

    fn merge(mut self, b: Totals) -> Totals {
        self.acc.iter_mut().zip(&b.acc).for_each(|(x, y)| *x += y);
        self.sum += b.sum;
        self.count += b.count;
        self
    }

    fn into_nps(self, roi: usize, nc: usize) -> NpsSum {
        let acc = self.acc;
        NpsSum {
            power: Array2::from_shape_fn((roi, nc), |(r, c)| acc[c * roi + r]),
            n_rois: self.count,
            mean: self.sum / (self.count * roi * roi) as f64,
        }
    }
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
    if per_roi || step > roi {
        nps_sum_by_region(frames, roi, step, order, per_roi)
    } else {
        nps_sum_banded(frames, roi, step, order)
    }
}

/// Rows transformed together before they are written into the ring.
const TILE: usize = 8;

/// Per-thread buffers of the banded path, allocated once per rayon split
/// (page faults are expensive; nothing is allocated per region or row).
struct BandScratch {
    /// Two detrended rows a, b.
    rows: Vec<f32>,
    /// The same as one complex signal a + i b.
    pair: Vec<Complex<f32>>,
    cscratch: Vec<Complex<f32>>,
    /// Half spectra of up to TILE rows, column-major (nc x TILE): bin c of
    /// tile row k at `c * TILE + k`, so that each bin's rows are contiguous.
    tile: Vec<Complex<f32>>,
    /// Ring of the last `cap = roi + TILE` row spectra, column-major: bin c
    /// of ring slot k at `c * ld + k` (ld = cap + 8 so that the columns do
    /// not all fall into the same cache sets).
    ring: Vec<Complex<f32>>,
    /// One column of one region (input of the column FFT).
    col: Vec<Complex<f32>>,
    /// Raw row sums of the band (for the mean).
    rowsum: Vec<f64>,
    /// Row of a non-contiguous input.
    tmp: Vec<f64>,
    /// Detrend polynomial along one row.
    poly: Vec<f64>,
    tot: Totals,
}

/// What every band task shares.
struct Band<'a, T> {
    frames: ArrayView3<'a, T>,
    coefs: &'a [Vec<f64>],
    mons: Vec<(usize, usize)>,
    r0s: &'a [usize],
    roi: usize,
    n_rows: usize,
    cap: usize,
    ld: usize,
    cfft: &'a dyn Fft<f32>,
}

/// Frame-detrended path. Regions overlapping vertically share their rows,
/// so each column band of `roi` pixels (one per region column) is
/// streamed top to bottom: every image row of the band is detrended and
/// transformed once (two real rows per complex FFT, a + i b, split
/// afterwards), kept in a ring of row spectra, and each region whose last
/// row has arrived gets its `roi / 2 + 1` column transforms from the ring.
/// With 50% overlap this halves the row transforms; the pairing halves
/// them again.
fn nps_sum_banded<T: Pixel>(
    frames: ArrayView3<T>,
    roi: usize,
    step: usize,
    order: usize,
) -> CoreResult<NpsSum> {
    let (nf, h, w) = frames.dim();
    let coefs: Vec<Vec<f64>> = frames
        .axis_iter(Axis(0))
        .map(|f| poly_detrend_coefficients(f, order))
        .collect::<CoreResult<_>>()?;
    let r0s: Vec<usize> = (0..=h - roi).step_by(step).collect();
    let c0s: Vec<usize> = (0..=w - roi).step_by(step).collect();
    let n_rows = r0s[r0s.len() - 1] + roi;
    let tasks: Vec<(usize, usize)> = (0..nf)
        .flat_map(|f| c0s.iter().map(move |&c| (f, c)))
        .collect();
    let nc = roi / 2 + 1;
    let cap = roi + TILE;
    let ld = cap + 8;
    let cfft: Arc<dyn Fft<f32>> = FftPlanner::<f32>::new().plan_fft_forward(roi);
    let band = Band {
        frames,
        coefs: &coefs,
        mons: monomials(order),
        r0s: &r0s,
        roi,
        n_rows,
        cap,
        ld,
        cfft: cfft.as_ref(),
    };
    let zero = Complex::new(0.0f32, 0.0);
    let new_scratch = || BandScratch {
        rows: vec![0.0; 2 * roi],
        pair: vec![zero; roi],
        cscratch: vec![zero; cfft.get_inplace_scratch_len()],
        tile: vec![zero; TILE * nc],
        ring: vec![zero; nc * ld],
        col: vec![zero; roi],
        rowsum: vec![0.0; n_rows],
        tmp: Vec::new(),
        poly: vec![0.0; roi],
        tot: Totals::new(roi, nc),
    };
    let min_len = (tasks.len() / (4 * crate::parallel::current_num_threads()).max(1)).max(1);
    let total = tasks
        .par_iter()
        .with_min_len(min_len)
        .try_fold(new_scratch, |mut st, &(f, c0)| -> CoreResult<BandScratch> {
            band_task(&band, &mut st, f, c0)?;
            Ok(st)
        })
        .map(|st| st.map(|st| st.tot))
        .try_reduce(|| Totals::new(roi, nc), |a, b| Ok(a.merge(b)))?;
    Ok(total.into_nps(roi, nc))
}

/// One column band of one frame, with AVX2/FMA code where the CPU has it
/// (the crate is built for baseline x86-64; the FFTs pick AVX themselves).
fn band_task<T: Pixel>(b: &Band<T>, st: &mut BandScratch, f: usize, c0: usize) -> CoreResult<()> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA; the function is safe Rust.
            return unsafe { band_task_avx2(b, st, f, c0) };
        }
    }
    band_task_body(b, st, f, c0)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn band_task_avx2<T: Pixel>(
    b: &Band<T>,
    st: &mut BandScratch,
    f: usize,
    c0: usize,
) -> CoreResult<()> {
    band_task_body(b, st, f, c0)
}

#[inline(always)]
fn band_task_body<T: Pixel>(
    b: &Band<T>,
    st: &mut BandScratch,
    f: usize,
    c0: usize,
) -> CoreResult<()> {
    let (roi, cap, ld) = (b.roi, b.cap, b.ld);
    let frame = b.frames.index_axis(Axis(0), f);
    let (h, w) = frame.dim();
    let xs: Vec<f64> = (0..roi).map(|i| coord(c0 + i, w)).collect();
    let mut next = 0usize; // index into r0s of the next region to finish
    let mut r = 0usize;
    while r < b.n_rows {
        let nt = TILE.min(b.n_rows - r);
        // Ask for the next tile's rows now: each band row is a short run
        // (roi pixels) that the hardware prefetcher does not foresee.
        for rr in (r + TILE)..(r + 2 * TILE).min(b.n_rows) {
            if let Some(v) = frame.slice(s![rr, c0..c0 + roi]).to_slice() {
                let per_line = (64 / std::mem::size_of::<T>()).max(1);
                v.chunks(per_line).for_each(|c| prefetch(c.as_ptr()));
            }
        }
        // rows r..r + nt: detrend two at a time into a + i b, transform, split
        let mut k = 0;
        while k < nt {
            let two = k + 1 < nt;
            for (half, rr) in [(0usize, r + k), (1, r + k + 1)] {
                let dst = &mut st.rows[half * roi..(half + 1) * roi];
                if half == 1 && !two {
                    dst.fill(0.0);
                    continue;
                }
                let src = frame.slice(s![rr, c0..c0 + roi]);
                let mut c = [0.0f64; 5];
                for (&(a, bb), &k) in b.mons.iter().zip(&b.coefs[f]) {
                    c[a] += k * coord(rr, h).powi(bb as i32);
                }
                st.rowsum[rr] = match src.to_slice() {
                    Some(v) => detrend_row(v, &xs, &c, &mut st.poly, dst),
                    None => {
                        st.tmp.clear();
                        st.tmp.extend(src.iter().map(|v| v.to_f64()));
                        detrend_row(&st.tmp, &xs, &c, &mut st.poly, dst)
                    }
                };
            }
            let (ra, rb) = st.rows.split_at(roi);
            for ((z, &x), &y) in st.pair.iter_mut().zip(ra).zip(rb) {
                *z = Complex::new(x, y);
            }
            b.cfft.process_with_scratch(&mut st.pair, &mut st.cscratch);
            split_pair(&st.pair, &mut st.tile, k, two);
            k += 2;
        }
        // tile -> ring: nt contiguous slots per bin unless they wrap
        let s0 = r % cap;
        if s0 + nt <= cap {
            for (ring_col, t) in st.ring.chunks_exact_mut(ld).zip(st.tile.chunks_exact(TILE)) {
                ring_col[s0..s0 + nt].copy_from_slice(&t[..nt]);
            }
        } else {
            for (ring_col, t) in st.ring.chunks_exact_mut(ld).zip(st.tile.chunks_exact(TILE)) {
                for (k, z) in t[..nt].iter().enumerate() {
                    ring_col[(s0 + k) % cap] = *z;
                }
            }
        }
        r += nt;
        while next < b.r0s.len() && b.r0s[next] + roi <= r {
            let r0 = b.r0s[next];
            let rs: f64 = st.rowsum[r0..r0 + roi].iter().sum();
            if !rs.is_finite() {
                return Err(CoreError::NonFinite {
                    what: "frames".into(),
                    count: 1,
                });
            }
            st.tot.sum += rs;
            st.tot.count += 1;
            let s0 = r0 % cap;
            let first = roi.min(cap - s0);
            for (ring_col, acc) in st
                .ring
                .chunks_exact(ld)
                .zip(st.tot.acc.chunks_exact_mut(roi))
            {
                // rows r0..r0 + roi sit in slots s0.. (wrapping at cap)
                st.col[..first].copy_from_slice(&ring_col[s0..s0 + first]);
                st.col[first..].copy_from_slice(&ring_col[..roi - first]);
                b.cfft.process_with_scratch(&mut st.col, &mut st.cscratch);
                for (a, z) in acc.iter_mut().zip(&st.col) {
                    *a += (z.re * z.re + z.im * z.im) as f64;
                }
            }
            next += 1;
        }
    }
    Ok(())
}

/// Hint that `p` will be read soon (no effect off x86-64).
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and has no visible effect; `p` points
    // into a live slice.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// out = v - p(x) with p(x) = sum_a c[a] x^a (Horner in f64, `poly` is
/// scratch); returns the raw sum of v. Three plain loops, each of which
/// vectorises (one fused loop did not).
#[inline(always)]
fn detrend_row<T: Pixel>(
    vals: &[T],
    xs: &[f64],
    c: &[f64; 5],
    poly: &mut [f64],
    out: &mut [f32],
) -> f64 {
    let [c0, c1, c2, c3, c4] = *c;
    for (p, &x) in poly.iter_mut().zip(xs) {
        *p = (((c4 * x + c3) * x + c2) * x + c1) * x + c0;
    }
    for ((o, v), p) in out.iter_mut().zip(vals).zip(poly.iter()) {
        *o = (v.to_f64() - p) as f32;
    }
    let mut lanes = [0.0f64; 8];
    let mut vc = vals.chunks_exact(8);
    for v8 in &mut vc {
        for k in 0..8 {
            lanes[k] += v8[k].to_f64();
        }
    }
    lanes.iter().sum::<f64>() + vc.remainder().iter().map(|v| v.to_f64()).sum::<f64>()
}

/// Spectra A, B (bins 0..nc) of two real signals a, b from Z = DFT(a + i b):
/// A[k] = (Z[k] + conj Z[-k]) / 2, B[k] = (Z[k] - conj Z[-k]) / (2 i),
/// written to tile rows `k` and `k + 1` (B only if `two`).
#[inline(always)]
fn split_pair(z: &[Complex<f32>], tile: &mut [Complex<f32>], k: usize, two: bool) {
    let mut cols = tile.chunks_exact_mut(TILE);
    if !two {
        for (t, zk) in (&mut cols).zip(z) {
            t[k] = *zk;
        }
        return;
    }
    // k = 0 pairs with itself; for c >= 1, Z[-c] = Z[n - c]
    if let Some(t) = cols.next() {
        t[k] = Complex::new(z[0].re, 0.0);
        t[k + 1] = Complex::new(z[0].im, 0.0);
    }
    for ((t, p), q) in cols.zip(&z[1..]).zip(z[1..].iter().rev()) {
        t[k] = Complex::new(0.5 * (p.re + q.re), 0.5 * (p.im - q.im));
        t[k + 1] = Complex::new(0.5 * (p.im + q.im), -0.5 * (p.re - q.re));
    }
}

/// Region-by-region path: each region detrended with its own fit (or the
/// frame's), its rows and columns transformed. Used for `per_roi = true`,
/// where the detrended rows differ between overlapping regions.
fn nps_sum_by_region<T: Pixel>(
    frames: ArrayView3<T>,
    roi: usize,
    step: usize,
    order: usize,
    per_roi: bool,
) -> CoreResult<NpsSum> {
    // sizes checked by `nps_sum`
    let (nf, h, w) = frames.dim();
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
        tot: Totals::new(roi, nc),
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
                .zip(st.tot.acc.chunks_exact_mut(roi))
            {
                cfft.process_with_scratch(col, &mut st.cscratch);
                for (a, z) in acc.iter_mut().zip(col.iter()) {
                    *a += z.norm_sqr() as f64;
                }
            }
            st.tot.sum += rsum;
            st.tot.count += 1;
            Ok(st)
        })
        .map(|st| st.map(|st| st.tot))
        .try_reduce(|| Totals::new(roi, nc), |a, b| Ok(a.merge(b)))?;
    Ok(total.into_nps(roi, nc))
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
    fn banded_path_equals_region_by_region() {
        // Same frame detrend, two ways of computing the transforms; a step
        // that does not divide the frame and a non-square frame.
        let mut s = 777u64;
        let frames = Array3::from_shape_fn((3, 70, 90), |(_, r, c)| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f64 / (1u64 << 31) as f64) as f32 + 5.0 + 0.01 * (r + 2 * c) as f32
        });
        for (roi, step) in [(32, 16), (24, 10), (16, 16), (20, 7), (21, 9)] {
            let a = nps_sum_banded(frames.view(), roi, step, 2).unwrap();
            let b = nps_sum_by_region(frames.view(), roi, step, 2, false).unwrap();
            assert_eq!(a.n_rois, b.n_rois);
            assert!((a.mean - b.mean).abs() < 1e-9 * b.mean);
            let scale = b.power.iter().cloned().fold(0.0, f64::max);
            for (x, y) in a.power.iter().zip(b.power.iter()) {
                assert!((x - y).abs() < 1e-5 * scale, "{roi} {step}: {x} vs {y}");
            }
        }
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
