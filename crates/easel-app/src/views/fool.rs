//! The Adversarial view's "Fool it" pane: pick a class, start from noise, grey or the image on
//! screen, and watch the model's confidence climb while an artificial image is searched for;
//! or make one for every class and see the gallery.

use easel_core::explain::fool::{FoolMethod, FoolParams, FoolStart, Regulariser};
use easel_jobs::JobSlot;
use easel_jobs::fool::{FoolOutput, FoolRequest, GalleryOutput};
use easel_jobs::worker::{Event, Request};
use eframe::egui;
use egui_plot::{Line, Plot, PlotPoints};
use serde::{Deserialize, Serialize};

use crate::command::{AttackCommand, Command};
use crate::ctx::Ctx;
use crate::session::Session;
use crate::textures::{Shown, picture_ui, show};

/// Where a search starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum StartChoice {
    #[default]
    Noise,
    Grey,
    ThisImage,
}

/// The pane's settings (persisted).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct FoolSettings {
    pub target: usize,
    pub start: StartChoice,
    pub method: FoolMethod,
    pub regularise: Regulariser,
}

impl Default for FoolSettings {
    fn default() -> Self {
        FoolSettings { target: 0, start: StartChoice::Noise, method: FoolMethod::Gradient, regularise: Regulariser::None }
    }
}

pub struct FoolShown {
    pub output: FoolOutput,
    pub shown: Shown,
}

pub struct GalleryShown {
    pub output: GalleryOutput,
    pub shown: Shown,
}

#[derive(Default)]
pub struct FoolView {
    pub slot: JobSlot<FoolShown>,
    /// The image as the search goes, and the target's probability per step.
    pub live: Option<Shown>,
    pub curve: Vec<[f64; 2]>,
    pub all: JobSlot<GalleryShown>,
    /// Classes finished in the running all-classes job: (class, probability).
    pub all_done: Vec<(String, f32)>,
}

impl FoolView {
    fn request(settings: &FoolSettings, ctx: &Ctx) -> Option<FoolRequest> {
        let model = ctx.session.model.as_ref()?;
        let start = match settings.start {
            StartChoice::Noise => FoolStart::Noise,
            StartChoice::Grey => FoolStart::Grey,
            StartChoice::ThisImage => FoolStart::Image(ctx.session.current.as_ref()?.image.clone()),
        };
        let mut params = FoolParams::new(settings.target.min(model.classes.len().saturating_sub(1)), settings.method, model.input.1.min(model.input.2));
        params.regularise = settings.regularise;
        Some(FoolRequest { start, params })
    }

    pub fn run_one(&mut self, settings: &FoolSettings, ctx: &mut Ctx) {
        let Some(request) = Self::request(settings, ctx) else { return ctx.notes.error("open a model (and, to start from this image, select one) first") };
        self.all.cancel();
        let ticket = self.slot.restart();
        self.curve.clear();
        self.live = None;
        ctx.send(Request::Fool { ticket, request: Box::new(request) });
    }

    pub fn run_all(&mut self, settings: &FoolSettings, ctx: &mut Ctx) {
        let Some(request) = Self::request(settings, ctx) else { return ctx.notes.error("open a model first") };
        let k = ctx.session.model.as_ref().map(|m| m.classes.len()).unwrap_or(0);
        // a gallery of every class of a 1000-class model takes hours: the first 16
        let classes: Vec<usize> = (0..k.min(16)).collect();
        self.slot.cancel();
        let ticket = self.all.restart();
        self.all_done.clear();
        ctx.send(Request::FoolAll { ticket, request: Box::new(request), classes });
    }

    pub fn cancel(&mut self) {
        self.slot.cancel();
        self.all.cancel();
    }

    pub fn clear(&mut self) {
        self.slot.clear();
        self.all.clear();
        self.live = None;
        self.curve.clear();
        self.all_done.clear();
    }

    pub fn on_event(&mut self, ev: Event, ctx: &mut Ctx) -> Result<(), Event> {
        match ev {
            Event::FoolStep { job, step, picture } if self.slot.owns(job) => {
                self.slot.progress(job, step.step, self.slot.counts().map(|c| c.1).unwrap_or(0).max(step.step));
                self.curve.push([step.step as f64, step.target_probability as f64]);
                if let Some(p) = picture {
                    show(ctx.egui, "fool-live", &p, &mut self.live);
                }
            }
            Event::Fooled { job, output } if self.slot.owns(job) => {
                let shown = Shown::new(ctx.egui, "fooled", &output.picture);
                self.curve = output.result.trajectory.iter().map(|s| [s.step as f64, s.target_probability as f64]).collect();
                self.slot.finish(job, FoolShown { output: *output, shown });
                ctx.announce("fooling image ready");
            }
            Event::FooledClass { job, done, total, output } if self.all.owns(job) => {
                self.all.progress(job, done, total);
                self.all_done.push((output.meta.target_class.clone(), output.meta.target_probability));
            }
            Event::FooledAll { job, output } if self.all.owns(job) => {
                let shown = Shown::new(ctx.egui, "fool-gallery", &output.picture);
                self.all.finish(job, GalleryShown { output: *output, shown });
                ctx.announce("fooling gallery ready");
            }
            Event::Cancelled { job } if self.slot.owns(job) || self.all.owns(job) => {
                self.slot.cancelled(job);
                self.all.cancelled(job);
            }
            Event::Failed { job: Some(job), message } if self.slot.owns(job) || self.all.owns(job) => {
                self.slot.fail(job, message.clone());
                self.all.fail(job, message.clone());
                ctx.notes.error(message);
            }
            other => return Err(other),
        }
        Ok(())
    }
}

