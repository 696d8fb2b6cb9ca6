//! The Adversarial view: can the model be tricked? Three panes: "Attack this image" (the panda
//! that becomes a gibbon: an epsilon slider, FGSM or PGD, the original, the amplified
//! perturbation and the adversarial image with the top classes before and after; PGD shows its
//! progress, the time left and Cancel), "Fool it" ([`super::fool`]) and "How robust?"
//! ([`super::robust`]).

use std::time::Instant;

use easel_core::explain::sanity::SanityMode;
use easel_core::predict::ClassScore;
use easel_jobs::JobSlot;
use easel_jobs::explain::{ExplainOutput, ExplainRequest};
use easel_jobs::settings::AttackSettings;
use easel_jobs::worker::{Event, Request};
use eframe::egui;

use super::explain::DEBOUNCE;
use super::fool::FoolView;
use super::robust::RobustView;
use crate::command::{AttackCommand, Command};
use crate::ctx::Ctx;
use crate::session::Session;
use crate::state::{AdvPane, AdversarialSettings, Tab};
use crate::textures::{Shown, picture_ui};

/// An attack on screen and the image it belongs to.
pub struct AttackShown {
    pub output: ExplainOutput,
    pub adversarial: Shown,
    pub perturbation: Shown,
    pub generation: u64,
}

#[derive(Default)]
pub struct AdversarialView {
    pub slot: JobSlot<AttackShown>,
    job_generation: u64,
    auto_at: Option<Instant>,
    pub fool: FoolView,
    pub robust: RobustView,
    /// Run this pane once the first image is ready (`easel gui --pane`).
    pub run_pane_later: Option<crate::state::AdvPane>,
}

impl AdversarialView {
    pub fn shown(&self, generation: u64) -> Option<&AttackShown> {
        self.slot.last().filter(|a| a.generation == generation)
    }

    pub fn start(&mut self, settings: &AttackSettings, ctx: &mut Ctx) {
        let Some(cur) = &ctx.session.current else { return };
        let k = ctx.session.model.as_ref().map(|m| m.classes.len()).unwrap_or(0);
        let mut s = settings.clone();
        s.target = s.target.filter(|&t| t < k);
        let mut request = ExplainRequest::new(s.method());
        request.sanity = SanityMode::None;
        let ticket = self.slot.restart();
        self.job_generation = cur.generation;
        self.auto_at = None;
        ctx.send(Request::Explain { ticket, image: cur.image.clone(), image_name: cur.name.clone(), request: Box::new(request) });
    }

    pub fn leave_image(&mut self) {
        self.slot.cancel();
        self.auto_at = None;
    }

    /// Another model: nothing of the old one stays.
    pub fn clear(&mut self) {
        self.slot.clear();
        self.auto_at = None;
        self.fool.clear();
        self.robust.clear();
    }

    /// Another image set: the robustness curve was of the old one.
    pub fn images_changed(&mut self) {
        self.robust.clear();
    }

    /// The image is ready: attack it after a short pause (while this view is shown).
    pub fn image_ready(&mut self, ctx: &mut Ctx) {
        self.auto_at = Some(Instant::now() + DEBOUNCE);
        ctx.egui.request_repaint_after(DEBOUNCE);
    }

    /// Entering the view: attack the image on screen if it has no attack yet.
    pub fn enter(&mut self, settings: &AdversarialSettings, ctx: &mut Ctx) {
        if settings.pane == AdvPane::Attack && self.shown(ctx.session.generation()).is_none() && !self.slot.is_running() {
            self.start(&settings.attack, ctx);
        }
    }

    pub fn logic(&mut self, settings: &AdversarialSettings, ctx: &mut Ctx) {
        if let Some(at) = self.auto_at {
            let now = Instant::now();
            if settings.pane != AdvPane::Attack {
                self.auto_at = None;
            } else if now >= at {
                self.start(&settings.attack, ctx);
            } else {
                ctx.egui.request_repaint_after(at - now);
            }
        }
    }

    pub fn run(&mut self, cmd: AttackCommand, settings: &mut AdversarialSettings, ctx: &mut Ctx) {
        match cmd {
            AttackCommand::Run => self.start(&settings.attack, ctx),
            AttackCommand::Cancel => self.slot.cancel(),
            AttackCommand::Fool => self.fool.run_one(&settings.fool, ctx),
            AttackCommand::FoolAll => self.fool.run_all(&settings.fool, ctx),
            AttackCommand::CancelFool => self.fool.cancel(),
            AttackCommand::Robust => self.robust.run(&settings.robust, ctx),
            AttackCommand::CancelRobust => self.robust.slot.cancel(),
            AttackCommand::OpenImage(i) => {
                ctx.commands.push(Command::SetTab(Tab::Explain));
                ctx.commands.push(Command::SelectImage(i));
            }
        }
    }

