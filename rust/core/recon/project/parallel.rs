//! Parallel-beam linear (Joseph) projector, slice by slice: ASTRA's CPU
//! `linear` kernel (`ParallelBeamLinearKernelProjector2D`). Each ray is
//! sampled once per pixel line across its dominant direction (image rows
//! when |cos theta| > |sin theta|, columns otherwise), linearly between the
//! two nearest pixel centres of that line, and weighted by the ray's length
//! per line, 1 / max(|cos theta|, |sin theta|). As a matrix: W[ray, pixel] =
//! w max(0, 1 - |c - i|), c the ray's crossing of the pixel's line and i the
//! pixel's index along it; pixels outside the image are zero.
//!
//! Geometry as in `recon.rs`: x = col - (n - 1) / 2, y = (n - 1) / 2 - row,
//! the ray of detector column j at angle theta is x cos + y sin = j - center.
//! On row r (y = h - r) it crosses column (j - center) / cos + h + (r - h) tan;
//! on column i (x = i - h) it crosses row h - (j - center) / sin + (i - h) cot:
//! along each line the crossing moves by k = 1 / cos (resp. -1 / sin) per
//! detector column and by m = tan (cot) per line.
//!
//! Speed: the forward projection reads padded copies of the slices (rows,
//! and columns as rows), so every inner loop runs over contiguous memory with
//! no bounds tests; work is split over (slice, block of angles) going
//! forward and (slice, block of lines) going back, so a single slice uses
//! every thread. The back-projection gathers (each pixel reads the two
//! detector columns around it) instead of scattering, so its inner loop
//! vectorises too.

use super::{Projector, SyncPtr};
use crate::error::{CoreError, CoreResult};
use rayon::prelude::*;

/// Angles projected together: their rows of the sinogram stay in cache
/// while a block of lines of the slice is read once for all of them.
const ANGLE_BLOCK: usize = 8;
/// Lines of a slice handled together.
const LINE_BLOCK: usize = 32;

#[derive(Debug, Clone, Copy)]
struct Angle {
    /// Lines are image rows (|cos| > |sin|, ASTRA's "vertical" ray).
    vertical: bool,
    /// Crossing shift per detector column, along the line.
    k: f64,
    /// Crossing shift per line.
    m: f64,
    /// Ray length per line.
    w: f32,
}

/// The projector of `nz` slices of n x n pixels onto `nd` detector columns
/// at the angles `theta` (radians), the rotation axis at column `centers[z]`
/// for slice (detector row) z.
#[derive(Debug, Clone)]
pub struct ParallelProjector {
    theta: Vec<f64>,
    centers: Vec<f64>,
    n: usize,
    nd: usize,
    angles: Vec<Angle>,
}

impl ParallelProjector {
    pub fn new(theta: &[f64], centers: &[f64], n: usize, nd: usize) -> CoreResult<Self> {
        if theta.is_empty() || centers.is_empty() || n == 0 || nd == 0 {
            return Err(CoreError::shape(format!(
                "need at least 1 angle, 1 slice, 1 pixel and 1 detector column, got {} angles, {} slices, n = {n}, {nd} columns",
                theta.len(),
                centers.len()
            )));
        }
        if theta.iter().chain(centers).any(|v| !v.is_finite()) {
            return Err(CoreError::parameter("theta and the centres must be finite"));
        }
        let angles = theta
            .iter()
            .map(|&t| {
                let (s, c) = t.sin_cos();
                // ASTRA: vertical when |ray_x| < |ray_y|, the ray (sin, -cos).
                let vertical = s.abs() < c.abs();
                let (k, m) = if vertical {
                    (1.0 / c, s / c)
                } else {
                    (-1.0 / s, c / s)
                };
                Angle {
                    vertical,
                    k,
                    m,
                    w: k.abs() as f32,
                }
            })
            .collect();
        Ok(ParallelProjector {
            theta: theta.to_vec(),
            centers: centers.to_vec(),
            n,
            nd,
            angles,
        })
    }

    /// Slices (detector rows).
    pub fn n_slices(&self) -> usize {
        self.centers.len()
    }

