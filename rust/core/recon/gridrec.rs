//! Fourier-gridding reconstruction (gridrec family: Dowd et al., Proc. SPIE
//! 3772, 1999; Marone and Stampanoni, J. Synchrotron Rad. 19, 1029, 2012).
//!
//! Per projection: pad (edge values), 1-D FFT, multiply by the windowed ramp
//! and the angle's weight, and spread each polar sample (Fourier slice
//! theorem) onto an oversampled Cartesian grid with a Kaiser-Bessel kernel;
//! then one 2-D inverse FFT and division by the kernel's transform
//! (deapodisation). The grid has the padded length `pad_len` per side, i.e.
//! an oversampling of pad_len / n_out >= 2 with the default padding. Two
//! slices travel together as the real and imaginary parts of one complex
//! sinogram, as in TomoPy's gridrec. A slice left alone (one row, or the last
//! of an odd count) uses the Hermitian symmetry of its real image instead:
//! only the k >= 0 half of each projection's spectrum is gridded (the k = 0
//! sample at half weight) and the slice is 2 Re(iFFT) of that half grid,
//! which halves the gridding and skips the empty half of the first iFFT pass.
//! When there are fewer slice groups than threads, each group's projection
//! FFTs run in parallel over the angles and its gridding in parallel over
//! bands of grid rows (each band owned by one thread, balanced by the number
//! of samples), so one slice on two threads takes about half the time.
//!
//! The ramp filter needs the padded length P (>= 2 N: no wrap-around), but
//! the grid does not: when a smaller grid G = alpha n_out suffices (alpha
//! ~1.25 with a wider kernel; Beatty et al. 2005), each filtered projection
//! is brought back to real space (inverse FFT of length P), cut to the G
//! samples around the axis with a cosine roll-off outside the field of view
//! (the slice never reads them), and transformed again at length G: G
//! samples per angle instead of P are gridded onto a G x G grid instead of
//! P x P, for two more 1-D FFTs per projection. The grid rows carry a margin
//! of kernel widths on both sides, so the spreading loop writes W contiguous
//! cells per grid row without wrapping; the margins are folded back (modulo
//! G) in the pass that does the row FFTs.
//!
//! The grid is complex float32 (a float64 grid would double the memory,
//! 2 x 134 MB for a 4096 grid, for no visible gain: every cell sums at most a
//! few thousand float32 terms of the same sign pattern).

use super::{filter_response, mask_cols, pad_edge, Geometry};
use crate::error::{CoreError, CoreResult};
use ndarray::{Array3, ArrayView3, Axis};
use rayon::prelude::*;
use rustfft::num_complex::{Complex32, Complex64};
use rustfft::FftPlanner;
use std::f64::consts::PI;

/// Table samples per grid unit of the kernel.
const KB_OVERSAMPLE: usize = 1024;
/// Cosine roll-off of a filtered projection cut to the grid length, pixels.
const ROLL_OFF: usize = 32;
/// Grid oversampling (grid length / n_out) chosen for a kernel width: the
/// aliasing of a Kaiser-Bessel kernel falls with both (Beatty et al. 2005,
/// fig. 3). Measured at 1501 x 2048 (gain on a uniform disc, centre and
/// 0.8-0.9 R): width 5 on 1.25 x gives 1.0000 and 0.9999, as width 4 on 2 x
/// (0.9998, 1.0002) at 0.6 x the time; width 4 on 1.5 x 0.9969 and 1.0021.
/// Widths up to 4 keep the 2 x grid.
fn oversampling(w: usize) -> f64 {
    match w {
        0..=4 => 2.0,
        _ => 1.25,
    }
}

/// Smallest 2^a 3^b 5^c >= n (fast rustfft lengths).
fn fast_len(n: usize) -> usize {
    let mut m = n.max(1);
    loop {
        let mut r = m;
        for f in [2, 3, 5] {
            while r % f == 0 {
                r /= f;
            }
        }
        if r == 1 {
            return m;
        }
        m += 1;
    }
}
/// Output columns transformed together in the second FFT pass.
const BLOCK: usize = 8;
/// Spectrum entries transposed together (angle-major to k-major).
const KBLOCK: usize = 16;

/// ceil(x) as an integer without a libm call (|x| well inside isize).
#[inline]
fn ceil_i(x: f64) -> isize {
    let t = x as isize;
    if (t as f64) < x {
        t + 1
    } else {
        t
    }
}

