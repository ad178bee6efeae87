//! The FDK stages after validation: weighting and ramp filtering of the
//! projections, then the voxel-driven back-projection (geometry and
//! conventions: `cone.rs`).
//!
//! Layout for speed (the usual fast CPU FDK arrangement; e.g. Scherl et al.
//! 2007, Treibig et al. 2013 "RabbitCT"): on a flat untilted detector the
//! column u and the distance weight (D / L)^2 of a voxel depend on (x, y) and
//! the angle only, and the row v is affine in z. So for each angle and each
//! voxel column (x, y) the two detector columns it falls between are blended
//! once over the rows the column's z range reaches, and the z loop is a 1-D
//! linear interpolation along that blend, v = v0 + z dv. The filtered
//! projections are stored transposed (column, row), so both the blend and
//! the z loop read contiguous memory, and the volume is worked in tiles of
//! (z chunk, 16 y, 16 x) whose accumulators stay in the core's L2 cache
//! while every angle passes over them. The arithmetic of each sample is the
//! bilinear interpolation of the plain loop, term for term.

use super::cone::ConeGeometry;
use super::{filter_response, pad_edge, Filter};
use crate::rfft::RealFft;
use ndarray::{Array3, ArrayView2, ArrayView3, Axis};
use rayon::prelude::*;
use rustfft::num_complex::Complex32;

/// Voxel rows (y) and columns (x) of a tile.
const TILE: usize = 16;
/// Longest run of z worked at once (bounds the tile's accumulators).
const Z_CHUNK: usize = 256;
/// Zeros past the blended rows, so a 16-row window starting at any row can
/// be loaded.
const WINDOW_SLACK: usize = 16;
/// Angles summed in float32 before the float64 accumulator takes them.
const ANGLE_BLOCK: usize = 32;
/// Angles back-projected together into one voxel column (a divisor of
/// ANGLE_BLOCK): the column's accumulators are loaded and stored once for
/// the group.
const GROUP: usize = 4;

/// Cosine-weight, weight and ramp-filter every row; returns the filtered
/// projections transposed, (na, nd + 2 columns, nr + 2 rows) flattened with a
/// one-pixel zero border, so each detector column is contiguous and samples
/// off the detector read zeros without a branch.
pub(super) fn filter_projections(
    proj: ArrayView3<f32>,
    geo: &ConeGeometry,
    weights: ArrayView2<f32>,
    filter: Filter,
    np: usize,
) -> Vec<f32> {
    let (na, nr, nd) = proj.dim();
    let left = (np - nd) / 2;
    // Ramp in units of the detector pitch scaled to the axis (du D / Dsd).
    let da = geo.pixel * geo.sod / geo.sdd;
    let resp: Vec<f32> = filter_response(filter, np)[..np / 2 + 1]
        .iter()
        .map(|&v| (v / (np as f64 * da)) as f32)
        .collect();
    let r2c = RealFft::forward(np);
    let c2r = RealFft::inverse(np);
    let (w2, h2) = (nd + 2, nr + 2);
    let mut out = vec![0f32; na * h2 * w2];
    out.par_chunks_mut(h2 * w2).enumerate().for_each_init(
        || {
            let zero = Complex32::new(0.0, 0.0);
            (
                vec![0f32; np],
                vec![0f32; nd],
                vec![zero; r2c.complex_len()],
                vec![zero; r2c.scratch_len()],
                vec![zero; c2r.scratch_len()],
            )
        },
        |(buf, row, spec, s1, s2), (a, dst)| {
            let sdd2 = geo.sdd * geo.sdd;
            for r in 0..nr {
                let v = (r as f64 - geo.center_row) * geo.pixel;
                for (c, (o, &p)) in row
                    .iter_mut()
                    .zip(proj.slice(ndarray::s![a, r, ..]))
                    .enumerate()
                {
                    let u = (c as f64 - geo.center_col) * geo.pixel;
                    let cosw = geo.sdd / (sdd2 + u * u + v * v).sqrt();
                    *o = p * (cosw as f32) * weights[[a, c]];
                }
                pad_edge(row.iter(), nd, left, buf);
                r2c.r2c(buf, spec, s1);
                for (z, &h) in spec.iter_mut().zip(&resp) {
                    *z *= h;
                }
                c2r.c2r(spec, buf, s2);
                for (c, &v) in buf[left..left + nd].iter().enumerate() {
                    dst[(c + 1) * h2 + r + 1] = v;
                }
            }
        },
    );
    out
}

