//! Richardson-Lucy deconvolution of image stacks.
//!
//! Two boundary models:
//! - `Boundary::Zero`: scikit-image's `richardson_lucy` (constant 0.5 start,
//!   zero-padded 'same' convolutions, eps = 1e-12 added to the blurred
//!   estimate, no clipping), kept for comparison.
//! - `Boundary::Padded` (default): Bertero and Boccacci, A&A 437, 369 (2005).
//!   The object lives on the image grown by the PSF size minus one; the
//!   forward model keeps only the measured (and valid) pixels; the update is
//!   normalised by H^T applied to the mask of valid measured pixels, so the
//!   border is neither darkened nor ringing, and invalid pixels (dead, hot,
//!   saturated) are filled from their neighbours instead of smeared.
//!
//! Options of the padded model: Biggs-Andrews vector extrapolation (Biggs and
//! Andrews, Appl. Opt. 36, 1766, 1997) with the step clipped to [0, 1]; total
//! variation regularisation (Dey et al., Microsc. Res. Tech. 69, 260, 2006);
//! a stopping rule by the discrepancy principle with Poisson plus read noise
//! (stop when mean((y - Hx)^2 / (gain Hx + read_noise^2)) <= tau).
//!
//! PSF centre convention: element ((kh-1)/2, (kw-1)/2), as scipy's 'same'.

use std::sync::Mutex;

use ndarray::{ArrayView2, ArrayView3, ArrayViewMut3, Axis};
use rayon::prelude::*;

use super::conv::{fast_len, Chain, Grid, Ptr as CPtr, Scratch, Spectrum};
use crate::error::{CoreError, CoreResult};
use crate::fastmath::avx2_dispatch;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Boundary {
    Zero,
    Padded,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Noise {
    /// Counts per detected photon (variance of a Poisson count in the
    /// image's units is gain * mean).
    pub gain: f32,
    /// Read noise standard deviation, in the image's units.
    pub read_noise: f32,
}

#[derive(Clone, Debug)]
pub struct RlOptions {
    pub iterations: usize,
    pub boundary: Boundary,
    pub accelerate: bool,
    /// TV weight lambda (0: off).
    pub tv: f32,
    pub noise: Option<Noise>,
    /// Discrepancy target (1.0: Morozov).
    pub tau: f32,
    /// Most output rows per strip of the convolutions (see
    /// `Grid::convolve_strips`): None chooses (strips of at most about 700
    /// rows on images of at least 1400), Some(0) uses one grid for the
    /// whole image.
    /// Results agree to rounding either way.
    pub strip_rows: Option<usize>,
}

impl Default for RlOptions {
    fn default() -> Self {
        RlOptions {
            iterations: 30,
            boundary: Boundary::Padded,
            accelerate: true,
            tv: 0.0,
            noise: None,
            tau: 1.0,
            strip_rows: None,
        }
    }
}

/// What happened to one image.
#[derive(Clone, Debug, Default)]
pub struct RlReport {
    /// Iterations done (updates applied).
    pub iterations: usize,
    /// Discrepancy of each estimate whose blur was computed (empty without
    /// a noise model).
    pub discrepancy: Vec<f64>,
    /// Whether the discrepancy rule stopped the iterations.
    pub stopped: bool,
}

struct Geometry {
    h: usize,
    w: usize,
    /// Object grid (eh, ew) and offset of the measured image in it.
    eh: usize,
    ew: usize,
    oh: usize,
    ow: usize,
}

struct Work {
    s: Scratch,
    x: Vec<f32>,
    xprev: Vec<f32>,
    /// The prediction point, stored only with TV (else made row by row).
    p: Vec<f32>,
    /// g_(k-1) = x_k - p_(k-1), read and overwritten by g_k in place (one
    /// stream instead of a read and a write-allocate).
    g: Vec<f32>,
    /// y / Hp on the measured pixels.
    ratio: Vec<f32>,
    nx: Vec<f32>,
    ny: Vec<f32>,
}

struct Shared<'a> {
    geo: Geometry,
    grid: Grid,
    kf: Spectrum,
    ka: Spectrum,
    /// H^T(mask) when the mask is shared by all images (or absent).
    norm: Option<Vec<f32>>,
    /// Without a mask: the object-grid rectangle (r0, r1, c0, c1) where
    /// H^T(1) is the PSF's sum (every tap lands on a measured pixel), and
    /// that sum; the update uses the constant there instead of reading
    /// `norm`.
    unit: Option<(usize, usize, usize, usize, f32)>,
    /// Strip grid, strip height, and the forward / adjoint spectra on it
    /// with their global row shifts (see `Grid::convolve_strips`).
    strips: Option<Strips>,
    opts: &'a RlOptions,
}

fn check_psf(psf: &ArrayView2<f32>) -> CoreResult<Vec<f32>> {
    let v = super::psf_values(psf)?;
    if v.iter().any(|&x| x < 0.0) {
        return Err(CoreError::parameter(
            "psf has negative values; Richardson-Lucy needs a non-negative PSF",
        ));
    }
    let sum: f64 = v.iter().map(|&x| x as f64).sum();
    if sum <= 0.0 {
        return Err(CoreError::parameter("psf sums to zero"));
    }
    Ok(v)
}

fn check_opts(o: &RlOptions) -> CoreResult<()> {
    if o.boundary == Boundary::Zero && (o.accelerate || o.tv != 0.0) {
        return Err(CoreError::parameter(
            "boundary='zero' (scikit-image's model) has no acceleration or TV; use boundary='padded'",
        ));
    }
    if !(o.tv.is_finite() && (0.0..0.5).contains(&o.tv)) {
        return Err(CoreError::parameter(format!(
            "tv weight must be in [0, 0.5), got {}",
            o.tv
        )));
    }
    if let Some(n) = o.noise {
        if !(n.gain.is_finite() && n.gain >= 0.0 && n.read_noise.is_finite() && n.read_noise >= 0.0)
            || (n.gain == 0.0 && n.read_noise == 0.0)
        {
            return Err(CoreError::parameter(
                "noise model needs gain >= 0 and read_noise >= 0, not both zero",
            ));
        }
        if !(o.tau.is_finite() && o.tau > 0.0) {
            return Err(CoreError::parameter(format!(
                "tau must be > 0, got {}",
                o.tau
            )));
        }
    }
    Ok(())
}

