//! Evaluating predictions: confusion matrices, per-class and summary metrics, costs of
//! mistakes (with the cost-optimal decision), one-vs-rest curves, class merging and label
//! issues. Predictions come from a model run or a CSV computed elsewhere.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Predictions for a labelled set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Predictions {
    pub classes: Vec<String>,
    /// Where each sample came from.
    pub paths: Vec<String>,
    pub labels: Vec<usize>,
    /// Class probabilities per sample (`N x K`), where known.
    pub probs: Option<Vec<Vec<f32>>>,
    /// The predicted class per sample (argmax of `probs` where given).
    pub preds: Vec<usize>,
}

/// Tolerance for probabilities summing to 1 in a CSV.
pub const PROB_SUM_TOLERANCE: f64 = 1e-3;

impl Predictions {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn k(&self) -> usize {
        self.classes.len()
    }

    /// From probabilities: predictions are the argmax.
    pub fn from_probs(classes: Vec<String>, paths: Vec<String>, labels: Vec<usize>, probs: Vec<Vec<f32>>) -> Predictions {
        let preds = probs.iter().map(|p| argmax(p)).collect();
        Predictions { classes, paths, labels, probs: Some(probs), preds }
    }

    /// Read `path,label,p0,...,pK-1` or `path,label,pred` (a header line first). Labels and
    /// predictions are class indices. Every malformed line is an error with its number.
    pub fn read_csv(path: &Path, classes: Option<&[String]>) -> Result<Predictions> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse_csv(&text, path, classes)
    }

    pub fn parse_csv(text: &str, path: &Path, classes: Option<&[String]>) -> Result<Predictions> {
        let err = |line: usize, reason: String| Error::Parse { path: path.to_path_buf(), line, reason };
        let mut rdr = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(text.as_bytes());
        let header: Vec<String> = rdr.headers().map_err(|e| err(1, e.to_string()))?.iter().map(|h| h.trim().to_string()).collect();
        if header.len() < 3 || header[0] != "path" || header[1] != "label" {
            return Err(err(1, "the header must be `path,label,p0,...,pK-1` or `path,label,pred`".into()));
        }
        let with_probs = !(header.len() == 3 && header[2] == "pred");
        let k = if with_probs {
            header.len() - 2
        } else {
            classes.map(<[String]>::len).ok_or_else(|| err(1, "a `path,label,pred` file needs the class names (a model card)".into()))?
        };
        if let Some(c) = classes {
            if with_probs && c.len() != k {
                return Err(err(1, format!("{k} probability columns, but the model has {} classes", c.len())));
            }
        }
        let class_names: Vec<String> = match classes {
            Some(c) => c.to_vec(),
            None => (0..k).map(|i| format!("class {i}")).collect(),
        };
        let (mut paths, mut labels, mut probs, mut preds) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (i, rec) in rdr.records().enumerate() {
            let line = i + 2;
            let rec = rec.map_err(|e| err(line, e.to_string()))?;
            if rec.len() != header.len() {
                return Err(err(line, format!("{} fields, the header has {}", rec.len(), header.len())));
            }
            let index = |s: &str, what: &str| -> Result<usize> {
                let v: usize = s.trim().parse().map_err(|_| err(line, format!("{what} '{s}' is not a class index")))?;
                if v >= k {
                    return Err(err(line, format!("{what} {v} is out of range (0..{})", k - 1)));
                }
                Ok(v)
            };
            paths.push(rec[0].to_string());
            labels.push(index(&rec[1], "label")?);
            if with_probs {
                let p: Vec<f32> = (2..rec.len())
                    .map(|c| rec[c].trim().parse::<f32>().map_err(|_| err(line, format!("'{}' is not a probability", &rec[c]))))
                    .collect::<Result<_>>()?;
                if p.iter().any(|v| !v.is_finite() || *v < 0.0 || *v > 1.0) {
                    return Err(err(line, "probabilities must lie in [0, 1]".into()));
                }
                let sum: f64 = p.iter().map(|&v| v as f64).sum();
                if (sum - 1.0).abs() > PROB_SUM_TOLERANCE {
                    return Err(err(line, format!("probabilities sum to {sum:.6}, not 1 (within {PROB_SUM_TOLERANCE})")));
                }
                preds.push(argmax(&p));
                probs.push(p);
            } else {
                preds.push(index(&rec[2], "prediction")?);
            }
        }
        if labels.is_empty() {
            return Err(err(2, "no predictions".into()));
        }
        Ok(Predictions { classes: class_names, paths, labels, probs: with_probs.then_some(probs), preds })
    }

    pub fn to_csv(&self) -> String {
        let mut out = String::from("path,label");
        match &self.probs {
            Some(_) => (0..self.k()).for_each(|i| out.push_str(&format!(",p{i}"))),
            None => out.push_str(",pred"),
        }
        out.push('\n');
        for i in 0..self.len() {
            let p = self.paths[i].replace([',', '\n'], "_");
            out.push_str(&format!("{p},{}", self.labels[i]));
            match &self.probs {
                Some(probs) => probs[i].iter().for_each(|v| out.push_str(&format!(",{v:.7}"))),
                None => out.push_str(&format!(",{}", self.preds[i])),
            }
            out.push('\n');
        }
        out
    }

    /// Merge groups of classes (e.g. Shirt with T-shirt/top): merged probabilities are sums,
    /// labels and predictions map to the merged class. Classes in no group stay as they are.
    pub fn merged(&self, groups: &[Vec<usize>]) -> Result<Predictions> {
        let k = self.k();
        let mut seen = vec![false; k];
        for g in groups {
            for &c in g {
                if c >= k {
                    return Err(Error::invalid(format!("merge: class {c} is out of range (0..{})", k - 1)));
                }
                if seen[c] {
                    return Err(Error::invalid(format!("merge: class {c} is in two groups")));
                }
                seen[c] = true;
            }
        }
        // new class list: a merged group sits where its first member was
        let mut new_of = vec![usize::MAX; k];
        let mut names = Vec::new();
        for c in 0..k {
            if new_of[c] != usize::MAX {
                continue;
            }
            let group = groups.iter().find(|g| g.contains(&c)).cloned().unwrap_or_else(|| vec![c]);
            let id = names.len();
            names.push(group.iter().map(|&m| self.classes[m].clone()).collect::<Vec<_>>().join("+"));
            for &m in &group {
                new_of[m] = id;
            }
        }
        let labels = self.labels.iter().map(|&l| new_of[l]).collect();
        Ok(match &self.probs {
            Some(probs) => {
                let merged: Vec<Vec<f32>> = probs
                    .iter()
                    .map(|p| {
                        let mut q = vec![0.0f32; names.len()];
                        for (c, v) in p.iter().enumerate() {
                            q[new_of[c]] += v;
                        }
                        q
                    })
                    .collect();
                Predictions::from_probs(names, self.paths.clone(), labels, merged)
            }
            None => Predictions { classes: names, paths: self.paths.clone(), labels, probs: None, preds: self.preds.iter().map(|&p| new_of[p]).collect() },
        })
    }

    /// The same predictions with other decisions (e.g. cost-optimal ones).
    pub fn with_preds(&self, preds: Vec<usize>) -> Predictions {
        Predictions { preds, ..self.clone() }
    }
}

