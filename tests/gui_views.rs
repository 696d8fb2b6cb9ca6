//! The Dataset and Sampling lab views under `egui_kittest`, and every view at 1024x640.

#[path = "common/gui.rs"]
mod gui_common;

use easel_app::command::{Command, DatasetCommand, LabCommand};
use easel_app::state::{Demo, Tab};
use egui_kittest::kittest::{NodeT, Queryable};
use gui_common::*;

fn evaluated(name: &str) -> App {
    let mut h = harness(Demo::Fashion, name);
    wait_for(&mut h, "the demo", 60, |a| a.session.images.len() == 10_000 && map_of(a).is_some());
    h.get_by_label("Dataset").click();
    wait_for(&mut h, "the evaluation", 120, |a| a.dataset.figures.is_some());
    h
}

#[test]
fn dataset_cells_open_their_images_costs_change_the_total_and_the_cache_stays_in_its_folder() {
    let mut h = evaluated("dataset");
    let (count, classes) = {
        let f = h.state().dataset.figures.as_ref().unwrap();
        (f.report.confusion.counts[6][0], f.decided.classes.clone())
    };
    assert!(count > 0);
    h.get_by_label(&format!("true {} predicted {}", classes[6], classes[0])).click();
    wait_for(&mut h, "the gallery", 10, |a| !a.dataset.gallery.indices.is_empty());
    let app = h.state();
    assert_eq!(app.dataset.gallery.indices.len(), count, "the gallery holds exactly the cell's images");
    let d = &app.dataset.figures.as_ref().unwrap().decided;
    assert!(app.dataset.gallery.indices.iter().all(|&i| d.labels[i] == 6 && d.preds[i] == 0));
    let _title = h.get_by_label_contains(&format!("{count} images"));
    // each tile names its true and predicted class and the confidence
    assert!(h.get_all_by_label_contains("pred T-shirt/top").count() >= count.min(60));
    assert!(h.get_all_by_label_contains("true Shirt").count() >= count.min(60));

    // make missing a Shirt (predicting T-shirt/top for one) cost 25 instead of 1
    let before = h.state().dataset.figures.as_ref().unwrap().report.cost_argmax.as_ref().unwrap().total;
    h.get_by_label("cost 6,0").set_value_accesskit(25.0);
    wait_for(&mut h, "the new total", 10, |a| a.dataset.figures.as_ref().unwrap().report.cost_argmax.as_ref().unwrap().total != before);
    let after = h.state().dataset.figures.as_ref().unwrap().report.cost_argmax.as_ref().unwrap().total;
    assert_eq!(after, before + 24.0 * count as f64);
    let _ = h.get_by_label_contains(&format!("most probable class: total cost {after:.1}"));

    // the predictions went to this test's cache folder, never the user's
    let cache = std::env::temp_dir().join(format!("easel-test-dataset-{}", std::process::id()));
    assert!(std::fs::read_dir(&cache).unwrap().flatten().any(|e| e.file_name().to_string_lossy().starts_with("predictions-")));
}

#[test]
fn cost_optimal_decisions_drive_the_matrix_the_metrics_and_the_bars() {
    let mut h = evaluated("decisions");
    // missing a Shirt costs 20: the cost-optimal decisions predict Shirt more often
    h.state_mut().commands.push(Command::Dataset(DatasetCommand::MissingClassCost { class: 6, value: 20.0 }));
    h.step();
    let argmax = h.state().dataset.figures.as_ref().unwrap().report.clone();
    h.get_by_label("decide by minimum expected cost (matrix, metrics, bars and galleries follow)").click();
    wait_for(&mut h, "the cost-optimal figures", 10, |a| a.dataset.figures.as_ref().unwrap().by_cost);
    let f = h.state().dataset.figures.as_ref().unwrap();
    let optimal = &f.report;
    assert!(optimal.predicted_counts[6] > argmax.predicted_counts[6], "the bars follow the decisions");
    assert!(optimal.per_class[6].recall > argmax.per_class[6].recall, "so does the metrics table");
    assert_eq!(optimal.confusion, f.report.cost_optimal.as_ref().unwrap().confusion, "and the confusion matrix");
    let _ = h.get_by_label("for the cost-optimal decisions:");
    let _ = h.get_by_label(&format!("{:.3}", optimal.per_class[6].recall));
}

