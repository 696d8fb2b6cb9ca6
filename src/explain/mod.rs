//! Every explanation easel computes, behind one entry point ([`explain`]) that the CLI's
//! `easel explain` and the GUI's Explain view both call.

pub mod adversarial;
pub mod baseline;
pub mod gradcam;
pub mod gradients;
pub mod integrated;
pub mod map;
pub mod occlusion;
pub mod sanity;
pub mod smoothgrad;

use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use adversarial::{AdversarialResult, AttackParams};
pub use baseline::Baseline;
pub use integrated::{IgMethod, IgParams};
pub use map::SaliencyMap;
pub use occlusion::{Fill, OcclusionParams, Roi};
pub use smoothgrad::NoiseParams;

use crate::error::{Error, Result};
use crate::imaging::{self, PreparedImage};
use crate::models::Classifier;
use crate::progress::Progress;

/// A method and its settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "method", content = "params")]
pub enum Method {
    Occlusion(OcclusionParams),
    Saliency,
    Gradient,
    GradXInput,
    Ig(IgParams),
    Smoothgrad(NoiseParams),
    Vargrad(NoiseParams),
    /// Grad-CAM at a stage (`None`: the last convolutional one).
    Gradcam { stage: Option<usize> },
    Fgsm(AttackParams),
    Pgd(AttackParams),
}

/// The method names the CLI and the GUI use.
pub const METHOD_NAMES: [&str; 10] = [
    "occlusion", "saliency", "gradient", "grad-x-input", "ig", "smoothgrad", "vargrad", "gradcam", "fgsm", "pgd",
];

impl Method {
    pub fn name(&self) -> &'static str {
        match self {
            Method::Occlusion(_) => "occlusion",
            Method::Saliency => "saliency",
            Method::Gradient => "gradient",
            Method::GradXInput => "grad-x-input",
            Method::Ig(_) => "ig",
            Method::Smoothgrad(_) => "smoothgrad",
            Method::Vargrad(_) => "vargrad",
            Method::Gradcam { .. } => "gradcam",
            Method::Fgsm(_) => "fgsm",
            Method::Pgd(_) => "pgd",
        }
    }

    /// A human title.
    pub fn title(&self) -> &'static str {
        match self {
            Method::Occlusion(_) => "Occlusion",
            Method::Saliency => "Saliency (|gradient|)",
            Method::Gradient => "Gradient (signed)",
            Method::GradXInput => "Gradient x input",
            Method::Ig(_) => "Integrated gradients",
            Method::Smoothgrad(_) => "SmoothGrad",
            Method::Vargrad(_) => "VarGrad",
            Method::Gradcam { .. } => "Grad-CAM",
            Method::Fgsm(_) => "FGSM attack",
            Method::Pgd(_) => "PGD attack",
        }
    }

    /// The method with default settings for a model with `h` x `w` inputs.
    pub fn default_for(name: &str, h: usize, w: usize) -> Result<Method> {
        let side = h.min(w);
        Ok(match name {
            "occlusion" => {
                let (window, stride) = if side <= 64 { (4, 2) } else { (16, 8) };
                Method::Occlusion(OcclusionParams {
                    window: (window, window),
                    stride: (stride, stride),
                    fill: Fill::Constant(0.0),
                    batch_size: default_batch(h, w),
                    roi: None,
                })
            }
            "saliency" => Method::Saliency,
            "gradient" => Method::Gradient,
            "grad-x-input" => Method::GradXInput,
            "ig" => Method::Ig(IgParams { internal_batch_size: default_batch(h, w), ..IgParams::default() }),
            "smoothgrad" => Method::Smoothgrad(NoiseParams::default()),
            "vargrad" => Method::Vargrad(NoiseParams::default()),
            "gradcam" => Method::Gradcam { stage: None },
            "fgsm" => Method::Fgsm(AttackParams { steps: 1, step_size: 2.0 / 255.0, ..AttackParams::default() }),
            "pgd" => Method::Pgd(AttackParams::default()),
            other => {
                return Err(Error::invalid(format!(
                    "unknown method '{other}': use one of {}",
                    METHOD_NAMES.join(", ")
                )))
            }
        })
    }

    /// Whether the map is signed (drawn with a diverging colormap by default).
    pub fn is_signed(&self) -> bool {
        matches!(self, Method::Gradient | Method::GradXInput | Method::Ig(_) | Method::Smoothgrad(_) | Method::Occlusion(_))
    }

    pub fn is_attack(&self) -> bool {
        matches!(self, Method::Fgsm(_) | Method::Pgd(_))
    }
}

