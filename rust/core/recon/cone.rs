//! Circular cone-beam (lab micro-CT) geometry, FDK reconstruction and a
//! matched Joseph forward / back-projector pair.
//!
//! Conventions (documented once for users in `python/scintomo/recon/__init__.py`;
//! the same as RTK's `ThreeDCircularProjectionGeometry` with RTK's y, the
//! rotation axis, as our z and RTK's z as our -y). Lengths are in voxel units.
//! Voxel (k, j, i) of an (nz, ny, nx) volume sits at x = i - (nx - 1) / 2,
//! y = (ny - 1) / 2 - j (up, as in the parallel-beam slices), z = k - (nz - 1)
//! / 2 + z_offset (along the rotation axis, the direction of increasing
//! detector rows; `z_offset` places a z-slab of a taller volume, 0 centres
//! the volume on the source plane).
//! At angle theta the source is at S = D (sin theta, -cos theta, 0), the
//! central ray runs along d = (-sin theta, cos theta, 0) and the detector's
//! untilted column axis is e_u = (cos theta, sin theta, 0), its row axis
//! e_v = z. A point P lands at u = Dsd (P . e_u) / L, v = Dsd z / L with
//! L = D + P . d, i.e. at column cc + u / du, row cr + v / du; far from the
//! source this is the parallel-beam rule x cos theta + y sin theta = s. A
//! detector tilted by phi in its plane has its column axis along
//! cos(phi) e_u + sin(phi) e_v and its row axis along -sin(phi) e_u +
//! cos(phi) e_v.

use super::{filter_response, pad_edge, Filter};
use crate::error::{CoreError, CoreResult};
use crate::rfft::RealFft;
use ndarray::{Array3, ArrayView2, ArrayView3};
use rayon::prelude::*;
use rustfft::num_complex::Complex32;

/// A circular cone-beam scan and the volume it is reconstructed into; all
/// lengths in voxel units.
#[derive(Debug, Clone)]
pub struct ConeGeometry {
    /// Projection angles, radians.
    pub theta: Vec<f64>,
    /// Source to rotation axis.
    pub sod: f64,
    /// Source to detector.
    pub sdd: f64,
    /// Detector pixel pitch.
    pub pixel: f64,
    /// Column and row (pixel centres at integers) where the central ray meets
    /// the detector.
    pub center_col: f64,
    pub center_row: f64,
    /// In-plane detector tilt, radians.
    pub tilt: f64,
    /// Volume shape (nz, ny, nx).
    pub shape: (usize, usize, usize),
    /// Height of the volume's centre above the source plane: voxel k sits at
    /// z = k - (nz - 1) / 2 + z_offset. A cone is not shift-invariant along
    /// z, so a slab of a taller volume is this slab's rows with the offset
    /// that puts them where they are in the whole, not a centred volume.
    pub z_offset: f64,
}

impl ConeGeometry {
    pub(crate) fn check(&self, n_angles: usize, n_rows: usize, n_cols: usize) -> CoreResult<()> {
        let (nz, ny, nx) = self.shape;
        if nz == 0 || ny == 0 || nx == 0 {
            return Err(CoreError::shape(format!(
                "the volume shape must be positive, got {:?}",
                self.shape
            )));
        }
        if n_angles == 0 || n_rows == 0 || n_cols < 2 {
            return Err(CoreError::shape(format!(
                "projections must have at least 1 angle, 1 row and 2 columns, got ({n_angles}, {n_rows}, {n_cols})"
            )));
        }
        if self.theta.len() != n_angles {
            return Err(CoreError::shape(format!(
                "{} angles for {} projections",
                self.theta.len(),
                n_angles
            )));
        }
        let vals = [
            self.sod,
            self.sdd,
            self.pixel,
            self.center_col,
            self.center_row,
            self.tilt,
            self.z_offset,
        ];
        if vals.iter().chain(&self.theta).any(|v| !v.is_finite()) {
            return Err(CoreError::parameter(
                "the cone geometry and the angles must be finite",
            ));
        }
        if !(self.sod > 0.0 && self.sdd > self.sod && self.pixel > 0.0) {
            return Err(CoreError::parameter(format!(
                "need 0 < source_object ({}) < source_detector ({}) and pixel > 0 ({})",
                self.sod, self.sdd, self.pixel
            )));
        }
        let half = 0.5 * ((nx * nx + ny * ny) as f64).sqrt();
        if self.sod <= half {
            return Err(CoreError::parameter(format!(
                "the source ({} voxels from the axis) is inside the volume (half-diagonal {half:.1} voxels)",
                self.sod
            )));
        }
        Ok(())
    }

