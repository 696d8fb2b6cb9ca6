//! How trickable is a model? Accuracy against the attack budget epsilon over a labelled set:
//! every image is attacked (FGSM or PGD, untargeted, on its true label) at each epsilon, in
//! batches. An image counts as fooled at epsilon once any attack within that budget changed its
//! answer (an attack at a smaller epsilon is also one within a larger one), so the curve starts at
//! the clean accuracy and never rises.

use serde::{Deserialize, Serialize};

use super::adversarial::AttackParams;
use super::pixels::{image_from_unit, log_prob_gradients, pixel_probabilities, unit_pixels};
use crate::data::LabelledImages;
use crate::error::{Error, Result};
use crate::metrics::argmax;
use crate::models::Classifier;
use crate::progress::Progress;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum AttackKind {
    /// One step of size epsilon.
    #[default]
    Fgsm,
    /// Projected gradient descent: `steps` steps of epsilon / 4 inside the ball.
    Pgd,
}

impl AttackKind {
    /// The attack's usual name: "FGSM", "PGD".
    pub fn title(self) -> &'static str {
        match self {
            AttackKind::Fgsm => "FGSM",
            AttackKind::Pgd => "PGD",
        }
    }
}

/// At most this many epsilons in one curve.
pub const MAX_EPSILONS: usize = 64;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RobustnessParams {
    pub attack: AttackKind,
    /// Budgets in [0, 1] pixel units (sorted ascending before use).
    pub epsilons: Vec<f32>,
    /// PGD iterations.
    pub steps: usize,
    /// Images attacked per pass.
    pub batch_size: usize,
}

impl RobustnessParams {
    pub fn validate(&self) -> Result<()> {
        if self.epsilons.is_empty() || self.epsilons.len() > MAX_EPSILONS {
            return Err(Error::invalid(format!("give 1 to {MAX_EPSILONS} epsilons")));
        }
        if let Some(e) = self.epsilons.iter().find(|e| !(e.is_finite() && **e >= 0.0 && **e <= 1.0)) {
            return Err(Error::invalid(format!("epsilon {e} must be a number in [0, 1] (pixel space: 2/255 = 0.0078)")));
        }
        if self.steps == 0 || self.steps > AttackParams::MAX_STEPS {
            return Err(Error::invalid(format!("the attack needs 1..={} steps", AttackParams::MAX_STEPS)));
        }
        if self.batch_size == 0 || self.batch_size > 4096 {
            return Err(Error::invalid("the batch size must be between 1 and 4096"));
        }
        Ok(())
    }
}

/// One point of the curve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub epsilon: f32,
    pub accuracy: f64,
    /// Images whose answer changed from the clean one within this budget.
    pub flipped: usize,
    /// Mean top-1 probability of the images as attacked at this budget.
    pub mean_confidence: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RobustnessReport {
    pub attack: AttackKind,
    pub images: usize,
    pub clean_accuracy: f64,
    pub curve: Vec<CurvePoint>,
    /// Per image: the smallest budget that changed its answer (`None`: none did).
    pub flip_epsilon: Vec<Option<f32>>,
    pub seconds: f64,
}

impl RobustnessReport {
    /// The images that flip at the smallest budget, most fragile first (at most `n`).
    pub fn most_fragile(&self, n: usize) -> Vec<(usize, f32)> {
        let mut v: Vec<(usize, f32)> = self.flip_epsilon.iter().enumerate().filter_map(|(i, e)| e.map(|e| (i, e))).collect();
        v.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }
}

