//! 2-D linear convolution by real FFTs, planned once per grid size and reused
//! for every image of a stack.
//!
//! A transform is a row pass (`RealFft`, `nw` reals -> `wc = nw / 2 + 1`
//! complex values per row) followed by a column pass (rustfft, length `nh`).
//! The column pass is fused: groups of `GROUP` columns are gathered into a
//! small contiguous buffer (fits in L2), transformed, multiplied by the
//! kernel's spectrum, transformed back and written out, so the full spectrum
//! is never stored and never transposed. Rows known to be zero are skipped on
//! the way in, rows not wanted are skipped on the way out.
//!
//! Placement convention: the input occupies rows `[0, ih)` and columns
//! `[0, iw)` of the (nh, nw) grid; the output is rows `[0, oh)`, columns
//! `[0, ow)` of the circular convolution. Shifts are folded into the kernel
//! spectrum (`Spectrum::place`), so one routine serves 'same' convolution,
//! correlation, and padded (non-circulant) operators.
//!
//! For a compact kernel on a tall image, `convolve_strips` does the same
//! convolution a few hundred output rows at a time (overlap-save along the
//! rows) on a short grid, whose spectra stay in cache.
//!
//! Buffers live in `Scratch` and are reused from call to call; nothing is
//! allocated per convolution.

use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

use crate::error::{CoreError, CoreResult};
use crate::fastmath::avx2_dispatch;
use crate::rfft::RealFft;

/// Columns transformed together in the fused column pass.
const GROUP: usize = 32;
/// Rows moved together between the row spectra and a column group.
const B: usize = 8;

/// Smallest even length >= n whose prime factors are 2, 3, 5, 7 (fast for
/// rustfft's mixed-radix algorithms).
pub fn fast_len(n: usize) -> usize {
    let mut m = n.max(2);
    loop {
        if m % 2 == 0 {
            let mut r = m;
            for p in [2, 3, 5, 7] {
                while r % p == 0 {
                    r /= p;
                }
            }
            if r == 1 {
                return m;
            }
        }
        m += 1;
    }
}

/// Smallest even length >= n of the form 2^a 3^b (rustfft's fastest radices).
pub fn fast_len_23(n: usize) -> usize {
    let mut best = usize::MAX;
    let mut p2 = 2usize;
    while p2 < 2 * n.max(2) {
        let mut v = p2;
        while v < n {
            v *= 3;
        }
        best = best.min(v);
        p2 *= 2;
    }
    best
}

/// n complex zeros from the allocator's zeroed memory. `vec![zero; n]`
/// writes every element on the calling thread (the zero check that lets
/// `vec![0.0f32; n]` ask for zeroed memory does not cover Complex32): for
/// a 20 MB row-spectrum buffer that was a serial memset before the
/// parallel passes. Fresh pages from the OS are zero already, so they are
/// first touched, and faulted in, by the threads that fill them.
pub fn zeroed(n: usize) -> Vec<Complex32> {
    if n == 0 {
        return Vec::new();
    }
    let layout = std::alloc::Layout::array::<Complex32>(n).expect("buffer size overflows");
    // SAFETY: the layout has a non-zero size; all-zero bits are a valid
    // Complex32 (two f32 zeros, repr(C)); the Vec takes the allocation with
    // the layout it was made with (length = capacity = n).
    unsafe {
        let p = std::alloc::alloc_zeroed(layout) as *mut Complex32;
        if p.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Vec::from_raw_parts(p, n, n)
    }
}

/// FFT plans for one (nh, nw) grid.
pub struct Grid {
    pub nh: usize,
    pub nw: usize,
    pub wc: usize,
    r2c: RealFft,
    c2r: RealFft,
    fwd: Arc<dyn Fft<f32>>,
    inv: Arc<dyn Fft<f32>>,
}

/// Buffers for one convolution on a grid: the row spectra, and the small
/// per-task buffers of the three passes, kept from call to call so that an
/// iteration allocates nothing (fresh pages cost a fault and a clear each).
pub struct Scratch {
    /// Row spectra, (nh, wc), row-major.
    rows: Vec<Complex32>,
    /// Task buffers; a pool because with `par` several tasks run at once.
    pool: Mutex<Vec<Bufs>>,
    /// Whole scratches for strips transformed in parallel.
    spare: Mutex<Vec<Scratch>>,
    /// `convolve_chain`: the second convolution's row spectra, and the
    /// spectra of the halo rows one strip hands to the next.
    rows2: Vec<Complex32>,
    halo: Vec<Complex32>,
}