/// Richardson-Lucy on each image of `stack` (n, h, w) into `out`.
/// `mask`: (1, h, w) or (n, h, w), non-zero = valid; only with
/// `Boundary::Padded`.
pub fn richardson_lucy(
    stack: ArrayView3<f32>,
    psf: ArrayView2<f32>,
    mask: Option<ArrayView3<u8>>,
    mut out: ArrayViewMut3<f32>,
    opts: &RlOptions,
) -> CoreResult<Vec<RlReport>> {
    check_opts(opts)?;
    let (n, h, w) = super::stack_dims(&stack, &out)?;
    let k = check_psf(&psf)?;
    let (kh, kw) = psf.dim();
    if let Some(m) = &mask {
        if opts.boundary == Boundary::Zero {
            return Err(CoreError::parameter("a mask needs boundary='padded'"));
        }
        let (mn, mh, mw) = m.dim();
        if (mh, mw) != (h, w) || !(mn == 1 || mn == n) {
            return Err(CoreError::shape(format!(
                "mask has shape ({mn}, {mh}, {mw}); images are ({n}, {h}, {w})"
            )));
        }
    }
    super::check_finite_images(&stack)?;

    let (ch, cw) = ((kh - 1) / 2, (kw - 1) / 2);
    // The whole-grid spectra (kernel shifts of H and H^T) are computed
    // below only when no strips are planned: strips carry their own.
    let (geo, grid, kf, ka) = match opts.boundary {
        Boundary::Zero => {
            let grid = Grid::new(fast_len(h + kh - 1), fast_len(w + kw - 1))?;
            let kf = (ch as isize, cw as isize);
            let ka = (ch as isize, cw as isize);
            (
                Geometry {
                    h,
                    w,
                    eh: h,
                    ew: w,
                    oh: 0,
                    ow: 0,
                },
                grid,
                kf,
                ka,
            )
        }
        Boundary::Padded => {
            let (eh, ew) = (h + kh - 1, w + kw - 1);
            let grid = Grid::new(fast_len(eh), fast_len(ew))?;
            let kf = (kh as isize - 1, kw as isize - 1);
            let ka = (0, 0);
            (
                Geometry {
                    h,
                    w,
                    eh,
                    ew,
                    oh: kh - 1 - ch,
                    ow: kw - 1 - cw,
                },
                grid,
                kf,
                ka,
            )
        }
    };
    let par_inner = n < rayon::current_num_threads();
    let threads = if par_inner {
        rayon::current_num_threads()
    } else {
        1
    };
    let plan_strips = |threads: usize| -> CoreResult<Option<Strips>> {
        let st = match opts.boundary {
            Boundary::Zero => make_strips(
                opts.strip_rows,
                threads,
                &k,
                (kh, kw),
                grid.nw,
                h,
                (ch as isize, cw as isize),
                (ch as isize, cw as isize),
            )?,
            Boundary::Padded => make_strips(
                opts.strip_rows,
                threads,
                &k,
                (kh, kw),
                grid.nw,
                geo.eh,
                (kh as isize - 1, kw as isize - 1),
                (0, 0),
            )?,
        };
        Ok(st.map(|mut st| {
            st.chain = st
                .grid
                .chain_plan(st.count, kh, (st.sh_f, st.sh_a), geo.h, geo.eh);
            st
        }))
    };
    // Without the stopping rule H and H^T run chained, strip after strip
    // with each strip's passes on all threads, so the count need not be a
    // multiple of the threads (whole strips per thread, as in
    // `Grid::convolve_strips`); where no chain fits, it must.
    let mut strips = plan_strips(if opts.noise.is_none() { 1 } else { threads })?;
    if threads > 1
        && strips
            .as_ref()
            .is_some_and(|st| st.chain.is_none() && st.count % threads != 0)
    {
        strips = plan_strips(threads)?;
    }
    let (kf, ka) = if strips.is_none() {
        (
            grid.place(&k, kh, kw, kf.0, kf.1, false)?,
            grid.place(&k, kh, kw, ka.0, ka.1, true)?,
        )
    } else {
        (Spectrum { data: Vec::new() }, Spectrum { data: Vec::new() })
    };
    let mut sh = Shared {
        geo,
        grid,
        kf,
        ka,
        norm: None,
        unit: None,
        strips,
        opts,
    };
    let pool: Mutex<Vec<Work>> = Mutex::new(Vec::new());
    let take = |sh: &Shared| -> CoreResult<Work> {
        let got = pool
            .lock()
            .map_err(|_| CoreError::numerical("workspace pool poisoned"))?
            .pop();
        Ok(got.unwrap_or_else(|| new_work(sh)))
    };
    let give = |w: Work| {
        if let Ok(mut p) = pool.lock() {
            p.push(w);
        }
    };
    if opts.boundary == Boundary::Padded && mask.as_ref().is_none_or(|m| m.dim().0 == 1) {
        let nrm = match &mask {
            // H^T(1) from a summed-area table of the PSF: exact, and no
            // convolution (half an iteration) in the set-up.
            None => adjoint_of_ones(&k, (kh, kw), &sh.geo),
            Some(m) => {
                let mut wk = take(&sh)?;
                let m0 = m.index_axis(Axis(0), 0);
                let nrm = adjoint_of_mask(&sh, Some(&m0), &mut wk, true);
                give(wk);
                nrm
            }
        };
        // Interior rows [kh-1, h) and columns [kw-1, w) of the object grid
        // see all PSF taps; checked against the computed H^T(1) (rounding
        // only) before it is relied on.
        if mask.is_none() && h > kh && w > kw {
            let ks = k.iter().map(|&v| v as f64).sum::<f64>() as f32;
            let (r0, r1, c0, c1) = (kh - 1, h, kw - 1, w);
            let ew = sh.geo.ew;
            let ok = (r0..r1).all(|r| {
                nrm[r * ew + c0..r * ew + c1]
                    .iter()
                    .all(|&v| (v - ks).abs() <= 1e-4 * ks)
            });
            if ok {
                sh.unit = Some((r0, r1, c0, c1, ks));
            }
        }
        sh.norm = Some(nrm);
    }

    let run_one = |i: usize, mut o: ndarray::ArrayViewMut2<f32>| -> CoreResult<RlReport> {
        let mut wk = take(&sh)?;
        let y = stack.index_axis(Axis(0), i);
        let m = mask
            .as_ref()
            .map(|m| m.index_axis(Axis(0), if m.dim().0 == 1 { 0 } else { i }));
        let rep = one_image(&sh, y, m, &mut wk, par_inner);
        let g = &sh.geo;
        for (r, mut orow) in o.axis_iter_mut(Axis(0)).enumerate() {
            let src = &wk.x[(r + g.oh) * g.ew + g.ow..(r + g.oh) * g.ew + g.ow + g.w];
            for (d, &v) in orow.iter_mut().zip(src) {
                *d = v;
            }
        }
        give(wk);
        Ok(rep)
    };
    let reports: CoreResult<Vec<RlReport>> = if par_inner {
        out.axis_iter_mut(Axis(0))
            .enumerate()
            .map(|(i, o)| run_one(i, o))
            .collect()
    } else {
        out.axis_iter_mut(Axis(0))
            .into_par_iter()
            .enumerate()
            .map(|(i, o)| run_one(i, o))
            .collect()
    };
    reports
}

