//! Map `CoreError` onto scintomo's exception hierarchy.
//!
//! The exception classes are defined in Python (`scintomo.exceptions`) and
//! imported here, because each needs two bases (`ScintomoError` and the
//! builtin it refines, e.g. `ValueError`), which `create_exception!` cannot
//! express.

use pyo3::import_exception;
use pyo3::prelude::*;
use scintomo_core::CoreError;

import_exception!(scintomo.exceptions, ShapeError);
import_exception!(scintomo.exceptions, ParameterError);
import_exception!(scintomo.exceptions, NonFiniteError);
import_exception!(scintomo.exceptions, NumericalError);
import_exception!(scintomo.exceptions, MemoryLimitError);

/// Newtype so that `?` converts core errors into Python exceptions.
pub struct PyCoreError(pub CoreError);

impl From<CoreError> for PyCoreError {
    fn from(e: CoreError) -> Self {
        PyCoreError(e)
    }
}

impl From<PyCoreError> for PyErr {
    fn from(e: PyCoreError) -> PyErr {
        let msg = e.0.to_string();
        match e.0 {
            CoreError::Shape(_) => ShapeError::new_err(msg),
            CoreError::Parameter(_) => ParameterError::new_err(msg),
            CoreError::NonFinite { .. } => NonFiniteError::new_err(msg),
            CoreError::Numerical(_) => NumericalError::new_err(msg),
            CoreError::Memory(_) => MemoryLimitError::new_err(msg),
        }
    }
}
