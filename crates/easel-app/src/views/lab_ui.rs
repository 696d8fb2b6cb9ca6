//! The Sampling lab view's panel: build a long-tailed training set, train the chosen
//! strategies in the background with live curves, and compare 2 to 6 runs side by side
//! (per-class recall, confusion matrices, costs, predicted class frequencies, prior
//! correction).

use eframe::egui;
use egui_plot::{Legend, Line, Plot, PlotPoints};

use super::dataset_ui::{class_bars_ui, matrix_grid_ui};
use super::lab::LabView;
use crate::command::{Command, LabCommand, Pick};
use crate::state::{ConfusionView, LabSettings};

pub const STRATEGIES: [&str; 7] = ["uniform", "ignore", "undersample", "oversample", "hnm", "loss-proportional", "weighted"];

const COLOURS: [egui::Color32; 8] = [
    egui::Color32::from_rgb(70, 130, 180),
    egui::Color32::from_rgb(230, 140, 50),
    egui::Color32::from_rgb(90, 170, 90),
    egui::Color32::from_rgb(200, 70, 70),
    egui::Color32::from_rgb(150, 110, 190),
    egui::Color32::from_rgb(140, 100, 80),
    egui::Color32::from_rgb(220, 120, 180),
    egui::Color32::from_rgb(120, 120, 120),
];

pub fn ui(ui: &mut egui::Ui, view: &LabView, settings: &mut LabSettings, cmds: &mut Vec<Command>) {
    let wide = ui.available_width() >= 1000.0;
    egui::ScrollArea::vertical().id_salt("lab").auto_shrink([false, false]).show(ui, |ui| {
        if wide {
            ui.horizontal_top(|ui| {
                ui.vertical(|ui| {
                    ui.set_width(360.0);
                    setup_ui(ui, view, settings, cmds);
                    ui.separator();
                    live_ui(ui, view, settings);
                });
                ui.separator();
                ui.vertical(|ui| compare_ui(ui, view, settings, cmds));
            });
        } else {
            setup_ui(ui, view, settings, cmds);
            ui.separator();
            live_ui(ui, view, settings);
            ui.separator();
            compare_ui(ui, view, settings, cmds);
        }
    });
}

fn setup_ui(ui: &mut egui::Ui, view: &LabView, settings: &mut LabSettings, cmds: &mut Vec<Command>) {
    ui.heading("Training set");
    let s = settings;
    let data = if std::path::Path::new(easel_core::data::SYSTEM_FASHION_MNIST).join("train-images-idx3-ubyte.gz").is_file() {
        "Fashion-MNIST's 60k training set (held out: the 10k test set)"
    } else {
        "the bundled 10k Fashion-MNIST test set (3,000 held out); install dataset-fashion-mnist for the 60k training set"
    };
    ui.label(format!("data: {data}"));
    ui.add(egui::Slider::new(&mut s.ratio, 1.0..=1000.0).logarithmic(true).text("imbalance ratio (largest : rare)"));
    ui.label("rare classes (none: a geometric tail over all classes)");
    let classes: Vec<&str> = easel_core::data::FASHION_MNIST_CLASSES.to_vec();
    ui.horizontal_wrapped(|ui| {
        for (i, c) in classes.iter().enumerate() {
            let mut on = s.rare.contains(&i);
            if ui.checkbox(&mut on, *c).changed() {
                if on {
                    s.rare.push(i);
                    s.rare.sort_unstable();
                } else {
                    s.rare.retain(|&r| r != i);
                }
            }
        }
    });
    ui.add(egui::Slider::new(&mut s.per_class, 50..=6000).text("images per class before the tail"));
    ui.heading("Strategies");
    ui.horizontal_wrapped(|ui| {
        for name in STRATEGIES {
            let mut on = s.strategies.iter().any(|x| x == name);
            if ui.checkbox(&mut on, name).changed() {
                if on {
                    s.strategies.push(name.to_string());
                } else {
                    s.strategies.retain(|x| x != name);
                }
            }
        }
    });
    // collect more: one strategy string collect:N, N on a slider
    let mut collect = s.strategies.iter().find_map(|x| x.strip_prefix("collect:").and_then(|n| n.parse::<usize>().ok()));
    ui.horizontal(|ui| {
        let mut on = collect.is_some();
        ui.checkbox(&mut on, "collect more rare images").on_hover_text("adds real rare-class images the long tail held back, then trains uniformly");
        let mut n = collect.unwrap_or(200);
        ui.add_enabled(on, egui::Slider::new(&mut n, 10..=2000).logarithmic(true).text("images"));
        collect = on.then_some(n);
    });
    s.strategies.retain(|x| !x.starts_with("collect:"));
    if let Some(n) = collect {
        s.strategies.push(format!("collect:{n}"));
    }
    ui.checkbox(&mut s.merge_rare, "also train with the rare classes merged into one").on_hover_text(
        "each strategy then runs twice; the comparison shows it merged at training beside merged at inference (probabilities summed), on the same merged labels",
    );
    ui.add(egui::Slider::new(&mut s.epochs, 1..=20).text("epochs"));
    ui.add(egui::DragValue::new(&mut s.seed).prefix("seed "));
    ui.horizontal(|ui| {
        let running = view.is_running();
        if ui.add_enabled(!running, egui::Button::new("Train")).clicked() {
            cmds.push(Command::Lab(LabCommand::Train));
        }
        if ui.add_enabled(running, egui::Button::new("Cancel training")).clicked() {
            cmds.push(Command::Lab(LabCommand::Cancel));
        }
        if ui.button("Open runs…").on_hover_text("a folder of runs written by easel sample or this view").clicked() {
            cmds.push(Command::Pick(Pick::Runs));
        }
    });
}

