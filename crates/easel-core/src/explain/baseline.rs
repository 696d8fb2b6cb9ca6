//! Reference inputs for integrated gradients and occlusion fills: zero, black, a blurred copy,
//! or another image.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::imaging::{self, PreparedImage};
use crate::models::Classifier;

/// The "absence of signal" an attribution is measured against.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Baseline {
    /// Zero in normalised space (Captum's default).
    Zero,
    /// A black image (pixel 0), normalised.
    Black,
    /// The input blurred with a Gaussian of this sigma in pixels.
    Blur(f32),
    /// Another image, prepared like the input.
    Image(PreparedImage),
}

impl Baseline {
    /// The blurred-image baseline for an `h` x `w` input (the same sigma as occlusion's blur).
    pub fn blur_for(h: usize, w: usize) -> Baseline {
        Baseline::Blur(super::occlusion::blur_sigma(h, w))
    }

    /// `zero`, `black` or `blur` (an image path is the job layer's business).
    pub fn parse(s: &str, h: usize, w: usize) -> Option<Baseline> {
        match s {
            "zero" => Some(Baseline::Zero),
            "black" => Some(Baseline::Black),
            "blur" | "blurred" => Some(Baseline::blur_for(h, w)),
            _ => None,
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Baseline::Zero => "zero",
            Baseline::Black => "black",
            Baseline::Blur(_) => "blurred",
            Baseline::Image(_) => "image",
        }
    }

    /// The baseline's normalised values for input `x` (`[C, H, W]`).
    pub fn values(&self, x: &[f32], model: &Classifier) -> Result<Vec<f32>> {
        let spec = &model.card.input;
        Ok(match self {
            Baseline::Zero => vec![0.0; x.len()],
            Baseline::Black => {
                let black = PreparedImage {
                    width: spec.width,
                    height: spec.height,
                    channels: spec.channels,
                    pixels: vec![0; spec.width * spec.height * spec.channels],
                };
                imaging::normalise(&black, spec)
            }
            Baseline::Blur(sigma) => gaussian_blur(x, spec.channels, spec.height, spec.width, *sigma),
            Baseline::Image(img) => {
                if img.width != spec.width || img.height != spec.height || img.channels != spec.channels {
                    return Err(Error::invalid("the baseline image must be prepared at the model's input size"));
                }
                imaging::normalise(img, spec)
            }
        })
    }
}

/// Separable Gaussian blur of each channel (edges clamped).
///
/// # Shapes
/// - `x`: `[C, H, W]` flattened -> same
pub fn gaussian_blur(x: &[f32], c: usize, h: usize, w: usize, sigma: f32) -> Vec<f32> {
    if sigma <= 0.0 {
        return x.to_vec();
    }
    let radius = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f32> = (-radius..=radius).map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp()).collect();
    let norm: f32 = kernel.iter().sum();
    let kernel: Vec<f32> = kernel.iter().map(|k| k / norm).collect();
    let mut tmp = vec![0.0f32; x.len()];
    let mut out = vec![0.0f32; x.len()];
    let clamp = |v: isize, n: usize| v.clamp(0, n as isize - 1) as usize;
    for ch in 0..c {
        let p = ch * h * w;
        for y in 0..h {
            for xx in 0..w {
                tmp[p + y * w + xx] = kernel.iter().enumerate().map(|(k, kv)| kv * x[p + y * w + clamp(xx as isize + k as isize - radius, w)]).sum();
            }
        }
        for y in 0..h {
            for xx in 0..w {
                out[p + y * w + xx] = kernel.iter().enumerate().map(|(k, kv)| kv * tmp[p + clamp(y as isize + k as isize - radius, h) * w + xx]).sum();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blur_keeps_constants_and_mass() {
        let x = vec![2.0; 2 * 5 * 6];
        assert!(gaussian_blur(&x, 2, 5, 6, 1.5).iter().all(|v| (v - 2.0).abs() < 1e-5));
        let mut d = vec![0.0; 9 * 9];
        d[40] = 1.0;
        let b = gaussian_blur(&d, 1, 9, 9, 1.0);
        assert!((b.iter().sum::<f32>() - 1.0).abs() < 1e-3 && b[40] < 0.2);
    }
}