    /// Crossing of detector column 0's ray with line l of slice z, in pixel
    /// index units along the line.
    #[inline]
    fn base(&self, a: &Angle, z: usize, l: usize) -> f64 {
        let h = (self.n as f64 - 1.0) / 2.0;
        -self.centers[z] * a.k + h + (l as f64 - h) * a.m
    }
}

/// Indices j in [0, len) with lo < t0 + j k < hi, widened by one each side
/// (the kernels clamp, so a wider range only costs time).
#[inline]
fn index_range(t0: f64, k: f64, lo: f64, hi: f64, len: usize) -> (usize, usize) {
    if k == 0.0 {
        return if t0 > lo && t0 < hi { (0, len) } else { (0, 0) };
    }
    let (a, b) = ((lo - t0) / k, (hi - t0) / k);
    let (a, b) = if a < b { (a, b) } else { (b, a) };
    let ja = (a.floor() - 1.0).clamp(0.0, len as f64) as usize;
    let jb = (b.ceil() + 1.0).clamp(0.0, len as f64) as usize;
    (ja, jb.max(ja))
}

/// acc[j] += w * line(t0 + j k), linear interpolation on `line` = [0, p_0
/// .. p_(n-1), 0, 0] (padded index t = pixel index + 1), zero outside.
#[inline(always)]
fn fwd_line_generic(line: &[f32], t0: f32, k: f32, w: f32, n: usize, acc: &mut [f32], ja: usize) {
    let hi = (n + 1) as f32;
    if line.len() < n + 3 {
        return;
    }
    let len = acc.len().min(i32::MAX as usize);
    let ja = ja as i32;
    // i32 counters: LLVM vectorises i32 -> f32 (cvtdq2ps) but not usize -> f32.
    for (j, a) in (0..len as i32).zip(acc.iter_mut()) {
        // max / min rather than clamp: a NaN becomes 0, never an index.
        let t = (t0 + (ja + j) as f32 * k).max(0.0).min(hi);
        // SAFETY: 0 <= t <= n + 1 fits an i32 (a plain `as` blocks vectorisation).
        let i = unsafe { t.to_int_unchecked::<i32>() } as usize; // <= n + 1
        let f = t - i as f32;
        // SAFETY: i + 1 <= n + 2 < line.len().
        let (p, q) = unsafe { (*line.get_unchecked(i), *line.get_unchecked(i + 1)) };
        *a += w * (p + f * (q - p));
    }
}

/// Extra zeros after each padded line so that the AVX2 kernels may load 16
/// values from any index the clamped position can take.
const SIMD_PAD: usize = 16;

/// The values at `src + rel[lane]` for `rel` in 0..16 (`hi_half`: rel > 7).
///
/// # Safety
/// AVX2 must be present and `src .. src + 16` readable.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn pick(
    src: *const f32,
    rel: std::arch::x86_64::__m256i,
    hi_half: std::arch::x86_64::__m256,
) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let v0 = _mm256_loadu_ps(src);
    let v1 = _mm256_loadu_ps(src.add(8));
    _mm256_blendv_ps(
        _mm256_permutevar8x32_ps(v0, rel),
        _mm256_permutevar8x32_ps(v1, rel),
        hi_half,
    )
}

