//! One run of the lab: train a strategy, evaluate it on the held-out set, save and reopen it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Profile, StrategyPlan, StrategySpec};
use crate::card::{CARD_FORMAT, InputSpec, ModelCard};
use crate::data::LabelledImages;
use crate::error::{Error, Result};
use crate::metrics::{CostMatrix, Predictions};
use crate::models::{Architecture, Classifier, SmallCnnConfig};
use crate::progress::Progress;
use crate::train::{EpochReport, TrainEvent, TrainSettings, train_net};

/// Everything one run used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub strategy: StrategySpec,
    pub profile: Profile,
    pub per_class: Option<usize>,
    pub architecture: SmallCnnConfig,
    pub input: InputSpec,
    pub settings: TrainSettings,
}

/// A saved run: config, per-epoch metrics, held-out predictions, and the training prior.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunRecord {
    pub config: RunConfig,
    pub classes: Vec<String>,
    /// Images per class in the (imbalanced) training set.
    pub train_counts: Vec<usize>,
    /// The class distribution the model saw while training (sampling and weights included).
    pub train_prior: Vec<f64>,
    pub epochs: Vec<EpochReport>,
    pub test: Predictions,
    pub seconds: f64,
}

/// Train one strategy and evaluate it on `test`.
pub fn run_strategy(
    train: &LabelledImages,
    test: &LabelledImages,
    config: &RunConfig,
    cost: Option<&CostMatrix>,
    device: &burn::tensor::Device,
    on_event: &mut dyn FnMut(TrainEvent),
    progress: Progress<'_>,
) -> Result<(RunRecord, Classifier)> {
    let started = std::time::Instant::now();
    let k = train.classes.len();
    let arch = Architecture::SmallCnn(config.architecture.clone());
    device.seed(config.settings.seed);
    let net = arch.init(device)?;
    let mut plan = StrategyPlan::new(train.labels.clone(), k, &config.strategy, cost, config.settings.seed)?;
    let (net, epochs) = train_net(net, &config.input, train, Some(test), &config.settings, &mut plan, device, on_event, progress)?;
    let total: f64 = plan.seen.iter().sum();
    let train_prior = plan.seen.iter().map(|s| s / total.max(1e-12)).collect();
    let card = ModelCard {
        format: CARD_FORMAT.into(),
        name: format!("sampling lab: {}", config.strategy.name),
        architecture: arch,
        weights: "weights.safetensors".into(),
        input: config.input.clone(),
        classes: train.classes.clone(),
        source: "trained by easel sample".into(),
        license: "same as the training data".into(),
        metrics: serde_json::Value::Null,
    };
    let model = Classifier { card, card_path: Default::default(), net, device: device.clone(), hash: String::new() };
    let test_preds = crate::evaluate::evaluate(&model, test, 256, progress)?;
    let record = RunRecord {
        config: config.clone(),
        classes: train.classes.clone(),
        train_counts: train.class_counts(),
        train_prior,
        epochs,
        test: test_preds,
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((record, model))
}

/// Write a run: `run.json`, `predictions.csv`, `weights.safetensors` and `card.json`.
pub fn save_run(dir: &Path, record: &RunRecord, model: &Classifier) -> Result<()> {
    crate::fsutil::ensure_dir(dir)?;
    let json = serde_json::to_string_pretty(record).map_err(|e| Error::Compute(e.to_string()))?;
    crate::fsutil::write_atomic(&dir.join("run.json"), json.as_bytes())?;
    crate::fsutil::write_atomic(&dir.join("predictions.csv"), record.test.to_csv().as_bytes())?;
    let tensors = model.net.torch_tensors(&model.card.architecture)?;
    crate::weights::write_safetensors(&dir.join("weights.safetensors"), &tensors)?;
    model.card.save(&dir.join("card.json"))
}

/// Reopen a saved run.
pub fn load_run(dir: &Path) -> Result<RunRecord> {
    let p = dir.join("run.json");
    let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Card { path: p, reason: format!("not a sampling-lab run ({e})") })
}
