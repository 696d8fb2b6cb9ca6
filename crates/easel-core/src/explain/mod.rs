//! Every explanation easel computes, behind one entry point ([`explain`]) that the CLI's
//! `easel explain` and the GUI's Explain view both call.

pub mod adversarial;
pub mod baseline;
pub mod fool;
pub mod gradcam;
pub mod gradients;
pub mod integrated;
pub mod map;
pub mod occlusion;
pub mod pixels;
pub mod robustness;
pub mod sanity;
pub mod smoothgrad;

use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use adversarial::{AdversarialResult, AttackParams};
pub use baseline::Baseline;
pub use integrated::{IgMethod, IgParams};
pub use map::SaliencyMap;
pub use occlusion::{Fill, OcclusionParams, Roi};
pub use smoothgrad::{NoiseBase, NoiseParams, NoiseTunnelType};

use crate::error::{Error, Result};
use crate::imaging::{self, PreparedImage};
use crate::models::Classifier;
use crate::progress::Progress;

/// Which method, without its settings: the typed id the CLI's `--method`, the app's state and
/// the Explain view's buttons all use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum MethodKind {
    Occlusion,
    Saliency,
    Gradient,
    GradXInput,
    Ig,
    Smoothgrad,
    Vargrad,
    Gradcam,
    Fgsm,
    Pgd,
}

impl MethodKind {
    pub const ALL: [MethodKind; 10] = [
        MethodKind::Occlusion,
        MethodKind::Saliency,
        MethodKind::Gradient,
        MethodKind::GradXInput,
        MethodKind::Ig,
        MethodKind::Smoothgrad,
        MethodKind::Vargrad,
        MethodKind::Gradcam,
        MethodKind::Fgsm,
        MethodKind::Pgd,
    ];

    /// The attribution maps (attacks have their own view).
    pub fn maps() -> impl Iterator<Item = MethodKind> {
        Self::ALL.into_iter().filter(|k| !k.is_attack())
    }

    /// The command-line name (`grad-x-input`).
    pub fn name(self) -> &'static str {
        match self {
            MethodKind::Occlusion => "occlusion",
            MethodKind::Saliency => "saliency",
            MethodKind::Gradient => "gradient",
            MethodKind::GradXInput => "grad-x-input",
            MethodKind::Ig => "ig",
            MethodKind::Smoothgrad => "smoothgrad",
            MethodKind::Vargrad => "vargrad",
            MethodKind::Gradcam => "gradcam",
            MethodKind::Fgsm => "fgsm",
            MethodKind::Pgd => "pgd",
        }
    }

    /// A human title.
    pub fn title(self) -> &'static str {
        match self {
            MethodKind::Occlusion => "Occlusion",
            MethodKind::Saliency => "Saliency (|gradient|)",
            MethodKind::Gradient => "Gradient (signed)",
            MethodKind::GradXInput => "Gradient x input",
            MethodKind::Ig => "Integrated gradients",
            MethodKind::Smoothgrad => "SmoothGrad",
            MethodKind::Vargrad => "VarGrad",
            MethodKind::Gradcam => "Grad-CAM",
            MethodKind::Fgsm => "FGSM attack",
            MethodKind::Pgd => "PGD attack",
        }
    }

    pub fn is_attack(self) -> bool {
        matches!(self, MethodKind::Fgsm | MethodKind::Pgd)
    }

    /// One backward pass (or a few forwards): cheap enough to recompute on every image change.
    pub fn is_cheap(self) -> bool {
        matches!(self, MethodKind::Saliency | MethodKind::Gradient | MethodKind::GradXInput | MethodKind::Gradcam | MethodKind::Fgsm)
    }
}

impl std::fmt::Display for MethodKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for MethodKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<MethodKind> {
        MethodKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| Error::invalid(format!("unknown method '{s}': use one of {}", MethodKind::ALL.map(|k| k.name()).join(", "))))
    }
}

