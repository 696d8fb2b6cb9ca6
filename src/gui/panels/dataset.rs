//! The Dataset view: evaluate a labelled set (or open predictions computed elsewhere), class
//! distributions, the confusion matrix whose cells open their images, per-class metrics, a
//! K x K cost matrix with the cost-optimal decisions, class merging, one-vs-rest curves, and
//! labels that look wrong.

use eframe::egui;
use egui_plot::{Bar, BarChart, Legend, Line, Plot, PlotPoints, VLine};

use super::picture_ui;
use crate::gui::app::{Command, EaselApp, GALLERY_PAGE};
use crate::gui::state::ConfusionView;
use crate::metrics::{ConfusionMatrix, CostMatrix};

pub fn ui(ui: &mut egui::Ui, app: &mut EaselApp) {
    toolbar_ui(ui, app);
    ui.separator();
    if app.rt.dataset.derived.is_none() {
        ui.label("Evaluate the open labelled set (the Fashion-MNIST demo's 10,000 test images, an IDX set, or a folder with one sub-folder per class), or open a predictions CSV.");
        return;
    }
    egui::ScrollArea::vertical().id_salt("dataset").show(ui, |ui| {
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| {
                ui.set_width(520.0);
                egui::CollapsingHeader::new("Confusion matrix").default_open(true).show(ui, |ui| confusion_ui(ui, app));
                egui::CollapsingHeader::new("Class distribution").default_open(true).show(ui, |ui| distribution_ui(ui, app));
                egui::CollapsingHeader::new("Metrics").default_open(true).show(ui, |ui| metrics_ui(ui, app));
            });
            ui.separator();
            ui.vertical(|ui| {
                egui::CollapsingHeader::new("Gallery").default_open(true).show(ui, |ui| gallery_ui(ui, app));
                egui::CollapsingHeader::new("Costs of mistakes").default_open(true).show(ui, |ui| costs_ui(ui, app));
                egui::CollapsingHeader::new("Merge classes").default_open(false).show(ui, |ui| merge_ui(ui, app));
                egui::CollapsingHeader::new("One class against the rest").default_open(false).show(ui, |ui| threshold_ui(ui, app));
            });
        });
    });
}

fn toolbar_ui(ui: &mut egui::Ui, app: &mut EaselApp) {
    ui.horizontal_wrapped(|ui| {
        let labelled = !app.rt.images.is_empty() && app.rt.images.iter().all(|e| e.label.is_some());
        if ui.add_enabled(labelled && app.rt.dataset.job.is_none(), egui::Button::new("Evaluate the open set")).clicked() {
            app.rt.commands.push(Command::Evaluate);
        }
        if ui.button("Open predictions CSV…").on_hover_text("path,label,p0,...,pK-1 or path,label,pred").clicked() {
            app.rt.commands.push(Command::PickPredictions);
        }
        if ui.button("Training split…").on_hover_text("a second labelled set for the distribution chart").clicked() {
            app.rt.commands.push(Command::PickTrainSplit);
        }
        if app.rt.dataset.job.is_some() {
            let (d, t) = app.rt.dataset.progress;
            ui.add(egui::ProgressBar::new(if t > 0 { d as f32 / t as f32 } else { 0.0 }).desired_width(200.0).text(format!("{d}/{t} images")));
            if ui.button("Cancel").clicked() {
                app.rt.dataset.cancel.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        } else if let Some(p) = &app.rt.dataset.predictions {
            ui.label(format!(
                "{} predictions{}",
                p.len(),
                if app.rt.dataset.cached { " (from the cache)".to_string() } else if app.rt.dataset.secs > 0.0 { format!(" in {:.1} s", app.rt.dataset.secs) } else { String::new() }
            ));
        }
    });
}

fn cell_colour(v: f64) -> egui::Color32 {
    let c = crate::render::Colormap::Blues.color(v as f32 * 0.85);
    egui::Color32::from_rgb(c[0], c[1], c[2])
}

/// A clickable K x K grid.
pub fn matrix_grid_ui(ui: &mut egui::Ui, id: &str, classes: &[String], cm: &ConfusionMatrix, view: ConfusionView) -> Option<(usize, usize)> {
    let k = cm.k();
    let norm = match view {
        ConfusionView::Counts | ConfusionView::Recall => cm.row_normalised(),
        ConfusionView::Precision => cm.col_normalised(),
    };
    let mut clicked = None;
    let short = |s: &str| s.chars().take(9).collect::<String>();
    egui::Grid::new(id).spacing([2.0, 2.0]).show(ui, |ui| {
        ui.small("true \\ predicted");
        for c in classes {
            ui.small(short(c));
        }
        ui.end_row();
        for i in 0..k {
            ui.small(short(&classes[i]));
            for j in 0..k {
                let text = match view {
                    ConfusionView::Counts => format!("{}", cm.counts[i][j]),
                    _ => format!("{:.2}", norm[i][j]),
                };
                let fill = cell_colour(norm[i][j]);
                let fg = if norm[i][j] > 0.5 { egui::Color32::WHITE } else { egui::Color32::BLACK };
                let b = egui::Button::new(egui::RichText::new(text).color(fg).small()).fill(fill).min_size(egui::vec2(40.0, 20.0));
                let r = ui.add(b).on_hover_text(format!("true {}, predicted {}: {} images", classes[i], classes[j], cm.counts[i][j]));
                let label = format!("true {} predicted {}", classes[i], classes[j]);
                r.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &label));
                if r.clicked() {
                    clicked = Some((i, j));
                }
            }
            ui.end_row();
        }
    });
    clicked
}

