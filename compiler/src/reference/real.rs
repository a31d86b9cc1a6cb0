//! The element types the reference computes on: f32, as the GPU kernels do,
//! and f64, the oracle for finite-difference checks of gradients. Every
//! reference op computes in f64 and rounds once to the element type, so f32
//! results equal what the reference always gave.

use std::borrow::Cow;

pub trait Real:
    Copy + Send + Sync + Default + PartialEq + PartialOrd + std::fmt::Debug + 'static
{
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    /// f32 data (weights, inputs) in this type: borrowed when it already is.
    fn from_f32_slice(v: &[f32]) -> Cow<'_, [Self]>;
}

impl Real for f32 {
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f32_slice(v: &[f32]) -> Cow<'_, [Self]> {
        Cow::Borrowed(v)
    }
}

impl Real for f64 {
    fn from_f64(v: f64) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f32_slice(v: &[f32]) -> Cow<'_, [Self]> {
        Cow::Owned(v.iter().map(|&x| x as f64).collect())
    }
}