/// A method and its settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "method", content = "params")]
pub enum Method {
    Occlusion(OcclusionParams),
    Saliency,
    Gradient,
    GradXInput,
    Ig(IgParams),
    /// Captum's `NoiseTunnel(base, nt_type="smoothgrad")`: the mean of the base attribution
    /// over noisy copies of the input.
    Smoothgrad(NoiseParams),
    /// `NoiseTunnel(base, nt_type="vargrad")`: their variance.
    Vargrad(NoiseParams),
    /// Grad-CAM at a stage (`None`: the last convolutional one).
    Gradcam {
        stage: Option<usize>,
    },
    Fgsm(AttackParams),
    Pgd(AttackParams),
}

impl Method {
    pub fn kind(&self) -> MethodKind {
        match self {
            Method::Occlusion(_) => MethodKind::Occlusion,
            Method::Saliency => MethodKind::Saliency,
            Method::Gradient => MethodKind::Gradient,
            Method::GradXInput => MethodKind::GradXInput,
            Method::Ig(_) => MethodKind::Ig,
            Method::Smoothgrad(_) => MethodKind::Smoothgrad,
            Method::Vargrad(_) => MethodKind::Vargrad,
            Method::Gradcam { .. } => MethodKind::Gradcam,
            Method::Fgsm(_) => MethodKind::Fgsm,
            Method::Pgd(_) => MethodKind::Pgd,
        }
    }

    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// A human title.
    pub fn title(&self) -> &'static str {
        self.kind().title()
    }

    /// The method with default settings for a model with `h` x `w` inputs. Every default
    /// lives here, so the CLI and the app start from the same settings.
    pub fn defaults(kind: MethodKind, h: usize, w: usize) -> Method {
        let side = h.min(w);
        match kind {
            MethodKind::Occlusion => {
                let (window, stride) = if side <= 64 { (4, 2) } else { (16, 8) };
                Method::Occlusion(OcclusionParams {
                    window: (window, window),
                    stride: (stride, stride),
                    fill: Fill::Constant(0.0),
                    batch_size: default_batch(h, w),
                    roi: None,
                })
            }
            MethodKind::Saliency => Method::Saliency,
            MethodKind::Gradient => Method::Gradient,
            MethodKind::GradXInput => Method::GradXInput,
            MethodKind::Ig => Method::Ig(IgParams { internal_batch_size: gradient_batch(h, w), ..IgParams::default() }),
            MethodKind::Smoothgrad => Method::Smoothgrad(NoiseParams { batch_size: gradient_batch(h, w), ..NoiseParams::default() }),
            MethodKind::Vargrad => Method::Vargrad(NoiseParams { batch_size: gradient_batch(h, w), ..NoiseParams::default() }),
            MethodKind::Gradcam => Method::Gradcam { stage: None },
            MethodKind::Fgsm => Method::Fgsm(AttackParams::fgsm(AttackParams::DEFAULT_EPSILON)),
            MethodKind::Pgd => Method::Pgd(AttackParams::pgd(AttackParams::DEFAULT_EPSILON, AttackParams::DEFAULT_STEPS)),
        }
    }

    /// Whether the map is signed (drawn with a diverging colormap by default).
    pub fn is_signed(&self) -> bool {
        match self {
            Method::Gradient | Method::GradXInput | Method::Ig(_) | Method::Occlusion(_) => true,
            Method::Smoothgrad(p) => p.base.is_signed(),
            Method::Saliency | Method::Vargrad(_) | Method::Gradcam { .. } | Method::Fgsm(_) | Method::Pgd(_) => false,
        }
    }

    pub fn is_attack(&self) -> bool {
        self.kind().is_attack()
    }

    /// Forward-pass equivalents this method costs (a backward pass counts as three), for an
    /// estimate of its time before it runs.
    pub fn cost_in_forwards(&self, h: usize, w: usize) -> usize {
        const BACKWARD: usize = 4;
        match self {
            Method::Occlusion(p) => p.windows(h, w).len() + 1,
            Method::Saliency | Method::Gradient | Method::GradXInput | Method::Gradcam { .. } => BACKWARD + 1,
            Method::Ig(p) => p.steps * BACKWARD + 2,
            Method::Smoothgrad(p) | Method::Vargrad(p) => {
                let per = if p.base == NoiseBase::Ig { p.ig_steps * BACKWARD + 2 } else { BACKWARD };
                p.samples * per
            }
            Method::Fgsm(p) | Method::Pgd(p) => p.steps * BACKWARD + 2,
        }
    }
}

