//! Can the model be tricked? Fooling images from noise (gradient ascent and a black-box
//! evolution strategy) and accuracy against the attack budget over a data set.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::*;
use easel_core::explain::fool::{FoolMethod, FoolParams, FoolStart};
use easel_core::models::Classifier;
use easel_core::progress::Progress;

fn easel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_easel")).args(args).env("EASEL_NO_GPU", "1").output().expect("the binary runs")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("easel-fool-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn fashion() -> Classifier {
    Classifier::load(&asset("fashion-mnist/model/card.json"), &cpu()).unwrap()
}

fn clean_failure(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected a failure: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(needle), "stderr lacks '{needle}': {err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("easel: error")).count(), 1, "{err}");
}

#[test]
fn gradient_ascent_from_noise_fools_the_fashion_model_on_every_class_within_300_steps() {
    let model = fashion();
    let params = FoolParams { steps: 300, ..FoolParams::new(0, FoolMethod::Gradient, 28) };
    let classes: Vec<usize> = (0..10).collect();
    let out = easel_jobs::fool::run_all(&model, &FoolStart::Noise, &params, &classes, Progress::none(), &mut |_, _, _| {}).unwrap();
    for it in &out.items {
        let m = &it.meta;
        assert!(m.start_probability < 0.5, "{}: noise starts at {}", m.target_class, m.start_probability);
        assert!(m.target_probability >= 0.99, "{}: {} after {} steps", m.target_class, m.target_probability, m.steps);
        assert!(m.steps <= 300);
        assert_eq!(m.top1, m.target, "the saved 8-bit image is taken for the target");
    }
    assert!(out.picture.width > 4 * 128 && out.picture.height > 128, "a gallery of ten tiles");
}

#[test]
#[ignore = "slow tier: a black-box search per class"]
fn evolution_without_gradients_fools_the_fashion_model_on_most_classes() {
    let model = fashion();
    let params = FoolParams::new(0, FoolMethod::Evolve, 28);
    let classes: Vec<usize> = (0..10).collect();
    let out = easel_jobs::fool::run_all(&model, &FoolStart::Noise, &params, &classes, Progress::none(), &mut |_, _, _| {}).unwrap();
    let reached: Vec<String> = out.items.iter().filter(|i| i.meta.reached).map(|i| i.meta.target_class.clone()).collect();
    assert!(reached.len() >= 8, "only {reached:?} reached 99 %");
    assert!(out.items.iter().all(|i| i.meta.start_probability < 0.5));
}

#[test]
#[ignore = "slow tier: EfficientNet-Lite0 forward and backward passes"]
fn gradient_ascent_fools_efficientnet_into_goldfish_balloon_and_banana() {
    let model = Classifier::load(&asset("efficientnet-lite0/card.json"), &cpu()).unwrap();
    for class in [1usize, 417, 954] {
        let params = FoolParams { steps: 500, ..FoolParams::new(class, FoolMethod::Gradient, 224) };
        let req = easel_jobs::fool::FoolRequest { start: FoolStart::Noise, params };
        let out = easel_jobs::fool::run(&model, &req, Progress::none(), &mut |_, _| {}).unwrap();
        assert!(out.meta.start_probability < 0.5);
        assert!(out.meta.target_probability >= 0.99, "{}: {} after {} steps", out.meta.target_class, out.meta.target_probability, out.meta.steps);
    }
}

#[test]
fn easel_fool_writes_the_image_its_pixels_the_trajectory_and_meta() {
    let d = scratch("cli");
    let card = asset("fashion-mnist/model/card.json");
    let out = easel(&["fool", "--model", card.to_str().unwrap(), "--target", "3", "--regularise", "blur", "--out", d.to_str().unwrap(), "--device", "cpu"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d.join("meta.json")).unwrap()).unwrap();
    for key in ["start_probability", "target_probability", "top1", "steps", "seconds", "settings", "model_hash"] {
        assert!(!meta[key].is_null(), "meta.json has {key}");
    }
    assert!(meta["target_probability"].as_f64().unwrap() >= 0.99);
    let pixels = read_npy(&d.join("fooled.npy"));
    assert_eq!(pixels.shape, vec![1, 28, 28]);
    assert!(pixels.data.iter().all(|v| (0.0..=1.0).contains(v)));
    let csv = std::fs::read_to_string(d.join("trajectory.csv")).unwrap();
    assert!(csv.starts_with("step,target_probability,top1\n0,"));
    assert!(image::open(d.join("fooled.png")).is_ok());
    // the saved pixels are what the model was asked about
    let model = fashion();
    let p = easel_core::explain::pixels::pixel_probabilities(&model, &pixels.data, 1).unwrap();
    assert!((p[0][3] as f64 - meta["target_probability"].as_f64().unwrap()).abs() < 1e-5);
    // never over an earlier result
    let again = easel(&["fool", "--model", card.to_str().unwrap(), "--target", "3", "--out", d.to_str().unwrap(), "--device", "cpu"]);
    clean_failure(&again, "already exists");
}

