//! The sampling lab: make a training set imbalanced (a long tail, or per-class counts), train
//! the same model under different sampling strategies (uniform, ignore, undersample,
//! oversample, hard-example mining, loss weighting, and combinations), and compare what each
//! does to the rare classes, the costs and the predicted class frequencies.

mod compare;
mod runs;
mod strategy;

use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::card::InputSpec;
use crate::data::LabelledImages;
use crate::error::{Error, Result};
use crate::models::SmallCnnConfig;
use crate::rng::Rng;
use crate::train::TrainSettings;

pub use compare::{ComparisonRow, compare, comparison_csv, confusions, prior_corrected, rare_classes, true_distribution};
pub use runs::{MINED_KEPT, MinedSample, RunConfig, RunRecord, load_run, run_strategy, save_run};
pub use strategy::{HARD_FRACTION, MineBy, MiningSettings, Strategy, StrategyPlan, StrategySpec, WeightScheme, class_weights};

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
            return Err(Error::invalid(format!("class {i} would have no training images left; lower the ratio or raise the per-class count")));
        }
        Ok(t)
    }
}

/// A seeded subset of `set` with `targets[c]` images of class c (the first ones of a seeded
/// shuffle), and the images it left out.
pub fn imbalanced_split(set: &LabelledImages, targets: &[usize], seed: u64) -> (LabelledImages, LabelledImages) {
    let kept = imbalanced_subset(set, targets, seed);
    let in_kept: std::collections::HashSet<&str> = kept.sources.iter().map(String::as_str).collect();
    let rest: Vec<usize> = (0..set.len()).filter(|&i| !in_kept.contains(set.sources[i].as_str())).collect();
    let held = set.subset(&rest);
    (kept, held)
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

/// The lab's training and held-out sets, and the input its models take.
pub struct LabData {
    pub train: LabelledImages,
    pub test: LabelledImages,
    /// The training images the profile left out (`collect:N` draws more rare-class images
    /// from them).
    pub held_back: LabelledImages,
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
            )));
        }
        (None, None) => crate::data::load_source(&crate::data::resolve_source(data, "t10k")?, &input, &classes)
            .map_err(|e| Error::invalid(format!("no held-out data ({e}): give a test set or hold some images out")))?,
    };
    let targets = profile.targets(&full.class_counts(), per_class)?;
    let (train, held_back) = imbalanced_split(&full, &targets, seed);
    check_memory(train.len(), train.image_len(), test.len(), classes.len(), runs, targets.iter().copied().max().unwrap_or(0))?;
    if is_folder {
        let (mean, std) = pixel_mean_std(&train.pixels);
        input.mean = vec![mean];
        input.std = vec![std];
    }
    Ok(LabData { train, test, held_back, input })
}

/// `train` plus `n` more images of its rare classes (split evenly between them) from
/// `held_back`, in a seeded order: collecting more rare data.
pub fn collect_rare(train: &LabelledImages, held_back: &LabelledImages, n: usize, seed: u64) -> Result<LabelledImages> {
    let rare = rare_classes(&train.class_counts());
    if rare.is_empty() {
        return Err(Error::invalid("collect:N needs rare classes (a long tail)"));
    }
    let mut order: Vec<usize> = (0..held_back.len()).filter(|&i| rare.contains(&held_back.labels[i])).collect();
    Rng::new(seed ^ COLLECT_STREAM).shuffle(&mut order);
    let available = order.len();
    if available < n {
        return Err(Error::invalid(format!("collect:{n} asks for {n} more rare-class images; the data holds back only {available}")));
    }
    // round-robin over the rare classes, so each gets its share
    let mut per_class: Vec<Vec<usize>> = rare.iter().map(|&c| order.iter().copied().filter(|&i| held_back.labels[i] == c).collect()).collect();
    let mut picked = Vec::with_capacity(n);
    let mut r = 0;
    while picked.len() < n {
        if let Some(i) = per_class[r % rare.len()].pop() {
            picked.push(i);
        } else if per_class.iter().all(Vec::is_empty) {
            break;
        }
        r += 1;
    }
    let extra = held_back.subset(&picked);
    let mut out = train.clone();
    out.pixels.extend_from_slice(&extra.pixels);
    out.labels.extend_from_slice(&extra.labels);
    out.sources.extend_from_slice(&extra.sources);
    Ok(out)
}

