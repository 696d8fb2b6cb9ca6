//! The real panels, driven by `egui_kittest` (no display, no GPU): open a demo, select an
//! image, choose each method by its label and see its overlay arrive, cancel, browse while a
//! job runs, switch models, survive a corrupt file, export, restart.

#[path = "common/gui.rs"]
mod gui_common;

use std::time::{Duration, Instant};

use easel_app::command::{Command, ExplainCommand};
use easel_app::state::{Demo, State};
use easel_core::explain::MethodKind;
use easel_jobs::SlotState;
use egui_kittest::kittest::Queryable;
use gui_common::*;

#[test]
fn fashion_demo_explains_every_method_by_its_label() {
    let mut h = harness(Demo::Fashion, "methods");
    wait_for(&mut h, "the demo's first map", 60, |a| a.session.images.len() == 10_000 && map_of(a).is_some());
    assert!(h.state().notes.errors.is_empty(), "{:?}", h.state().notes.errors);

    // select another image by its row label
    h.get_by_label("#1 · Pullover").click();
    wait_for(&mut h, "image #1", 30, |a| a.session.current.as_ref().is_some_and(|c| c.index == 1) && map_of(a).is_some());
    assert_eq!(h.state().state.session.selected, 1);

    for kind in MethodKind::maps() {
        h.get_by_label(kind.title()).click();
        wait_for(&mut h, kind.title(), 60, |a| map_of(a) == Some(kind));
        let app = h.state();
        let m = app.explain.shown_map(app.session.generation()).unwrap();
        assert!(m.output.explanation.map.values.iter().any(|v| *v != 0.0), "{}: the map is not empty", kind.title());
        assert_eq!(m.output.explanation.target, app.session.current.as_ref().unwrap().top[0].class_index, "{}: explains the predicted class", kind.title());
        let _caption = h.get_by_label_contains(&format!("{} of “", kind.title()));
    }

    // clicking another class explains that class
    let second = h.state().session.current.as_ref().unwrap().top[1].clone();
    h.get_by_label(&format!("{:>5.1}%  {}", second.probability * 100.0, second.class)).click();
    wait_for(&mut h, "the runner-up's map", 30, |a| {
        a.explain.map.last().is_some_and(|m| m.output.explanation.target == second.class_index) && !a.explain.map.is_running()
    });

    // arrow keys move between images
    h.key_press(eframe::egui::Key::ArrowDown);
    wait_for(&mut h, "the next image", 30, |a| a.session.current.as_ref().is_some_and(|c| c.index == 2));
}

#[test]
fn a_running_occlusion_can_be_cancelled_and_the_old_map_stays() {
    let mut h = harness(Demo::Photos, "cancel");
    wait_for(&mut h, "the photos demo", 90, |a| a.session.images.len() == 4 && map_of(a) == Some(MethodKind::Gradcam));
    h.get_by_label("Occlusion").click();
    wait_for(&mut h, "occlusion to start", 30, |a| a.explain.map.counts().is_some_and(|(d, _)| d > 0));
    assert!(h.state().explain.map.is_stale(), "the previous map stays on screen, dimmed");
    h.get_by_label("Cancel").click();
    h.step();
    let app = h.state();
    assert!(!app.explain.map.is_running(), "the cancel is immediate");
    assert_eq!(map_of(app), Some(MethodKind::Gradcam), "no occlusion result arrived; Grad-CAM stays");
}

#[test]
fn selecting_another_image_stops_the_running_job_and_shows_the_new_image_at_once() {
    let mut h = harness(Demo::Photos, "browse");
    wait_for(&mut h, "the photos demo", 90, |a| a.session.images.len() == 4 && map_of(a).is_some());
    h.get_by_label("Occlusion").click();
    wait_for(&mut h, "occlusion to start", 30, |a| a.explain.map.counts().is_some_and(|(d, _)| d > 0));
    let old_gen = h.state().session.generation();
    let clicked = Instant::now();
    h.get_by_label("coffee.png").click();
    h.step();
    {
        let app = h.state();
        assert!(!app.explain.map.is_running(), "the occlusion of the old image stops with the click");
        assert!(app.session.current.is_none(), "the old image and its predictions leave the screen");
        assert!(app.explain.shown_map(app.session.generation()).is_none(), "no map of another image beside the new one");
    }
    // the worker drops the occlusion at its next window and predicts the new image (before
    // the fix it finished all 730 windows first: about 25 s on two cores)
    wait_for(&mut h, "coffee.png with its predictions", 20, |a| current_name(a).as_deref() == Some("coffee.png"));
    let waited = clicked.elapsed();
    assert!(waited < Duration::from_secs(8), "the new image took {waited:?}");
    let app = h.state();
    assert_eq!(app.session.current.as_ref().unwrap().top[0].class, "espresso");
    assert!(app.session.generation() != old_gen);
    // occlusion on a 224x224 model is slow: it waits for Run instead of restarting by itself
    assert!(!app.explain.map.is_running());
    assert!(app.explain.waiting.is_some_and(|s| s > 3.0), "{:?}", app.explain.waiting);
    let _offer = h.get_by_label_contains("takes about");
    h.get_by_label("Run").click();
    h.step();
    assert!(h.state().explain.map.is_running(), "Run starts it");
    h.step();
    h.get_by_label("Cancel").click();
    h.step();
    h.step();
    // a cancelled map with no predecessor for this image says so, not "computing…"
    assert_eq!(h.state().explain.map.state(), SlotState::Cancelled);
    let _ = h.get_by_label("Cancelled.");
    assert!(h.query_by_label("computing…").is_none());
}

