//! The Dataset view's panel: class distributions, the confusion matrix whose cells open their
//! images in a scrollable gallery, per-class metrics, the cost matrix with cost-optimal
//! decisions, class merging, one-vs-rest curves, and labels that look wrong; model A against
//! model B ([`super::versus_ui`]).

use easel_core::metrics::{ConfusionMatrix, DatasetFigures};
use eframe::egui;
use egui_plot::{Bar, BarChart, Line, Plot, PlotPoints, VLine};

use super::dataset::{DatasetView, GALLERY_PAGE};
use crate::command::{Command, DatasetCommand, Pick};
use crate::session::Session;
use crate::state::{ConfusionView, DatasetSettings};
use crate::textures::picture_ui;

const TRUE_COLOUR: egui::Color32 = egui::Color32::from_rgb(70, 130, 180);
const PRED_COLOUR: egui::Color32 = egui::Color32::from_rgb(230, 140, 50);
const TRAIN_COLOUR: egui::Color32 = egui::Color32::from_rgb(120, 170, 90);

fn push(cmds: &mut Vec<Command>, c: DatasetCommand) {
    cmds.push(Command::Dataset(c));
}

pub fn ui(ui: &mut egui::Ui, view: &DatasetView, settings: &mut DatasetSettings, session: &Session, cmds: &mut Vec<Command>) {
    toolbar_ui(ui, view, session, cmds);
    ui.separator();
    let Some(f) = &view.figures else {
        ui.label("Evaluate the open labelled set (the Fashion-MNIST demo's 10,000 test images, an IDX set, or a folder with one sub-folder per class), or open a predictions CSV.");
        return;
    };
    let wide = ui.available_width() >= 1000.0;
    // once B is open, the comparison is what the user came for: it goes first
    let versus_first = view.versus.report.is_some() || view.versus.job.is_running();
    egui::ScrollArea::vertical().id_salt("dataset").auto_shrink([false, false]).show(ui, |ui| {
        if versus_first {
            egui::CollapsingHeader::new("A versus B").default_open(true).show(ui, |ui| super::versus_ui::ui(ui, view, session, cmds));
        }
        if wide {
            ui.horizontal_top(|ui| {
                ui.vertical(|ui| {
                    ui.set_width(ui.available_width() * 0.5);
                    left_ui(ui, view, f, settings, cmds);
                });
                ui.separator();
                ui.vertical(|ui| right_ui(ui, view, f, settings, session, cmds));
            });
        } else {
            left_ui(ui, view, f, settings, cmds);
            right_ui(ui, view, f, settings, session, cmds);
        }
    });
}

fn left_ui(ui: &mut egui::Ui, view: &DatasetView, f: &DatasetFigures, settings: &mut DatasetSettings, cmds: &mut Vec<Command>) {
    egui::CollapsingHeader::new("Confusion matrix").default_open(true).show(ui, |ui| confusion_ui(ui, f, settings, cmds));
    egui::CollapsingHeader::new("Class distribution").default_open(true).show(ui, |ui| distribution_ui(ui, view, f, settings));
    egui::CollapsingHeader::new("Metrics").default_open(true).show(ui, |ui| metrics_ui(ui, f));
}

fn right_ui(ui: &mut egui::Ui, view: &DatasetView, f: &DatasetFigures, settings: &mut DatasetSettings, session: &Session, cmds: &mut Vec<Command>) {
    egui::CollapsingHeader::new("Gallery").default_open(true).show(ui, |ui| gallery_ui(ui, view, f, settings, cmds));
    if !(view.versus.report.is_some() || view.versus.job.is_running()) {
        egui::CollapsingHeader::new("A versus B").default_open(true).show(ui, |ui| super::versus_ui::ui(ui, view, session, cmds));
    }
    egui::CollapsingHeader::new("Costs of mistakes").default_open(true).show(ui, |ui| costs_ui(ui, f, settings, cmds));
    egui::CollapsingHeader::new("Merge classes").default_open(false).show(ui, |ui| merge_ui(ui, view, settings, cmds));
    egui::CollapsingHeader::new("One class against the rest").default_open(false).show(ui, |ui| threshold_ui(ui, f, settings, cmds));
}

