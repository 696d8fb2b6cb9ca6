//! One run of the lab: train a strategy, evaluate it on the held-out set, save and reopen it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{MiningSettings, Profile, StrategyPlan, StrategySpec};
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
    /// Negative mining's settings (used by `hnm`).
    #[serde(default)]
    pub mining: MiningSettings,
    /// Classes merged before training (the taxonomy the model learned).
    #[serde(default)]
    pub merges: Vec<Vec<usize>>,
    /// Rare-class images collected on top of the long tail (`collect:N`).
    #[serde(default)]
    pub collected: usize,
}

/// A frequent-class sample that negative mining chose often, with its pixels for a gallery.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MinedSample {
    /// Index in the run's training set.
    pub index: usize,
    pub label: usize,
    /// Epochs it was among the hard negatives.
    pub count: u32,
    pub source: String,
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub pixels: Vec<u8>,
}

/// How many of the most-mined negatives a run keeps.
pub const MINED_KEPT: usize = 32;

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
    /// The negatives mined most often (`hnm`), most first.
    #[serde(default)]
    pub mined: Vec<MinedSample>,
}

impl RunRecord {
    /// The run seen with merged classes (its probabilities summed): "merged at inference".
    pub fn merged(&self, groups: &[Vec<usize>], name: &str) -> Result<RunRecord> {
        let test = self.test.merged(groups)?;
        let (new_k, new_of) = crate::metrics::merge_map(self.classes.len(), groups);
        let mut train_counts = vec![0; new_k];
        let mut train_prior = vec![0.0; new_k];
        for c in 0..self.classes.len() {
            train_counts[new_of[c]] += self.train_counts[c];
            train_prior[new_of[c]] += self.train_prior[c];
        }
        let mut config = self.config.clone();
        config.strategy.name = name.to_string();
        Ok(RunRecord {
            config,
            classes: test.classes.clone(),
            train_counts,
            train_prior,
            epochs: self.epochs.clone(),
            test,
            seconds: self.seconds,
            mined: Vec::new(),
        })
    }
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
    let mut plan = StrategyPlan::new(train.labels.clone(), k, &config.strategy, cost, config.settings.seed, &config.mining)?;
    let (net, epochs) = train_net(net, &arch, &config.input, train, Some(test), &config.settings, &mut plan, device, on_event, progress)?;
    let mut most: Vec<usize> = (0..train.len()).filter(|&i| plan.mined[i] > 0).collect();
    most.sort_by(|&a, &b| plan.mined[b].cmp(&plan.mined[a]).then(a.cmp(&b)));
    let mined = most
        .into_iter()
        .take(MINED_KEPT)
        .map(|i| MinedSample {
            index: i,
            label: train.labels[i],
            count: plan.mined[i],
            source: train.sources[i].clone(),
            width: train.width,
            height: train.height,
            channels: train.channels,
            pixels: train.image(i).pixels,
        })
        .collect();
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
    let model = Classifier::new(card, Default::default(), net, device, String::new());
    let test_preds = crate::evaluate::evaluate(&model, test, 256, progress)?;
    let record = RunRecord {
        config: config.clone(),
        classes: train.classes.clone(),
        train_counts: train.class_counts(),
        train_prior,
        epochs,
        test: test_preds,
        seconds: started.elapsed().as_secs_f64(),
        mined,
    };
    Ok((record, model))
}

/// Write a run: `run.json`, `predictions.csv`, `weights.safetensors` and `card.json`.
/// The run appears whole, replacing an earlier one in `dir` in one step (callers refuse an
/// existing run before training unless asked to replace it).
pub fn save_run(dir: &Path, record: &RunRecord, model: &Classifier) -> Result<()> {
    let json = serde_json::to_vec_pretty(record).map_err(|e| Error::Compute(e.to_string()))?;
    let tensors = model.net.torch_tensors(&model.card.architecture)?;
    let files = vec![
        ("run.json".to_string(), json),
        ("predictions.csv".to_string(), record.test.to_csv().into_bytes()),
        ("weights.safetensors".to_string(), crate::weights::safetensors_bytes(&tensors)?),
        ("card.json".to_string(), model.card.to_json_bytes()?),
    ];
    crate::fsutil::write_files(dir, &files, true).map(|_| ())
}

/// Reopen a saved run.
pub fn load_run(dir: &Path) -> Result<RunRecord> {
    let p = dir.join("run.json");
    let text = crate::fsutil::read_text(&p)?;
    serde_json::from_str(&text).map_err(|e| Error::Card { path: p, reason: format!("not a sampling-lab run ({e})") })
}
