//! Fooling images (Nguyen, Yosinski & Clune 2015, "Deep Neural Networks are Easily Fooled"):
//! completely artificial images that a model classifies with very high confidence. Two ways:
//!
//! - `gradient`: ascent on the target's log-probability in [0, 1] pixel space, from noise, grey
//!   or an image, with optional regularisation (L2 decay towards grey, periodic blur, random
//!   jitter: the class-visualisation tricks of Simonyan et al. 2013 and feature-visualisation
//!   work) so the result is either noise-like or shows what the class "looks like" to the model.
//!   The log-probability rather than the bare logit: raising one logit with all the others does
//!   not make the model sure.
//! - `evolve`: a black-box (mu, lambda) evolution strategy on a low-resolution pattern,
//!   upsampled to the input, needing nothing but the model's probabilities, so a model without
//!   gradients can be tested the same way.

use serde::{Deserialize, Serialize};

use super::baseline::gaussian_blur;
use super::map::SaliencyMap;
use super::pixels::{image_from_unit, log_prob_gradients, pixel_probabilities, unit_pixels};
use crate::error::{Error, Result};
use crate::imaging::PreparedImage;
use crate::models::Classifier;
use crate::progress::Progress;
use crate::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum FoolMethod {
    /// Gradient ascent on the target's log-probability.
    #[default]
    Gradient,
    /// A black-box evolution strategy on a low-resolution pattern.
    Evolve,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Regulariser {
    /// Nothing: the image stays noise-like.
    #[default]
    None,
    /// Pull every pixel a little towards grey each step.
    L2,
    /// Blur the image every few steps (smooth, blob-like shapes).
    Blur,
    /// Shift the image by a few pixels at random before each gradient (shapes that survive
    /// small moves).
    Jitter,
}

/// Where the search starts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FoolStart {
    /// Uniform random pixels (seeded).
    Noise,
    /// Every pixel 0.5.
    Grey,
    /// An image, prepared for the model.
    Image(PreparedImage),
}

impl FoolStart {
    pub fn name(&self) -> &'static str {
        match self {
            FoolStart::Noise => "noise",
            FoolStart::Grey => "grey",
            FoolStart::Image(_) => "image",
        }
    }
}

/// Largest number of steps (gradient) or generations (evolve) accepted.
pub const MAX_STEPS: usize = 100_000;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FoolParams {
    pub target: usize,
    pub method: FoolMethod,
    /// Gradient steps, or generations of the evolution strategy.
    pub steps: usize,
    pub seed: u64,
    pub regularise: Regulariser,
    /// Stop once the target's probability reaches this.
    pub confidence: f32,
    /// Gradient: the change of each pixel per step (signed gradient), in [0, 1] units.
    pub step_size: f32,
    /// Evolve: children per generation (lambda); the best quarter are the parents (mu).
    pub population: usize,
    /// Evolve: side of the low-resolution pattern (upsampled to the input).
    pub pattern: usize,
}

impl FoolParams {
    /// The defaults for `method` on a model with `side`-pixel inputs.
    pub fn new(target: usize, method: FoolMethod, side: usize) -> FoolParams {
        FoolParams {
            target,
            method,
            steps: match method {
                FoolMethod::Gradient => 500,
                FoolMethod::Evolve => 300,
            },
            seed: 0,
            regularise: Regulariser::None,
            confidence: 0.99,
            step_size: 2.0 / 255.0,
            population: 64,
            pattern: (side / 4).clamp(4, 16),
        }
    }

    pub fn validate(&self, k: usize) -> Result<()> {
        if self.target >= k {
            return Err(Error::invalid(format!("target class {} is out of range: the model has {k} classes (0..{})", self.target, k.saturating_sub(1))));
        }
        if self.steps == 0 || self.steps > MAX_STEPS {
            return Err(Error::invalid(format!("steps must be in 1..={MAX_STEPS}")));
        }
        if !(self.confidence > 0.0 && self.confidence <= 1.0) {
            return Err(Error::invalid(format!("the confidence to stop at ({}) must be in (0, 1]", self.confidence)));
        }
        if !(self.step_size > 0.0 && self.step_size <= 1.0) {
            return Err(Error::invalid(format!("the step size ({}) must be in (0, 1]", self.step_size)));
        }
        if self.method == FoolMethod::Evolve && !(4..=4096).contains(&self.population) {
            return Err(Error::invalid("the population must be between 4 and 4096"));
        }
        if self.method == FoolMethod::Evolve && !(1..=64).contains(&self.pattern) {
            return Err(Error::invalid("the pattern side must be between 1 and 64 pixels"));
        }
        Ok(())
    }
}

/// One step of the search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FoolStep {
    pub step: usize,
    pub target_probability: f32,
    pub top1: usize,
}

