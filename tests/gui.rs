//! The real panels, driven by `egui_kittest` (no display, no GPU): open a demo, select an
//! image, choose each method by its label and see its overlay arrive, cancel a running
//! occlusion, and survive a corrupt file with a banner.
#![cfg(feature = "gui")]

use std::time::{Duration, Instant};

use easel::device::DeviceChoice;
use easel::gui::state::Demo;
use easel::gui::{EaselApp, StartOptions};
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;

fn harness(demo: Demo) -> Harness<'static, EaselApp> {
    harness_from(None, Some(demo))
}

/// The app on the CPU, from stored state (as eframe hands it back on a restart) and/or a demo.
fn harness_from(stored: Option<easel::gui::state::State>, demo: Option<Demo>) -> Harness<'static, EaselApp> {
    Harness::builder()
        .with_size(eframe::egui::vec2(1400.0, 900.0))
        .build_eframe(move |cc| EaselApp::new(&cc.egui_ctx, stored, StartOptions { demo, device: Some(DeviceChoice::Cpu), ..Default::default() }))
}

/// Step the UI until `done` holds (the worker runs on its own thread meanwhile).
fn wait_for(h: &mut Harness<'static, EaselApp>, what: &str, secs: u64, done: impl Fn(&EaselApp) -> bool) {
    let start = Instant::now();
    while !done(h.state()) {
        assert!(start.elapsed() < Duration::from_secs(secs), "timed out waiting for {what}; errors: {:?}", h.state().rt.errors);
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    h.step();
}

fn map_of(app: &EaselApp) -> Option<&'static str> {
    app.rt.explain.result.as_ref().filter(|_| app.rt.explain.job.is_none()).map(|r| r.method.name())
}

#[test]
fn fashion_demo_explains_every_method_by_its_label() {
    let mut h = harness(Demo::Fashion);
    wait_for(&mut h, "the demo's first map", 60, |a| a.rt.images.len() == 10_000 && map_of(a).is_some());
    assert!(h.state().rt.errors.is_empty(), "{:?}", h.state().rt.errors);

    // select another image by its row label
    h.get_by_label("#1 · Pullover").click();
    wait_for(&mut h, "image #1", 30, |a| a.rt.current.as_ref().is_some_and(|c| c.index == 1) && map_of(a).is_some());
    assert_eq!(h.state().state.selected, 1);

    for (label, name) in [
        ("Occlusion", "occlusion"),
        ("Saliency (|gradient|)", "saliency"),
        ("Gradient (signed)", "gradient"),
        ("Gradient x input", "grad-x-input"),
        ("Integrated gradients", "ig"),
        ("SmoothGrad", "smoothgrad"),
        ("VarGrad", "vargrad"),
        ("Grad-CAM", "gradcam"),
    ] {
        h.get_by_label(label).click();
        wait_for(&mut h, label, 60, |a| map_of(a) == Some(name));
        let app = h.state();
        let r = app.rt.explain.result.as_ref().unwrap();
        assert!(app.rt.explain.shown.is_some(), "{label}: an overlay texture is on screen");
        assert!(r.map.values.iter().any(|v| *v != 0.0), "{label}: the map is not empty");
        assert_eq!(r.target, app.rt.current.as_ref().unwrap().top[0].class_index, "{label}: explains the predicted class");
    }

    // clicking another class explains that class
    let second = h.state().rt.current.as_ref().unwrap().top[1].clone();
    h.get_by_label(&format!("{:>5.1}%  {}", second.probability * 100.0, second.class)).click();
    wait_for(&mut h, "the runner-up's map", 30, |a| a.rt.explain.result.as_ref().is_some_and(|r| r.target == second.class_index) && a.rt.explain.job.is_none());

    // arrow keys move between images
    h.key_press(eframe::egui::Key::ArrowDown);
    wait_for(&mut h, "the next image", 30, |a| a.rt.current.as_ref().is_some_and(|c| c.index == 2));
}