/// `fwd_line_generic` without gathers: consecutive rays are |k| in [1, sqrt
/// 2] apart along the line, so the 8 rays of a vector read pixels within 12
/// of the first one's: two contiguous loads of 8 and two permutes replace
/// each gather (slow on AMD Zen). Same arithmetic, same results to the bit.
///
/// # Safety
/// AVX2 and FMA must be present; `line.len() >= n + 3 + SIMD_PAD`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fwd_line_avx2(line: &[f32], t0: f32, k: f32, w: f32, n: usize, acc: &mut [f32]) {
    use std::arch::x86_64::*;
    let hi = (n + 1) as f32;
    if line.len() < n + 3 + SIMD_PAD {
        return fwd_line_generic(line, t0, k, w, n, acc, 0);
    }
    let len = acc.len().min(i32::MAX as usize - 8);
    let (vt0, vk, vw) = (_mm256_set1_ps(t0), _mm256_set1_ps(k), _mm256_set1_ps(w));
    let (zero, vhi) = (_mm256_setzero_ps(), _mm256_set1_ps(hi));
    let seven = _mm256_set1_epi32(7);
    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    // The lane with the smallest position (positions are monotone in j).
    let low = if k >= 0.0 { 0 } else { 7 };
    let ptr = line.as_ptr();
    let mut j = 0usize;
    while j + 8 <= len {
        let jf = _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_set1_epi32(j as i32), lane));
        let t = _mm256_min_ps(
            _mm256_max_ps(_mm256_add_ps(vt0, _mm256_mul_ps(jf, vk)), zero),
            vhi,
        );
        let i = _mm256_cvttps_epi32(t);
        let f = _mm256_sub_ps(t, _mm256_cvtepi32_ps(i));
        // The same scalar operations as the lowest lane: its index exactly.
        let tb = (t0 + (j + low) as i32 as f32 * k).max(0.0).min(hi);
        let ib = tb.to_int_unchecked::<i32>() as usize; // <= n + 1
        let rel = _mm256_sub_epi32(i, _mm256_set1_epi32(ib as i32)); // 0..=11
        let hi_half = _mm256_castsi256_ps(_mm256_cmpgt_epi32(rel, seven));
        let (p, q) = (
            pick(ptr.add(ib), rel, hi_half),
            pick(ptr.add(ib + 1), rel, hi_half),
        );
        let a = acc.as_mut_ptr().add(j);
        let v = _mm256_mul_ps(vw, _mm256_add_ps(p, _mm256_mul_ps(f, _mm256_sub_ps(q, p))));
        _mm256_storeu_ps(a, _mm256_add_ps(_mm256_loadu_ps(a), v));
        j += 8;
    }
    fwd_line_generic(line, t0, k, w, n, &mut acc[j..], j)
}

/// acc[i] += w * sum_j max(0, 1 - |b + j k - i|) q[j + 1] over the pixels
/// i of `acc` (offset ia), `q` = [0, p_0 .. p_(nd-1), 0, 0]: the transpose
/// of `fwd_line`. |k| >= 1, so only the two columns around i count.
#[inline(always)]
fn back_line_generic(q: &[f32], b: f32, k: f32, w: f32, nd: usize, acc: &mut [f32], ia: usize) {
    let hi = (nd + 1) as f32;
    if q.len() < nd + 3 {
        return;
    }
    let invk = 1.0 / k;
    let len = acc.len().min(i32::MAX as usize);
    let ia = ia as i32;
    for (i, a) in (0..len as i32).zip(acc.iter_mut()) {
        let d = b - (ia + i) as f32; // crossing of column 0 relative to pixel i
        let u = (1.0 - d * invk).max(0.0).min(hi);
        // SAFETY: 0 <= u <= nd + 1 fits an i32.
        let ji = unsafe { u.to_int_unchecked::<i32>() };
        let jj = ji as usize; // padded index, <= nd + 1
        let p0 = d + (ji - 1) as f32 * k;
        let w0 = (1.0 - p0.abs()).max(0.0);
        let w1 = (1.0 - (p0 + k).abs()).max(0.0);
        // SAFETY: jj + 1 <= nd + 2 < q.len().
        let (x0, x1) = unsafe { (*q.get_unchecked(jj), *q.get_unchecked(jj + 1)) };
        *a += w * (x0 * w0 + x1 * w1);
    }
}

