//! Bindings of the flat-field kernels.

use numpy::{
    IntoPyArray, PyArray2, PyReadonlyArray2, PyReadonlyArray3, PyReadwriteArray3,
    PyReadwriteArrayDyn,
};
use pyo3::prelude::*;
use scintomo_core::flatfield::{self, BadPolicy, Interp, Options, Reduce, Report};
use scintomo_core::CoreError;

use crate::errors::PyCoreError;
use crate::util::{run, Stack3};
use crate::with_view;

type Counts = (u64, u64, u64, u64);

fn counts(r: Report) -> Counts {
    (r.bad_pixels, r.clipped_low, r.clipped_high, r.nonfinite)
}

/// Reduce frames (F, H, W) to one float32 (H, W) image by mean or median.
#[pyfunction]
#[pyo3(signature = (frames, *, method = "mean", what = "frames", n_threads = None))]
fn reduce_frames<'py>(
    py: Python<'py>,
    frames: Stack3<'py>,
    method: &str,
    what: &str,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let how = Reduce::parse(method).map_err(PyCoreError)?;
    let out = with_view!(frames, Stack3, |v| run(py, n_threads, || {
        flatfield::reduce_frames(v, how, what)
    }))?;
    Ok(out.into_pyarray(py))
}

/// Flat-field correct into `out`; `projections=None` corrects `out` in place.
/// Returns (bad_pixels, clipped_low, clipped_high, nonfinite).
#[pyfunction]
#[pyo3(signature = (projections, flats, dark, out, *, positions, interpolation, eps, bad_policy,
                    fill_value, air, lo, hi, log, first_index, n_threads = None))]
#[allow(clippy::too_many_arguments)]
fn flatfield_correct<'py>(
    py: Python<'py>,
    projections: Option<Stack3<'py>>,
    flats: PyReadonlyArray3<'py, f32>,
    dark: PyReadonlyArray2<'py, f32>,
    mut out: PyReadwriteArray3<'py, f32>,
    positions: Vec<f64>,
    interpolation: &str,
    eps: f32,
    bad_policy: &str,
    fill_value: f32,
    air: Option<[usize; 4]>,
    lo: f32,
    hi: f32,
    log: bool,
    first_index: f64,
    n_threads: Option<usize>,
) -> PyResult<Counts> {
    let interp = match interpolation {
        "linear" => Interp::Linear,
        "nearest" => Interp::Nearest,
        o => {
            return Err(
                PyCoreError(CoreError::parameter(format!("unknown interpolation {o:?}"))).into(),
            )
        }
    };
    let bad = match bad_policy {
        "clamp" => BadPolicy::Clamp,
        "fill" => BadPolicy::Fill(fill_value),
        "nan" => BadPolicy::Nan,
        "raise" => BadPolicy::Raise,
        o => {
            return Err(PyCoreError(CoreError::parameter(format!(
                "unknown bad_flat policy {o:?}"
            )))
            .into())
        }
    };
    let opts = Options {
        positions,
        interp,
        eps,
        bad,
        air,
        lo,
        hi,
        log,
        first_index,
    };
    let (f, d) = (flats.as_array(), dark.as_array());
    let o = out.as_array_mut();
    let rep = match projections {
        None => run(py, n_threads, || flatfield::correct_inplace(o, f, d, &opts))?,
        Some(p) => with_view!(p, Stack3, |v| run(py, n_threads, || flatfield::correct(
            v, f, d, &opts, o
        )))?,
    };
    Ok(counts(rep))
}

/// -ln of `data` clipped to [lo, hi], in place. Returns the counts.
#[pyfunction]
#[pyo3(signature = (data, *, lo, hi, n_threads = None))]
fn minus_log_inplace(
    py: Python<'_>,
    mut data: PyReadwriteArrayDyn<'_, f32>,
    lo: f32,
    hi: f32,
    n_threads: Option<usize>,
) -> PyResult<Counts> {
    let v = data.as_array_mut();
    Ok(counts(run(py, n_threads, || {
        flatfield::minus_log_inplace(v, lo, hi)
    })?))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(reduce_frames, m)?)?;
    m.add_function(wrap_pyfunction!(flatfield_correct, m)?)?;
    m.add_function(wrap_pyfunction!(minus_log_inplace, m)?)?;
    Ok(())
}