#[test]
fn holding_an_arrow_key_does_not_queue_a_job_per_image() {
    let mut h = harness(Demo::Fashion, "arrows");
    wait_for(&mut h, "the demo", 60, |a| map_of(a).is_some());
    for _ in 0..15 {
        h.key_press(eframe::egui::Key::ArrowDown);
        h.step();
    }
    wait_for(&mut h, "image #15", 30, |a| a.session.current.as_ref().is_some_and(|c| c.index == 15));
    wait_for(&mut h, "its map", 30, |a| map_of(a).is_some());
    let app = h.state();
    let m = app.explain.shown_map(app.session.generation()).unwrap();
    assert_eq!(m.image_name, "#15", "the caption names the image on screen");
    let _ = h.get_by_label_contains("· #15");
}

#[test]
fn the_cascade_and_pgd_show_progress_time_left_and_cancel() {
    let mut h = harness(Demo::Photos, "cascade");
    wait_for(&mut h, "the photos demo", 90, |a| a.session.images.len() == 4 && map_of(a).is_some());
    h.get_by_label("Saliency (|gradient|)").click();
    wait_for(&mut h, "saliency", 60, |a| map_of(a) == Some(MethodKind::Saliency));
    h.get_by_label("Full cascade").click();
    wait_for(&mut h, "cascade progress", 60, |a| a.explain.trust.counts().is_some_and(|(d, t)| d >= 2 && t > 10));
    assert!(h.state().explain.trust.eta().is_some(), "the time left is known after two steps");
    let _bar = h.get_by_label_contains("left");
    h.get_by_label("Cancel").click();
    h.step();
    assert!(!h.state().explain.trust.is_running());
    h.step();
    let _ = h.get_by_label("Cascade cancelled.");

    // PGD with many steps on EfficientNet: progress, time left, Cancel
    h.get_by_label("Adversarial").click();
    h.step();
    h.state_mut().state.adversarial.attack.pgd = true;
    h.state_mut().state.adversarial.attack.steps = 40;
    h.state_mut().commands.push(Command::Attack(easel_app::command::AttackCommand::Run));
    wait_for(&mut h, "PGD progress", 60, |a| a.adversarial.slot.counts().is_some_and(|(d, t)| d >= 2 && t == 40));
    let _bar = h.get_by_label_contains("attacking…");
    h.get_by_label("Cancel").click();
    h.step();
    assert!(!h.state().adversarial.slot.is_running());
}

/// A 3-class two-conv model with random weights, 28x28 grey.
fn three_class_model(dir: &std::path::Path) -> std::path::PathBuf {
    use easel_core::card::{CARD_FORMAT, ModelCard};
    use easel_core::models::{Architecture, SmallCnnPreset};
    let arch = Architecture::SmallCnn(SmallCnnPreset::TwoConv.config(3));
    let net = arch.init(&burn::tensor::Device::flex()).unwrap();
    easel_core::weights::write_safetensors(&dir.join("weights.safetensors"), &net.torch_tensors(&arch).unwrap()).unwrap();
    let card = ModelCard {
        format: CARD_FORMAT.into(),
        name: "three shapes".into(),
        architecture: arch,
        weights: "weights.safetensors".into(),
        input: easel_core::data::fashion_input(),
        classes: vec!["circle".into(), "square".into(), "star".into()],
        source: String::new(),
        license: String::new(),
        metrics: serde_json::Value::Null,
    };
    card.save(&dir.join("card.json")).unwrap();
    dir.join("card.json")
}

