//! The Sampling lab view: build a long-tailed training set, train the chosen strategies in the
//! background with live curves, and compare 2 to 6 runs side by side (per-class recall,
//! confusion matrices, costs, predicted class frequencies, prior correction).

use eframe::egui;
use egui_plot::{Bar, BarChart, Legend, Line, Plot, PlotPoints};

use crate::gui::app::{Command, EaselApp};
use crate::gui::panels::dataset::{class_axis, matrix_grid_ui};
use crate::gui::state::ConfusionView;

pub const STRATEGIES: [&str; 6] = ["uniform", "ignore", "undersample", "oversample", "hnm", "weighted"];

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

pub fn ui(ui: &mut egui::Ui, app: &mut EaselApp) {
    egui::ScrollArea::vertical().id_salt("lab").show(ui, |ui| {
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| {
                ui.set_width(360.0);
                setup_ui(ui, app);
                ui.separator();
                live_ui(ui, app);
            });
            ui.separator();
            ui.vertical(|ui| compare_ui(ui, app));
        });
    });
}

fn setup_ui(ui: &mut egui::Ui, app: &mut EaselApp) {
    ui.heading("Training set");
    let s = &mut app.state.lab;
    ui.label(format!("data: {}", s.train.display())).on_hover_text("Fashion-MNIST's 60k training set from dataset-fashion-mnist, or the bundled 10k test set where that is not installed");
    ui.add(egui::Slider::new(&mut s.ratio, 1.0..=1000.0).logarithmic(true).text("imbalance ratio (largest : rare)"));
    ui.label("rare classes (none: a geometric tail over all classes)");
    let classes: Vec<&str> = crate::data::FASHION_MNIST_CLASSES.to_vec();
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
    ui.add(egui::Slider::new(&mut s.epochs, 1..=20).text("epochs"));
    ui.add(egui::DragValue::new(&mut s.seed).prefix("seed "));
    ui.horizontal(|ui| {
        let running = app.rt.lab.handle.is_some();
        if ui.add_enabled(!running, egui::Button::new("Train")).clicked() {
            app.rt.commands.push(Command::RunLab);
        }
        if ui.add_enabled(running, egui::Button::new("Cancel training")).clicked() {
            app.rt.commands.push(Command::CancelLab);
        }
        if ui.button("Open runs…").on_hover_text("a folder of runs written by easel sample or this view").clicked() {
            app.rt.commands.push(Command::PickRuns);
        }
    });
}

fn live_ui(ui: &mut egui::Ui, app: &mut EaselApp) {
    let lab = &app.rt.lab;
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
    let rare = app.state.lab.rare.clone();
    for (title, pick) in [("loss", 0), ("accuracy", 1), ("rare-class recall", 2)] {
        Plot::new(format!("live{pick}")).height(110.0).legend(Legend::default()).allow_zoom(false).allow_drag(false).allow_scroll(false).y_axis_label(title).show(ui, |p| {
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

fn compare_ui(ui: &mut egui::Ui, app: &mut EaselApp) {
    ui.heading("Compare runs");
    if app.rt.lab.records.is_empty() {
        ui.label("Train some strategies, or open saved runs.");
        return;
    }
    let mut changed = false;
    ui.horizontal_wrapped(|ui| {
        ui.label("runs:");
        for (i, r) in app.rt.lab.records.iter().enumerate() {
            let mut on = app.rt.lab.selected.get(i).copied().unwrap_or(false);
            if ui.checkbox(&mut on, format!("run: {}", r.config.strategy.name)).changed() {
                app.rt.lab.selected[i] = on;
                changed = true;
            }
        }
    });
    changed |= ui.checkbox(&mut app.state.lab.prior_correction, "prior correction (reweight by test prior / training prior)").changed();
    if changed {
        app.rt.commands.push(Command::RefreshLab);
    }
    let chosen: Vec<usize> = (0..app.rt.lab.records.len()).filter(|&i| app.rt.lab.selected[i]).collect();
    if chosen.len() < 2 || chosen.len() > 6 {
        ui.label(format!("choose 2 to 6 runs ({} chosen)", chosen.len()));
        return;
    }
    let rows = &app.rt.lab.rows;
    let classes = app.rt.lab.records[chosen[0]].classes.clone();
    egui::Grid::new("lab_table").striped(true).show(ui, |ui| {
        for h in ["strategy", "accuracy", "balanced", "rare recall", "cost", "expected cost"] {
            ui.strong(h);
        }
        ui.end_row();
        for r in rows {
            ui.label(&r.strategy);
            ui.label(format!("{:.4}", r.accuracy));
            ui.label(format!("{:.4}", r.balanced_accuracy));
            ui.label(format!("{:.4}", r.rare_recall));
            ui.label(format!("{:.1}", r.total_cost));
            ui.label(format!("{:.4}", r.expected_cost));
            ui.end_row();
        }
    });
    ui.small(if app.rt.lab.cost_is_custom { "cost: the Dataset view's cost matrix" } else { "cost: number of mistakes (set a cost matrix in the Dataset view)" });
    let n = rows.len() as f64;
    let w = 0.8 / n;
    let bars = |values: &dyn Fn(usize) -> Vec<f64>| -> Vec<BarChart> {
        rows.iter()
            .enumerate()
            .map(|(s, r)| {
                let v = values(s);
                let b = (0..classes.len()).map(|c| Bar::new(c as f64 + (s as f64 - (n - 1.0) / 2.0) * w, v[c]).width(w).name(&classes[c])).collect();
                BarChart::new(r.strategy.clone(), b).color(COLOURS[s % COLOURS.len()])
            })
            .collect()
    };
    // one colour key for both charts, so no legend covers the bars
    ui.horizontal_wrapped(|ui| {
        for (s, r) in rows.iter().enumerate() {
            let colour = COLOURS[s % COLOURS.len()];
            let (swatch, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
            ui.painter().rect_filled(swatch, 2.0, colour);
            ui.colored_label(colour, &r.strategy);
        }
    });
    ui.label("recall per class");
    let recall = bars(&|s| rows[s].recall.clone());
    let plot = |id: &str| {
        Plot::new(id.to_string()).height(170.0).allow_zoom(false).allow_drag(false).allow_scroll(false).x_axis_formatter(class_axis(classes.clone()))
    };
    plot("lab_recall").include_y(1.0).show(ui, |p| {
        for c in recall {
            p.bar_chart(c);
        }
    });
    ui.label("predicted class frequency (yellow line: true frequency)");
    let truth = app.rt.lab.true_distribution.clone();
    let dist = bars(&|s| rows[s].predicted_distribution.clone());
    plot("lab_dist").show(ui, |p| {
        for c in dist {
            p.bar_chart(c);
        }
        let pts: Vec<[f64; 2]> = truth.iter().enumerate().flat_map(|(c, &v)| [[c as f64 - 0.45, v], [c as f64 + 0.45, v]]).collect();
        p.line(Line::new("true", PlotPoints::from(pts)).color(egui::Color32::from_rgb(240, 220, 60)).width(2.0));
    });
    ui.label("confusion matrices");
    ui.horizontal_wrapped(|ui| {
        for (i, cm) in app.rt.lab.confusions.iter().enumerate() {
            ui.vertical(|ui| {
                ui.label(&rows[i].strategy);
                matrix_grid_ui(ui, &format!("lab_cm{i}"), &classes, cm, ConfusionView::Recall);
            });
        }
    });
}
