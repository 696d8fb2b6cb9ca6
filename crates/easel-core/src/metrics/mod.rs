//! Figures from predictions on a labelled set: the confusion matrix, per-class metrics,
//! costs of mistakes and cost-optimal decisions, one-vs-rest curves, labels that look wrong,
//! and class merging, each checked against scikit-learn.

mod costs;
mod curves;
mod derived;
mod predictions;
pub mod tally;
pub mod versus;

use serde::{Deserialize, Serialize};

pub use costs::{CostMatrix, CostReport, cost_optimal_decisions, realised_cost};
pub use curves::{BinaryCurves, LabelIssue, binary_curves, cell_samples, class_thresholds, issues_above, label_issues};
pub use derived::{DatasetFigures, derive};
pub use predictions::{PROB_SUM_TOLERANCE, Predictions, argmax, parse_merge};

/// Rows are true classes, columns predicted classes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    pub counts: Vec<Vec<usize>>,
}

impl ConfusionMatrix {
    pub fn new(labels: &[usize], preds: &[usize], k: usize) -> Self {
        let mut counts = vec![vec![0usize; k]; k];
        for (&l, &p) in labels.iter().zip(preds) {
            counts[l][p] += 1;
        }
        ConfusionMatrix { counts }
    }

    pub fn k(&self) -> usize {
        self.counts.len()
    }

    pub fn total(&self) -> usize {
        self.counts.iter().flatten().sum()
    }

    /// Each row divided by its sum: the diagonal is recall.
    pub fn row_normalised(&self) -> Vec<Vec<f64>> {
        self.counts
            .iter()
            .map(|r| {
                let s: usize = r.iter().sum();
                r.iter().map(|&v| if s == 0 { 0.0 } else { v as f64 / s as f64 }).collect()
            })
            .collect()
    }