fn toolbar_ui(ui: &mut egui::Ui, view: &DatasetView, session: &Session, cmds: &mut Vec<Command>) {
    ui.horizontal_wrapped(|ui| {
        if ui.add_enabled(session.images.is_labelled() && !view.eval.is_running(), egui::Button::new("Evaluate the open set")).clicked() {
            push(cmds, DatasetCommand::Evaluate);
        }
        if ui.button("Open predictions CSV…").on_hover_text("path,label,p0,...,pK-1 or path,label,pred").clicked() {
            cmds.push(Command::Pick(Pick::Predictions));
        }
        if ui.button("Training split…").on_hover_text("a second labelled set for the distribution chart").clicked() {
            cmds.push(Command::Pick(Pick::TrainSplit));
        }
        if view.eval.is_running() {
            let text = format!("{} images", view.eval.progress_text());
            ui.add(egui::ProgressBar::new(view.eval.fraction().unwrap_or(0.0)).desired_width(220.0).text(text));
            if ui.button("Cancel").clicked() {
                push(cmds, DatasetCommand::Cancel);
            }
        } else if let Some(p) = &view.predictions {
            let how = if view.cached {
                " (from the cache)".to_string()
            } else if view.secs > 0.0 {
                format!(" in {:.1} s", view.secs)
            } else {
                String::new()
            };
            ui.label(format!("{} predictions{how}", p.len()));
        }
    });
}

fn cell_colour(v: f64) -> egui::Color32 {
    let c = easel_core::render::Colormap::Blues.color(v as f32 * 0.85);
    egui::Color32::from_rgb(c[0], c[1], c[2])
}

