//! The sampling lab: make a training set imbalanced (a long tail, or per-class counts), train
//! the same model under different sampling strategies (uniform, ignore, undersample,
//! oversample, hard-example mining, loss weighting, and combinations), and compare what each
//! does to the rare classes, the costs and the predicted class frequencies.

use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::card::{InputSpec, ModelCard, CARD_FORMAT};
use crate::data::LabelledImages;
use crate::error::{Error, Result};
use crate::metrics::{self, CostMatrix, Predictions};
use crate::models::{Architecture, Classifier, SmallCnnConfig};
use crate::progress::Progress;
use crate::rng::Rng;
use crate::train::{train_net, EpochPlan, EpochReport, TrainEvent, TrainSettings};

/// How many images of each class the training set keeps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Profile {
    /// The data as it is.
    AsIs,
    /// `rare` classes keep 1/`ratio` of the others' count; with no rare classes named, counts
    /// fall off geometrically from the first class to the last (largest/smallest = ratio).
    LongTail { ratio: f64, rare: Vec<usize> },
    /// Explicit counts per class.
    Counts(Vec<usize>),
}

impl FromStr for Profile {
    type Err = Error;
    fn from_str(s: &str) -> Result<Profile> {
        let bad = || Error::invalid(format!("--profile '{s}': use asis, longtail:RATIO or counts:N0,N1,..."));
        if s == "asis" {
            return Ok(Profile::AsIs);
        }
        if let Some(r) = s.strip_prefix("longtail:") {
            let ratio: f64 = r.parse().map_err(|_| bad())?;
            return Ok(Profile::LongTail { ratio, rare: Vec::new() });
        }
        if let Some(c) = s.strip_prefix("counts:") {
            let counts = c.split(',').map(|v| v.trim().parse::<usize>()).collect::<std::result::Result<Vec<_>, _>>().map_err(|_| bad())?;
            return Ok(Profile::Counts(counts));
        }
        Err(bad())
    }
}

impl Profile {
    /// Target count per class, given what is available (at most `cap` per class).
    pub fn targets(&self, available: &[usize], cap: Option<usize>) -> Result<Vec<usize>> {
        let k = available.len();
        let base: Vec<usize> = available.iter().map(|&a| cap.map_or(a, |c| a.min(c))).collect();
        let top = base.iter().copied().max().unwrap_or(0);
        let t = match self {
            Profile::AsIs => base.clone(),
            Profile::LongTail { ratio, rare } => {
                if !ratio.is_finite() || *ratio < 1.0 {
                    return Err(Error::invalid(format!("the imbalance ratio {ratio} must be at least 1 (e.g. 100 for 100:1)")));
                }
                if let Some(&r) = rare.iter().find(|&&r| r >= k) {
                    return Err(Error::invalid(format!("rare class {r} is out of range (0..{})", k - 1)));
                }
                if rare.is_empty() {
                    (0..k)
                        .map(|i| {
                            let f = if k > 1 { ratio.powf(-(i as f64) / (k - 1) as f64) } else { 1.0 };
                            ((top as f64 * f).round() as usize).min(base[i])
                        })
                        .collect()
                } else {
                    (0..k).map(|i| if rare.contains(&i) { ((top as f64 / ratio).round() as usize).min(base[i]) } else { base[i] }).collect()
                }
            }
            Profile::Counts(c) => {
                if c.len() != k {
                    return Err(Error::invalid(format!("{} counts for {k} classes", c.len())));
                }
                if let Some(i) = (0..k).find(|&i| c[i] > available[i]) {
                    return Err(Error::invalid(format!("class {i}: {} images asked for, {} available", c[i], available[i])));
                }
                c.clone()
            }
        };
        if let Some(i) = (0..k).find(|&i| t[i] == 0 && available[i] > 0) {
            return Err(Error::invalid(format!(
                "class {i} would have no training images left; lower the ratio or raise the per-class count"
            )));
        }
        Ok(t)
    }
}

