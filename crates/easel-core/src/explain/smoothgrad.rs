//! SmoothGrad and VarGrad as Captum's `NoiseTunnel`: a base attribution (|gradient| by
//! default, as `NoiseTunnel(Saliency)`; or the signed gradient, gradient x input, integrated
//! gradients) computed on noisy copies of the input, then averaged (`smoothgrad`) or its
//! variance taken (`vargrad`). Seeded.

use serde::{Deserialize, Serialize};

use super::SaliencyMap;
use super::gradients::target_gradients;
use super::integrated::{IgParams, integrated_gradients};
use crate::error::{Error, Result};
use crate::models::Classifier;
use crate::parallel::{batch_ranges, ordered_chunks, workers_for};
use crate::progress::Progress;
use crate::rng::Rng;

/// The attribution the noise tunnel averages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum NoiseBase {
    /// |d logit / d x| (Captum's `Saliency`, abs=True).
    #[default]
    Saliency,
    /// The signed gradient (`Saliency(abs=False)`).
    Gradient,
    /// Gradient x input, on the noisy input (`InputXGradient`).
    GradXInput,
    /// Integrated gradients from a zero baseline (`IntegratedGradients`).
    Ig,
}

impl NoiseBase {
    pub const ALL: [NoiseBase; 4] = [NoiseBase::Saliency, NoiseBase::Gradient, NoiseBase::GradXInput, NoiseBase::Ig];

    pub fn is_signed(self) -> bool {
        !matches!(self, NoiseBase::Saliency)
    }

    pub fn title(self) -> &'static str {
        match self {
            NoiseBase::Saliency => "|gradient|",
            NoiseBase::Gradient => "signed gradient",
            NoiseBase::GradXInput => "gradient x input",
            NoiseBase::Ig => "integrated gradients",
        }
    }
}

/// How the noisy attributions are combined (Captum's `nt_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoiseTunnelType {
    Smoothgrad,
    SmoothgradSq,
    Vargrad,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NoiseParams {
    pub samples: usize,
    /// Noise sigma as a fraction of the input's range (max - min), as in the SmoothGrad paper;
    /// Captum's `stdevs` is this times the range (see [`noise_sigma`]).
    pub noise: f32,
    pub seed: u64,
    /// Noisy copies per backward pass (Captum's `nt_samples_batch_size`).
    pub batch_size: usize,
    pub base: NoiseBase,
    /// Steps of integrated gradients when the base is IG.
    pub ig_steps: usize,
}

impl Default for NoiseParams {
    fn default() -> Self {
        NoiseParams { samples: 25, noise: 0.15, seed: 0, batch_size: 8, base: NoiseBase::Saliency, ig_steps: 16 }
    }
}

/// Largest number of noisy samples accepted.
pub const MAX_SAMPLES: usize = 10_000;

impl NoiseParams {
    pub fn validate(&self) -> Result<()> {
        if self.samples == 0 || self.batch_size == 0 {
            return Err(Error::invalid("SmoothGrad needs at least 1 sample and a batch size of at least 1"));
        }
        if self.samples > MAX_SAMPLES {
            return Err(Error::invalid(format!("{} noisy samples is more than the {MAX_SAMPLES} allowed", self.samples)));
        }
        if !(self.noise >= 0.0 && self.noise.is_finite()) {
            return Err(Error::invalid("the noise level must be a non-negative number"));
        }
        if self.base == NoiseBase::Ig && self.ig_steps == 0 {
            return Err(Error::invalid("integrated gradients inside the noise tunnel needs at least 1 step"));
        }
        if self.base == NoiseBase::Ig && self.samples.saturating_mul(self.ig_steps) > MAX_SAMPLES * 10 {
            return Err(Error::invalid(format!(
                "{} samples x {} IG steps is {} backward passes, more than the {} allowed",
                self.samples,
                self.ig_steps,
                self.samples.saturating_mul(self.ig_steps),
                MAX_SAMPLES * 10
            )));
        }
        Ok(())
    }
}

/// The absolute noise sigma (Captum's `stdevs`) for a normalised input: `noise * (max - min)`.
pub fn noise_sigma(x: &[f32], noise: f32) -> f32 {
    let (lo, hi) = x.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    if lo.is_finite() && hi.is_finite() { noise * (hi - lo) } else { 0.0 }
}

