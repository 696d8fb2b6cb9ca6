//! The Compare view: methods x classes for one image (predicted next to true or runner-up), or
//! one method across several images, optionally on one colour scale per method; or model A
//! and model B side by side ([`super::pair`]).

use std::time::Instant;

use easel_core::explain::sanity::SanityMode;
use easel_core::explain::{Method, MethodKind};
use easel_core::imaging::PreparedImage;
use easel_core::render::{RenderOptions, Scale};
use easel_jobs::explain::{ExplainOutput, ExplainRequest};
use easel_jobs::worker::{Event, Request};
use easel_jobs::{JobId, JobSlot, Ticket};
use eframe::egui;

use super::explain::{DEBOUNCE, ExplainView};
use super::pair::{self, PairPanel};
use crate::command::{Command, CompareCommand};
use crate::ctx::Ctx;
use crate::session::Session;
use crate::state::{CompareSettings, ExplainSettings};
use crate::textures::{Shown, picture_ui, update};

pub struct CellMap {
    pub output: ExplainOutput,
    pub shown: Shown,
}

/// One cell of the grid.
pub struct CompareCell {
    pub title: String,
    pub method: Method,
    pub target: Option<usize>,
    image: Option<PreparedImage>,
    image_name: String,
    /// Across images: the cell's image is being predicted first.
    predict: JobSlot<()>,
    pub map: JobSlot<CellMap>,
    render_job: Option<JobId>,
    render: RenderOptions,
}

#[derive(Default)]
pub struct CompareView {
    pub cells: Vec<CompareCell>,
    /// The image generation the grid was made for (methods x classes).
    pub generation: u64,
    auto_at: Option<Instant>,
    /// Model A and model B side by side.
    pub pair: PairPanel,
}

impl CompareView {
    pub fn done(&self) -> usize {
        self.cells.iter().filter(|c| c.map.last().is_some()).count()
    }

    pub fn is_running(&self) -> bool {
        self.cells.iter().any(|c| c.map.is_running() || c.predict.is_running())
    }

    pub fn clear(&mut self) {
        for c in &mut self.cells {
            c.map.clear();
            c.predict.clear();
        }
        self.cells.clear();
        self.auto_at = None;
        self.pair.clear();
    }

    pub fn image_ready(&mut self, explain: &ExplainSettings, ctx: &mut Ctx) {
        if self.pair.image_ready(explain, ctx) {
            return;
        }
        self.auto_at = Some(Instant::now() + DEBOUNCE);
        ctx.egui.request_repaint_after(DEBOUNCE);
    }

    /// Entering the view: build the grid for the image on screen if it has none.
    pub fn enter(&mut self, settings: &CompareSettings, explain: &ExplainSettings, ctx: &mut Ctx) {
        if self.pair.active {
            if !self.pair.is_pending() && !self.pair.job.is_running() && self.pair.shown(ctx.session.generation()).is_none() {
                self.pair.run(None, explain, ctx);
            }
            return;
        }
        if self.cells.is_empty() || (self.generation != ctx.session.generation() && !self.is_running()) {
            self.methods_by_classes(settings, explain, ctx);
        }
    }

    pub fn logic(&mut self, settings: &CompareSettings, explain: &ExplainSettings, ctx: &mut Ctx) {
        if let Some(at) = self.auto_at {
            let now = Instant::now();
            if now >= at {
                self.auto_at = None;
                if self.pair.active {
                    self.pair.run(None, explain, ctx);
                } else {
                    self.methods_by_classes(settings, explain, ctx);
                }
            } else {
                ctx.egui.request_repaint_after(at - now);
            }
        }
    }

    fn method_of(kind: MethodKind, explain: &ExplainSettings, input: (usize, usize, usize)) -> Method {
        explain.methods.get(&kind).cloned().unwrap_or_else(|| Method::defaults(kind, input.1, input.2))
    }

    /// Methods x (predicted class, true class or runner-up) for the current image.
    fn methods_by_classes(&mut self, settings: &CompareSettings, explain: &ExplainSettings, ctx: &mut Ctx) {
        self.clear();
        let (Some(cur), Some(model)) = (&ctx.session.current, &ctx.session.model) else { return };
        self.generation = cur.generation;
        let predicted = cur.predicted();
        let truth = cur.label.as_ref().and_then(|l| model.classes.iter().position(|c| c == l));
        let second = match truth {
            Some(t) if Some(t) != predicted => Some((t, "true")),
            _ => cur.top.get(1).map(|t| (t.class_index, "runner-up")),
        };
        for &kind in settings.methods.iter().filter(|k| !k.is_attack()) {
            let method = Self::method_of(kind, explain, model.input);
            for (class, why) in predicted.map(|p| (p, "predicted")).into_iter().chain(second) {
                let title = format!("{} · {why} {}", method.title(), model.class_name(class));
                self.push_cell(title, method.clone(), Some(class), Some(cur.image.clone()), cur.name.clone(), explain, ctx);
            }
        }
    }

