//! The PyO3 extension `scintomo._core`: argument conversion, GIL release and
//! error mapping around the kernels of `scintomo-core`. Nothing clever here.
//!
//! Each capability has its own file with a `register` function, so the
//! capabilities grow without touching each other.

use pyo3::prelude::*;

// Large scratch buffers (reference images, FFT work arrays) are allocated
// on every call. glibc returns them to the OS on free, so each call pays
// page faults again: ~10 ms per 16 MB on a virtual machine, more than the
// kernel itself. mimalloc keeps freed memory for reuse (polars does the same
// with jemalloc).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod errors;
mod util;

mod cone;
mod deconv;
mod detector;
mod flatfield;
mod iterative;
mod lab;
mod mtf;
mod recon;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(util::simd_level, m)?)?;
    m.add_function(wrap_pyfunction!(util::max_threads, m)?)?;
    m.add_function(wrap_pyfunction!(util::check_memory, m)?)?;
    m.add_function(wrap_pyfunction!(util::available_memory, m)?)?;
    flatfield::register(m)?;
    mtf::register(m)?;
    deconv::register(m)?;
    recon::register(m)?;
    detector::register(m)?;
    cone::register(m)?;
    lab::register(m)?;
    iterative::register(m)?;
    Ok(())
}