fn confusion_ui(ui: &mut egui::Ui, app: &mut EaselApp) {
    ui.horizontal(|ui| {
        ui.radio_value(&mut app.state.confusion_view, ConfusionView::Counts, "counts");
        ui.radio_value(&mut app.state.confusion_view, ConfusionView::Recall, "row-normalised (recall)");
        ui.radio_value(&mut app.state.confusion_view, ConfusionView::Precision, "column-normalised (precision)");
    });
    let Some(d) = &app.rt.dataset.derived else { return };
    let cm = match (app.rt.decide_by_cost, &d.report.cost_optimal) {
        (true, Some(c)) => c.confusion.clone(),
        _ => d.report.confusion.clone(),
    };
    let classes = d.preds.classes.clone();
    if app.rt.decide_by_cost {
        ui.label("decisions: minimum expected cost");
    }
    if let Some((i, j)) = matrix_grid_ui(ui, "confusion", &classes, &cm, app.state.confusion_view) {
        app.rt.commands.push(Command::OpenCell(i, j));
    }
    ui.small("Click a cell to see its images.");
}

fn distribution_ui(ui: &mut egui::Ui, app: &mut EaselApp) {
    let Some(d) = &app.rt.dataset.derived else { return };
    ui.horizontal(|ui| {
        ui.checkbox(&mut app.state.log_scale, "log scale");
        ui.label(format!("imbalance ratio {:.2}", d.report.summary.imbalance_ratio));
    });
    let k = d.preds.k();
    let log = app.state.log_scale;
    let y = |v: usize| if log { (v as f64 + 1.0).log10() } else { v as f64 };
    let mut series: Vec<(String, Vec<usize>, egui::Color32)> = vec![
        ("test: true".into(), d.report.true_counts.clone(), egui::Color32::from_rgb(70, 130, 180)),
        ("test: predicted".into(), d.report.predicted_counts.clone(), egui::Color32::from_rgb(230, 140, 50)),
    ];
    if let Some(train) = &app.rt.dataset.train_counts {
        if train.len() == d.report.true_counts.len() && app.state.merges.is_empty() {
            series.insert(0, ("train: true".into(), train.clone(), egui::Color32::from_rgb(120, 170, 90)));
        }
    }
    let n = series.len() as f64;
    let w = 0.8 / n;
    let classes = d.preds.classes.clone();
    let charts: Vec<BarChart> = series
        .iter()
        .enumerate()
        .map(|(s, (name, counts, colour))| {
            let bars = (0..k).map(|c| Bar::new(c as f64 + (s as f64 - (n - 1.0) / 2.0) * w, y(counts[c])).width(w).name(&classes[c])).collect();
            BarChart::new(name.clone(), bars).color(*colour)
        })
        .collect();
    Plot::new("distribution")
        .height(200.0)
        .legend(Legend::default())
        .allow_zoom(false)
        .allow_drag(false)
        .allow_scroll(false)
        .y_axis_label(if log { "log10(count + 1)" } else { "count" })
        .x_axis_formatter(class_axis(classes))
        .show(ui, |p| {
            for c in charts {
                p.bar_chart(c);
            }
        });
}

