//! The `easel` binary on the shipped assets and on bad input: every bad input is one clear
//! error line and a non-zero exit, never a panic.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

fn easel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_easel")).args(args).env("EASEL_NO_GPU", "1").output().expect("the binary runs")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("easel-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Fails with a message containing every one of `needles`, and without a panic.
fn assert_clean_failure(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, got success; stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks '{n}': {err}");
    }
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("easel: error")).collect();
    assert_eq!(lines.len(), 1, "one error line: {err}");
}

fn fashion_card() -> PathBuf {
    fixture("smallcnn_fashion/card.json")
}

#[test]
fn predict_json_lists_top_k_for_the_shipped_photos() {
    let out = easel(&["predict", "--model", s(&asset("efficientnet-lite0/card.json")), "--images", s(&asset("photos")), "--top-k", "3", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let preds = v["predictions"].as_array().unwrap();
    let find = |name: &str| preds.iter().find(|p| p["image"].as_str().unwrap().ends_with(name)).unwrap();
    assert_eq!(find("coffee.png")["top_k"][0]["class"], "espresso");
    let cat = find("chelsea.png")["top_k"][0]["class_index"].as_u64().unwrap();
    assert!((281..=285).contains(&cat));
    assert_eq!(find("coffee.png")["top_k"].as_array().unwrap().len(), 3);
    assert_eq!(v["device"]["kind"], "cpu");
}

#[test]
fn a_corrupt_png_is_a_clear_error() {
    let d = scratch("corrupt");
    let p = d.join("broken.png");
    std::fs::write(&p, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDRgarbage-that-is-not-a-png").unwrap();
    assert_clean_failure(&easel(&["predict", "--model", s(&fashion_card()), "--images", s(&p)]), &["broken.png", "not a readable image"]);
}

#[test]
fn an_empty_file_is_a_clear_error() {
    let d = scratch("empty");
    let p = d.join("empty.png");
    std::fs::write(&p, b"").unwrap();
    assert_clean_failure(&easel(&["predict", "--model", s(&fashion_card()), "--images", s(&p)]), &["empty.png", "empty"]);
}

#[test]
fn a_folder_without_images_is_a_clear_error() {
    let d = scratch("noimages");
    std::fs::write(d.join("notes.txt"), b"hello").unwrap();
    assert_clean_failure(&easel(&["predict", "--model", s(&fashion_card()), "--images", s(&d)]), &["no images found"]);
}

#[test]
fn a_pickle_that_calls_os_system_is_refused_and_nothing_runs() {
    let marker = Path::new("/tmp/easel-pickle-code-ran");
    let _ = std::fs::remove_file(marker);
    let out = easel(&["predict", "--model", s(&fixture("bad/evil.json")), "--images", s(&fixture("smallcnn_fashion/input.png"))]);
    assert_clean_failure(&out, &["evil.pth", "system"]);
    assert!(!marker.exists(), "the pickle's code ran");
}

fn fixture_tensors() -> Vec<(String, easel_core::weights::HostTensor)> {
    let map = easel_core::weights::read_tensors(&fixture("smallcnn_fashion/weights.safetensors")).unwrap();
    map.tensors.into_iter().collect()
}

fn card_with_weights(dir: &Path, weights: &str, classes: usize) -> PathBuf {
    let mut card: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fashion_card()).unwrap()).unwrap();
    card["weights"] = weights.into();
    card["classes"] = serde_json::Value::Array(card["classes"].as_array().unwrap()[..classes].to_vec());
    card["architecture"]["num_classes"] = classes.into();
    let p = dir.join(format!("{weights}-{classes}.json"));
    std::fs::write(&p, serde_json::to_string(&card).unwrap()).unwrap();
    p
}

#[test]
fn a_wrong_shaped_tensor_names_the_tensor_and_both_shapes() {
    let d = scratch("shape");
    let mut tensors = fixture_tensors();
    let conv = tensors.iter_mut().find(|(k, _)| k == "conv2.weight").unwrap();
    conv.1 = easel_core::weights::HostTensor { shape: vec![32, 16, 5, 5], data: vec![0.0; 32 * 16 * 25] };
    easel_core::weights::write_safetensors(&d.join("w.safetensors"), &tensors).unwrap();
    let card = card_with_weights(&d, "w.safetensors", 10);
    let out = easel(&["predict", "--model", s(&card), "--images", s(&fixture("smallcnn_fashion/input.png"))]);
    assert_clean_failure(&out, &["conv2.weight", "[32, 16, 5, 5]", "[32, 16, 3, 3]"]);
}

#[test]
fn missing_extra_and_truncated_weights_are_clear_errors() {
    let d = scratch("missing");
    let tensors: Vec<_> = fixture_tensors().into_iter().filter(|(k, _)| k != "fc1.bias").collect();
    easel_core::weights::write_safetensors(&d.join("m.safetensors"), &tensors).unwrap();
    let card = card_with_weights(&d, "m.safetensors", 10);
    assert_clean_failure(&easel(&["predict", "--model", s(&card), "--images", s(&fixture("smallcnn_fashion/input.png"))]), &["fc1.bias", "missing", "[64]"]);

    let mut extra = fixture_tensors();
    extra.push(("fc3.weight".into(), easel_core::weights::HostTensor { shape: vec![2, 2], data: vec![0.0; 4] }));
    easel_core::weights::write_safetensors(&d.join("e.safetensors"), &extra).unwrap();
    let card = card_with_weights(&d, "e.safetensors", 10);
    assert_clean_failure(&easel(&["predict", "--model", s(&card), "--images", s(&fixture("smallcnn_fashion/input.png"))]), &["fc3.weight", "not part of"]);

    let bytes = std::fs::read(fixture("smallcnn_fashion/weights.safetensors")).unwrap();
    std::fs::write(d.join("t.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let card = card_with_weights(&d, "t.safetensors", 10);
    assert_clean_failure(
        &easel(&["predict", "--model", s(&card), "--images", s(&fixture("smallcnn_fashion/input.png"))]),
        &["t.safetensors", "not a valid safetensors"],
    );
}

#[test]
fn a_card_with_five_classes_for_a_ten_class_head_is_refused() {
    let d = scratch("classes");
    std::fs::copy(fixture("smallcnn_fashion/weights.safetensors"), d.join("weights.safetensors")).unwrap();
    let card = card_with_weights(&d, "weights.safetensors", 5);
    let out = easel(&["predict", "--model", s(&card), "--images", s(&fixture("smallcnn_fashion/input.png"))]);
    assert_clean_failure(&out, &["5 classes", "10 outputs"]);
}

#[test]
fn explain_rejects_bad_requests_clearly() {
    let d = scratch("explain");
    let out_dir = d.join("out");
    let card = fashion_card();
    let img = fixture("smallcnn_fashion/input.png");
    let base = |extra: &[&str]| {
        let mut a = vec!["explain", "--model", s(&card), "--image", s(&img), "--out", s(&out_dir)];
        a.extend_from_slice(extra);
        easel(&a.to_vec())
    };
    assert_clean_failure(&base(&["--method", "telepathy"]), &["invalid value 'telepathy'", "occlusion"]);
    assert_clean_failure(&base(&["--method", "occlusion", "--window", "40"]), &["larger than the 28x28 input"]);
    assert_clean_failure(&base(&["--method", "occlusion", "--stride", "0"]), &["stride must be at least 1"]);
    assert_clean_failure(&base(&["--method", "saliency", "--target", "10"]), &["class index 10 is out of range"]);
    let bad = d.join("missing.png");
    let mut a = vec!["explain", "--model", s(&card), "--image", s(&bad), "--out", s(&out_dir), "--method", "saliency"];
    assert_clean_failure(&easel(&a), &["missing.png"]);
    a.clear();
    assert!(!out_dir.join("meta.json").exists(), "nothing is written for a bad request");
}

#[test]
fn explain_writes_npy_png_and_meta() {
    let d = scratch("explain-ok");
    let out_dir = d.join("occ");
    let out = easel(&[
        "explain",
        "--model",
        s(&fashion_card()),
        "--image",
        s(&fixture("smallcnn_fashion/input.png")),
        "--method",
        "occlusion",
        "--window",
        "4",
        "--stride",
        "2",
        "--fill",
        "0",
        "--out",
        s(&out_dir),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let map = read_npy(&out_dir.join("occlusion.npy"));
    assert_eq!(map.shape, vec![1, 28, 28]);
    let want = read_npy(&fixture("smallcnn_fashion/occlusion.npy"));
    assert!(max_rel_err(&map.data, &want.data) < 1e-4);
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out_dir.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["target"], 9);
    assert_eq!(meta["target_class"], "Ankle boot");
    assert!(meta["model_hash"].as_str().unwrap().len() == 16);
    assert!(image::open(out_dir.join("occlusion.png")).unwrap().width() > 256);
    // a second run does not overwrite without --force
    let again =
        easel(&["explain", "--model", s(&fashion_card()), "--image", s(&fixture("smallcnn_fashion/input.png")), "--method", "occlusion", "--out", s(&out_dir)]);
    assert_clean_failure(&again, &["already exists"]);

    let ig_dir = d.join("ig");
    let out = easel(&[
        "explain",
        "--model",
        s(&fashion_card()),
        "--image",
        s(&fixture("smallcnn_fashion/input.png")),
        "--method",
        "ig",
        "--steps",
        "50",
        "--out",
        s(&ig_dir),
        "--sanity",
        "cascade",
        "--curves",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(ig_dir.join("meta.json")).unwrap()).unwrap();
    assert!(meta["convergence_delta"].as_f64().unwrap().abs() < 0.05);
    assert_eq!(meta["sanity"]["steps"].as_array().unwrap().len(), 4, "fc2, fc1, conv2, conv1");
    let del = meta["deletion_auc"].as_f64().unwrap();
    let ins = meta["insertion_auc"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&del) && (0.0..=1.0).contains(&ins));
}

#[test]
fn info_names_the_device() {
    let out = easel(&["info", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "cpu");
    assert!(v["reason"].as_str().unwrap().contains("EASEL_NO_GPU"));
    let bad = easel(&["info", "--device", "quantum"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid value 'quantum'"));
}

#[test]
fn evaluate_on_a_fresh_machine_creates_its_cache_folder() {
    // no cache folder yet, as on a machine that never ran easel
    let d = scratch("fresh-cache");
    let cache = d.join("never").join("made");
    // a small class-per-folder set: two classes, two images each
    let data = d.join("data");
    for class in ["0", "1"] {
        std::fs::create_dir_all(data.join(class)).unwrap();
        for name in ["0-ankle-boot.png", "1-pullover.png"] {
            std::fs::copy(asset("fashion-mnist/samples").join(name), data.join(class).join(name)).unwrap();
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_easel"))
        .args(["evaluate", "--model", s(&fashion_card()), "--data", s(&data), "--device", "cpu", "--json"])
        .env("EASEL_CACHE_DIR", &cache)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read_dir(&cache).unwrap().count() > 0, "the predictions were cached");
    // a relative cache setting is ignored rather than writing into the working folder
    let cwd = d.join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_easel"))
        .current_dir(&cwd)
        .args(["evaluate", "--model", s(&fashion_card()), "--data", s(&data), "--device", "cpu", "--json"])
        .env("EASEL_CACHE_DIR", "relative-cache")
        .env("XDG_CACHE_HOME", d.join("xdg"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!cwd.join("relative-cache").exists());
    assert!(d.join("xdg").join("easel").is_dir());
}