/// A seeded subset of `set` with `targets[c]` images of class c (the first ones of a seeded shuffle).
pub fn imbalanced_subset(set: &LabelledImages, targets: &[usize], seed: u64) -> LabelledImages {
    let mut order: Vec<usize> = (0..set.len()).collect();
    Rng::new(seed ^ 0x5eed).shuffle(&mut order);
    let mut taken = vec![0usize; targets.len()];
    let mut keep: Vec<usize> = order
        .into_iter()
        .filter(|&i| {
            let l = set.labels[i];
            if taken[l] < targets[l] {
                taken[l] += 1;
                true
            } else {
                false
            }
        })
        .collect();
    keep.sort_unstable();
    set.subset(&keep)
}

/// How a class's loss weight is derived.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightScheme {
    /// N / (K n_c).
    InverseFrequency,
    /// (1 - beta) / (1 - beta^n_c) (Cui et al., class-balanced loss), normalised to mean 1.
    EffectiveNumber(f64),
    /// The mean cost of missing the class, from the cost matrix.
    FromCost,
}

/// A sampling strategy; strategies combine with `+` (e.g. `oversample+weighted`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Every sample once per epoch (the baseline).
    Uniform,
    /// Drop majority samples once, down to a target count per class: the geometric mean of
    /// the smallest and largest class (halfway, on a log scale, to undersampling).
    Ignore,
    /// Each epoch, a fresh random subset of every class at the smallest class's count.
    Undersample,
    /// Each epoch, every class drawn with replacement up to the largest class's count.
    Oversample,
    /// Hard-example mining: samples are drawn in proportion to their latest loss.
    Hnm,
    /// Loss weighting.
    Weighted(WeightScheme),
}

/// A named combination of strategies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StrategySpec {
    pub name: String,
    pub parts: Vec<Strategy>,
}

impl FromStr for StrategySpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<StrategySpec> {
        let parts = s
            .split('+')
            .map(|p| match p.trim() {
                "uniform" => Ok(Strategy::Uniform),
                "ignore" => Ok(Strategy::Ignore),
                "undersample" => Ok(Strategy::Undersample),
                "oversample" => Ok(Strategy::Oversample),
                "hnm" => Ok(Strategy::Hnm),
                "weighted" | "weighted-inverse" => Ok(Strategy::Weighted(WeightScheme::InverseFrequency)),
                "weighted-effective" => Ok(Strategy::Weighted(WeightScheme::EffectiveNumber(0.999))),
                "weighted-cost" => Ok(Strategy::Weighted(WeightScheme::FromCost)),
                other => Err(Error::invalid(format!(
                    "unknown strategy '{other}': use uniform, ignore, undersample, oversample, hnm, weighted (-inverse, -effective, -cost), or combine them with +"
                ))),
            })
            .collect::<Result<Vec<_>>>()?;
        let samplers = parts.iter().filter(|p| !matches!(p, Strategy::Weighted(_) | Strategy::Uniform)).count();
        if samplers > 1 {
            return Err(Error::invalid(format!("'{s}' combines two sampling schemes; combine one sampler with weighting")));
        }
        Ok(StrategySpec { name: s.to_string(), parts })
    }
}

/// The epoch plan of a strategy: which samples, how often, with which class weights.
pub struct StrategyPlan {
    labels: Vec<usize>,
    k: usize,
    parts: Vec<Strategy>,
    weights: Option<Vec<f32>>,
    /// Samples kept by `Ignore`.
    kept: Option<Vec<usize>>,
    /// Latest loss of each sample (hard-example mining).
    losses: Vec<f32>,
    /// How many times each class has been visited, weighted: the training prior.
    pub seen: Vec<f64>,
}

impl StrategyPlan {
    pub fn new(labels: Vec<usize>, k: usize, spec: &StrategySpec, cost: Option<&CostMatrix>, seed: u64) -> Result<StrategyPlan> {
        let counts = metrics::class_counts(&labels, k);
        let mut weights = None;
        for p in &spec.parts {
            if let Strategy::Weighted(scheme) = p {
                weights = Some(class_weights(&counts, scheme, cost)?);
            }
        }
        let kept = spec.parts.contains(&Strategy::Ignore).then(|| {
            let present: Vec<usize> = counts.iter().copied().filter(|&c| c > 0).collect();
            let (lo, hi) = (present.iter().copied().min().unwrap_or(1), present.iter().copied().max().unwrap_or(1));
            let target = ((lo as f64 * hi as f64).sqrt().round() as usize).max(lo);
            let mut order: Vec<usize> = (0..labels.len()).collect();
            Rng::new(seed ^ 0x16_0e).shuffle(&mut order);
            let mut taken = vec![0usize; k];
            let mut keep: Vec<usize> = order
                .into_iter()
                .filter(|&i| {
                    taken[labels[i]] += 1;
                    taken[labels[i]] <= target
                })
                .collect();
            keep.sort_unstable();
            keep
        });
        let n = labels.len();
        Ok(StrategyPlan { labels, k, parts: spec.parts.clone(), weights, kept, losses: vec![f32::NAN; n], seen: vec![0.0; k] })
    }

