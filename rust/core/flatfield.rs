//! Flat-field correction: (P - D) / (F - D), optional beam normalisation,
//! clipping and a fused -log, in one pass over memory.
//!
//! References: TomoPy `normalize`, `normalize_nf`, `normalize_roi`,
//! `minus_log`; nabu's flat-field (linear interpolation between flat series
//! taken at different times; clip to [1e-6, ...] before the log).
//!
//! The kernel is memory-bound: a uint16 -> float32 pass reads 2 and writes 4
//! bytes per pixel. The row loops are written so LLVM vectorises them
//! (branch-free selects, `ln_fast` instead of libm), and an AVX2 copy of the
//! row function is chosen at run time where the CPU has it.

use ndarray::{
    s, Array2, Array3, ArrayView1, ArrayView2, ArrayView3, ArrayViewMut1, ArrayViewMut3, Axis,
};
use rayon::prelude::*;

use crate::error::{CoreError, CoreResult};
use crate::fastmath::ln_fast;
use crate::pixel::Pixel;

/// How a series of flat or dark frames is reduced to one image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduce {
    Mean,
    Median,
}

impl Reduce {
    pub fn parse(name: &str) -> CoreResult<Self> {
        match name {
            "mean" => Ok(Reduce::Mean),
            "median" => Ok(Reduce::Median),
            other => Err(CoreError::parameter(format!(
                "reduce must be 'mean' or 'median', not {other:?}"
            ))),
        }
    }
}

/// Reduce a stack of frames (F, H, W) to one (H, W) float32 image, with
/// float64 accumulation. Non-finite values are an error (`what` names the
/// stack in the message).
pub fn reduce_frames<T: Pixel>(
    frames: ArrayView3<T>,
    how: Reduce,
    what: &str,
) -> CoreResult<Array2<f32>> {
    let (f, h, w) = frames.dim();
    if f == 0 || h == 0 || w == 0 {
        return Err(CoreError::shape(format!(
            "{what}: empty stack of shape ({f}, {h}, {w})"
        )));
    }
    let mut out = Array2::<f32>::zeros((h, w));
    let nonfinite: usize = out
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .map(|(r, mut orow)| {
            let mut bad = 0usize;
            match how {
                Reduce::Mean => {
                    let mut acc = vec![0.0f64; w];
                    for k in 0..f {
                        let row = frames.slice(s![k, r, ..]);
                        bad += match row.as_slice() {
                            Some(x) => accumulate(&mut acc, x),
                            None => accumulate(&mut acc, &row.to_vec()),
                        };
                    }
                    let inv = 1.0 / f as f64;
                    for (o, a) in orow.iter_mut().zip(acc) {
                        *o = (a * inv) as f32;
                    }
                }
                Reduce::Median => {
                    // Gather the row's frames pixel-major, so each pixel's
                    // values are contiguous, then a small sort per pixel.
                    let block = frames.slice(s![.., r, ..]);
                    let mut vals = vec![0.0f32; f * w];
                    for (k, frame_row) in block.outer_iter().enumerate() {
                        for (c, &v) in frame_row.iter().enumerate() {
                            let v = v.to_f64();
                            bad += (T::CAN_BE_NONFINITE && !v.is_finite()) as usize;
                            vals[c * f + k] = v as f32;
                        }
                    }
                    for (o, px) in orow.iter_mut().zip(vals.chunks_exact_mut(f)) {
                        *o = median_f32(px);
                    }
                }
            }
            bad
        })
        .sum();
    if nonfinite > 0 {
        return Err(CoreError::NonFinite {
            what: what.to_string(),
            count: nonfinite,
        });
    }
    Ok(out)
}

/// acc += row (in float64); returns the number of non-finite values.
fn accumulate<T: Pixel>(acc: &mut [f64], row: &[T]) -> usize {
    let n = acc.len().min(row.len());
    let (acc, row) = (&mut acc[..n], &row[..n]);
    let mut bad = 0usize;
    for j in 0..n {
        let v = row[j].to_f64();
        if T::CAN_BE_NONFINITE {
            bad += (!v.is_finite()) as usize;
        }
        acc[j] += v;
    }
    bad
}