/// An x-axis formatter that names whole-number ticks by class (first 8 characters).
pub fn class_axis(classes: Vec<String>) -> impl Fn(egui_plot::GridMark, &std::ops::RangeInclusive<f64>) -> String {
    move |mark, _| {
        let i = mark.value.round();
        if (mark.value - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < classes.len() { classes[i as usize].chars().take(8).collect() } else { String::new() }
    }
}

fn metrics_ui(ui: &mut egui::Ui, app: &mut EaselApp) {
    let Some(d) = &app.rt.dataset.derived else { return };
    let s = &d.report.summary;
    ui.label(format!(
        "accuracy {:.4} · balanced accuracy {:.4} · macro F1 {:.4} · weighted F1 {:.4}",
        s.accuracy, s.balanced_accuracy, s.macro_f1, s.weighted_f1
    ));
    let topk: Vec<String> = s.top_k_accuracy.iter().map(|(k, a)| format!("top-{k} {a:.4}")).collect();
    if !topk.is_empty() {
        ui.label(topk.join(" · "));
    }
    egui::Grid::new("per_class").striped(true).show(ui, |ui| {
        for h in ["class", "precision", "recall", "F1", "support"] {
            ui.strong(h);
        }
        ui.end_row();
        for m in &d.report.per_class {
            ui.label(&m.class);
            ui.label(format!("{:.3}", m.precision));
            ui.label(format!("{:.3}", m.recall));
            ui.label(format!("{:.3}", m.f1));
            ui.label(format!("{}", m.support));
            ui.end_row();
        }
    });
}

fn gallery_ui(ui: &mut egui::Ui, app: &mut EaselApp) {
    ui.horizontal(|ui| {
        if ui.checkbox(&mut app.state.gallery_by_doubt, "sort by how likely the label is wrong").changed() {
            if let Some((t, p)) = app.rt.dataset.selected_cell {
                app.rt.commands.push(Command::OpenCell(t, p));
            }
        }
        if ui.button("Labels that look wrong").clicked() {
            app.rt.commands.push(Command::OpenIssues);
        }
    });
    let ds = &app.rt.dataset;
    if ds.gallery_title.is_empty() {
        ui.label("Click a confusion-matrix cell.");
        return;
    }
    ui.label(&ds.gallery_title);
    let pages = ds.gallery.len().div_ceil(GALLERY_PAGE).max(1);
    let page = ds.gallery_page.min(pages - 1);
    if pages > 1 {
        ui.horizontal(|ui| {
            if ui.add_enabled(page > 0, egui::Button::new("< previous")).clicked() {
                app.rt.commands.push(Command::GalleryPage(page - 1));
            }
            ui.label(format!("page {} of {pages}", page + 1));
            if ui.add_enabled(page + 1 < pages, egui::Button::new("next >")).clicked() {
                app.rt.commands.push(Command::GalleryPage(page + 1));
            }
        });
    }
    let Some(d) = &ds.derived else { return };
    let probs = d.preds.probs.clone();
    let items: Vec<usize> = ds.gallery.iter().skip(page * GALLERY_PAGE).take(GALLERY_PAGE).copied().collect();
    let mut open = None;
    ui.horizontal_wrapped(|ui| {
        for i in items {
            ui.vertical(|ui| {
                ui.set_width(80.0);
                let r = match ds.thumbnails.get(&i) {
                    Some(t) => picture_ui(ui, t, 72.0, false).interact(egui::Sense::click()),
                    None => ui.add_sized([72.0, 72.0], egui::Button::new(format!("#{i}"))),
                };
                let conf = probs.as_ref().map(|p| {
                    let pred = d.preds.preds[i];
                    format!("{:.2}", p[i][pred])
                });
                ui.small(format!("#{i} {}", conf.unwrap_or_default()));
                if r.on_hover_text(format!("true {}, predicted {}; click to compare their maps", d.preds.classes[d.preds.labels[i]], d.preds.classes[d.preds.preds[i]])).clicked() {
                    open = Some(i);
                }
            });
        }
    });
    if let Some(i) = open {
        app.rt.commands.push(Command::OpenSample(i));
    }
}

fn costs_ui(ui: &mut egui::Ui, app: &mut EaselApp) {
    let Some(d) = &app.rt.dataset.derived else { return };
    let k = d.preds.k();
    let classes = d.preds.classes.clone();
    let mut costs = d.cost.costs.clone();
    let mut changed = false;
    ui.horizontal_wrapped(|ui| {
        if ui.button("0/1").on_hover_text("every mistake costs 1").clicked() {
            costs = CostMatrix::zero_one(k).costs;
            changed = true;
        }
        ui.label("missing");
        let id = ui.scope_id().with("missing_class");
        let mut class: usize = ui.data(|m| m.get_temp(id)).unwrap_or(0).min(k - 1);
        egui::ComboBox::from_id_salt("missing_class").selected_text(classes[class].clone()).show_ui(ui, |ui| {
            for (i, c) in classes.iter().enumerate() {
                ui.selectable_value(&mut class, i, c);
            }
        });
        ui.data_mut(|m| m.insert_temp(id, class));
        let vid = ui.scope_id().with("missing_cost");
        let mut value: f64 = ui.data(|m| m.get_temp(vid)).unwrap_or(10.0);
        ui.label("costs");
        ui.add(egui::DragValue::new(&mut value).range(0.0..=1e6));
        ui.data_mut(|m| m.insert_temp(vid, value));
        if ui.button("Apply").clicked() {
            costs = CostMatrix::missing_class_costs(k, class, value).costs;
            changed = true;
        }
        if ui.button("Load…").clicked() {
            app.rt.commands.push(Command::PickCost { save: false });
        }
        if ui.button("Save…").clicked() {
            app.rt.commands.push(Command::PickCost { save: true });
        }
    });
    ui.small("rows: true class · columns: predicted class");
    let short = |s: &str| s.chars().take(9).collect::<String>();
    egui::Grid::new("costs").spacing([2.0, 2.0]).show(ui, |ui| {
        ui.small("");
        for c in &classes {
            ui.small(short(c));
        }
        ui.end_row();
        for i in 0..k {
            ui.small(short(&classes[i]));
            for j in 0..k {
                let r = ui
                    .add(egui::DragValue::new(&mut costs[i][j]).range(0.0..=1e6).speed(0.1))
                    .on_hover_text(format!("cost of predicting {} when it is {}", classes[j], classes[i]));
                let label = format!("cost {i},{j}");
                r.widget_info(|| egui::WidgetInfo::labeled(egui::Role::SpinButton, true, &label));
                changed |= r.changed();
            }
            ui.end_row();
        }
    });
    let (argmax, optimal) = (d.report.cost_argmax.clone(), d.report.cost_optimal.clone());
    if let Some(a) = &argmax {
        ui.label(format!(
            "most probable class: total cost {:.1}, mean {:.4} per sample{}",
            a.total,
            a.mean,
            a.expected_mean.map(|e| format!(", expected {e:.4}")).unwrap_or_default()
        ));
    }
    if let Some(o) = &optimal {
        ui.label(format!(
            "minimum expected cost: total cost {:.1}, mean {:.4} per sample{}",
            o.total,
            o.mean,
            o.expected_mean.map(|e| format!(", expected {e:.4}")).unwrap_or_default()
        ));
        ui.checkbox(&mut app.rt.decide_by_cost, "show the matrix and galleries for the cost-optimal decisions");
    }
    if changed {
        app.set_cost(Some(costs));
    }
}

fn merge_ui(ui: &mut egui::Ui, app: &mut EaselApp) {
    let Some(p) = &app.rt.dataset.predictions else { return };
    let classes = p.classes.clone();
    let id = ui.scope_id().with("merge_pick");
    let mut picked: Vec<bool> = ui.data(|m| m.get_temp(id)).unwrap_or_else(|| vec![false; classes.len()]);
    picked.resize(classes.len(), false);
    ui.horizontal_wrapped(|ui| {
        for (i, c) in classes.iter().enumerate() {
            let in_group = app.state.merges.iter().any(|g| g.contains(&i));
            ui.add_enabled(!in_group, egui::Checkbox::new(&mut picked[i], c));
        }
    });
    let chosen: Vec<usize> = (0..classes.len()).filter(|&i| picked[i]).collect();
    let mut changed = false;
    ui.horizontal(|ui| {
        if ui.add_enabled(chosen.len() >= 2, egui::Button::new("Merge the chosen classes")).clicked() {
            app.state.merges.push(chosen.clone());
            picked.iter_mut().for_each(|p| *p = false);
            changed = true;
        }
        if ui.add_enabled(!app.state.merges.is_empty(), egui::Button::new("Clear merges")).clicked() {
            app.state.merges.clear();
            changed = true;
        }
    });
    ui.data_mut(|m| m.insert_temp(id, picked));
    for g in &app.state.merges {
        ui.label(format!("merged: {}", g.iter().map(|&i| classes[i].as_str()).collect::<Vec<_>>().join(" + ")));
    }
    if changed {
        // costs were for the old class list
        app.state.cost = None;
        app.rt.dataset.selected_cell = None;
        app.rt.commands.push(Command::RefreshDataset);
    }
}

fn threshold_ui(ui: &mut egui::Ui, app: &mut EaselApp) {
    let Some(d) = &app.rt.dataset.derived else { return };
    let classes = d.preds.classes.clone();
    let mut c = app.state.threshold_class;
    egui::ComboBox::from_label("positive class").selected_text(classes[c].clone()).show_ui(ui, |ui| {
        for (i, name) in classes.iter().enumerate() {
            ui.selectable_value(&mut c, i, name);
        }
    });
    if c != app.state.threshold_class {
        app.state.threshold_class = c;
        app.rt.commands.push(Command::RefreshDataset);
    }
    let Some(curves) = &d.curves else {
        ui.label("needs class probabilities");
        return;
    };
    ui.add(egui::Slider::new(&mut app.state.threshold, 0.0..=1.0).text("threshold"));
    let t = app.state.threshold;
    // the operating point: the last threshold >= t
    let at = curves.thresholds.iter().rposition(|&x| x >= t).unwrap_or(0);
    ui.label(format!(
        "at p >= {t:.2}: recall {:.3}, false-positive rate {:.3}, precision {:.3}, cost {:.1}",
        curves.tpr[at], curves.fpr[at], curves.precision[at], curves.cost[at]
    ));
    ui.label(format!("ROC AUC {:.4} · average precision {:.4}", curves.roc_auc, curves.average_precision));
    let cost_pts: Vec<[f64; 2]> = curves.thresholds.iter().zip(&curves.cost).skip(1).map(|(&x, &y)| [x, y]).collect();
    let roc: Vec<[f64; 2]> = curves.fpr.iter().zip(&curves.tpr).map(|(&x, &y)| [x, y]).collect();
    let pr: Vec<[f64; 2]> = curves.tpr.iter().zip(&curves.precision).skip(1).map(|(&x, &y)| [x, y]).collect();
    ui.horizontal(|ui| {
        Plot::new("cost_curve").width(220.0).height(180.0).x_axis_label("threshold").y_axis_label("cost").show(ui, |p| {
            p.line(Line::new("cost", PlotPoints::from(cost_pts)));
            p.vline(VLine::new("threshold", t));
        });
        Plot::new("roc").width(180.0).height(180.0).x_axis_label("FPR").y_axis_label("TPR").data_aspect(1.0).show(ui, |p| {
            p.line(Line::new("ROC", PlotPoints::from(roc)));
        });
        Plot::new("pr").width(180.0).height(180.0).x_axis_label("recall").y_axis_label("precision").show(ui, |p| {
            p.line(Line::new("PR", PlotPoints::from(pr)));
        });
    });
}