/// Parse `0+6` into a group.
pub fn parse_merge(s: &str) -> Result<Vec<usize>> {
    let g: Vec<usize> = s
        .split('+')
        .map(|t| t.trim().parse::<usize>().map_err(|_| Error::invalid(format!("--merge '{s}': use class indices joined by +, e.g. 0+6"))))
        .collect::<Result<_>>()?;
    if g.len() < 2 {
        return Err(Error::invalid(format!("--merge '{s}': a group needs at least two classes")));
    }
    Ok(g)
}

pub fn argmax(p: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in p.iter().enumerate() {
        if *v > p[best] {
            best = i;
        }
    }
    best
}

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
    let n = p.len().max(1) as f64;
    let correct: usize = (0..cm.k()).map(|c| cm.counts[c][c]).sum();
    let present: Vec<&ClassMetrics> = per_class.iter().filter(|m| m.support > 0).collect();
    let balanced = present.iter().map(|m| m.recall).sum::<f64>() / present.len().max(1) as f64;
    let macro_f1 = per_class.iter().map(|m| m.f1).sum::<f64>() / per_class.len().max(1) as f64;
    let weighted_f1 = per_class.iter().map(|m| m.f1 * m.support as f64).sum::<f64>() / n;
    let top_k_accuracy = match &p.probs {
        Some(probs) => [1usize, 3, 5]
            .into_iter()
            .filter(|&t| t <= p.k())
            .map(|t| {
                let hits = probs
                    .iter()
                    .zip(&p.labels)
                    .filter(|(row, l)| row.iter().filter(|&&v| v > row[**l]).count() < t)
                    .count();
                (t, hits as f64 / n)
            })
            .collect(),
        None => Vec::new(),
    };
    let counts: Vec<usize> = per_class.iter().map(|m| m.support).filter(|&s| s > 0).collect();
    let imbalance_ratio = match (counts.iter().max(), counts.iter().min()) {
        (Some(&a), Some(&b)) if b > 0 => a as f64 / b as f64,
        _ => 1.0,
    };
    Summary { samples: p.len(), accuracy: correct as f64 / n, balanced_accuracy: balanced, macro_f1, weighted_f1, top_k_accuracy, imbalance_ratio }
}