/// Median as numpy defines it (mean of the two middle values for even n),
/// reordering `v`. Insertion sort for the usual handful of frames, selection
/// beyond that.
fn median_f32(v: &mut [f32]) -> f32 {
    let n = v.len();
    let mid = n / 2;
    if n <= 32 {
        for i in 1..n {
            let x = v[i];
            let mut j = i;
            while j > 0 && v[j - 1] > x {
                v[j] = v[j - 1];
                j -= 1;
            }
            v[j] = x;
        }
        return if n % 2 == 1 {
            v[mid]
        } else {
            ((v[mid - 1] as f64 + v[mid] as f64) * 0.5) as f32
        };
    }
    let (_, &mut hi, _) = v.select_nth_unstable_by(mid, f32::total_cmp);
    if n % 2 == 1 {
        hi
    } else {
        let lo = v[..mid].iter().copied().fold(f32::NEG_INFINITY, f32::max);
        ((lo as f64 + hi as f64) * 0.5) as f32
    }
}

/// Median as numpy defines it (mean of the two middle values for even n).
#[cfg(test)]
fn median_in_place(v: &mut [f64]) -> f64 {
    let n = v.len();
    let mid = n / 2;
    let (_, &mut hi, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    if n % 2 == 1 {
        hi
    } else {
        let lo = v[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        0.5 * (lo + hi)
    }
}

/// What to do where flat - dark <= eps (dead pixels, zero flats).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BadPolicy {
    /// Clamp the denominator to eps (TomoPy's behaviour).
    Clamp,
    /// Put this normalised value (before clipping and -log) in the output.
    Fill(f32),
    /// Put NaN in the output.
    Nan,
    /// Refuse: return an error naming the count.
    Raise,
}

/// How flat series taken at different times are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interp {
    /// Linear in the projection index between the two nearest series (nabu).
    Linear,
    /// The nearest series (TomoPy `normalize_nf`).
    Nearest,
}

#[derive(Clone, Debug)]
pub struct Options {
    /// Projection index at which each flat series was taken (one per series).
    pub positions: Vec<f64>,
    pub interp: Interp,
    /// Denominators (flat - dark) at or below this are "bad".
    pub eps: f32,
    pub bad: BadPolicy,
    /// Air region (top, bottom, left, right), half-open, for beam
    /// normalisation: each projection is divided by its mean there.
    pub air: Option<[usize; 4]>,
    /// Clip the normalised value to [lo, hi] (after beam normalisation).
    pub lo: f32,
    pub hi: f32,
    /// Return -ln of the clipped value.
    pub log: bool,
    /// Index of the first projection of this block within the whole scan (so
    /// that a scan processed block by block interpolates flats the same way).
    pub first_index: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            positions: vec![0.0],
            interp: Interp::Linear,
            eps: 1e-6,
            bad: BadPolicy::Clamp,
            air: None,
            lo: f32::NEG_INFINITY,
            hi: f32::INFINITY,
            log: false,
            first_index: 0.0,
        }
    }
}

/// Counts a caller reports to the user (never a silent inf).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Pixels where flat - dark <= eps in at least one flat series.
    pub bad_pixels: u64,
    /// Output values clipped at the lower / upper bound (all projections).
    pub clipped_low: u64,
    pub clipped_high: u64,
    /// Non-finite output values: NaN met (from non-finite projection
    /// values) and infinities not clipped (a ratio beyond the float32 range).
    pub nonfinite: u64,
}

impl Report {
    fn add(self, o: Report) -> Report {
        Report {
            bad_pixels: self.bad_pixels + o.bad_pixels,
            clipped_low: self.clipped_low + o.clipped_low,
            clipped_high: self.clipped_high + o.clipped_high,
            nonfinite: self.nonfinite + o.nonfinite,
        }
    }
}