/// `back_line_generic` without gathers: consecutive pixels are 1 / |k| <= 1
/// detector columns apart, so the 8 pixels of a vector read columns within
/// 9 of the first one's (see `fwd_line_avx2`). Same results to the bit.
///
/// # Safety
/// AVX2 and FMA must be present; `q.len() >= nd + 3 + SIMD_PAD`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn back_line_avx2(q: &[f32], b: f32, k: f32, w: f32, nd: usize, acc: &mut [f32]) {
    use std::arch::x86_64::*;
    let hi = (nd + 1) as f32;
    if q.len() < nd + 3 + SIMD_PAD {
        return back_line_generic(q, b, k, w, nd, acc, 0);
    }
    let invk = 1.0 / k;
    let len = acc.len().min(i32::MAX as usize - 8);
    let (vb, vk, vinvk, vw) = (
        _mm256_set1_ps(b),
        _mm256_set1_ps(k),
        _mm256_set1_ps(invk),
        _mm256_set1_ps(w),
    );
    let (zero, one, vhi) = (_mm256_setzero_ps(), _mm256_set1_ps(1.0), _mm256_set1_ps(hi));
    let sign = _mm256_set1_ps(-0.0);
    let seven = _mm256_set1_epi32(7);
    let ione = _mm256_set1_epi32(1);
    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    // u = 1 - d / k grows with i when 1 / k > 0: the lowest lane.
    let low = if invk >= 0.0 { 0 } else { 7 };
    let ptr = q.as_ptr();
    let mut i = 0usize;
    while i + 8 <= len {
        let fi = _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_set1_epi32(i as i32), lane));
        let d = _mm256_sub_ps(vb, fi);
        let u = _mm256_min_ps(
            _mm256_max_ps(_mm256_sub_ps(one, _mm256_mul_ps(d, vinvk)), zero),
            vhi,
        );
        let ji = _mm256_cvttps_epi32(u);
        let db = b - (i + low) as i32 as f32;
        let ub = (1.0 - db * invk).max(0.0).min(hi);
        let jb = ub.to_int_unchecked::<i32>() as usize; // <= nd + 1
        let rel = _mm256_sub_epi32(ji, _mm256_set1_epi32(jb as i32)); // 0..=8
        let hi_half = _mm256_castsi256_ps(_mm256_cmpgt_epi32(rel, seven));
        let (x0, x1) = (
            pick(ptr.add(jb), rel, hi_half),
            pick(ptr.add(jb + 1), rel, hi_half),
        );
        let p0 = _mm256_add_ps(
            d,
            _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(ji, ione)), vk),
        );
        let w0 = _mm256_max_ps(_mm256_sub_ps(one, _mm256_andnot_ps(sign, p0)), zero);
        let p1 = _mm256_add_ps(p0, vk);
        let w1 = _mm256_max_ps(_mm256_sub_ps(one, _mm256_andnot_ps(sign, p1)), zero);
        let a = acc.as_mut_ptr().add(i);
        let v = _mm256_mul_ps(
            vw,
            _mm256_add_ps(_mm256_mul_ps(x0, w0), _mm256_mul_ps(x1, w1)),
        );
        _mm256_storeu_ps(a, _mm256_add_ps(_mm256_loadu_ps(a), v));
        i += 8;
    }
    back_line_generic(q, b, k, w, nd, &mut acc[i..], i)
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl ParallelProjector {
    #[inline]
    fn fwd_line(&self, avx: bool, line: &[f32], t0: f64, a: &Angle, acc: &mut [f32]) {
        let n = self.n;
        let (ja, jb) = index_range(t0, a.k, 0.0, (n + 1) as f64, acc.len());
        if ja >= jb {
            return;
        }
        // Start at ja so the f32 position stays accurate far from column 0.
        let t = (t0 + ja as f64 * a.k) as f32;
        let acc = &mut acc[ja..jb];
        #[cfg(target_arch = "x86_64")]
        if avx {
            // SAFETY: AVX2 and FMA are present (checked by the caller).
            unsafe { fwd_line_avx2(line, t, a.k as f32, a.w, n, acc) };
            return;
        }
        let _ = avx;
        fwd_line_generic(line, t, a.k as f32, a.w, n, acc, 0)
    }

    #[inline]
    fn back_line(&self, avx: bool, q: &[f32], b: f64, a: &Angle, acc: &mut [f32]) {
        let nd = self.nd;
        // Detector positions span b .. b + (nd - 1) k; pixels within 1 of them.
        let end = b + (nd as f64 - 1.0) * a.k;
        let (lo, hi) = (b.min(end) - 1.0, b.max(end) + 1.0);
        let ia = lo.floor().clamp(0.0, acc.len() as f64) as usize;
        let ib = (hi.ceil() + 1.0).clamp(0.0, acc.len() as f64) as usize;
        if ia >= ib {
            return;
        }
        // Positions relative to pixel ia keep f32 accurate.
        let bb = (b - ia as f64) as f32;
        let acc = &mut acc[ia..ib];
        #[cfg(target_arch = "x86_64")]
        if avx {
            // SAFETY: AVX2 and FMA are present (checked by the caller).
            unsafe { back_line_avx2(q, bb, a.k as f32, a.w, nd, acc) };
            return;
        }
        let _ = avx;
        back_line_generic(q, bb, a.k as f32, a.w, nd, acc, 0)
    }

    /// Padded copies of the slices: rows [0, row, 0, 0] and, for the
    /// horizontal angles, columns as rows.
    fn padded(&self, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let (n, nz) = (self.n, self.n_slices());
        let wp = n + 3 + SIMD_PAD;
        let mut p = vec![0f32; nz * n * wp];
        p.par_chunks_mut(wp).enumerate().for_each(|(zl, row)| {
            row[1..=n].copy_from_slice(&x[zl * n..zl * n + n]);
        });
        let any_h = self.angles.iter().any(|a| !a.vertical);
        let mut pt = Vec::new();
        if any_h {
            pt = vec![0f32; nz * n * wp];
            let blocks = n.div_ceil(LINE_BLOCK);
            // Per (slice, block of columns) so that the tasks own disjoint rows.
            let ptr = SyncPtr(pt.as_mut_ptr());
            (0..nz * blocks).into_par_iter().for_each(|item| {
                let (z, bl) = (item / blocks, item % blocks);
                let (l0, l1) = (bl * LINE_BLOCK, ((bl + 1) * LINE_BLOCK).min(n));
                let img = &x[z * n * n..(z + 1) * n * n];
                // SAFETY: rows (z, l0..l1) of pt belong to this task only.
                let dst = unsafe { ptr.slice((z * n + l0) * wp, (l1 - l0) * wp) };
                for r in 0..n {
                    let src = &img[r * n + l0..r * n + l1];
                    for (li, &v) in src.iter().enumerate() {
                        dst[li * wp + 1 + r] = v;
                    }
                }
            });
        }
        (p, pt)
    }
}

