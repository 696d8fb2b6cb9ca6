//! The versus panel of the Dataset view: open model B (a second model or its predictions
//! CSV); the 2x2 agreement table, the accuracy delta with its interval, McNemar's p-value in
//! words, per-class recall deltas, cost deltas; and the galleries "A right, B wrong" and "B
//! right, A wrong", whose tiles open both models' maps side by side in the Compare view.

use easel_core::metrics::Predictions;
use easel_core::metrics::versus::{Side, VersusReport, format_p};
use eframe::egui;

use super::dataset::{DatasetView, GALLERY_PAGE, Gallery};
use crate::command::{Command, DatasetCommand, Pick};
use crate::session::Session;
use crate::textures::picture_ui;

const BETTER: egui::Color32 = egui::Color32::from_rgb(40, 140, 60);
const WORSE: egui::Color32 = egui::Color32::from_rgb(200, 60, 40);

fn push(cmds: &mut Vec<Command>, c: DatasetCommand) {
    cmds.push(Command::Dataset(c));
}

pub fn ui(ui: &mut egui::Ui, view: &DatasetView, session: &Session, cmds: &mut Vec<Command>) {
    let v = &view.versus;
    let a_name = session.model.as_ref().map(|m| m.name.clone()).unwrap_or_else(|| "the open predictions".into());
    ui.horizontal_wrapped(|ui| {
        if ui.button("Second model…").on_hover_text("model B: evaluated on the open set and compared with A").clicked() {
            cmds.push(Command::Pick(Pick::SecondModel));
        }
        if ui.button("B's predictions CSV…").on_hover_text("model B's predictions of the same samples (joined by path)").clicked() {
            cmds.push(Command::Pick(Pick::VersusPredictions));
        }
        if let Some(b) = &session.second
            && ui.add_enabled(!v.job.is_running(), egui::Button::new(format!("Compare with {}", b.name))).clicked()
        {
            push(cmds, DatasetCommand::VersusSecondModel);
        }
        if v.report.is_some() && ui.button("Clear").clicked() {
            push(cmds, DatasetCommand::ClearVersus);
        }
    });
    if v.job.is_running() {
        ui.add(egui::ProgressBar::new(v.job.fraction().unwrap_or(0.0)).desired_width(240.0).text(format!("model B: {} images", v.job.progress_text())));
    }
    let (Some(r), Some(b), Some(a)) = (&v.report, &v.b, &view.predictions) else {
        if !v.job.is_running() {
            ui.label("Compare model A (these predictions) with a model B on the same samples.");
        }
        return;
    };
    ui.label(format!("A: {a_name}"));
    ui.label(format!("B: {}", v.b_name));
    table_ui(ui, r);
    ui.label(format!(
        "accuracy A {:.4} · B {:.4} · B − A {:+.4} (95 % bootstrap interval {:+.4} .. {:+.4})",
        r.accuracy_a, r.accuracy_b, r.accuracy_delta, r.delta_ci95[0], r.delta_ci95[1]
    ));
    let colour = if r.mcnemar_p >= 0.05 || r.a_only == r.b_only {
        ui.visuals().text_color()
    } else if r.b_only > r.a_only {
        BETTER
    } else {
        WORSE
    };
    ui.label(egui::RichText::new(&r.verdict).strong().color(colour)).on_hover_text(format!(
        "McNemar's exact test on the {} samples only one model gets right: p = {}",
        r.a_only + r.b_only,
        format_p(r.mcnemar_p)
    ));
    if let Some(c) = &r.cost {
        ui.label(format!(
            "cost of the most probable class: A {:.1}, B {:.1}, B − A {:+.1} ({:+.4} a sample)",
            c.total_a, c.total_b, c.total_delta, c.mean_delta
        ));
    }
    egui::CollapsingHeader::new("Recall by class, A and B").default_open(false).show(ui, |ui| per_class_ui(ui, r));
    for side in [Side::AOnly, Side::BOnly] {
        egui::CollapsingHeader::new(side.title()).default_open(true).show(ui, |ui| gallery_ui(ui, view.versus.gallery(side), side, a, b, cmds));
    }
}