/// Flat-field correct `projections` (N, H, W) into `out` (N, H, W) with the
/// reduced flats (S, H, W), one per series, and the reduced dark (H, W).
pub fn correct<T: Pixel>(
    projections: ArrayView3<T>,
    flats: ArrayView3<f32>,
    dark: ArrayView2<f32>,
    opts: &Options,
    out: ArrayViewMut3<f32>,
) -> CoreResult<Report> {
    if projections.dim() != out.dim() {
        return Err(CoreError::shape(format!(
            "out has shape {:?} but projections have shape {:?}",
            out.dim(),
            projections.dim()
        )));
    }
    correct_impl(Some(projections), flats, dark, opts, out)
}

/// Like [`correct`], reading the projections from `out` and overwriting them.
pub fn correct_inplace(
    out: ArrayViewMut3<f32>,
    flats: ArrayView3<f32>,
    dark: ArrayView2<f32>,
    opts: &Options,
) -> CoreResult<Report> {
    correct_impl::<f32>(None, flats, dark, opts, out)
}

/// Per-series denominators, prepared once per call.
struct Denominators {
    /// flat - dark per series (bad pixels set to 1 unless clamped).
    a: Array3<f32>,
    /// 1 / (flat - dark) per series.
    inv: Array3<f32>,
    /// a[k + 1] - a[k], for linear interpolation.
    da: Option<Array3<f32>>,
    /// Bad columns of each row, for the fill / NaN policies.
    bad_cols: Vec<Vec<u32>>,
    n_bad: u64,
}

fn count_nonfinite<D: ndarray::Dimension>(a: ndarray::ArrayView<f32, D>) -> usize {
    ndarray::Zip::from(&a).par_fold(
        || 0usize,
        |n, v| n + (!v.is_finite()) as usize,
        |x, y| x + y,
    )
}

fn denominators(
    flats: ArrayView3<f32>,
    dark: ArrayView2<f32>,
    opts: &Options,
) -> CoreResult<Denominators> {
    let (ns, h, w) = flats.dim();
    let eps = opts.eps;
    let clamp = opts.bad == BadPolicy::Clamp;
    for (what, count) in [
        ("flats", count_nonfinite(flats)),
        ("darks", count_nonfinite(dark)),
    ] {
        if count > 0 {
            return Err(CoreError::NonFinite {
                what: what.into(),
                count,
            });
        }
    }
    // Whole-array parallel Zips: each vectorises (a per-row closure with
    // several iterators did not, and cost more than the main pass).
    let mut a = Array3::<f32>::zeros((ns, h, w));
    let mut bad = Array2::<bool>::from_elem((h, w), false);
    for k in 0..ns {
        ndarray::Zip::from(a.index_axis_mut(Axis(0), k))
            .and(flats.index_axis(Axis(0), k))
            .and(&dark)
            .and(&mut bad)
            .par_for_each(|a, &f, &d, b| {
                let v = f - d;
                // NaN-safe: anything not above eps is bad.
                *b |= v.partial_cmp(&eps) != Some(std::cmp::Ordering::Greater);
                *a = v;
            });
    }
    let bad_cols: Vec<Vec<u32>> = bad
        .axis_iter(Axis(0))
        .into_par_iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .filter(|(_, &b)| b)
                .map(|(c, _)| c as u32)
                .collect()
        })
        .collect();
    let n_bad = bad_cols.iter().map(|c| c.len() as u64).sum::<u64>();
    if n_bad as usize == h * w {
        return Err(CoreError::numerical(format!(
            "flat - dark <= {eps} at every pixel: are the flats all zero, or flats and darks swapped?"
        )));
    }
    if n_bad > 0 && opts.bad == BadPolicy::Raise {
        return Err(CoreError::numerical(format!(
            "flat - dark <= {eps} at {n_bad} pixel(s) (dead pixels or zero flats); \
             choose a policy for them (clamp, fill or nan)"
        )));
    }
    for (r, cols) in bad_cols.iter().enumerate() {
        for &c in cols {
            for k in 0..ns {
                let v = &mut a[[k, r, c as usize]];
                // Clamp like TomoPy; otherwise a harmless placeholder that
                // the fill pass overwrites.
                *v = if clamp { v.max(eps) } else { 1.0 };
            }
        }
    }
    let bad_cols = if clamp { vec![Vec::new(); h] } else { bad_cols };
    let mut inv = Array3::<f32>::zeros((ns, h, w));
    ndarray::Zip::from(&mut inv)
        .and(&a)
        .par_for_each(|i, &v| *i = 1.0 / v);
    let da = if ns > 1 && opts.interp == Interp::Linear {
        let mut da = Array3::<f32>::zeros((ns - 1, h, w));
        for k in 0..ns - 1 {
            ndarray::Zip::from(da.index_axis_mut(Axis(0), k))
                .and(a.index_axis(Axis(0), k + 1))
                .and(a.index_axis(Axis(0), k))
                .par_for_each(|o, &hi, &lo| *o = hi - lo);
        }
        Some(da)
    } else {
        None
    };
    Ok(Denominators {
        a,
        inv,
        da,
        bad_cols,
        n_bad,
    })
}

