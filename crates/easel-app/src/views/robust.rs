//! The Adversarial view's "How robust?" pane: accuracy against the attack budget over the open
//! labelled set, and the images that flip at the smallest budget (each one click from its
//! explanation).

use std::collections::HashMap;

use easel_core::explain::robustness::{AttackKind, RobustnessParams};
use easel_jobs::JobSlot;
use easel_jobs::robustness::{RobustnessOutput, RobustnessRequest, parse_epsilons};
use easel_jobs::worker::{Event, ImageRef, Request};
use eframe::egui;
use egui_plot::{Line, Plot, PlotPoints, Points};
use serde::{Deserialize, Serialize};

use crate::command::{AttackCommand, Command};
use crate::ctx::Ctx;
use crate::session::Session;
use crate::textures::{Shown, picture_ui};

/// The pane's settings (persisted).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RobustSettings {
    pub attack: AttackKind,
    pub epsilons: String,
    pub limit: usize,
    pub steps: usize,
}

impl Default for RobustSettings {
    fn default() -> Self {
        RobustSettings { attack: AttackKind::Fgsm, epsilons: "0,1/255,2/255,4/255,8/255".into(), limit: 500, steps: 10 }
    }
}

#[derive(Default)]
pub struct RobustView {
    pub slot: JobSlot<RobustnessOutput>,
    pub thumbnails: HashMap<usize, Shown>,
    thumbs_job: JobSlot<()>,
}

impl RobustView {
    pub fn run(&mut self, settings: &RobustSettings, ctx: &mut Ctx) {
        let epsilons = match parse_epsilons(&settings.epsilons) {
            Ok(e) => e,
            Err(e) => return ctx.notes.error(e),
        };
        let params = RobustnessParams { attack: settings.attack, epsilons, steps: settings.steps, batch_size: 64 };
        if let Err(e) = params.validate() {
            return ctx.notes.error(e);
        }
        if !ctx.session.images.is_labelled() {
            return ctx.notes.error("open a labelled set first (the Fashion-MNIST demo, an IDX set, or a folder with one sub-folder per class)");
        }
        let ticket = self.slot.restart();
        self.thumbnails.clear();
        ctx.send(Request::Robustness { ticket, request: Box::new(RobustnessRequest { params, limit: Some(settings.limit.max(1)) }) });
    }

    pub fn clear(&mut self) {
        self.slot.clear();
        self.thumbs_job.clear();
        self.thumbnails.clear();
    }

    pub fn on_event(&mut self, ev: Event, ctx: &mut Ctx) -> Result<(), Event> {
        match ev {
            Event::Progress { job, done, total, .. } if self.slot.owns(job) => {
                self.slot.progress(job, done, total);
            }
            Event::Robust { job, output } if self.slot.owns(job) => {
                let items: Vec<(usize, ImageRef)> = output.most_fragile.iter().map(|(i, _, _)| (*i, ImageRef::Set(*i))).collect();
                self.slot.finish(job, *output);
                if !items.is_empty() {
                    let ticket = self.thumbs_job.restart();
                    ctx.send(Request::Thumbnails { ticket, items });
                }
                ctx.announce("robustness ready");
            }
            Event::Thumbnails { job, pictures } if self.thumbs_job.owns(job) => {
                self.thumbs_job.finish(job, ());
                for (i, p) in pictures {
                    self.thumbnails.insert(i, Shown::new(ctx.egui, &format!("fragile{i}"), &p));
                }
            }
            Event::Cancelled { job } if self.slot.owns(job) => {
                self.slot.cancelled(job);
            }
            Event::Failed { job: Some(job), message } if self.slot.owns(job) => {
                self.slot.fail(job, message.clone());
                ctx.notes.error(message);
            }
            other => return Err(other),
        }
        Ok(())
    }
}

