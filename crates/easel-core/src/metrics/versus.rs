//! Two models on the same labelled set: rows joined by path, the 2x2 agreement table, the
//! accuracy delta with a seeded paired-bootstrap interval, McNemar's exact test (as
//! statsmodels' `mcnemar(table, exact=True)`), per-class recall deltas and cost deltas. The
//! verdict in words says which model is better and how likely chance is.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{ConfusionMatrix, CostMatrix, Predictions, class_metrics, realised_cost};
use crate::error::{Error, Result};
use crate::rng::Rng;

/// Bootstrap resamples and seed unless told otherwise.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;
pub const BOOTSTRAP_SEED: u64 = 0;

/// Below this p-value a difference is called significant in the verdict.
pub const SIGNIFICANCE: f64 = 0.05;

/// One class: recall of each model on the samples of that class, and the delta (B - A).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassDelta {
    pub class: String,
    pub support: usize,
    pub recall_a: f64,
    pub recall_b: f64,
    /// `recall_b - recall_a`.
    pub delta: f64,
    /// Samples of this class A gets right and B wrong, and the other way round.
    pub a_only: usize,
    pub b_only: usize,
}

/// The cost of each model's most-probable-class decisions, and the delta (B - A).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CostDelta {
    pub total_a: f64,
    pub total_b: f64,
    /// `total_b - total_a`: negative when B's mistakes cost less.
    pub total_delta: f64,
    pub mean_a: f64,
    pub mean_b: f64,
    pub mean_delta: f64,
}

/// Model A against model B on the same samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersusReport {
    pub samples: usize,
    /// Both models right.
    pub both_right: usize,
    /// A right, B wrong.
    pub a_only: usize,
    /// B right, A wrong.
    pub b_only: usize,
    pub both_wrong: usize,
    pub accuracy_a: f64,
    pub accuracy_b: f64,
    /// `accuracy_b - accuracy_a`.
    pub accuracy_delta: f64,
    /// Percentile 95 % interval of the delta over paired bootstrap resamples of the samples.
    pub delta_ci95: [f64; 2],
    pub bootstrap_resamples: usize,
    pub bootstrap_seed: u64,
    /// McNemar's exact test: `min(a_only, b_only)`.
    pub mcnemar_statistic: usize,
    /// Two-sided binomial p-value of the discordant pairs (capped at 1), as statsmodels.
    pub mcnemar_p: f64,
    pub per_class: Vec<ClassDelta>,
    pub cost: Option<CostDelta>,
    /// The verdict in words.
    pub verdict: String,
}

/// How to compare.
#[derive(Clone, Copy, Debug)]
pub struct VersusOptions {
    pub resamples: usize,
    pub seed: u64,
}

impl Default for VersusOptions {
    fn default() -> Self {
        VersusOptions { resamples: BOOTSTRAP_RESAMPLES, seed: BOOTSTRAP_SEED }
    }
}

/// Which model got a sample right.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Side {
    /// A right, B wrong.
    AOnly,
    /// B right, A wrong.
    BOnly,
}

impl Side {
    pub fn title(self) -> &'static str {
        match self {
            Side::AOnly => "A right, B wrong",
            Side::BOnly => "B right, A wrong",
        }
    }
}