#[test]
fn merging_keeps_the_cost_matrix_and_names_the_merged_class_in_full() {
    let mut h = evaluated("merge");
    h.get_by_label("cost 6,0").set_value_accesskit(25.0);
    h.step();
    h.get_by_label("cost 4,2").set_value_accesskit(7.0);
    h.step();
    h.state_mut().state.dataset.merges = vec![vec![0, 6]];
    h.state_mut().commands.push(Command::Dataset(DatasetCommand::Refresh));
    h.step();
    h.step();
    let f = h.state().dataset.figures.as_ref().unwrap();
    assert_eq!(f.decided.classes[0], "T-shirt/top+Shirt");
    assert!(f.cost_is_custom, "the custom costs are kept");
    // Coat (still 4) mistaken for Pullover (2) still costs 7; inside the merged class it is free
    assert_eq!(f.cost.costs[4][2], 7.0);
    assert_eq!(f.cost.costs[0][0], 0.0);
    assert!(h.get_all_by_label_contains("0 T-shirt/top+Shirt").count() >= 2, "the confusion matrix and the cost matrix name it in full");
    // clearing the merge brings the matrix back as it was
    h.state_mut().state.dataset.merges.clear();
    h.state_mut().commands.push(Command::Dataset(DatasetCommand::Refresh));
    h.step();
    h.step();
    assert_eq!(h.state().dataset.figures.as_ref().unwrap().cost.costs[6][0], 25.0);
}

#[test]
fn sampling_lab_compares_selected_runs_and_prior_correction_changes_the_numbers() {
    // three quick runs from the command line, then reopened in the app
    let out = scratch("lab-cli");
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/fashion-mnist");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_easel"))
        .args(["sample", "--data", data.to_str().unwrap(), "--data-split", "t10k", "--holdout", "2000", "--per-class", "150"])
        .args(["--profile", "longtail:30", "--rare", "4,6", "--epochs", "1", "--strategies", "uniform,oversample,weighted"])
        .args(["--out", out.to_str().unwrap(), "--force", "--device", "cpu"])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));

    let mut h = harness(Demo::Fashion, "lab-open");
    wait_for(&mut h, "the demo", 60, |a| map_of(a).is_some());
    h.get_by_label("Sampling lab").click();
    h.step();
    h.state_mut().commands.push(Command::Lab(LabCommand::OpenRuns(out.clone())));
    wait_for(&mut h, "the runs", 10, |a| a.lab.records.len() == 3);

    // choose two runs by their labels
    h.get_by_label("run: weighted").click();
    h.step();
    h.step();
    let names: Vec<String> = h.state().lab.rows.iter().map(|r| r.strategy.clone()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let before = h.state().lab.rows.clone();
    let _ = h.get_by_label(&format!("{:.4}", before[0].rare_recall));

    h.get_by_label("prior correction (reweight by test prior / training prior)").click();
    h.step();
    h.step();
    let after = h.state().lab.rows.clone();
    assert!(after[0].rare_recall > before[0].rare_recall, "the uniform run's rare-class recall moves with prior correction");
    let _ = h.get_by_label(&format!("{:.4}", after[0].rare_recall));
}

#[test]
#[ignore = "slow tier: trains in the app (scripts/test.sh runs it)"]
fn sampling_lab_trains_in_the_background_with_live_curves_and_can_be_cancelled() {
    let mut h = harness(Demo::Fashion, "lab-train");
    h.state_mut().lab.out_root = Some(scratch("lab-train-runs"));
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
    assert!(h.state().lab.is_running(), "training starts on its own thread");
    wait_for(&mut h, "two lab runs", 240, |a| !a.lab.is_running());
    assert!(h.state().notes.errors.is_empty(), "{:?}", h.state().notes.errors);
    let lab = &h.state().lab;
    assert_eq!(lab.records.len(), 2);
    assert_eq!(lab.live.len(), 2);
    assert!(lab.live.iter().all(|(_, epochs)| epochs.len() == 1), "one epoch curve point per run");
    let counts = lab.train_counts.clone().unwrap();
    assert_eq!(counts[0], 60);
    assert_eq!(counts[4], 6, "the rare class has 60 / 10 images");
    for dir in &lab.dirs {
        assert!(dir.join("run.json").is_file(), "{} saved", dir.display());
    }
    assert!(lab.dirs[0].parent().unwrap().join("comparison.csv").is_file(), "the same comparison files as easel sample");
    let _ = h.get_by_label_contains("run: oversample");

    // a second start, cancelled at once, adds no run and says so
    h.state_mut().state.lab.epochs = 5;
    h.get_by_label("Train").click();
    h.step();
    h.get_by_label("Cancel training").click();
    h.step();
    wait_for(&mut h, "the cancel", 120, |a| !a.lab.is_running());
    assert_eq!(h.state().lab.records.len(), 2);
    assert_eq!(h.state().notes.status.as_deref(), Some("training cancelled"));
}

