//! How robust is a model? Accuracy against the attack budget over a labelled set, as a job:
//! `easel robustness` and the app's Adversarial view ("How robust?") both end here.

use std::path::Path;

use easel_core::data::{self, LabelledImages};
use easel_core::error::{Error, Result};
use easel_core::explain::robustness::{self, RobustnessParams, RobustnessReport};
use easel_core::metrics::Predictions;
use easel_core::models::Classifier;
use easel_core::progress::Progress;
use serde::Serialize;

/// The curve's request: the attack and budgets, and at most how many images.
#[derive(Clone, Debug)]
pub struct RobustnessRequest {
    pub params: RobustnessParams,
    /// Attack only the first N images.
    pub limit: Option<usize>,
}

/// What `easel robustness --json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct RobustnessOutput {
    pub model: String,
    pub model_hash: String,
    pub data: String,
    #[serde(flatten)]
    pub report: RobustnessReport,
    /// The images that flip at the smallest budget: (index, source, epsilon).
    pub most_fragile: Vec<(usize, String, f32)>,
}

/// Parse a list of budgets: numbers or fractions, `0,1/255,2/255,0.03`.
pub fn parse_epsilons(s: &str) -> Result<Vec<f32>> {
    s.split(',')
        .map(|t| {
            let t = t.trim();
            let v = match t.split_once('/') {
                Some((a, b)) => a.trim().parse::<f32>().ok().zip(b.trim().parse::<f32>().ok()).map(|(a, b)| a / b),
                None => t.parse::<f32>().ok(),
            };
            match v {
                Some(v) if v.is_finite() && (0.0..=1.0).contains(&v) => Ok(v),
                _ => Err(Error::invalid(format!("epsilon '{t}': a number or fraction in [0, 1], e.g. 0, 1/255, 0.03"))),
            }
        })
        .collect()
}

/// A labelled set for `model` from a path: an IDX folder or file, a class-per-folder tree, or a
/// predictions CSV (its images and labels).
pub fn load_data(model: &Classifier, path: &Path, split: &str) -> Result<LabelledImages> {
    let classes = &model.card.classes;
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
        let p = Predictions::read_csv(path, Some(classes))?;
        let files: Vec<_> = p.paths.iter().zip(&p.labels).map(|(f, &l)| (std::path::PathBuf::from(f), l)).collect();
        return data::load_files(&files, &model.card.input, classes);
    }
    let source = data::resolve_source(path, split)?;
    data::load_source(&source, &model.card.input, classes)
}

/// The curve over `set` (brought to the model's input first).
pub fn run(model: &Classifier, set: &LabelledImages, data_name: &str, req: &RobustnessRequest, progress: Progress<'_>) -> Result<RobustnessOutput> {
    if set.classes.len() != model.num_classes() {
        return Err(Error::invalid(format!("the data has {} classes and the model {}", set.classes.len(), model.num_classes())));
    }
    if req.limit == Some(0) {
        return Err(Error::invalid("--limit must be at least 1"));
    }
    let set = set.first(req.limit.unwrap_or(usize::MAX)).prepared_for(&model.card.input);
    let report = robustness::robustness(model, &set, &req.params, progress)?;
    let most_fragile = report.most_fragile(24).into_iter().map(|(i, e)| (i, set.sources[i].clone(), e)).collect();
    Ok(RobustnessOutput { model: model.card.name.clone(), model_hash: model.hash.clone(), data: data_name.to_string(), report, most_fragile })
}
