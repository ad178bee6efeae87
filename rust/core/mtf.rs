//! MTF kernels: the slanted edge's geometry and projection (ISO 12233 e-SFR)
//! in one call (`edge_fit`), and line-pair targets (`bars`).

pub mod bars;
pub mod edge_fit;
