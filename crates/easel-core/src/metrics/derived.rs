//! What the Dataset view shows, from predictions, class merges, a cost matrix and the choice
//! of decisions: computed here, in one place, so every panel of the view agrees with the
//! others (with cost-optimal decisions on, the confusion matrix, the metrics table and the
//! predicted-class bars all follow them).

use super::{BinaryCurves, CostMatrix, MetricsReport, Predictions, binary_curves, cost_optimal_decisions, merge_map, report};
use crate::error::Result;

/// The Dataset view's figures.
#[derive(Clone, Debug)]
pub struct DatasetFigures {
    /// The predictions with merged classes and the most probable class as decision.
    pub merged: Predictions,
    /// The same with the decisions in force (most probable, or cost-optimal).
    pub decided: Predictions,
    /// The cost matrix of the merged classes.
    pub cost: CostMatrix,
    pub cost_is_custom: bool,
    /// Confusion matrix, per-class metrics and class counts of `decided`; the cost of both
    /// kinds of decision.
    pub report: MetricsReport,
    /// Cost-optimal decisions are in force (asked for, and there are probabilities).
    pub by_cost: bool,
    /// One-vs-rest curves of `threshold_class` (needs probabilities).
    pub curves: Option<BinaryCurves>,
    pub threshold_class: usize,
}

/// Derive the figures. `cost` is over the model's classes (`None`: every mistake costs 1); it
/// is merged with the classes.
pub fn derive(preds: &Predictions, merges: &[Vec<usize>], cost: Option<&CostMatrix>, decide_by_cost: bool, threshold_class: usize) -> Result<DatasetFigures> {
    let merged = preds.merged(merges)?;
    let k = merged.k();
    let cost_is_custom = cost.is_some_and(|c| c.k() == preds.k());
    let cost = match cost.filter(|c| c.k() == preds.k()) {
        Some(c) => {
            let (new_k, new_of) = merge_map(preds.k(), merges);
            c.merged(new_k, &new_of)
        }
        None => CostMatrix::zero_one(k),
    };
    let optimal = merged.probs.as_ref().map(|ps| cost_optimal_decisions(ps, &cost));
    let by_cost = decide_by_cost && optimal.is_some();
    let decided = match (&optimal, by_cost) {
        (Some(d), true) => merged.with_preds(d.clone()),
        _ => merged.clone(),
    };
    let costs = report(&merged, Some(&cost));
    let mut r = report(&decided, None);
    r.cost_argmax = costs.cost_argmax;
    r.cost_optimal = costs.cost_optimal;
    let threshold_class = threshold_class.min(k.saturating_sub(1));
    let (fn_cost, fp_cost) = cost.one_vs_rest(threshold_class);
    let curves = binary_curves(&merged, threshold_class, fn_cost, fp_cost);
    Ok(DatasetFigures { merged, decided, cost, cost_is_custom, report: r, by_cost, curves, threshold_class })
}