/// Untargeted FGSM / PGD on a batch of [0, 1] pixel images and their labels.
///
/// # Shapes
/// - `p0`: `[B, C, H, W]` flattened -> the attacked images, same shape
fn attack_batch(model: &Classifier, p0: &[f32], labels: &[usize], attack: AttackKind, epsilon: f32, steps: usize) -> Result<Vec<f32>> {
    let (n_steps, step) = match attack {
        AttackKind::Fgsm => (1, epsilon),
        AttackKind::Pgd => (steps, AttackParams::pgd_step(epsilon)),
    };
    let mut p = p0.to_vec();
    for _ in 0..n_steps {
        // ascend the loss = descend the true label's log-probability
        let (g, _, _) = log_prob_gradients(model, &p, labels)?;
        for ((v, &orig), gv) in p.iter_mut().zip(p0).zip(&g) {
            let s = if *gv > 0.0 {
                -1.0
            } else if *gv < 0.0 {
                1.0
            } else {
                0.0
            };
            *v = (*v + step * s).clamp(orig - epsilon, orig + epsilon).clamp(0.0, 1.0);
        }
    }
    Ok(p)
}

/// Accuracy against epsilon over `set` (its images prepared for `model`).
pub fn robustness(model: &Classifier, set: &LabelledImages, params: &RobustnessParams, progress: Progress<'_>) -> Result<RobustnessReport> {
    params.validate()?;
    if set.is_empty() {
        return Err(Error::invalid("the data set holds no images"));
    }
    let spec = &model.card.input;
    if (set.channels, set.height, set.width) != (spec.channels, spec.height, spec.width) {
        return Err(Error::invalid("the images are not prepared for this model"));
    }
    let started = std::time::Instant::now();
    let mut eps = params.epsilons.clone();
    eps.sort_by(f32::total_cmp);
    eps.dedup();
    let n = set.len();
    let mut clean_pred = vec![0usize; n];
    let mut flip_epsilon: Vec<Option<f32>> = vec![None; n];
    // correct[e][i]: image i still right at budget e; conf sums per budget
    let mut correct = vec![vec![false; n]; eps.len()];
    let mut conf_sum = vec![0.0f64; eps.len()];
    let idx: Vec<usize> = (0..n).collect();
    let mut done = 0;
    for chunk in idx.chunks(params.batch_size) {
        let b = chunk.len();
        let mut p0 = Vec::with_capacity(b * set.image_len());
        for &i in chunk {
            p0.extend(unit_pixels(&set.image(i)));
        }
        let labels: Vec<usize> = chunk.iter().map(|&i| set.labels[i]).collect();
        let clean = pixel_probabilities(model, &p0, b)?;
        let preds: Vec<usize> = clean.iter().map(|p| argmax(p)).collect();
        for (k, &i) in chunk.iter().enumerate() {
            clean_pred[i] = preds[k];
        }
        let mut fooled = vec![false; b];
        for (e, &epsilon) in eps.iter().enumerate() {
            progress.check()?;
            let probs = if epsilon == 0.0 {
                clean.clone()
            } else {
                let adv = attack_batch(model, &p0, &labels, params.attack, epsilon, params.steps)?;
                // what a saved image would hold: 8-bit pixels
                let mut q = Vec::with_capacity(adv.len());
                for img in adv.chunks(set.image_len()) {
                    q.extend(unit_pixels(&image_from_unit(img, spec.channels, spec.height, spec.width)));
                }
                pixel_probabilities(model, &q, b)?
            };
            for (k, &i) in chunk.iter().enumerate() {
                let pred = argmax(&probs[k]);
                if pred != preds[k] && !fooled[k] {
                    fooled[k] = true;
                    flip_epsilon[i] = Some(epsilon);
                }
                correct[e][i] = preds[k] == labels[k] && !fooled[k];
                conf_sum[e] += probs[k][pred] as f64;
            }
        }
        done += b;
        progress.report(done, n);
    }
    let curve = eps
        .iter()
        .enumerate()
        .map(|(e, &epsilon)| CurvePoint {
            epsilon,
            accuracy: correct[e].iter().filter(|c| **c).count() as f64 / n as f64,
            flipped: flip_epsilon.iter().filter(|f| f.is_some_and(|x| x <= epsilon)).count(),
            mean_confidence: conf_sum[e] / n as f64,
        })
        .collect();
    let clean_accuracy = (0..n).filter(|&i| clean_pred[i] == set.labels[i]).count() as f64 / n as f64;
    Ok(RobustnessReport { attack: params.attack, images: n, clean_accuracy, curve, flip_epsilon, seconds: started.elapsed().as_secs_f64() })
}