impl Shared<'_> {
    /// H (data grid rows from object grid rows) or, with `adjoint`, H^T:
    /// input rows from `fill`, output rows to `emit`, in strips when planned.
    fn apply<F, E>(&self, adjoint: bool, fill: &F, emit: &E, s: &mut Scratch, par: bool)
    where
        F: Fn(usize, &mut [f32]) + Sync,
        E: Fn(usize, &mut [f32]) + Sync,
    {
        let g = &self.geo;
        let (obj, data) = ((g.eh, g.ew), (g.h, g.w));
        let ((ih, iw), (oh, ow)) = if adjoint { (data, obj) } else { (obj, data) };
        match &self.strips {
            Some(st) => {
                let (spec, shift) = if adjoint {
                    (&st.ka, st.sh_a)
                } else {
                    (&st.kf, st.sh_f)
                };
                st.grid.convolve_strips(
                    st.count, st.kh, shift, fill, ih, iw, spec, emit, oh, ow, s, par,
                )
            }
            None => {
                let spec = if adjoint { &self.ka } else { &self.kf };
                let mul = self.grid.product(spec);
                self.grid
                    .convolve_emit(fill, ih, iw, &mul, emit, oh, ow, s, par)
            }
        }
    }
}

struct Strips {
    grid: Grid,
    /// Number of strips; the output rows are split evenly among them.
    count: usize,
    kh: usize,
    kf: Spectrum,
    ka: Spectrum,
    sh_f: isize,
    sh_a: isize,
    /// H and H^T chained strip by strip (`Grid::convolve_chain`), when the
    /// strips allow it.
    chain: Option<Chain>,
}

/// Strips of at most about `target` output rows (None: 700; 0: none) on a
/// 2^a 3^b grid, for images at least two strips tall. A strip's spectra
/// (576-768 x 1081 complex for 2048-wide images, 5-6.6 MB) can stay in the
/// L3 cache between the row and the column passes, where a whole image's
/// (2160 x 1081, 18 MB) stream through memory three times per convolution;
/// the price is kh - 1 halo rows transformed again per strip and a slightly
/// larger total column length. `f` and `a`: the (row, column) shifts of the
/// forward and adjoint kernels on the full grid.
#[allow(clippy::too_many_arguments)]
fn make_strips(
    target: Option<usize>,
    threads: usize,
    k: &[f32],
    (kh, kw): (usize, usize),
    nw: usize,
    oh_max: usize,
    f: (isize, isize),
    a: (isize, isize),
) -> CoreResult<Option<Strips>> {
    let target = target.unwrap_or(700);
    if target == 0 || oh_max < 2 * target.max(kh) {
        return Ok(None);
    }
    let count = strip_count(oh_max, kh, target, threads);
    let rows = oh_max.div_ceil(count);
    let grid = Grid::new(super::conv::fast_len_23(rows + kh - 1), nw)?;
    let kf = grid.place(k, kh, kw, kh as isize - 1, f.1, false)?;
    let ka = grid.place(k, kh, kw, kh as isize - 1, a.1, true)?;
    Ok(Some(Strips {
        grid,
        count,
        kh,
        kf,
        ka,
        sh_f: f.0,
        sh_a: a.0,
        chain: None,
    }))
}

/// Number of strips for `oh` output rows. Where whole strips go to threads
/// (one image on `threads` threads, H and H^T not chained) the count is a
/// multiple of the thread count; callers pass 1 otherwise. Among the counts
/// whose 2^a 3^b grid is no taller than the one `target` rows need, the one
/// with the least FFT work: column points (count x grid height) plus the
/// halo rows transformed again (count x (kh - 1)). Rounding the strip
/// height up to a fast length can cost more than a strip fewer: 2110 rows
/// (the padded model of a 2048 image, 63-row PSF) in 3 strips of 704 run on
/// a 768 grid (2304 column points), in 4 of 528 on a 648 grid (2592).
fn strip_count(oh: usize, kh: usize, target: usize, threads: usize) -> usize {
    let (t, target) = (threads.max(1), target.max(1));
    let tallest = super::conv::fast_len_23(target + kh - 1);
    let cost = |n: usize| {
        let nh = super::conv::fast_len_23(oh.div_ceil(n) + kh - 1);
        (nh <= tallest).then_some((n * (nh + kh - 1), n))
    };
    let first = oh.div_ceil(target).saturating_sub(1).max(2).div_ceil(t) * t;
    (0..4)
        .map(|i| first + i * t)
        .filter_map(cost)
        .min()
        .map_or(oh.div_ceil(target).div_ceil(t) * t, |(_, n)| n)
}

