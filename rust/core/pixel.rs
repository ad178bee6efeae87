//! Input pixel types. Detector frames arrive as uint16 (or float32/float64
//! after earlier processing); everything is computed in float32 with float64
//! accumulators for sums and means.

pub trait Pixel: Copy + Send + Sync + 'static {
    const NAME: &'static str;
    /// Whether values can be NaN or infinite (so need checking).
    const CAN_BE_NONFINITE: bool;
    fn to_f32(self) -> f32;
    fn to_f64(self) -> f64;
}

impl Pixel for u16 {
    const NAME: &'static str = "uint16";
    const CAN_BE_NONFINITE: bool = false;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Pixel for f32 {
    const NAME: &'static str = "float32";
    const CAN_BE_NONFINITE: bool = true;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Pixel for f64 {
    const NAME: &'static str = "float64";
    const CAN_BE_NONFINITE: bool = true;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
}