/// Beatty et al., IEEE TMI 24, 799 (2005), eq. 5: the Kaiser-Bessel shape
/// for kernel width `w` (grid units) and oversampling `alpha`.
pub fn kb_beta(w: f64, alpha: f64) -> f64 {
    let t = (w / alpha).powi(2) * (alpha - 0.5).powi(2) - 0.8;
    PI * t.max(0.0).sqrt()
}

fn bessel_i0(x: f64) -> f64 {
    // Power series; converges for the arguments used here (< 40).
    let mut sum = 1.0;
    let mut term = 1.0;
    let q = x * x / 4.0;
    for k in 1..200 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < 1e-17 * sum {
            break;
        }
    }
    sum
}

struct Kernel {
    table: Vec<f32>,
}

impl Kernel {
    fn new(w: usize, beta: f64) -> Self {
        let half = w as f64 / 2.0;
        // Two spare entries: at() may round up past the last sample.
        let n = (half * KB_OVERSAMPLE as f64) as usize + 4;
        let table = (0..n)
            .map(|i| {
                let u = i as f64 / KB_OVERSAMPLE as f64;
                let r = u / half;
                if r >= 1.0 {
                    0.0
                } else {
                    bessel_i0(beta * (1.0 - r * r).sqrt()) as f32
                }
            })
            .collect();
        Kernel { table }
    }
    #[inline]
    fn at(&self, u: f32) -> f32 {
        let i = (u.abs() * KB_OVERSAMPLE as f32 + 0.5) as usize;
        // |u| <= w / 2 + a rounding error here: the clamp never bites but
        // keeps the loop free of a branch.
        self.table[i.min(self.table.len() - 1)]
    }
    /// Its continuous Fourier transform at `x` cycles per grid length (x / g
    /// cycles per grid unit), by quadrature on the table; cos(i t) by the
    /// Chebyshev recurrence (float64, a few thousand steps: ~1e-12).
    fn transform(&self, x: f64, g: f64) -> f64 {
        let du = 1.0 / KB_OVERSAMPLE as f64;
        let t = 2.0 * PI * du * x / g;
        let c1 = t.cos();
        let (mut prev, mut cur) = (1.0f64, c1); // cos(0 t), cos(1 t)
        let mut s = self.table[0] as f64;
        for &v in self.table.iter().skip(1) {
            s += 2.0 * v as f64 * cur;
            let next = 2.0 * c1 * cur - prev;
            prev = cur;
            cur = next;
        }
        s * du
    }
}

/// Everything the slice groups share: kernel, filter, plans, angles.
struct Plan<'a> {
    geo: &'a Geometry,
    kern: Kernel,
    w: usize,
    n: usize,
    /// Grid length G.
    g: usize,
    /// Padded projection length P (= G without resampling).
    p: usize,
    /// Grid row stride: G plus the margins.
    stride: usize,
    /// Column of frequency 0 in a grid row.
    off: usize,
    /// DFT index (mod G) of each stored column.
    fold: Vec<usize>,
    nd: usize,
    na: usize,
    left: usize,
    hh: usize,
    delta: f64,
    kmax: isize,
    /// Filter response (length P) applied before the resampling; None: no
    /// resampling, `kfac` carries it.
    resp: Option<Vec<f32>>,
    /// Factor per DFT index of the gridded spectrum (length G).
    kfac: Vec<f32>,
    /// Cut-out roll-off (length G, centred on G / 2) when resampling.
    cut: Vec<f32>,
    fwd: std::sync::Arc<dyn rustfft::Fft<f32>>,
    /// Length P inverse and length G forward (resampling only).
    inv_p: std::sync::Arc<dyn rustfft::Fft<f32>>,
    fwd_g: std::sync::Arc<dyn rustfft::Fft<f32>>,
    inv: std::sync::Arc<dyn rustfft::Fft<f32>>,
    trig: Vec<(f64, f64)>,
    /// 1 / kernel transform at |m| = 0..: the deapodisation (even in m).
    deapod: Vec<f32>,
    /// i % g for i < 3 g: wrapping by table instead of division.
    wrap: Vec<usize>,
    /// Roll-off of the padding (`pad_edge`'s), left and right of the data.
    taper_l: Vec<f32>,
    taper_r: Vec<f32>,
}

/// Per-thread buffers, reused from one slice group to the next.
struct Bufs {
    grid: Vec<Complex32>,
    vbuf: Vec<Complex32>,
    spec: Vec<Complex32>,
    cols: Vec<Complex32>,
}

impl Bufs {
    fn new() -> Self {
        Bufs {
            grid: Vec::new(),
            vbuf: Vec::new(),
            spec: Vec::new(),
            cols: Vec::new(),
        }
    }
}