/// Voxel-driven back-projection with bilinear interpolation and the FDK
/// distance weight (D / L)^2 of the transposed, bordered filtered projections
/// `filt` (see [`filter_projections`]).
pub(super) fn backproject(filt: &[f32], nr: usize, nd: usize, geo: &ConeGeometry) -> Array3<f32> {
    #[cfg(target_arch = "x86_64")]
    let simd = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
    #[cfg(not(target_arch = "x86_64"))]
    let simd = false;
    backproject_with(filt, nr, nd, geo, simd)
}

/// [`backproject`] with the AVX2 z loop (`simd`, where the CPU has it) or the
/// portable one.
fn backproject_with(
    filt: &[f32],
    nr: usize,
    nd: usize,
    geo: &ConeGeometry,
    simd: bool,
) -> Array3<f32> {
    let (nz, ny, nx) = geo.shape;
    let (cx, cy, cz) = geo.voxel_centre();
    let (w2, h2) = (nd + 2, nr + 2);
    let trig: Vec<(f64, f64)> = geo.theta.iter().map(|t| (t.cos(), t.sin())).collect();
    let na = trig.len();
    let mut out = Array3::<f32>::zeros((nz, ny, nx));
    if filt.len() < na * w2 * h2 {
        return out;
    }
    let zs: Vec<f32> = (0..nz).map(|k| (k as f64 - cz) as f32).collect();
    let xs: Vec<f64> = (0..nx).map(|i| i as f64 - cx).collect();
    let cmax = (nd + 1) as f64;
    let r0 = (geo.center_row + 1.0) as f32;
    let kern = Kernel::new(nr, simd);
    out.axis_chunks_iter_mut(Axis(1), TILE)
        .into_par_iter()
        .enumerate()
        .for_each(|(b, mut strip)| {
            let j0 = b * TILE;
            let nj = strip.dim().1;
            let cap = TILE * TILE * Z_CHUNK.min(nz);
            let mut acc32 = vec![0f32; cap];
            let mut acc64 = vec![0f64; cap];
            let mut blends = vec![0f32; GROUP * (h2 + WINDOW_SLACK)];
            let mut rays: Vec<Ray> = Vec::with_capacity(GROUP);
            let mut setup = RowSetup::new(geo, simd);
            for k0 in (0..nz).step_by(Z_CHUNK) {
                let nk = Z_CHUNK.min(nz - k0);
                let zc = &zs[k0..k0 + nk];
                for i0 in (0..nx).step_by(TILE) {
                    let ni = TILE.min(nx - i0);
                    let ncol = nj * ni;
                    acc64[..ncol * nk].fill(0.0);
                    for a0 in (0..na).step_by(ANGLE_BLOCK) {
                        let a1 = (a0 + ANGLE_BLOCK).min(na);
                        for g0 in (a0..a1).step_by(GROUP) {
                            let g1 = (g0 + GROUP).min(a1);
                            let trig_g = &trig[g0..g1];
                            for jj in 0..nj {
                                let y = cy - (j0 + jj) as f64;
                                setup.row(trig_g, &xs[i0..i0 + ni], y);
                                for ii in 0..ni {
                                    rays.clear();
                                    for (q, a) in (g0..g1).enumerate() {
                                        let col = setup.col[q * TILE + ii];
                                        // Off the detector (or on its zero border)
                                        // the sample is exactly zero for every z.
                                        if !(col > 0.0 && col < cmax) {
                                            continue;
                                        }
                                        let c = col as f32;
                                        let ci = (c as usize).min(nd);
                                        let p = &filt[a * w2 * h2..(a + 1) * w2 * h2];
                                        rays.push(Ray {
                                            cols: &p[ci * h2..(ci + 2) * h2],
                                            fc: c - ci as f32,
                                            rsc: setup.rsc[q * TILE + ii],
                                            wgt: setup.wgt[q * TILE + ii],
                                        });
                                    }
                                    let t = (jj * ni + ii) * nk;
                                    kern.column(&rays, r0, zc, &mut blends, &mut acc32[t..t + nk]);
                                }
                            }
                        }
                        for (s, v) in acc64[..ncol * nk].iter_mut().zip(&mut acc32[..ncol * nk]) {
                            *s += *v as f64;
                            *v = 0.0;
                        }
                    }
                    // Slice by slice, so the writes run along x rows (a
                    // column's z values lie a whole slice apart).
                    for s in 0..nk {
                        for jj in 0..nj {
                            for ii in 0..ni {
                                strip[[k0 + s, jj, i0 + ii]] =
                                    acc64[(jj * ni + ii) * nk + s] as f32;
                            }
                        }
                    }
                }
            }
        });
    out
}