/// A clickable K x K grid. Rows carry the full class names; columns their numbers, named
/// in full on hover (so a merged "Shirt+T-shirt/top" is never cut).
pub fn matrix_grid_ui(ui: &mut egui::Ui, id: &str, classes: &[String], cm: &ConfusionMatrix, view: ConfusionView) -> Option<(usize, usize)> {
    let k = cm.k();
    let norm = match view {
        ConfusionView::Counts | ConfusionView::Recall => cm.row_normalised(),
        ConfusionView::Precision => cm.col_normalised(),
    };
    let mut clicked = None;
    let cell_w = ((ui.available_width() - 150.0) / k.max(1) as f32 - 2.0).clamp(22.0, 46.0);
    egui::ScrollArea::horizontal().id_salt(format!("{id}_scroll")).show(ui, |ui| {
        egui::Grid::new(id).spacing([2.0, 2.0]).show(ui, |ui| {
            ui.small("true \\ predicted");
            for (j, c) in classes.iter().enumerate() {
                ui.add_sized([cell_w, 16.0], egui::Label::new(egui::RichText::new(format!("{j}")).small())).on_hover_text(c);
            }
            ui.end_row();
            for i in 0..k {
                ui.add(egui::Label::new(egui::RichText::new(format!("{i} {}", classes[i])).small()).wrap_mode(egui::TextWrapMode::Extend));
                for j in 0..k {
                    let text = match view {
                        ConfusionView::Counts => format!("{}", cm.counts[i][j]),
                        _ => format!("{:.2}", norm[i][j]),
                    };
                    let fill = cell_colour(norm[i][j]);
                    let fg = if norm[i][j] > 0.5 { egui::Color32::WHITE } else { egui::Color32::BLACK };
                    let b = egui::Button::new(egui::RichText::new(text).color(fg).small()).fill(fill).min_size(egui::vec2(cell_w, 20.0));
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
    });
    clicked
}

fn confusion_ui(ui: &mut egui::Ui, f: &DatasetFigures, settings: &mut DatasetSettings, cmds: &mut Vec<Command>) {
    ui.horizontal_wrapped(|ui| {
        ui.radio_value(&mut settings.confusion_view, ConfusionView::Counts, "counts");
        ui.radio_value(&mut settings.confusion_view, ConfusionView::Recall, "row-normalised (recall)");
        ui.radio_value(&mut settings.confusion_view, ConfusionView::Precision, "column-normalised (precision)");
    });
    if f.by_cost {
        ui.label("decisions: minimum expected cost");
    }
    if let Some((i, j)) = matrix_grid_ui(ui, "confusion", &f.decided.classes, &f.report.confusion, settings.confusion_view) {
        push(cmds, DatasetCommand::OpenCell(i, j));
    }
    ui.small("Click a cell to see its images.");
}

/// One colour key for a chart, above it (a legend drawn over the plot would cover bars).
pub fn colour_key_ui(ui: &mut egui::Ui, entries: &[(String, egui::Color32)]) {
    ui.horizontal_wrapped(|ui| {
        for (name, colour) in entries {
            let (swatch, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
            ui.painter().rect_filled(swatch, 2.0, *colour);
            ui.colored_label(*colour, name);
        }
    });
}

/// A y-axis formatter that names every whole-number tick by class, in full.
pub fn class_axis(classes: Vec<String>) -> impl Fn(egui_plot::GridMark, &std::ops::RangeInclusive<f64>) -> String {
    move |mark, _| {
        let i = mark.value.round();
        if (mark.value - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < classes.len() { classes[i as usize].clone() } else { String::new() }
    }
}

/// Grid marks at every class (and nothing between), so every class is named on its axis.
pub fn every_class(k: usize) -> impl Fn(egui_plot::GridInput) -> Vec<egui_plot::GridMark> {
    move |_| (0..k).map(|i| egui_plot::GridMark { value: i as f64, step_size: 1.0 }).collect()
}

/// Grouped horizontal bars, one group per class (class names on the y axis, top to bottom).
pub fn class_bars_ui(ui: &mut egui::Ui, id: &str, classes: &[String], series: &[(String, Vec<f64>, egui::Color32)], x_label: &str) {
    let k = classes.len();
    let n = series.len().max(1) as f64;
    let w = 0.8 / n;
    // class 0 at the top
    let y_of = |c: usize| (k - 1 - c) as f64;
    let names: Vec<String> = (0..k).map(|i| classes[k - 1 - i].clone()).collect();
    colour_key_ui(ui, &series.iter().map(|(name, _, c)| (name.clone(), *c)).collect::<Vec<_>>());
    let charts: Vec<BarChart> = series
        .iter()
        .enumerate()
        .map(|(s, (name, values, colour))| {
            let bars = (0..k).map(|c| Bar::new(y_of(c) + ((n - 1.0) / 2.0 - s as f64) * w, values[c]).width(w).name(&classes[c])).collect();
            BarChart::new(name.clone(), bars).color(*colour).horizontal()
        })
        .collect();
    let top = series.iter().flat_map(|(_, v, _)| v.iter().copied()).fold(0.0f64, f64::max);
    Plot::new(id.to_string())
        .height((k as f32 * 20.0 + 40.0).clamp(140.0, 600.0))
        .include_x(0.0)
        .include_x(top * 1.08)
        .allow_zoom(false)
        .allow_drag(false)
        .allow_scroll(false)
        .x_axis_label(x_label.to_string())
        // every class named, however close the rows (the default hides labels under 20 points)
        .custom_y_axes(vec![egui_plot::AxisHints::new_y().formatter(class_axis(names)).label_spacing(6.0..=12.0).min_thickness(96.0)])
        .y_grid_spacer(every_class(k))
        .show(ui, |p| {
            for c in charts {
                p.bar_chart(c);
            }
        });
}

fn distribution_ui(ui: &mut egui::Ui, view: &DatasetView, f: &DatasetFigures, settings: &mut DatasetSettings) {
    ui.horizontal_wrapped(|ui| {
        ui.checkbox(&mut settings.log_scale, "log scale");
        ui.label(format!("imbalance ratio {:.2}", f.report.summary.imbalance_ratio));
        if f.by_cost {
            ui.label("· predicted: cost-optimal decisions");
        }
    });
    let log = settings.log_scale;
    let y = |v: usize| if log { (v as f64 + 1.0).log10() } else { v as f64 };
    let vals = |c: &[usize]| c.iter().map(|&v| y(v)).collect::<Vec<f64>>();
    let mut series = vec![
        ("test: true".to_string(), vals(&f.report.true_counts), TRUE_COLOUR),
        ("test: predicted".to_string(), vals(&f.report.predicted_counts), PRED_COLOUR),
    ];
    if let Some(train) = &view.train_counts
        && train.len() == f.report.true_counts.len()
        && settings.merges.is_empty()
    {
        series.insert(0, ("train: true".to_string(), vals(train), TRAIN_COLOUR));
    }
    class_bars_ui(ui, "distribution", &f.decided.classes, &series, if log { "log10(count + 1)" } else { "count" });
}

fn metrics_ui(ui: &mut egui::Ui, f: &DatasetFigures) {
    let s = &f.report.summary;
    if f.by_cost {
        ui.label("for the cost-optimal decisions:");
    }
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
        for m in &f.report.per_class {
            ui.label(&m.class);
            ui.label(format!("{:.3}", m.precision));
            ui.label(format!("{:.3}", m.recall));
            ui.label(format!("{:.3}", m.f1));
            ui.label(format!("{}", m.support));
            ui.end_row();
        }
    });
}

fn gallery_ui(ui: &mut egui::Ui, view: &DatasetView, f: &DatasetFigures, settings: &mut DatasetSettings, cmds: &mut Vec<Command>) {
    ui.horizontal_wrapped(|ui| {
        if ui.checkbox(&mut settings.gallery_by_doubt, "sort by how likely the label is wrong").changed()
            && let Some((t, p)) = view.gallery.cell
        {
            push(cmds, DatasetCommand::OpenCell(t, p));
        }
        if ui.button("Labels that look wrong").clicked() {
            push(cmds, DatasetCommand::OpenIssues);
        }
    });
    let g = &view.gallery;
    if g.title.is_empty() {
        ui.label("Click a confusion-matrix cell.");
        return;
    }
    ui.label(&g.title);
    let pages = g.indices.len().div_ceil(GALLERY_PAGE).max(1);
    let page = g.page.min(pages - 1);
    if pages > 1 {
        ui.horizontal(|ui| {
            if ui.add_enabled(page > 0, egui::Button::new("< previous")).clicked() {
                push(cmds, DatasetCommand::GalleryPage(page - 1));
            }
            ui.label(format!("page {} of {pages}", page + 1));
            if ui.add_enabled(page + 1 < pages, egui::Button::new("next >")).clicked() {
                push(cmds, DatasetCommand::GalleryPage(page + 1));
            }
        });
    }
    let d = &f.decided;
    let items: Vec<usize> = g.indices.iter().skip(page * GALLERY_PAGE).take(GALLERY_PAGE).copied().collect();
    let tile = 96.0f32;
    let columns = ((ui.available_width() / (tile + 8.0)).floor() as usize).max(1);
    let mut open = None;
    egui::ScrollArea::vertical().id_salt("gallery").max_height(420.0).auto_shrink([false, true]).show(ui, |ui| {
        egui::Grid::new("gallery_grid").spacing([6.0, 6.0]).show(ui, |ui| {
            for (n, &i) in items.iter().enumerate() {
                ui.vertical(|ui| {
                    ui.set_width(tile);
                    let r = match g.thumbnails.get(&i) {
                        Some(t) => picture_ui(ui, t, 72.0, false).interact(egui::Sense::click()),
                        None => ui.add_sized([72.0, 72.0], egui::Button::new(format!("#{i}"))),
                    };
                    let (truth, pred) = (&d.classes[d.labels[i]], &d.classes[d.preds[i]]);
                    let conf = d.probs.as_ref().map(|p| format!(" {:.0}%", p[i][d.preds[i]] * 100.0)).unwrap_or_default();
                    let short = |s: &str| s.chars().take(13).collect::<String>();
                    ui.small(format!("#{i}"));
                    ui.small(format!("true {}", short(truth)));
                    ui.small(format!("pred {}{conf}", short(pred)));
                    if r.on_hover_text(format!("#{i}: true {truth}, predicted {pred}{conf}; click to compare its maps")).clicked() {
                        open = Some(i);
                    }
                });
                if (n + 1) % columns == 0 {
                    ui.end_row();
                }
            }
        });
    });
    if let Some(i) = open {
        push(cmds, DatasetCommand::OpenSample(i));
    }
}

fn costs_ui(ui: &mut egui::Ui, f: &DatasetFigures, settings: &mut DatasetSettings, cmds: &mut Vec<Command>) {
    let k = f.decided.k();
    let classes = &f.decided.classes;
    ui.horizontal_wrapped(|ui| {
        if ui.button("0/1").on_hover_text("every mistake costs 1").clicked() {
            push(cmds, DatasetCommand::ResetCost);
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
            push(cmds, DatasetCommand::MissingClassCost { class, value });
        }
        if ui.button("Load…").clicked() {
            cmds.push(Command::Pick(Pick::LoadCost));
        }
        if ui.button("Save…").clicked() {
            cmds.push(Command::Pick(Pick::SaveCost));
        }
    });
    ui.small(if f.cost_is_custom {
        "rows: true class · columns: predicted class"
    } else {
        "rows: true class · columns: predicted class (0/1: every mistake costs 1)"
    });
    let mut costs = f.cost.costs.clone();
    egui::ScrollArea::horizontal().id_salt("costs_scroll").show(ui, |ui| {
        egui::Grid::new("costs").spacing([2.0, 2.0]).show(ui, |ui| {
            ui.small("");
            for (j, name) in classes.iter().enumerate() {
                ui.small(format!("{j}")).on_hover_text(name);
            }
            ui.end_row();
            for i in 0..k {
                ui.add(egui::Label::new(egui::RichText::new(format!("{i} {}", classes[i])).small()).wrap_mode(egui::TextWrapMode::Extend));
                for j in 0..k {
                    let r = ui
                        .add_enabled(i != j, egui::DragValue::new(&mut costs[i][j]).range(0.0..=1e6).speed(0.1))
                        .on_hover_text(format!("cost of predicting {} when it is {}", classes[j], classes[i]));
                    let label = format!("cost {i},{j}");
                    r.widget_info(|| egui::WidgetInfo::labeled(egui::Role::SpinButton, true, &label));
                    if r.changed() {
                        push(cmds, DatasetCommand::SetCostCell { row: i, col: j, value: costs[i][j] });
                    }
                }
                ui.end_row();
            }
        });
    });
    if let Some(a) = &f.report.cost_argmax {
        ui.label(format!(
            "most probable class: total cost {:.1}, mean {:.4} per sample{}",
            a.total,
            a.mean,
            a.expected_mean.map(|e| format!(", expected {e:.4}")).unwrap_or_default()
        ));
    }
    if let Some(o) = &f.report.cost_optimal {
        ui.label(format!(
            "minimum expected cost: total cost {:.1}, mean {:.4} per sample{}",
            o.total,
            o.mean,
            o.expected_mean.map(|e| format!(", expected {e:.4}")).unwrap_or_default()
        ));
        if ui.checkbox(&mut settings.decide_by_cost, "decide by minimum expected cost (matrix, metrics, bars and galleries follow)").changed() {
            push(cmds, DatasetCommand::Refresh);
        }
    }
}

fn merge_ui(ui: &mut egui::Ui, view: &DatasetView, settings: &mut DatasetSettings, cmds: &mut Vec<Command>) {
    let Some(p) = &view.predictions else { return };
    let classes = &p.classes;
    let id = ui.scope_id().with("merge_pick");
    let mut picked: Vec<bool> = ui.data(|m| m.get_temp(id)).unwrap_or_else(|| vec![false; classes.len()]);
    picked.resize(classes.len(), false);
    ui.horizontal_wrapped(|ui| {
        for (i, c) in classes.iter().enumerate() {
            let in_group = settings.merges.iter().any(|g| g.contains(&i));
            ui.add_enabled(!in_group, egui::Checkbox::new(&mut picked[i], c));
        }
    });
    let chosen: Vec<usize> = (0..classes.len()).filter(|&i| picked[i]).collect();
    let mut changed = false;
    ui.horizontal(|ui| {
        if ui.add_enabled(chosen.len() >= 2, egui::Button::new("Merge the chosen classes")).clicked() {
            settings.merges.push(chosen.clone());
            picked.iter_mut().for_each(|p| *p = false);
            changed = true;
        }
        if ui.add_enabled(!settings.merges.is_empty(), egui::Button::new("Clear merges")).clicked() {
            settings.merges.clear();
            changed = true;
        }
    });
    ui.data_mut(|m| m.insert_temp(id, picked));
    for g in &settings.merges {
        ui.label(format!("merged: {}", g.iter().map(|&i| classes[i].as_str()).collect::<Vec<_>>().join(" + ")));
    }
    if changed {
        // the cost matrix stays (over the model's classes) and is merged with them
        push(cmds, DatasetCommand::Refresh);
    }
}

fn threshold_ui(ui: &mut egui::Ui, f: &DatasetFigures, settings: &mut DatasetSettings, cmds: &mut Vec<Command>) {
    let classes = &f.merged.classes;
    let mut c = f.threshold_class;
    egui::ComboBox::from_label("positive class").selected_text(classes[c].clone()).show_ui(ui, |ui| {
        for (i, name) in classes.iter().enumerate() {
            ui.selectable_value(&mut c, i, name);
        }
    });
    if c != settings.threshold_class {
        settings.threshold_class = c;
        push(cmds, DatasetCommand::Refresh);
    }
    let Some(curves) = &f.curves else {
        ui.label("needs class probabilities");
        return;
    };
    ui.add(egui::Slider::new(&mut settings.threshold, 0.0..=1.0).text("threshold"));
    let t = settings.threshold;
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
    ui.horizontal_wrapped(|ui| {
        Plot::new("cost_curve").width(200.0).height(170.0).x_axis_label("threshold").y_axis_label("cost").show(ui, |p| {
            p.line(Line::new("cost", PlotPoints::from(cost_pts)));
            p.vline(VLine::new("threshold", t));
        });
        Plot::new("roc").width(170.0).height(170.0).x_axis_label("FPR").y_axis_label("TPR").data_aspect(1.0).show(ui, |p| {
            p.line(Line::new("ROC", PlotPoints::from(roc)));
        });
        Plot::new("pr").width(170.0).height(170.0).x_axis_label("recall").y_axis_label("precision").show(ui, |p| {
            p.line(Line::new("PR", PlotPoints::from(pr)));
        });
    });
}