pub fn ui(ui: &mut egui::Ui, view: &RobustView, settings: &mut RobustSettings, session: &Session, cmds: &mut Vec<Command>) {
    ui.label("Accuracy over the open labelled set as the attack budget grows: how much noise it takes to change the model's answers.");
    ui.horizontal_wrapped(|ui| {
        ui.radio_value(&mut settings.attack, AttackKind::Fgsm, "FGSM");
        ui.radio_value(&mut settings.attack, AttackKind::Pgd, "PGD");
        if settings.attack == AttackKind::Pgd {
            ui.add(egui::Slider::new(&mut settings.steps, 1..=50).text("steps"));
        }
        ui.label("epsilons");
        ui.add(egui::TextEdit::singleline(&mut settings.epsilons).desired_width(180.0));
        ui.add(egui::Slider::new(&mut settings.limit, 50..=10_000).logarithmic(true).text("images"));
    });
    ui.horizontal(|ui| {
        let ok = session.images.is_labelled();
        if ui.add_enabled(ok && !view.slot.is_running(), egui::Button::new("Measure")).on_disabled_hover_text("open a labelled set first").clicked() {
            cmds.push(Command::Attack(AttackCommand::Robust));
        }
        if view.slot.is_running() {
            ui.add(egui::ProgressBar::new(view.slot.fraction().unwrap_or(0.0)).desired_width(240.0).text(format!("{} images", view.slot.progress_text())));
            if ui.button("Cancel").clicked() {
                cmds.push(Command::Attack(AttackCommand::CancelRobust));
            }
        }
    });
    let Some(out) = view.slot.last() else {
        if !session.images.is_labelled() {
            ui.label("Open a labelled set (the Fashion-MNIST demo) to measure.");
        }
        return;
    };
    let r = &out.report;
    egui::ScrollArea::vertical().id_salt("robust").auto_shrink([false, false]).show(ui, |ui| {
        ui.label(format!("{} images, {}: clean accuracy {:.4}", r.images, r.attack.title(), r.clean_accuracy));
        let pts: Vec<[f64; 2]> = r.curve.iter().map(|p| [p.epsilon as f64 * 255.0, p.accuracy]).collect();
        Plot::new("robust_curve")
            .height(200.0)
            .include_y(0.0)
            .include_y(1.0)
            .x_axis_label("epsilon (of 255 levels)")
            .y_axis_label("accuracy")
            .allow_zoom(false)
            .allow_drag(false)
            .show(ui, |p| {
                p.line(Line::new("accuracy", PlotPoints::from(pts.clone())));
                p.points(Points::new("", PlotPoints::from(pts)).radius(3.0));
            });
        egui::Grid::new("robust_table").striped(true).show(ui, |ui| {
            for h in ["epsilon", "accuracy", "flipped", "confidence"] {
                ui.strong(h);
            }
            ui.end_row();
            for p in &r.curve {
                ui.label(format!("{:.1}/255", p.epsilon * 255.0));
                ui.label(format!("{:.4}", p.accuracy));
                ui.label(format!("{}", p.flipped));
                ui.label(format!("{:.3}", p.mean_confidence));
                ui.end_row();
            }
        });
        if !out.most_fragile.is_empty() {
            ui.label("The images that flip at the smallest budget (click one to explain it):");
            ui.horizontal_wrapped(|ui| {
                for (i, _, eps) in &out.most_fragile {
                    ui.vertical(|ui| {
                        let resp = match view.thumbnails.get(i) {
                            Some(t) => picture_ui(ui, t, 72.0, false).interact(egui::Sense::click()),
                            None => ui.add_sized([72.0, 72.0], egui::Button::new(format!("#{i}"))),
                        };
                        ui.small(format!("#{i} at {:.1}/255", eps * 255.0));
                        if resp.on_hover_text("open in the Explain view").clicked() {
                            cmds.push(Command::Attack(AttackCommand::OpenImage(*i)));
                        }
                    });
                }
            });
        }
    });
}