    fn by_class(&self) -> Vec<Vec<usize>> {
        let mut v = vec![Vec::new(); self.k];
        for (i, &l) in self.labels.iter().enumerate() {
            v[l].push(i);
        }
        v
    }
}

/// Class weights, normalised so the average sample weight is 1.
pub fn class_weights(counts: &[usize], scheme: &WeightScheme, cost: Option<&CostMatrix>) -> Result<Vec<f32>> {
    let k = counts.len();
    let n: usize = counts.iter().sum();
    let raw: Vec<f64> = match scheme {
        WeightScheme::InverseFrequency => counts.iter().map(|&c| if c == 0 { 0.0 } else { n as f64 / (k as f64 * c as f64) }).collect(),
        WeightScheme::EffectiveNumber(beta) => counts.iter().map(|&c| if c == 0 { 0.0 } else { (1.0 - beta) / (1.0 - beta.powi(c as i32)) }).collect(),
        WeightScheme::FromCost => {
            let c = cost.ok_or_else(|| Error::invalid("weights from costs need a cost matrix (--cost)"))?;
            if c.k() != k {
                return Err(Error::invalid(format!("the cost matrix is {}x{}, the data has {k} classes", c.k(), c.k())));
            }
            (0..k).map(|i| (0..k).filter(|&j| j != i).map(|j| c.costs[i][j]).sum::<f64>() / (k - 1).max(1) as f64).collect()
        }
    };
    let mean = raw.iter().zip(counts).map(|(w, &c)| w * c as f64).sum::<f64>() / n.max(1) as f64;
    if !(mean > 0.0) {
        return Err(Error::invalid("the class weights are all zero"));
    }
    Ok(raw.iter().map(|w| (w / mean) as f32).collect())
}

impl EpochPlan for StrategyPlan {
    fn indices(&mut self, _epoch: usize, rng: &mut Rng) -> Vec<usize> {
        let by_class = self.by_class();
        let present: Vec<usize> = by_class.iter().map(Vec::len).filter(|&c| c > 0).collect();
        let mut idx: Vec<usize> = if let Some(kept) = &self.kept {
            kept.clone()
        } else if self.parts.contains(&Strategy::Undersample) {
            let m = present.iter().copied().min().unwrap_or(0);
            by_class
                .iter()
                .flat_map(|members| {
                    let mut v = members.clone();
                    rng.shuffle(&mut v);
                    v.truncate(m);
                    v
                })
                .collect()
        } else if self.parts.contains(&Strategy::Oversample) {
            let m = present.iter().copied().max().unwrap_or(0);
            by_class
                .iter()
                .filter(|members| !members.is_empty())
                .flat_map(|members| {
                    let mut v = members.clone();
                    while v.len() < m {
                        v.push(members[rng.below(members.len())]);
                    }
                    v
                })
                .collect()
        } else if self.parts.contains(&Strategy::Hnm) && self.losses.iter().any(|l| l.is_finite()) {
            // draw N samples with probability proportional to (loss + mean loss): hard ones
            // more often, none never
            let seen: Vec<f32> = self.losses.iter().copied().filter(|l| l.is_finite()).collect();
            let mean = seen.iter().sum::<f32>() / seen.len() as f32;
            let w: Vec<f64> = self.losses.iter().map(|&l| (if l.is_finite() { l } else { mean } + mean) as f64).collect();
            let mut cum = Vec::with_capacity(w.len());
            let mut acc = 0.0;
            for v in &w {
                acc += v;
                cum.push(acc);
            }
            (0..self.labels.len())
                .map(|_| {
                    let r = rng.next_f64() * acc;
                    cum.partition_point(|&c| c < r).min(self.labels.len() - 1)
                })
                .collect()
        } else {
            (0..self.labels.len()).collect()
        };
        rng.shuffle(&mut idx);
        for &i in &idx {
            let l = self.labels[i];
            self.seen[l] += self.weights.as_ref().map_or(1.0, |w| w[l] as f64);
        }
        idx
    }