#[test]
fn bad_fooling_and_robustness_requests_are_one_line_errors() {
    let d = scratch("bad");
    let card = asset("fashion-mnist/model/card.json");
    let c = card.to_str().unwrap();
    let o = d.to_str().unwrap();
    clean_failure(&easel(&["fool", "--model", c, "--target", "10", "--out", o]), "out of range");
    clean_failure(&easel(&["fool", "--model", c, "--target", "1", "--steps", "0", "--out", o]), "steps must be in 1..");
    clean_failure(&easel(&["fool", "--model", c, "--target", "1", "--confidence", "NaN", "--out", o]), "confidence");
    let data = asset("fashion-mnist");
    let r = |eps: &str| easel(&["robustness", "--model", c, "--data", data.to_str().unwrap(), "--epsilons", eps, "--limit", "10"]);
    clean_failure(&r("0,-1/255"), "epsilon '-1/255'");
    clean_failure(&r("NaN"), "epsilon 'NaN'");
    clean_failure(&easel(&["robustness", "--model", c, "--data", data.to_str().unwrap(), "--limit", "0"]), "--limit must be at least 1");

    // a model whose output does not depend on its input gives no gradient: say so
    let map = easel_core::weights::read_tensors(&asset("fashion-mnist/model/weights.safetensors")).unwrap();
    let mut tensors: Vec<(String, easel_core::weights::HostTensor)> = map.tensors.into_iter().collect();
    for (name, t) in &mut tensors {
        if name.ends_with("weight") && !name.starts_with("bn") {
            t.data.iter_mut().for_each(|v| *v = 0.0);
        }
    }
    easel_core::weights::write_safetensors(&d.join("weights.safetensors"), &tensors).unwrap();
    let mut card_json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&card).unwrap()).unwrap();
    card_json["weights"] = "weights.safetensors".into();
    std::fs::write(d.join("card.json"), serde_json::to_string(&card_json).unwrap()).unwrap();
    let flat = easel(&["fool", "--model", d.join("card.json").to_str().unwrap(), "--target", "1", "--out", d.join("out").to_str().unwrap()]);
    clean_failure(&flat, "no gradient");
}

#[test]
fn the_robustness_curve_starts_at_the_clean_accuracy_and_never_rises() {
    let card = asset("fashion-mnist/model/card.json");
    let data = asset("fashion-mnist");
    let out = easel(&[
        "robustness",
        "--model",
        card.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--attack",
        "fgsm",
        "--epsilons",
        "0,1/255,2/255,4/255,8/255,16/255",
        "--limit",
        "500",
        "--json",
        "--device",
        "cpu",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let curve = v["curve"].as_array().unwrap();
    assert_eq!(curve[0]["epsilon"], 0.0);
    // epsilon 0 is exactly the clean accuracy of those 500 images
    let model = fashion();
    let set =
        easel_core::data::load_source(&easel_core::data::resolve_source(&data, "t10k").unwrap(), &model.card.input, &model.card.classes).unwrap().first(500);
    let preds = easel_core::evaluate::evaluate(&model, &set, 100, Progress::none()).unwrap();
    let clean = (0..500).filter(|&i| preds.preds[i] == preds.labels[i]).count() as f64 / 500.0;
    assert_eq!(curve[0]["accuracy"].as_f64().unwrap(), clean);
    assert_eq!(v["clean_accuracy"].as_f64().unwrap(), clean);
    let acc: Vec<f64> = curve.iter().map(|p| p["accuracy"].as_f64().unwrap()).collect();
    assert!(acc.windows(2).all(|w| w[1] <= w[0]), "never rises: {acc:?}");
    assert!(acc.last().unwrap() < &(clean - 0.2), "8 and 16 levels of noise trick the model on many images: {acc:?}");
    let flipped: Vec<u64> = curve.iter().map(|p| p["flipped"].as_u64().unwrap()).collect();
    assert_eq!(flipped[0], 0);
    assert!(flipped.windows(2).all(|w| w[1] >= w[0]));
    assert!(!v["most_fragile"].as_array().unwrap().is_empty());
}