    /// Each column divided by its sum: the diagonal is precision.
    pub fn col_normalised(&self) -> Vec<Vec<f64>> {
        let k = self.k();
        let cols: Vec<usize> = (0..k).map(|j| (0..k).map(|i| self.counts[i][j]).sum()).collect();
        (0..k).map(|i| (0..k).map(|j| if cols[j] == 0 { 0.0 } else { self.counts[i][j] as f64 / cols[j] as f64 }).collect()).collect()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub class: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub samples: usize,
    pub accuracy: f64,
    pub balanced_accuracy: f64,
    pub macro_f1: f64,
    pub weighted_f1: f64,
    /// (k, top-k accuracy) where probabilities are known.
    pub top_k_accuracy: Vec<(usize, f64)>,
    /// Largest class count over the smallest non-zero one (true labels).
    pub imbalance_ratio: f64,
}

/// Per-class metrics, sklearn's conventions (0 where a denominator is 0).
pub fn class_metrics(cm: &ConfusionMatrix, classes: &[String]) -> Vec<ClassMetrics> {
    let k = cm.k();
    (0..k)
        .map(|c| {
            let tp = cm.counts[c][c] as f64;
            let support: usize = cm.counts[c].iter().sum();
            let predicted: usize = (0..k).map(|i| cm.counts[i][c]).sum();
            let precision = if predicted == 0 { 0.0 } else { tp / predicted as f64 };
            let recall = if support == 0 { 0.0 } else { tp / support as f64 };
            let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
            ClassMetrics { class: classes[c].clone(), precision, recall, f1, support }
        })
        .collect()
}

pub fn summary(p: &Predictions, cm: &ConfusionMatrix, per_class: &[ClassMetrics]) -> Summary {
    let top_k_hits = p.probs.as_ref().map(|probs| {
        top_k_list(p.k()).into_iter().map(|t| (t, probs.iter().zip(&p.labels).filter(|(row, l)| top_k_hit(row, **l, t)).count())).collect::<Vec<_>>()
    });
    summary_from(p.len(), cm, per_class, top_k_hits.as_deref())
}

/// The k of the top-k accuracies reported for `k_classes` classes.
pub(crate) fn top_k_list(k_classes: usize) -> Vec<usize> {
    [1usize, 3, 5].into_iter().filter(|&t| t <= k_classes).collect()
}

/// Whether the label is among the `t` most probable classes (ties count for the label).
pub(crate) fn top_k_hit(row: &[f32], label: usize, t: usize) -> bool {
    row.iter().filter(|&&v| v > row[label]).count() < t
}

/// The summary from counts: `samples`, the confusion matrix, per-class metrics and
/// (k, hits) for top-k accuracy where probabilities are known.
pub(crate) fn summary_from(samples: usize, cm: &ConfusionMatrix, per_class: &[ClassMetrics], top_k_hits: Option<&[(usize, usize)]>) -> Summary {
    let n = samples.max(1) as f64;
    let correct: usize = (0..cm.k()).map(|c| cm.counts[c][c]).sum();
    let present: Vec<&ClassMetrics> = per_class.iter().filter(|m| m.support > 0).collect();
    let balanced = present.iter().map(|m| m.recall).sum::<f64>() / present.len().max(1) as f64;
    let macro_f1 = per_class.iter().map(|m| m.f1).sum::<f64>() / per_class.len().max(1) as f64;
    let weighted_f1 = per_class.iter().map(|m| m.f1 * m.support as f64).sum::<f64>() / n;
    let top_k_accuracy = top_k_hits.map(|h| h.iter().map(|&(t, hits)| (t, hits as f64 / n)).collect()).unwrap_or_default();
    let counts: Vec<usize> = per_class.iter().map(|m| m.support).filter(|&s| s > 0).collect();
    let imbalance_ratio = match (counts.iter().max(), counts.iter().min()) {
        (Some(&a), Some(&b)) if b > 0 => a as f64 / b as f64,
        _ => 1.0,
    };
    Summary { samples, accuracy: correct as f64 / n, balanced_accuracy: balanced, macro_f1, weighted_f1, top_k_accuracy, imbalance_ratio }
}

/// Counts of each class among labels (true) or predictions.
pub fn class_counts(values: &[usize], k: usize) -> Vec<usize> {
    let mut c = vec![0; k];
    for &v in values {
        c[v] += 1;
    }
    c
}

/// Everything `easel metrics` prints.
#[derive(Clone, Debug, Serialize)]
pub struct MetricsReport {
    pub classes: Vec<String>,
    pub summary: Summary,
    pub per_class: Vec<ClassMetrics>,
    pub confusion: ConfusionMatrix,
    pub true_counts: Vec<usize>,
    pub predicted_counts: Vec<usize>,
    pub cost_argmax: Option<CostReport>,
    pub cost_optimal: Option<CostReport>,
    pub label_issues: Vec<LabelIssue>,
}

pub fn report(p: &Predictions, cost: Option<&CostMatrix>) -> MetricsReport {
    let k = p.k();
    let cm = ConfusionMatrix::new(&p.labels, &p.preds, k);
    let per_class = class_metrics(&cm, &p.classes);
    let summary = summary(p, &cm, &per_class);
    let (cost_argmax, cost_optimal) = match cost {
        Some(c) => {
            let probs = p.probs.as_deref();
            let argmax = realised_cost(&p.labels, &p.preds, probs, c);
            let optimal = probs.map(|ps| realised_cost(&p.labels, &cost_optimal_decisions(ps, c), Some(ps), c));
            (Some(argmax), optimal)
        }
        None => (None, None),
    };
    MetricsReport {
        classes: p.classes.clone(),
        summary,
        per_class,
        confusion: cm,
        true_counts: class_counts(&p.labels, k),
        predicted_counts: class_counts(&p.preds, k),
        cost_argmax,
        cost_optimal,
        label_issues: label_issues(p),
    }
}

/// `new_of` for a merge: old class -> new class, as [`Predictions::merged`] numbers them.
pub fn merge_map(k: usize, groups: &[Vec<usize>]) -> (usize, Vec<usize>) {
    let mut new_of = vec![usize::MAX; k];
    let mut next = 0;
    for c in 0..k {
        if new_of[c] != usize::MAX {
            continue;
        }
        let group = groups.iter().find(|g| g.contains(&c)).cloned().unwrap_or_else(|| vec![c]);
        for &m in &group {
            new_of[m] = next;
        }
        next += 1;
    }
    (next, new_of)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn preds() -> Predictions {
        Predictions::from_probs(
            vec!["a".into(), "b".into(), "c".into()],
            vec!["x".into(); 4],
            vec![0, 1, 2, 2],
            vec![vec![0.7, 0.2, 0.1], vec![0.6, 0.3, 0.1], vec![0.1, 0.1, 0.8], vec![0.2, 0.5, 0.3]],
        )
    }

    #[test]
    fn confusion_sums_to_the_sample_count() {
        let p = preds();
        let cm = ConfusionMatrix::new(&p.labels, &p.preds, 3);
        assert_eq!(cm.total(), 4);
        assert_eq!(cm.counts[1][0], 1);
    }

    #[test]
    fn merging_sums_probabilities_and_renames() {
        let m = preds().merged(&[vec![0, 1]]).unwrap();
        assert_eq!(m.classes, vec!["a+b", "c"]);
        assert_eq!(m.labels, vec![0, 0, 1, 1]);
        assert!((m.probs.as_ref().unwrap()[1][0] - 0.9).abs() < 1e-6);
        assert!(preds().merged(&[vec![0, 1], vec![1, 2]]).is_err());
    }

    #[test]
    fn cost_optimal_decisions_avoid_expensive_misses() {
        // missing class 2 costs 3: sample 3 (p2 = 0.3, risk 0.7 against 1.1) is better called 2,
        // sample 0 (p2 = 0.1, risk 0.5 against 0.9) stays 0
        let c = CostMatrix::missing_class_costs(3, 2, 3.0);
        let d = cost_optimal_decisions(preds().probs.as_ref().unwrap(), &c);
        assert_eq!(d[3], 2);
        assert_eq!(d[0], 0);
    }

    #[test]
    fn malformed_csvs_name_the_line() {
        let path = Path::new("p.csv");
        let e = Predictions::parse_csv("path,label,p0,p1\na,0,0.5,0.5\nb,1,0.5\n", path, None).unwrap_err();
        assert!(e.to_string().contains("p.csv:3"), "{e}");
        let e = Predictions::parse_csv("path,label,p0,p1\na,0,0.5,0.6\n", path, None).unwrap_err();
        assert!(e.to_string().contains(":2:") && e.to_string().contains("sum to"), "{e}");
        let e = Predictions::parse_csv("path,label,p0,p1\na,2,0.5,0.5\n", path, None).unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
        let e = CostMatrix::parse_csv("0,1\n1,0\n", path, 3).unwrap_err();
        assert!(e.to_string().contains(":1:"), "{e}");
        let e = CostMatrix::parse_csv("0,1\n-1,0\n", path, 2).unwrap_err();
        assert!(e.to_string().contains(":2:") && e.to_string().contains("negative"), "{e}");
    }
}
