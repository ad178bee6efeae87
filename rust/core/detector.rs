//! detector kernels (see the issue for this capability).
