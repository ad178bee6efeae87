//! One error type for the whole core crate. The bindings map each variant onto
//! a Python exception (shape and parameter problems are `ValueError`s).

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum CoreError {
    /// Arrays whose shapes do not fit together, or an empty array.
    #[error("{0}")]
    Shape(String),
    /// A parameter outside its valid range.
    #[error("{0}")]
    Parameter(String),
    /// NaN or infinity where finite values are required.
    #[error("{what} contain {count} non-finite value(s) (NaN or inf)")]
    NonFinite { what: String, count: usize },
    /// A computation that cannot give a meaningful result (e.g. division by a
    /// zero beam intensity).
    #[error("{0}")]
    Numerical(String),
    /// A call that needs more memory than the system can give (checked
    /// before allocating; see `mem`).
    #[error("{0}")]
    Memory(String),
}

pub type CoreResult<T> = Result<T, CoreError>;

impl CoreError {
    pub fn shape(msg: impl Into<String>) -> Self {
        CoreError::Shape(msg.into())
    }
    pub fn parameter(msg: impl Into<String>) -> Self {
        CoreError::Parameter(msg.into())
    }
    pub fn numerical(msg: impl Into<String>) -> Self {
        CoreError::Numerical(msg.into())
    }
    pub fn memory(msg: impl Into<String>) -> Self {
        CoreError::Memory(msg.into())
    }
}