#[test]
fn a_running_occlusion_can_be_cancelled_and_the_old_map_stays() {
    let mut h = harness(Demo::Photos);
    wait_for(&mut h, "the photos demo", 90, |a| a.rt.images.len() == 4 && map_of(a) == Some("gradcam"));
    h.get_by_label("Occlusion").click();
    wait_for(&mut h, "occlusion to start", 30, |a| a.rt.explain.job.is_some() && a.rt.explain.progress.0 > 0);
    assert!(h.state().rt.explain.stale, "the previous map stays on screen, dimmed");
    h.get_by_label("Cancel").click();
    wait_for(&mut h, "the cancel", 30, |a| a.rt.explain.job.is_none());
    let app = h.state();
    assert_eq!(app.rt.explain.result.as_ref().unwrap().method.name(), "gradcam", "no occlusion result arrived");
    assert!(app.rt.explain.shown.is_some());
}

#[test]
fn a_corrupt_file_raises_the_banner_and_the_app_stays_usable() {
    let dir = std::env::temp_dir().join(format!("easel-gui-corrupt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("broken.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\nnot really").unwrap();

    let mut h = harness(Demo::Fashion);
    wait_for(&mut h, "the demo", 60, |a| map_of(a).is_some());
    h.state_mut().rt.commands.push(easel::gui::app::Command::OpenImages(vec![bad.clone()]));
    wait_for(&mut h, "the error", 30, |a| !a.rt.errors.is_empty());
    let _banner = h.get_by_label_contains("not a readable image");
    h.get_by_label("Dismiss").click();
    h.step();
    assert!(h.state().rt.errors.is_empty());

    // still usable: the other demo loads and explains
    h.get_by_label("Fashion-MNIST").click();
    wait_for(&mut h, "the demo again", 60, |a| a.rt.images.len() == 10_000 && map_of(a).is_some());

    // a wrong weights file also only raises the banner
    h.state_mut().rt.commands.push(easel::gui::app::Command::OpenModel(dir.join("nothing.json")));
    wait_for(&mut h, "the model error", 30, |a| !a.rt.errors.is_empty());
    assert!(h.state().rt.model.is_some(), "the loaded model is kept");
}

#[test]
fn settings_survive_a_restart() {
    let mut state = easel::gui::state::State::default();
    state.method = "ig".into();
    state.render.alpha = 0.8;
    state.selected = 42;
    let text = serde_json::to_string(&state).unwrap();
    let back: easel::gui::state::State = serde_json::from_str(&text).unwrap();
    assert_eq!(back.method, "ig");
    assert_eq!(back.render.alpha, 0.8);
    assert_eq!(back.selected, 42);
    // an older file with fewer fields still loads
    let partial: easel::gui::state::State = serde_json::from_str(r#"{"method": "saliency"}"#).unwrap();
    assert_eq!(partial.method, "saliency");
}

#[test]
fn dataset_view_cells_open_their_images_and_costs_change_the_total() {
    let mut h = harness(Demo::Fashion);
    wait_for(&mut h, "the demo", 60, |a| a.rt.images.len() == 10_000 && map_of(a).is_some());
    h.get_by_label("Dataset").click();
    wait_for(&mut h, "the evaluation", 120, |a| a.rt.dataset.derived.is_some());

    let (count, classes) = {
        let d = h.state().rt.dataset.derived.as_ref().unwrap();
        (d.report.confusion.counts[6][0], d.preds.classes.clone())
    };
    assert!(count > 0);
    h.get_by_label(&format!("true {} predicted {}", classes[6], classes[0])).click();
    wait_for(&mut h, "the gallery", 10, |a| !a.rt.dataset.gallery.is_empty());
    let app = h.state();
    assert_eq!(app.rt.dataset.gallery.len(), count, "the gallery holds exactly the cell's images");
    let p = &app.rt.dataset.derived.as_ref().unwrap().preds;
    assert!(app.rt.dataset.gallery.iter().all(|&i| p.labels[i] == 6 && p.preds[i] == 0));
    let _title = h.get_by_label_contains(&format!("{count} images"));

    // make missing a Shirt (predicting T-shirt/top for one) cost 25 instead of 1
    let before = h.state().rt.dataset.derived.as_ref().unwrap().report.cost_argmax.as_ref().unwrap().total;
    h.get_by_label("cost 6,0").set_value_accesskit(25.0);
    wait_for(&mut h, "the new total", 10, |a| a.rt.dataset.derived.as_ref().unwrap().report.cost_argmax.as_ref().unwrap().total != before);
    let after = h.state().rt.dataset.derived.as_ref().unwrap().report.cost_argmax.as_ref().unwrap().total;
    assert_eq!(after, before + 24.0 * count as f64);
    let shown = format!("most probable class: total cost {after:.1}");
    let _ = h.get_by_label_contains(&shown);
}

#[test]
fn sampling_lab_compares_selected_runs_and_prior_correction_changes_the_numbers() {
    // three quick runs from the command line, then reopened in the app
    let out = std::env::temp_dir().join(format!("easel-gui-lab-{}", std::process::id()));
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/fashion-mnist");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_easel"))
        .args(["sample", "--data", data.to_str().unwrap(), "--data-split", "t10k", "--holdout", "2000", "--per-class", "150"])
        .args(["--profile", "longtail:30", "--rare", "4,6", "--epochs", "1", "--strategies", "uniform,oversample,weighted"])
        .args(["--out", out.to_str().unwrap(), "--force", "--device", "cpu"])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));

    let mut h = harness(Demo::Fashion);
    wait_for(&mut h, "the demo", 60, |a| map_of(a).is_some());
    h.get_by_label("Sampling lab").click();
    h.step();
    h.state_mut().rt.commands.push(easel::gui::app::Command::OpenRuns(out.clone()));
    wait_for(&mut h, "the runs", 10, |a| a.rt.lab.records.len() == 3);

    // choose two runs by their labels
    h.get_by_label("run: weighted").click();
    h.step();
    h.step();
    let names: Vec<String> = h.state().rt.lab.rows.iter().map(|r| r.strategy.clone()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let before = h.state().rt.lab.rows.clone();
    let shown = format!("{:.4}", before[0].rare_recall);
    let _ = h.get_by_label(&shown);

    h.get_by_label("prior correction (reweight by test prior / training prior)").click();
    h.step();
    h.step();
    let after = h.state().rt.lab.rows.clone();
    assert_ne!(before[0].rare_recall, after[0].rare_recall, "the uniform run's rare-class recall moves with prior correction");
    assert!(after[0].rare_recall > before[0].rare_recall);
    let shown = format!("{:.4}", after[0].rare_recall);
    let _ = h.get_by_label(&shown);
}