fn new_work(sh: &Shared) -> Work {
    let g = &sh.geo;
    let e = g.eh * g.ew;
    let m = g.h * g.w;
    let accel = sh.opts.accelerate;
    let tv = sh.opts.tv > 0.0;
    Work {
        s: sh.strips.as_ref().map_or(&sh.grid, |st| &st.grid).scratch(),
        x: vec![0.0; e],
        xprev: if accel { vec![0.0; e] } else { Vec::new() },
        p: if accel && tv {
            vec![0.0; e]
        } else {
            Vec::new()
        },
        g: if accel { vec![0.0; e] } else { Vec::new() },
        ratio: vec![0.0; m],
        nx: if tv { vec![0.0; e] } else { Vec::new() },
        ny: if tv { vec![0.0; e] } else { Vec::new() },
    }
}

/// H^T(1) on the padded model's object grid (eh x ew): object pixel (r, c)
/// reaches data row r + a - (kh - 1) through PSF row a (H is the 'valid'
/// convolution data[i] = sum_a k[a] obj[i + kh - 1 - a]), so its value is
/// the PSF's sum over the rows a and columns b that land inside the h x w
/// data: one rectangle of a summed-area table (float64) per pixel.
fn adjoint_of_ones(k: &[f32], (kh, kw): (usize, usize), g: &Geometry) -> Vec<f32> {
    let mut sat = vec![0f64; (kh + 1) * (kw + 1)];
    for a in 0..kh {
        let mut run = 0f64;
        for b in 0..kw {
            run += k[a * kw + b] as f64;
            sat[(a + 1) * (kw + 1) + b + 1] = sat[a * (kw + 1) + b + 1] + run;
        }
    }
    // Taps [lo, hi) of a kernel of length n that land inside a data length
    // m from object index r.
    let range = |r: usize, n: usize, m: usize| {
        let lo = (n - 1).saturating_sub(r);
        let hi = (n - 1 + m).saturating_sub(r).min(n);
        (lo, hi.max(lo))
    };
    let cols: Vec<(usize, usize)> = (0..g.ew).map(|c| range(c, kw, g.w)).collect();
    let mut norm = vec![0f32; g.eh * g.ew];
    for (r, row) in norm.chunks_exact_mut(g.ew).enumerate() {
        let (a0, a1) = range(r, kh, g.h);
        let (top, bot) = (&sat[a0 * (kw + 1)..], &sat[a1 * (kw + 1)..]);
        for (v, &(b0, b1)) in row.iter_mut().zip(&cols) {
            *v = (bot[b1] - bot[b0] - top[b1] + top[b0]) as f32;
        }
    }
    // As `adjoint_of_mask`: pixels that see less than 1e-4 of the largest
    // value count as unmeasured (zero), so the update leaves them at zero
    // instead of dividing two tiny numbers.
    let thr = 1e-4 * norm.iter().copied().fold(0.0f32, f32::max);
    for v in norm.iter_mut() {
        if *v < thr {
            *v = 0.0;
        }
    }
    norm
}

/// H^T applied to the mask of valid measured pixels (all ones without one).
fn adjoint_of_mask(
    sh: &Shared,
    mask: Option<&ArrayView2<u8>>,
    wk: &mut Work,
    par: bool,
) -> Vec<f32> {
    let g = &sh.geo;
    let ones: Vec<f32> = match mask {
        None => vec![1.0; g.h * g.w],
        Some(m) => m.iter().map(|&v| (v != 0) as u8 as f32).collect(),
    };
    let mut norm = vec![0.0f32; g.eh * g.ew];
    let np = CPtr(norm.as_mut_ptr());
    let fill = |r: usize, d: &mut [f32]| d.copy_from_slice(&ones[r * g.w..(r + 1) * g.w]);
    // SAFETY: each row of `norm` (eh rows of ew) is emitted once.
    let emit = |r: usize, row: &mut [f32]| unsafe { np.row(r, g.ew) }.copy_from_slice(row);
    sh.apply(true, &fill, &emit, &mut wk.s, par);
    // Rounding leaves values of order 1e-7 where the true value is zero.
    let thr = 1e-4 * norm.iter().copied().fold(0.0f32, f32::max);
    for v in norm.iter_mut() {
        if *v < thr {
            *v = 0.0;
        }
    }
    norm
}

/// Apply `f` to chunks of equal-length slices, in parallel or not.
fn each<F>(par: bool, len: usize, f: F)
where
    F: Fn(std::ops::Range<usize>) + Sync + Send,
{
    const CH: usize = 1 << 15;
    if par {
        (0..len.div_ceil(CH))
            .into_par_iter()
            .for_each(|c| f(c * CH..((c + 1) * CH).min(len)));
    } else {
        f(0..len);
    }
}

/// Raw pointer that may be shared across threads for writes to disjoint
/// ranges (each chunk of `each` touches only its own range).
#[derive(Clone, Copy)]
struct Ptr(*mut f32);
unsafe impl Send for Ptr {}
unsafe impl Sync for Ptr {}
impl Ptr {
    /// # Safety
    /// Callers write only to indices of their own disjoint range.
    #[inline(always)]
    unsafe fn slice<'a>(self, r: &std::ops::Range<usize>) -> &'a mut [f32] {
        std::slice::from_raw_parts_mut(self.0.add(r.start), r.len())
    }
}

