//! The pre-training lab: labelled data is expensive, so pre-train on something cheap and
//! fine-tune on the little you have. The same target task (a few classes with `n` clean labels
//! each) is learned under regimes that differ only in where the starting weights come from:
//!
//! - `scratch`: random initialisation;
//! - `transfer`: pre-trained on other classes (the source task), a new output layer for the
//!   target classes, then fine-tuned with a faster head;
//! - `weak`: pre-trained on every training image of the target classes with a share of the
//!   labels wrong (cheap, noisy labels), then fine-tuned on the `n` clean ones;
//! - `imagenet`: EfficientNet-Lite0's ImageNet backbone, frozen, its features computed once, a
//!   new output layer trained on them (optionally its last blocks fine-tuned too).
//!
//! A learning curve (accuracy against labels per class) per regime answers how many labels
//! each needs to reach an accuracy, and what they cost.

mod curve;
mod head;
mod noise;

use serde::{Deserialize, Serialize};

pub use curve::{LabelsToReach, labels_to_reach};
pub use head::{cached_features, head_probabilities, train_head};
pub use noise::{NoiseKind, noisy_labels};

use crate::data::LabelledImages;
use crate::error::{Error, Result};
use crate::rng::Rng;

/// Where the starting weights come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Regime {
    Scratch,
    Transfer,
    Weak,
    Imagenet,
}

impl Regime {
    pub const ALL: [Regime; 4] = [Regime::Scratch, Regime::Transfer, Regime::Weak, Regime::Imagenet];

    pub fn name(self) -> &'static str {
        match self {
            Regime::Scratch => "scratch",
            Regime::Transfer => "transfer",
            Regime::Weak => "weak",
            Regime::Imagenet => "imagenet",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Regime::Scratch => "from scratch",
            Regime::Transfer => "transfer from other classes",
            Regime::Weak => "weak-label pre-training",
            Regime::Imagenet => "ImageNet backbone (EfficientNet-Lite0)",
        }
    }
}

/// Everything a pre-training lab run uses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TransferConfig {
    /// The target task's classes (indices into the data's classes).
    pub target_classes: Vec<usize>,
    /// The source task's classes for `transfer`.
    pub source_classes: Vec<usize>,
    pub regimes: Vec<Regime>,
    /// Points of the learning curve: clean labels per target class.
    pub labels_per_class: Vec<usize>,
    /// Share of the weak labels that are wrong, in [0, 1).
    pub noise: f64,
    pub noise_kind: NoiseKind,
    /// Fine-tuning epochs over the `n` labels per class (at least `min_steps` batches).
    pub epochs: usize,
    pub min_steps: usize,
    /// Epochs of pre-training (source task and weak labels).
    pub pretrain_epochs: usize,
    /// The new output layer learns this many times faster than the pre-trained layers.
    pub head_lr_mult: f64,
    /// Fine-tuning trains the output layer alone for this many epochs first.
    pub freeze_epochs: usize,
    /// `imagenet`: fine-tune the last K blocks too (0: the backbone stays frozen and its
    /// features are computed once).
    pub unfreeze_last: usize,
    pub learning_rate: f64,
    pub batch_size: usize,
    pub seed: u64,
    /// Score on at most this many held-out images of the target classes.
    pub test_limit: Option<usize>,
    /// Currency per label.
    pub label_cost: f64,
    /// Accuracies to price: how many labels each regime needs to reach them.
    pub accuracy_targets: Vec<f64>,
}

impl Default for TransferConfig {
    fn default() -> Self {
        TransferConfig {
            target_classes: vec![5, 6, 7, 8, 9],
            source_classes: vec![0, 1, 2, 3, 4],
            regimes: Regime::ALL.to_vec(),
            labels_per_class: vec![10, 50, 200],
            noise: 0.4,
            noise_kind: NoiseKind::Symmetric,
            epochs: 30,
            min_steps: 200,
            pretrain_epochs: 2,
            head_lr_mult: 10.0,
            freeze_epochs: 0,
            unfreeze_last: 0,
            learning_rate: 2e-3,
            batch_size: 32,
            seed: 0,
            test_limit: Some(2000),
            label_cost: 25.0,
            accuracy_targets: vec![0.80, 0.85, 0.90],
        }
    }
}

