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
