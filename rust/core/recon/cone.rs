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

use super::Filter;
use crate::error::{CoreError, CoreResult};
use ndarray::{Array3, ArrayView2, ArrayView3};

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
    let filtered = super::fdk::filter_projections(proj, geo, weights, filter, pad_len);
    Ok(super::fdk::backproject(&filtered, nr, nd, geo))
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Geometry and data helpers shared by the FDK and projector tests.
    use super::ConeGeometry;

    pub(crate) fn geo(shape: (usize, usize, usize), na: usize) -> ConeGeometry {
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
    pub(crate) fn rng(mut s: u64) -> impl FnMut() -> f32 {
        move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32) / (1u64 << 24) as f32 - 0.5
        }
    }

    /// Slices k0..k1 of a (nz, ny, nx) volume as their own volume: the slab's
    /// centre sits k0 + (ns - 1) / 2 - (nz - 1) / 2 above the whole's.
    pub(crate) fn slab_geo(g: &ConeGeometry, k0: usize, k1: usize) -> ConeGeometry {
        let (nz, ny, nx) = g.shape;
        let ns = k1 - k0;
        ConeGeometry {
            shape: (ns, ny, nx),
            z_offset: g.z_offset + k0 as f64 + (ns as f64 - 1.0) / 2.0 - (nz as f64 - 1.0) / 2.0,
            ..g.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{geo, rng, slab_geo};
    use super::*;

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