pub fn ui(ui: &mut egui::Ui, view: &FoolView, settings: &mut FoolSettings, session: &Session, cmds: &mut Vec<Command>) {
    let Some(model) = &session.model else {
        ui.label("Open a model first.");
        return;
    };
    ui.label("An artificial image the model is sure belongs to a class (Nguyen, Yosinski & Clune 2015): it shows how little the model needs to be convinced.");
    ui.horizontal_wrapped(|ui| {
        settings.target = settings.target.min(model.classes.len().saturating_sub(1));
        egui::ComboBox::from_label("class").selected_text(model.class_name(settings.target)).show_ui(ui, |ui| {
            for (i, c) in model.classes.iter().enumerate() {
                ui.selectable_value(&mut settings.target, i, c);
            }
        });
        ui.label("start from");
        ui.selectable_value(&mut settings.start, StartChoice::Noise, "noise");
        ui.selectable_value(&mut settings.start, StartChoice::Grey, "grey");
        ui.selectable_value(&mut settings.start, StartChoice::ThisImage, "this image");
    });
    ui.horizontal_wrapped(|ui| {
        ui.radio_value(&mut settings.method, FoolMethod::Gradient, "gradient ascent");
        ui.radio_value(&mut settings.method, FoolMethod::Evolve, "evolution (no gradients)");
        if settings.method == FoolMethod::Gradient {
            egui::ComboBox::from_label("regularise").selected_text(format!("{:?}", settings.regularise)).show_ui(ui, |ui| {
                for r in [Regulariser::None, Regulariser::L2, Regulariser::Blur, Regulariser::Jitter] {
                    ui.selectable_value(&mut settings.regularise, r, format!("{r:?}"));
                }
            });
        }
    });
    let running = view.slot.is_running() || view.all.is_running();
    ui.horizontal(|ui| {
        if ui.add_enabled(!running, egui::Button::new("Fool it")).clicked() {
            cmds.push(Command::Attack(AttackCommand::Fool));
        }
        let all = if model.classes.len() > 16 { "First 16 classes" } else { "All classes" };
        if ui.add_enabled(!running, egui::Button::new(all)).on_hover_text("one fooling image per class, and a gallery").clicked() {
            cmds.push(Command::Attack(AttackCommand::FoolAll));
        }
        if running && ui.button("Cancel").clicked() {
            cmds.push(Command::Attack(AttackCommand::CancelFool));
        }
    });
    if view.all.is_running() {
        let text = format!("classes {}", view.all.progress_text());
        ui.add(egui::ProgressBar::new(view.all.fraction().unwrap_or(0.0)).desired_width(300.0).text(text));
        for (c, p) in view.all_done.iter().rev().take(3) {
            ui.small(format!("{c}: {:.1} %", p * 100.0));
        }
    }
    egui::ScrollArea::vertical().id_salt("fool").auto_shrink([false, false]).show(ui, |ui| {
        if let Some(g) = view.all.last().filter(|_| !view.all.is_running()) {
            let reached = g.output.items.iter().filter(|i| i.meta.reached).count();
            ui.label(format!("{reached} of {} classes at 99 % or more:", g.output.items.len()));
            picture_ui(ui, &g.shown, ui.available_width().min(640.0), false);
            return;
        }
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| {
                let w = 260.0;
                match (&view.live, view.slot.last()) {
                    (Some(live), _) if view.slot.is_running() => {
                        picture_ui(ui, live, w, false);
                    }
                    (_, Some(done)) => {
                        picture_ui(ui, &done.shown, w, false);
                        let m = &done.output.meta;
                        ui.label(format!("“{}” {:.2} % (from {:.2} %)", m.target_class, m.target_probability * 100.0, m.start_probability * 100.0));
                        ui.label(format!("top class: {} {:.2} % · {} steps · {:.1} s", m.top1_class, m.top1_probability * 100.0, m.steps, m.seconds));
                    }
                    _ => {
                        ui.label(if view.slot.is_running() { "starting…" } else { "Press Fool it." });
                    }
                }
            });
            if !view.curve.is_empty() {
                ui.vertical(|ui| {
                    ui.label(format!("p({}) per step", model.class_name(settings.target)));
                    Plot::new("fool_curve").width(300.0).height(200.0).include_y(0.0).include_y(1.0).allow_zoom(false).allow_drag(false).show(ui, |p| {
                        p.line(Line::new("confidence", PlotPoints::from(view.curve.clone())));
                    });
                });
            }
        });
    });
}