/// Counts of each class among labels (true) or predictions.
pub fn class_counts(values: &[usize], k: usize) -> Vec<usize> {
    let mut c = vec![0; k];
    for &v in values {
        c[v] += 1;
    }
    c
}

/// A K x K cost matrix: rows true class, columns predicted class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CostMatrix {
    pub costs: Vec<Vec<f64>>,
}

impl CostMatrix {
    /// 0 on the diagonal, 1 elsewhere: cost = number of mistakes.
    pub fn zero_one(k: usize) -> Self {
        CostMatrix { costs: (0..k).map(|i| (0..k).map(|j| if i == j { 0.0 } else { 1.0 }).collect()).collect() }
    }

    /// 0/1, except that missing `class` (predicting anything else when it is true) costs `cost`.
    pub fn missing_class_costs(k: usize, class: usize, cost: f64) -> Self {
        let mut m = Self::zero_one(k);
        for j in 0..k {
            if j != class {
                m.costs[class][j] = cost;
            }
        }
        m
    }

    pub fn k(&self) -> usize {
        self.costs.len()
    }

    /// Read K lines of K comma-separated non-negative numbers (lines starting with `#` and a
    /// header of class names are skipped).
    pub fn read_csv(path: &Path, k: usize) -> Result<CostMatrix> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse_csv(&text, path, k)
    }

    pub fn parse_csv(text: &str, path: &Path, k: usize) -> Result<CostMatrix> {
        let err = |line: usize, reason: String| Error::Parse { path: path.to_path_buf(), line, reason };
        let mut rows = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let t = raw.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = t.split(',').map(str::trim).collect();
            if rows.is_empty() && fields.iter().any(|f| f.parse::<f64>().is_err()) {
                continue; // a header of class names
            }
            let vals: Vec<f64> = fields
                .iter()
                .map(|f| f.parse::<f64>().map_err(|_| err(line, format!("'{f}' is not a number"))))
                .collect::<Result<_>>()?;
            if vals.len() != k {
                return Err(err(line, format!("{} costs on this row, the model has {k} classes", vals.len())));
            }
            if let Some(v) = vals.iter().find(|v| !v.is_finite() || **v < 0.0) {
                return Err(err(line, format!("cost {v} is negative or not finite")));
            }
            rows.push(vals);
        }
        if rows.len() != k {
            return Err(err(text.lines().count().max(1), format!("{} rows, expected {k} (a {k} x {k} matrix)", rows.len())));
        }
        Ok(CostMatrix { costs: rows })
    }

    pub fn to_csv(&self, classes: &[String]) -> String {
        let mut out = String::from("# rows: true class, columns: predicted class\n");
        out.push_str(&classes.iter().map(|c| c.replace(',', " ")).collect::<Vec<_>>().join(","));
        out.push('\n');
        for r in &self.costs {
            out.push_str(&r.iter().map(|v| format!("{v}")).collect::<Vec<_>>().join(","));
            out.push('\n');
        }
        out
    }

    /// Merge classes as [`Predictions::merged`] does (`new_of` from [`merge_map`]): a merged
    /// cell's cost is the mean over its members (a mistake inside a merged group costs nothing).
    pub fn merged(&self, new_k: usize, new_of: &[usize]) -> CostMatrix {
        let mut sum = vec![vec![0.0; new_k]; new_k];
        let mut n = vec![vec![0usize; new_k]; new_k];
        for i in 0..self.k() {
            for j in 0..self.k() {
                sum[new_of[i]][new_of[j]] += self.costs[i][j];
                n[new_of[i]][new_of[j]] += 1;
            }
        }
        let costs = (0..new_k)
            .map(|i| (0..new_k).map(|j| if i == j { 0.0 } else { sum[i][j] / n[i][j].max(1) as f64 }).collect())
            .collect();
        CostMatrix { costs }
    }
}

