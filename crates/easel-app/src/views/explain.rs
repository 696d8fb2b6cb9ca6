//! The Explain view's state, jobs and events: one map job, one trust job, and the rule for
//! re-running when the image changes (cheap methods run after a short pause; a method that
//! would take longer than [`AUTO_RUN_LIMIT_SECS`] waits for the Run button).

use std::time::{Duration, Instant};

use easel_core::explain::Method;
use easel_core::explain::sanity::SanityMode;
use easel_core::render::RenderOptions;
use easel_jobs::explain::{ExplainOutput, ExplainRequest, TrustFigures};
use easel_jobs::worker::{Event, ModelSummary, Request};
use easel_jobs::{JobId, JobSlot};

use crate::command::ExplainCommand;
use crate::ctx::Ctx;
use crate::state::ExplainSettings;
use crate::textures::{Shown, show, update};

/// Wait this long after the image changes before re-running a map, so holding an arrow key
/// does not start a job per image.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// A method whose estimated time is above this does not re-run by itself on an image change:
/// the view says how long it would take and offers Run.
pub const AUTO_RUN_LIMIT_SECS: f64 = 3.0;

/// A finished map on screen, and which image it belongs to.
pub struct MapShown {
    pub output: ExplainOutput,
    pub shown: Shown,
    /// The session generation of the image it was computed on.
    pub generation: u64,
    pub image_name: String,
}

#[derive(Default)]
pub struct ExplainView {
    pub map: JobSlot<MapShown>,
    /// The image generation the running map job is for.
    job_generation: u64,
    job_image: String,
    /// The live, partial map of the running job (occlusion).
    pub partial: Option<Shown>,
    pub trust: JobSlot<TrustFigures>,
    render_job: Option<JobId>,
    /// The class the maps explain; `None` = the predicted class.
    pub target: Option<usize>,
    /// Re-run when this time comes (an image change, debounced).
    auto_at: Option<Instant>,
    /// The image changed and the method is slow: its estimated seconds, until Run is pressed.
    pub waiting: Option<f64>,
    /// The next image runs whatever its cost (the method was asked for explicitly, e.g.
    /// `easel gui --method occlusion`).
    pub run_next: bool,
}

impl ExplainView {
    /// The current method's settings (defaults for this model's input size).
    pub fn method(settings: &ExplainSettings, model: &ModelSummary) -> Method {
        let (_, h, w) = model.input;
        settings.methods.get(&settings.method).cloned().unwrap_or_else(|| Method::defaults(settings.method, h, w))
    }

    /// Render options, with the method's natural sign and colormap when `auto_colours` is on.
    pub fn render_options(settings: &ExplainSettings, method: &Method) -> RenderOptions {
        if settings.auto_colours { settings.render.clone().natural_for(method) } else { settings.render.clone() }
    }

    /// The map on screen, if it belongs to the image on screen.
    pub fn shown_map(&self, generation: u64) -> Option<&MapShown> {
        self.map.last().filter(|m| m.generation == generation)
    }

    /// Estimated seconds of `method` on the current image.
    pub fn estimate_secs(method: &Method, ctx: &Ctx) -> Option<f64> {
        let cur = ctx.session.current.as_ref()?;
        Some(method.cost_in_forwards(cur.image.height, cur.image.width) as f64 * cur.forward_secs)
    }

    /// Start the map of the current image now.
    pub fn start(&mut self, settings: &ExplainSettings, ctx: &mut Ctx) {
        let (Some(cur), Some(model)) = (&ctx.session.current, &ctx.session.model) else { return };
        let method = Self::method(settings, model);
        if method.is_attack() {
            return;
        }
        let mut request = ExplainRequest::new(method.clone());
        request.target = self.target;
        request.render = Self::render_options(settings, &method);
        request.sanity = if settings.trust { SanityMode::default_for(&method) } else { SanityMode::None };
        request.curves = request.sanity != SanityMode::None;
        let ticket = self.map.restart();
        self.job_generation = cur.generation;
        self.job_image = cur.name.clone();
        self.partial = None;
        self.trust.clear();
        self.auto_at = None;
        self.waiting = None;
        let req = Request::Explain { ticket, image: cur.image.clone(), image_name: cur.name.clone(), request: Box::new(request) };
        ctx.send(req);
    }

    /// The image is going away: its jobs stop now.
    pub fn leave_image(&mut self) {
        self.map.cancel();
        self.trust.cancel();
        self.partial = None;
        self.auto_at = None;
        self.waiting = None;
        self.target = None;
    }

    /// Another model: nothing of the old one stays.
    pub fn clear(&mut self) {
        self.map.clear();
        self.trust.clear();
        self.partial = None;
        self.auto_at = None;
        self.waiting = None;
        self.target = None;
    }

