//! One explanation of one image, as a job: [`run`] computes the map (or the attack), the
//! predictions, the rendered picture and the trust figures from a typed [`ExplainRequest`];
//! [`ExplainOutput::save`] writes `<method>.npy`, `<method>.png` and `meta.json`. `easel
//! explain` and the app's Explain, Compare and Adversarial views all end here.

use std::path::{Path, PathBuf};

use easel_core::error::Result;
use easel_core::explain::sanity::{self, PerturbationCurve, SanityMode, SanityReport};
use easel_core::explain::{self, AdversarialResult, Explanation, Method, MethodKind, SaliencyMap};
use easel_core::imaging::{self, PreparedImage};
use easel_core::models::Classifier;
use easel_core::predict::{ClassScore, top_indices, top_k};
use easel_core::progress::Progress;
use easel_core::render::{self, RenderOptions};
use easel_core::{fsutil, npy};
use serde::{Deserialize, Serialize};

use crate::picture::Picture;

/// Pictures of maps are enlarged to at least this many pixels a side (the CLI's PNGs and the
/// app's textures are the same pictures).
pub const MAP_MIN_PX: usize = 256;

/// Deletion / insertion curves are sampled at this many fractions.
pub const CURVE_STEPS: usize = 20;

/// Everything an explanation needs besides the model and the image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExplainRequest {
    pub method: Method,
    /// The class to explain; `None`: the predicted class.
    pub target: Option<usize>,
    pub render: RenderOptions,
    pub sanity: SanityMode,
    /// Also compute deletion and insertion curves.
    pub curves: bool,
    /// Seed of the randomised model in the sanity check.
    pub sanity_seed: u64,
}

impl ExplainRequest {
    /// A request with the method's natural colours and its default sanity check.
    pub fn new(method: Method) -> ExplainRequest {
        let render = RenderOptions::default().natural_for(&method);
        let sanity = SanityMode::default_for(&method);
        ExplainRequest { method, target: None, render, sanity, curves: false, sanity_seed: 0 }
    }
}

/// Figures that say whether a map can be trusted.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TrustFigures {
    pub sanity: Option<SanityReport>,
    pub deletion: Option<PerturbationCurve>,
    pub insertion: Option<PerturbationCurve>,
}

impl TrustFigures {
    pub fn deletion_auc(&self) -> Option<f64> {
        self.deletion.as_ref().map(|c| c.auc)
    }
    pub fn insertion_auc(&self) -> Option<f64> {
        self.insertion.as_ref().map(|c| c.auc)
    }
}

/// The pictures of an attack: the adversarial image, its amplified perturbation, the original.
#[derive(Clone, Debug)]
pub struct AttackPictures {
    pub adversarial: Picture,
    pub perturbation: Picture,
    pub original: Picture,
}

/// What `meta.json` holds, and each map's entry in a report's `settings.json`: one typed
/// layout for the CLI and the app.
#[derive(Clone, Debug, Serialize)]
pub struct ExplainMeta {
    pub method: MethodKind,
    pub title: String,
    pub settings: Method,
    pub render: RenderOptions,
    pub image: String,
    pub device: String,
    pub model: String,
    pub model_card: String,
    pub model_hash: String,
    pub target: usize,
    pub target_class: String,
    pub top_k: Vec<ClassScore>,
    pub elapsed_secs: f64,
    /// Integrated gradients: sum(attributions) - (f(x) - f(baseline)), Captum's sign.
    pub convergence_delta: Option<f32>,
    /// The target logit f(x) beside the delta, so its size means something.
    pub target_logit: Option<f32>,
    pub layer: Option<String>,
    pub map_shape: Vec<usize>,
    pub map_sum: f64,
    pub map_max_abs: f32,
    /// The value at the end of the colour bar.
    pub render_scale: Option<f32>,
    pub sanity: Option<SanityReport>,
    pub sanity_score: Option<f64>,
    pub deletion: Option<PerturbationCurve>,
    pub insertion: Option<PerturbationCurve>,
    pub deletion_auc: Option<f64>,
    pub insertion_auc: Option<f64>,
    pub adversarial: Option<AdversarialResult>,
}

/// A finished explanation.
#[derive(Clone, Debug)]
pub struct ExplainOutput {
    pub request: ExplainRequest,
    pub explanation: Explanation,
    /// The image's top classes (at most 5).
    pub top: Vec<ClassScore>,
    /// The rendered map (for attacks: the adversarial image).
    pub picture: Picture,
    /// The value at the end of the colour bar.
    pub scale: f32,
    pub trust: TrustFigures,
    pub attack: Option<AttackPictures>,
    pub meta: ExplainMeta,
}

/// Where the image of an explanation came from and what computed it, for its record.
#[derive(Clone, Debug, Default)]
pub struct Provenance {
    pub image: String,
    /// The device, in words (`cpu · flex · ...`).
    pub device: String,
}