/// Realised cost of decisions against true labels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CostReport {
    pub total: f64,
    pub mean: f64,
    /// Mean over samples of sum_i p_i C[i][decision]: what the model expects the decisions to cost.
    pub expected_mean: Option<f64>,
    pub confusion: ConfusionMatrix,
}

pub fn realised_cost(labels: &[usize], decisions: &[usize], probs: Option<&[Vec<f32>]>, cost: &CostMatrix) -> CostReport {
    let k = cost.k();
    let total: f64 = labels.iter().zip(decisions).map(|(&l, &d)| cost.costs[l][d]).sum();
    let expected_mean = probs.map(|ps| {
        ps.iter().zip(decisions).map(|(p, &d)| (0..k).map(|i| p[i] as f64 * cost.costs[i][d]).sum::<f64>()).sum::<f64>() / ps.len().max(1) as f64
    });
    CostReport { total, mean: total / labels.len().max(1) as f64, expected_mean, confusion: ConfusionMatrix::new(labels, decisions, k) }
}

/// The Bayes decision: argmin_j sum_i p_i C[i][j] (ties: the lower index).
pub fn cost_optimal_decisions(probs: &[Vec<f32>], cost: &CostMatrix) -> Vec<usize> {
    let k = cost.k();
    probs
        .iter()
        .map(|p| {
            let risk = |j: usize| (0..k).map(|i| p[i] as f64 * cost.costs[i][j]).sum::<f64>();
            (0..k).fold(0, |best, j| if risk(j) < risk(best) { j } else { best })
        })
        .collect()
}

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
    let mut c = BinaryCurves { class, thresholds: vec![f64::INFINITY], tpr: vec![0.0], fpr: vec![0.0], precision: vec![1.0], cost: vec![pos * fn_cost], roc_auc: 0.0, average_precision: 0.0 };
    let mut i = 0;
    while i < scored.len() {
        let t = scored[i].0;
        while i < scored.len() && scored[i].0 == t {
            if scored[i].1 { tp += 1.0 } else { fp += 1.0 }
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
    let Some(probs) = &p.probs else { return Vec::new() };
    let k = p.k();
    let mut sum = vec![0.0f64; k];
    let mut n = vec![0usize; k];
    for (row, &l) in probs.iter().zip(&p.labels) {
        sum[l] += row[l] as f64;
        n[l] += 1;
    }
    let thresholds: Vec<f32> = (0..k).map(|j| if n[j] == 0 { 1.0 } else { (sum[j] / n[j] as f64) as f32 }).collect();
    let mut out: Vec<LabelIssue> = probs
        .iter()
        .zip(&p.labels)
        .enumerate()
        .filter_map(|(i, (row, &y))| {
            let suggested = (0..k).filter(|&j| j != y && row[j] >= thresholds[j]).max_by(|&a, &b| row[a].total_cmp(&row[b]))?;
            let other = (0..k).filter(|&j| j != y).map(|j| row[j]).fold(f32::NEG_INFINITY, f32::max);
            Some(LabelIssue { index: i, given: y, suggested, self_confidence: row[y], normalized_margin: row[y] - other })
        })
        .collect();
    out.sort_by(|a, b| a.normalized_margin.total_cmp(&b.normalized_margin));
    out
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