/// The per-(angle, voxel column) geometry of one tile row and one angle
/// group, worked for all the row's columns at once: the detector column
/// (bordered), the detector rows per voxel along z and the distance weight.
/// A separate branch-free loop over the row's columns, so the compiler
/// vectorises its two float64 divisions per column (the same operations, in
/// the same order, as one column at a time: the same bits).
struct RowSetup {
    sod: f64,
    sdd: f64,
    pixel: f64,
    col0: f64,
    #[cfg(target_arch = "x86_64")]
    avx2: bool,
    /// Detector column + 1 of (angle q, column ii) at q * TILE + ii.
    col: [f64; GROUP * TILE],
    rsc: [f32; GROUP * TILE],
    wgt: [f32; GROUP * TILE],
}

impl RowSetup {
    fn new(geo: &ConeGeometry, simd: bool) -> Self {
        #[cfg(not(target_arch = "x86_64"))]
        let _ = simd;
        RowSetup {
            sod: geo.sod,
            sdd: geo.sdd,
            pixel: geo.pixel,
            col0: geo.center_col + 1.0,
            #[cfg(target_arch = "x86_64")]
            avx2: simd && std::is_x86_feature_detected!("avx2"),
            col: [0.0; GROUP * TILE],
            rsc: [0.0; GROUP * TILE],
            wgt: [0.0; GROUP * TILE],
        }
    }

    /// Fill the tables for the angles `trig` (cos, sin; at most GROUP) and
    /// the voxel columns at x = `xs` (at most TILE) of the row at `y`.
    fn row(&mut self, trig: &[(f64, f64)], xs: &[f64], y: f64) {
        #[cfg(target_arch = "x86_64")]
        {
            if self.avx2 {
                // SAFETY: the CPU has AVX2 (checked in `new`).
                unsafe { self.row_avx2(trig, xs, y) };
                return;
            }
        }
        self.row_generic(trig, xs, y)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn row_avx2(&mut self, trig: &[(f64, f64)], xs: &[f64], y: f64) {
        self.row_generic(trig, xs, y)
    }

    #[inline(always)]
    fn row_generic(&mut self, trig: &[(f64, f64)], xs: &[f64], y: f64) {
        let (sod, sdd, pixel, col0) = (self.sod, self.sdd, self.pixel, self.col0);
        let xs = &xs[..xs.len().min(TILE)];
        for (q, &(cs, sn)) in trig.iter().take(GROUP).enumerate() {
            let span = q * TILE..q * TILE + xs.len();
            for (((&x, col), rsc), wgt) in xs
                .iter()
                .zip(&mut self.col[span.clone()])
                .zip(&mut self.rsc[span.clone()])
                .zip(&mut self.wgt[span])
            {
                let l = sod - x * sn + y * cs;
                let m = sdd / (l * pixel);
                *col = col0 + (x * cs + y * sn) * m;
                let g = sod / l;
                *rsc = m as f32;
                *wgt = (g * g) as f32;
            }
        }
    }
}

/// One angle's view of one voxel column: the two detector columns it falls
/// between (2 (nr + 2) values, bordered), the fraction between them, the
/// detector rows per voxel along z and the distance weight.
struct Ray<'a> {
    cols: &'a [f32],
    fc: f32,
    rsc: f32,
    wgt: f32,
}

/// The z loop of one voxel column over a group of angles, with its CPU
/// dispatch.
struct Kernel {
    nr: usize,
    rmax: f32,
    #[cfg(target_arch = "x86_64")]
    avx2: bool,
}

