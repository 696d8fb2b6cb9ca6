//! The sampling strategies: which samples an epoch visits, how often, with which class
//! weights; combinations with `+`.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::metrics::{self, CostMatrix};
use crate::rng::Rng;
use crate::train::EpochPlan;

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
    /// Hard negative mining, as the lesson describes it: every rare-class sample, plus the
    /// frequent-class samples most likely to be misclassified, chosen again each epoch by
    /// scoring the frequent pool with the current model (see [`MiningSettings`]).
    Hnm,
    /// Samples drawn in proportion to their latest loss (the older, simpler "hard example"
    /// sampler).
    LossProportional,
    /// Collect N more real rare-class images (from those the long tail held back), then train
    /// as the other parts say.
    Collect(usize),
    /// Loss weighting.
    Weighted(WeightScheme),
}

/// What makes a frequent-class sample "hard" for negative mining.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum MineBy {
    /// The probability of any wrong class (1 - p(true class)).
    #[default]
    Wrong,
    /// The probability of the rare classes (the negatives that look like positives).
    Rare,
}

/// Negative mining draws its hard negatives from this hardest share of the frequent pool.
pub const HARD_FRACTION: f64 = 0.25;

/// Negative mining's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MiningSettings {
    pub by: MineBy,
    /// Frequent-class samples per rare-class sample in an epoch.
    pub ratio: f64,
    /// Share of the frequent-class samples drawn at random, so easy ones are not forgotten.
    pub random_share: f64,
}

impl Default for MiningSettings {
    fn default() -> Self {
        MiningSettings { by: MineBy::Wrong, ratio: 3.0, random_share: 0.2 }
    }
}

impl MiningSettings {
    pub fn validate(&self) -> Result<()> {
        if !(self.ratio.is_finite() && self.ratio > 0.0 && self.ratio <= 1000.0) {
            return Err(Error::invalid(format!("the mining ratio {} must be in (0, 1000]", self.ratio)));
        }
        if !(0.0..=1.0).contains(&self.random_share) {
            return Err(Error::invalid(format!("the random share {} must be in [0, 1]", self.random_share)));
        }
        Ok(())
    }
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
                "loss-proportional" => Ok(Strategy::LossProportional),
                c if c.starts_with("collect:") => match c["collect:".len()..].parse::<usize>() {
                    Ok(n) if n > 0 => Ok(Strategy::Collect(n)),
                    _ => Err(Error::invalid(format!("'{c}': collect:N with N at least 1, e.g. collect:200"))),
                },
                "weighted" | "weighted-inverse" => Ok(Strategy::Weighted(WeightScheme::InverseFrequency)),
                "weighted-effective" => Ok(Strategy::Weighted(WeightScheme::EffectiveNumber(0.999))),
                "weighted-cost" => Ok(Strategy::Weighted(WeightScheme::FromCost)),
                other => Err(Error::invalid(format!(
                    "unknown strategy '{other}': use uniform, ignore, undersample, oversample, hnm, loss-proportional, weighted (-inverse, -effective, -cost), collect:N, or combine them with +"
                ))),
            })
            .collect::<Result<Vec<_>>>()?;
        let samplers = parts.iter().filter(|p| !matches!(p, Strategy::Weighted(_) | Strategy::Uniform | Strategy::Collect(_))).count();
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
    /// Latest loss of each sample (the loss-proportional sampler).
    losses: Vec<f32>,
    /// How many times each class has been visited, weighted: the training prior.
    pub seen: Vec<f64>,
    mining: MiningSettings,
    /// Classes below the median count (negative mining keeps all of them).
    rare: Vec<bool>,
    /// The hard frequent-class samples chosen for the next epoch, hardest first.
    hard: Option<Vec<usize>>,
    /// How many epochs each sample was mined as a hard negative.
    pub mined: Vec<u32>,
}

impl StrategyPlan {
    pub fn new(labels: Vec<usize>, k: usize, spec: &StrategySpec, cost: Option<&CostMatrix>, seed: u64, mining: &MiningSettings) -> Result<StrategyPlan> {
        mining.validate()?;
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
        let rare_classes = super::rare_classes(&counts);
        let rare = (0..k).map(|c| rare_classes.contains(&c)).collect();
        Ok(StrategyPlan {
            labels,
            k,
            parts: spec.parts.clone(),
            weights,
            kept,
            losses: vec![f32::NAN; n],
            seen: vec![0.0; k],
            mining: mining.clone(),
            rare,
            hard: None,
            mined: vec![0; n],
        })
    }

    /// The frequent-class samples.
    fn frequent_pool(&self) -> Vec<usize> {
        (0..self.labels.len()).filter(|&i| !self.rare[self.labels[i]]).collect()
    }

    /// An epoch of negative mining: as many samples as the data has, a `1 / (1 + ratio)` share of
    /// them rare-class samples (drawn with replacement), the rest frequent-class ones: the hard
    /// ones chosen by the last scoring, topped up at random (all at random before the first
    /// scoring).
    fn mining_epoch(&self, rng: &mut Rng) -> Vec<usize> {
        let n = self.labels.len();
        let rare: Vec<usize> = (0..n).filter(|&i| self.rare[self.labels[i]]).collect();
        let pool = self.frequent_pool();
        if rare.is_empty() || pool.is_empty() {
            return (0..n).collect();
        }
        let n_rare = ((n as f64 / (1.0 + self.mining.ratio)).round() as usize).clamp(1, n);
        let n_frequent = n - n_rare;
        let mut idx: Vec<usize> = (0..n_rare).map(|_| rare[rng.below(rare.len())]).collect();
        let n_hard = match self.hard.as_deref() {
            Some(hard) if !hard.is_empty() => {
                let n_hard = (n_frequent as f64 * (1.0 - self.mining.random_share)).round() as usize;
                idx.extend((0..n_hard).map(|_| hard[rng.below(hard.len())]));
                n_hard
            }
            _ => 0,
        };
        idx.extend((n_hard..n_frequent).map(|_| pool[rng.below(pool.len())]));
        idx
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
    if mean.is_nan() || mean <= 0.0 {
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
        } else if self.parts.contains(&Strategy::Hnm) {
            self.mining_epoch(rng)
        } else if self.parts.contains(&Strategy::LossProportional) && self.losses.iter().any(|l| l.is_finite()) {
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

    /// Negative mining scores the frequent pool with the current model before every epoch but
    /// the first.
    fn to_score(&mut self, epoch: usize) -> Vec<usize> {
        if self.parts.contains(&Strategy::Hnm) && epoch > 1 { self.frequent_pool() } else { Vec::new() }
    }

    fn scored(&mut self, indices: &[usize], probs: &[Vec<f32>]) {
        let hardness = |i: usize, p: &[f32]| -> f32 {
            match self.mining.by {
                MineBy::Wrong => 1.0 - p[self.labels[i]],
                MineBy::Rare => (0..self.k).filter(|&c| self.rare[c]).map(|c| p[c]).sum(),
            }
        };
        let mut scored: Vec<(usize, f32)> = indices.iter().zip(probs).map(|(&i, p)| (i, hardness(i, p))).collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let n_hard = ((scored.len() as f64 * HARD_FRACTION).ceil() as usize).max(1);
        let hard: Vec<usize> = scored.iter().take(n_hard).map(|&(i, _)| i).collect();
        for &i in &hard {
            self.mined[i] += 1;
        }
        self.hard = Some(hard);
    }
}
