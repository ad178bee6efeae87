//! Matched projector pairs (forward projection A, back-projection A^T, the
//! exact transpose of each other), shared by every method that needs them:
//! the iterative reconstructions, and the Python `cone_project` /
//! `parallel_project` entry points.
//!
//! Layouts: a volume is (nz, ny, nx) row-major (a parallel-beam volume is a
//! stack of (n, n) slices, one per detector row); projections are (angle,
//! row, column) row-major, as everywhere in scintomo, so one angle's
//! projection is one contiguous block (ordered subsets take whole blocks).
//! Geometry conventions: `recon.rs` (parallel) and `cone.rs` (cone beam).
//!
//! - [`ParallelProjector`]: the linear (Joseph) kernel of ASTRA's CPU
//!   `linear` parallel-beam projector, slice by slice.
//! - [`ConeProjector`]: Joseph's cone-beam ray-driven pair.
//! - [`Blurred`]: any of them followed by the film's PSF in the detector
//!   plane, A = B P (B^T: correlation with the PSF).

pub mod cone;
mod parallel;
mod psf;

pub use cone::{cone_backproject, cone_project, ConeProjector};
pub use parallel::ParallelProjector;
pub use psf::Blurred;

/// A linear map from volumes to projections and its transpose, computed on
/// the fly (no stored matrix).
pub trait Projector: Sync {
    /// Voxels in a volume.
    fn vol_len(&self) -> usize;
    /// Values in a projection stack (angles x rows x columns).
    fn proj_len(&self) -> usize;
    /// Angles (the projection stack's first axis).
    fn n_angles(&self) -> usize;
    /// y = A x (y is overwritten).
    fn forward(&self, x: &[f32], y: &mut [f32]);
    /// x = A^T y (x is overwritten).
    fn back(&self, y: &[f32], x: &mut [f32]);
    /// The same operator restricted to the given angles (in that order), for
    /// ordered subsets.
    fn subset(&self, angles: &[usize]) -> Box<dyn Projector + '_>;
}

/// Raw pointer through which parallel tasks write disjoint parts of one
/// buffer.
#[derive(Clone, Copy)]
pub(crate) struct SyncPtr(pub *mut f32);
// SAFETY: every user writes through it only to ranges no other task touches.
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}

impl SyncPtr {
    /// # Safety
    /// `[off, off + n)` must be in bounds and touched by no other task meanwhile.
    #[inline]
    pub(crate) unsafe fn slice<'a>(self, off: usize, n: usize) -> &'a mut [f32] {
        std::slice::from_raw_parts_mut(self.0.add(off), n)
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::Projector;

    /// Pseudo-random numbers in [-0.5, 0.5).
    pub fn rng(mut s: u64) -> impl FnMut() -> f32 {
        move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32) / (1u64 << 24) as f32 - 0.5
        }
    }

    /// |<A x, y> - <x, A^T y>| / max(|.|) for pseudo-random x and y.
    pub fn adjoint_error(op: &dyn Projector, seed: u64) -> f64 {
        let mut r = rng(seed);
        let x: Vec<f32> = (0..op.vol_len()).map(|_| r()).collect();
        let y: Vec<f32> = (0..op.proj_len()).map(|_| r()).collect();
        let mut ax = vec![0f32; op.proj_len()];
        let mut aty = vec![0f32; op.vol_len()];
        op.forward(&x, &mut ax);
        op.back(&y, &mut aty);
        let l: f64 = ax.iter().zip(&y).map(|(a, b)| *a as f64 * *b as f64).sum();
        let rr: f64 = x.iter().zip(&aty).map(|(a, b)| *a as f64 * *b as f64).sum();
        (l - rr).abs() / l.abs().max(rr.abs())
    }
}