fn one_image(
    sh: &Shared,
    y: ArrayView2<f32>,
    mask: Option<ArrayView2<u8>>,
    wk: &mut Work,
    par: bool,
) -> RlReport {
    let g = &sh.geo;
    let o = sh.opts;
    let (h, w) = (g.h, g.w);
    let yv: Vec<f32> = y.iter().copied().collect();
    let mv: Option<Vec<f32>> = mask
        .as_ref()
        .map(|m| m.iter().map(|&v| (v != 0) as u8 as f32).collect());
    let mut rep = RlReport::default();
    let zero = o.boundary == Boundary::Zero;

    // Normalisation H^T(mask) on the object grid.
    let own_norm;
    let norm: &[f32] = match (&sh.norm, zero) {
        (_, true) => &[],
        (Some(nrm), false) => nrm,
        (None, false) => {
            own_norm = adjoint_of_mask(sh, mask.as_ref(), wk, par);
            &own_norm
        }
    };

    // Start: scikit-image's 0.5, else the mean of the valid data where the
    // object is seen at all.
    if zero {
        wk.x.fill(0.5);
    } else {
        let (s, c) = match &mv {
            None => (
                yv.iter().map(|&v| v.max(0.0) as f64).sum::<f64>(),
                (h * w) as f64,
            ),
            Some(m) => yv.iter().zip(m).fold((0.0, 0.0), |(s, c), (&v, &mk)| {
                (s + (v.max(0.0) * mk) as f64, c + mk as f64)
            }),
        };
        let x0 = if c > 0.0 { (s / c) as f32 } else { 0.0 };
        for (x, &nv) in wk.x.iter_mut().zip(norm) {
            *x = if nv > 0.0 { x0 } else { 0.0 };
        }
    }
    let scale = {
        let s: f64 = yv.iter().map(|&v| v.abs() as f64).sum::<f64>() / (h * w) as f64;
        s.max(1e-30) as f32
    };
    let n_valid = mv
        .as_ref()
        .map_or((h * w) as f64, |m| m.iter().map(|&v| v as f64).sum());
    let (eh, ew) = (g.eh, g.ew);
    let e = eh * ew;
    // g_k . g_(k-1), |g_(k-1)|^2 and |g_k|^2 for the next step length.
    let (mut num_next, mut den_next, mut gg_last) = (0.0f64, 0.0f64, 0.0f64);
    // Per-row partial sums (chi^2, or g_k . g_(k-1) and |g_k|^2), added up
    // in row order so the result does not depend on the thread count.
    let mut acc = vec![[0.0f64; 2]; eh.max(h)];
    let tiny = 1e-12f32 * scale;
    let Work {
        s,
        x,
        xprev,
        p,
        g,
        ratio,
        nx,
        ny,
    } = wk;
    let mut k = 0usize;
    while k < o.iterations {
        // Prediction point p = max(x + alpha (x - x_prev), 0) (Biggs-Andrews)
        // or x itself. It is computed row by row where it is used (the
        // forward blur's input rows and the update) and stored only for TV.
        let use_p = o.accelerate && k >= 2;
        let a = if use_p && den_next > 0.0 {
            (num_next / den_next).clamp(0.0, 1.0) as f32
        } else {
            0.0
        };
        let store_p = o.tv > 0.0 && use_p;
        if store_p {
            let pp = Ptr(p.as_mut_ptr());
            let (xs, xps) = (&x[..], &xprev[..]);
            each(par, e, |r| {
                // SAFETY: each chunk writes its own range of p.
                let po = unsafe { pp.slice(&r) };
                predict(&xs[r.clone()], &xps[r], a, po);
            });
        }
        if o.tv > 0.0 {
            let pv: &[f32] = if store_p { p } else { x };
            tv_normals(pv, eh, ew, 1e-3 * scale, nx, ny);
        }

        // Blur p onto the measured pixels; each blurred row becomes the
        // ratio y / Hp at once (and its share of chi^2 for the stopping
        // rule), so the blurred image is never stored.
        //
        // With a chain plan (no stopping rule) the two blurs run
        // strip by strip and the ratio rows go from one to the other without
        // being stored; H^T's strip i updates rows of x, x_prev and g that
        // H's later strips no longer read, so x and x_prev are read through
        // raw pointers too.
        let chain = match (&sh.strips, o.noise) {
            (Some(st), None) => st.chain.as_ref().map(|c| (st, c)),
            _ => None,
        };
        let (xp, xpp) = (CPtr(x.as_mut_ptr()), CPtr(xprev.as_mut_ptr()));
        let ps = &p[..];
        let fill_h = |r: usize, d: &mut [f32]| {
            // SAFETY: rows r < eh of x and x_prev; no row is written while
            // it is read (see above). Strips transformed in parallel read
            // their shared halo rows at once, hence shared slices.
            let (xs, xps) = unsafe { (xp.row_ref(r, ew), xpp.row_ref(r, ew)) };
            if store_p {
                d.copy_from_slice(&ps[r * ew..(r + 1) * ew]);
            } else if use_p {
                predict(xs, xps, a, d);
            } else {
                d.copy_from_slice(xs);
            }
        };
        let (yv, mvr) = (&yv, &mv);
        let ratio_of = |r: usize, b: &[f32], out: &mut [f32]| {
            let ys = &yv[r * w..(r + 1) * w];
            if zero {
                ratio_row_zero(out, b, ys);
            } else {
                let ms = mvr.as_ref().map(|m| &m[r * w..(r + 1) * w]);
                ratio_row(out, b, ys, ms, tiny);
            }
        };
        {
            let (rp, ap) = (CPtr(ratio.as_mut_ptr()), CPtr(acc.as_mut_ptr()));
            let emit = |r: usize, b: &mut [f32]| {
                // SAFETY: row r of the ratio and slot r of acc belong to this
                // call only.
                let out = unsafe { rp.row(r, w) };
                let ys = &yv[r * w..(r + 1) * w];
                let ms = mvr.as_ref().map(|m| &m[r * w..(r + 1) * w]);
                if let Some(nz) = o.noise {
                    let rn2 = nz.read_noise * nz.read_noise;
                    let mut c2 = 0.0f64;
                    for (c, (&bv, &yy)) in b.iter().zip(ys).enumerate() {
                        if ms.is_none_or(|m| m[c] > 0.0) {
                            let var = (nz.gain * bv.max(0.0) + rn2).max(1e-30) as f64;
                            let d = (yy - bv) as f64;
                            c2 += d * d / var;
                        }
                    }
                    let slot = unsafe { ap.row(r, 1) };
                    slot[0][0] = c2;
                }
                ratio_of(r, b, out);
            };
            if chain.is_none() {
                sh.apply(false, &fill_h, &emit, s, par);
            }
        }

        // Discrepancy principle (Poisson + read noise) on the blur of p.
        if o.noise.is_some() {
            let chi2: f64 = acc[..h].iter().map(|v| v[0]).sum();
            let d = chi2 / n_valid.max(1.0);
            rep.discrepancy.push(d);
            if d <= o.tau as f64 {
                // The estimate that met the target is p.
                if store_p {
                    std::mem::swap(x, p);
                } else if use_p {
                    for (xv, &xpv) in x.iter_mut().zip(xprev.iter()) {
                        *xv = extrapolate(*xv, xpv, a);
                    }
                }
                rep.stopped = true;
                break;
            }
        }

        // Correction H^T(ratio) on the object grid, and in the same row the
        // update x <- p H^T(y / Hp) / (H^T mask - lambda div(grad p / |grad p|))
        // with, when accelerating, g <- x_new - p and the dot products for
        // the next step length. x_new goes into x_prev's buffer (x_prev is
        // read first, element by element) and g into the older g's.
        {
            let rs = &ratio[..];
            let fill = |r: usize, d: &mut [f32]| d.copy_from_slice(&rs[r * w..(r + 1) * w]);
            let (gp, ap) = (CPtr(g.as_mut_ptr()), CPtr(acc.as_mut_ptr()));
            let (nxs, nys) = (&nx[..], &ny[..]);
            let tv = o.tv;
            let den = |i: usize, nv: f32| -> f32 {
                if tv > 0.0 {
                    let (row, col) = (i / ew, i % ew);
                    let mut div = nxs[i] + nys[i];
                    if col > 0 {
                        div -= nxs[i - 1];
                    }
                    if row > 0 {
                        div -= nys[i - ew];
                    }
                    (nv - tv * div).max(0.05 * nv)
                } else {
                    nv
                }
            };
            let accelerate = o.accelerate;
            let unit = if mv.is_none() { sh.unit } else { None };
            let emit = |r: usize, corr: &mut [f32]| {
                // SAFETY: row r of x, x_prev, g and slot r of acc belong to
                // this call only.
                let xr = unsafe { xp.row(r, ew) };
                if zero {
                    mul_row(xr, corr);
                    return;
                }
                let i0 = r * ew;
                let nr = &norm[i0..i0 + ew];
                if accelerate {
                    let xpr = unsafe { xpp.row(r, ew) };
                    let gr = unsafe { gp.row(r, ew) };
                    let (mut num, mut gg) = (0.0f64, 0.0f64);
                    if tv == 0.0 && !store_p {
                        // The common case, in branch-free passes the
                        // compiler vectorises (a = 0 makes p = x, as x >= 0);
                        // in the interior the normalisation is a constant.
                        let corr = &corr[..ew];
                        let (c0, c1, ks) = match unit {
                            Some((r0, r1, c0, c1, ks)) if (r0..r1).contains(&r) => (c0, c1, ks),
                            _ => (ew, ew, 1.0),
                        };
                        for (lo, hi) in [(0, c0), (c1, ew)] {
                            let (n, g) = accel_update(
                                &xr[lo..hi],
                                &mut xpr[lo..hi],
                                &mut gr[lo..hi],
                                Norm::Row(&nr[lo..hi]),
                                &corr[lo..hi],
                                a,
                            );
                            num += n;
                            gg += g;
                        }
                        if c1 > c0 {
                            let (n, g) = accel_update(
                                &xr[c0..c1],
                                &mut xpr[c0..c1],
                                &mut gr[c0..c1],
                                Norm::Const(ks),
                                &corr[c0..c1],
                                a,
                            );
                            num += n;
                            gg += g;
                        }
                        let slot = unsafe { ap.row(r, 1) };
                        slot[0] = [num, gg];
                        return;
                    }
                    for c in 0..ew {
                        let pv = if store_p {
                            ps[i0 + c]
                        } else if use_p {
                            extrapolate(xr[c], xpr[c], a)
                        } else {
                            xr[c]
                        };
                        let nv = nr[c];
                        let v = if nv > 0.0 {
                            pv * corr[c] / den(i0 + c, nv)
                        } else {
                            0.0
                        };
                        let gn = v - pv;
                        xpr[c] = v;
                        num += gn as f64 * gr[c] as f64;
                        gr[c] = gn;
                        gg += gn as f64 * gn as f64;
                    }
                    let slot = unsafe { ap.row(r, 1) };
                    slot[0] = [num, gg];
                } else {
                    for c in 0..ew {
                        let nv = nr[c];
                        xr[c] = if nv > 0.0 {
                            xr[c] * corr[c] / den(i0 + c, nv)
                        } else {
                            0.0
                        };
                    }
                }
            };
            match chain {
                Some((st, c)) => st.grid.convolve_chain(
                    c,
                    &fill_h,
                    (eh, ew),
                    &st.kf,
                    &ratio_of,
                    w,
                    &st.ka,
                    &emit,
                    ew,
                    s,
                    par,
                ),
                None => sh.apply(true, &fill, &emit, s, par),
            }
        }
        if o.accelerate {
            let (num, gg) = acc[..eh]
                .iter()
                .fold((0.0, 0.0), |(a, b), v| (a + v[0], b + v[1]));
            std::mem::swap(x, xprev);
            num_next = num;
            den_next = gg_last;
            gg_last = gg;
        }
        k += 1;
    }
    rep.iterations = k;
    rep
}