/// Strip boundaries for `Grid::convolve_chain` (from `Grid::chain_plan`):
/// strip i of the first convolution makes its output rows [d_i, d_(i+1)),
/// strip i of the second its output rows [a_i, a_(i+1)).
pub struct Chain {
    kh: usize,
    sh1: isize,
    sh2: usize,
    d: Vec<usize>,
    a: Vec<usize>,
}

/// One task's buffers: a real row, a column group, and FFT scratch.
struct Bufs {
    real: Vec<f32>,
    real2: Vec<f32>,
    crow: Vec<Complex32>,
    col: Vec<Complex32>,
    fft: Vec<Complex32>,
    extra: Vec<Complex32>,
}

/// Task buffers taken from a `Scratch`'s pool, given back when dropped.
struct Lease<'a> {
    b: Option<Bufs>,
    pool: &'a Mutex<Vec<Bufs>>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let (Some(b), Ok(mut p)) = (self.b.take(), self.pool.lock()) {
            p.push(b);
        }
    }
}

impl Lease<'_> {
    #[inline(always)]
    fn bufs(&mut self) -> &mut Bufs {
        // Some from construction until drop.
        self.b.as_mut().expect("lease holds its buffers")
    }
}

/// Pointer into the row spectra shared by the column-group tasks, which
/// touch disjoint columns.
#[derive(Clone, Copy)]
struct CPtr(*mut Complex32);
unsafe impl Send for CPtr {}
unsafe impl Sync for CPtr {}
impl CPtr {
    /// # Safety
    /// The range must lie in the buffer and be touched by this task only.
    #[inline(always)]
    unsafe fn slice<'a>(self, start: usize, len: usize) -> &'a mut [Complex32] {
        std::slice::from_raw_parts_mut(self.0.add(start), len)
    }
}

/// Pointer to a row-major real image whose rows are written by different
/// tasks (each row by one task only).
#[derive(Clone, Copy)]
pub struct Ptr<T>(pub *mut T);
unsafe impl<T> Send for Ptr<T> {}
unsafe impl<T> Sync for Ptr<T> {}
impl<T> Ptr<T> {
    /// Row `r` of length `n`.
    ///
    /// # Safety
    /// The row must lie in the buffer and be touched by this task only.
    #[inline(always)]
    pub unsafe fn row<'a>(self, r: usize, n: usize) -> &'a mut [T] {
        std::slice::from_raw_parts_mut(self.0.add(r * n), n)
    }

    /// Row `r` of length `n`, to read (several tasks may read one row).
    ///
    /// # Safety
    /// The row must lie in the buffer and not be written while it is read.
    #[inline(always)]
    pub unsafe fn row_ref<'a>(self, r: usize, n: usize) -> &'a [T] {
        std::slice::from_raw_parts(self.0.add(r * n), n)
    }
}

/// A kernel's 2-D spectrum in column-major layout (wc, nh), already divided
/// by nh * nw so that forward + inverse is the identity.
#[derive(Clone)]
pub struct Spectrum {
    pub data: Vec<Complex32>,
}

impl Grid {
    pub fn new(nh: usize, nw: usize) -> CoreResult<Self> {
        if nh < 1 || nw < 1 {
            return Err(CoreError::shape(format!("empty FFT grid {nh} x {nw}")));
        }
        // Every user of a grid holds at least three half-spectra of it (the
        // kernel's, a scratch, the image's): refuse before allocating any
        // (`zeroed` aborts on a refused allocation).
        crate::mem::check_bytes(
            3.0 * nh as f64 * (nw / 2 + 1) as f64 * 8.0,
            &format!("the {nh} x {nw} FFT grid (image size plus padding)"),
        )?;
        let mut cp = FftPlanner::<f32>::new();
        Ok(Grid {
            nh,
            nw,
            wc: nw / 2 + 1,
            r2c: RealFft::forward(nw),
            c2r: RealFft::inverse(nw),
            fwd: cp.plan_fft_forward(nh),
            inv: cp.plan_fft_inverse(nh),
        })
    }

    fn n_groups(&self) -> usize {
        self.wc.div_ceil(GROUP)
    }

    pub fn scratch(&self) -> Scratch {
        Scratch {
            rows: zeroed(self.nh * self.wc),
            pool: Mutex::new(Vec::new()),
            spare: Mutex::new(Vec::new()),
            rows2: Vec::new(),
            halo: Vec::new(),
        }
    }