/// The fooling image and how it came about.
#[derive(Clone, Debug, Serialize)]
pub struct FoolResult {
    /// The image as saved (8-bit pixels), and the same in [0, 1], `[C, H, W]`.
    #[serde(skip)]
    pub image: PreparedImage,
    #[serde(skip)]
    pub pixels: Vec<f32>,
    pub start_probability: f32,
    /// The target's probability for the saved (8-bit) image.
    pub target_probability: f32,
    pub top1: usize,
    pub top1_probability: f32,
    pub steps: usize,
    pub reached: bool,
    pub trajectory: Vec<FoolStep>,
    pub seconds: f64,
}

fn argmax(p: &[f32]) -> usize {
    crate::metrics::argmax(p)
}

/// The start pixels, `[C, H, W]` in [0, 1].
fn start_pixels(model: &Classifier, start: &FoolStart, rng: &mut Rng) -> Result<Vec<f32>> {
    let spec = &model.card.input;
    let n = spec.channels * spec.height * spec.width;
    Ok(match start {
        FoolStart::Noise => (0..n).map(|_| (rng.below(256) as f32) / 255.0).collect(),
        FoolStart::Grey => vec![0.5; n],
        FoolStart::Image(img) => {
            model.check_prepared(img)?;
            unit_pixels(img)
        }
    })
}

/// `x` moved by (dy, dx) pixels with wrap-around (jitter), per channel.
fn roll(x: &[f32], c: usize, h: usize, w: usize, dy: isize, dx: isize) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for ch in 0..c {
        for y in 0..h {
            let sy = (y as isize - dy).rem_euclid(h as isize) as usize;
            for xx in 0..w {
                let sx = (xx as isize - dx).rem_euclid(w as isize) as usize;
                out[ch * h * w + y * w + xx] = x[ch * h * w + sy * w + sx];
            }
        }
    }
    out
}

/// Search for an image the model assigns `params.target` with at least `params.confidence`.
/// `on_step` sees every step and the current pixels (`[C, H, W]`, [0, 1]).
pub fn fool(
    model: &Classifier,
    start: &FoolStart,
    params: &FoolParams,
    progress: Progress<'_>,
    on_step: &mut dyn FnMut(&FoolStep, &[f32]),
) -> Result<FoolResult> {
    params.validate(model.num_classes())?;
    let started = std::time::Instant::now();
    let mut rng = Rng::new(params.seed);
    let x0 = start_pixels(model, start, &mut rng)?;
    let p0 = pixel_probabilities(model, &x0, 1)?.remove(0);
    let start_probability = p0[params.target];
    let (x, trajectory) = match params.method {
        FoolMethod::Gradient => ascend(model, x0, params, &mut rng, progress, on_step)?,
        FoolMethod::Evolve => evolve(model, &x0, params, &mut rng, progress, on_step)?,
    };
    // what a saved PNG holds: 8-bit pixels
    let spec = &model.card.input;
    let image = image_from_unit(&x, spec.channels, spec.height, spec.width);
    let pixels = unit_pixels(&image);
    let p = pixel_probabilities(model, &pixels, 1)?.remove(0);
    let top1 = argmax(&p);
    Ok(FoolResult {
        image,
        pixels,
        start_probability,
        target_probability: p[params.target],
        top1,
        top1_probability: p[top1],
        steps: trajectory.last().map(|s| s.step).unwrap_or(0),
        reached: p[params.target] >= params.confidence,
        trajectory,
        seconds: started.elapsed().as_secs_f64(),
    })
}

type Search = (Vec<f32>, Vec<FoolStep>);

fn ascend(
    model: &Classifier,
    mut x: Vec<f32>,
    params: &FoolParams,
    rng: &mut Rng,
    progress: Progress<'_>,
    on_step: &mut dyn FnMut(&FoolStep, &[f32]),
) -> Result<Search> {
    let spec = &model.card.input;
    let (c, h, w) = (spec.channels, spec.height, spec.width);
    let jitter = (h.min(w) / 14).max(1) as isize;
    let mut trajectory = Vec::new();
    for step in 0..=params.steps {
        progress.check()?;
        let (dy, dx) = if params.regularise == Regulariser::Jitter {
            (rng.below(2 * jitter as usize + 1) as isize - jitter, rng.below(2 * jitter as usize + 1) as isize - jitter)
        } else {
            (0, 0)
        };
        let shifted = if (dy, dx) == (0, 0) { x.clone() } else { roll(&x, c, h, w, dy, dx) };
        let (g, _, logits) = log_prob_gradients(model, &shifted, &[params.target])?;
        // the probability of the image itself (a jittered copy can differ)
        let probs = if (dy, dx) == (0, 0) { crate::predict::softmax(&logits[0]) } else { pixel_probabilities(model, &x, 1)?.remove(0) };
        let s = FoolStep { step, target_probability: probs[params.target], top1: argmax(&probs) };
        on_step(&s, &x);
        progress.report(step, params.steps);
        let done = s.target_probability >= params.confidence || step == params.steps;
        trajectory.push(s);
        if done {
            break;
        }
        if step == 0 && g.iter().all(|v| *v == 0.0) {
            return Err(Error::invalid("the model gives no gradient with respect to its input here: use --method evolve, which needs only its probabilities"));
        }
        let g = if (dy, dx) == (0, 0) { g } else { roll(&g, c, h, w, -dy, -dx) };
        for (v, gv) in x.iter_mut().zip(&g) {
            let sign = if *gv > 0.0 {
                1.0
            } else if *gv < 0.0 {
                -1.0
            } else {
                0.0
            };
            *v += params.step_size * sign;
        }
        match params.regularise {
            Regulariser::L2 => x.iter_mut().for_each(|v| *v -= 0.02 * (*v - 0.5)),
            Regulariser::Blur if step % 4 == 3 => x = gaussian_blur(&x, c, h, w, 0.5),
            _ => {}
        }
        x.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
    }
    Ok((x, trajectory))
}