/// Which series (and weight) projection index `t` uses.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Blend {
    One(usize),
    Between(usize, f32),
}

fn blend(t: f64, positions: &[f64], interp: Interp) -> Blend {
    let ns = positions.len();
    if ns == 1 || t <= positions[0] {
        return Blend::One(0);
    }
    if t >= positions[ns - 1] {
        return Blend::One(ns - 1);
    }
    let k = positions.partition_point(|&p| p <= t) - 1;
    let w = (t - positions[k]) / (positions[k + 1] - positions[k]);
    match interp {
        Interp::Linear if w > 0.0 => Blend::Between(k, w as f32),
        Interp::Linear => Blend::One(k),
        Interp::Nearest => Blend::One(if w > 0.5 { k + 1 } else { k }),
    }
}

fn validate(opts: &Options, ns: usize) -> CoreResult<()> {
    if ns == 0 {
        return Err(CoreError::shape("no flat series given"));
    }
    if opts.positions.len() != ns {
        return Err(CoreError::parameter(format!(
            "{} flat series but {} flat positions",
            ns,
            opts.positions.len()
        )));
    }
    if opts.positions.iter().any(|p| !p.is_finite())
        || opts.positions.windows(2).any(|p| p[1] <= p[0])
    {
        return Err(CoreError::parameter(format!(
            "flat positions must be finite and strictly increasing, got {:?}",
            opts.positions
        )));
    }
    if opts.eps.is_nan() || opts.eps < 0.0 {
        return Err(CoreError::parameter(format!(
            "eps must be >= 0, got {}",
            opts.eps
        )));
    }
    if opts.lo.is_nan() || opts.hi.is_nan() || opts.lo > opts.hi {
        return Err(CoreError::parameter(format!(
            "clip bounds must satisfy lo <= hi, got [{}, {}]",
            opts.lo, opts.hi
        )));
    }
    if opts.log && (opts.lo.is_nan() || opts.lo < f32::MIN_POSITIVE) {
        return Err(CoreError::parameter(format!(
            "-log needs a positive lower clip bound (>= 1.2e-38), got {}",
            opts.lo
        )));
    }
    if let BadPolicy::Fill(v) = opts.bad {
        if opts.log && (v.is_nan() || v <= 0.0) {
            return Err(CoreError::parameter(format!(
                "fill value must be > 0 with log=True, got {v}"
            )));
        }
    }
    Ok(())
}