/// Images per forward pass for perturbation methods: many small images, few large ones.
///
/// Measured on burn's CPU backend with two chunks running at once, each in its own pool of one
/// core (`crate::parallel`): the 28x28 Fashion CNN's occlusion 4/2 takes ~88 ms at batch 8,
/// ~100 at 2 and ~135 at 64; IG-50 ~43 ms at 8-16 and ~65 at 64; SmoothGrad-20 ~17 ms at 8 and
/// ~30 at 64 (larger batches leave the cache). EfficientNet-Lite0 at 224 is fastest at 2 per
/// forward pass (30 ms/image against 40 at 1 and 37 at 4); gradient passes take
/// [`gradient_batch`].
pub fn default_batch(h: usize, w: usize) -> usize {
    (8 * 28 * 28 / (h * w).max(1)).clamp(2, 8)
}

/// Images per gradient pass (IG path points, noise samples): [`default_batch`], but at least
/// 4. Measured with easel's depthwise kernels and passes of equal size
/// ([`crate::parallel::batch_ranges`]): EfficientNet-Lite0's IG-50 2.2 s at 4 (16 passes of 3-4)
/// against 2.3-2.4 s at 2; SmoothGrad-20 1.02 s at 4 against 1.16 s at 2.
pub fn gradient_batch(h: usize, w: usize) -> usize {
    default_batch(h, w).max(4)
}

/// Images per pass on a GPU, where larger batches pay: EfficientNet-Lite0's occlusion 16/8 on
/// an H200 (wgpu, Vulkan) took 2.27 s at batch 2, 0.48 s at 16, 0.92 s at 64; IG-50 1.09 s at
/// batch 1, 0.21 s at 50. Gradient passes keep half of it (they hold every activation).
pub fn gpu_batch(h: usize, w: usize, gradients: bool) -> usize {
    let b = (16 * 224 * 224 / (h * w).max(1)).clamp(16, 256);
    if gradients { b / 2 } else { b }
}

impl Method {
    /// The method as it runs on `model`'s device: on a GPU, a batch size left at this input
    /// size's default ([`Method::defaults`]) becomes the GPU's ([`gpu_batch`]); one set to
    /// anything else is kept. The maps are the same up to float rounding.
    pub fn on_device(self, model: &Classifier) -> Method {
        if crate::parallel::on_cpu(&model.device) {
            return self;
        }
        self.with_gpu_batches(model.card.input.height, model.card.input.width)
    }

    /// [`Method::on_device`] on a GPU, for `h` x `w` inputs.
    fn with_gpu_batches(mut self, h: usize, w: usize) -> Method {
        let default = Method::defaults(self.kind(), h, w).batch_size_mut().map(|b| *b);
        let gradients = !matches!(self, Method::Occlusion(_));
        if let Some(b) = self.batch_size_mut()
            && Some(*b) == default
        {
            *b = gpu_batch(h, w, gradients);
        }
        self
    }

    /// The images per pass of the methods that batch (occlusion copies, IG path points, noise
    /// samples).
    fn batch_size_mut(&mut self) -> Option<&mut usize> {
        match self {
            Method::Occlusion(p) => Some(&mut p.batch_size),
            Method::Ig(p) => Some(&mut p.internal_batch_size),
            Method::Smoothgrad(p) | Method::Vargrad(p) => Some(&mut p.batch_size),
            _ => None,
        }
    }
}