/// One stretch of the accelerated update without TV: p = max(x + a (x -
/// x_prev), 0), x_new = p corr / norm (0 where norm is 0) written over
/// x_prev, g = x_new - p written over g_prev (`g`); returns (g . g_prev,
/// g . g). The AVX2 path computes exactly what `accel_lanes` does (same
/// operations, same order of the sums).
fn accel_update(
    x: &[f32],
    x_prev: &mut [f32],
    g: &mut [f32],
    norm: Norm,
    corr: &[f32],
    a: f32,
) -> (f64, f64) {
    let n = x.len();
    assert!(x_prev.len() == n && g.len() == n && corr.len() >= n);
    if let Norm::Row(nr) = norm {
        assert!(nr.len() >= n);
    }
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present; the lengths are checked above.
        return unsafe { accel_avx2(x, x_prev, g, norm, corr, a) };
    }
    match norm {
        Norm::Row(nr) => accel_lanes(x, x_prev, g, |i| nr[i], corr, a),
        Norm::Const(k) => accel_lanes(x, x_prev, g, |_| k, corr, a),
    }
}

/// `accel_lanes` in AVX2 registers: LLVM kept parts of that loop in
/// 128-bit and scalar registers (the closures and the f64 lanes), and it
/// was the largest single item of an accelerated iteration's profile.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn accel_avx2(
    x: &[f32],
    x_prev: &mut [f32],
    g: &mut [f32],
    norm: Norm,
    corr: &[f32],
    a: f32,
) -> (f64, f64) {
    use std::arch::x86_64::*;
    const L: usize = ACCEL_LANES;
    const C: usize = ACCEL_BLOCK;
    let n = x.len();
    let full = n - n % L;
    let (xp, xpp, gp, cp) = (
        x.as_ptr(),
        x_prev.as_mut_ptr(),
        g.as_mut_ptr(),
        corr.as_ptr(),
    );
    let (av, zero) = (_mm256_set1_ps(a), _mm256_setzero_ps());
    let (mut num_lo, mut num_hi) = (_mm256_setzero_pd(), _mm256_setzero_pd());
    let (mut gg_lo, mut gg_hi) = (_mm256_setzero_pd(), _mm256_setzero_pd());
    let mut b0 = 0;
    while b0 < full {
        let (mut nf, mut gf) = (zero, zero);
        let mut o = b0;
        let end = full.min(b0 + L * C);
        while o < end {
            let xv = _mm256_loadu_ps(xp.add(o));
            let xpv = _mm256_loadu_ps(xpp.add(o));
            let gv = _mm256_loadu_ps(gp.add(o));
            let cv = _mm256_loadu_ps(cp.add(o));
            let nv = match norm {
                Norm::Row(nr) => _mm256_loadu_ps(nr.as_ptr().add(o)),
                Norm::Const(k) => _mm256_set1_ps(k),
            };
            // extrapolate(): max(x + a (x - x_prev), 0), as mul then add.
            let p = _mm256_max_ps(
                _mm256_add_ps(xv, _mm256_mul_ps(av, _mm256_sub_ps(xv, xpv))),
                zero,
            );
            let q = _mm256_div_ps(_mm256_mul_ps(p, cv), nv);
            let v = _mm256_and_ps(q, _mm256_cmp_ps::<_CMP_GT_OQ>(nv, zero));
            let gn = _mm256_sub_ps(v, p);
            _mm256_storeu_ps(xpp.add(o), v);
            nf = _mm256_add_ps(nf, _mm256_mul_ps(gn, gv));
            _mm256_storeu_ps(gp.add(o), gn);
            gf = _mm256_add_ps(gf, _mm256_mul_ps(gn, gn));
            o += L;
        }
        num_lo = _mm256_add_pd(num_lo, _mm256_cvtps_pd(_mm256_castps256_ps128(nf)));
        num_hi = _mm256_add_pd(num_hi, _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(nf)));
        gg_lo = _mm256_add_pd(gg_lo, _mm256_cvtps_pd(_mm256_castps256_ps128(gf)));
        gg_hi = _mm256_add_pd(gg_hi, _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(gf)));
        b0 = end;
    }
    let mut num = [0.0f64; L];
    let mut gg = [0.0f64; L];
    _mm256_storeu_pd(num.as_mut_ptr(), num_lo);
    _mm256_storeu_pd(num.as_mut_ptr().add(4), num_hi);
    _mm256_storeu_pd(gg.as_mut_ptr(), gg_lo);
    _mm256_storeu_pd(gg.as_mut_ptr().add(4), gg_hi);
    let (tn, tg) = accel_tail(x, x_prev, g, |i| norm.at(i), corr, a, full);
    (num.iter().sum::<f64>() + tn, gg.iter().sum::<f64>() + tg)
}