fn correct_impl<T: Pixel>(
    src: Option<ArrayView3<T>>,
    flats: ArrayView3<f32>,
    dark: ArrayView2<f32>,
    opts: &Options,
    mut out: ArrayViewMut3<f32>,
) -> CoreResult<Report> {
    let (n, h, w) = out.dim();
    let (ns, fh, fw) = flats.dim();
    validate(opts, ns)?;
    if n == 0 || h == 0 || w == 0 {
        return Err(CoreError::shape(format!(
            "projections: empty stack of shape ({n}, {h}, {w})"
        )));
    }
    if (fh, fw) != (h, w) || dark.dim() != (h, w) {
        return Err(CoreError::shape(format!(
            "projections are {h} x {w} pixels but flats are {fh} x {fw} and darks {} x {}",
            dark.dim().0,
            dark.dim().1
        )));
    }
    let den = denominators(flats, dark, opts)?;
    let blends: Vec<Blend> = (0..n)
        .map(|i| blend(opts.first_index + i as f64, &opts.positions, opts.interp))
        .collect();

    // Beam normalisation: each projection's mean normalised value in the air
    // region (TomoPy normalize_roi), computed before the main pass so a bad
    // region is reported before anything is written.
    let scales: Vec<f32> = match opts.air {
        None => vec![1.0; n],
        Some([t, b, l, r]) => {
            if !(t < b && b <= h && l < r && r <= w) {
                return Err(CoreError::parameter(format!(
                    "air region rows {t}..{b}, columns {l}..{r} is empty or outside the {h} x {w} image"
                )));
            }
            let means: Vec<f64> = (0..n)
                .into_par_iter()
                .map(|i| {
                    let mut acc = 0.0f64;
                    for row in t..b {
                        for col in l..r {
                            let p = match &src {
                                Some(v) => v[[i, row, col]].to_f64(),
                                None => out[[i, row, col]] as f64,
                            };
                            let d = dark[[row, col]] as f64;
                            let q = match blends[i] {
                                Blend::One(k) => (p - d) * den.inv[[k, row, col]] as f64,
                                Blend::Between(k, wt) => {
                                    let dk = den.da.as_ref().map_or(0.0, |da| da[[k, row, col]]);
                                    (p - d) / (den.a[[k, row, col]] + wt * dk) as f64
                                }
                            };
                            acc += q;
                        }
                    }
                    acc / ((b - t) * (r - l)) as f64
                })
                .collect();
            let mut scales = Vec::with_capacity(n);
            for (i, m) in means.into_iter().enumerate() {
                if !(m.is_finite() && m > 0.0) {
                    return Err(CoreError::numerical(format!(
                        "beam normalisation: the air region of projection {i} has mean {m} (must be > 0)"
                    )));
                }
                scales.push((1.0 / m) as f32);
            }
            scales
        }
    };

    let fill_out = match opts.bad {
        BadPolicy::Nan => f32::NAN,
        BadPolicy::Fill(v) => {
            let c = v.clamp(opts.lo, opts.hi);
            if opts.log {
                -c.ln()
            } else {
                c
            }
        }
        _ => 0.0,
    };
    let post = Post::new(opts.lo, opts.hi, opts.log);

    // Rows outermost: the dark and 1 / (flat - dark) rows of a detector row
    // stay in L1 while every projection's copy of that row is processed, so
    // the pass moves only the projections in and the output out (6 B/pixel
    // for uint16), not the reference images once per projection. Projections
    // are split in blocks so that a tall, thin input still spreads over cores.
    const PROJ_BLOCK: usize = 16;
    let stream = n * h * w * std::mem::size_of::<f32>() > STREAM_MIN_BYTES;
    let report = out
        .axis_iter_mut(Axis(1))
        .into_par_iter()
        .enumerate()
        .map(|(r, mut o_r)| {
            let d = dark.slice(s![r, ..]);
            let d_owned;
            let d = match d.as_slice() {
                Some(d) => d,
                None => {
                    d_owned = d.to_vec();
                    &d_owned[..]
                }
            };
            o_r.axis_chunks_iter_mut(Axis(0), PROJ_BLOCK)
                .into_par_iter()
                .enumerate()
                .map(|(b, mut block)| {
                    let mut total = Report::default();
                    // Each row is computed into an L1-resident scratch row and
                    // then written out; for outputs larger than the caches the
                    // write uses non-temporal stores, which skip reading the
                    // destination lines first (a third of the memory traffic).
                    let mut scratch = vec![0.0f32; w];
                    for (j, orow) in block.outer_iter_mut().enumerate() {
                        let i = b * PROJ_BLOCK + j;
                        let mode = match blends[i] {
                            Blend::One(k) => Mode::Inv(slice_row(den.inv.slice(s![k, r, ..]))),
                            Blend::Between(k, wt) => match &den.da {
                                Some(da) => Mode::Lin(
                                    slice_row(den.a.slice(s![k, r, ..])),
                                    slice_row(da.slice(s![k, r, ..])),
                                    wt,
                                ),
                                None => Mode::Inv(slice_row(den.inv.slice(s![k, r, ..]))),
                            },
                        };
                        let job = Job {
                            d,
                            mode,
                            scale: scales[i],
                            post,
                        };
                        let compute = |o: &mut [f32]| {
                            let rep = match &src {
                                Some(v) => {
                                    let p = v.slice(s![i, r, ..]);
                                    match p.as_slice() {
                                        Some(p) => row(p, &job, &mut scratch),
                                        None => row(&p.to_vec(), &job, &mut scratch),
                                    }
                                }
                                // In place: the row is its own input.
                                None => row(o, &job, &mut scratch),
                            };
                            store_row(&scratch, o, stream);
                            rep
                        };
                        total = total.add(with_out_row(orow, compute));
                    }
                    store_fence(stream);
                    total
                })
                .reduce(Report::default, Report::add)
        })
        .reduce(Report::default, Report::add);

    if den.n_bad > 0 && opts.bad != BadPolicy::Clamp {
        out.axis_iter_mut(Axis(0))
            .into_par_iter()
            .for_each(|mut oi| {
                for (r, cols) in den.bad_cols.iter().enumerate() {
                    for &c in cols {
                        oi[[r, c as usize]] = fill_out;
                    }
                }
            });
    }
    Ok(Report {
        bad_pixels: den.n_bad,
        ..report
    })
}