    /// The index-space position (i, j, k) of the origin (on the rotation
    /// axis, in the source plane): x = i - cx, y = cy - j, z = k - cz. Every
    /// kernel maps between voxels and space through this alone, so the z
    /// offset is honoured by FDK and the projector pair alike.
    pub(crate) fn voxel_centre(&self) -> (f64, f64, f64) {
        let (nz, ny, nx) = self.shape;
        (
            (nx as f64 - 1.0) / 2.0,
            (ny as f64 - 1.0) / 2.0,
            (nz as f64 - 1.0) / 2.0 - self.z_offset,
        )
    }
}

/// Slices of the volume back-projected together: the per-(angle, y-row)
/// terms are computed once for all of them.
const SLAB: usize = 4;
/// Angles summed in float32 before the float64 accumulator takes them.
const ANGLE_BLOCK: usize = 32;

/// FDK (Feldkamp, Davis and Kress 1984; Kak and Slaney 1988 eq. 3.191) of
/// `proj` (angle, row, column), -log line integrals, on an untilted
/// detector. `weights` (angle, column) multiply each projection before the
/// filter: the quadrature weight of the angle times the redundancy weight
/// (1/2 for a full turn, Parker's or Wang's otherwise). Returns (nz, ny, nx)
/// float32, attenuation per voxel.
pub fn fdk(
    proj: ArrayView3<f32>,
    geo: &ConeGeometry,
    weights: ArrayView2<f32>,
    filter: Filter,
    pad_len: usize,
) -> CoreResult<Array3<f32>> {
    let (na, nr, nd) = proj.dim();
    geo.check(na, nr, nd)?;
    if geo.tilt != 0.0 {
        return Err(CoreError::parameter(
            "FDK needs an untilted detector: resample the projections first",
        ));
    }
    if weights.dim() != (na, nd) {
        return Err(CoreError::shape(format!(
            "weights must be (angles, columns) = ({na}, {nd}), got {:?}",
            weights.dim()
        )));
    }
    if pad_len < nd || pad_len > (1 << 20) {
        return Err(CoreError::parameter(format!(
            "pad length {pad_len} must be between the detector width {nd} and 2^20"
        )));
    }
    let bad = proj
        .iter()
        .chain(weights.iter())
        .filter(|v| !v.is_finite())
        .count();
    if bad > 0 {
        return Err(CoreError::NonFinite {
            what: "projections and weights".into(),
            count: bad,
        });
    }
    let filtered = filter_projections(proj, geo, weights, filter, pad_len);
    Ok(backproject_filtered(&filtered, nr, nd, geo))
}

/// Cosine-weight, weight and ramp-filter every row; returns the rows with a
/// one-pixel zero border, (na, nr + 2, nd + 2) flattened.
fn filter_projections(
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
                dst[(r + 1) * w2 + 1..(r + 1) * w2 + 1 + nd].copy_from_slice(&buf[left..left + nd]);
            }
        },
    );
    out
}

