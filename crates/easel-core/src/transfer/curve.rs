//! How many labels each regime needs to reach an accuracy, and what they cost: the learning
//! curve interpolated on a log scale of labels.

use serde::{Deserialize, Serialize};

use super::{Regime, TransferResult};

/// One regime's answer for one target accuracy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelsToReach {
    pub target_accuracy: f64,
    pub regime: Regime,
    /// Labels per class (interpolated); `None`: the curve never reaches the target.
    pub labels_per_class: Option<f64>,
    /// The curve's first point already reaches it: it may need fewer.
    pub at_most: bool,
    /// All labels (per class times classes), and their price.
    pub labels: Option<f64>,
    pub cost: Option<f64>,
}

/// For each target and regime: the labels per class where the curve crosses the target
/// (linear in accuracy between measured points, on a log scale of labels).
pub fn labels_to_reach(results: &[TransferResult], targets: &[f64], classes: usize, label_cost: f64) -> Vec<LabelsToReach> {
    let mut regimes: Vec<Regime> = results.iter().map(|r| r.regime).collect();
    regimes.sort();
    regimes.dedup();
    let mut out = Vec::new();
    for &target in targets {
        for &regime in &regimes {
            let mut pts: Vec<(f64, f64)> = results.iter().filter(|r| r.regime == regime).map(|r| (r.labels_per_class as f64, r.test_accuracy)).collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut found = None;
            let mut at_most = false;
            if let Some(&(n0, a0)) = pts.first()
                && a0 >= target
            {
                found = Some(n0);
                at_most = true;
            }
            if found.is_none() {
                for w in pts.windows(2) {
                    let ((n1, a1), (n2, a2)) = (w[0], w[1]);
                    if a1 < target && a2 >= target {
                        let t = (target - a1) / (a2 - a1);
                        found = Some((n1.ln() + t * (n2.ln() - n1.ln())).exp());
                        break;
                    }
                }
            }
            let labels = found.map(|n| n * classes as f64);
            out.push(LabelsToReach { target_accuracy: target, regime, labels_per_class: found, at_most, labels, cost: labels.map(|l| l * label_cost) });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(regime: Regime, n: usize, acc: f64) -> TransferResult {
        TransferResult { regime, labels_per_class: n, test_accuracy: acc, balanced_accuracy: acc, seconds: 0.0, curve: Vec::new() }
    }

    #[test]
    fn the_curve_is_interpolated_on_a_log_scale_and_priced() {
        let results = vec![r(Regime::Scratch, 10, 0.6), r(Regime::Scratch, 100, 0.9), r(Regime::Weak, 10, 0.95)];
        let to = labels_to_reach(&results, &[0.75, 0.99], 5, 25.0);
        let scratch = to.iter().find(|t| t.regime == Regime::Scratch && t.target_accuracy == 0.75).unwrap();
        // halfway in accuracy is halfway on a log scale: sqrt(10 * 100)
        assert!((scratch.labels_per_class.unwrap() - 1000f64.sqrt()).abs() < 1e-9);
        assert!((scratch.cost.unwrap() - 1000f64.sqrt() * 5.0 * 25.0).abs() < 1e-6);
        let weak = to.iter().find(|t| t.regime == Regime::Weak && t.target_accuracy == 0.75).unwrap();
        assert!(weak.at_most && weak.labels_per_class == Some(10.0));
        assert!(to.iter().filter(|t| t.target_accuracy == 0.99).all(|t| t.labels_per_class.is_none()));
    }
}
