//! mtf kernels (see the issue for this capability).
