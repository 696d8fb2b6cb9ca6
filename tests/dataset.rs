//! `easel evaluate` and `easel metrics` on the shipped demo and on malformed files.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

fn easel(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_easel")).args(args).env("EASEL_NO_GPU", "1").env("EASEL_CACHE_DIR", cache).output().expect("the binary runs")
}

fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("easel-ds-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn evaluate_reproduces_the_demo_models_reported_accuracy_and_caches() {
    let d = scratch("eval");
    let card = asset("fashion-mnist/model/card.json");
    let reported = serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&card).unwrap()).unwrap()["metrics"]["test_accuracy"].as_f64().unwrap();
    let csv = d.join("preds.csv");
    let out = easel(
        &["evaluate", "--model", card.to_str().unwrap(), "--data", asset("fashion-mnist").to_str().unwrap(), "--out", csv.to_str().unwrap(), "--json"],
        &d,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"]["samples"], 10_000);
    let acc = v["summary"]["accuracy"].as_f64().unwrap();
    assert!((acc - reported).abs() < 1e-9, "evaluate says {acc}, training reported {reported}");
    assert!(acc >= 0.91);
    let total: u64 = v["confusion"]["counts"].as_array().unwrap().iter().flat_map(|r| r.as_array().unwrap()).map(|x| x.as_u64().unwrap()).sum();
    assert_eq!(total, 10_000);
    assert!(csv.exists() && d.join("preds.metrics.json").exists());

    // the second run reads the cache and says so
    let again = easel(&["evaluate", "--model", card.to_str().unwrap(), "--data", asset("fashion-mnist").to_str().unwrap(), "--json"], &d);
    assert!(String::from_utf8_lossy(&again.stderr).contains("from the cache"));
    let v2: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(v2["summary"], v["summary"]);

    // metrics on the written CSV, with Shirt merged into T-shirt/top, agree with evaluate's
    let m = easel(&["metrics", "--predictions", csv.to_str().unwrap(), "--model", card.to_str().unwrap(), "--merge", "0+6", "--json"], &d);
    assert!(m.status.success(), "{}", String::from_utf8_lossy(&m.stderr));
    let mv: serde_json::Value = serde_json::from_slice(&m.stdout).unwrap();
    assert_eq!(mv["classes"][0], "T-shirt/top+Shirt");
    assert_eq!(mv["classes"].as_array().unwrap().len(), 9);
    assert!(mv["summary"]["accuracy"].as_f64().unwrap() > acc, "merging the most confused pair raises accuracy");
}

fn assert_rejected(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks '{n}': {err}");
    }
}

#[test]
fn malformed_csvs_are_rejected_with_line_and_reason() {
    let d = scratch("bad");
    let write = |name: &str, text: &str| {
        let p = d.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let header = "path,label,p0,p1,p2\n";
    let ragged = write("ragged.csv", &format!("{header}a.png,0,0.2,0.3,0.5\nb.png,1,0.5,0.5\n"));
    assert_rejected(&easel(&["metrics", "--predictions", ragged.to_str().unwrap()], &d), &["ragged.csv:3", "fields"]);
    let sums = write("sums.csv", &format!("{header}a.png,0,0.2,0.3,0.5\nb.png,1,0.5,0.5,0.1\n"));
    assert_rejected(&easel(&["metrics", "--predictions", sums.to_str().unwrap()], &d), &["sums.csv:3", "sum to 1.100000"]);
    let range = write("range.csv", &format!("{header}a.png,3,0.2,0.3,0.5\n"));
    assert_rejected(&easel(&["metrics", "--predictions", range.to_str().unwrap()], &d), &["range.csv:2", "label 3 is out of range"]);
    let good = write("good.csv", &format!("{header}a.png,0,0.2,0.3,0.5\nb.png,1,0.1,0.8,0.1\n"));
    let small = write("small_cost.csv", "0,1\n1,0\n");
    assert_rejected(&easel(&["metrics", "--predictions", good.to_str().unwrap(), "--cost", small.to_str().unwrap()], &d), &["small_cost.csv:1", "3 classes"]);
    let negative = write("neg_cost.csv", "0,1,1\n1,0,-2\n1,1,0\n");
    assert_rejected(&easel(&["metrics", "--predictions", good.to_str().unwrap(), "--cost", negative.to_str().unwrap()], &d), &["neg_cost.csv:2", "negative"]);
    let ok_cost = write("cost.csv", "0,1,1\n1,0,1\n5,5,0\n");
    let out = easel(&["metrics", "--predictions", good.to_str().unwrap(), "--cost", ok_cost.to_str().unwrap(), "--json"], &d);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // a.png (label 0) is predicted 2 (p 0.5): cost 1; missing class 2 costs 5, so the optimal
    // decision for a.png is 2 as well, and for b.png 1.
    assert_eq!(v["cost_argmax"]["total"].as_f64().unwrap(), 1.0);
    assert!(v["cost_optimal"]["total"].as_f64().unwrap() <= 1.0);
}