/// B's rows in A's order, joined by path. `a_name` and `b_name` name the files in errors. A
/// path in one file only, a path twice in one file, a label that differs, or another class
/// count is an error that names the path.
pub fn join_by_path(a: &Predictions, b: &Predictions, a_name: &str, b_name: &str) -> Result<Predictions> {
    if a.k() != b.k() {
        return Err(Error::invalid(format!("{a_name} has {} classes, {b_name} has {}: the two must score the same classes", a.k(), b.k())));
    }
    let index_of = |p: &Predictions, name: &str| -> Result<HashMap<String, usize>> {
        let mut m = HashMap::with_capacity(p.len());
        for (i, path) in p.paths.iter().enumerate() {
            if m.insert(path.clone(), i).is_some() {
                return Err(Error::invalid(format!("{name}: the path {path} appears twice")));
            }
        }
        Ok(m)
    };
    let ia = index_of(a, a_name)?;
    let ib = index_of(b, b_name)?;
    if let Some(path) = b.paths.iter().find(|p| !ia.contains_key(*p)) {
        return Err(Error::invalid(format!("{path} is in {b_name} but not in {a_name} ({} rows against {})", b.len(), a.len())));
    }
    let mut order = Vec::with_capacity(a.len());
    for (i, path) in a.paths.iter().enumerate() {
        let j = *ib.get(path).ok_or_else(|| Error::invalid(format!("{path} is in {a_name} but not in {b_name} ({} rows against {})", a.len(), b.len())))?;
        if a.labels[i] != b.labels[j] {
            return Err(Error::invalid(format!("{path} is labelled {} in {a_name} but {} in {b_name}", a.labels[i], b.labels[j])));
        }
        order.push(j);
    }
    Ok(Predictions {
        classes: b.classes.clone(),
        paths: order.iter().map(|&j| b.paths[j].clone()).collect(),
        labels: order.iter().map(|&j| b.labels[j]).collect(),
        probs: b.probs.as_ref().map(|ps| order.iter().map(|&j| ps[j].clone()).collect()),
        preds: order.iter().map(|&j| b.preds[j]).collect(),
    })
}

/// Compare A and B (B's rows are joined to A's by path first).
pub fn compare(
    a: &Predictions,
    b: &Predictions,
    cost: Option<&CostMatrix>,
    opts: VersusOptions,
    a_name: &str,
    b_name: &str,
) -> Result<(Predictions, VersusReport)> {
    let b = join_by_path(a, b, a_name, b_name)?;
    if let Some(c) = cost
        && c.k() != a.k()
    {
        return Err(Error::invalid(format!("the cost matrix is {} x {}, the predictions have {} classes", c.k(), c.k(), a.k())));
    }
    let report = compare_joined(a, &b, cost, opts);
    Ok((b, report))
}

/// Compare predictions whose rows are already the same samples in the same order.
pub fn compare_joined(a: &Predictions, b: &Predictions, cost: Option<&CostMatrix>, opts: VersusOptions) -> VersusReport {
    let n = a.len();
    let (mut both_right, mut a_only, mut b_only, mut both_wrong) = (0, 0, 0, 0);
    for i in 0..n {
        match (a.preds[i] == a.labels[i], b.preds[i] == b.labels[i]) {
            (true, true) => both_right += 1,
            (true, false) => a_only += 1,
            (false, true) => b_only += 1,
            (false, false) => both_wrong += 1,
        }
    }
    let nf = n.max(1) as f64;
    let accuracy_a = (both_right + a_only) as f64 / nf;
    let accuracy_b = (both_right + b_only) as f64 / nf;
    let accuracy_delta = accuracy_b - accuracy_a;
    let delta_ci95 = bootstrap_delta(n, a_only, b_only, opts);
    let (mcnemar_statistic, mcnemar_p) = mcnemar_exact(a_only, b_only);

    let k = a.k();
    let ma = class_metrics(&ConfusionMatrix::new(&a.labels, &a.preds, k), &a.classes);
    let mb = class_metrics(&ConfusionMatrix::new(&b.labels, &b.preds, k), &a.classes);
    let mut per_class: Vec<ClassDelta> = ma
        .iter()
        .zip(&mb)
        .map(|(x, y)| ClassDelta {
            class: x.class.clone(),
            support: x.support,
            recall_a: x.recall,
            recall_b: y.recall,
            delta: y.recall - x.recall,
            a_only: 0,
            b_only: 0,
        })
        .collect();
    for i in 0..n {
        let (ra, rb) = (a.preds[i] == a.labels[i], b.preds[i] == b.labels[i]);
        let c = &mut per_class[a.labels[i]];
        c.a_only += usize::from(ra && !rb);
        c.b_only += usize::from(rb && !ra);
    }
    let cost = cost.map(|c| {
        let ca = realised_cost(&a.labels, &a.preds, None, c);
        let cb = realised_cost(&b.labels, &b.preds, None, c);
        CostDelta { total_a: ca.total, total_b: cb.total, total_delta: cb.total - ca.total, mean_a: ca.mean, mean_b: cb.mean, mean_delta: cb.mean - ca.mean }
    });
    let mut r = VersusReport {
        samples: n,
        both_right,
        a_only,
        b_only,
        both_wrong,
        accuracy_a,
        accuracy_b,
        accuracy_delta,
        delta_ci95,
        bootstrap_resamples: opts.resamples,
        bootstrap_seed: opts.seed,
        mcnemar_statistic,
        mcnemar_p,
        per_class,
        cost,
        verdict: String::new(),
    };
    r.verdict = verdict(&r);
    r
}