#[test]
fn sampling_lab_trains_in_the_background_with_live_curves_and_can_be_cancelled() {
    let mut h = harness(Demo::Fashion);
    // the lab writes its runs under the cache folder: keep them out of the user's
    h.state_mut().rt.lab.out_root = Some(std::env::temp_dir().join(format!("easel-gui-lab-runs-{}", std::process::id())));
    wait_for(&mut h, "the demo", 60, |a| map_of(a).is_some());
    h.get_by_label("Sampling lab").click();
    h.step();
    {
        let s = &mut h.state_mut().state.lab;
        s.per_class = 60;
        s.ratio = 10.0;
        s.rare = vec![4];
        s.epochs = 1;
        s.strategies = vec!["uniform".into(), "oversample".into()];
    }
    h.step();
    h.get_by_label("Train").click();
    h.step();
    assert!(h.state().rt.lab.handle.is_some(), "training starts on its own thread");
    wait_for(&mut h, "two lab runs", 240, |a| a.rt.lab.handle.is_none());
    assert!(h.state().rt.errors.is_empty(), "{:?}", h.state().rt.errors);
    let lab = &h.state().rt.lab;
    assert_eq!(lab.records.len(), 2);
    assert_eq!(lab.live.len(), 2);
    assert!(lab.live.iter().all(|(_, epochs)| epochs.len() == 1), "one epoch curve point per run");
    let counts = lab.train_counts.clone().unwrap();
    assert_eq!(counts[0], 60);
    assert_eq!(counts[4], 6, "the rare class has 60 / 10 images");
    for dir in &lab.dirs {
        assert!(dir.join("run.json").is_file(), "{} saved", dir.display());
    }
    let _ = h.get_by_label_contains("run: oversample");

    // a second start, cancelled at once, adds no run and says so
    h.state_mut().state.lab.epochs = 5;
    h.get_by_label("Train").click();
    h.step();
    h.get_by_label("Cancel training").click();
    h.step();
    wait_for(&mut h, "the cancel", 120, |a| a.rt.lab.handle.is_none());
    assert_eq!(h.state().rt.lab.records.len(), 2);
    assert_eq!(h.state().rt.status.as_deref(), Some("training cancelled"));
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
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut h = harness(Demo::Fashion);
    wait_for(&mut h, "the demo", 60, |a| map_of(a).is_some());
    for p in ["assets/efficientnet-lite0/card.json", "assets/photos/coffee.png"] {
        h.input_mut().dropped_files.push(std::sync::Arc::new(Dropped(root.join(p))));
    }
    h.step();
    wait_for(&mut h, "EfficientNet and the photo", 120, |a| {
        a.rt.model.as_ref().is_some_and(|m| m.classes.len() == 1000) && a.rt.images.len() == 1 && a.rt.current.as_ref().is_some_and(|c| c.image.channels == 3 && c.image.width == 224)
    });
    assert!(h.state().rt.errors.is_empty(), "{:?}", h.state().rt.errors);
    let top = &h.state().rt.current.as_ref().unwrap().top;
    assert_eq!(top[0].class, "espresso");
    let _ = h.get_by_label_contains("espresso");
}