/// Compute one explanation. `on_partial` sees occlusion's map as its batches finish.
pub fn run(
    model: &Classifier,
    image: &PreparedImage,
    provenance: &Provenance,
    req: &ExplainRequest,
    progress: Progress<'_>,
    on_partial: &mut dyn FnMut(&SaliencyMap, usize, usize),
) -> Result<ExplainOutput> {
    req.render.validate()?;
    if let Some(t) = req.target {
        explain::check_target(model, t)?;
    }
    if req.method.is_attack() && req.sanity != SanityMode::None {
        return Err(easel_core::Error::invalid("the sanity check applies to attribution maps, not to attacks"));
    }
    let logits = model.logits(model.input_batch(&[image])?)?.remove(0);
    let top = top_k(&logits, 5.min(model.num_classes()), &model.card.classes);
    let target = req.target.unwrap_or_else(|| top_indices(&logits, 1)[0]);
    let ex = explain::explain(model, image, &req.method, Some(target), progress, on_partial)?;
    let spec = &model.card.input;
    let up = render::upscale_for(spec.height.max(spec.width), MAP_MIN_PX);
    let (picture, scale, attack) = match &ex.adversarial {
        Some(adv) => {
            let pictures = AttackPictures {
                adversarial: Picture::from_rgba(render::image_picture(&adv.image, up)),
                perturbation: Picture::from_rgba(render::perturbation_picture(&adv.perturbation, spec.channels, spec.height, spec.width, up)),
                original: Picture::from_rgba(render::image_picture(image, up)),
            };
            (pictures.adversarial.clone(), ex.map.max_abs(), Some(pictures))
        }
        None => {
            let (pic, scale) = render::render(&ex.map, image, &req.render, up);
            (Picture::from_rgba(pic), scale, None)
        }
    };
    let trust = if ex.adversarial.is_none() {
        trust_figures(model, image, &req.method, target, &ex.map, req.sanity, req.curves, req.sanity_seed, progress)?
    } else {
        TrustFigures::default()
    };
    let meta = ExplainMeta {
        method: req.method.kind(),
        title: req.method.title().to_string(),
        settings: ex.method.clone(),
        render: req.render.clone(),
        image: provenance.image.clone(),
        device: provenance.device.clone(),
        model: model.card.name.clone(),
        model_card: model.card_path.display().to_string(),
        model_hash: model.hash.clone(),
        target,
        target_class: model.class_name(target).to_string(),
        top_k: top.clone(),
        elapsed_secs: ex.elapsed_secs,
        convergence_delta: ex.convergence_delta,
        target_logit: ex.target_logit,
        layer: ex.layer.clone(),
        map_shape: map_shape(&ex),
        map_sum: ex.map.sum(),
        map_max_abs: ex.map.max_abs(),
        render_scale: ex.adversarial.is_none().then_some(scale),
        sanity_score: trust.sanity.as_ref().map(|s| s.score),
        sanity: trust.sanity.clone(),
        deletion_auc: trust.deletion_auc(),
        insertion_auc: trust.insertion_auc(),
        deletion: trust.deletion.clone(),
        insertion: trust.insertion.clone(),
        adversarial: ex.adversarial.clone(),
    };
    Ok(ExplainOutput { request: req.clone(), explanation: ex, top, picture, scale, trust, attack, meta })
}

/// `[C, H, W]` like Captum; `[H, W]` for Grad-CAM.
fn map_shape(ex: &Explanation) -> Vec<usize> {
    ex.map.shape(matches!(ex.method, Method::Gradcam { .. }))
}

/// Sanity (quick or cascade) and deletion / insertion curves of a map. The cascade reports
/// one progress step per randomised layer group.
#[allow(clippy::too_many_arguments)]
pub fn trust_figures(
    model: &Classifier,
    image: &PreparedImage,
    method: &Method,
    target: usize,
    map: &SaliencyMap,
    mode: SanityMode,
    curves: bool,
    seed: u64,
    progress: Progress<'_>,
) -> Result<TrustFigures> {
    let quiet = progress.without_report();
    let mut map_of = |m: &Classifier| Ok(explain::explain(m, image, method, Some(target), quiet, &mut |_, _, _| {})?.map);
    let sanity = match mode {
        SanityMode::None => None,
        SanityMode::Quick => Some(sanity::sanity_check(model, map, false, seed, progress, &mut map_of)?),
        SanityMode::Cascade => Some(sanity::sanity_check(model, map, true, seed, progress, &mut map_of)?),
    };
    let (deletion, insertion) = if curves {
        let x = imaging::normalise(image, &model.card.input);
        (
            Some(sanity::perturbation_curve(model, &x, map, target, CURVE_STEPS, false, quiet)?),
            Some(sanity::perturbation_curve(model, &x, map, target, CURVE_STEPS, true, quiet)?),
        )
    } else {
        (None, None)
    };
    Ok(TrustFigures { sanity, deletion, insertion })
}

impl ExplainOutput {
    /// The method's files, named after `stem` (`occlusion.npy`, `occlusion.png`, and for an
    /// attack `<stem>-perturbation.png` and `original.png`).
    pub fn files(&self, stem: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let ex = &self.explanation;
        let mut files = Vec::new();
        match (&ex.adversarial, &self.attack) {
            (Some(adv), Some(p)) => {
                files.push((format!("{stem}.npy"), npy::npy_bytes(&ex.map.shape(false), &adv.pixels)));
                files.push((format!("{stem}.png"), p.adversarial.png()?));
                files.push((format!("{stem}-perturbation.png"), p.perturbation.png()?));
                files.push(("original.png".to_string(), p.original.png()?));
            }
            _ => {
                files.push((format!("{stem}.npy"), npy::npy_bytes(&map_shape(ex), &ex.map.values)));
                files.push((format!("{stem}.png"), self.picture.png()?));
            }
        }
        Ok(files)
    }

    /// Write the files and `meta.json` into `dir`. Without `force` nothing is replaced: an
    /// existing file of the same name is an error and nothing is written.
    pub fn save(&self, dir: &Path, force: bool) -> Result<Vec<PathBuf>> {
        let mut files = self.files(self.explanation.method.name())?;
        files.push(("meta.json".into(), json_bytes(&self.meta)?));
        fsutil::write_files(dir, &files, force)
    }
}

/// Pretty JSON bytes.
pub fn json_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(value).map_err(|e| easel_core::Error::Compute(format!("JSON: {e}")))
}
