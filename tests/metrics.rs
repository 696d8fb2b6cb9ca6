//! Metrics and costs of a committed predictions CSV agree with scikit-learn and NumPy
//! (`tests/fixtures/metrics/make_expected.py` computed `expected.json` independently).

mod common;

use common::*;
use easel_core::metrics::{self, CostMatrix, Predictions};

fn expected() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("metrics/expected.json")).unwrap()).unwrap()
}

fn close(a: f64, b: &serde_json::Value, what: &str) {
    let b = b.as_f64().unwrap();
    assert!((a - b).abs() < 1e-9, "{what}: easel {a}, expected {b}");
}

#[test]
fn metrics_and_costs_match_scikit_learn() {
    let e = expected();
    let p = Predictions::read_csv(&fixture("metrics/preds.csv"), None).unwrap();
    let cost = CostMatrix::read_csv(&fixture("metrics/cost.csv"), 4).unwrap();
    let r = metrics::report(&p, Some(&cost));

    let cm: Vec<Vec<usize>> = serde_json::from_value(e["confusion"].clone()).unwrap();
    assert_eq!(r.confusion.counts, cm);
    assert_eq!(r.confusion.total(), p.len());
    for (c, m) in r.per_class.iter().enumerate() {
        close(m.precision, &e["precision"][c], "precision");
        close(m.recall, &e["recall"][c], "recall");
        close(m.f1, &e["f1"][c], "f1");
        assert_eq!(m.support as u64, e["support"][c].as_u64().unwrap());
    }
    close(r.summary.accuracy, &e["accuracy"], "accuracy");
    close(r.summary.balanced_accuracy, &e["balanced_accuracy"], "balanced accuracy");
    close(r.summary.macro_f1, &e["macro_f1"], "macro F1");
    close(r.summary.weighted_f1, &e["weighted_f1"], "weighted F1");
    let top3 = r.summary.top_k_accuracy.iter().find(|(k, _)| *k == 3).unwrap().1;
    close(top3, &e["top3_accuracy"], "top-3 accuracy");

    let argmax = r.cost_argmax.unwrap();
    close(argmax.total, &e["cost_argmax_total"], "argmax cost");
    assert!((argmax.expected_mean.unwrap() - e["cost_argmax_expected_mean"].as_f64().unwrap()).abs() < 1e-6);
    let optimal = r.cost_optimal.unwrap();
    close(optimal.total, &e["cost_optimal_total"], "cost-optimal cost");
    let want: Vec<Vec<usize>> = serde_json::from_value(e["cost_optimal_confusion"].clone()).unwrap();
    assert_eq!(optimal.confusion.counts, want);
    let decisions = metrics::cost_optimal_decisions(p.probs.as_ref().unwrap(), &cost);
    let want: Vec<usize> = serde_json::from_value(e["cost_optimal_decisions"].clone()).unwrap();
    assert_eq!(decisions, want);
    assert!(optimal.total < argmax.total, "the cost-optimal decisions cost less");

    let curves = metrics::binary_curves(&p, 3, 10.0, 1.0).unwrap();
    assert!((curves.roc_auc - e["roc_auc_class3"].as_f64().unwrap()).abs() < 1e-9);

    let merged = p.merged(&[vec![0, 1]]).unwrap();
    let mr = metrics::report(&merged, None);
    close(mr.summary.accuracy, &e["merged_0_1_accuracy"], "merged accuracy");
    assert_eq!(mr.classes, vec!["class 0+class 1", "class 2", "class 3"]);
}

#[test]
fn label_issues_rank_samples_whose_label_looks_wrong() {
    let p = Predictions::read_csv(&fixture("metrics/preds.csv"), None).unwrap();
    let issues = metrics::label_issues(&p);
    assert!(!issues.is_empty());
    for w in issues.windows(2) {
        assert!(w[0].normalized_margin <= w[1].normalized_margin);
    }
    for i in &issues {
        assert_ne!(i.given, i.suggested);
        assert_eq!(p.labels[i.index], i.given);
    }
}
