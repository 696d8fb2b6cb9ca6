//! `easel sample` on a long tail cut from the shipped Fashion-MNIST test set: all six
//! strategies run, rebalancing moves the rare classes' recall, the same seed gives the same
//! table, runs reopen, and impossible requests get a clear message.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

fn easel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_easel")).args(args).env("EASEL_NO_GPU", "1").output().expect("the binary runs")
}

fn lab(out: &Path, extra: &[&str]) -> Output {
    let data = asset("fashion-mnist");
    let mut a = vec![
        "sample", "--data", data.to_str().unwrap(), "--data-split", "t10k", "--holdout", "3000", "--per-class", "300",
        "--profile", "longtail:30", "--rare", "4,6", "--epochs", "2", "--seed", "3", "--out", out.to_str().unwrap(), "--force",
    ];
    a.extend_from_slice(extra);
    easel(&a)
}

#[test]
fn six_strategies_move_the_rare_classes_and_repeat_exactly() {
    let base = std::env::temp_dir().join(format!("easel-lab-{}", std::process::id()));
    let (a, b) = (base.join("a"), base.join("b"));
    let out = lab(&a, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(a.join("comparison.json")).unwrap()).unwrap();
    let rows = v["rows"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["strategy"].as_str().unwrap()).collect();
    assert_eq!(names, ["uniform", "ignore", "undersample", "oversample", "hnm", "weighted"]);
    assert_eq!(v["rare_classes"], serde_json::json!([4, 6]));
    let rare = |name: &str| rows.iter().find(|r| r["strategy"] == name).unwrap()["rare_recall"].as_f64().unwrap();
    assert!(rare("oversample") > rare("uniform") + 0.1, "oversampling lifts the rare classes");
    assert!(rare("weighted") > rare("uniform") + 0.1, "loss weighting lifts the rare classes");
    // the uniform model rarely predicts a rare class; prior correction predicts them more often
    let dist = |rows: &serde_json::Value, c: usize| rows.as_array().unwrap()[0]["predicted_distribution"][c].as_f64().unwrap();
    assert!(dist(&v["prior_corrected"], 4) > dist(&v["rows"], 4));

    let again = lab(&b, &[]);
    assert!(again.status.success());
    assert_eq!(
        std::fs::read_to_string(a.join("comparison.csv")).unwrap(),
        std::fs::read_to_string(b.join("comparison.csv")).unwrap(),
        "the same seed gives the same table"
    );

    // a run reopens, with its config, epochs, held-out predictions and weights
    let run = easel::sampling::load_run(&a.join("oversample")).unwrap();
    assert_eq!(run.epochs.len(), 2);
    assert_eq!(run.test.len(), 3000);
    assert!(a.join("oversample/weights.safetensors").exists());
    let model = easel::models::Classifier::load(&a.join("oversample/card.json"), &cpu()).unwrap();
    assert_eq!(model.num_classes(), 10);
}

#[test]
fn impossible_requests_get_a_clear_message() {
    let out = std::env::temp_dir().join(format!("easel-lab-bad-{}", std::process::id()));
    let check = |o: Output, needle: &str| {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(needle) && !err.contains("panicked"), "{err}");
    };
    check(lab(&out, &["--strategies", "uniform,telepathy"]), "unknown strategy 'telepathy'");
    let data = asset("fashion-mnist");
    let base = |profile: &str, per_class: &str| {
        easel(&["sample", "--data", data.to_str().unwrap(), "--data-split", "t10k", "--holdout", "3000", "--per-class", per_class, "--profile", profile, "--rare", "4", "--out", out.to_str().unwrap(), "--force"])
    };
    check(base("longtail:0.5", "100"), "must be at least 1");
    check(base("longtail:1000", "100"), "class 4 would have no training images");
    assert!(easel::sampling::check_memory(usize::MAX / 1024, 784, 10_000, 10, 6, usize::MAX / 1024).is_err());
}