/// Lanes and block length of the accelerated update's sums.
const ACCEL_LANES: usize = 8;
const ACCEL_BLOCK: usize = 64;

/// H^T(mask) over a row segment: stored, or the constant of the interior.
#[derive(Clone, Copy)]
enum Norm<'a> {
    Row(&'a [f32]),
    Const(f32),
}

impl Norm<'_> {
    #[inline(always)]
    fn at(self, i: usize) -> f32 {
        match self {
            Norm::Row(nr) => nr[i],
            Norm::Const(k) => k,
        }
    }
}

/// The portable update: the sums run in L independent f32 lanes over
/// blocks of C elements per lane, each block's lanes then added into f64
/// lanes (one accumulator would chain every element's add to the previous
/// one and keep the loop scalar). A block's f32 sum of C products carries
/// a relative rounding of about C^(1/2) 2^-24, far below what the step
/// length needs. Blocks and lanes are added in a fixed order, so the
/// result does not depend on the thread count.
#[inline(always)]
fn accel_lanes<N: Fn(usize) -> f32>(
    x: &[f32],
    x_prev: &mut [f32],
    g: &mut [f32],
    norm: N,
    corr: &[f32],
    a: f32,
) -> (f64, f64) {
    const L: usize = ACCEL_LANES;
    const C: usize = ACCEL_BLOCK;
    let n = x.len();
    let (mut num, mut gg) = ([0.0f64; L], [0.0f64; L]);
    let full = n - n % L;
    for b0 in (0..full).step_by(L * C) {
        let (mut nf, mut gf) = ([0.0f32; L], [0.0f32; L]);
        for o in (b0..full.min(b0 + L * C)).step_by(L) {
            for j in 0..L {
                let (p, v) = accel_one(x[o + j], x_prev[o + j], norm(o + j), corr[o + j], a);
                let gn = v - p;
                x_prev[o + j] = v;
                nf[j] += gn * g[o + j];
                g[o + j] = gn;
                gf[j] += gn * gn;
            }
        }
        for j in 0..L {
            num[j] += nf[j] as f64;
            gg[j] += gf[j] as f64;
        }
    }
    let (tn, tg) = accel_tail(x, x_prev, g, norm, corr, a, full);
    (num.iter().sum::<f64>() + tn, gg.iter().sum::<f64>() + tg)
}

/// (p, x_new) of one element.
#[inline(always)]
fn accel_one(xv: f32, xpv: f32, nv: f32, cv: f32, a: f32) -> (f32, f32) {
    let pv = extrapolate(xv, xpv, a);
    let q = pv * cv / nv;
    (pv, if nv > 0.0 { q } else { 0.0 })
}