#[test]
fn switching_models_never_reads_a_stale_label_or_a_wrong_sized_image() {
    let dir = scratch("switch");
    let three = three_class_model(&dir);
    let mut h = harness(Demo::Fashion, "switch-cache");
    wait_for(&mut h, "the demo", 60, |a| a.session.images.len() == 10_000 && map_of(a).is_some());
    h.get_by_label("#8 · Sandal").click();
    wait_for(&mut h, "image #8", 30, |a| a.session.current.as_ref().is_some_and(|c| c.index == 8) && map_of(a).is_some());

    // a 3-class model with the Fashion set (labels up to 9) still open
    h.state_mut().commands.push(Command::OpenModel(three));
    wait_for(&mut h, "the 3-class model's map", 60, |a| a.session.model.as_ref().is_some_and(|m| m.classes.len() == 3) && map_of(a).is_some());
    {
        let app = h.state();
        assert!(app.notes.errors.is_empty(), "{:?}", app.notes.errors);
        let cur = app.session.current.as_ref().unwrap();
        assert_eq!(cur.top.len(), 3);
        assert_eq!(cur.label.as_deref(), Some("Sandal"), "the set's own class name, not the model's class 5");
    }
    let _ = h.get_by_label_contains("not one of this model's classes");

    // EfficientNet: the 28x28 grey image is brought to 224x224 RGB, never handed over as it is
    h.state_mut().commands.push(Command::OpenModel(asset_path("efficientnet-lite0/card.json")));
    wait_for(&mut h, "EfficientNet's predictions", 120, |a| a.session.model.as_ref().is_some_and(|m| m.classes.len() == 1000) && a.session.current.is_some());
    let app = h.state();
    assert!(app.notes.errors.is_empty(), "{:?}", app.notes.errors);
    let cur = app.session.current.as_ref().unwrap();
    assert_eq!((cur.image.channels, cur.image.width), (3, 224));
}

fn asset_path(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets").join(rel)
}

#[test]
fn a_bad_model_file_clears_loading_and_a_corrupt_image_raises_the_banner() {
    let dir = scratch("corrupt");
    let bad = dir.join("broken.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\nnot really").unwrap();

    let mut h = harness(Demo::Fashion, "corrupt-cache");
    wait_for(&mut h, "the demo", 60, |a| map_of(a).is_some());
    h.state_mut().commands.push(Command::OpenImages(vec![bad.clone()]));
    wait_for(&mut h, "the error", 30, |a| !a.notes.errors.is_empty());
    let _banner = h.get_by_label_contains("not a readable image");
    h.get_by_label("Dismiss").click();
    h.step();
    assert!(h.state().notes.errors.is_empty());

    // a missing card: "loading the model…" goes, the error shows, the loaded model stays
    h.state_mut().commands.push(Command::OpenModel(dir.join("nothing.json")));
    h.step();
    wait_for(&mut h, "the model error", 30, |a| !a.notes.errors.is_empty());
    assert!(!h.state().session.model_job.is_running());
    assert!(h.query_by_label("loading the model…").is_none());
    let _ = h.get_by_label_contains("cannot load the model");
    assert!(h.state().session.model.is_some(), "the loaded model is kept");

    // still usable: the other demo loads and explains
    h.get_by_label("Dismiss").click();
    h.get_by_label("Photos (EfficientNet)").click();
    wait_for(&mut h, "the photos", 120, |a| a.session.images.len() == 4 && map_of(a).is_some());
}