/// Mixed into the seed for `collect:N`'s draw.
const COLLECT_STREAM: u64 = 0x0C01_1EC7;

/// Mixed into the seed for the held-out draw, so it is not the stream that picks the tail.
const HOLDOUT_STREAM: u64 = 0x5EED_401D;

/// Mean and standard deviation of 0..255 pixels on the 0..1 scale (std at least 1e-3).
fn pixel_mean_std(pixels: &[u8]) -> (f32, f32) {
    let n = pixels.len().max(1) as f64;
    let mean = pixels.iter().map(|&p| p as f64 / 255.0).sum::<f64>() / n;
    let var = pixels.iter().map(|&p| (p as f64 / 255.0 - mean).powi(2)).sum::<f64>() / n;
    (mean as f32, (var.sqrt() as f32).max(1e-3))
}

/// The run configuration of one strategy (oversampling and negative mining also flip images).
pub fn run_config(
    spec: &StrategySpec,
    profile: &Profile,
    per_class: Option<usize>,
    architecture: SmallCnnConfig,
    input: &InputSpec,
    settings: TrainSettings,
) -> RunConfig {
    RunConfig {
        strategy: spec.clone(),
        profile: profile.clone(),
        per_class,
        architecture,
        input: input.clone(),
        // samplers that repeat the rare images many times an epoch also flip them
        settings: TrainSettings { augment_flip: spec.parts.contains(&Strategy::Oversample) || spec.parts.contains(&Strategy::Hnm), ..settings },
        mining: MiningSettings::default(),
        merges: Vec::new(),
        collected: spec.parts.iter().map(|p| if let Strategy::Collect(n) = p { *n } else { 0 }).sum(),
    }
}

/// Refuse requests that cannot fit: the training set once, plus per run an oversampled epoch's
/// index list and the held-out predictions, against the memory the system says is free.
pub fn check_memory(train_len: usize, image_bytes: usize, test_len: usize, k: usize, runs: usize, max_class: usize) -> Result<()> {
    let per_run = k as u128 * max_class as u128 * 16 + test_len as u128 * (k as u128 * 4 + 64);
    let need = train_len as u128 * (image_bytes as u128 + 64) + runs as u128 * per_run;
    if let Some(avail) = available_memory().map(u128::from)
        && need > avail / 2
    {
        return Err(Error::invalid(format!(
            "{runs} runs need about {} MB and only {} MB are free: run fewer strategies or use --per-class",
            need >> 20,
            avail >> 20
        )));
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
    use crate::metrics::Predictions;
    use crate::train::EpochPlan;

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
        let mut over = StrategyPlan::new(labels.clone(), 2, &"oversample".parse().unwrap(), None, 1, &MiningSettings::default()).unwrap();
        let idx = over.indices(1, &mut rng);
        assert_eq!(idx.len(), 180);
        assert_eq!(idx.iter().filter(|&&i| labels[i] == 1).count(), 90);
        let mut under = StrategyPlan::new(labels.clone(), 2, &"undersample".parse().unwrap(), None, 1, &MiningSettings::default()).unwrap();
        assert_eq!(under.indices(1, &mut rng).len(), 20);
        let w = class_weights(&[90, 10], &WeightScheme::InverseFrequency, None).unwrap();
        assert!((w[1] / w[0] - 9.0).abs() < 1e-5);
        let weighted = StrategyPlan::new(labels, 2, &"weighted".parse().unwrap(), None, 1, &MiningSettings::default()).unwrap();
        assert!(weighted.class_weights().is_some());
    }

    #[test]
    fn prior_correction_moves_mass_towards_rare_classes() {
        let p = Predictions::from_probs(vec!["a".into(), "b".into()], vec!["x".into()], vec![1], vec![vec![0.6, 0.4]]);
        let c = prior_corrected(&p, &[0.9, 0.1], &[0.5, 0.5]);
        assert_eq!(c.preds, vec![1]);
    }
}