/// The elements from `from` on, one at a time, with f64 sums.
#[inline(always)]
fn accel_tail<N: Fn(usize) -> f32>(
    x: &[f32],
    x_prev: &mut [f32],
    g: &mut [f32],
    norm: N,
    corr: &[f32],
    a: f32,
    from: usize,
) -> (f64, f64) {
    let (mut tn, mut tg) = (0.0f64, 0.0f64);
    for i in from..x.len() {
        let (p, v) = accel_one(x[i], x_prev[i], norm(i), corr[i], a);
        let gn = v - p;
        x_prev[i] = v;
        tn += gn as f64 * g[i] as f64;
        g[i] = gn;
        tg += gn as f64 * gn as f64;
    }
    (tn, tg)
}

avx2_dispatch! {
    /// p = max(x + a (x - x_prev), 0), the Biggs-Andrews prediction.
    fn predict(x: &[f32], xprev: &[f32], a: f32, p: &mut [f32]) {
        for ((pv, &xv), &xpv) in p.iter_mut().zip(x).zip(xprev) {
            *pv = extrapolate(xv, xpv, a);
        }
    }
}

/// The Biggs-Andrews prediction of one element: max(x + a (x - x_prev), 0).
#[inline(always)]
fn extrapolate(x: f32, x_prev: f32, a: f32) -> f32 {
    (x + a * (x - x_prev)).max(0.0)
}

avx2_dispatch! {
    /// out = m y+ / b where b > tiny, else 0: the ratio row of the padded
    /// model (m the mask row, if any).
    fn ratio_row(out: &mut [f32], b: &[f32], y: &[f32], m: Option<&[f32]>, tiny: f32) {
        // Branch-free (the quotient is computed and dropped where b <= tiny) so
        // that the loop vectorises.
        match m {
            Some(m) => {
                for (((ov, &bv), &yy), &mk) in out.iter_mut().zip(b).zip(y).zip(m) {
                    let q = mk * yy.max(0.0) / bv;
                    *ov = if bv > tiny { q } else { 0.0 };
                }
            }
            None => {
                for ((ov, &bv), &yy) in out.iter_mut().zip(b).zip(y) {
                    let q = yy.max(0.0) / bv;
                    *ov = if bv > tiny { q } else { 0.0 };
                }
            }
        }
    }
}

avx2_dispatch! {
    /// out = y / (b + 1e-12): scikit-image's ratio.
    fn ratio_row_zero(out: &mut [f32], b: &[f32], y: &[f32]) {
        for ((ov, &bv), &yy) in out.iter_mut().zip(b).zip(y) {
            *ov = yy / (bv + 1e-12);
        }
    }
}

avx2_dispatch! {
    /// x *= c element by element.
    fn mul_row(x: &mut [f32], c: &[f32]) {
        for (xv, &cv) in x.iter_mut().zip(c) {
            *xv *= cv;
        }
    }
}

/// grad p / |grad p| by forward differences (zero at the far border).
fn tv_normals(p: &[f32], eh: usize, ew: usize, eps: f32, nx: &mut [f32], ny: &mut [f32]) {
    let e2 = eps * eps;
    for r in 0..eh {
        for c in 0..ew {
            let i = r * ew + c;
            let gx = if c + 1 < ew { p[i + 1] - p[i] } else { 0.0 };
            let gy = if r + 1 < eh { p[i + ew] - p[i] } else { 0.0 };
            let inv = 1.0 / (gx * gx + gy * gy + e2).sqrt();
            nx[i] = gx * inv;
            ny[i] = gy * inv;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::conv::fast_len_23;
    use super::{accel_lanes, accel_update, strip_count, Norm};

    #[test]
    fn accel_update_vector_path_equals_the_portable_one() {
        // Bit for bit: same operations in the same order, including the
        // blocked sums; lengths around the lane and block edges, norm zero
        // in places (x_new = 0 there) and a constant norm.
        let v = |n: usize, s: usize| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * 7919 + s * 104_729) % 1009) as f32 / 300.0)
                .collect()
        };
        for n in [0usize, 5, 8, 13, 511, 512, 513, 2110] {
            let (x, corr) = (v(n, 1), v(n, 2));
            let mut nr = v(n, 3);
            for i in (0..n).step_by(17) {
                nr[i] = 0.0;
            }
            for norm in [Norm::Row(&nr), Norm::Const(1.7)] {
                let (mut xp1, mut g1) = (v(n, 4), v(n, 5));
                let (mut xp2, mut g2) = (xp1.clone(), g1.clone());
                let got = accel_update(&x, &mut xp1, &mut g1, norm, &corr, 0.6);
                let want = match norm {
                    Norm::Row(r) => accel_lanes(&x, &mut xp2, &mut g2, |i| r[i], &corr, 0.6),
                    Norm::Const(k) => accel_lanes(&x, &mut xp2, &mut g2, |_| k, &corr, 0.6),
                };
                assert_eq!(got, want, "n = {n}");
                assert_eq!(xp1, xp2);
                assert_eq!(g1, g2);
            }
        }
    }

    #[test]
    fn strips_cover_the_rows_with_the_least_fft_work() {
        // The 2048-pixel cases of the benchmark (63-row PSF): the padded
        // model's 2110 rows go in 3 strips on a 768 grid, not 4 on 648.
        assert_eq!(strip_count(2110, 63, 700, 1), 3);
        assert_eq!(strip_count(2110, 63, 700, 2), 4);
        assert_eq!(strip_count(2048, 63, 700, 1), 3);
        assert_eq!(strip_count(2048, 63, 700, 2), 4);
        for oh in [40, 141, 700, 1400, 1999, 2110, 4096, 10001] {
            for kh in [1, 5, 63] {
                for target in [20, 300, 700] {
                    for threads in [1, 2, 3, 16] {
                        if oh < 2 * target.max(kh) {
                            continue;
                        }
                        let n = strip_count(oh, kh, target, threads);
                        let what = format!(
                            "{oh} rows, kh {kh}, target {target}, {threads} threads: {n} strips"
                        );
                        assert!(n >= 2 && n % threads == 0, "{what}");
                        assert!(
                            fast_len_23(oh.div_ceil(n) + kh - 1) <= fast_len_23(target + kh - 1),
                            "{what}: grid too tall"
                        );
                    }
                }
            }
        }
    }
}
