//! SmoothGrad (the mean of gradients under input noise) and VarGrad (their variance), seeded.

use serde::{Deserialize, Serialize};

use super::gradients::target_gradients;
use super::SaliencyMap;
use crate::error::{Error, Result};
use crate::models::Classifier;
use crate::progress::Progress;
use crate::rng::Rng;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoiseParams {
    pub samples: usize,
    /// Noise sigma as a fraction of the input's range (max - min).
    pub noise: f32,
    pub seed: u64,
    pub batch_size: usize,
}

impl Default for NoiseParams {
    fn default() -> Self {
        NoiseParams { samples: 25, noise: 0.15, seed: 0, batch_size: 8 }
    }
}

/// Both statistics of the noisy gradients.
pub struct NoisyGradients {
    pub mean: SaliencyMap,
    pub variance: SaliencyMap,
}

pub fn noisy_gradients(model: &Classifier, x: &[f32], target: usize, params: &NoiseParams, progress: Progress<'_>) -> Result<NoisyGradients> {
    if params.samples == 0 || params.batch_size == 0 {
        return Err(Error::invalid("SmoothGrad needs at least 1 sample and a batch size of at least 1"));
    }
    if !(params.noise >= 0.0 && params.noise.is_finite()) {
        return Err(Error::invalid("the noise level must be a non-negative number"));
    }
    let spec = &model.card.input;
    let (lo, hi) = x.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let sigma = params.noise * (hi - lo);
    let mut rng = Rng::new(params.seed);
    let n = x.len();
    let mut sum = vec![0.0f64; n];
    let mut sum_sq = vec![0.0f64; n];
    let mut done = 0;
    while done < params.samples {
        progress.check()?;
        let b = params.batch_size.min(params.samples - done);
        let mut xs = Vec::with_capacity(b * n);
        for _ in 0..b {
            xs.extend(x.iter().map(|&v| v + sigma * rng.normal() as f32));
        }
        let (g, _) = target_gradients(model, xs, &vec![target; b])?;
        for k in 0..b {
            for i in 0..n {
                let v = g[k * n + i] as f64;
                sum[i] += v;
                sum_sq[i] += v * v;
            }
        }
        done += b;
        progress.report(done, params.samples);
    }
    let m = params.samples as f64;
    let mean: Vec<f32> = sum.iter().map(|s| (s / m) as f32).collect();
    let variance: Vec<f32> = sum.iter().zip(&sum_sq).map(|(s, q)| ((q / m) - (s / m).powi(2)).max(0.0) as f32).collect();
    Ok(NoisyGradients {
        mean: SaliencyMap::new(spec.channels, spec.height, spec.width, mean),
        variance: SaliencyMap::new(spec.channels, spec.height, spec.width, variance),
    })
}