/// `v` as `len` zeros. A fresh buffer comes from the allocator already
/// zeroed (untouched pages cost nothing until written: a half-plane grid
/// never writes half of them); a reused one is cleared.
fn zeroed(v: &mut Vec<Complex32>, len: usize) {
    if v.len() == len {
        v.fill(Complex32::new(0.0, 0.0));
    } else {
        *v = vec![Complex32::new(0.0, 0.0); len];
    }
}

impl Plan<'_> {
    /// `pad_edge` with the roll-off tables of this length (no cos per sample).
    fn pad(&self, row: ndarray::ArrayView1<f32>, buf: &mut [f32]) {
        let (left, nd) = (self.left, self.nd);
        let first = row[0];
        let last = row[nd - 1];
        for (b, &v) in buf[left..left + nd].iter_mut().zip(row.iter()) {
            *b = v;
        }
        for (b, &t) in buf[..left].iter_mut().zip(&self.taper_l) {
            *b = first * t;
        }
        for (b, &t) in buf[left + nd..].iter_mut().zip(&self.taper_r) {
            *b = last * t;
        }
    }

    /// Gridded values of angle `a` for k = kmin..=kmax into `dst(kk, value)`.
    #[allow(clippy::too_many_arguments)]
    fn angle_values(
        &self,
        proj: &ArrayView3<f32>,
        a: usize,
        rows: [usize; 2],
        two: bool,
        kmin: isize,
        tmp: &mut AngleTmp,
        mut dst: impl FnMut(usize, Complex32),
    ) {
        let (g, left) = (self.g, self.left);
        let gi = g as isize;
        self.pad(proj.slice(ndarray::s![a, rows[0], ..]), &mut tmp.re);
        if two {
            self.pad(proj.slice(ndarray::s![a, rows[1], ..]), &mut tmp.im);
        }
        for (z, (&x, &y)) in tmp.buf.iter_mut().zip(tmp.re.iter().zip(&tmp.im)) {
            *z = Complex32::new(x, if two { y } else { 0.0 });
        }
        self.fwd
            .process_with_scratch(&mut tmp.buf, &mut tmp.scratch);
        let (cs, sn) = self.trig[a];
        let cen = [self.geo.centers[rows[0]], self.geo.centers[rows[1]]];
        // Where s = 0 (the axis) lies in the buffer transformed last.
        let mut origin = [left as f64 + cen[0], left as f64 + cen[1]];
        if let Some(resp) = &self.resp {
            // Filter (real, even: the two packed slices stay apart), back to
            // real space, and cut G samples around each slice's axis out of
            // the P-periodic filtered projection, rolled off outside the
            // field of view.
            for (z, &h) in tmp.buf.iter_mut().zip(resp) {
                *z *= h;
            }
            self.inv_p
                .process_with_scratch(&mut tmp.buf, &mut tmp.scratch);
            let p = self.p as isize;
            let o = [0, 1].map(|i| (origin[i].round() as isize - gi / 2).rem_euclid(p) as usize);
            for i in 0..2 {
                origin[i] -= o[i] as f64;
                origin[i] = origin[i] - ((origin[i] / self.p as f64).round() * self.p as f64);
            }
            // The P-periodic filtered projection from o, G samples (G < P:
            // at most one wrap).
            let q = &tmp.buf;
            let pu = self.p;
            let periodic = |o: usize| q[o..].iter().chain(&q[..o]);
            for ((z, &c), (x, y)) in tmp
                .bufg
                .iter_mut()
                .zip(&self.cut)
                .zip(periodic(o[0]).zip(periodic(o[1])))
            {
                *z = Complex32::new(x.re * c, if two { y.im * c } else { 0.0 });
            }
            debug_assert!(self.g < pu);
            self.fwd_g
                .process_with_scratch(&mut tmp.bufg, &mut tmp.scratch);
        }
        // Phase that puts s = 0 on the axis and the grid points on the pixel centres.
        let sh = [
            origin[0] + self.delta * (cs - sn),
            origin[1] + self.delta * (cs - sn),
        ];
        // exp(2 pi i k s / g) by recurrence over k (float64: 4096 steps
        // lose ~1e-13), instead of a sin/cos per sample.
        let rot = |s: f64, k: f64| {
            let x = 2.0 * PI * k * s / g as f64;
            Complex64::new(x.cos(), x.sin())
        };
        let mut ph = [rot(sh[0], kmin as f64), rot(sh[1], kmin as f64)];
        let step = [rot(sh[0], 1.0), rot(sh[1], 1.0)];
        let wf = self.geo.weights[a] as f32;
        let c32 = |z: Complex64| Complex32::new(z.re as f32, z.im as f32);
        let buf = if self.resp.is_some() {
            &tmp.bufg
        } else {
            &tmp.buf
        };
        for k in kmin..=self.kmax {
            let (ik, jk) = if k >= 0 {
                (k as usize, if k == 0 { 0 } else { (gi - k) as usize })
            } else {
                ((gi + k) as usize, (-k) as usize)
            };
            let f = self.kfac[ik] * wf;
            let v = if two {
                let q = buf[ik];
                let qc = buf[jk].conj();
                // Split the two real slices' spectra.
                let p1 = (q + qc) * 0.5;
                let p2 = (q - qc) * Complex32::new(0.0, -0.5);
                (p1 * c32(ph[0]) + Complex32::new(0.0, 1.0) * p2 * c32(ph[1])) * f
            } else {
                // Half plane: the k = 0 sample is shared with its mirror.
                let h = if k == 0 { 0.5 } else { 1.0 };
                buf[ik] * c32(ph[0]) * (f * h)
            };
            ph[0] *= step[0];
            ph[1] *= step[1];
            dst((k - kmin) as usize, v);
        }
    }

    /// Spread the samples (k-major `vbuf`, k = kmin + kk) onto the grid rows
    /// r0..r1 held in `band`, circle by circle (all angles at one |k|, then
    /// the next): neighbouring samples share grid cache lines, and one
    /// circle's lines are still cached for the next.
    fn grid_band(
        &self,
        vbuf: &[Complex32],
        kmin: isize,
        r0: usize,
        r1: usize,
        band: &mut [Complex32],
    ) {
        // A fixed width unrolls the inner loops (the common widths).
        match self.w {
            4 => self.spread::<4>(vbuf, kmin, r0, r1, band),
            5 => self.spread::<5>(vbuf, kmin, r0, r1, band),
            6 => self.spread::<6>(vbuf, kmin, r0, r1, band),
            7 => self.spread::<7>(vbuf, kmin, r0, r1, band),
            8 => self.spread::<8>(vbuf, kmin, r0, r1, band),
            _ => self.spread::<0>(vbuf, kmin, r0, r1, band),
        }
    }

    /// `grid_band` for kernel width `WC` (0: the plan's width, not unrolled).
    fn spread<const WC: usize>(
        &self,
        vbuf: &[Complex32],
        kmin: isize,
        r0: usize,
        r1: usize,
        band: &mut [Complex32],
    ) {
        let w = if WC == 0 { self.w } else { WC };
        let (g, na, st) = (self.g, self.na, self.stride);
        let gi = g as isize;
        let hw = w as f64 / 2.0;
        let whole = r0 == 0 && r1 == g;
        let off = self.off as isize;
        let mut wts = [0f32; 16];
        let mut wvs = [0f32; 16];
        for (kk, vrow) in vbuf.chunks_exact(na).enumerate() {
            let k = (kmin + kk as isize) as f64;
            for (&v, &(cs, sn)) in vrow.iter().zip(&self.trig) {
                let vv = k * sn;
                let v0 = ceil_i(vv - hw);
                // v0 >= -g/2 - W > -g: wrap by table, not by division.
                let vb = (v0 + gi) as usize;
                if !whole {
                    let lo = self.wrap[vb];
                    let hi = self.wrap[vb + w - 1];
                    let touches = if lo <= hi {
                        lo < r1 && hi >= r0
                    } else {
                        // The footprint wraps from row g - 1 to row 0.
                        lo < r1 || hi >= r0
                    };
                    if !touches {
                        continue;
                    }
                }
                let u = k * cs;
                let u0 = ceil_i(u - hw);
                for (j, wt) in wts[..w].iter_mut().enumerate() {
                    *wt = self.kern.at(((u0 + j as isize) as f64 - u) as f32);
                }
                for (j, wv) in wvs[..w].iter_mut().enumerate() {
                    *wv = self.kern.at(((v0 + j as isize) as f64 - vv) as f32);
                }
                // Inside the row's margins: no wrapping along u.
                let uc = (u0 + off) as usize;
                for (jv, &wv) in wvs[..w].iter().enumerate() {
                    let rowi = self.wrap[vb + jv];
                    if rowi < r0 || rowi >= r1 {
                        continue;
                    }
                    let base = (rowi - r0) * st + uc;
                    let vw = v * wv;
                    for (c, &wu) in band[base..base + w].iter_mut().zip(&wts[..w]) {
                        *c += vw * wu;
                    }
                }
            }
        }
    }

    /// Row bands of about equal numbers of samples, `n_bands` of them.
    fn bands(&self, kmin: isize, n_bands: usize) -> Vec<(usize, usize)> {
        let g = self.g;
        let gi = g as isize;
        let mut hist = vec![0u64; g];
        let stride = 4;
        for k in (kmin..=self.kmax).step_by(stride) {
            for &(_, sn) in &self.trig {
                let r = (k as f64 * sn).round() as isize;
                hist[r.rem_euclid(gi) as usize] += 1;
            }
        }
        let total: u64 = hist.iter().sum();
        let mut cuts = vec![0usize];
        let mut acc = 0u64;
        for (r, &h) in hist.iter().enumerate() {
            acc += h;
            let next = cuts.len() as u64;
            if next < n_bands as u64 && acc * n_bands as u64 >= next * total && r + 1 < g {
                cuts.push(r + 1);
            }
        }
        cuts.push(g);
        cuts.dedup();
        cuts.windows(2).map(|c| (c[0], c[1])).collect()
    }

    /// Reconstruct one group: two rows (real + imaginary) or one (half plane).
    fn group(
        &self,
        proj: &ArrayView3<f32>,
        r: usize,
        outs: &mut [ndarray::ArrayViewMut2<f32>],
        n_bands: usize,
        bufs: &mut Bufs,
    ) {
        let (g, n, na, w, hh) = (self.g, self.n, self.na, self.w, self.hh);
        let two = outs.len() == 2;
        let rows = [r, if two { r + 1 } else { r }];
        let kmin = if two { -self.kmax } else { 0 };
        let nk = (self.kmax - kmin + 1) as usize;
        // Every entry is written below: no need to clear a reused buffer.
        if bufs.vbuf.len() != nk * na {
            zeroed(&mut bufs.vbuf, nk * na);
        }
        if n_bands <= 1 {
            // KBLOCK angles at a time, angle-major, then stored k-major: one
            // store per k and angle straight into the k-major buffer missed
            // the cache every time (15 % of the kernel's time).
            let mut tmp = AngleTmp::new(self);
            let mut blk = vec![Complex32::new(0.0, 0.0); KBLOCK * nk];
            for a0 in (0..na).step_by(KBLOCK) {
                let nb = KBLOCK.min(na - a0);
                for (j, srow) in blk.chunks_exact_mut(nk).take(nb).enumerate() {
                    self.angle_values(proj, a0 + j, rows, two, kmin, &mut tmp, |kk, v| {
                        srow[kk] = v
                    });
                }
                for (kk, vrow) in bufs.vbuf.chunks_exact_mut(na).enumerate() {
                    for (j, d) in vrow[a0..a0 + nb].iter_mut().enumerate() {
                        *d = blk[j * nk + kk];
                    }
                }
            }
        } else {
            // Angle-major in parallel, then transposed to k-major by blocks.
            zeroed(&mut bufs.spec, na * nk);
            bufs.spec.par_chunks_mut(nk).enumerate().for_each_init(
                || AngleTmp::new(self),
                |tmp, (a, srow)| {
                    self.angle_values(proj, a, rows, two, kmin, tmp, |kk, v| srow[kk] = v);
                },
            );
            let spec = &bufs.spec;
            bufs.vbuf
                .par_chunks_mut(KBLOCK * na)
                .enumerate()
                .for_each(|(b, chunk)| {
                    let k0 = b * KBLOCK;
                    let kb = chunk.len() / na;
                    for a in 0..na {
                        let s = &spec[a * nk + k0..a * nk + k0 + kb];
                        for (j, &v) in s.iter().enumerate() {
                            chunk[j * na + a] = v;
                        }
                    }
                });
        }
        let st = self.stride;
        zeroed(&mut bufs.grid, g * st);
        if n_bands <= 1 {
            self.grid_band(&bufs.vbuf, kmin, 0, g, &mut bufs.grid);
        } else {
            let bands = self.bands(kmin, n_bands);
            let mut parts = Vec::with_capacity(bands.len());
            let mut rest: &mut [Complex32] = &mut bufs.grid;
            for &(r0, r1) in &bands {
                let (a, b) = rest.split_at_mut((r1 - r0) * st);
                parts.push((r0, r1, a));
                rest = b;
            }
            let vbuf = &bufs.vbuf;
            parts
                .into_par_iter()
                .for_each(|(r0, r1, band)| self.grid_band(vbuf, kmin, r0, r1, band));
        }
        // Inverse FFT along u (rows of the grid, indexed by v), skipping the
        // rows a half-plane grid leaves empty (v = k sin(theta) lies between
        // kmax min(sin, 0) and kmax max(sin, 0), widened by the kernel) ...
        let (smin, smax) = self
            .trig
            .iter()
            .fold((0f64, 0f64), |(lo, hi), &(_, sn)| (lo.min(sn), hi.max(sn)));
        let kf = self.kmax as f64;
        let (vlo, vhi) = if two {
            (-(g as isize), g as isize)
        } else {
            (
                (kf * smin).floor() as isize - w as isize - 1,
                (kf * smax).ceil() as isize + w as isize + 1,
            )
        };
        let used = |v: usize| {
            let v = v as isize;
            (v >= vlo && v <= vhi) || (v - g as isize >= vlo && v - g as isize <= vhi)
        };
        let inv = &self.inv;
        bufs.grid
            .par_chunks_mut(st)
            .enumerate()
            .filter(|(v, _)| used(*v))
            .for_each_init(
                || {
                    (
                        vec![Complex32::new(0.0, 0.0); g],
                        vec![Complex32::new(0.0, 0.0); inv.get_inplace_scratch_len()],
                    )
                },
                |(t, s), (_, row)| {
                    // Fold the margins back (DFT order), transform, and
                    // leave the row's spectrum in its first G cells.
                    t.fill(Complex32::new(0.0, 0.0));
                    for (&c, &i) in row.iter().zip(&self.fold) {
                        t[i] += c;
                    }
                    inv.process_with_scratch(t, s);
                    row[..g].copy_from_slice(t);
                },
            );
        // ... then along v, only for the n columns the slice needs, eight
        // neighbouring columns per pass so the reads are 64-byte runs.
        let grid = &bufs.grid;
        let gi = g as isize;
        // Each block of BLOCK columns comes back row-major (n rows of
        // BLOCK), so the pass below reads whole cache lines: one vector per
        // column, read across, missed the cache on every pixel.
        // The blocks live in a buffer reused from group to group, and each
        // thread keeps its column vectors: fresh ones per block (75 MB per
        // group) went through mmap and page faults every time.
        if bufs.cols.len() != n.div_ceil(BLOCK) * n * BLOCK {
            bufs.cols = vec![Complex32::new(0.0, 0.0); n.div_ceil(BLOCK) * n * BLOCK];
        }
        bufs.cols
            .par_chunks_mut(n * BLOCK)
            .enumerate()
            .for_each_init(
                || {
                    (
                        vec![Complex32::new(0.0, 0.0); inv.get_inplace_scratch_len()],
                        vec![vec![Complex32::new(0.0, 0.0); g]; BLOCK],
                    )
                },
                |(s, cs), (b, blk)| {
                    let c0 = b * BLOCK;
                    let c1 = (c0 + BLOCK).min(n);
                    let ms: Vec<usize> = (c0..c1).map(|col| self.wrap[col + g - hh]).collect();
                    for c in cs.iter_mut() {
                        c.fill(Complex32::new(0.0, 0.0));
                    }
                    for v in (0..g).filter(|&v| used(v)) {
                        let row = &grid[v * st..v * st + g];
                        for (c, &m) in cs.iter_mut().zip(&ms) {
                            c[v] = row[m];
                        }
                    }
                    // Keep only the n entries the slice reads (row -> nn).
                    for (j, c) in cs.iter_mut().take(c1 - c0).enumerate() {
                        inv.process_with_scratch(c, s);
                        for (row, d) in blk.chunks_exact_mut(BLOCK).enumerate() {
                            d[j] = c[(hh as isize - row as isize).rem_euclid(gi) as usize];
                        }
                    }
                },
            );
        let blocks = &bufs.cols;
        for row in 0..n {
            let (c0, c1) = mask_cols(n, row, self.geo.mask_radius);
            let dy = self.deapod[row.abs_diff(hh)];
            for col in c0..c1 {
                let z = blocks[(col / BLOCK) * n * BLOCK + row * BLOCK + col % BLOCK]
                    * (self.deapod[col.abs_diff(hh)] * dy);
                if two {
                    outs[0][[row, col]] = z.re;
                    outs[1][[row, col]] = z.im;
                } else {
                    outs[0][[row, col]] = 2.0 * z.re;
                }
            }
        }
    }
}