/// Voxel-driven back-projection with bilinear interpolation and the FDK
/// distance weight (D / L)^2; `filt` is (na, nr + 2, nd + 2) with a zero
/// border, so samples off the detector read zeros without a branch.
fn backproject_filtered(filt: &[f32], nr: usize, nd: usize, geo: &ConeGeometry) -> Array3<f32> {
    let (nz, ny, nx) = geo.shape;
    let (cx, cy, cz) = geo.voxel_centre();
    let (w2, h2) = (nd + 2, nr + 2);
    let na = geo.theta.len();
    let trig: Vec<(f64, f64)> = geo.theta.iter().map(|t| (t.cos(), t.sin())).collect();
    let mut out = Array3::<f32>::zeros((nz, ny, nx));
    let (cmax, rmax) = ((nd + 1) as f32, (nr + 1) as f32);
    let Some(flat) = out.as_slice_mut() else {
        return out;
    };
    flat.par_chunks_mut(SLAB * ny * nx)
        .enumerate()
        .for_each(|(b, slab)| {
            let k0 = b * SLAB;
            let ns = slab.len() / (ny * nx);
            let mut acc64 = vec![0f64; slab.len()];
            let mut acc32 = vec![0f32; slab.len()];
            // Per voxel column i: padded detector column, row scale and weight.
            let mut col = vec![0f32; nx];
            let mut rsc = vec![0f32; nx];
            let mut wgt = vec![0f32; nx];
            let zs: Vec<f32> = (0..ns)
                .map(|s| (k0 + s) as f64 - cz)
                .map(|z| z as f32)
                .collect();
            for (a, &(cs, sn)) in trig.iter().enumerate() {
                let p = &filt[a * h2 * w2..(a + 1) * h2 * w2];
                for j in 0..ny {
                    let y = cy - j as f64;
                    for i in 0..nx {
                        let x = i as f64 - cx;
                        let l = geo.sod - x * sn + y * cs;
                        let m = geo.sdd / (l * geo.pixel);
                        col[i] = (geo.center_col + 1.0 + (x * cs + y * sn) * m) as f32;
                        rsc[i] = m as f32;
                        let g = geo.sod / l;
                        wgt[i] = (g * g) as f32;
                    }
                    let r0 = (geo.center_row + 1.0) as f32;
                    let line = Line {
                        p,
                        col: &col,
                        rsc: &rsc,
                        wgt: &wgt,
                        r0,
                        cmax,
                        rmax,
                        nd,
                        nr,
                        w2,
                    };
                    for (s, &z) in zs.iter().enumerate() {
                        let acc = &mut acc32[(s * ny + j) * nx..(s * ny + j + 1) * nx];
                        line.run(acc, z);
                    }
                }
                if (a + 1) % ANGLE_BLOCK == 0 || a + 1 == na {
                    for (s, v) in acc64.iter_mut().zip(acc32.iter_mut()) {
                        *s += *v as f64;
                        *v = 0.0;
                    }
                }
            }
            for (o, s) in slab.iter_mut().zip(&acc64) {
                *o = *s as f32;
            }
        });
    out
}

/// One row of voxels (fixed angle, y and z) of the FDK back-projection: the
/// per-column terms and the bordered filtered projection they read.
struct Line<'a> {
    p: &'a [f32],
    col: &'a [f32],
    rsc: &'a [f32],
    wgt: &'a [f32],
    r0: f32,
    cmax: f32,
    rmax: f32,
    nd: usize,
    nr: usize,
    w2: usize,
}

