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
        "sample",
        "--data",
        data.to_str().unwrap(),
        "--data-split",
        "t10k",
        "--holdout",
        "3000",
        "--per-class",
        "300",
        "--profile",
        "longtail:30",
        "--rare",
        "4,6",
        "--epochs",
        "2",
        "--seed",
        "3",
        "--out",
        out.to_str().unwrap(),
        "--force",
    ];
    a.extend_from_slice(extra);
    easel(&a)
}

#[test]
#[ignore = "slow tier: trains twelve models (scripts/test.sh runs it)"]
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
    let run = easel_core::sampling::load_run(&a.join("oversample")).unwrap();
    assert_eq!(run.epochs.len(), 2);
    assert_eq!(run.test.len(), 3000);
    assert!(a.join("oversample/weights.safetensors").exists());
    let model = easel_core::models::Classifier::load(&a.join("oversample/card.json"), &cpu()).unwrap();
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
        easel(&[
            "sample",
            "--data",
            data.to_str().unwrap(),
            "--data-split",
            "t10k",
            "--holdout",
            "3000",
            "--per-class",
            per_class,
            "--profile",
            profile,
            "--rare",
            "4",
            "--out",
            out.to_str().unwrap(),
            "--force",
        ])
    };
    check(base("longtail:0.5", "100"), "must be at least 1");
    check(base("longtail:1000", "100"), "class 4 would have no training images");
    assert!(easel_core::sampling::check_memory(usize::MAX / 1024, 784, 10_000, 10, 6, usize::MAX / 1024).is_err());
}

/// A class-per-folder tree of 32x32 colour images: stripes one way, the other way, or a
/// checkerboard, at random phases and with noise.
fn pattern_folder(dir: &Path, per_class: usize) {
    let mut rng = easel_core::rng::Rng::new(11);
    for (c, name) in ["vertical", "horizontal", "checker"].iter().enumerate() {
        std::fs::create_dir_all(dir.join(name)).unwrap();
        for i in 0..per_class {
            let (phase, period) = (rng.below(8) as u32, 4 + rng.below(4) as u32);
            let img = image::RgbImage::from_fn(32, 32, |x, y| {
                let on = match c {
                    0 => ((x + phase) / period) % 2 == 0,
                    1 => ((y + phase) / period) % 2 == 0,
                    _ => (((x + phase) / period) + ((y + phase) / period)) % 2 == 0,
                };
                let v = if on { 200.0 } else { 50.0 } + 30.0 * rng.normal();
                let v = v.clamp(0.0, 255.0) as u8;
                image::Rgb([v, v / 2, 255 - v])
            });
            img.save(dir.join(name).join(format!("{i}.png"))).unwrap();
        }
    }
}