fn live_ui(ui: &mut egui::Ui, view: &LabView, settings: &LabSettings) {
    let lab = view;
    if let Some(cur) = &lab.current {
        let (e, d, t) = lab.progress;
        ui.label(format!("training {cur}: epoch {e}"));
        ui.add(egui::ProgressBar::new(if t > 0 { d as f32 / t as f32 } else { 0.0 }).text(format!("{d}/{t} batches")));
    }
    if let Some(c) = &lab.train_counts {
        ui.small(format!("images per class: {c:?}"));
    }
    if lab.live.is_empty() {
        return;
    }
    ui.label("per epoch: training loss, held-out accuracy, recall of the rare classes");
    let rare = settings.rare.clone();
    for (title, pick) in [("loss", 0), ("accuracy", 1), ("rare-class recall", 2)] {
        Plot::new(format!("live{pick}"))
            .height(110.0)
            .legend(Legend::default())
            .allow_zoom(false)
            .allow_drag(false)
            .allow_scroll(false)
            .y_axis_label(title)
            .show(ui, |p| {
                for (i, (name, epochs)) in lab.live.iter().enumerate() {
                    let pts: Vec<[f64; 2]> = epochs
                        .iter()
                        .map(|r| {
                            let y = match pick {
                                0 => r.train_loss,
                                1 => r.test_accuracy.unwrap_or(0.0),
                                _ => {
                                    let rec = r.test_recall.clone().unwrap_or_default();
                                    let cls: Vec<usize> = if rare.is_empty() { (0..rec.len()).collect() } else { rare.clone() };
                                    cls.iter().filter_map(|&c| rec.get(c)).sum::<f64>() / cls.len().max(1) as f64
                                }
                            };
                            [r.epoch as f64, y]
                        })
                        .collect();
                    p.line(Line::new(name.clone(), PlotPoints::from(pts)).color(COLOURS[i % COLOURS.len()]));
                }
            });
    }
}