/// The samples one model gets right and the other wrong, in row order.
pub fn disagreements(a: &Predictions, b: &Predictions, side: Side) -> Vec<usize> {
    (0..a.len().min(b.len()))
        .filter(|&i| {
            let (ra, rb) = (a.preds[i] == a.labels[i], b.preds[i] == b.labels[i]);
            match side {
                Side::AOnly => ra && !rb,
                Side::BOnly => rb && !ra,
            }
        })
        .collect()
}

/// McNemar's exact test: (statistic, p) with statistic `min(n01, n10)` and p twice the
/// binomial(n01 + n10, 1/2) CDF at it, capped at 1 (statsmodels' `mcnemar(exact=True)`). No
/// discordant pairs: p = 1.
pub fn mcnemar_exact(n01: usize, n10: usize) -> (usize, f64) {
    let m = n01.min(n10);
    let n = n01 + n10;
    (m, (2.0 * binomial_half_cdf(m, n)).min(1.0))
}

/// P(X <= m) for X ~ Binomial(n, 1/2), summed in log space so large n neither overflows nor
/// loses the small tail.
pub fn binomial_half_cdf(m: usize, n: usize) -> f64 {
    if m >= n {
        return 1.0;
    }
    // log C(n, k) by the recurrence C(n, k+1) = C(n, k) (n - k) / (k + 1)
    let mut log_c = 0.0f64;
    let mut logs = Vec::with_capacity(m + 1);
    for k in 0..=m {
        if k > 0 {
            log_c += ((n - k + 1) as f64).ln() - (k as f64).ln();
        }
        logs.push(log_c);
    }
    let top = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = logs.iter().map(|l| (l - top).exp()).sum();
    (top + sum.ln() - n as f64 * std::f64::consts::LN_2).exp().min(1.0)
}

/// The 2.5th and 97.5th percentiles of `accuracy_b - accuracy_a` over paired bootstrap
/// resamples (each resample draws `n` samples with replacement; a sample counts +1 when only
/// B is right, -1 when only A is).
fn bootstrap_delta(n: usize, a_only: usize, b_only: usize, opts: VersusOptions) -> [f64; 2] {
    if n == 0 || opts.resamples == 0 {
        return [0.0, 0.0];
    }
    let mut rng = Rng::new(opts.seed);
    let mut deltas: Vec<f64> = (0..opts.resamples)
        .map(|_| {
            let mut d: i64 = 0;
            for _ in 0..n {
                // samples 0..a_only are "A only", the next b_only "B only", the rest agree
                let i = rng.below(n);
                if i < a_only {
                    d -= 1;
                } else if i < a_only + b_only {
                    d += 1;
                }
            }
            d as f64 / n as f64
        })
        .collect();
    deltas.sort_by(f64::total_cmp);
    [percentile(&deltas, 2.5), percentile(&deltas, 97.5)]
}

/// NumPy's default (linear) percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// A p-value for people: four decimals, or scientific below 0.0001.
pub fn format_p(p: f64) -> String {
    if p >= 1e-4 { format!("{p:.4}") } else { format!("{p:.1e}") }
}