    fn class_weights(&self) -> Option<Vec<f32>> {
        self.weights.clone()
    }

    fn observe(&mut self, indices: &[usize], losses: &[f32]) {
        for (&i, &l) in indices.iter().zip(losses) {
            self.losses[i] = l;
        }
    }
}

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

/// The lab's training and held-out sets, and the input its models take.
pub struct LabData {
    pub train: LabelledImages,
    pub test: LabelledImages,
    /// 28x28 grey; normalised with Fashion-MNIST's statistics for IDX data, with the training
    /// images' own for a class-per-folder tree.
    pub input: InputSpec,
}

/// Load the training data, hold out a test set (`test`, or `holdout` images drawn at random
/// with `seed`, or the `t10k` split beside an IDX folder), apply the profile, and check the
/// runs fit in memory. IDX data has Fashion-MNIST's classes; a class-per-folder tree has its
/// sub-folders' names, sorted as torchvision's `ImageFolder` does, and images of any size or
/// colour are brought to 28x28 grey.
#[allow(clippy::too_many_arguments)]
pub fn prepare_lab_data(
    data: &Path,
    data_split: &str,
    test: Option<&Path>,
    holdout: Option<usize>,
    profile: &Profile,
    per_class: Option<usize>,
    seed: u64,
    runs: usize,
) -> Result<LabData> {
    let mut input = crate::data::fashion_input();
    let source = crate::data::resolve_source(data, data_split)?;
    let is_folder = matches!(source, crate::data::DataSource::Folder(_));
    let classes = match &source {
        crate::data::DataSource::Folder(dir) => crate::data::folder_classes(dir)?,
        crate::data::DataSource::Idx { .. } => crate::data::fashion_classes(),
    };
    let mut full = crate::data::load_source(&source, &input, &classes)?;
    let test = match (holdout, test) {
        (Some(n), _) => {
            if n == 0 || n >= full.len() {
                return Err(Error::invalid(format!("holding out {n} images must leave images to train on (the data has {})", full.len())));
            }
            // at random: a class-per-folder tree is read class after class
            let mut order: Vec<usize> = (0..full.len()).collect();
            Rng::new(seed ^ HOLDOUT_STREAM).shuffle(&mut order);
            let (mut held, mut kept) = (order[..n].to_vec(), order[n..].to_vec());
            held.sort_unstable();
            kept.sort_unstable();
            let t = full.subset(&held);
            full = full.subset(&kept);
            t
        }
        (None, Some(t)) => crate::data::load_source(&crate::data::resolve_source(t, "t10k")?, &input, &classes)?,
        (None, None) if is_folder => {
            return Err(Error::invalid(format!(
                "{} is a class-per-folder tree with no test split: give a held-out folder (--test) or hold some images out (--holdout N)",
                data.display()
            )))
        }
        (None, None) => crate::data::load_source(&crate::data::resolve_source(data, "t10k")?, &input, &classes)
            .map_err(|e| Error::invalid(format!("no held-out data ({e}): give a test set or hold some images out")))?,
    };
    let targets = profile.targets(&full.class_counts(), per_class)?;
    let train = imbalanced_subset(&full, &targets, seed);
    check_memory(train.len(), train.image_len(), test.len(), classes.len(), runs, targets.iter().copied().max().unwrap_or(0))?;
    if is_folder {
        let (mean, std) = pixel_mean_std(&train.pixels);
        input.mean = vec![mean];
        input.std = vec![std];
    }
    Ok(LabData { train, test, input })
}

/// Mixed into the seed for the held-out draw, so it is not the stream that picks the tail.
const HOLDOUT_STREAM: u64 = 0x5EED_401D;