impl Line<'_> {
    /// acc[i] += weight * bilinear sample at (row r0 + z rsc[i], column col[i]).
    #[inline]
    fn run(&self, acc: &mut [f32], z: f32) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU has AVX2 and FMA (checked just above).
                unsafe { self.run_avx2(acc, z) };
                return;
            }
        }
        self.run_generic(acc, z)
    }

    /// The same loop compiled for AVX2 (LLVM vectorises it with gathers).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2(&self, acc: &mut [f32], z: f32) {
        self.run_generic(acc, z)
    }

    // One index over four parallel slices reads more plainly than a zip of four.
    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    fn run_generic(&self, acc: &mut [f32], z: f32) {
        let n = acc
            .len()
            .min(self.col.len())
            .min(self.rsc.len())
            .min(self.wgt.len());
        let (ndi, nri) = (self.nd as i32, self.nr as i32);
        let w2 = self.w2;
        let p = self.p;
        // Every index below is at most (nr + 1) * w2 + nd + 1 < p.len().
        if p.len() < (self.nr + 2) * w2 {
            return;
        }
        for i in 0..n {
            let c = self.col[i].clamp(0.0, self.cmax);
            let r = (self.r0 + z * self.rsc[i]).clamp(0.0, self.rmax);
            // Saturating casts (NaN -> 0), then clamped: ci <= nd, ri <= nr.
            let ci = (c as i32).min(ndi);
            let ri = (r as i32).min(nri);
            let fc = c - ci as f32;
            let fr = r - ri as f32;
            let o = ri as usize * w2 + ci as usize;
            // SAFETY: o + w2 + 1 <= nr * w2 + nd + w2 + 1 = (nr + 2) * w2 - 1 < p.len().
            let (a, b, cc, d) = unsafe {
                (
                    *p.get_unchecked(o),
                    *p.get_unchecked(o + 1),
                    *p.get_unchecked(o + w2),
                    *p.get_unchecked(o + w2 + 1),
                )
            };
            let top = a + fc * (b - a);
            let bot = cc + fc * (d - cc);
            acc[i] += self.wgt[i] * (top + fr * (bot - top));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geo(shape: (usize, usize, usize), na: usize) -> ConeGeometry {
        ConeGeometry {
            theta: (0..na).map(|a| a as f64 * 0.37).collect(),
            sod: 60.0,
            sdd: 150.0,
            pixel: 2.0,
            center_col: 11.3,
            center_row: 6.8,
            tilt: 0.05,
            shape,
            z_offset: 0.0,
        }
    }

    /// Pseudo-random numbers in [-0.5, 0.5).
    fn rng(mut s: u64) -> impl FnMut() -> f32 {
        move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32) / (1u64 << 24) as f32 - 0.5
        }
    }

    /// Slices k0..k1 of a (nz, ny, nx) volume as their own volume: the slab's
    /// centre sits k0 + (ns - 1) / 2 - (nz - 1) / 2 above the whole's.
    fn slab_geo(g: &ConeGeometry, k0: usize, k1: usize) -> ConeGeometry {
        let (nz, ny, nx) = g.shape;
        let ns = k1 - k0;
        ConeGeometry {
            shape: (ns, ny, nx),
            z_offset: g.z_offset + k0 as f64 + (ns as f64 - 1.0) / 2.0 - (nz as f64 - 1.0) / 2.0,
            ..g.clone()
        }
    }

    /// FDK of a z-slab with its offset is the same slices of the whole
    /// volume (every slab of an uneven split, the outer ones far off the
    /// source plane).
    #[test]
    fn fdk_slab_matches_whole() {
        let mut g = geo((13, 10, 10), 24);
        g.theta = (0..24)
            .map(|a| a as f64 * std::f64::consts::TAU / 24.0)
            .collect();
        g.tilt = 0.0;
        g.center_row = 9.4;
        let (nr, nd) = (20, 22);
        let mut rnd = rng(777);
        let proj = Array3::from_shape_fn((24, nr, nd), |_| rnd() + 0.5);
        let w = ndarray::Array2::from_elem((24, nd), 0.5f32);
        let whole = fdk(proj.view(), &g, w.view(), Filter::Shepp, 32).unwrap();
        let peak = whole.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(peak > 0.0);
        for (k0, k1) in [(0, 3), (3, 8), (8, 9), (9, 13), (0, 13)] {
            let sg = slab_geo(&g, k0, k1);
            let slab = fdk(proj.view(), &sg, w.view(), Filter::Shepp, 32).unwrap();
            let want = whole.slice(ndarray::s![k0..k1, .., ..]);
            let err = slab
                .iter()
                .zip(want.iter())
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(err <= 1e-6 * peak, "slab {k0}..{k1}: {err} (peak {peak})");
        }
    }
}
