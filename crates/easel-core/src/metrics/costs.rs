//! A K x K cost of mistakes, what decisions cost, and the cost-optimal (Bayes) decisions.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ConfusionMatrix;
use crate::error::{Error, Result};

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
    /// header of class names are skipped). K is at most [`crate::card::MAX_CLASSES`].
    pub fn read_csv(path: &Path, k: usize) -> Result<CostMatrix> {
        let text = crate::fsutil::read_text(path)?;
        Self::parse_csv(&text, path, k)
    }

    pub fn parse_csv(text: &str, path: &Path, k: usize) -> Result<CostMatrix> {
        let err = |line: usize, reason: String| Error::Parse { path: path.to_path_buf(), line, reason };
        if k > crate::card::MAX_CLASSES {
            return Err(err(1, format!("a {k} x {k} cost matrix: more than the {} classes easel handles", crate::card::MAX_CLASSES)));
        }
        let mut rdr = csv::ReaderBuilder::new().has_headers(false).flexible(true).comment(Some(b'#')).trim(csv::Trim::All).from_reader(text.as_bytes());
        let mut rows = Vec::new();
        let mut last_line = 1;
        for (i, rec) in rdr.records().enumerate() {
            let rec = rec.map_err(|e| err(e.position().map_or(i + 1, |p| p.line() as usize), e.to_string()))?;
            let line = rec.position().map_or(i + 1, |p| p.line() as usize);
            last_line = line;
            if rec.iter().all(str::is_empty) {
                continue;
            }
            if rec.len() != k {
                if rows.is_empty() && rec.iter().any(|f| f.parse::<f64>().is_err()) && rec.len() <= crate::card::MAX_CLASSES {
                    continue; // a header of class names
                }
                return Err(err(line, format!("{} costs on this row, the model has {k} classes", rec.len())));
            }
            if rows.is_empty() && rec.iter().any(|f| f.parse::<f64>().is_err()) {
                continue; // a header of class names
            }
            let vals: Vec<f64> = rec.iter().map(|f| f.parse::<f64>().map_err(|_| err(line, format!("'{f}' is not a number")))).collect::<Result<_>>()?;
            if let Some(v) = vals.iter().find(|v| !v.is_finite() || **v < 0.0) {
                return Err(err(line, format!("cost {v} is negative or not finite")));
            }
            if rows.len() == k {
                return Err(err(line, format!("more than {k} rows (a {k} x {k} matrix)")));
            }
            rows.push(vals);
        }
        if rows.len() != k {
            return Err(err(last_line, format!("{} rows, expected {k} (a {k} x {k} matrix)", rows.len())));
        }
        Ok(CostMatrix { costs: rows })
    }

    pub fn to_csv(&self, classes: &[String]) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let _ = w.write_record(classes);
        for r in &self.costs {
            let _ = w.write_record(r.iter().map(|v| format!("{v}")));
        }
        let body = String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default();
        format!("# rows: true class, columns: predicted class\n{body}")
    }

    /// The mean cost of missing `class` (predicting another) and of a false alarm (predicting
    /// it for another), for one-vs-rest curves.
    pub fn one_vs_rest(&self, class: usize) -> (f64, f64) {
        let k = self.k();
        if class >= k || k < 2 {
            return (1.0, 1.0);
        }
        let fn_cost = (0..k).filter(|&j| j != class).map(|j| self.costs[class][j]).sum::<f64>() / (k - 1) as f64;
        let fp_cost = (0..k).filter(|&i| i != class).map(|i| self.costs[i][class]).sum::<f64>() / (k - 1) as f64;
        (fn_cost, fp_cost)
    }

    /// Set cell (`i`, `j`) of the merged matrix (`new_of` from [`super::merge_map`]) by setting
    /// every cell of this matrix that merges into it, so merging again gives `value` there
    /// and clearing the merge keeps the edit.
    pub fn set_merged_cell(&mut self, new_of: &[usize], i: usize, j: usize, value: f64) {
        for a in 0..self.k() {
            for b in 0..self.k() {
                if new_of.get(a) == Some(&i) && new_of.get(b) == Some(&j) && a != b {
                    self.costs[a][b] = value;
                }
            }
        }
    }

    /// Merge classes as [`super::Predictions::merged`] does (`new_of` from [`merge_map`]): a merged
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
        let costs = (0..new_k).map(|i| (0..new_k).map(|j| if i == j { 0.0 } else { sum[i][j] / n[i][j].max(1) as f64 }).collect()).collect();
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
    let expected_mean = probs
        .map(|ps| ps.iter().zip(decisions).map(|(p, &d)| (0..k).map(|i| p[i] as f64 * cost.costs[i][d]).sum::<f64>()).sum::<f64>() / ps.len().max(1) as f64);
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