fn compare_ui(ui: &mut egui::Ui, view: &LabView, settings: &mut LabSettings, cmds: &mut Vec<Command>) {
    ui.heading("Compare runs");
    if view.records.is_empty() {
        ui.label("Train some strategies, or open saved runs.");
        return;
    }
    ui.horizontal_wrapped(|ui| {
        ui.label("runs:");
        for (i, r) in view.records.iter().enumerate() {
            let mut on = view.selected.get(i).copied().unwrap_or(false);
            if ui.checkbox(&mut on, format!("run: {}", r.config.strategy.name)).changed() {
                cmds.push(Command::Lab(LabCommand::Choose(i, on)));
            }
        }
    });
    if ui.checkbox(&mut settings.prior_correction, "prior correction (reweight by test prior / training prior)").changed() {
        cmds.push(Command::Lab(LabCommand::Refresh));
    }
    ui.checkbox(&mut settings.by_cost, "rank by the cost of cost-optimal decisions");
    let chosen: Vec<usize> = (0..view.records.len()).filter(|&i| view.selected[i]).collect();
    if chosen.len() < 2 || chosen.len() > 6 {
        ui.label(format!("choose 2 to 6 runs ({} chosen)", chosen.len()));
        return;
    }
    let rows = &view.rows;
    let classes = view.records[chosen[0]].classes.clone();
    let mut order: Vec<usize> = (0..rows.len()).collect();
    if settings.by_cost {
        order.sort_by(|&a, &b| rows[a].total_cost_optimal.total_cmp(&rows[b].total_cost_optimal));
    }
    egui::ScrollArea::horizontal().id_salt("lab_table_scroll").show(ui, |ui| {
        egui::Grid::new("lab_table").striped(true).show(ui, |ui| {
            for h in ["strategy", "accuracy", "balanced", "rare recall", "cost (argmax)", "cost (cost-optimal)", "recall gain / image"] {
                ui.strong(h);
            }
            ui.end_row();
            for &i in &order {
                let r = &rows[i];
                ui.label(&r.strategy);
                ui.label(format!("{:.4}", r.accuracy));
                ui.label(format!("{:.4}", r.balanced_accuracy));
                ui.label(format!("{:.4}", r.rare_recall));
                ui.label(format!("{:.1}", r.total_cost)).on_hover_text(format!("expected per image {:.4}", r.expected_cost));
                ui.label(format!("{:.1}", r.total_cost_optimal)).on_hover_text(format!("expected per image {:.4}", r.expected_cost_optimal));
                ui.label(r.recall_gain_per_image.map(|g| format!("{:.5} ({} images)", g, r.collected)).unwrap_or_default());
                ui.end_row();
            }
        });
    });
    ui.small(if view.cost_is_custom { "cost: the Dataset view's cost matrix" } else { "cost: number of mistakes (set a cost matrix in the Dataset view)" });
    let series = |values: &dyn Fn(usize) -> Vec<f64>| -> Vec<(String, Vec<f64>, egui::Color32)> {
        rows.iter().enumerate().map(|(s, r)| (r.strategy.clone(), values(s), COLOURS[s % COLOURS.len()])).collect()
    };
    ui.label("recall per class");
    class_bars_ui(ui, "lab_recall", &classes, &series(&|s| rows[s].recall.clone()), "recall");
    ui.label("predicted class frequency");
    let mut dist = series(&|s| rows[s].predicted_distribution.clone());
    dist.insert(0, ("true frequency".to_string(), view.true_distribution.clone(), egui::Color32::from_rgb(200, 180, 40)));
    class_bars_ui(ui, "lab_dist", &classes, &dist, "fraction of held-out images");
    mined_ui(ui, view, &chosen, &classes);
    ui.label("confusion matrices");
    ui.horizontal_wrapped(|ui| {
        for (i, cm) in view.confusions.iter().enumerate() {
            ui.vertical(|ui| {
                ui.label(&rows[i].strategy);
                matrix_grid_ui(ui, &format!("lab_cm{i}"), &classes, cm, ConfusionView::Recall);
            });
        }
    });
}

/// The negatives `hnm` mined most often, per selected run: they should look like the rare
/// classes (shirts mined for "coat").
fn mined_ui(ui: &mut egui::Ui, view: &LabView, chosen: &[usize], classes: &[String]) {
    for &i in chosen {
        let Some(tiles) = view.mined.get(&i) else { continue };
        if tiles.is_empty() {
            continue;
        }
        let r = &view.records[i];
        ui.label(format!("negatives mined most often by {} (class, epochs mined)", r.config.strategy.name));
        ui.horizontal_wrapped(|ui| {
            for (sample, shown) in r.mined.iter().zip(tiles) {
                ui.vertical(|ui| {
                    crate::textures::picture_ui(ui, shown, 56.0, false).on_hover_text(&sample.source);
                    let name = classes.get(sample.label).map(String::as_str).unwrap_or("?");
                    ui.small(format!("{} ×{}", name.chars().take(10).collect::<String>(), sample.count));
                });
            }
        });
    }
}