    /// f(i, lease) for each i of `range`, on rayon's threads with `par`,
    /// each task with buffers leased from `pool`.
    fn each_leased<F>(
        &self,
        range: std::ops::Range<usize>,
        pool: &Mutex<Vec<Bufs>>,
        par: bool,
        f: F,
    ) where
        F: Fn(usize, &mut Lease) + Sync,
    {
        let init = || self.lease(pool);
        if par {
            range.into_par_iter().for_each_init(init, |l, i| f(i, l));
        } else {
            let mut l = init();
            range.for_each(|i| f(i, &mut l));
        }
    }

    /// Task buffers from the pool, or new ones when it is empty.
    fn lease<'a>(&self, pool: &'a Mutex<Vec<Bufs>>) -> Lease<'a> {
        let got = pool.lock().ok().and_then(|mut p| p.pop());
        let b = got.unwrap_or_else(|| {
            let zero = Complex32::new(0.0, 0.0);
            let fft = self
                .fwd
                .get_inplace_scratch_len()
                .max(self.inv.get_inplace_scratch_len())
                .max(self.r2c.scratch_len())
                .max(self.c2r.scratch_len());
            Bufs {
                real: vec![0.0; self.nw],
                real2: vec![0.0; self.nw],
                crow: vec![zero; self.wc],
                col: vec![zero; GROUP * self.nh],
                fft: vec![zero; fft],
                extra: Vec::new(),
            }
        });
        Lease { b: Some(b), pool }
    }

    /// Spectrum of `kernel` (kh, kw, row-major) placed so that its element
    /// (a, b) sits at grid index ((a - sh) mod nh, (b - sw) mod nw); with
    /// `flip`, element (kh-1-a, kw-1-b) is used instead of (a, b).
    pub fn place(
        &self,
        kernel: &[f32],
        kh: usize,
        kw: usize,
        sh: isize,
        sw: isize,
        flip: bool,
    ) -> CoreResult<Spectrum> {
        if kernel.len() != kh * kw || kh > self.nh || kw > self.nw {
            return Err(CoreError::shape(format!(
                "kernel {kh} x {kw} does not fit the FFT grid {} x {}",
                self.nh, self.nw
            )));
        }
        let (nh, nw) = (self.nh as isize, self.nw as isize);
        let mut grid = vec![0.0f32; self.nh * self.nw];
        for a in 0..kh {
            for b in 0..kw {
                let v = if flip {
                    kernel[(kh - 1 - a) * kw + (kw - 1 - b)]
                } else {
                    kernel[a * kw + b]
                };
                let r = (a as isize - sh).rem_euclid(nh) as usize;
                let c = (b as isize - sw).rem_euclid(nw) as usize;
                grid[r * self.nw + c] += v;
            }
        }
        self.spectrum_of(&grid)
    }

    /// Spectrum of a full (nh, nw) real grid, scaled by 1 / (nh nw). Rows
    /// that are all zero (most of them, for a small kernel) are skipped, and
    /// both passes run on rayon's threads.
    pub fn spectrum_of(&self, grid: &[f32]) -> CoreResult<Spectrum> {
        let (nh, nw, wc) = (self.nh, self.nw, self.wc);
        if grid.len() != nh * nw {
            return Err(CoreError::shape("spectrum_of: grid of the wrong size"));
        }
        let zero = Complex32::new(0.0, 0.0);
        let mut rows = zeroed(nh * wc);
        let r2c = &self.r2c;
        rows.par_chunks_mut(wc).enumerate().for_each_init(
            || (vec![0.0f32; nw], vec![zero; r2c.scratch_len()]),
            |(rbuf, rs), (r, out)| {
                let src = &grid[r * nw..(r + 1) * nw];
                if src.iter().any(|&v| v != 0.0) {
                    rbuf.copy_from_slice(src);
                    r2c.r2c(rbuf, out, rs);
                }
            },
        );
        let scale = 1.0 / (nh as f32 * nw as f32);
        let mut data = zeroed(wc * nh);
        let fwd = &self.fwd;
        let rows = &rows;
        data.par_chunks_mut(GROUP * nh).enumerate().for_each_init(
            || vec![zero; fwd.get_inplace_scratch_len()],
            |cs, (g, chunk)| {
                let c0 = g * GROUP;
                let ng = chunk.len() / nh;
                for r in 0..nh {
                    for j in 0..ng {
                        chunk[j * nh + r] = rows[r * wc + c0 + j];
                    }
                }
                fwd.process_with_scratch(chunk, cs);
                for v in chunk.iter_mut() {
                    *v *= scale;
                }
            },
        );
        Ok(Spectrum { data })
    }

    /// |L|^2 of the 5-point Laplacian on this grid, in the spectrum layout
    /// (wc, nh): (4 - 2 cos(2 pi u / nh) - 2 cos(2 pi v / nw))^2, unscaled.
    pub fn laplacian_power(&self) -> Vec<f32> {
        let (nh, nw, wc) = (self.nh, self.nw, self.wc);
        let tau = 2.0 * std::f64::consts::PI;
        let cu: Vec<f64> = (0..nh)
            .map(|u| 2.0 - 2.0 * (tau * u as f64 / nh as f64).cos())
            .collect();
        let mut out = vec![0.0f32; wc * nh];
        for (v, col) in out.chunks_mut(nh).enumerate() {
            let cv = 2.0 - 2.0 * (tau * v as f64 / nw as f64).cos();
            for (o, &c) in col.iter_mut().zip(&cu) {
                *o = ((c + cv) * (c + cv)) as f32;
            }
        }
        out
    }

    /// The plain product by `spec`, as the `mul` of `convolve_emit`.
    pub fn product<'a>(
        &self,
        spec: &'a Spectrum,
    ) -> impl Fn(usize, &mut [Complex32], &mut Vec<Complex32>, &mut [Complex32]) + Sync + 'a {
        let nh = self.nh;
        move |c0: usize, buf: &mut [Complex32], _: &mut Vec<Complex32>, _: &mut [Complex32]| {
            let n = buf.len();
            mul_in_place(buf, &spec.data[c0 * nh..c0 * nh + n]);
        }
    }

    /// `convolve_emit` with the plain product by `spec`, done in `count`
    /// strips (the output rows split evenly) on this (strip) grid, so that a
    /// strip's spectra stay in cache instead of streaming a whole image's
    /// through memory three times. The global operator is the one whose
    /// kernel placement has row shift `sh` (see `place`) on a grid tall
    /// enough for ih / oh; `spec` must be the same kernel placed on this grid
    /// with row shift kh - 1 (and the global column shift). Input rows
    /// outside [0, ih) are zero.
    #[allow(clippy::too_many_arguments)]
    pub fn convolve_strips<F, E>(
        &self,
        count: usize,
        kh: usize,
        sh: isize,
        fill: &F,
        ih: usize,
        iw: usize,
        spec: &Spectrum,
        emit: &E,
        oh: usize,
        ow: usize,
        s: &mut Scratch,
        par: bool,
    ) where
        F: Fn(usize, &mut [f32]) + Sync,
        E: Fn(usize, &mut [f32]) + Sync,
    {
        let n = count.clamp(1, oh.max(1));
        let mul = self.product(spec);
        let one = |i: usize, s: &mut Scratch, par: bool| {
            // Even split: strips differ by one row at most.
            let (o0, o1) = (i * oh / n, (i + 1) * oh / n);
            // Output row n needs input rows n + sh - (kh - 1) ..= n + sh.
            let g0 = o0 as isize + sh - (kh as isize - 1);
            let n_in = (o1 - o0) + kh - 1;
            debug_assert!(n_in <= self.nh && o1 - o0 <= self.nh);
            let f = |j: usize, d: &mut [f32]| {
                let m = g0 + j as isize;
                if m >= 0 && (m as usize) < ih {
                    fill(m as usize, d)
                } else {
                    d.fill(0.0)
                }
            };
            let e = |i: usize, row: &mut [f32]| emit(o0 + i, row);
            self.convolve_emit(&f, n_in, iw, &mul, &e, o1 - o0, ow, s, par);
        };
        if par && n > 1 {
            // Whole strips on each thread: one join per convolution instead
            // of three per strip, and each strip's data stays in one core's
            // cache.
            let spare = &s.spare;
            (0..n).into_par_iter().for_each(|i| {
                let got = spare.lock().ok().and_then(|mut p| p.pop());
                let mut sc = got.unwrap_or_else(|| self.scratch());
                one(i, &mut sc, false);
                if let Ok(mut p) = spare.lock() {
                    p.push(sc);
                }
            });
        } else {
            (0..n).for_each(|i| one(i, s, par));
        }
    }

    /// Plan for `convolve_chain`: `count` strips for two strip convolutions
    /// (row shifts sh1, sh2, see `convolve_strips`) where the first has oh1
    /// output rows, the second oh1 input and oh2 output rows. None when a
    /// strip would not fit this grid, or when strip i of the second would
    /// write rows (of an image the first reads and the second's `emit`
    /// updates) that strip i + 1 of the first still reads: that needs
    /// sh1 + sh2 >= kh - 1.
    pub fn chain_plan(
        &self,
        count: usize,
        kh: usize,
        (sh1, sh2): (isize, isize),
        oh1: usize,
        oh2: usize,
    ) -> Option<Chain> {
        let k1 = kh as isize - 1;
        if count < 2 || sh2 < 0 || sh2 > k1 || sh1 + sh2 < k1 {
            return None;
        }
        let (n, sh2) = (count, sh2 as usize);
        // Strip i of the second writes rows [a_i, a_(i+1)) and needs the
        // first's output rows up to a_(i+1) + sh2 = d_(i+1). Both split
        // oh2 + sh2 rows evenly.
        let t = oh2 + sh2;
        if oh1 > t {
            return None;
        }
        let d: Vec<usize> = (0..=n)
            .map(|i| if i == n { oh1 } else { i * t / n })
            .collect();
        let a: Vec<usize> = (0..=n)
            .map(|i| match i {
                0 => 0,
                _ if i == n => oh2,
                _ => d[i].saturating_sub(sh2),
            })
            .collect();
        let room = self.nh.checked_sub(kh - 1)?;
        let fits = (0..n).all(|i| {
            let (f, s) = (d[i + 1].checked_sub(d[i]), a[i + 1].checked_sub(a[i]));
            matches!((f, s), (Some(f), Some(s)) if f > 0 && s > 0 && f <= room && s <= room)
                && d[i + 1] >= kh - 1
        });
        fits.then_some(Chain { kh, sh1, sh2, d, a })
    }

    /// The convolution H1 (spectrum `spec1`, input rows from `fill`, (ih1,
    /// iw1)), a row-wise `step(r, h1_row, out_row)` on each of its oh1
    /// output rows of width ow1, and the convolution H2 (`spec2`) of the
    /// stepped rows, whose oh2 output rows of width ow2 go to `emit`: strip
    /// by strip (see `chain_plan`), with each output row of H1 transformed
    /// back, stepped and transformed for H2 while it is in L1. Nothing
    /// between the two is stored: the halo rows a strip of H2 shares with
    /// the next are handed over as spectra. Strip i of H2 runs before strip
    /// i + 1 of H1, so `emit` may update rows of the image `fill` reads,
    /// below the rows the next strips read. With `par`, each pass of a
    /// strip runs on all threads (rows and column groups in parallel).
    #[allow(clippy::too_many_arguments)]
    pub fn convolve_chain<F, R, E>(
        &self,
        plan: &Chain,
        fill: &F,
        (ih1, iw1): (usize, usize),
        spec1: &Spectrum,
        step: &R,
        ow1: usize,
        spec2: &Spectrum,
        emit: &E,
        ow2: usize,
        s: &mut Scratch,
        par: bool,
    ) where
        F: Fn(usize, &mut [f32]) + Sync,
        R: Fn(usize, &[f32], &mut [f32]) + Sync,
        E: Fn(usize, &mut [f32]) + Sync,
    {
        let (wc, kh) = (self.wc, plan.kh);
        let zero = Complex32::new(0.0, 0.0);
        if s.rows.len() < self.nh * wc {
            s.rows = zeroed(self.nh * wc);
        }
        if s.rows2.len() < self.nh * wc {
            s.rows2 = zeroed(self.nh * wc);
        }
        if s.halo.len() < (kh - 1) * wc {
            s.halo = zeroed((kh - 1) * wc);
        }
        let Scratch {
            rows,
            rows2,
            halo,
            pool,
            ..
        } = s;
        let (mul1, mul2) = (self.product(spec1), self.product(spec2));
        let oh1 = *plan.d.last().unwrap_or(&0);
        for i in 0..plan.d.len() - 1 {
            let (d0, d1, a0, a1) = (plan.d[i], plan.d[i + 1], plan.a[i], plan.a[i + 1]);
            // H1 on output rows [d0, d1).
            let n1 = d1 - d0 + kh - 1;
            let g0 = d0 as isize + plan.sh1 - (kh as isize - 1);
            let f = |j: usize, dst: &mut [f32]| {
                let m = g0 + j as isize;
                if m >= 0 && (m as usize) < ih1 {
                    fill(m as usize, dst)
                } else {
                    dst.fill(0.0)
                }
            };
            self.row_pass(rows, n1, iw1, &f, pool, par);
            self.col_pass(rows, n1, d1 - d0, &mul1, pool, par);
            // H2's input rows for output rows [a0, a1): step rows [base, a1
            // + sh2), the first `lead` of them from the strip before (or
            // zero above row 0), those from oh1 on zero.
            let base = (a0 + plan.sh2) as isize - (kh as isize - 1);
            let n2 = a1 - a0 + kh - 1;
            let lead = (d0 as isize - base) as usize;
            if i == 0 {
                rows2[..lead * wc].fill(zero);
            } else {
                rows2[..lead * wc].copy_from_slice(&halo[..lead * wc]);
            }
            let (src, dst) = (&rows[..], CPtr(rows2.as_mut_ptr()));
            let one = |r: usize, l: &mut Lease| {
                let b = l.bufs();
                b.crow
                    .copy_from_slice(&src[(r - d0) * wc..(r - d0 + 1) * wc]);
                self.c2r.c2r(&mut b.crow, &mut b.real, &mut b.fft);
                step(r, &b.real[..ow1], &mut b.real2[..ow1]);
                b.real2[ow1..].fill(0.0);
                let j = (r as isize - base) as usize;
                // SAFETY: row j < n2 <= nh of rows2 is written by this task
                // only (one per r).
                let out = unsafe { dst.slice(j * wc, wc) };
                self.r2c.r2c(&mut b.real2, out, &mut b.fft);
            };
            self.each_leased(d0..d1, pool, par, one);
            let filled = (d1 as isize - base) as usize;
            rows2[filled * wc..n2 * wc].fill(zero);
            if d1 < oh1 {
                // The next strip's base is d1 - (kh - 1).
                let h0 = filled - (kh - 1);
                halo[..(kh - 1) * wc].copy_from_slice(&rows2[h0 * wc..filled * wc]);
            }
            // H2 on output rows [a0, a1).
            self.col_pass(rows2, n2, a1 - a0, &mul2, pool, par);
            let e = |j: usize, row: &mut [f32]| emit(a0 + j, row);
            self.inv_row_pass(rows2, a1 - a0, ow2, &e, pool, par);
        }
    }

    /// Forward FFT of `fft` columns in place (`buf` holds whole columns of
    /// length nh), with the given scratch.
    pub fn col_fft(&self, buf: &mut [Complex32], scratch: &mut [Complex32]) {
        self.fwd.process_with_scratch(buf, scratch);
    }

    /// r2c of one real row of length nw into wc complex values.
    pub fn row_fft(&self, row: &mut [f32], out: &mut [Complex32]) {
        let mut scratch = vec![Complex32::new(0.0, 0.0); self.r2c.scratch_len()];
        self.r2c.r2c(row, out, &mut scratch);
    }

    /// The input rows from `fill(r, row)` ((ih, iw) at the grid's origin,
    /// r < ih, row of length iw) circularly convolved, with the spectrum
    /// product done by `mul(c0, buf, extra, fft_scratch)` (`product` for a
    /// plain kernel): `buf` holds the column spectra of columns [c0, c0 +
    /// buf.len() / nh), column-major; `extra` is a per-thread buffer the
    /// closure may use; `fft_scratch` suits `col_fft`.
    ///
    /// Each output row r < oh (length ow) is handed to
    /// `emit(r, row)` as soon as it is transformed back, so element-wise
    /// work that follows a convolution runs on a row still in cache instead
    /// of on a stored image. Each row is emitted exactly once; with `par`,
    /// rows are emitted from several threads in any order.
    #[allow(clippy::too_many_arguments)]
    pub fn convolve_emit<F, M, E>(
        &self,
        fill: &F,
        ih: usize,
        iw: usize,
        mul: &M,
        emit: &E,
        oh: usize,
        ow: usize,
        s: &mut Scratch,
        par: bool,
    ) where
        F: Fn(usize, &mut [f32]) + Sync,
        M: Fn(usize, &mut [Complex32], &mut Vec<Complex32>, &mut [Complex32]) + Sync,
        E: Fn(usize, &mut [f32]) + Sync,
    {
        debug_assert!(ih <= self.nh && iw <= self.nw && oh <= self.nh && ow <= self.nw);
        // The row buffer must hold oh rows on the way out.
        if s.rows.len() < oh.max(ih) * self.wc {
            // Every row read below is written first: no need to copy.
            s.rows = zeroed(oh.max(ih) * self.wc);
        }
        let Scratch { rows, pool, .. } = s;
        self.row_pass(rows, ih, iw, fill, pool, par);
        self.col_pass(rows, ih, oh, mul, pool, par);
        self.inv_row_pass(rows, oh, ow, emit, pool, par);
    }

    /// Row pass: rows[r] = r2c(fill(r)) for the ih non-zero input rows.
    fn row_pass<F>(
        &self,
        rows: &mut [Complex32],
        ih: usize,
        iw: usize,
        fill: &F,
        pool: &Mutex<Vec<Bufs>>,
        par: bool,
    ) where
        F: Fn(usize, &mut [f32]) + Sync,
    {
        let (r2c, wc) = (&self.r2c, self.wc);
        let row_fwd = |(r, orow): (usize, &mut [Complex32]), l: &mut Lease| {
            let b = l.bufs();
            fill(r, &mut b.real[..iw]);
            b.real[iw..].fill(0.0);
            r2c.r2c(&mut b.real, orow, &mut b.fft);
        };
        let init = || self.lease(pool);
        if par {
            rows[..ih * wc]
                .par_chunks_mut(wc)
                .enumerate()
                .for_each_init(init, |l, x| row_fwd(x, l));
        } else {
            let mut l = init();
            rows[..ih * wc]
                .chunks_mut(wc)
                .enumerate()
                .for_each(|x| row_fwd(x, &mut l));
        }
    }

    /// Fused column pass, group by group, written back in place into the
    /// row spectra (each group owns its columns): the ih input rows (the
    /// rest zero) transformed, multiplied, transformed back, oh rows kept.
    fn col_pass<M>(
        &self,
        rows: &mut [Complex32],
        ih: usize,
        oh: usize,
        mul: &M,
        pool: &Mutex<Vec<Bufs>>,
        par: bool,
    ) where
        M: Fn(usize, &mut [Complex32], &mut Vec<Complex32>, &mut [Complex32]) + Sync,
    {
        let (nh, wc) = (self.nh, self.wc);
        let rows_ptr = CPtr(rows.as_mut_ptr());
        let (fwd, inv) = (&self.fwd, &self.inv);
        let group = |g: usize, l: &mut Lease| {
            let Bufs {
                col, fft, extra, ..
            } = l.bufs();
            let c0 = g * GROUP;
            let ng = GROUP.min(wc - c0);
            let buf = &mut col[..ng * nh];
            // Blocks of B rows: each column's B values are one contiguous
            // write (a cache line), the B row segments stay in L1.
            let mut r = 0;
            while r < ih {
                let b = B.min(ih - r);
                // SAFETY: reads columns [c0, c0 + ng) of rows r..r+b, which
                // only this group touches.
                let src: [&[Complex32]; B] = std::array::from_fn(|i| unsafe {
                    &*rows_ptr.slice((r + i.min(b - 1)) * wc + c0, ng)
                });
                gather(buf, nh, r, b, &src);
                r += b;
            }
            for j in 0..ng {
                buf[j * nh + ih..(j + 1) * nh].fill(Complex32::new(0.0, 0.0));
            }
            let fs = &mut fft[..fwd.get_inplace_scratch_len()];
            fwd.process_with_scratch(buf, fs);
            mul(c0, buf, extra, fs);
            inv.process_with_scratch(buf, &mut fft[..inv.get_inplace_scratch_len()]);
            for r in 0..oh {
                // SAFETY: as above, this group's columns only.
                let dst = unsafe { rows_ptr.slice(r * wc + c0, ng) };
                scatter(dst, buf, nh, r);
            }
        };
        self.each_leased(0..self.n_groups(), pool, par, group);
    }

    /// Inverse row pass on the oh wanted rows: emit(r, c2r(rows[r])). Each
    /// row is copied into a buffer that stays in L1 (c2r uses its input as
    /// scratch): working in place would dirty the row spectra and write them
    /// back to memory.
    fn inv_row_pass<E>(
        &self,
        rows: &[Complex32],
        oh: usize,
        ow: usize,
        emit: &E,
        pool: &Mutex<Vec<Bufs>>,
        par: bool,
    ) where
        E: Fn(usize, &mut [f32]) + Sync,
    {
        let wc = self.wc;
        let c2r = &self.c2r;
        let row_inv = |r: usize, l: &mut Lease| {
            let b = l.bufs();
            b.crow.copy_from_slice(&rows[r * wc..(r + 1) * wc]);
            // The imaginary parts at DC (and Nyquist for even nw), zero up to
            // rounding, are ignored.
            c2r.c2r(&mut b.crow, &mut b.real, &mut b.fft);
            emit(r, &mut b.real[..ow]);
        };
        self.each_leased(0..oh, pool, par, row_inv);
    }
}