impl Projector for ParallelProjector {
    fn vol_len(&self) -> usize {
        self.n_slices() * self.n * self.n
    }

    fn proj_len(&self) -> usize {
        self.theta.len() * self.n_slices() * self.nd
    }

    fn n_angles(&self) -> usize {
        self.theta.len()
    }

    fn forward(&self, x: &[f32], y: &mut [f32]) {
        let (n, nz, nd, na) = (self.n, self.n_slices(), self.nd, self.theta.len());
        if x.len() != self.vol_len() || y.len() != self.proj_len() {
            return;
        }
        let wp = n + 3 + SIMD_PAD;
        let (p, pt) = self.padded(x);
        let avx = has_avx2();
        let nb = na.div_ceil(ANGLE_BLOCK);
        let out = SyncPtr(y.as_mut_ptr());
        (0..nz * nb).into_par_iter().for_each_init(
            || vec![0f32; ANGLE_BLOCK * nd],
            |acc, item| {
                let (z, bl) = (item / nb, item % nb);
                let (a0, a1) = (bl * ANGLE_BLOCK, ((bl + 1) * ANGLE_BLOCK).min(na));
                acc.fill(0.0);
                for l0 in (0..n).step_by(LINE_BLOCK) {
                    let l1 = (l0 + LINE_BLOCK).min(n);
                    for a in a0..a1 {
                        let ang = &self.angles[a];
                        let img = if ang.vertical { &p } else { &pt };
                        let row = &mut acc[(a - a0) * nd..(a - a0 + 1) * nd];
                        for l in l0..l1 {
                            let line = &img[(z * n + l) * wp..(z * n + l + 1) * wp];
                            self.fwd_line(avx, line, self.base(ang, z, l) + 1.0, ang, row);
                        }
                    }
                }
                for a in a0..a1 {
                    // SAFETY: row (a, z) of the output is written by this task only.
                    let dst = unsafe { out.slice((a * nz + z) * nd, nd) };
                    dst.copy_from_slice(&acc[(a - a0) * nd..(a - a0 + 1) * nd]);
                }
            },
        );
    }