impl Kernel {
    /// `simd`: use the AVX2 loop, if the CPU has AVX2 and FMA.
    fn new(nr: usize, simd: bool) -> Self {
        #[cfg(not(target_arch = "x86_64"))]
        let _ = simd;
        Kernel {
            nr,
            rmax: (nr + 1) as f32,
            #[cfg(target_arch = "x86_64")]
            avx2: simd
                && std::is_x86_feature_detected!("avx2")
                && std::is_x86_feature_detected!("fma"),
        }
    }

    /// For each ray in order, acc[k] += wgt * bilinear sample at (row r0 +
    /// zs[k] rsc, column ci + fc); `blends` scratch of GROUP (nr + 2 +
    /// WINDOW_SLACK). Each voxel's accumulator is loaded once for the group
    /// and takes the rays' terms in angle order (the same sums as one angle
    /// at a time).
    #[inline]
    fn column(&self, rays: &[Ray], r0: f32, zs: &[f32], blends: &mut [f32], acc: &mut [f32]) {
        let stride = self.nr + 2 + WINDOW_SLACK;
        if rays.is_empty() || rays.len() > GROUP || blends.len() != GROUP * stride {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        {
            if self.avx2 {
                // SAFETY: the CPU has AVX2 and FMA (checked in `new`).
                unsafe { self.column_avx2(rays, r0, zs, blends, acc) };
                return;
            }
        }
        self.column_generic(rays, r0, zs, blends, acc)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn column_avx2(
        &self,
        rays: &[Ray],
        r0: f32,
        zs: &[f32],
        blends: &mut [f32],
        acc: &mut [f32],
    ) {
        use std::arch::x86_64::*;
        let h2 = self.nr + 2;
        let stride = h2 + WINDOW_SLACK;
        for (ray, blend) in rays.iter().zip(blends.chunks_exact_mut(stride)) {
            if !self.blend_rows(ray, r0, zs, blend) {
                return;
            }
        }
        let n = acc.len().min(zs.len());
        let nri = self.nr as i32;
        let bp = blends.as_ptr();
        let vr0 = _mm256_set1_ps(r0);
        let (vzero, vmax, vnr) = (
            _mm256_setzero_ps(),
            _mm256_set1_ps(self.rmax),
            _mm256_set1_epi32(nri),
        );
        let (one, seven) = (_mm256_set1_epi32(1), _mm256_set1_epi32(7));
        let mut k = 0;
        // The same operations, in the same order and rounding, as the scalar
        // loop (separate multiplies and adds, no fused ones), so both paths
        // give the same bits.
        while k + 8 <= n {
            let z = _mm256_loadu_ps(zs.as_ptr().add(k));
            let o = acc.as_mut_ptr().add(k);
            let mut s = _mm256_loadu_ps(o);
            for (g, ray) in rays.iter().enumerate() {
                // SAFETY: g < GROUP, so the blend lies inside `blends`.
                let bp = bp.add(g * stride);
                let r = _mm256_add_ps(vr0, _mm256_mul_ps(z, _mm256_set1_ps(ray.rsc)));
                let r = _mm256_min_ps(_mm256_max_ps(r, vzero), vmax);
                let ri = _mm256_min_epi32(_mm256_cvttps_epi32(r), vnr);
                let fr = _mm256_sub_ps(r, _mm256_cvtepi32_ps(ri));
                // The eight rows sit in a window of 16 from the first (the
                // rows grow with z) whenever the row step is below about 2
                // per voxel, the usual case: two loads and in-register
                // permutes then pick blend[ri] and blend[ri + 1], much
                // cheaper than gathers.
                let base = _mm256_cvtsi256_si32(ri);
                let last = _mm256_extract_epi32::<7>(ri);
                let (t, b) = if last - base <= 14 {
                    let idx = _mm256_sub_epi32(ri, _mm256_set1_epi32(base));
                    let idx1 = _mm256_add_epi32(idx, one);
                    // SAFETY: 0 <= base <= nr and the blend has nr + 2 + 16 values.
                    let w0 = _mm256_loadu_ps(bp.add(base as usize));
                    let w1 = _mm256_loadu_ps(bp.add(base as usize + 8));
                    let m0 = _mm256_castsi256_ps(_mm256_cmpgt_epi32(idx, seven));
                    let m1 = _mm256_castsi256_ps(_mm256_cmpgt_epi32(idx1, seven));
                    (
                        _mm256_blendv_ps(
                            _mm256_permutevar8x32_ps(w0, idx),
                            _mm256_permutevar8x32_ps(w1, idx),
                            m0,
                        ),
                        _mm256_blendv_ps(
                            _mm256_permutevar8x32_ps(w0, idx1),
                            _mm256_permutevar8x32_ps(w1, idx1),
                            m1,
                        ),
                    )
                } else {
                    // SAFETY: 0 <= ri <= nr, so ri + 1 < nr + 2 <= the blend's length.
                    (
                        _mm256_i32gather_ps::<4>(bp, ri),
                        _mm256_i32gather_ps::<4>(bp.add(1), ri),
                    )
                };
                let v = _mm256_add_ps(t, _mm256_mul_ps(fr, _mm256_sub_ps(b, t)));
                s = _mm256_add_ps(s, _mm256_mul_ps(_mm256_set1_ps(ray.wgt), v));
            }
            _mm256_storeu_ps(o, s);
            k += 8;
        }
        self.z_loop(rays, r0, &zs[k..n], blends, &mut acc[k..n]);
    }

    /// Fill the first rows of `blend` with the column-interpolated detector
    /// (the `top` and `bottom` of each bilinear sample) over the rows the z
    /// range reaches. The row grows with z (rsc > 0 and rounding is
    /// monotonic), so the first and last z bound the rows read. False when
    /// the lengths do not fit (not reached: the caller sizes them).
    #[inline(always)]
    fn blend_rows(&self, ray: &Ray, r0: f32, zs: &[f32], blend: &mut [f32]) -> bool {
        let h2 = self.nr + 2;
        if ray.cols.len() != 2 * h2 || blend.len() < h2 || zs.is_empty() {
            return false;
        }
        let (c0, c1) = ray.cols.split_at(h2);
        let row = |z: f32| (r0 + z * ray.rsc).clamp(0.0, self.rmax);
        let lo = (row(zs[0]) as usize).min(self.nr);
        let hi = (row(zs[zs.len() - 1]) as usize).min(self.nr) + 1;
        let fc = ray.fc;
        for ((b, &a), &d) in blend[lo..=hi]
            .iter_mut()
            .zip(&c0[lo..=hi])
            .zip(&c1[lo..=hi])
        {
            *b = a + fc * (d - a);
        }
        true
    }

    /// For each voxel, for each ray in order: acc[k] += wgt * linear sample
    /// of the ray's blend at row r0 + zs[k] rsc.
    #[inline(always)]
    fn z_loop(&self, rays: &[Ray], r0: f32, zs: &[f32], blends: &[f32], acc: &mut [f32]) {
        let nri = self.nr;
        let stride = nri + 2 + WINDOW_SLACK;
        if blends.len() < rays.len() * stride {
            return;
        }
        for (o, &z) in acc.iter_mut().zip(zs) {
            let mut s = *o;
            for (ray, blend) in rays.iter().zip(blends.chunks_exact(stride)) {
                let r = (r0 + z * ray.rsc).clamp(0.0, self.rmax);
                // Saturating cast (NaN -> 0), then clamped: ri <= nr.
                let ri = (r as usize).min(nri);
                let fr = r - ri as f32;
                // SAFETY: ri + 1 <= nr + 1 < stride = blend.len().
                let (t, b) = unsafe { (*blend.get_unchecked(ri), *blend.get_unchecked(ri + 1)) };
                s += ray.wgt * (t + fr * (b - t));
            }
            *o = s;
        }
    }

    #[inline(always)]
    fn column_generic(
        &self,
        rays: &[Ray],
        r0: f32,
        zs: &[f32],
        blends: &mut [f32],
        acc: &mut [f32],
    ) {
        let stride = self.nr + 2 + WINDOW_SLACK;
        for (ray, blend) in rays.iter().zip(blends.chunks_exact_mut(stride)) {
            if !self.blend_rows(ray, r0, zs, blend) {
                return;
            }
        }
        self.z_loop(rays, r0, zs, blends, acc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain voxel-driven FDK back-projection, written from the
    /// geometry in `cone.rs`'s docs in float64 (no tiles, no transposition,
    /// no border): each voxel, each angle, the bilinear sample of the
    /// (angle, row, column) projections, zero off the detector, times
    /// (D / L)^2.
    fn reference(proj: &Array3<f32>, geo: &ConeGeometry) -> Array3<f64> {
        let (nz, ny, nx) = geo.shape;
        let (_, nr, nd) = proj.dim();
        let (cx, cy, cz) = geo.voxel_centre();
        let at = |a: usize, r: i64, c: i64| -> f64 {
            if r < 0 || c < 0 || r >= nr as i64 || c >= nd as i64 {
                0.0
            } else {
                proj[[a, r as usize, c as usize]] as f64
            }
        };
        Array3::from_shape_fn((nz, ny, nx), |(k, j, i)| {
            let (x, y, z) = (i as f64 - cx, cy - j as f64, k as f64 - cz);
            let mut s = 0.0;
            for (a, t) in geo.theta.iter().enumerate() {
                let (cs, sn) = (t.cos(), t.sin());
                let l = geo.sod - x * sn + y * cs;
                let u = (x * cs + y * sn) * geo.sdd / l / geo.pixel + geo.center_col;
                let v = z * geo.sdd / l / geo.pixel + geo.center_row;
                let (c0, r0) = (u.floor(), v.floor());
                let (fc, fr) = (u - c0, v - r0);
                let (c0, r0) = (c0 as i64, r0 as i64);
                let top = at(a, r0, c0) * (1.0 - fc) + at(a, r0, c0 + 1) * fc;
                let bot = at(a, r0 + 1, c0) * (1.0 - fc) + at(a, r0 + 1, c0 + 1) * fc;
                s += (geo.sod / l).powi(2) * (top * (1.0 - fr) + bot * fr);
            }
            s
        })
    }

    /// Bordered, transposed copy of `proj`, as `filter_projections` lays it.
    fn bordered(proj: &Array3<f32>) -> Vec<f32> {
        let (na, nr, nd) = proj.dim();
        let (w2, h2) = (nd + 2, nr + 2);
        let mut out = vec![0f32; na * w2 * h2];
        for ((a, r, c), &v) in proj.indexed_iter() {
            out[a * w2 * h2 + (c + 1) * h2 + r + 1] = v;
        }
        out
    }

    /// Both z loops against the plain back-projection, on sizes that leave
    /// partial tiles, a second z chunk, a partial angle block and group, and
    /// the volume's corners and ends off the detector; with 1.3 to 2.2
    /// detector rows per voxel (the permute window and, past ~1.9, the
    /// gathers) and about 7 (the gathers).
    #[test]
    fn backprojection_matches_plain_loop() {
        let mut s = 4242u64;
        let mut rnd = move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32) / (1u64 << 24) as f32
        };
        // Rows per voxel sdd / (L pixel): 1.3 to 2.2 (both paths) and ~7.
        for (pixel, nr, nd, z_offset) in [(1.5, 300, 30, 3.5), (0.35, 840, 90, -2.0)] {
            let na = 37;
            let geo = ConeGeometry {
                theta: (0..na).map(|a| 0.3 + a as f64 * 0.17).collect(),
                sod: 60.0,
                sdd: 150.0,
                pixel,
                center_col: 14.2,
                center_row: nr as f64 / 2.0 - 0.7,
                tilt: 0.0,
                shape: (Z_CHUNK + 9, 19, 21),
                z_offset,
            };
            let proj = Array3::from_shape_fn((na, nr, nd), |_| rnd() - 0.3);
            let want = reference(&proj, &geo);
            let peak = want.iter().fold(0f64, |m, v| m.max(v.abs()));
            let filt = bordered(&proj);
            for simd in [false, true] {
                let got = backproject_with(&filt, nr, nd, &geo, simd);
                let err = got
                    .iter()
                    .zip(&want)
                    .fold(0f64, |m, (a, b)| m.max((*a as f64 - b).abs()));
                assert!(
                    peak > 1.0 && err <= 2e-5 * peak,
                    "pixel {pixel} simd {simd}: {err} (peak {peak})"
                );
            }
        }
    }
}
