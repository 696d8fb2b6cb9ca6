//! The Compare view's "A and B side by side": the open model's (A) and the second model's (B)
//! predictions and maps of the image on screen, one method, one target class, one colour
//! scale ([`easel_jobs::pair::run_pair`] on the worker, as `easel explain --model A --model
//! B`). A tile of the Dataset view's versus galleries opens it on its sample.

use easel_core::explain::sanity::SanityMode;
use easel_core::explain::{Method, MethodKind};
use easel_core::render::RenderOptions;
use easel_jobs::JobSlot;
use easel_jobs::explain::{ExplainOutput, ExplainRequest};
use easel_jobs::pair::PairOutput;
use easel_jobs::worker::{Event, Request};
use eframe::egui;

use super::explain::ExplainView;
use crate::command::{Command, CompareCommand, Pick};
use crate::ctx::Ctx;
use crate::session::Session;
use crate::state::ExplainSettings;
use crate::textures::{Shown, picture_ui};

pub struct PairShown {
    pub output: PairOutput,
    pub a: Shown,
    pub b: Shown,
    /// The image generation it was computed for.
    pub generation: u64,
}

#[derive(Default)]
pub struct PairPanel {
    pub job: JobSlot<PairShown>,
    /// The Compare view shows the pair (instead of its grid).
    pub active: bool,
    /// Run once image `.0` is on screen, explaining class `.1` (`None`: A's prediction).
    pending: Option<(usize, Option<usize>)>,
    generation: u64,
}

impl PairPanel {
    pub fn clear(&mut self) {
        self.job.clear();
        self.pending = None;
    }

    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Side by side for image `index` once it is on screen.
    pub fn request(&mut self, index: usize, target: Option<usize>) {
        self.active = true;
        self.pending = Some((index, target));
    }

    /// The maps of the pair for the image on screen.
    pub fn run(&mut self, target: Option<usize>, explain: &ExplainSettings, ctx: &mut Ctx) {
        self.active = true;
        let (Some(cur), Some(model)) = (&ctx.session.current, &ctx.session.model) else { return };
        if ctx.session.second.is_none() {
            self.job.clear();
            return ctx.notes.error("open a second model (B) to see both models' maps");
        }
        let mut method = ExplainView::method(explain, model);
        if method.is_attack() {
            method = Method::defaults(MethodKind::Gradcam, model.input.1, model.input.2);
        }
        let mut request = ExplainRequest::new(method.clone());
        request.target = target;
        request.render = RenderOptions { colour_bar: true, ..ExplainView::render_options(explain, &method) };
        request.sanity = SanityMode::None;
        self.generation = cur.generation;
        let ticket = self.job.restart();
        ctx.send(Request::ExplainPair { ticket, image: cur.image.clone(), image_name: cur.name.clone(), request: Box::new(request) });
    }

    /// An image is on screen: run a pair that waited for it. Whether it did.
    pub fn image_ready(&mut self, explain: &ExplainSettings, ctx: &mut Ctx) -> bool {
        match (self.pending, &ctx.session.current) {
            (Some((index, target)), Some(cur)) if cur.index == index => {
                self.pending = None;
                self.run(target, explain, ctx);
                true
            }
            _ => false,
        }
    }

    /// The pair on screen, if it belongs to the image on screen.
    pub fn shown(&self, generation: u64) -> Option<&PairShown> {
        self.job.last().filter(|p| p.generation == generation)
    }

    pub fn on_event(&mut self, ev: Event, ctx: &mut Ctx) -> Result<(), Event> {
        match ev {
            Event::ExplainedPair { job, output } if self.job.owns(job) => {
                let a = Shown::new(ctx.egui, &format!("pair-a{job}"), &output.a.picture);
                let b = Shown::new(ctx.egui, &format!("pair-b{job}"), &output.b.picture);
                self.job.finish(job, PairShown { output: *output, a, b, generation: self.generation });
                ctx.announce("pair ready");
            }
            Event::Progress { job, done, total, .. } if self.job.owns(job) => {
                self.job.progress(job, done, total);
            }
            Event::Cancelled { job } if self.job.owns(job) => {
                self.job.cancelled(job);
            }
            Event::Failed { job: Some(job), message } if self.job.owns(job) => {
                self.job.fail(job, message);
            }
            other => return Err(other),
        }
        Ok(())
    }
}

fn side_ui(ui: &mut egui::Ui, which: &str, o: &ExplainOutput, shown: &Shown, label: Option<&str>, width: f32) {
    ui.vertical(|ui| {
        ui.set_width(width);
        ui.strong(format!("{which} · {}", o.meta.model));
        for (n, t) in o.top.iter().take(3).enumerate() {
            let text = format!("{} {:.1} %", t.class, t.probability * 100.0);
            if n == 0 {
                let verdict = match label {
                    Some(l) if l == t.class => " (right)",
                    Some(_) => " (wrong)",
                    None => "",
                };
                ui.label(egui::RichText::new(format!("{text}{verdict}")).strong());
            } else {
                ui.label(text);
            }
        }
        picture_ui(ui, shown, width - 10.0, false);
    });
}

pub fn ui(ui: &mut egui::Ui, panel: &PairPanel, session: &Session, cmds: &mut Vec<Command>) {
    ui.horizontal_wrapped(|ui| {
        match (&session.model, &session.second) {
            (Some(a), Some(b)) => ui.label(format!("A: {} · B: {}", a.name, b.name)),
            _ => ui.label("Open a second model (B) to see both models' maps of this image."),
        };
        if ui.button("Second model…").clicked() {
            cmds.push(Command::Pick(Pick::SecondModel));
        }
        if panel.job.is_running() && ui.button("Cancel").clicked() {
            cmds.push(Command::Compare(CompareCommand::Cancel));
        }
    });
    let generation = session.generation();
    if let Some(e) = panel.job.error() {
        ui.colored_label(egui::Color32::from_rgb(200, 60, 40), e);
    }
    if panel.job.is_running() || panel.is_pending() {
        ui.label(format!("computing both maps… {}", panel.job.progress_text()));
    }
    let Some(p) = panel.shown(generation) else { return };
    let o = &p.output;
    ui.label(format!("{} of class {} for both models · one scale up to {:.4}", o.a.explanation.method.title(), o.target_class, o.scale));
    let label = session.current.as_ref().and_then(|c| c.label.clone());
    let width = ((ui.available_width() - 24.0) / 2.0).clamp(160.0, 420.0);
    egui::ScrollArea::vertical().id_salt("pair").auto_shrink([false, false]).show(ui, |ui| {
        ui.horizontal_top(|ui| {
            side_ui(ui, "A", &o.a, &p.a, label.as_deref(), width);
            ui.separator();
            side_ui(ui, "B", &o.b, &p.b, label.as_deref(), width);
        });
    });
}
