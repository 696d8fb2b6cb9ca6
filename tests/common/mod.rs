//! Helpers shared by the integration tests: fixture paths and tolerant comparisons.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> PathBuf {
    root().join("tests").join("fixtures").join(name)
}

pub fn asset(rel: &str) -> PathBuf {
    root().join("assets").join(rel)
}

pub fn read_npy(p: &Path) -> easel_core::npy::NpyArray {
    easel_core::npy::read_npy(p).unwrap_or_else(|e| panic!("{e}"))
}

/// Largest |a - b| relative to the largest |b| (the reference's scale).
pub fn max_rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
    a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

pub fn cpu() -> burn::tensor::Device {
    burn::tensor::Device::flex()
}