/// Images per forward pass for perturbation methods: many small images, few large ones.
pub fn default_batch(h: usize, w: usize) -> usize {
    (64 * 28 * 28 / (h * w).max(1)).clamp(1, 64)
}

/// What [`explain`] returns.
#[derive(Clone, Debug)]
pub struct Explanation {
    pub method: Method,
    pub target: usize,
    /// The attribution (for attacks: the perturbation in [0, 1] pixel units).
    pub map: SaliencyMap,
    /// Integrated gradients' f(x) - f(baseline) - sum(attributions).
    pub convergence_delta: Option<f32>,
    /// Grad-CAM's layer.
    pub layer: Option<String>,
    /// Grad-CAM at the layer's own resolution.
    pub coarse: Option<SaliencyMap>,
    pub adversarial: Option<AdversarialResult>,
    pub elapsed_secs: f64,
}

/// Check a target class index against the model.
pub fn check_target(model: &Classifier, target: usize) -> Result<()> {
    let k = model.num_classes();
    if target >= k {
        return Err(Error::invalid(format!(
            "class index {target} is out of range: the model has {k} classes (0..{})",
            k - 1
        )));
    }
    Ok(())
}

/// The predicted class of one image.
pub fn predicted_class(model: &Classifier, image: &PreparedImage) -> Result<usize> {
    let l = model.logits(model.input_batch(&[image]))?.remove(0);
    Ok(crate::predict::top_indices(&l, 1)[0])
}

/// Compute `method` for `image` and class `target` (default: the predicted class).
/// `on_partial` sees occlusion's map as its batches finish.
pub fn explain(
    model: &Classifier,
    image: &PreparedImage,
    method: &Method,
    target: Option<usize>,
    progress: Progress<'_>,
    on_partial: &mut dyn FnMut(&SaliencyMap, usize, usize),
) -> Result<Explanation> {
    let started = Instant::now();
    let spec = &model.card.input;
    if image.width != spec.width || image.height != spec.height || image.channels != spec.channels {
        return Err(Error::invalid("the image is not prepared for this model"));
    }
    let target = match target {
        Some(t) => {
            check_target(model, t)?;
            t
        }
        None => predicted_class(model, image)?,
    };
    let x = imaging::normalise(image, spec);
    let mut out = Explanation {
        method: method.clone(),
        target,
        map: SaliencyMap::zeros(spec.channels, spec.height, spec.width),
        convergence_delta: None,
        layer: None,
        coarse: None,
        adversarial: None,
        elapsed_secs: 0.0,
    };
    match method {
        Method::Occlusion(p) => {
            out.map = occlusion::occlusion(model, &x, target, p, progress, &mut |s| on_partial(&s.map, s.done, s.total))?;
        }
        Method::Saliency => out.map = gradients::saliency(model, &x, target)?,
        Method::Gradient => out.map = gradients::gradient(model, &x, target)?,
        Method::GradXInput => out.map = gradients::grad_x_input(model, &x, target)?,
        Method::Ig(p) => {
            let r = integrated::integrated_gradients(model, &x, target, p, progress)?;
            out.map = r.map;
            out.convergence_delta = Some(r.convergence_delta);
        }
        Method::Smoothgrad(p) => out.map = smoothgrad::noisy_gradients(model, &x, target, p, progress)?.mean,
        Method::Vargrad(p) => out.map = smoothgrad::noisy_gradients(model, &x, target, p, progress)?.variance,
        Method::Gradcam { stage } => {
            let stage = stage.unwrap_or_else(|| gradcam::default_stage(model));
            if stage >= model.net.num_stages() {
                return Err(Error::invalid(format!("layer {stage} is out of range: the model has {} stages", model.net.num_stages())));
            }
            let r = gradcam::grad_cam(model, &x, target, stage)?;
            out.map = r.map;
            out.coarse = Some(r.coarse);
            out.layer = Some(r.layer);
        }
        Method::Fgsm(p) | Method::Pgd(p) => {
            let r = adversarial::attack(model, image, p, 5.min(model.num_classes()), progress)?;
            out.map = SaliencyMap::new(spec.channels, spec.height, spec.width, r.perturbation.clone());
            out.adversarial = Some(r);
        }
    }
    out.elapsed_secs = started.elapsed().as_secs_f64();
    Ok(out)
}
