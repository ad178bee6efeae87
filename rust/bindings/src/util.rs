//! The one path every kernel call takes: release the GIL, run inside the
//! requested thread pool, convert the error (polars' `enter_polars` idea).

use numpy::{PyReadonlyArray2, PyReadonlyArray3};
use pyo3::prelude::*;
use scintomo_core::{mem, parallel, CoreResult};

use crate::errors::PyCoreError;

/// Run `f` without the GIL on `n_threads` threads (`None`: all cores).
pub fn run<T, F>(py: Python<'_>, n_threads: Option<usize>, f: F) -> PyResult<T>
where
    F: FnOnce() -> CoreResult<T> + Send,
    T: Send,
{
    py.detach(|| parallel::with_threads(n_threads, f))
        .map_err(|e| PyCoreError(e).into())
}

/// A 3-D stack of one of the pixel types the kernels take directly; Python
/// converts anything else to float32 first.
#[derive(FromPyObject)]
pub enum Stack3<'py> {
    U16(PyReadonlyArray3<'py, u16>),
    F32(PyReadonlyArray3<'py, f32>),
    F64(PyReadonlyArray3<'py, f64>),
}

/// A 2-D image of one of the pixel types the kernels take directly.
#[derive(FromPyObject)]
#[allow(dead_code)]
pub enum Image2<'py> {
    U16(PyReadonlyArray2<'py, u16>),
    F32(PyReadonlyArray2<'py, f32>),
    F64(PyReadonlyArray2<'py, f64>),
}

/// Call `$body` with `$v` bound to the `ArrayView` of whichever pixel type
/// `$stack` holds.
#[macro_export]
macro_rules! with_view {
    ($stack:expr, $enum:ident, |$v:ident| $body:expr) => {
        match $stack {
            $crate::util::$enum::U16(a) => {
                let $v = a.as_array();
                $body
            }
            $crate::util::$enum::F32(a) => {
                let $v = a.as_array();
                $body
            }
            $crate::util::$enum::F64(a) => {
                let $v = a.as_array();
                $body
            }
        }
    };
}

/// Which SIMD path the element-wise kernels take on this CPU.
#[pyfunction]
pub fn simd_level() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw") {
            return "avx512";
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return "avx2";
        }
        "sse2"
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        "generic"
    }
}

/// The largest `n_threads` any kernel accepts (64 per core).
#[pyfunction]
pub fn max_threads() -> usize {
    parallel::max_threads()
}

/// Raise `MemoryLimitError` when a call needing `nbytes` would not fit in
/// the memory available now (the kernels' own rule, for Python callers).
#[pyfunction]
pub fn check_memory(nbytes: f64, what: &str) -> PyResult<()> {
    mem::check_bytes(nbytes, what).map_err(|e| PyCoreError(e).into())
}

/// Bytes available now (MemAvailable), or None where unknown.
#[pyfunction]
pub fn available_memory() -> Option<u64> {
    mem::available_bytes()
}
