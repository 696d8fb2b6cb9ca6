//! Model A against model B: the comparison agrees with statsmodels and scikit-learn on a
//! fixture whose second file is row-shuffled (`tests/fixtures/versus/make_expected.py`
//! computed `expected.json` independently), through the library and through `easel metrics
//! --versus`; mismatched files are refused naming the path; `easel explain` with two models
//! renders both maps on one scale.

mod common;
#[path = "common/models.rs"]
mod models;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use easel_core::metrics::versus::{self, VersusOptions};
use easel_core::metrics::{CostMatrix, Predictions};

fn expected() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("versus/expected.json")).unwrap()).unwrap()
}

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap()
}

fn easel(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_easel")).args(args).env("EASEL_NO_GPU", "1").env("EASEL_CACHE_DIR", cache).output().expect("the binary runs")
}

fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("easel-vs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn the_comparison_matches_statsmodels_and_scikit_learn_on_shuffled_rows() {
    let e = expected();
    let a = Predictions::read_csv(&fixture("versus/a.csv"), None).unwrap();
    let b = Predictions::read_csv(&fixture("versus/b.csv"), None).unwrap();
    assert_ne!(a.paths, b.paths, "the fixture's B is row-shuffled");
    let cost = CostMatrix::read_csv(&fixture("versus/cost.csv"), 4).unwrap();
    let (joined, r) = versus::compare(&a, &b, Some(&cost), VersusOptions::default(), "a.csv", "b.csv").unwrap();
    assert_eq!(joined.paths, a.paths);
    assert_eq!(r.both_right as u64, e["both_right"].as_u64().unwrap());
    assert_eq!(r.a_only as u64, e["a_only"].as_u64().unwrap());
    assert_eq!(r.b_only as u64, e["b_only"].as_u64().unwrap());
    assert_eq!(r.both_wrong as u64, e["both_wrong"].as_u64().unwrap());
    assert!((r.accuracy_a - f(&e["accuracy_a"])).abs() < 1e-12);
    assert!((r.accuracy_b - f(&e["accuracy_b"])).abs() < 1e-12);
    assert!((r.accuracy_delta - f(&e["accuracy_delta"])).abs() < 1e-12);
    assert_eq!(r.mcnemar_statistic as f64, f(&e["mcnemar_statistic"]));
    let p = f(&e["mcnemar_p"]);
    assert!(((r.mcnemar_p - p) / p).abs() < 1e-9, "McNemar p: easel {}, statsmodels {p}", r.mcnemar_p);
    for (c, d) in r.per_class.iter().enumerate() {
        assert!((d.recall_a - f(&e["recall_a"][c])).abs() < 1e-12);
        assert!((d.recall_b - f(&e["recall_b"][c])).abs() < 1e-12);
        assert!((d.delta - f(&e["recall_delta"][c])).abs() < 1e-12);
        assert_eq!(d.support as u64, e["support"][c].as_u64().unwrap());
    }
    assert_eq!(r.per_class.iter().map(|c| c.a_only).sum::<usize>(), r.a_only);
    let c = r.cost.as_ref().unwrap();
    assert_eq!(c.total_a, f(&e["cost_a"]));
    assert_eq!(c.total_b, f(&e["cost_b"]));
    assert_eq!(c.total_delta, f(&e["cost_b"]) - f(&e["cost_a"]));
    // the seeded interval holds the delta and is about +-1.96 standard errors wide
    let (lo, hi) = (r.delta_ci95[0], r.delta_ci95[1]);
    assert!(lo < r.accuracy_delta && r.accuracy_delta < hi, "{lo} {hi}");
    let width = (hi - lo) / (2.0 * 1.96 * f(&e["delta_se"]));
    assert!((width - 1.0).abs() < 0.12, "interval width {width} x the normal one");
    let again = versus::compare(&a, &b, Some(&cost), VersusOptions::default(), "a", "b").unwrap().1;
    assert_eq!(again.delta_ci95, r.delta_ci95, "seeded");
    assert!(r.verdict.starts_with("B is better"), "{}", r.verdict);
    assert!(r.verdict.contains("p = 4.1e-5"), "{}", r.verdict);
}

#[test]
fn mcnemar_p_values_match_statsmodels() {
    let e = expected();
    for (pair, p) in e["mcnemar_pairs"].as_array().unwrap().iter().zip(e["mcnemar_pair_p"].as_array().unwrap()) {
        let (n01, n10) = (pair[0].as_u64().unwrap() as usize, pair[1].as_u64().unwrap() as usize);
        let ours = versus::mcnemar_exact(n01, n10).1;
        let want = f(p);
        assert!(((ours - want) / want).abs() < 1e-9, "({n01}, {n10}): easel {ours}, statsmodels {want}");
    }
}