/// Mean and standard deviation of 0..255 pixels on the 0..1 scale (std at least 1e-3).
fn pixel_mean_std(pixels: &[u8]) -> (f32, f32) {
    let n = pixels.len().max(1) as f64;
    let mean = pixels.iter().map(|&p| p as f64 / 255.0).sum::<f64>() / n;
    let var = pixels.iter().map(|&p| (p as f64 / 255.0 - mean).powi(2)).sum::<f64>() / n;
    (mean as f32, (var.sqrt() as f32).max(1e-3))
}

/// The run configuration of one strategy (oversampling also flips images).
pub fn run_config(spec: &StrategySpec, profile: &Profile, per_class: Option<usize>, architecture: SmallCnnConfig, input: &InputSpec, settings: TrainSettings) -> RunConfig {
    RunConfig {
        strategy: spec.clone(),
        profile: profile.clone(),
        per_class,
        architecture,
        input: input.clone(),
        settings: TrainSettings { augment_flip: spec.parts.contains(&Strategy::Oversample), ..settings },
    }
}

/// Reweight probabilities by test prior / training prior and renormalise.
pub fn prior_corrected(p: &Predictions, train_prior: &[f64], test_prior: &[f64]) -> Predictions {
    let Some(probs) = &p.probs else { return p.clone() };
    let ratio: Vec<f64> = train_prior.iter().zip(test_prior).map(|(&tr, &te)| if tr > 0.0 { te / tr } else { 0.0 }).collect();
    let corrected: Vec<Vec<f32>> = probs
        .iter()
        .map(|row| {
            let w: Vec<f64> = row.iter().zip(&ratio).map(|(&v, &r)| v as f64 * r).collect();
            let s: f64 = w.iter().sum();
            w.iter().map(|v| if s > 0.0 { (v / s) as f32 } else { 0.0 }).collect()
        })
        .collect();
    Predictions::from_probs(p.classes.clone(), p.paths.clone(), p.labels.clone(), corrected)
}

/// One row of the comparison table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComparisonRow {
    pub strategy: String,
    pub accuracy: f64,
    pub balanced_accuracy: f64,
    pub recall: Vec<f64>,
    /// Mean recall of the rare classes (those below the median training count).
    pub rare_recall: f64,
    pub total_cost: f64,
    pub expected_cost: f64,
    /// Fraction of test predictions per class.
    pub predicted_distribution: Vec<f64>,
    pub train_seconds: f64,
}

/// Classes with fewer training images than the median class.
pub fn rare_classes(train_counts: &[usize]) -> Vec<usize> {
    let mut sorted = train_counts.to_vec();
    sorted.sort_unstable();
    let median = sorted[sorted.len() / 2];
    (0..train_counts.len()).filter(|&c| train_counts[c] < median).collect()
}

/// The comparison table; with `prior_correction` the probabilities are first reweighted by
/// test prior / each run's training prior.
pub fn compare(records: &[RunRecord], cost: &CostMatrix, prior_correction: bool) -> Vec<ComparisonRow> {
    records
        .iter()
        .map(|r| {
            let k = r.classes.len();
            let test_counts = metrics::class_counts(&r.test.labels, k);
            let n = r.test.len().max(1) as f64;
            let test_prior: Vec<f64> = test_counts.iter().map(|&c| c as f64 / n).collect();
            let p = if prior_correction { prior_corrected(&r.test, &r.train_prior, &test_prior) } else { r.test.clone() };
            let rep = metrics::report(&p, Some(cost));
            let recall: Vec<f64> = rep.per_class.iter().map(|m| m.recall).collect();
            let rare = rare_classes(&r.train_counts);
            let rare_recall = if rare.is_empty() { f64::NAN } else { rare.iter().map(|&c| recall[c]).sum::<f64>() / rare.len() as f64 };
            let c = rep.cost_argmax.expect("a cost matrix was given");
            ComparisonRow {
                strategy: r.config.strategy.name.clone(),
                accuracy: rep.summary.accuracy,
                balanced_accuracy: rep.summary.balanced_accuracy,
                recall,
                rare_recall,
                total_cost: c.total,
                expected_cost: c.expected_mean.unwrap_or(f64::NAN),
                predicted_distribution: rep.predicted_counts.iter().map(|&c| c as f64 / n).collect(),
                train_seconds: r.seconds,
            }
        })
        .collect()
}