/// The pattern brought to the input size (bilinear), `[C, H, W]`.
fn upsample(pattern: &[f32], c: usize, s: usize, h: usize, w: usize) -> Vec<f32> {
    SaliencyMap::new(c, s, s, pattern.to_vec()).upsample_bilinear(h, w).values
}

/// The image brought down to an `s` x `s` pattern (area average).
fn downsample(x: &[f32], c: usize, h: usize, w: usize, s: usize) -> Vec<f32> {
    let mut out = vec![0.0; c * s * s];
    let mut n = vec![0usize; c * s * s];
    for ch in 0..c {
        for y in 0..h {
            for xx in 0..w {
                let i = ch * s * s + (y * s / h) * s + xx * s / w;
                out[i] += x[ch * h * w + y * w + xx];
                n[i] += 1;
            }
        }
    }
    out.iter().zip(&n).map(|(v, &k)| v / k.max(1) as f32).collect()
}

fn evolve(
    model: &Classifier,
    x0: &[f32],
    params: &FoolParams,
    rng: &mut Rng,
    progress: Progress<'_>,
    on_step: &mut dyn FnMut(&FoolStep, &[f32]),
) -> Result<Search> {
    let spec = &model.card.input;
    let (c, h, w) = (spec.channels, spec.height, spec.width);
    let s = params.pattern.min(h.min(w));
    let lambda = params.population;
    let mu = (lambda / 4).max(1);
    let mut parent = downsample(x0, c, h, w, s);
    let mut sigma = 0.3f32;
    let mut best = (f32::NEG_INFINITY, upsample(&parent, c, s, h, w));
    let mut trajectory = Vec::new();
    let batch = 64.min(lambda);
    for generation in 0..=params.steps {
        progress.check()?;
        let children: Vec<Vec<f32>> = (0..lambda)
            .map(|i| {
                if i == 0 {
                    parent.clone() // elitism: the mean itself competes
                } else {
                    parent.iter().map(|v| (v + sigma * rng.normal() as f32).clamp(0.0, 1.0)).collect()
                }
            })
            .collect();
        let images: Vec<Vec<f32>> = children.iter().map(|ch| upsample(ch, c, s, h, w)).collect();
        let mut scores = Vec::with_capacity(lambda);
        for chunk in images.chunks(batch) {
            let flat: Vec<f32> = chunk.concat();
            for p in pixel_probabilities(model, &flat, chunk.len())? {
                scores.push((p[params.target].max(1e-30).ln(), p[params.target], argmax(&p)));
            }
        }
        let mut order: Vec<usize> = (0..lambda).collect();
        order.sort_by(|&a, &b| scores[b].0.total_cmp(&scores[a].0));
        let top = order[0];
        if scores[top].0 > best.0 {
            best = (scores[top].0, images[top].clone());
        }
        let st = FoolStep { step: generation, target_probability: best.0.exp(), top1: scores[top].2 };
        on_step(&st, &best.1);
        progress.report(generation, params.steps);
        let done = st.target_probability >= params.confidence || generation == params.steps;
        trajectory.push(st);
        if done {
            break;
        }
        // recombination: the mean of the mu best, weighted by rank
        let weights: Vec<f32> = (0..mu).map(|r| ((mu as f32 + 0.5).ln() - (r as f32 + 1.0).ln()).max(0.0)).collect();
        let total: f32 = weights.iter().sum();
        parent = (0..parent.len()).map(|j| order[..mu].iter().zip(&weights).map(|(&i, &wt)| children[i][j] * wt).sum::<f32>() / total).collect();
        sigma = (sigma * 0.985).max(0.02);
    }
    Ok((best.1, trajectory))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roll_and_back_is_the_identity() {
        let x: Vec<f32> = (0..2 * 3 * 4).map(|v| v as f32).collect();
        let y = roll(&x, 2, 3, 4, 1, -2);
        assert_ne!(x, y);
        assert_eq!(roll(&y, 2, 3, 4, -1, 2), x);
    }

    #[test]
    fn a_pattern_survives_down_and_up_sampling_when_constant() {
        let x = vec![0.25f32; 3 * 28 * 28];
        let p = downsample(&x, 3, 28, 28, 7);
        assert!(p.iter().all(|v| (v - 0.25).abs() < 1e-6));
        assert!(upsample(&p, 3, 7, 28, 28).iter().all(|v| (v - 0.25).abs() < 1e-6));
    }
}