impl TransferConfig {
    /// Refuse impossible requests before anything trains.
    pub fn validate(&self, classes: usize, train_counts: &[usize]) -> Result<()> {
        let check = |what: &str, v: &[usize]| -> Result<()> {
            if v.is_empty() {
                return Err(Error::invalid(format!("name at least one {what} class")));
            }
            if let Some(&c) = v.iter().find(|&&c| c >= classes) {
                return Err(Error::invalid(format!("{what} class {c} is unknown: the data has {classes} classes (0..{})", classes.saturating_sub(1))));
            }
            let mut s = v.to_vec();
            s.sort_unstable();
            s.dedup();
            if s.len() != v.len() {
                return Err(Error::invalid(format!("a {what} class is named twice")));
            }
            Ok(())
        };
        check("target", &self.target_classes)?;
        if self.target_classes.len() < 2 {
            return Err(Error::invalid("the target task needs at least two classes"));
        }
        if self.regimes.is_empty() {
            return Err(Error::invalid("choose at least one regime"));
        }
        if self.regimes.contains(&Regime::Transfer) {
            check("source", &self.source_classes)?;
            if let Some(c) = self.source_classes.iter().find(|c| self.target_classes.contains(c)) {
                return Err(Error::invalid(format!("class {c} is both a source and a target class: transfer needs another task")));
            }
        }
        if !(0.0..1.0).contains(&self.noise) {
            return Err(Error::invalid(format!("the weak-label noise {} must be in [0, 1)", self.noise)));
        }
        if self.labels_per_class.is_empty() || self.labels_per_class.contains(&0) {
            return Err(Error::invalid("labels per class must be at least 1"));
        }
        let most = *self.labels_per_class.iter().max().unwrap_or(&0);
        for &c in &self.target_classes {
            if train_counts.get(c).copied().unwrap_or(0) < most {
                return Err(Error::invalid(format!(
                    "{most} labels per class asked for; class {c} has only {} training images",
                    train_counts.get(c).copied().unwrap_or(0)
                )));
            }
        }
        if self.epochs == 0 || self.batch_size == 0 || self.pretrain_epochs == 0 {
            return Err(Error::invalid("epochs, pre-training epochs and the batch size must be at least 1"));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(Error::invalid("the learning rate must be a positive number"));
        }
        if !(self.label_cost.is_finite() && self.label_cost >= 0.0) {
            return Err(Error::invalid("the label cost must be a non-negative number"));
        }
        if self.test_limit == Some(0) {
            return Err(Error::invalid("--test-limit must be at least 1"));
        }
        Ok(())
    }
}

/// The images of `classes` (in that order), relabelled 0..len, with those classes' names.
pub fn task(set: &LabelledImages, classes: &[usize]) -> LabelledImages {
    set.of_classes(classes)
}

/// A seeded order of each class's images in `set` (the `n`-label subsets are its prefixes, so
/// the curve's points are nested: the 50 labels include the 10).
pub fn label_order(set: &LabelledImages, seed: u64) -> Vec<Vec<usize>> {
    let mut per: Vec<Vec<usize>> = vec![Vec::new(); set.classes.len()];
    for (i, &l) in set.labels.iter().enumerate() {
        per[l].push(i);
    }
    let mut rng = Rng::new(seed ^ 0x1AB_E15);
    for v in &mut per {
        rng.shuffle(v);
    }
    per
}

/// The first `n` of each class's order.
pub fn labelled_subset(set: &LabelledImages, order: &[Vec<usize>], n: usize) -> LabelledImages {
    let mut idx: Vec<usize> = order.iter().flat_map(|v| v.iter().take(n).copied()).collect();
    idx.sort_unstable();
    set.subset(&idx)
}

/// One point of a learning curve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransferResult {
    pub regime: Regime,
    pub labels_per_class: usize,
    pub test_accuracy: f64,
    pub balanced_accuracy: f64,
    /// Fine-tuning time (pre-training and feature extraction are shared and reported apart).
    pub seconds: f64,
    /// Per epoch: held-out accuracy.
    pub curve: Vec<f64>,
}