#[test]
fn metrics_versus_prints_the_json_keys_and_refuses_mismatched_files() {
    let d = scratch("cli");
    let e = expected();
    let (a, b, cost) = (fixture("versus/a.csv"), fixture("versus/b.csv"), fixture("versus/cost.csv"));
    let out = easel(&["metrics", "--predictions", a.to_str().unwrap(), "--versus", b.to_str().unwrap(), "--cost", cost.to_str().unwrap(), "--json"], &d);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let vs = &v["versus"];
    for key in ["both_right", "a_only", "b_only", "both_wrong"] {
        assert_eq!(vs[key], e[key], "{key}");
    }
    assert!((f(&vs["accuracy_delta"]) - f(&e["accuracy_delta"])).abs() < 1e-12);
    assert!(((f(&vs["mcnemar_p"]) - f(&e["mcnemar_p"])) / f(&e["mcnemar_p"])).abs() < 1e-9);
    assert_eq!(vs["delta_ci95"].as_array().unwrap().len(), 2);
    assert_eq!(vs["per_class"].as_array().unwrap().len(), 4);
    assert_eq!(f(&vs["cost"]["total_b"]), f(&e["cost_b"]));
    assert!((f(&v["b"]["summary"]["accuracy"]) - f(&e["accuracy_b"])).abs() < 1e-12);

    let text = easel(&["metrics", "--predictions", a.to_str().unwrap(), "--versus", b.to_str().unwrap()], &d);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(stdout.contains("B is better") && stdout.contains("arises by chance with p = 4.1e-5"), "{stdout}");

    // a path in one file only, and a label that differs, are refused naming the path
    let b_text = std::fs::read_to_string(&b).unwrap();
    let extra = d.join("extra.csv");
    std::fs::write(&extra, b_text.replacen("img007.png", "img999.png", 1)).unwrap();
    let out = easel(&["metrics", "--predictions", a.to_str().unwrap(), "--versus", extra.to_str().unwrap()], &d);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("img999.png is in") && err.contains("extra.csv"), "{err}");
    let line = b_text.lines().find(|l| l.starts_with("img010.png,")).unwrap();
    let label = line.split(',').nth(1).unwrap();
    let other = if label == "0" { "1" } else { "0" };
    let relabelled = d.join("relabelled.csv");
    std::fs::write(&relabelled, b_text.replacen(&format!("img010.png,{label},"), &format!("img010.png,{other},"), 1)).unwrap();
    let out = easel(&["metrics", "--predictions", a.to_str().unwrap(), "--versus", relabelled.to_str().unwrap()], &d);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains(&format!("img010.png is labelled {label} in")), "{err}");
}

#[test]
fn explain_with_two_models_renders_both_maps_on_one_scale() {
    let d = scratch("pair");
    let b = models::shifted_demo_model(&d.join("b"), 6, 2.0);
    let a = asset("fashion-mnist/model/card.json");
    let image = asset("fashion-mnist/samples/19-t-shirt-top.png");
    let out_dir = d.join("out");
    let args = ["explain", "--model", a.to_str().unwrap(), "--model", b.to_str().unwrap(), "--image", image.to_str().unwrap(), "--method", "gradcam"];
    let out = easel(&[&args[..], &["--out", out_dir.to_str().unwrap(), "--device", "cpu"]].concat(), &d);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for f in ["a/gradcam.png", "a/gradcam.npy", "a/meta.json", "b/gradcam.png", "b/meta.json", "side-by-side.png", "pair.json"] {
        assert!(out_dir.join(f).is_file(), "{f}");
    }
    let read = |p: &str| serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(out_dir.join(p)).unwrap()).unwrap();
    let (pair, ma, mb) = (read("pair.json"), read("a/meta.json"), read("b/meta.json"));
    let scale = f(&pair["shared_scale"]);
    assert!(scale > 0.0);
    assert_eq!(f(&ma["render_scale"]), scale);
    assert_eq!(f(&mb["render_scale"]), scale);
    assert_eq!(ma["target"], mb["target"], "one target class for both");
    assert_eq!(ma["target"], pair["target"]);
    assert_ne!(ma["model_hash"], mb["model_hash"]);
    assert_eq!(pair["target"], ma["top_k"][0]["class_index"], "by default the class A predicts");
    // a second run refuses to overwrite; with --force and --target both maps explain that class
    let again = easel(&[&args[..], &["--out", out_dir.to_str().unwrap(), "--device", "cpu", "--target", "6"]].concat(), &d);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("--force"));
    let forced = easel(&[&args[..], &["--out", out_dir.to_str().unwrap(), "--device", "cpu", "--target", "6", "--force"]].concat(), &d);
    assert!(forced.status.success(), "{}", String::from_utf8_lossy(&forced.stderr));
    assert_eq!(read("pair.json")["target"], 6);
    assert_eq!(read("b/meta.json")["target"], 6);
    // the shared scale is the larger of the two maps' own scales
    let scale = f(&read("pair.json")["shared_scale"]);
    let single = |model: &Path, name: &str| {
        let dir = d.join(name);
        let o = easel(
            &[
                "explain",
                "--model",
                model.to_str().unwrap(),
                "--image",
                image.to_str().unwrap(),
                "--method",
                "gradcam",
                "--target",
                "6",
                "--out",
                dir.to_str().unwrap(),
                "--device",
                "cpu",
            ],
            &d,
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        f(&serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap()["render_scale"])
    };
    let (sa, sb) = (single(&a, "single-a"), single(&b, "single-b"));
    assert!((scale - sa.max(sb)).abs() <= 1e-6 * scale, "shared {scale}, alone {sa} and {sb}");
}
