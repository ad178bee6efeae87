//! scintomo-core: the numerical kernels of scintomo, on ndarray views.
//!
//! No Python here: every function takes `ArrayView`s (and `ArrayViewMut`s for
//! outputs) and returns `Result<_, CoreError>`, so the kernels are tested and
//! benchmarked with cargo alone. The PyO3 layer in `rust/bindings` only
//! converts arguments, releases the GIL and maps errors.

pub mod error;
pub mod fastmath;
pub mod mem;
pub mod parallel;
pub mod pixel;
pub mod rfft;

pub mod flatfield;

// One module per capability; each grows with its issue.
pub mod deconv;
pub mod detector;
pub mod lab;
pub mod mtf;
pub mod recon;

pub use error::{CoreError, CoreResult};
pub use pixel::Pixel;