#[test]
fn settings_survive_a_restart_and_older_files_load() {
    let mut state = State::default();
    state.explain.method = MethodKind::Ig;
    state.explain.render.alpha = 0.8;
    state.session.selected = 42;
    let text = serde_json::to_string(&state).unwrap();
    let back: State = serde_json::from_str(&text).unwrap();
    assert_eq!(back.explain.method, MethodKind::Ig);
    assert_eq!(back.explain.render.alpha, 0.8);
    assert_eq!(back.session.selected, 42);
    // an older file with other fields still loads (with defaults)
    let partial: State = serde_json::from_str(r#"{"method": "saliency", "explain": {"method": "grad-x-input"}}"#).unwrap();
    assert_eq!(partial.explain.method, MethodKind::GradXInput);
}

/// A file as the window system hands it to egui when it is dropped on the window.
#[derive(Debug)]
struct Dropped(std::path::PathBuf);

impl eframe::egui::DroppedFile for Dropped {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

#[test]
fn dropping_a_model_card_and_a_photo_opens_both() {
    let mut h = harness(Demo::Fashion, "drop");
    wait_for(&mut h, "the demo", 60, |a| map_of(a).is_some());
    for p in ["efficientnet-lite0/card.json", "photos/coffee.png"] {
        h.input_mut().dropped_files.push(std::sync::Arc::new(Dropped(asset_path(p))));
    }
    h.step();
    wait_for(&mut h, "EfficientNet and the photo", 120, |a| {
        a.session.model.as_ref().is_some_and(|m| m.classes.len() == 1000)
            && a.session.images.len() == 1
            && a.session.current.as_ref().is_some_and(|c| c.image.width == 224)
    });
    assert!(h.state().notes.errors.is_empty(), "{:?}", h.state().notes.errors);
    assert_eq!(h.state().session.current.as_ref().unwrap().top[0].class, "espresso");
    let _ = h.get_by_label_contains("espresso");
}

#[test]
fn export_writes_a_report_and_a_png_and_never_overwrites() {
    let dir = scratch("export");
    let mut h = harness(Demo::Fashion, "export-cache");
    wait_for(&mut h, "the demo", 60, |a| map_of(a).is_some());
    let method = map_of(h.state()).unwrap().name();
    for round in 1..=2 {
        h.state_mut().notes.status = None;
        h.state_mut().commands.push(Command::ExportReportTo(dir.join("report")));
        wait_for(&mut h, "the report", 30, |a| a.notes.status.as_deref().is_some_and(|s| s.starts_with("saved")) || !a.notes.errors.is_empty());
        let folder = dir.join(if round == 1 { "report" } else { "report-2" });
        assert_eq!(h.state().notes.status.clone().unwrap(), format!("saved {}", folder.display()));
        for f in ["image.png", &format!("{method}.png"), &format!("{method}.npy"), "settings.json"] {
            assert!(folder.join(f).is_file(), "{} in {}", f, folder.display());
        }
        let settings: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(folder.join("settings.json")).unwrap()).unwrap();
        assert_eq!(settings["model_hash"], serde_json::json!(h.state().session.model.as_ref().unwrap().hash));
        assert_eq!(settings["maps"][0]["method"], serde_json::json!(method), "each map's record is easel explain's meta.json layout");
        assert_eq!(settings["maps"][0]["files"], serde_json::json!(method));
        let map = easel_core::npy::read_npy(&folder.join(format!("{method}.npy"))).unwrap();
        assert_eq!(map.data.len() % (28 * 28), 0);

        h.state_mut().notes.status = None;
        h.state_mut().commands.push(Command::SavePngTo(dir.join("view.png")));
        wait_for(&mut h, "the PNG", 30, |a| a.notes.status.is_some() || !a.notes.errors.is_empty());
        let png = dir.join(if round == 1 { "view.png" } else { "view-2.png" });
        assert_eq!(h.state().notes.status.clone().unwrap(), format!("saved {}", png.display()));
        let img = image::open(&png).unwrap();
        assert!(img.width() >= 28 && img.height() >= 28);
    }
    assert!(h.state().notes.errors.is_empty(), "{:?}", h.state().notes.errors);
}

#[test]
fn a_restart_reopens_the_last_model_images_selection_and_method() {
    let cache = scratch("restart");
    let mut h = harness_with(None, Some(Demo::Photos), (1400.0, 900.0), cache.clone());
    wait_for(&mut h, "the photos demo", 120, |a| map_of(a).is_some() && a.session.images.len() == 4);
    h.get_by_label("chelsea.png").click();
    h.step();
    h.state_mut().commands.push(Command::Explain(ExplainCommand::SetMethod(MethodKind::Saliency)));
    wait_for(&mut h, "the saliency map of the cat", 120, |a| map_of(a) == Some(MethodKind::Saliency) && a.state.session.selected == 1);
    // what eframe's storage keeps between runs
    let saved = serde_json::to_string(&h.state().state).unwrap();
    drop(h);

    let stored: State = serde_json::from_str(&saved).unwrap();
    let mut h = harness_with(Some(stored), None, (1400.0, 900.0), cache);
    wait_for(&mut h, "the restored session", 120, |a| map_of(a).is_some() && a.session.images.len() == 4);
    let app = h.state();
    assert_eq!(app.session.model.as_ref().unwrap().classes.len(), 1000, "EfficientNet-Lite0 again");
    assert_eq!(app.state.session.selected, 1);
    assert_eq!(current_name(app).as_deref(), Some("chelsea.png"));
    assert_eq!(map_of(app), Some(MethodKind::Saliency));
}