#[test]
fn export_writes_a_report_and_a_png_and_never_overwrites() {
    let dir = std::env::temp_dir().join(format!("easel-gui-export-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut h = harness(Demo::Fashion);
    wait_for(&mut h, "the demo", 60, |a| map_of(a).is_some());
    let method = map_of(h.state()).unwrap();
    use easel::gui::app::Command;
    for round in 1..=2 {
        h.state_mut().rt.status = None;
        h.state_mut().rt.commands.push(Command::ExportReportTo(dir.join("report")));
        wait_for(&mut h, "the report", 30, |a| a.rt.status.as_deref().is_some_and(|s| s.starts_with("saved")) || !a.rt.errors.is_empty());
        let folder = dir.join(if round == 1 { "report".to_string() } else { "report-2".to_string() });
        assert_eq!(h.state().rt.status.clone().unwrap(), format!("saved {}", folder.display()));
        for f in ["image.png", &format!("{method}.png"), &format!("{method}.npy"), "settings.json"] {
            assert!(folder.join(f).is_file(), "{} in {}", f, folder.display());
        }
        let settings: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(folder.join("settings.json")).unwrap()).unwrap();
        assert_eq!(settings["explanations"]["model_hash"], serde_json::json!(h.state().rt.model.as_ref().unwrap().hash));
        let map = easel::npy::read_npy(&folder.join(format!("{method}.npy"))).unwrap();
        assert_eq!(map.data.len() % (28 * 28), 0);

        h.state_mut().rt.status = None;
        h.state_mut().rt.commands.push(Command::SavePngTo(dir.join("view.png")));
        wait_for(&mut h, "the PNG", 30, |a| a.rt.status.is_some() || !a.rt.errors.is_empty());
        let png = dir.join(if round == 1 { "view.png" } else { "view-2.png" });
        assert_eq!(h.state().rt.status.clone().unwrap(), format!("saved {}", png.display()));
        let img = image::open(&png).unwrap();
        assert!(img.width() >= 28 && img.height() >= 28);
    }
    assert!(h.state().rt.errors.is_empty(), "{:?}", h.state().rt.errors);
}

#[test]
fn a_restart_reopens_the_last_model_images_selection_and_method() {
    let mut h = harness(Demo::Photos);
    wait_for(&mut h, "the photos demo", 120, |a| map_of(a).is_some() && a.rt.images.len() == 4);
    h.get_by_label("chelsea.png").click();
    h.step();
    h.state_mut().rt.commands.push(easel::gui::app::Command::SetMethod("saliency".into()));
    wait_for(&mut h, "the saliency map of the cat", 120, |a| map_of(a) == Some("saliency") && a.state.selected == 1);
    // what eframe's storage keeps between runs
    let saved = serde_json::to_string(&h.state().state).unwrap();
    drop(h);

    let stored: easel::gui::state::State = serde_json::from_str(&saved).unwrap();
    let mut h = harness_from(Some(stored), None);
    wait_for(&mut h, "the restored session", 120, |a| map_of(a).is_some() && a.rt.images.len() == 4);
    let app = h.state();
    assert_eq!(app.rt.model.as_ref().unwrap().classes.len(), 1000, "EfficientNet-Lite0 again");
    assert_eq!(app.state.selected, 1);
    assert_eq!(app.rt.images[1].name, "chelsea.png");
    assert_eq!(map_of(app), Some("saliency"));
}