fn slice_row(v: ArrayView1<'_, f32>) -> &'_ [f32] {
    // Rows of arrays this module allocated in standard layout are contiguous.
    v.to_slice().expect("internal arrays are contiguous")
}

/// Outputs larger than this (bytes) are written with non-temporal stores:
/// they would not stay in the caches anyway.
const STREAM_MIN_BYTES: usize = 32 << 20;

/// Copy `src` into `dst`, with non-temporal (streaming) stores if `stream`.
fn store_row(src: &[f32], dst: &mut [f32], stream: bool) {
    #[cfg(target_arch = "x86_64")]
    {
        if stream && std::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU has AVX; the function only touches `src`/`dst`.
            unsafe { stream_copy_avx(src, dst) };
            return;
        }
    }
    let _ = stream;
    dst.copy_from_slice(&src[..dst.len()]);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn stream_copy_avx(src: &[f32], dst: &mut [f32]) {
    use std::arch::x86_64::{_mm256_loadu_ps, _mm256_stream_ps};
    let n = dst.len().min(src.len());
    let mut i = 0;
    // Non-temporal 32-byte stores need 32-byte-aligned addresses.
    while i < n && (dst.as_ptr().wrapping_add(i) as usize) % 32 != 0 {
        dst[i] = src[i];
        i += 1;
    }
    while i + 8 <= n {
        // SAFETY: i + 8 <= n keeps both accesses in bounds; dst + i is
        // 32-byte aligned (advanced from an aligned start in steps of 8).
        unsafe {
            let v = _mm256_loadu_ps(src.as_ptr().add(i));
            _mm256_stream_ps(dst.as_mut_ptr().add(i), v);
        }
        i += 8;
    }
    while i < n {
        dst[i] = src[i];
        i += 1;
    }
}

/// Order streaming stores before the task hands its rows to other threads.
fn store_fence(stream: bool) {
    #[cfg(target_arch = "x86_64")]
    {
        if stream {
            // SAFETY: sfence has no preconditions (SSE is baseline on x86_64).
            unsafe { std::arch::x86_64::_mm_sfence() };
        }
    }
    let _ = stream;
}

/// Run `f` on a contiguous output row, going through a temporary when the
/// caller's `out` row is strided.
fn with_out_row<F>(mut orow: ArrayViewMut1<f32>, f: F) -> Report
where
    F: FnOnce(&mut [f32]) -> Report,
{
    if let Some(o) = orow.as_slice_mut() {
        return f(o);
    }
    let mut tmp = orow.to_vec();
    let rep = f(&mut tmp);
    orow.assign(&ArrayView1::from(&tmp[..]));
    rep
}

#[derive(Clone, Copy)]
struct Post {
    lo: f32,
    hi: f32,
    log: bool,
}

impl Post {
    /// With a log, +inf is clipped to the largest finite float (and counted
    /// as clipped high) so that `ln_fast` never sees it.
    fn new(lo: f32, hi: f32, log: bool) -> Post {
        Post {
            lo,
            hi: if log { hi.min(f32::MAX) } else { hi },
            log,
        }
    }
}

enum Mode<'a> {
    /// value = (p - d) * inv * scale
    Inv(&'a [f32]),
    /// value = (p - d) * scale / (a + w * da)
    Lin(&'a [f32], &'a [f32], f32),
}

struct Job<'a> {
    d: &'a [f32],
    mode: Mode<'a>,
    scale: f32,
    post: Post,
}