/// Scratch of one thread transforming projections.
struct AngleTmp {
    buf: Vec<Complex32>,
    /// The cut-out filtered projection (resampling only).
    bufg: Vec<Complex32>,
    re: Vec<f32>,
    im: Vec<f32>,
    scratch: Vec<Complex32>,
}

impl AngleTmp {
    fn new(p: &Plan) -> Self {
        AngleTmp {
            buf: vec![Complex32::new(0.0, 0.0); p.p],
            bufg: vec![Complex32::new(0.0, 0.0); if p.resp.is_some() { p.g } else { 0 }],
            re: vec![0f32; p.p],
            im: vec![0f32; p.p],
            scratch: vec![
                Complex32::new(0.0, 0.0);
                p.fwd
                    .get_inplace_scratch_len()
                    .max(p.inv_p.get_inplace_scratch_len())
                    .max(p.fwd_g.get_inplace_scratch_len())
            ],
        }
    }
}

/// The padding roll-off of `pad_edge` (left or right side) as a table, from
/// the total pad and its left part: ones where it sees the edge value.
fn taper(total: usize, left: usize, is_left: bool) -> Vec<f32> {
    let mut buf = vec![0f32; total + 1];
    // One data sample of value 1 between the two pads.
    pad_edge([1.0f32].iter(), 1, left, &mut buf);
    if is_left {
        buf[..left].to_vec()
    } else {
        buf[left + 1..].to_vec()
    }
}