/// Nothing the view lays out runs past the window's right edge.
fn assert_fits(h: &App, what: &str) {
    let width = 1024.0;
    let mut wide = Vec::new();
    for node in h.query_all(egui_kittest::kittest::by().predicate(|_| true)) {
        let Some(r) = node.accesskit_node().bounding_box() else { continue };
        if r.x1 > width + 1.0 && r.width() < 4000.0 {
            wide.push(format!("{:?} at {:?}", node.accesskit_node().label(), r));
        }
    }
    assert!(wide.is_empty(), "{what}: {} widgets run off the right edge: {:?}", wide.len(), &wide[..wide.len().min(8)]);
}

#[test]
fn every_view_fits_a_1024x640_window() {
    let mut h = harness_with(None, Some(Demo::Photos), (1024.0, 640.0), scratch("small"));
    wait_for(&mut h, "the photos demo", 120, |a| map_of(a).is_some());
    h.run_ok();
    assert_fits(&h, "Explain");
    // the controls that matter are on screen
    for label in ["Grad-CAM", "Occlusion", "Full cascade"] {
        let r = h.get_by_label(label).rect();
        assert!(r.max.x <= 1024.0 && r.max.y <= 640.0, "{label} at {r:?}");
    }
    // what does not fit scrolls into view
    h.get_by_label("Save PNG…").scroll_to_me();
    h.run_ok();
    let r = h.get_by_label("Save PNG…").rect();
    assert!(r.max.x <= 1024.0 && r.max.y <= 640.0, "Save PNG… at {r:?} after scrolling");
    h.get_by_label("Compare").click();
    wait_for(&mut h, "the compare grid", 120, |a| !a.compare.cells.is_empty() && !a.compare.is_running());
    assert_fits(&h, "Compare");
    h.get_by_label("Adversarial").click();
    wait_for(&mut h, "the attack", 120, |a| a.adversarial.shown(a.session.generation()).is_some());
    assert_fits(&h, "Adversarial");
    h.get_by_label("Sampling lab").click();
    h.step();
    h.step();
    assert_fits(&h, "Sampling lab");
    let _ = h.get_by_label("Train");

    h.get_by_label("Fashion-MNIST").click();
    wait_for(&mut h, "the fashion demo", 60, |a| a.session.images.len() == 10_000 && a.session.current.is_some());
    h.state_mut().commands.push(Command::SetTab(Tab::Dataset));
    wait_for(&mut h, "the evaluation", 120, |a| a.dataset.figures.is_some());
    h.get_by_label("true Shirt predicted T-shirt/top").click();
    wait_for(&mut h, "the gallery", 30, |a| !a.dataset.gallery.indices.is_empty() && !a.dataset.gallery.job.is_running());
    h.step();
    assert_fits(&h, "Dataset");
}

#[test]
fn the_fool_pane_runs_from_its_button_and_the_robustness_pane_draws_its_curve() {
    let mut h = harness(Demo::Fashion, "fool-pane");
    wait_for(&mut h, "the demo", 60, |a| a.session.images.len() == 10_000 && map_of(a).is_some());
    h.get_by_label("Adversarial").click();
    h.step();
    h.step();
    h.get_by_label("Fool it").click();
    h.step();
    h.state_mut().state.adversarial.fool.target = 8;
    h.step();
    // the pane's button (the pane's tab has the same words)
    let buttons: Vec<_> = h.get_all_by_label("Fool it").collect();
    assert_eq!(buttons.len(), 2);
    buttons[1].click();
    h.step();
    wait_for(&mut h, "the fooling image", 60, |a| a.adversarial.fool.slot.last().is_some() && !a.adversarial.fool.slot.is_running());
    let m = h.state().adversarial.fool.slot.last().unwrap().output.meta.clone();
    assert_eq!(m.target_class, "Bag");
    assert!(m.target_probability >= 0.99);
    let _ = h.get_by_label_contains(&format!("“Bag” {:.2} %", m.target_probability * 100.0));

    h.get_by_label("How robust?").click();
    h.step();
    h.state_mut().state.adversarial.robust.limit = 200;
    h.step();
    h.get_by_label("Measure").click();
    h.step();
    wait_for(&mut h, "the curve", 120, |a| a.adversarial.robust.slot.last().is_some());
    let out = h.state().adversarial.robust.slot.last().unwrap();
    assert_eq!(out.report.images, 200);
    let _ = h.get_by_label_contains("clean accuracy");
    let _ = h.get_by_label("8.0/255");
}

