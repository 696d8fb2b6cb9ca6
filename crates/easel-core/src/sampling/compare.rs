//! Comparing runs: accuracy, balanced accuracy, per-class and rare-class recall, costs and
//! predicted class frequencies, with or without prior correction.

use serde::{Deserialize, Serialize};

use super::RunRecord;
use crate::metrics::{self, ConfusionMatrix, CostMatrix, Predictions};

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
    /// Cost of the most-probable-class decisions, in total and as the model expects it.
    pub total_cost: f64,
    pub expected_cost: f64,
    /// The same for the cost-optimal decisions (argmin_j sum_i p_i C[i][j]).
    #[serde(default)]
    pub total_cost_optimal: f64,
    #[serde(default)]
    pub expected_cost_optimal: f64,
    /// Fraction of test predictions per class.
    pub predicted_distribution: Vec<f64>,
    pub train_seconds: f64,
    /// Rare-class images collected on top of the tail (`collect:N`).
    #[serde(default)]
    pub collected: usize,
    /// What each collected image bought: the rare-class recall gained over the `uniform` run,
    /// per image.
    #[serde(default)]
    pub recall_gain_per_image: Option<f64>,
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
    let rows = records
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
            let o = rep.cost_optimal.clone();
            ComparisonRow {
                strategy: r.config.strategy.name.clone(),
                accuracy: rep.summary.accuracy,
                balanced_accuracy: rep.summary.balanced_accuracy,
                recall,
                rare_recall,
                total_cost: c.total,
                expected_cost: c.expected_mean.unwrap_or(f64::NAN),
                total_cost_optimal: o.as_ref().map_or(f64::NAN, |o| o.total),
                expected_cost_optimal: o.and_then(|o| o.expected_mean).unwrap_or(f64::NAN),
                predicted_distribution: rep.predicted_counts.iter().map(|&c| c as f64 / n).collect(),
                train_seconds: r.seconds,
                collected: r.config.collected,
                recall_gain_per_image: None,
            }
        })
        .collect();
    with_gains(rows)
}

/// Fill in what each collected image bought against the `uniform` row of the same kind (a
/// name's " (merged at ...)" suffix must match), where there is one.
fn with_gains(mut rows: Vec<ComparisonRow>) -> Vec<ComparisonRow> {
    let suffix = |name: &str| name.find(" (").map(|i| name[i..].to_string()).unwrap_or_default();
    let bases: Vec<(String, f64)> =
        rows.iter().filter(|r| r.strategy.split(" (").next() == Some("uniform")).map(|r| (suffix(&r.strategy), r.rare_recall)).collect();
    for r in rows.iter_mut().filter(|r| r.collected > 0) {
        let kind = suffix(&r.strategy);
        let base = bases.iter().find(|(k, _)| *k == kind).map(|(_, b)| *b);
        r.recall_gain_per_image = base.map(|b| (r.rare_recall - b) / r.collected as f64);
    }
    rows
}

/// A CSV field, quoted where it needs it.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

/// The table as CSV: one row per strategy.
pub fn comparison_csv(rows: &[ComparisonRow], classes: &[String]) -> String {
    let mut out = String::from(
        "strategy,accuracy,balanced_accuracy,rare_recall,total_cost,expected_cost,total_cost_optimal,expected_cost_optimal,collected,recall_gain_per_image",
    );
    for c in classes {
        out.push_str(&format!(",recall {}", c.replace(',', " ")));
    }
    for c in classes {
        out.push_str(&format!(",predicted {}", c.replace(',', " ")));
    }
    out.push('\n');
    for r in rows {
        out.push_str(&format!(
            "{},{:.6},{:.6},{:.6},{:.3},{:.6},{:.3},{:.6},{},{}",
            csv_field(&r.strategy),
            r.accuracy,
            r.balanced_accuracy,
            r.rare_recall,
            r.total_cost,
            r.expected_cost,
            r.total_cost_optimal,
            r.expected_cost_optimal,
            r.collected,
            r.recall_gain_per_image.map(|g| format!("{g:.6}")).unwrap_or_default()
        ));
        for v in r.recall.iter().chain(&r.predicted_distribution) {
            out.push_str(&format!(",{v:.6}"));
        }
        out.push('\n');
    }
    out
}

/// The held-out class distribution of a run.
pub fn true_distribution(record: &RunRecord) -> Vec<f64> {
    let k = record.classes.len();
    let n = record.test.len().max(1) as f64;
    metrics::class_counts(&record.test.labels, k).iter().map(|&c| c as f64 / n).collect()
}

/// Each run's confusion matrix on the held-out set, prior-corrected if asked.
pub fn confusions(records: &[RunRecord], prior_correction: bool) -> Vec<ConfusionMatrix> {
    records
        .iter()
        .map(|r| {
            let p = if prior_correction { prior_corrected(&r.test, &r.train_prior, &true_distribution(r)) } else { r.test.clone() };
            ConfusionMatrix::new(&p.labels, &p.preds, r.classes.len())
        })
        .collect()
}
