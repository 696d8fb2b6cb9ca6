//! One engine under both front-ends: an action run through the `easel` binary and through the
//! job layer, with the settings the app builds, writes the same files byte for byte.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use easel_core::explain::{Fill, Method, MethodKind};
use easel_core::imaging;
use easel_core::models::Classifier;
use easel_core::progress::Progress;
use easel_jobs::explain::{self, ExplainRequest, Provenance};
use easel_jobs::settings::AttackSettings;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("easel-engine-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn easel(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_easel")).args(args).env("EASEL_NO_GPU", "1").output().expect("the binary runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn fashion() -> (Classifier, PathBuf, easel_core::imaging::PreparedImage) {
    let card = asset("fashion-mnist/model/card.json");
    let model = Classifier::load(&card, &cpu()).unwrap();
    let image_path = asset("fashion-mnist/samples/0-ankle-boot.png");
    let image = imaging::load_prepared(&image_path, &model.card.input).unwrap();
    (model, image_path, image)
}

/// The request the app's Explain view sends for `method` (its defaults: colours follow the
/// method, the quick check on).
fn app_request(method: Method) -> ExplainRequest {
    let settings = easel_app::state::ExplainSettings::default();
    let mut r = ExplainRequest::new(method.clone());
    r.render = easel_app::views::explain::ExplainView::render_options(&settings, &method);
    r
}

fn same_files(a: &Path, b: &Path, names: &[String]) {
    for n in names {
        let (x, y) = (std::fs::read(a.join(n)).unwrap(), std::fs::read(b.join(n)).unwrap());
        assert!(x == y, "{n} differs between the CLI and the job layer");
    }
}

fn check(method: Method, cli_flags: &[&str]) {
    let (model, image_path, image) = fashion();
    let kind = method.kind();
    let d = scratch(kind.name());
    let (cli, job) = (d.join("cli"), d.join("job"));
    let card = asset("fashion-mnist/model/card.json");
    let mut args = vec!["explain", "--model", card.to_str().unwrap(), "--image", image_path.to_str().unwrap(), "--method", kind.name()];
    args.extend_from_slice(cli_flags);
    args.extend_from_slice(&["--out", cli.to_str().unwrap(), "--device", "cpu"]);
    easel(&args);
    let out = explain::run(&model, &image, &Provenance::default(), &app_request(method), Progress::none(), &mut |_, _, _| {}).unwrap();
    out.save(&job, false).unwrap();
    let mut names = vec![format!("{}.npy", kind.name()), format!("{}.png", kind.name())];
    if kind.is_attack() {
        names.push(format!("{}-perturbation.png", kind.name()));
        names.push("original.png".into());
    }
    same_files(&cli, &job, &names);
    // meta.json records the same settings
    let meta = |d: &Path| serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(d.join("meta.json")).unwrap()).unwrap();
    let (m1, m2) = (meta(&cli), meta(&job));
    for key in ["settings", "render", "target", "top_k", "map_sum", "model_hash"] {
        assert_eq!(m1[key], m2[key], "meta.json's {key}");
    }
}

#[test]
fn occlusion_with_the_blurred_fill_is_the_same_from_the_cli_and_the_app() {
    // the app's "blurred copy" entry and the CLI's `--fill blur` are one preset
    let (h, w) = (28, 28);
    let mut method = Method::defaults(MethodKind::Occlusion, h, w);
    if let Method::Occlusion(p) = &mut method {
        p.fill = Fill::presets(h, w).into_iter().find(|(n, _)| *n == "blur").unwrap().1;
    }
    check(method, &["--fill", "blur"]);
}

#[test]
fn integrated_gradients_are_the_same_from_the_cli_and_the_app() {
    check(Method::defaults(MethodKind::Ig, 28, 28), &[]);
}

#[test]
fn smoothgrad_is_the_same_from_the_cli_and_the_app() {
    check(Method::defaults(MethodKind::Smoothgrad, 28, 28), &[]);
}

#[test]
fn pgd_is_the_same_from_the_cli_and_the_adversarial_view() {
    let view = AttackSettings { pgd: true, epsilon_levels: 2.0, steps: 10, target: None };
    let eps = format!("{}", 2.0f32 / 255.0);
    check(view.method(), &["--epsilon", &eps, "--steps", "10"]);
}

/// `run.json` without its timings.
fn run_json(dir: &Path) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("seconds");
    for e in v["epochs"].as_array_mut().unwrap() {
        e.as_object_mut().unwrap().remove("seconds");
    }
    v
}

#[test]
fn the_lab_is_the_same_from_the_cli_and_the_job_layer() {
    let d = scratch("lab");
    let (cli, job) = (d.join("cli"), d.join("job"));
    let data = asset("fashion-mnist");
    easel(&[
        "sample",
        "--data",
        data.to_str().unwrap(),
        "--data-split",
        "t10k",
        "--holdout",
        "1000",
        "--per-class",
        "100",
        "--profile",
        "longtail:10",
        "--rare",
        "4",
        "--epochs",
        "1",
        "--seed",
        "5",
        "--strategies",
        "uniform,oversample+weighted",
        "--out",
        cli.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    let req = easel_jobs::lab::LabRequest {
        data,
        data_split: "t10k".into(),
        test: None,
        holdout: Some(1000),
        profile: easel_core::sampling::Profile::LongTail { ratio: 10.0, rare: vec![4] },
        per_class: Some(100),
        strategies: vec!["uniform".parse().unwrap(), "oversample+weighted".parse().unwrap()],
        arch: Default::default(),
        settings: easel_jobs::lab::LabRequest::settings(1, 5),
        cost: None,
        mining: Default::default(),
        merges: Vec::new(),
        out: job.clone(),
        force: false,
    };
    easel_jobs::lab::run(&req, &cpu(), &mut |_| {}, Progress::none()).unwrap();
    same_files(&cli, &job, &["comparison.csv".into(), "comparison-prior-corrected.csv".into()]);
    for run in ["uniform", "oversample_weighted"] {
        assert_eq!(run_json(&cli.join(run)), run_json(&job.join(run)), "{run}/run.json");
        same_files(&cli.join(run), &job.join(run), &["predictions.csv".into(), "weights.safetensors".into()]);
    }
}
