//! One-vs-rest curves, labels that look wrong (confident learning), and the samples of a
//! confusion-matrix cell.

use serde::{Deserialize, Serialize};

use super::Predictions;

/// One-vs-rest curves for `class`, scored by its probability.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BinaryCurves {
    pub class: usize,
    /// Descending score thresholds: predict `class` when p >= threshold.
    pub thresholds: Vec<f64>,
    pub tpr: Vec<f64>,
    pub fpr: Vec<f64>,
    pub precision: Vec<f64>,
    /// Total cost at each threshold with `fn_cost` per missed positive, `fp_cost` per false alarm.
    pub cost: Vec<f64>,
    pub roc_auc: f64,
    pub average_precision: f64,
}

pub fn binary_curves(p: &Predictions, class: usize, fn_cost: f64, fp_cost: f64) -> Option<BinaryCurves> {
    let probs = p.probs.as_ref()?;
    let mut scored: Vec<(f64, bool)> = probs.iter().zip(&p.labels).map(|(row, &l)| (row[class] as f64, l == class)).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let pos = scored.iter().filter(|s| s.1).count() as f64;
    let neg = scored.len() as f64 - pos;
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut c = BinaryCurves {
        class,
        thresholds: vec![f64::INFINITY],
        tpr: vec![0.0],
        fpr: vec![0.0],
        precision: vec![1.0],
        cost: vec![pos * fn_cost],
        roc_auc: 0.0,
        average_precision: 0.0,
    };
    let mut i = 0;
    while i < scored.len() {
        let t = scored[i].0;
        while i < scored.len() && scored[i].0 == t {
            if scored[i].1 {
                tp += 1.0
            } else {
                fp += 1.0
            }
            i += 1;
        }
        c.thresholds.push(t);
        c.tpr.push(if pos > 0.0 { tp / pos } else { 0.0 });
        c.fpr.push(if neg > 0.0 { fp / neg } else { 0.0 });
        c.precision.push(tp / (tp + fp));
        c.cost.push((pos - tp) * fn_cost + fp * fp_cost);
    }
    for w in 1..c.tpr.len() {
        c.roc_auc += (c.fpr[w] - c.fpr[w - 1]) * (c.tpr[w] + c.tpr[w - 1]) / 2.0;
        c.average_precision += (c.tpr[w] - c.tpr[w - 1]) * c.precision[w];
    }
    Some(c)
}

/// A sample whose given label is likely wrong (confident learning).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelIssue {
    pub index: usize,
    pub given: usize,
    pub suggested: usize,
    /// p(given label).
    pub self_confidence: f32,
    /// p(given) - max over other classes: negative when another class is more likely.
    pub normalized_margin: f32,
}

/// Confident learning (Northcutt et al.): class j's threshold is the mean p_j over samples
/// labelled j; a sample labelled y is an issue when some other class j has p_j >= t_j and is
/// the most probable such class. Ranked by normalized margin, most suspicious first.
pub fn label_issues(p: &Predictions) -> Vec<LabelIssue> {
    let Some(thresholds) = class_thresholds(p) else { return Vec::new() };
    let mut out = issues_above(p, &thresholds, 0);
    out.sort_by(|a, b| a.normalized_margin.total_cmp(&b.normalized_margin));
    out
}

/// Class j's threshold: the mean p_j over samples labelled j (1 for a class with none);
/// `None` without probabilities.
pub fn class_thresholds(p: &Predictions) -> Option<Vec<f32>> {
    let probs = p.probs.as_ref()?;
    let k = p.k();
    let mut sum = vec![0.0f64; k];
    let mut n = vec![0usize; k];
    for (row, &l) in probs.iter().zip(&p.labels) {
        sum[l] += row[l] as f64;
        n[l] += 1;
    }
    Some(thresholds_from(&sum, &n))
}

pub(crate) fn thresholds_from(sum: &[f64], n: &[usize]) -> Vec<f32> {
    sum.iter().zip(n).map(|(&s, &c)| if c == 0 { 1.0 } else { (s / c as f64) as f32 }).collect()
}

/// The samples of `p` whose label looks wrong under `thresholds`, in row order; indices are
/// offset by `first_index` (for a set read in chunks).
pub fn issues_above(p: &Predictions, thresholds: &[f32], first_index: usize) -> Vec<LabelIssue> {
    let Some(probs) = &p.probs else { return Vec::new() };
    let k = p.k();
    probs
        .iter()
        .zip(&p.labels)
        .enumerate()
        .filter_map(|(i, (row, &y))| {
            let suggested = (0..k).filter(|&j| j != y && row[j] >= thresholds[j]).max_by(|&a, &b| row[a].total_cmp(&row[b]))?;
            let other = (0..k).filter(|&j| j != y).map(|j| row[j]).fold(f32::NEG_INFINITY, f32::max);
            Some(LabelIssue { index: first_index + i, given: y, suggested, self_confidence: row[y], normalized_margin: row[y] - other })
        })
        .collect()
}

/// The indices of one confusion-matrix cell, most confident mistakes first.
pub fn cell_samples(p: &Predictions, truth: usize, pred: usize, by_label_doubt: bool) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..p.len()).filter(|&i| p.labels[i] == truth && p.preds[i] == pred).collect();
    if let Some(probs) = &p.probs {
        if by_label_doubt {
            idx.sort_by(|&a, &b| probs[a][truth].total_cmp(&probs[b][truth]));
        } else {
            idx.sort_by(|&a, &b| probs[b][pred].total_cmp(&probs[a][pred]));
        }
    }
    idx
}