    /// The new image is ready: re-run after [`DEBOUNCE`] if the method is quick, else wait for
    /// Run.
    pub fn image_ready(&mut self, settings: &ExplainSettings, ctx: &mut Ctx) {
        let Some(model) = &ctx.session.model else { return };
        let method = Self::method(settings, model);
        let explicit = std::mem::take(&mut self.run_next);
        match Self::estimate_secs(&method, ctx) {
            Some(secs) if secs > AUTO_RUN_LIMIT_SECS && !explicit => {
                self.waiting = Some(secs);
                self.auto_at = None;
            }
            _ => {
                self.auto_at = Some(Instant::now() + DEBOUNCE);
                ctx.egui.request_repaint_after(DEBOUNCE);
            }
        }
    }

    /// Per frame: start a debounced run when its time has come.
    pub fn logic(&mut self, settings: &ExplainSettings, ctx: &mut Ctx) {
        if let Some(at) = self.auto_at {
            let now = Instant::now();
            if now >= at {
                self.start(settings, ctx);
            } else {
                ctx.egui.request_repaint_after(at - now);
            }
        }
    }

    pub fn run(&mut self, cmd: ExplainCommand, settings: &mut ExplainSettings, ctx: &mut Ctx) {
        match cmd {
            ExplainCommand::SelectClass(c) => {
                self.target = c;
                self.start(settings, ctx);
            }
            ExplainCommand::SetMethod(m) => {
                settings.method = m;
                self.start(settings, ctx);
            }
            ExplainCommand::Run => self.start(settings, ctx),
            ExplainCommand::Rerender => self.rerender(settings, ctx),
            ExplainCommand::Cancel => {
                self.map.cancel();
                self.partial = None;
            }
            ExplainCommand::RunTrust => {
                let (Some(cur), Some(m)) = (&ctx.session.current, self.shown_map(ctx.session.generation())) else { return };
                let ex = &m.output.explanation;
                let (image, method, target, map) = (cur.image.clone(), Box::new(ex.method.clone()), ex.target, ex.map.clone());
                let ticket = self.trust.restart();
                ctx.send(Request::Trust { ticket, image, method, target, map, mode: SanityMode::Cascade });
            }
            ExplainCommand::CancelTrust => self.trust.cancel(),
        }
    }

    fn rerender(&mut self, settings: &ExplainSettings, ctx: &mut Ctx) {
        let (Some(cur), Some(m)) = (&ctx.session.current, self.shown_map(ctx.session.generation())) else { return };
        let opts = Self::render_options(settings, &m.output.explanation.method);
        let ticket = easel_jobs::Ticket::detached();
        let req = Request::Render { ticket: ticket.clone(), map: m.output.explanation.map.clone(), image: cur.image.clone(), opts };
        self.render_job = Some(ticket.id);
        ctx.send(req);
    }

    /// Take this view's events; any other event is given back.
    pub fn on_event(&mut self, ev: Event, ctx: &mut Ctx) -> Result<(), Event> {
        match ev {
            Event::Progress { job, done, total, picture } if self.map.owns(job) => {
                self.map.progress(job, done, total);
                if let Some(p) = picture {
                    show(ctx.egui, "partial", &p, &mut self.partial);
                }
            }
            Event::Progress { job, done, total, .. } if self.trust.owns(job) => {
                self.trust.progress(job, done, total);
            }
            Event::Explained { job, output } if self.map.owns(job) => {
                let mut slot = self.map.take_last().map(|m| m.shown);
                show(ctx.egui, "map", &output.picture, &mut slot);
                let Some(shown) = slot else { return Ok(()) };
                let figures = output.trust.clone();
                let has_trust = figures.sanity.is_some() || figures.deletion.is_some();
                self.map.finish(job, MapShown { output: *output, shown, generation: self.job_generation, image_name: self.job_image.clone() });
                self.partial = None;
                if has_trust {
                    self.trust.set_last(figures);
                }
                let (method, secs) = self.map.last().map(|m| (m.output.explanation.method.name(), m.output.explanation.elapsed_secs)).unwrap_or_default();
                ctx.announce(&format!("explanation ready: {method} in {secs:.2} s"));
            }
            Event::Rendered { job, picture, scale } if self.render_job == Some(job) => {
                self.render_job = None;
                if let Some(m) = self.map.last_mut() {
                    update(ctx.egui, "map", &picture, &mut m.shown);
                    m.output.picture = picture;
                    m.output.scale = scale;
                    m.output.meta.render_scale = Some(scale);
                }
            }
            Event::Trusted { job, figures } if self.trust.owns(job) => {
                self.trust.finish(job, figures);
            }
            Event::Cancelled { job } if self.map.owns(job) || self.trust.owns(job) => {
                self.map.cancelled(job);
                self.trust.cancelled(job);
                self.partial = None;
            }
            Event::Failed { job: Some(job), message } if self.map.owns(job) || self.trust.owns(job) => {
                self.map.fail(job, message.clone());
                self.trust.fail(job, message.clone());
                self.partial = None;
                ctx.notes.error(message);
            }
            other => return Err(other),
        }
        Ok(())
    }
}