/// The 2x2 agreement table.
fn table_ui(ui: &mut egui::Ui, r: &VersusReport) {
    egui::Grid::new("versus_table").striped(true).spacing([16.0, 4.0]).show(ui, |ui| {
        ui.label("");
        ui.strong("B right");
        ui.strong("B wrong");
        ui.end_row();
        ui.strong("A right");
        ui.label(format!("{}", r.both_right)).on_hover_text("both right");
        ui.label(format!("{}", r.a_only)).on_hover_text("A right, B wrong");
        ui.end_row();
        ui.strong("A wrong");
        ui.label(format!("{}", r.b_only)).on_hover_text("B right, A wrong");
        ui.label(format!("{}", r.both_wrong)).on_hover_text("both wrong");
        ui.end_row();
    });
}

fn per_class_ui(ui: &mut egui::Ui, r: &VersusReport) {
    egui::Grid::new("versus_per_class").striped(true).show(ui, |ui| {
        for h in ["class", "support", "recall A", "recall B", "B − A", "A only", "B only"] {
            ui.strong(h);
        }
        ui.end_row();
        for c in &r.per_class {
            ui.label(&c.class);
            ui.label(format!("{}", c.support));
            ui.label(format!("{:.3}", c.recall_a));
            ui.label(format!("{:.3}", c.recall_b));
            let colour = if c.delta > 0.0 {
                BETTER
            } else if c.delta < 0.0 {
                WORSE
            } else {
                ui.visuals().text_color()
            };
            ui.colored_label(colour, format!("{:+.3}", c.delta));
            ui.label(format!("{}", c.a_only));
            ui.label(format!("{}", c.b_only));
            ui.end_row();
        }
    });
}

fn gallery_ui(ui: &mut egui::Ui, g: &Gallery, side: Side, a: &Predictions, b: &Predictions, cmds: &mut Vec<Command>) {
    ui.label(&g.title);
    let pages = g.indices.len().div_ceil(GALLERY_PAGE).max(1);
    let page = g.page.min(pages - 1);
    if pages > 1 {
        ui.horizontal(|ui| {
            if ui.add_enabled(page > 0, egui::Button::new("< previous")).clicked() {
                push(cmds, DatasetCommand::VersusGalleryPage(side, page - 1));
            }
            ui.label(format!("page {} of {pages}", page + 1));
            if ui.add_enabled(page + 1 < pages, egui::Button::new("next >")).clicked() {
                push(cmds, DatasetCommand::VersusGalleryPage(side, page + 1));
            }
        });
    }
    let items: Vec<usize> = g.indices.iter().skip(page * GALLERY_PAGE).take(GALLERY_PAGE).copied().collect();
    let tile = 96.0f32;
    let columns = ((ui.available_width() / (tile + 8.0)).floor() as usize).max(1);
    let short = |s: &str| s.chars().take(12).collect::<String>();
    let mut open = None;
    egui::ScrollArea::vertical().id_salt(("versus_gallery", side)).max_height(320.0).auto_shrink([false, true]).show(ui, |ui| {
        egui::Grid::new(("versus_grid", side)).spacing([6.0, 6.0]).show(ui, |ui| {
            for (n, &i) in items.iter().enumerate() {
                ui.vertical(|ui| {
                    ui.set_width(tile);
                    let r = match g.thumbnails.get(&i) {
                        Some(t) => picture_ui(ui, t, 72.0, false).interact(egui::Sense::click()),
                        None => ui.add_sized([72.0, 72.0], egui::Button::new(format!("#{i}"))),
                    };
                    let label = format!("{} #{i}", side.title());
                    r.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &label));
                    let conf = |p: &Predictions| p.probs.as_ref().map(|ps| format!(" {:.0}%", ps[i][p.preds[i]] * 100.0)).unwrap_or_default();
                    let (truth, pa, pb) = (&a.classes[a.labels[i]], &a.classes[a.preds[i]], &b.classes[b.preds[i]]);
                    ui.small(format!("#{i} true {}", short(truth)));
                    ui.small(format!("A {}{}", short(pa), conf(a)));
                    ui.small(format!("B {}{}", short(pb), conf(b)));
                    if r.on_hover_text(format!("#{i}: true {truth}; A says {pa}, B says {pb}; click for both models' maps")).clicked() {
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
        push(cmds, DatasetCommand::OpenVersusSample(i));
    }
}