/// "B is better; a difference this large arises by chance with p = 0.0002".
pub fn verdict(r: &VersusReport) -> String {
    let points = (r.accuracy_delta * 100.0).abs();
    let p = format_p(r.mcnemar_p);
    match r.a_only.cmp(&r.b_only) {
        std::cmp::Ordering::Equal if r.a_only == 0 => "No difference: A and B are right and wrong on the same samples".into(),
        std::cmp::Ordering::Equal => format!("No difference in accuracy: each is right on {} samples the other gets wrong", r.a_only),
        order => {
            let better = if order == std::cmp::Ordering::Less { "B" } else { "A" };
            if r.mcnemar_p < SIGNIFICANCE {
                format!("{better} is better (by {points:.2} points); a difference this large arises by chance with p = {p}")
            } else {
                format!("{better} is ahead by {points:.2} points, but a difference this large arises by chance with p = {p}: not significant")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preds(paths: &[&str], labels: &[usize], preds: &[usize]) -> Predictions {
        Predictions {
            classes: vec!["x".into(), "y".into(), "z".into()],
            paths: paths.iter().map(|s| s.to_string()).collect(),
            labels: labels.to_vec(),
            probs: None,
            preds: preds.to_vec(),
        }
    }

    #[test]
    fn mcnemar_matches_the_binomial_by_hand() {
        // 2 * P(X <= 1), X ~ B(10, 1/2) = 2 * 11 / 1024
        let (s, p) = mcnemar_exact(1, 9);
        assert_eq!(s, 1);
        assert!((p - 22.0 / 1024.0).abs() < 1e-15, "{p}");
        assert_eq!(mcnemar_exact(0, 0).1, 1.0);
        assert_eq!(mcnemar_exact(5, 5).1, 1.0);
        // a large n keeps its tail: 2 * P(X <= 0), X ~ B(2000, 1/2) = 2^-1999
        let (_, p) = mcnemar_exact(0, 2000);
        assert!(p == 0.0 || (p.log2() + 1999.0).abs() < 1e-6);
        let (_, p) = mcnemar_exact(400, 600);
        assert!(p > 0.0 && p < 1e-9, "{p}");
    }

    #[test]
    fn rows_join_by_path_and_mismatches_name_the_path() {
        let a = preds(&["p1", "p2", "p3"], &[0, 1, 2], &[0, 1, 1]);
        let b = preds(&["p3", "p1", "p2"], &[2, 0, 1], &[2, 2, 1]);
        let (joined, r) = compare(&a, &b, None, VersusOptions::default(), "a.csv", "b.csv").unwrap();
        assert_eq!(joined.paths, a.paths);
        assert_eq!((r.both_right, r.a_only, r.b_only, r.both_wrong), (1, 1, 1, 0));
        assert_eq!(disagreements(&a, &joined, Side::AOnly), vec![0]);
        assert_eq!(disagreements(&a, &joined, Side::BOnly), vec![2]);
        let extra = preds(&["p3", "p1", "p4"], &[2, 0, 1], &[2, 2, 1]);
        let e = join_by_path(&a, &extra, "a.csv", "b.csv").unwrap_err().to_string();
        assert!(e.contains("p4 is in b.csv but not in a.csv"), "{e}");
        let relabelled = preds(&["p3", "p1", "p2"], &[2, 0, 0], &[2, 2, 1]);
        let e = join_by_path(&a, &relabelled, "a.csv", "b.csv").unwrap_err().to_string();
        assert!(e.contains("p2 is labelled 1 in a.csv but 0 in b.csv"), "{e}");
        let short = preds(&["p3", "p1"], &[2, 0], &[2, 2]);
        let e = join_by_path(&a, &short, "a.csv", "b.csv").unwrap_err().to_string();
        assert!(e.contains("p2 is in a.csv but not in b.csv"), "{e}");
    }

    #[test]
    fn the_bootstrap_interval_is_seeded_and_holds_the_delta() {
        let r1 = bootstrap_delta(1000, 40, 70, VersusOptions::default());
        let r2 = bootstrap_delta(1000, 40, 70, VersusOptions::default());
        assert_eq!(r1, r2);
        assert!(r1[0] < 0.03 && 0.03 < r1[1], "{r1:?}");
        // about +-1.96 standard errors of the paired difference
        let se = ((40.0 + 70.0) / 1000.0 - 0.03f64.powi(2)).sqrt() / 1000f64.sqrt();
        assert!(((r1[1] - r1[0]) / (2.0 * 1.96 * se) - 1.0).abs() < 0.1, "{r1:?} against se {se}");
    }
}