avx2_dispatch! {
    /// v *= k element by element.
    fn mul_in_place(v: &mut [Complex32], k: &[Complex32]) {
        for (a, &b) in v.iter_mut().zip(k) {
            *a = Complex32::new(a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re);
        }
    }
}

avx2_dispatch! {
    /// Rows r..r + b (b <= B) of the column-major group `buf` (columns of
    /// length nh) from the row segments `src` (one per row).
    fn gather(buf: &mut [Complex32], nh: usize, r: usize, b: usize, src: &[&[Complex32]; B]) {
        if b == B {
            // Each column's B values are one contiguous write (a cache line).
            for (j, col) in buf.chunks_exact_mut(nh).enumerate() {
                let d: &mut [Complex32; B] = (&mut col[r..r + B]).try_into().unwrap();
                *d = std::array::from_fn(|i| src[i][j]);
            }
        } else {
            for (j, col) in buf.chunks_exact_mut(nh).enumerate() {
                for (i, d) in col[r..r + b].iter_mut().enumerate() {
                    *d = src[i][j];
                }
            }
        }
    }
}

avx2_dispatch! {
    /// Row r of the column-major group `buf` into `dst`.
    fn scatter(dst: &mut [Complex32], buf: &[Complex32], nh: usize, r: usize) {
        for (j, d) in dst.iter_mut().enumerate() {
            *d = buf[j * nh + r];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct 'same' convolution (scipy.signal.convolve(mode='same')).
    fn direct_same(x: &[f32], h: usize, w: usize, k: &[f32], kh: usize, kw: usize) -> Vec<f32> {
        let (ch, cw) = ((kh - 1) / 2, (kw - 1) / 2);
        let mut out = vec![0.0f32; h * w];
        for i in 0..h {
            for j in 0..w {
                let mut acc = 0.0f64;
                for a in 0..kh {
                    for b in 0..kw {
                        let (xi, xj) = (
                            i as isize + ch as isize - a as isize,
                            j as isize + cw as isize - b as isize,
                        );
                        if xi >= 0 && xj >= 0 && (xi as usize) < h && (xj as usize) < w {
                            acc += (k[a * kw + b] * x[xi as usize * w + xj as usize]) as f64;
                        }
                    }
                }
                out[i * w + j] = acc as f32;
            }
        }
        out
    }

    #[test]
    fn same_convolution_matches_direct() {
        for &(h, w, kh, kw) in &[(37, 50, 5, 7), (64, 33, 4, 6), (20, 21, 1, 1)] {
            let x: Vec<f32> = (0..h * w)
                .map(|i| ((i * 7919) % 101) as f32 / 101.0)
                .collect();
            let k: Vec<f32> = (0..kh * kw)
                .map(|i| ((i * 31) % 17) as f32 / 17.0 + 0.1)
                .collect();
            let g = Grid::new(fast_len(h + kh - 1), fast_len(w + kw - 1)).unwrap();
            let spec = g
                .place(
                    &k,
                    kh,
                    kw,
                    ((kh - 1) / 2) as isize,
                    ((kw - 1) / 2) as isize,
                    false,
                )
                .unwrap();
            let want = direct_same(&x, h, w, &k, kh, kw);
            for par in [false, true] {
                let mut s = g.scratch();
                let out = std::sync::Mutex::new(vec![0.0f32; h * w]);
                let fill = |r: usize, d: &mut [f32]| d.copy_from_slice(&x[r * w..(r + 1) * w]);
                let emit = |r: usize, row: &mut [f32]| {
                    out.lock().unwrap()[r * w..(r + 1) * w].copy_from_slice(row)
                };
                let mul = g.product(&spec);
                g.convolve_emit(&fill, h, w, &mul, &emit, h, w, &mut s, par);
                let out = out.into_inner().unwrap();
                let err = out
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                assert!(err < 1e-4, "{h}x{w} k {kh}x{kw} par {par}: max error {err}");
            }
        }
    }

    #[test]
    fn fast_len_is_smooth_and_even() {
        assert_eq!(fast_len(2110), 2160);
        assert_eq!(fast_len(1), 2);
        assert_eq!(fast_len(2048), 2048);
    }
}