#[test]
#[ignore = "slow tier: trains on a generated folder (scripts/test.sh runs it)"]
fn any_class_per_folder_dataset_works_with_its_own_classes() {
    let base = std::env::temp_dir().join(format!("easel-lab-folder-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let data = base.join("patterns");
    pattern_folder(&data, 60);
    let out = base.join("runs");
    let run = |extra: &[&str]| {
        let mut a = vec!["sample", "--data", data.to_str().unwrap(), "--profile", "longtail:5", "--rare", "2", "--epochs", "4", "--batch-size", "8"];
        a.extend_from_slice(&["--strategies", "uniform,oversample", "--seed", "1", "--out", out.to_str().unwrap(), "--force"]);
        a.extend_from_slice(extra);
        easel(&a)
    };

    // a folder has no test split of its own: say what to give
    let o = run(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("no test split") && err.contains("--holdout"), "{err}");

    let o = run(&["--holdout", "45"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("comparison.json")).unwrap()).unwrap();
    assert_eq!(v["classes"], serde_json::json!(["checker", "horizontal", "vertical"]), "sorted folder names, as ImageFolder");
    let counts: Vec<usize> = serde_json::from_value(v["train_counts"].clone()).unwrap();
    assert!(counts.iter().sum::<usize>() <= 180 - 45 && counts[2] > 0, "{counts:?}");
    assert!(counts[2] * 4 <= counts[0].max(counts[1]), "the rare class is cut to a fifth: {counts:?}");
    let record = easel_core::sampling::load_run(&out.join("uniform")).unwrap();
    assert_eq!(record.test.len(), 45);
    let held: Vec<usize> = record.test.labels.iter().fold(vec![0; 3], |mut c, &l| {
        c[l] += 1;
        c
    });
    assert!(held.iter().all(|&n| n > 0), "the held-out images are drawn from every class: {held:?}");
    // the patterns are easy: well above chance (1/3)
    let acc = v["rows"][0]["accuracy"].as_f64().unwrap();
    assert!(acc > 0.6, "uniform accuracy {acc}");
    // the saved model reads images as the run did: grey 28x28, the data's own statistics
    let model = easel_core::models::Classifier::load(&out.join("uniform/card.json"), &cpu()).unwrap();
    assert_eq!(model.card.classes, ["checker", "horizontal", "vertical"]);
    assert_eq!((model.card.input.channels, model.card.input.height), (1, 28));
    assert!((model.card.input.mean[0] - easel_core::data::FASHION_MEAN).abs() > 0.01, "{:?}", model.card.input.mean);
}

#[test]
#[ignore = "slow tier: trains six models"]
fn negative_mining_merging_at_training_and_collecting_more_each_get_their_rows() {
    let base = std::env::temp_dir().join(format!("easel-lab-hnm-{}", std::process::id()));
    let (a, b) = (base.join("a"), base.join("b"));
    let run = |out: &Path| lab(out, &["--strategies", "uniform,hnm,collect:150", "--merge", "4+6", "--mine-by", "rare"]);
    let out = run(&a);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let csv = std::fs::read_to_string(a.join("comparison.csv")).unwrap();
    for row in [
        "uniform (merged at inference)",
        "uniform (merged at training)",
        "hnm (merged at inference)",
        "hnm (merged at training)",
        "collect:150 (merged at inference)",
        "collect:150 (merged at training)",
    ] {
        assert!(csv.lines().any(|l| l.starts_with(row)), "comparison.csv lacks '{row}':\n{csv}");
    }
    // one merged taxonomy for every row: Coat and Shirt are one class, the labels follow
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(a.join("comparison.json")).unwrap()).unwrap();
    let classes: Vec<String> = serde_json::from_value(v["classes"].clone()).unwrap();
    assert_eq!(classes.len(), 9);
    assert_eq!(classes[4], "Coat+Shirt");
    let merged = easel_core::sampling::load_run(&a.join("uniform-merged-at-training")).unwrap();
    assert_eq!(merged.classes, classes);
    assert!(merged.test.labels.iter().all(|&l| l < 9));
    let unmerged = easel_core::sampling::load_run(&a.join("uniform")).unwrap();
    let shirts = unmerged.test.labels.iter().filter(|&&l| l == 4 || l == 6).count();
    assert_eq!(merged.test.labels.iter().filter(|&&l| l == 4).count(), shirts, "Coat and Shirt test images are all class 4 after merging");
    // negative mining keeps which samples it mined, with their pixels, none of a rare class
    let hnm = easel_core::sampling::load_run(&a.join("hnm")).unwrap();
    assert!(!hnm.mined.is_empty());
    assert!(hnm.mined.iter().all(|m| m.label != 4 && m.label != 6 && m.pixels.len() == 28 * 28));
    // collecting more: the training prior moves towards the rare classes and the row says what
    // each image bought
    let collect = easel_core::sampling::load_run(&a.join("collect_150")).unwrap();
    assert_eq!(collect.train_counts[4] + collect.train_counts[6], unmerged.train_counts[4] + unmerged.train_counts[6] + 150);
    let rows = v["rows"].as_array().unwrap();
    let c = rows.iter().find(|r| r["strategy"] == "collect:150 (merged at inference)").unwrap();
    assert_eq!(c["collected"], 150);
    // the same seed gives the same table
    assert!(run(&b).status.success());
    assert_eq!(csv, std::fs::read_to_string(b.join("comparison.csv")).unwrap());
}