/// Reconstruct every detector row of `proj` (angle, row, column) with a
/// Kaiser-Bessel kernel of width `kernel_width` grid cells: (row, n_out,
/// n_out) float32. The grid length is chosen from the width (see
/// [`gridrec_on`]).
pub fn gridrec(
    proj: ArrayView3<f32>,
    geo: &Geometry,
    kernel_width: usize,
) -> CoreResult<Array3<f32>> {
    gridrec_on(proj, geo, kernel_width, None)
}

/// The grid length gridrec uses by default: the smallest fast FFT length at
/// least oversampling(w) n_out that also holds the pixels the slice keeps
/// (the mask's circle, or the corners without one) plus the roll-off,
/// capped at the padded length (no resampling then).
pub fn grid_length(geo: &Geometry, kernel_width: usize) -> usize {
    let n = geo.n_out;
    let need = (oversampling(kernel_width) * n as f64).ceil() as usize;
    let g = fast_len(need.max(min_grid(geo, kernel_width)));
    if g >= geo.pad_len {
        geo.pad_len
    } else {
        g
    }
}

/// Radius (pixels, from the axis) of the pixels a slice keeps, plus one.
fn kept_radius(geo: &Geometry) -> f64 {
    let corner = std::f64::consts::SQRT_2 * (geo.n_out as f64 / 2.0);
    geo.mask_radius.map_or(corner, |r| r.min(corner)) + 1.0
}