    fn back(&self, y: &[f32], x: &mut [f32]) {
        let (n, nz, nd, na) = (self.n, self.n_slices(), self.nd, self.theta.len());
        if x.len() != self.vol_len() || y.len() != self.proj_len() {
            return;
        }
        let wq = nd + 3 + SIMD_PAD;
        let mut q = vec![0f32; na * nz * wq];
        q.par_chunks_mut(wq).enumerate().for_each(|(az, row)| {
            row[1..=nd].copy_from_slice(&y[az * nd..(az + 1) * nd]);
        });
        let avx = has_avx2();
        let vert: Vec<usize> = (0..na).filter(|&a| self.angles[a].vertical).collect();
        let hor: Vec<usize> = (0..na).filter(|&a| !self.angles[a].vertical).collect();
        let blocks = n.div_ceil(LINE_BLOCK);
        // Lines l0..l1 of slice z (rows of `dst`) from the given angles.
        let pass = |dst: &mut [f32], angles: &[usize]| {
            let ptr = SyncPtr(dst.as_mut_ptr());
            (0..nz * blocks).into_par_iter().for_each(|item| {
                let (z, bl) = (item / blocks, item % blocks);
                let (l0, l1) = (bl * LINE_BLOCK, ((bl + 1) * LINE_BLOCK).min(n));
                // SAFETY: rows (z, l0..l1) belong to this task only.
                let blk = unsafe { ptr.slice((z * n + l0) * n, (l1 - l0) * n) };
                blk.fill(0.0);
                for &a in angles {
                    let ang = &self.angles[a];
                    let qa = &q[(a * nz + z) * wq..(a * nz + z + 1) * wq];
                    for l in l0..l1 {
                        let acc = &mut blk[(l - l0) * n..(l - l0 + 1) * n];
                        self.back_line(avx, qa, self.base(ang, z, l), ang, acc);
                    }
                }
            });
        };
        pass(x, &vert);
        if hor.is_empty() {
            return;
        }
        let mut t = vec![0f32; nz * n * n];
        pass(&mut t, &hor);
        // x[z, r, c] += t[z, c, r], tile by tile.
        let ptr = SyncPtr(x.as_mut_ptr());
        (0..nz * blocks).into_par_iter().for_each(|item| {
            let (z, bl) = (item / blocks, item % blocks);
            let (r0, r1) = (bl * LINE_BLOCK, ((bl + 1) * LINE_BLOCK).min(n));
            // SAFETY: rows (z, r0..r1) of x belong to this task only.
            let blk = unsafe { ptr.slice((z * n + r0) * n, (r1 - r0) * n) };
            let tz = &t[z * n * n..(z + 1) * n * n];
            for c0 in (0..n).step_by(LINE_BLOCK) {
                let c1 = (c0 + LINE_BLOCK).min(n);
                for c in c0..c1 {
                    let src = &tz[c * n + r0..c * n + r1];
                    for (ri, &v) in src.iter().enumerate() {
                        blk[ri * n + c] += v;
                    }
                }
            }
        });
    }

    fn subset(&self, angles: &[usize]) -> Box<dyn Projector + '_> {
        let mut s = self.clone();
        s.theta = angles.iter().map(|&a| self.theta[a]).collect();
        s.angles = angles.iter().map(|&a| self.angles[a]).collect();
        Box::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{adjoint_error, rng};
    use super::*;

    #[test]
    fn adjoint() {
        // Odd and even sizes, a detector wider and narrower than the slice,
        // angles on both sides of 45 degrees and exactly 0 and 90.
        for (n, nd, nz) in [(17, 23, 2), (16, 11, 1), (32, 32, 3)] {
            let theta: Vec<f64> = (0..13).map(|a| a as f64 * 0.2617 - 0.3).collect();
            let mut th = theta.clone();
            th.extend([0.0, std::f64::consts::FRAC_PI_2]);
            let centers: Vec<f64> = (0..nz)
                .map(|z| (nd as f64 - 1.0) / 2.0 + 0.3 * z as f64)
                .collect();
            let op = ParallelProjector::new(&th, &centers, n, nd).unwrap();
            let e = adjoint_error(&op, 7 + n as u64);
            assert!(e < 1e-5, "n {n} nd {nd}: {e}");
        }
    }

