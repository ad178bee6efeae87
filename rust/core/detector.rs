//! Detector characterisation kernels: the noise power spectrum (IEC
//! 62220-1-1) and per-pixel afterglow decay fits. Everything else in
//! `scintomo.detector` is cheap enough for numpy.

pub mod decay;
pub mod nps;

pub use decay::{decay_fit, DecayFit, DecayModel};
pub use nps::{nps_sum, poly_detrend_coefficients, NpsSum};