#[test]
#[ignore = "slow tier: pre-trains in the app"]
fn the_pretraining_view_trains_two_regimes_with_live_curves_cancels_a_third_and_charts_both() {
    assert!(std::path::Path::new(easel_core::data::SYSTEM_FASHION_MNIST).join("train-images-idx3-ubyte.gz").is_file(), "install dataset-fashion-mnist");
    let mut h = harness(Demo::Fashion, "pretrain");
    h.state_mut().pretrain.out_root = Some(scratch("pretrain-runs"));
    wait_for(&mut h, "the demo", 60, |a| map_of(a).is_some());
    h.get_by_label("Pre-training").click();
    h.step();
    {
        let s = &mut h.state_mut().state.pretrain;
        s.regimes = vec![easel_core::transfer::Regime::Scratch, easel_core::transfer::Regime::Transfer, easel_core::transfer::Regime::Weak];
        // two small tasks (12,000 training images each), so pre-training takes seconds
        s.target_classes = "8,9".into();
        s.source_classes = "0,1".into();
        s.labels = "10".into();
        s.pretrain_epochs = 1;
        s.test_limit = 300;
    }
    h.step();
    h.get_by_label("Train the regimes").click();
    h.step();
    assert!(h.state().pretrain.is_running(), "training runs on its own thread");
    wait_for(&mut h, "two regimes", 300, |a| a.pretrain.results.len() >= 2);
    h.get_by_label("Cancel pre-training").click();
    h.step();
    wait_for(&mut h, "the cancel", 60, |a| !a.pretrain.is_running());
    let p = &h.state().pretrain;
    assert_eq!(p.results.len(), 2, "the third regime was cancelled");
    assert!(p.live.iter().filter(|(_, v)| !v.is_empty()).count() >= 2, "live curves for the runs");
    assert_eq!(h.state().notes.status.as_deref(), Some("pre-training cancelled"));
    // the story chart has both regimes, named in its key (besides their checkboxes)
    assert!(h.get_all_by_label("from scratch").count() >= 2, "checkbox and chart key");
    assert!(h.get_all_by_label("transfer from other classes").count() >= 2, "checkbox and chart key");
}

#[test]
fn the_lab_shows_the_negatives_hnm_mined_and_offers_the_merge_toggle() {
    let out = scratch("lab-hnm");
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/fashion-mnist");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_easel"))
        .args(["sample", "--data", data.to_str().unwrap(), "--data-split", "t10k", "--holdout", "2000", "--per-class", "150"])
        .args(["--profile", "longtail:30", "--rare", "4", "--epochs", "2", "--strategies", "uniform,hnm"])
        .args(["--out", out.to_str().unwrap(), "--force", "--device", "cpu"])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let mut h = harness(Demo::Fashion, "lab-hnm-app");
    wait_for(&mut h, "the demo", 60, |a| map_of(a).is_some());
    h.get_by_label("Sampling lab").click();
    h.step();
    h.state_mut().commands.push(Command::Lab(LabCommand::OpenRuns(out)));
    wait_for(&mut h, "the runs", 10, |a| a.lab.records.len() == 2);
    h.step();
    h.step();
    let mined = h.state().lab.records.iter().find(|r| r.config.strategy.name == "hnm").unwrap().mined.clone();
    assert!(!mined.is_empty());
    let _ = h.get_by_label_contains("negatives mined most often by hnm");
    assert!(h.get_all_by_label_contains(" ×").count() >= mined.len().min(8), "each mined tile is named with its class and count");
    // the merge toggle
    assert!(!h.state().state.lab.merge_rare);
    h.get_by_label("also train with the rare classes merged into one").click();
    h.step();
    assert!(h.state().state.lab.merge_rare);
}