/// The table as CSV: one row per strategy.
pub fn comparison_csv(rows: &[ComparisonRow], classes: &[String]) -> String {
    let mut out = String::from("strategy,accuracy,balanced_accuracy,rare_recall,total_cost,expected_cost");
    for c in classes {
        out.push_str(&format!(",recall {}", c.replace(',', " ")));
    }
    for c in classes {
        out.push_str(&format!(",predicted {}", c.replace(',', " ")));
    }
    out.push('\n');
    for r in rows {
        out.push_str(&format!("{},{:.6},{:.6},{:.6},{:.3},{:.6}", r.strategy, r.accuracy, r.balanced_accuracy, r.rare_recall, r.total_cost, r.expected_cost));
        for v in r.recall.iter().chain(&r.predicted_distribution) {
            out.push_str(&format!(",{v:.6}"));
        }
        out.push('\n');
    }
    out
}

/// Refuse requests that cannot fit: the training set once, plus per run an oversampled epoch's
/// index list and the held-out predictions, against the memory the system says is free.
pub fn check_memory(train_len: usize, image_bytes: usize, test_len: usize, k: usize, runs: usize, max_class: usize) -> Result<()> {
    let per_run = k as u128 * max_class as u128 * 16 + test_len as u128 * (k as u128 * 4 + 64);
    let need = train_len as u128 * (image_bytes as u128 + 64) + runs as u128 * per_run;
    if let Some(avail) = available_memory().map(u128::from) {
        if need > avail / 2 {
            return Err(Error::invalid(format!(
                "{runs} runs need about {} MB and only {} MB are free: run fewer strategies or use --per-class",
                need >> 20,
                avail >> 20
            )));
        }
    }
    Ok(())
}

fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_tail_targets_and_impossible_requests() {
        let avail = vec![1000; 10];
        let t = Profile::LongTail { ratio: 100.0, rare: vec![4, 6] }.targets(&avail, None).unwrap();
        assert_eq!(t[4], 10);
        assert_eq!(t[6], 10);
        assert_eq!(t[0], 1000);
        let g = Profile::LongTail { ratio: 100.0, rare: vec![] }.targets(&avail, None).unwrap();
        assert_eq!((g[0], g[9]), (1000, 10));
        assert!(Profile::LongTail { ratio: 0.5, rare: vec![] }.targets(&avail, None).is_err());
        let e = Profile::LongTail { ratio: 1000.0, rare: vec![3] }.targets(&avail, Some(400)).unwrap_err();
        assert!(e.to_string().contains("class 3 would have no training images"), "{e}");
        assert!("telepathy".parse::<StrategySpec>().is_err());
        assert!("oversample+undersample".parse::<StrategySpec>().is_err());
        assert!("oversample+weighted".parse::<StrategySpec>().is_ok());
    }

    #[test]
    fn plans_balance_what_they_should() {
        let labels: Vec<usize> = (0..100).map(|i| if i < 90 { 0 } else { 1 }).collect();
        let mut rng = Rng::new(1);
        let mut over = StrategyPlan::new(labels.clone(), 2, &"oversample".parse().unwrap(), None, 1).unwrap();
        let idx = over.indices(1, &mut rng);
        assert_eq!(idx.len(), 180);
        assert_eq!(idx.iter().filter(|&&i| labels[i] == 1).count(), 90);
        let mut under = StrategyPlan::new(labels.clone(), 2, &"undersample".parse().unwrap(), None, 1).unwrap();
        assert_eq!(under.indices(1, &mut rng).len(), 20);
        let w = class_weights(&[90, 10], &WeightScheme::InverseFrequency, None).unwrap();
        assert!((w[1] / w[0] - 9.0).abs() < 1e-5);
        let weighted = StrategyPlan::new(labels, 2, &"weighted".parse().unwrap(), None, 1).unwrap();
        assert!(weighted.class_weights().is_some());
    }

    #[test]
    fn prior_correction_moves_mass_towards_rare_classes() {
        let p = Predictions::from_probs(vec!["a".into(), "b".into()], vec!["x".into()], vec![1], vec![vec![0.6, 0.4]]);
        let c = prior_corrected(&p, &[0.9, 0.1], &[0.5, 0.5]);
        assert_eq!(c.preds, vec![1]);
    }
}
