//! Adversarial examples: FGSM (Goodfellow et al., the panda that becomes a gibbon) and PGD
//! (Madry et al.), with epsilon in pixel space [0, 1], untargeted or targeted.

use serde::{Deserialize, Serialize};

use super::pixels::{image_from_unit, log_prob_gradients, unit_pixels};
use crate::error::{Error, Result};
use crate::imaging::PreparedImage;
use crate::models::Classifier;
use crate::predict::{ClassScore, top_k};
use crate::progress::Progress;
use crate::rng::Rng;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttackParams {
    /// Largest change of any pixel, in [0, 1] (2/255 is invisible).
    pub epsilon: f32,
    /// PGD iterations (FGSM is one step of size epsilon).
    pub steps: usize,
    /// PGD step size in [0, 1] pixel units.
    pub step_size: f32,
    /// Push towards this class instead of away from the current one.
    pub target_class: Option<usize>,
    /// PGD: start from a random point in the epsilon ball.
    pub random_start: bool,
    pub seed: u64,
}

impl Default for AttackParams {
    fn default() -> Self {
        AttackParams::pgd(Self::DEFAULT_EPSILON, Self::DEFAULT_STEPS)
    }
}

impl AttackParams {
    /// 2 of 255 levels: invisible, and enough to turn most ImageNet predictions.
    pub const DEFAULT_EPSILON: f32 = 2.0 / 255.0;
    pub const DEFAULT_STEPS: usize = 10;
    /// Largest number of PGD iterations accepted.
    pub const MAX_STEPS: usize = 10_000;

    /// FGSM: one step of size epsilon.
    pub fn fgsm(epsilon: f32) -> AttackParams {
        AttackParams { epsilon, steps: 1, step_size: epsilon, target_class: None, random_start: false, seed: 0 }
    }

    /// PGD with Madry et al.'s rule of thumb for the step: a quarter of epsilon (at least a
    /// quarter of one level), so `steps` steps can cross the ball and come back.
    pub fn pgd(epsilon: f32, steps: usize) -> AttackParams {
        AttackParams { epsilon, steps, step_size: Self::pgd_step(epsilon), target_class: None, random_start: false, seed: 0 }
    }

    /// The default PGD step for an epsilon.
    pub fn pgd_step(epsilon: f32) -> f32 {
        (epsilon / 4.0).max(0.25 / 255.0)
    }
}

/// The attack's result: the adversarial image (rounded to 8-bit pixels, exactly what a saved
/// PNG holds), the perturbation, and the predictions before and after.
#[derive(Clone, Debug, Serialize)]
pub struct AdversarialResult {
    #[serde(skip)]
    pub image: PreparedImage,
    /// Adversarial pixels in [0, 1], `[C, H, W]` flattened.
    #[serde(skip)]
    pub pixels: Vec<f32>,
    /// Adversarial minus original, in [0, 1] pixel units, `[C, H, W]` flattened.
    #[serde(skip)]
    pub perturbation: Vec<f32>,
    pub top_before: Vec<ClassScore>,
    pub top_after: Vec<ClassScore>,
    pub linf: f32,
    pub changed_top1: bool,
}

fn loss_gradient(model: &Classifier, p: &[f32], class: usize) -> Result<Vec<f32>> {
    // d(cross-entropy)/dp = -d(log p(class))/dp
    let (g, _, _) = log_prob_gradients(model, p, &[class])?;
    Ok(g.iter().map(|v| -v).collect())
}

/// FGSM when `steps == 1` and `step_size == epsilon`, PGD otherwise.
pub fn attack(model: &Classifier, img: &PreparedImage, params: &AttackParams, top: usize, progress: Progress<'_>) -> Result<AdversarialResult> {
    if !(params.epsilon > 0.0 && params.epsilon <= 1.0) {
        return Err(Error::invalid(format!("epsilon {} must be in (0, 1] (pixel space)", params.epsilon)));
    }
    if params.steps == 0 || !(params.step_size > 0.0 && params.step_size.is_finite()) {
        return Err(Error::invalid("the attack needs at least 1 step and a positive step size"));
    }
    if params.steps > AttackParams::MAX_STEPS {
        return Err(Error::invalid(format!("{} attack steps is more than the {} allowed", params.steps, AttackParams::MAX_STEPS)));
    }
    let k = model.num_classes();
    if let Some(t) = params.target_class
        && t >= k
    {
        return Err(Error::invalid(format!("target class {t} is out of range: the model has {k} classes (0..{})", k - 1)));
    }
    let before = model.logits(model.input_batch(&[img])?)?.remove(0);
    let top_before = top_k(&before, top, &model.card.classes);
    let source = top_before[0].class_index;
    let p0 = unit_pixels(img);
    let spec = &model.card.input;
    let mut p = p0.clone();
    if params.random_start && params.steps > 1 {
        let mut rng = Rng::new(params.seed);
        for v in p.iter_mut() {
            *v = (*v + params.epsilon * (2.0 * rng.next_f64() as f32 - 1.0)).clamp(0.0, 1.0);
        }
    }
    for step in 0..params.steps {
        progress.check()?;
        let (class, direction) = match params.target_class {
            Some(t) => (t, -1.0f32),
            None => (source, 1.0f32),
        };
        let g = loss_gradient(model, &p, class)?;
        for ((v, &orig), gv) in p.iter_mut().zip(&p0).zip(&g) {
            let s = if *gv > 0.0 {
                1.0
            } else if *gv < 0.0 {
                -1.0
            } else {
                0.0
            };
            *v = (*v + direction * params.step_size * s).clamp(orig - params.epsilon, orig + params.epsilon).clamp(0.0, 1.0);
        }
        progress.report(step + 1, params.steps);
    }
    let image = image_from_unit(&p, spec.channels, spec.height, spec.width);
    let pixels = unit_pixels(&image);
    let perturbation: Vec<f32> = pixels.iter().zip(&p0).map(|(a, b)| a - b).collect();
    let linf = perturbation.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let after = model.logits(model.input_batch(&[&image])?)?.remove(0);
    let top_after = top_k(&after, top, &model.card.classes);
    Ok(AdversarialResult { changed_top1: top_after[0].class_index != source, image, pixels, perturbation, top_before, top_after, linf })
}