    /// The AVX2 kernels against the scalar ones, bit for bit: both signs of
    /// k, |k| from 1 to sqrt 2, rays starting and ending off the line (the
    /// clamped positions) and lengths with a tail.
    #[test]
    fn simd_kernels_match_scalar() {
        if !has_avx2() {
            return;
        }
        let mut r = rng(11);
        for n in [5usize, 16, 37] {
            let mut line = vec![0f32; n + 3 + SIMD_PAD];
            for v in &mut line[1..=n] {
                *v = r();
            }
            for case in 0..40 {
                let mag = 1.0 + 0.4142 * (case % 10) as f32 / 9.0;
                let k = if case % 2 == 0 { mag } else { -mag };
                // r() is in [-0.5, 0.5): t0 in [-0.3 n, 1.3 n).
                let t0 = (r() * 1.6 + 0.5) * n as f32;
                let len = 3 + case % 29;
                let w = 0.5 + r();
                let mut a = vec![0.25f32; len];
                let mut b = a.clone();
                fwd_line_generic(&line, t0, k, w, n, &mut a, 0);
                // SAFETY: AVX2 and FMA checked above; the line is padded.
                unsafe { fwd_line_avx2(&line, t0, k, w, n, &mut b) };
                assert_eq!(a, b, "forward n {n} case {case}");
                let mut a = vec![0.25f32; len];
                let mut b = a.clone();
                back_line_generic(&line, t0, k, w, n, &mut a, 0);
                // SAFETY: as above.
                unsafe { back_line_avx2(&line, t0, k, w, n, &mut b) };
                assert_eq!(a, b, "back n {n} case {case}");
            }
        }
    }

    /// A dense reference of W[ray, pixel] = w max(0, 1 - |c - i|), written
    /// from the definition (ASTRA's kernel) ray by ray.
    fn dense(theta: &[f64], center: f64, n: usize, nd: usize) -> Vec<f64> {
        let h = (n as f64 - 1.0) / 2.0;
        let mut m = vec![0f64; theta.len() * nd * n * n];
        for (a, &t) in theta.iter().enumerate() {
            let (s, c) = t.sin_cos();
            for j in 0..nd {
                let sj = j as f64 - center;
                let row = &mut m[(a * nd + j) * n * n..(a * nd + j + 1) * n * n];
                if s.abs() < c.abs() {
                    for r in 0..n {
                        let y = h - r as f64;
                        let col = (sj - y * s) / c + h;
                        for i in 0..n {
                            row[r * n + i] = (1.0 - (col - i as f64).abs()).max(0.0) / c.abs();
                        }
                    }
                } else {
                    for i in 0..n {
                        let x = i as f64 - h;
                        let rr = h - (sj - x * c) / s;
                        for r in 0..n {
                            row[r * n + i] = (1.0 - (rr - r as f64).abs()).max(0.0) / s.abs();
                        }
                    }
                }
            }
        }
        m
    }

    #[test]
    fn matches_dense_definition() {
        let (n, nd) = (9, 13);
        let theta: Vec<f64> = (0..7).map(|a| a as f64 * 0.45 + 0.05).collect();
        let center = 6.3;
        let op = ParallelProjector::new(&theta, &[center], n, nd).unwrap();
        let mut r = rng(3);
        let x: Vec<f32> = (0..n * n).map(|_| r()).collect();
        let mut y = vec![0f32; op.proj_len()];
        op.forward(&x, &mut y);
        let m = dense(&theta, center, n, nd);
        for (ray, &got) in y.iter().enumerate() {
            let want: f64 = (0..n * n).map(|p| m[ray * n * n + p] * x[p] as f64).sum();
            assert!((got as f64 - want).abs() < 1e-5, "ray {ray}: {got} {want}");
        }
    }

    /// A uniform disc of radius R projects to the chord 2 sqrt(R^2 - s^2).
    #[test]
    fn disc_chords() {
        let n = 64;
        let h = (n as f64 - 1.0) / 2.0;
        let rad = 20.0;
        let x: Vec<f32> = (0..n * n)
            .map(|p| {
                let (r, c) = ((p / n) as f64, (p % n) as f64);
                if (c - h).powi(2) + (h - r).powi(2) <= rad * rad {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        let theta = [0.0, 0.3, 0.78, 1.2, 2.0];
        let op = ParallelProjector::new(&theta, &[h], n, n).unwrap();
        let mut y = vec![0f32; op.proj_len()];
        op.forward(&x, &mut y);
        for a in 0..theta.len() {
            for j in [20usize, 31, 40] {
                let s = j as f64 - h;
                let want = 2.0 * (rad * rad - s * s).sqrt();
                let got = y[a * n + j] as f64;
                assert!((got - want).abs() < 1.2, "angle {a} col {j}: {got} {want}");
            }
        }
    }
}