    pub fn on_event(&mut self, ev: Event, ctx: &mut Ctx) -> Result<(), Event> {
        let ev = match self.fool.on_event(ev, ctx) {
            Ok(()) => return Ok(()),
            Err(ev) => ev,
        };
        let ev = match self.robust.on_event(ev, ctx) {
            Ok(()) => return Ok(()),
            Err(ev) => ev,
        };
        match ev {
            Event::Progress { job, done, total, .. } if self.slot.owns(job) => {
                self.slot.progress(job, done, total);
            }
            Event::Explained { job, output } if self.slot.owns(job) => {
                let Some(p) = &output.attack else { return Ok(()) };
                let adversarial = Shown::new(ctx.egui, "adv", &p.adversarial);
                let perturbation = Shown::new(ctx.egui, "pert", &p.perturbation);
                self.slot.finish(job, AttackShown { output: *output, adversarial, perturbation, generation: self.job_generation });
                ctx.announce("attack ready");
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

pub fn ui(ui: &mut egui::Ui, view: &AdversarialView, settings: &mut AdversarialSettings, session: &Session, cmds: &mut Vec<Command>) {
    ui.horizontal(|ui| {
        for (pane, title) in [(AdvPane::Attack, "Attack this image"), (AdvPane::Fool, "Fool it"), (AdvPane::Robust, "How robust?")] {
            if ui.selectable_label(settings.pane == pane, title).clicked() && settings.pane != pane {
                settings.pane = pane;
                if pane == AdvPane::Attack && view.shown(session.generation()).is_none() {
                    cmds.push(Command::Attack(AttackCommand::Run));
                }
            }
        }
    });
    ui.separator();
    match settings.pane {
        AdvPane::Attack => attack_ui(ui, view, &mut settings.attack, session, cmds),
        AdvPane::Fool => super::fool::ui(ui, &view.fool, &mut settings.fool, session, cmds),
        AdvPane::Robust => super::robust::ui(ui, &view.robust, &mut settings.robust, session, cmds),
    }
}

fn attack_ui(ui: &mut egui::Ui, view: &AdversarialView, settings: &mut AttackSettings, session: &Session, cmds: &mut Vec<Command>) {
    let mut rerun = false;
    ui.horizontal_wrapped(|ui| {
        rerun |= ui.radio_value(&mut settings.pgd, false, "FGSM (one step)").changed();
        rerun |= ui.radio_value(&mut settings.pgd, true, "PGD (iterated)").changed();
        ui.separator();
        let r = ui.add(egui::Slider::new(&mut settings.epsilon_levels, 0.5..=16.0).step_by(0.5).text("epsilon (of 255 levels)"));
        rerun |= (r.changed() && !r.dragged()) || r.drag_stopped();
        if settings.pgd {
            let r = ui.add(egui::Slider::new(&mut settings.steps, 1..=50).text("steps"));
            rerun |= (r.changed() && !r.dragged()) || r.drag_stopped();
        }
        let classes = session.model.as_ref().map(|m| m.classes.clone()).unwrap_or_default();
        let current = settings.target.and_then(|t| classes.get(t).cloned()).unwrap_or_else(|| "none (untargeted)".into());
        egui::ComboBox::from_label("push towards").selected_text(current).show_ui(ui, |ui| {
            rerun |= ui.selectable_value(&mut settings.target, None, "none (untargeted)").clicked();
            for (i, c) in classes.iter().enumerate() {
                rerun |= ui.selectable_value(&mut settings.target, Some(i), c).clicked();
            }
        });
    });
    if rerun {
        cmds.push(Command::Attack(AttackCommand::Run));
    }
    ui.separator();
    let Some(cur) = &session.current else {
        ui.label(if session.predict_job.is_running() { "loading the image…" } else { "Select an image." });
        return;
    };
    if view.slot.is_running() {
        ui.horizontal(|ui| {
            ui.add(egui::ProgressBar::new(view.slot.fraction().unwrap_or(0.0)).desired_width(300.0).text(format!("attacking… {}", view.slot.progress_text())));
            if ui.button("Cancel").clicked() {
                cmds.push(Command::Attack(AttackCommand::Cancel));
            }
        });
    }
    let shown = view.shown(cur.generation);
    let width = ((ui.available_width() - 40.0) / 3.0).clamp(120.0, 300.0);
    egui::ScrollArea::vertical().id_salt("adversarial").auto_shrink([false, false]).show(ui, |ui| {
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| {
                ui.set_width(width);
                ui.heading("Original");
                picture_ui(ui, &cur.picture, width, false);
                ui.label(&cur.name);
                if let Some(a) = shown.and_then(|a| a.output.explanation.adversarial.as_ref()) {
                    top_ui(ui, &a.top_before);
                }
            });
            if let Some(a) = shown {
                let Some(r) = &a.output.explanation.adversarial else { return };
                let dim = view.slot.is_running();
                ui.vertical(|ui| {
                    ui.set_width(width);
                    ui.heading("Perturbation (amplified)");
                    picture_ui(ui, &a.perturbation, width, dim);
                    ui.label(format!("largest change: {:.1} of 255 levels", r.linf * 255.0));
                });
                ui.vertical(|ui| {
                    ui.set_width(width);
                    ui.heading("Adversarial");
                    picture_ui(ui, &a.adversarial, width, dim);
                    top_ui(ui, &r.top_after);
                    if r.changed_top1 {
                        ui.colored_label(egui::Color32::from_rgb(200, 60, 40), format!("“{}” became “{}”", r.top_before[0].class, r.top_after[0].class));
                    } else {
                        ui.label("the top class held");
                    }
                });
            } else if !view.slot.is_running()
                && let Some(e) = view.slot.error()
            {
                ui.colored_label(egui::Color32::from_rgb(200, 60, 40), e);
            }
        });
    });
}

fn top_ui(ui: &mut egui::Ui, top: &[ClassScore]) {
    for s in top.iter().take(5) {
        ui.label(format!("{:>5.1}%  {}", s.probability * 100.0, s.class));
    }
}