/// What [`explain`] returns.
#[derive(Clone, Debug)]
pub struct Explanation {
    pub method: Method,
    pub target: usize,
    /// The attribution (for attacks: the perturbation in [0, 1] pixel units).
    pub map: SaliencyMap,
    /// Integrated gradients' sum(attributions) - (f(x) - f(baseline)) (Captum's sign).
    pub convergence_delta: Option<f32>,
    /// The target logit f(x), where the method computed it (integrated gradients).
    pub target_logit: Option<f32>,
    /// Grad-CAM's layer.
    pub layer: Option<String>,
    /// Grad-CAM at the layer's own resolution.
    pub coarse: Option<SaliencyMap>,
    pub adversarial: Option<AdversarialResult>,
    pub elapsed_secs: f64,
}

/// Check a target class index against the model.
pub fn check_target(model: &Classifier, target: usize) -> Result<()> {
    check_class_index(target, model.num_classes())
}

/// A class index against a class count.
pub fn check_class_index(target: usize, k: usize) -> Result<()> {
    if target >= k {
        return Err(Error::invalid(format!("class index {target} is out of range: the model has {k} classes (0..{})", k - 1)));
    }
    Ok(())
}

/// The predicted class of one image.
pub fn predicted_class(model: &Classifier, image: &PreparedImage) -> Result<usize> {
    let l = model.logits(model.input_batch(&[image])?)?.remove(0);
    Ok(crate::predict::top_indices(&l, 1)[0])
}

/// Compute `method` for `image` and class `target` (default: the predicted class).
/// `on_partial` sees occlusion's map as its batches finish. The method runs as
/// [`Method::on_device`] makes it, and `Explanation::method` says so.
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
    model.check_prepared(image)?;
    let target = match target {
        Some(t) => {
            check_target(model, t)?;
            t
        }
        None => predicted_class(model, image)?,
    };
    let x = imaging::normalise(image, spec);
    let method = &method.clone().on_device(model);
    let mut out = Explanation {
        method: method.clone(),
        target,
        map: SaliencyMap::zeros(spec.channels, spec.height, spec.width),
        convergence_delta: None,
        target_logit: None,
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
            out.target_logit = Some(r.target_logit);
        }
        Method::Smoothgrad(p) => out.map = smoothgrad::noise_tunnel(model, &x, target, p, NoiseTunnelType::Smoothgrad, progress)?,
        Method::Vargrad(p) => out.map = smoothgrad::noise_tunnel(model, &x, target, p, NoiseTunnelType::Vargrad, progress)?,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// On a GPU the defaults' batch sizes grow (16 forward, 8 gradients at 224 pixels); a batch
    /// size set by hand, and methods that do not batch, stay as they are.
    #[test]
    fn gpu_batches_replace_only_the_defaults() {
        let batch = |m: &Method| m.clone().batch_size_mut().map(|b| *b);
        for (kind, want) in [(MethodKind::Occlusion, 16), (MethodKind::Ig, 8), (MethodKind::Smoothgrad, 8), (MethodKind::Vargrad, 8)] {
            let on_gpu = Method::defaults(kind, 224, 224).with_gpu_batches(224, 224);
            assert_eq!(batch(&on_gpu), Some(want), "{kind:?}");
            let mut set = Method::defaults(kind, 224, 224);
            *set.batch_size_mut().unwrap() = 5;
            assert_eq!(batch(&set.with_gpu_batches(224, 224)), Some(5), "{kind:?} set by hand");
        }
        assert_eq!(Method::Saliency.with_gpu_batches(224, 224), Method::Saliency);
        assert_eq!(batch(&Method::defaults(MethodKind::Occlusion, 28, 28).with_gpu_batches(28, 28)), Some(256));
    }
}
