//! The pre-training lab (`easel transfer`) and fine-tuning on a folder (`easel finetune`).
//! They need Fashion-MNIST's 60k training set (`dataset-fashion-mnist`, which scripts/test.sh
//! installs); the tests that train are in the slow tier.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

fn easel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_easel")).args(args).env("EASEL_NO_GPU", "1").output().expect("the binary runs")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("easel-transfer-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn clean_failure(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected a failure: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(needle), "stderr lacks '{needle}': {err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("easel: error")).count(), 1, "{err}");
}

fn has_training_set() -> bool {
    Path::new(easel_core::data::SYSTEM_FASHION_MNIST).join("train-images-idx3-ubyte.gz").is_file()
}

#[test]
fn impossible_pretraining_requests_are_one_line_errors() {
    let out = scratch("bad");
    let o = out.to_str().unwrap();
    clean_failure(&easel(&["transfer", "--noise", "1.0", "--out", o]), "noise 1 must be in [0, 1)");
    clean_failure(&easel(&["transfer", "--noise", "-0.1", "--out", o]), "must be in [0, 1)");
    clean_failure(&easel(&["transfer", "--target-classes", "5,12", "--out", o]), "target class 12 is unknown");
    clean_failure(&easel(&["transfer", "--source-classes", "0,5", "--out", o]), "class 5 is both a source and a target class");
    clean_failure(&easel(&["transfer", "--regimes", "telepathy", "--out", o]), "invalid value 'telepathy'");
    if has_training_set() {
        clean_failure(&easel(&["transfer", "--labels-per-class", "10,7000", "--regimes", "scratch", "--out", o]), "only 6000 training images");
    }
}

/// A small lab: three regimes, two points of the curve, short pre-training on three source
/// and three target classes (18,000 images each, so the slow tier stays short).
fn small_lab(out: &Path) -> Output {
    easel(&[
        "transfer",
        "--target-classes",
        "7,8,9",
        "--source-classes",
        "0,1,2",
        "--regimes",
        "scratch,transfer,weak",
        "--labels-per-class",
        "10,50",
        "--pretrain-epochs",
        "1",
        "--epochs",
        "10",
        "--test-limit",
        "1000",
        "--seed",
        "7",
        "--out",
        out.to_str().unwrap(),
        "--device",
        "cpu",
    ])
}

/// transfer.csv without the seconds column.
fn table(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("transfer.csv")).unwrap().lines().map(|l| l.rsplit_once(',').unwrap().0.to_string()).collect::<Vec<_>>().join("\n")
}

#[test]
#[ignore = "slow tier: pre-trains and fine-tunes nine small CNNs"]
fn the_same_seed_gives_the_same_table_and_every_run_is_a_usable_model() {
    if !has_training_set() {
        panic!("install dataset-fashion-mnist (scripts/test.sh does, as root)");
    }
    let d = scratch("seed");
    let (a, b) = (d.join("a"), d.join("b"));
    let out = small_lab(&a);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(small_lab(&b).status.success());
    assert_eq!(table(&a), table(&b), "the same seed gives the same table");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(a.join("transfer.json")).unwrap()).unwrap();
    assert_eq!(v["results"].as_array().unwrap().len(), 6);
    assert_eq!(v["classes"], serde_json::json!(["Sneaker", "Bag", "Ankle boot"]));
    assert!(!v["labels_to_reach"].as_array().unwrap().is_empty());
    // a run is a model every command opens: predict answers with the target classes
    let card = a.join("runs/transfer-50/card.json");
    let p = easel(&["predict", "--model", card.to_str().unwrap(), "--images", asset("fashion-mnist/samples").to_str().unwrap(), "--json"]);
    assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stderr));
    let pv: serde_json::Value = serde_json::from_slice(&p.stdout).unwrap();
    let classes = ["Sneaker", "Bag", "Ankle boot"];
    assert!(pv["predictions"].as_array().unwrap().iter().all(|x| classes.contains(&x["top_k"][0]["class"].as_str().unwrap())));
    // and the Dataset view's evaluate sees the target classes' test images, relabelled
    let e = easel(&["evaluate", "--model", card.to_str().unwrap(), "--data", asset("fashion-mnist").to_str().unwrap(), "--no-cache", "--json"]);
    assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
    let ev: serde_json::Value = serde_json::from_slice(&e.stdout).unwrap();
    assert_eq!(ev["summary"]["samples"], 3000);
}

#[test]
fn finetune_on_an_exported_folder_gives_a_model_that_answers_with_the_folders_classes() {
    let d = scratch("finetune");
    let folder = d.join("classes");
    let ex = easel(&["export", "--data", asset("fashion-mnist").to_str().unwrap(), "--per-class", "30", "--out", folder.to_str().unwrap()]);
    assert!(ex.status.success(), "{}", String::from_utf8_lossy(&ex.stderr));
    let out = d.join("model");
    let ft = easel(&[
        "finetune",
        "--model",
        asset("fashion-mnist/model/card.json").to_str().unwrap(),
        "--data",
        folder.to_str().unwrap(),
        "--holdout",
        "0.2",
        "--out",
        out.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert!(ft.status.success(), "{}", String::from_utf8_lossy(&ft.stderr));
    let card: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("card.json")).unwrap()).unwrap();
    let names = easel_core::data::folder_classes(&folder).unwrap();
    assert_eq!(card["classes"], serde_json::json!(names));
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(m["train_images"].as_u64().unwrap() + m["test_images"].as_u64().unwrap(), 300);
    assert!(m["test_accuracy"].as_f64().unwrap() > 0.6, "{m}");
    let one = std::fs::read_dir(folder.join(&names[3])).unwrap().next().unwrap().unwrap().path();
    let p = easel(&["predict", "--model", out.join("card.json").to_str().unwrap(), "--images", one.to_str().unwrap(), "--json"]);
    assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stderr));
    let pv: serde_json::Value = serde_json::from_slice(&p.stdout).unwrap();
    assert!(names.iter().any(|n| pv["predictions"][0]["top_k"][0]["class"] == serde_json::json!(n)));
    // a second run never replaces the first
    let again = easel(&[
        "finetune",
        "--model",
        asset("fashion-mnist/model/card.json").to_str().unwrap(),
        "--data",
        folder.to_str().unwrap(),
        "--holdout",
        "0.2",
        "--out",
        out.to_str().unwrap(),
    ]);
    clean_failure(&again, "already holds a model");
    clean_failure(
        &easel(&[
            "finetune",
            "--model",
            asset("fashion-mnist/model/card.json").to_str().unwrap(),
            "--data",
            folder.to_str().unwrap(),
            "--out",
            d.join("x").to_str().unwrap(),
        ]),
        "--holdout 0.2 or --test",
    );
}