    /// The Explain view's method on the next images, one scale.
    fn across_images(&mut self, settings: &CompareSettings, explain: &ExplainSettings, ctx: &mut Ctx) {
        self.clear();
        let Some(model) = &ctx.session.model else { return };
        let method = ExplainView::method(explain, model);
        if method.is_attack() {
            return;
        }
        self.generation = ctx.session.generation();
        let start = ctx.session.selected;
        let n = settings.images.max(1);
        for i in (start..ctx.session.images.len()).take(n) {
            let name = ctx.session.name_of(i);
            let mut cell = CompareCell {
                title: format!("{} · {name}", method.title()),
                method: method.clone(),
                target: None,
                image: None,
                image_name: name,
                predict: JobSlot::default(),
                map: JobSlot::default(),
                render_job: None,
                render: ExplainView::render_options(explain, &method),
            };
            let ticket = cell.predict.restart();
            let source = ctx.session.images.entries[i].source.clone();
            self.cells.push(cell);
            ctx.send(Request::Predict { ticket, image: source });
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push_cell(
        &mut self,
        title: String,
        method: Method,
        target: Option<usize>,
        image: Option<PreparedImage>,
        image_name: String,
        explain: &ExplainSettings,
        ctx: &mut Ctx,
    ) {
        let render = RenderOptions { colour_bar: true, ..ExplainView::render_options(explain, &method) };
        let mut cell = CompareCell { title, method, target, image, image_name, predict: JobSlot::default(), map: JobSlot::default(), render_job: None, render };
        Self::start_cell(&mut cell, ctx);
        self.cells.push(cell);
    }

    fn start_cell(cell: &mut CompareCell, ctx: &mut Ctx) {
        let Some(image) = cell.image.clone() else { return };
        let mut request = ExplainRequest::new(cell.method.clone());
        request.target = cell.target;
        request.render = cell.render.clone();
        request.sanity = SanityMode::None;
        let ticket = cell.map.restart();
        ctx.send(Request::Explain { ticket, image, image_name: cell.image_name.clone(), request: Box::new(request) });
    }

    pub fn run(&mut self, cmd: CompareCommand, settings: &CompareSettings, explain: &ExplainSettings, ctx: &mut Ctx) {
        match cmd {
            CompareCommand::MethodsByClasses => {
                self.pair.active = false;
                self.methods_by_classes(settings, explain, ctx)
            }
            CompareCommand::AcrossImages => {
                self.pair.active = false;
                self.across_images(settings, explain, ctx)
            }
            CompareCommand::SideBySide => self.pair.run(None, explain, ctx),
            CompareCommand::SideBySideOf { index, target } => self.pair.request(index, target),
            CompareCommand::Rerender => self.rescale(settings, explain, ctx),
            CompareCommand::Cancel => {
                self.pair.job.cancel();
                for c in &mut self.cells {
                    c.map.cancel();
                    c.predict.cancel();
                }
            }
        }
    }

    /// With a shared scale, each method's cells are re-rendered at that method's largest scale
    /// (maps of different methods have different units, so each keeps its own).
    fn rescale(&mut self, settings: &CompareSettings, explain: &ExplainSettings, ctx: &mut Ctx) {
        let scales: Vec<(MethodKind, f32)> = self.cells.iter().filter_map(|c| c.map.last().map(|m| (c.method.kind(), m.output.scale))).collect();
        for cell in &mut self.cells {
            let Some(m) = cell.map.last() else { continue };
            let mut opts = RenderOptions { colour_bar: true, ..ExplainView::render_options(explain, &cell.method) };
            let max = scales.iter().filter(|(k, _)| *k == cell.method.kind()).map(|(_, s)| *s).fold(0.0f32, f32::max);
            if settings.shared_scale && max > 0.0 {
                opts.scale = Scale::Fixed(max);
            }
            let Some(image) = &cell.image else { continue };
            let ticket = Ticket::detached();
            cell.render_job = Some(ticket.id);
            let req = Request::Render { ticket, map: m.output.explanation.map.clone(), image: image.clone(), opts };
            ctx.send(req);
        }
    }

    pub fn on_event(&mut self, ev: Event, settings: &CompareSettings, explain: &ExplainSettings, ctx: &mut Ctx) -> Result<(), Event> {
        let ev = match self.pair.on_event(ev, ctx) {
            Ok(()) => return Ok(()),
            Err(ev) => ev,
        };
        let job = match ev.job() {
            Some(j) => j,
            None => return Err(ev),
        };
        let Some(i) = self.cells.iter().position(|c| c.map.owns(job) || c.predict.owns(job) || c.render_job == Some(job)) else { return Err(ev) };
        let cell = &mut self.cells[i];
        match ev {
            Event::Predicted { job, prediction } => {
                let easel_jobs::worker::Prediction { image, top, .. } = *prediction;
                cell.predict.finish(job, ());
                if let (Some(t), Some(model)) = (top.first(), &ctx.session.model) {
                    cell.title = format!("{} · {} · {}", cell.method.title(), cell.image_name, model.class_name(t.class_index));
                }
                cell.image = Some(image);
                Self::start_cell(cell, ctx);
            }
            Event::Explained { job, output } => {
                let shown = Shown::new(ctx.egui, &format!("cmp{job}"), &output.picture);
                cell.map.finish(job, CellMap { output: *output, shown });
                if self.cells.iter().all(|c| c.map.last().is_some() || c.map.error().is_some() || (!c.map.is_running() && !c.predict.is_running())) {
                    if settings.shared_scale {
                        self.rescale(settings, explain, ctx);
                    }
                    ctx.announce("compare ready");
                }
            }
            Event::Rendered { picture, scale, .. } => {
                cell.render_job = None;
                if let Some(m) = cell.map.last_mut() {
                    update(ctx.egui, &format!("cmp{job}"), &picture, &mut m.shown);
                    m.output.picture = picture;
                    m.output.scale = scale;
                }
            }
            Event::Cancelled { job } => {
                cell.map.cancelled(job);
                cell.predict.cancelled(job);
            }
            Event::Failed { job: Some(job), message } => {
                cell.map.fail(job, message.clone());
                cell.predict.fail(job, message);
            }
            Event::Progress { job, done, total, .. } => {
                cell.map.progress(job, done, total);
            }
            _ => {}
        }
        Ok(())
    }

    /// The finished maps, for a report.
    pub fn outputs(&self) -> Vec<ExplainOutput> {
        self.cells.iter().filter_map(|c| c.map.last().map(|m| m.output.clone())).collect()
    }
}

pub fn ui(ui: &mut egui::Ui, view: &CompareView, settings: &mut CompareSettings, explain: &ExplainSettings, session: &Session, cmds: &mut Vec<Command>) {
    ui.horizontal_wrapped(|ui| {
        ui.label("Methods:");
        for kind in MethodKind::maps() {
            let mut on = settings.methods.contains(&kind);
            if ui.checkbox(&mut on, kind.title()).changed() {
                if on {
                    settings.methods.push(kind);
                } else {
                    settings.methods.retain(|m| *m != kind);
                }
            }
        }
    });
    ui.horizontal_wrapped(|ui| {
        if ui.button("Methods × classes for this image").clicked() {
            cmds.push(Command::Compare(CompareCommand::MethodsByClasses));
        }
        ui.separator();
        ui.add(egui::Slider::new(&mut settings.images, 2..=12).text("images"));
        if ui.button(format!("{} across images", explain.method.title())).clicked() {
            cmds.push(Command::Compare(CompareCommand::AcrossImages));
        }
        ui.separator();
        if ui.checkbox(&mut settings.shared_scale, "one scale per method").changed() {
            cmds.push(Command::Compare(CompareCommand::Rerender));
        }
        ui.separator();
        let tip = if session.second.is_some() { "the open model (A) and the second model (B), one method, one scale" } else { "open a second model (B) first" };
        if ui.add_enabled(session.second.is_some(), egui::Button::new("A and B side by side")).on_hover_text(tip).on_disabled_hover_text(tip).clicked() {
            cmds.push(Command::Compare(CompareCommand::SideBySide));
        }
    });
    ui.separator();
    if view.pair.active {
        pair::ui(ui, &view.pair, session, cmds);
        return;
    }
    if view.cells.is_empty() {
        ui.label(if session.current.is_none() { "Select an image." } else { "Choose methods and press a button above." });
        return;
    }
    let done = view.done();
    if view.is_running() {
        ui.horizontal(|ui| {
            ui.add(egui::ProgressBar::new(done as f32 / view.cells.len() as f32).desired_width(260.0).text(format!("{done}/{} maps", view.cells.len())));
            if ui.button("Cancel").clicked() {
                cmds.push(Command::Compare(CompareCommand::Cancel));
            }
        });
    }
    let cell_w = 250.0f32;
    let columns = ((ui.available_width() / (cell_w + 14.0)).floor() as usize).clamp(1, 4);
    egui::ScrollArea::vertical().id_salt("compare").auto_shrink([false, false]).show(ui, |ui| {
        egui::Grid::new("compare_grid").spacing([12.0, 12.0]).show(ui, |ui| {
            for (i, cell) in view.cells.iter().enumerate() {
                ui.vertical(|ui| {
                    ui.set_width(cell_w);
                    ui.label(&cell.title);
                    match (cell.map.last(), cell.map.error().or(cell.predict.error())) {
                        (_, Some(e)) => {
                            ui.colored_label(egui::Color32::from_rgb(200, 60, 40), e);
                        }
                        (Some(m), None) => {
                            picture_ui(ui, &m.shown, cell_w - 10.0, false);
                        }
                        (None, None) if cell.map.is_running() || cell.predict.is_running() => {
                            ui.label(format!("computing… {}", cell.map.progress_text()));
                        }
                        (None, None) => {
                            ui.label("cancelled");
                        }
                    }
                });
                if (i + 1) % columns == 0 {
                    ui.end_row();
                }
            }
        });
    });
}