fn row<T: Pixel>(p: &[T], job: &Job, out: &mut [f32]) -> Report {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw") {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { row_avx512(p, job, out) };
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { row_avx2(p, job, out) };
        }
    }
    row_generic(p, job, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_avx2<T: Pixel>(p: &[T], job: &Job, out: &mut [f32]) -> Report {
    row_generic(p, job, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
unsafe fn row_avx512<T: Pixel>(p: &[T], job: &Job, out: &mut [f32]) -> Report {
    row_generic(p, job, out)
}

#[inline(always)]
fn row_generic<T: Pixel>(p: &[T], job: &Job, out: &mut [f32]) -> Report {
    let n = out.len();
    let (p, d) = (&p[..n], &job.d[..n]);
    let scale = job.scale;
    match job.mode {
        Mode::Inv(inv) => {
            let inv = &inv[..n];
            for j in 0..n {
                out[j] = (p[j].to_f32() - d[j]) * (inv[j] * scale);
            }
        }
        Mode::Lin(a, da, w) => {
            let (a, da) = (&a[..n], &da[..n]);
            for j in 0..n {
                out[j] = (p[j].to_f32() - d[j]) * scale / (a[j] + w * da[j]);
            }
        }
    }
    post_row(out, job.post)
}

/// Clip to [lo, hi] (counting), then optionally -ln, in place on one row.
///
/// With `log`, `lo` is a positive normal number (checked in `validate`) and
/// `hi` is at most `f32::MAX` (see `Post::new`), so every clipped value but
/// NaN is in `ln_fast`'s domain; NaN is passed through, branch-free.
#[inline(always)]
fn post_row(out: &mut [f32], post: Post) -> Report {
    let Post { lo, hi, log } = post;
    let (mut low, mut high, mut nan) = (0u32, 0u32, 0u32);
    for v in out.iter_mut() {
        let x = *v;
        let is_nan = x.is_nan();
        low += (x < lo) as u32;
        high += (x > hi) as u32;
        // NaN fails both comparisons and passes through, so it is reported
        // rather than clipped into a plausible number.
        let y = if x < lo {
            lo
        } else if x > hi {
            hi
        } else {
            x
        };
        // NaN, and infinities left by the clip (a ratio beyond the float32
        // range, e.g. P = 8e37 over F = 0.1, without `hi`), are reported;
        // is_finite is one comparison (|y| < inf, false for NaN) for both.
        nan += !y.is_finite() as u32;
        *v = if log {
            let l = -ln_fast(y);
            if is_nan {
                y
            } else {
                l
            }
        } else {
            y
        };
    }
    Report {
        bad_pixels: 0,
        clipped_low: low as u64,
        clipped_high: high as u64,
        nonfinite: nan as u64,
    }
}

/// -ln of `data` clipped to [lo, hi], in place (TomoPy `minus_log` with the
/// clipping nabu applies first).
pub fn minus_log_inplace(
    mut data: ndarray::ArrayViewMutD<f32>,
    lo: f32,
    hi: f32,
) -> CoreResult<Report> {
    let post = Post::new(lo, hi, true);
    validate(
        &Options {
            lo,
            hi,
            log: true,
            ..Options::default()
        },
        1,
    )?;
    if let Some(s) = data.as_slice_mut() {
        return Ok(s
            .par_chunks_mut(8192)
            .map(|c| minus_log_chunk(c, post))
            .reduce(Report::default, Report::add));
    }
    let mut total = Report::default();
    let last = Axis(data.ndim().saturating_sub(1));
    for mut lane in data.lanes_mut(last) {
        let mut tmp = lane.to_vec();
        total = total.add(minus_log_chunk(&mut tmp, post));
        lane.assign(&ArrayView1::from(&tmp[..]));
    }
    Ok(total)
}

fn minus_log_chunk(c: &mut [f32], post: Post) -> Report {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw") {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { post_row_avx512(c, post) };
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { post_row_avx2(c, post) };
        }
    }
    post_row(c, post)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
unsafe fn post_row_avx512(c: &mut [f32], post: Post) -> Report {
    post_row(c, post)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn post_row_avx2(c: &mut [f32], post: Post) -> Report {
    post_row(c, post)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn blend_positions() {
        let pos = [0.0, 100.0];
        assert_eq!(blend(-5.0, &pos, Interp::Linear), Blend::One(0));
        assert_eq!(blend(150.0, &pos, Interp::Linear), Blend::One(1));
        assert_eq!(blend(25.0, &pos, Interp::Linear), Blend::Between(0, 0.25));
        assert_eq!(blend(25.0, &pos, Interp::Nearest), Blend::One(0));
        assert_eq!(blend(75.0, &pos, Interp::Nearest), Blend::One(1));
    }

    #[test]
    fn median_matches_definition() {
        assert_eq!(median_in_place(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median_in_place(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median_f32(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median_f32(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        // the selection path agrees with the sorting path
        let many: Vec<f32> = (0..101).map(|i| ((i * 37) % 101) as f32).collect();
        assert_eq!(median_f32(&mut many.clone()), 50.0);
        let even: Vec<f32> = (0..100).map(|i| ((i * 37) % 100) as f32).collect();
        assert_eq!(median_f32(&mut even.clone()), 49.5);
    }

    #[test]
    fn simple_ratio_and_log() {
        let p = Array3::from_elem((2, 3, 4), 60u16);
        let f = Array3::from_elem((1, 3, 4), 110.0f32);
        let d = Array2::from_elem((3, 4), 10.0f32);
        let mut out = Array3::<f32>::zeros((2, 3, 4));
        let opts = Options {
            lo: 1e-6,
            log: true,
            ..Options::default()
        };
        let rep = correct(p.view(), f.view(), d.view(), &opts, out.view_mut()).unwrap();
        assert_eq!(rep, Report::default());
        let want = -(0.5f32).ln();
        assert!(out.iter().all(|&v| (v - want).abs() < 1e-6));
    }

    #[test]
    fn zero_flats_are_an_error() {
        let p = Array3::from_elem((1, 2, 2), 5u16);
        let f = Array3::from_elem((1, 2, 2), 0.0f32);
        let d = Array2::zeros((2, 2));
        let mut out = Array3::<f32>::zeros((1, 2, 2));
        let err = correct(
            p.view(),
            f.view(),
            d.view(),
            &Options::default(),
            out.view_mut(),
        )
        .unwrap_err();
        assert!(matches!(err, CoreError::Numerical(_)));
    }
}