/// Shortest grid that holds the kept pixels and the roll-off around them.
fn min_grid(geo: &Geometry, w: usize) -> usize {
    let r = kept_radius(geo);
    ((2.0 * (r + ROLL_OFF as f64)).ceil() as usize + 2).max(geo.n_out + w)
}

/// [`gridrec`] on a grid of `grid_len` (None: [`grid_length`]): between
/// n_out + kernel width (and the kept pixels' diameter plus a roll-off)
/// and the padded length.
pub fn gridrec_on(
    proj: ArrayView3<f32>,
    geo: &Geometry,
    kernel_width: usize,
    grid_len: Option<usize>,
) -> CoreResult<Array3<f32>> {
    geo.check(&proj)?;
    let (na, nr, nd) = proj.dim();
    let n = geo.n_out;
    let pl = geo.pad_len;
    if !(2..=16).contains(&kernel_width) {
        return Err(CoreError::parameter(format!(
            "kernel width must be 2..16, got {kernel_width}"
        )));
    }
    if pl < n + kernel_width {
        return Err(CoreError::parameter(format!(
            "pad length {pl} too short for {n}-pixel slices (gridding needs >= n_out + kernel width)"
        )));
    }
    let g = match grid_len {
        None => grid_length(geo, kernel_width),
        Some(g) if g == pl => g,
        Some(g) => {
            let lo = min_grid(geo, kernel_width);
            if g < lo || g > pl {
                return Err(CoreError::parameter(format!(
                    "grid length {g} must be the pad length {pl} or lie in {lo}..={pl}"
                )));
            }
            g
        }
    };
    let resample = g < pl;
    let alpha = g as f64 / n as f64;
    let w = kernel_width;
    let kern = Kernel::new(w, kb_beta(w as f64, alpha));
    let resp: Vec<f32> = filter_response(geo.filter, pl)
        .iter()
        .map(|&v| (v / pl as f64) as f32)
        .collect();
    let (resp, kfac) = if resample {
        (Some(resp), vec![(1.0 / g as f64) as f32; g])
    } else {
        (None, resp)
    };
    // The cut-out's weights: ones out to the kept radius, then a cosine
    // roll-off to zero (the axis sits at G / 2 within half a pixel).
    let r_keep = kept_radius(geo) + 1.0;
    let cut: Vec<f32> = (0..g)
        .map(|j| {
            let d = (j as f64 - (g / 2) as f64).abs();
            if d <= r_keep {
                1.0
            } else if d >= r_keep + ROLL_OFF as f64 {
                0.0
            } else {
                (0.5 * (1.0 + (PI * (d - r_keep) / ROLL_OFF as f64).cos())) as f32
            }
        })
        .collect();
    let mut planner = FftPlanner::<f32>::new();
    let fwd = planner.plan_fft_forward(pl);
    let inv_p = planner.plan_fft_inverse(pl);
    let fwd_g = planner.plan_fft_forward(g);
    let inv = planner.plan_fft_inverse(g);
    // Grid rows: margins of more than a kernel width on each side of the
    // G frequencies, so a footprint never wraps along u.
    let off = g / 2 + w + 1;
    let stride = g + 3 * w + 4;
    let fold = (0..stride)
        .map(|c| (c as isize - off as isize).rem_euclid(g as isize) as usize)
        .collect();
    // Output pixel (row, col) is grid point (m, nn) = (col - hh, hh - row).
    let hh = n / 2;
    let deapod: Vec<f32> = (0..=hh.max(n - 1 - hh))
        .map(|m| (1.0 / kern.transform(m as f64, g as f64)) as f32)
        .collect();
    let plan = Plan {
        geo,
        kern,
        w,
        n,
        g,
        p: pl,
        stride,
        off,
        fold,
        nd,
        na,
        left: (pl - nd) / 2,
        hh,
        delta: hh as f64 - (n as f64 - 1.0) / 2.0, // 0 (odd n) or 1/2 (even n)
        kmax: (g / 2) as isize - 1,
        resp,
        kfac,
        cut,
        fwd,
        inv_p,
        fwd_g,
        inv,
        trig: geo.theta.iter().map(|t| (t.cos(), t.sin())).collect(),
        deapod,
        wrap: (0..3 * g).map(|i| i % g).collect(),
        taper_l: taper(pl - nd, (pl - nd) / 2, true),
        taper_r: taper(pl - nd, (pl - nd) / 2, false),
    };

    // Per slice group in flight: the g x g grid, the angle values (twice
    // when split into bands), the columns of the inverse transform.
    let in_flight = (rayon::current_num_threads().min(nr.div_ceil(2))) as f64;
    // (the grid, the angle values twice, the slice's column transforms)
    let per_group = (g * stride) as f64 * 8.0
        + 2.0 * (g * na) as f64 * 8.0
        + (n * n.div_ceil(BLOCK) * BLOCK) as f64 * 8.0;
    crate::mem::check_bytes(
        geo.output_bytes(nr) + in_flight * per_group,
        &format!("gridrec with n_out = {n}, pad length {pl} and grid length {g}"),
    )?;
    let mut out = super::output(nr, n)?;
    let mut work: Vec<(usize, Vec<ndarray::ArrayViewMut2<f32>>)> = Vec::new();
    let mut it = out.axis_iter_mut(Axis(0)).enumerate();
    while let Some((r, a)) = it.next() {
        let mut v = vec![a];
        if let Some((_, b)) = it.next() {
            v.push(b);
        }
        work.push((r, v));
    }
    // Fewer groups than threads: split each group's work over the spare ones.
    let n_bands = (rayon::current_num_threads() / work.len()).max(1);
    // Buffers go back to a pool between groups: rayon's for_each_init made
    // fresh ones for each split of the work (every group, mostly), and the
    // page faults of a fresh 50-130 MB grid cost 10 % of the time. At most
    // one set per thread is ever in use, as before.
    let pool: std::sync::Mutex<Vec<Bufs>> = std::sync::Mutex::new(Vec::new());
    work.into_par_iter().for_each(|(r, mut outs)| {
        let mut bufs = pool
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_else(Bufs::new);
        plan.group(&proj, r, &mut outs, n_bands, &mut bufs);
        if let Ok(mut p) = pool.lock() {
            p.push(bufs);
        }
    });
    Ok(out)
}