/// The noise tunnel with seeded Gaussian noise of sigma [`noise_sigma`].
pub fn noise_tunnel(model: &Classifier, x: &[f32], target: usize, params: &NoiseParams, nt: NoiseTunnelType, progress: Progress<'_>) -> Result<SaliencyMap> {
    params.validate()?;
    let sigma = noise_sigma(x, params.noise);
    let n = x.len();
    // sample i's noise is the stream's values from its (i * n)-th normal (two draws each):
    // one stream, whichever thread draws which sample
    let noise = |i: usize| {
        let mut rng = Rng::new(params.seed).skip(2 * (i * n) as u64);
        (0..n).map(|_| sigma * rng.normal() as f32).collect::<Vec<f32>>()
    };
    noise_tunnel_with(model, x, target, params, nt, &noise, progress)
}

/// The noise tunnel with the caller's noise: `noise(i)` is sample i's noise, `[C, H, W]`
/// flattened (tests feed Captum's own noise through here).
pub fn noise_tunnel_with(
    model: &Classifier,
    x: &[f32],
    target: usize,
    params: &NoiseParams,
    nt: NoiseTunnelType,
    noise: &(dyn Fn(usize) -> Vec<f32> + Sync),
    progress: Progress<'_>,
) -> Result<SaliencyMap> {
    params.validate()?;
    let spec = &model.card.input;
    let n = x.len();
    let mut sum = vec![0.0f64; n];
    let mut sum_sq = vec![0.0f64; n];
    let mut add = |attr: &[f32]| {
        for i in 0..n {
            let v = attr[i] as f64;
            sum[i] += v;
            sum_sq[i] += v * v;
        }
    };
    // sample i's noisy input
    let noisy = |i: usize| -> Result<Vec<f32>> {
        let e = noise(i);
        if e.len() != n {
            return Err(Error::Compute(format!("noise of {} values for an input of {n}", e.len())));
        }
        Ok(x.iter().zip(&e).map(|(v, d)| v + d).collect())
    };
    if params.base == NoiseBase::Ig {
        // one integrated-gradients run per sample; each runs its path points in parallel
        for done in 0..params.samples {
            progress.check()?;
            let xs = noisy(done)?;
            let p = IgParams { steps: params.ig_steps, internal_batch_size: params.batch_size, ..IgParams::default() };
            let r = integrated_gradients(model, &xs, target, &p, progress.without_report())?;
            add(&r.map.values);
            progress.report(done + 1, params.samples);
        }
    } else {
        // each chunk draws its own samples' noise, on its worker
        let chunks = batch_ranges(params.samples, params.batch_size);
        let base = params.base;
        let inputs_of = |c: usize| -> Result<Vec<f32>> { chunks[c].clone().map(&noisy).collect::<Result<Vec<_>>>().map(|v| v.concat()) };
        let attributions = |c: usize| -> Result<Vec<f32>> {
            let xs = inputs_of(c)?;
            let count = xs.len() / n;
            let (g, _) = target_gradients(model, xs.clone(), &vec![target; count])?;
            Ok(match base {
                NoiseBase::Saliency => g.iter().map(|v| v.abs()).collect(),
                NoiseBase::Gradient => g,
                _ => g.iter().zip(&xs).map(|(a, b)| a * b).collect(),
            })
        };
        let mut done = 0;
        ordered_chunks(workers_for(&model.device), chunks.len(), progress, &attributions, &mut |_, attr| {
            for a in attr.chunks(n) {
                add(a);
                done += 1;
            }
            progress.report(done, params.samples);
            Ok(())
        })?;
    }
    let m = params.samples as f64;
    let values: Vec<f32> = match nt {
        NoiseTunnelType::Smoothgrad => sum.iter().map(|s| (s / m) as f32).collect(),
        NoiseTunnelType::SmoothgradSq => sum_sq.iter().map(|q| (q / m) as f32).collect(),
        NoiseTunnelType::Vargrad => sum.iter().zip(&sum_sq).map(|(s, q)| ((q / m) - (s / m).powi(2)) as f32).collect(),
    };
    Ok(SaliencyMap::new(spec.channels, spec.height, spec.width, values))
}
