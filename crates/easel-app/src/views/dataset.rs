//! The Dataset view's state, jobs and events: evaluating the open labelled set (cached), or
//! predictions computed elsewhere; the figures derived from them in one place
//! ([`easel_core::metrics::derive`]); the training split's counts; the gallery of a
//! confusion-matrix cell with its thumbnails; model A against model B ([`super::versus`]).

use std::collections::HashMap;
use std::path::PathBuf;

use easel_core::metrics::{self, CostMatrix, DatasetFigures, Predictions};
use easel_jobs::JobSlot;
use easel_jobs::worker::{Event, ImageRef, Request, VersusSource};

use super::versus::VersusPanel;
use crate::command::{Command, CompareCommand, DatasetCommand};
use crate::ctx::Ctx;
use crate::state::{DatasetSettings, Tab};
use crate::textures::Shown;

/// Images per gallery page.
pub const GALLERY_PAGE: usize = 60;

/// The open gallery: its title, its sample indices (all of them), the page shown.
#[derive(Default)]
pub struct Gallery {
    pub title: String,
    pub indices: Vec<usize>,
    pub page: usize,
    pub thumbnails: HashMap<usize, Shown>,
    pub job: JobSlot<()>,
    /// The confusion-matrix cell it shows (true, predicted), if it shows one.
    pub cell: Option<(usize, usize)>,
}

#[derive(Default)]
pub struct DatasetView {
    pub eval: JobSlot<()>,
    pub predictions: Option<Predictions>,
    pub cached: bool,
    pub secs: f64,
    pub figures: Option<DatasetFigures>,
    pub train_counts: Option<Vec<usize>>,
    pub train_source: String,
    pub gallery: Gallery,
    side_job: JobSlot<()>,
    /// Open this cell's gallery once the predictions are in (`easel gui --open-cell`).
    pub open_cell_later: Option<(usize, usize)>,
    /// Model A (these predictions) against model B.
    pub versus: VersusPanel,
}

impl DatasetView {
    /// Another model or image set: the predictions belong to the old one.
    pub fn clear(&mut self) {
        self.eval.clear();
        self.side_job.clear();
        self.gallery.job.clear();
        self.versus.clear();
        let later = self.open_cell_later.take();
        *self = DatasetView { open_cell_later: later, ..DatasetView::default() };
    }

    /// Entering the view: evaluate the open set if it is labelled, and show the training
    /// split beside it where one is known.
    pub fn enter(&mut self, settings: &DatasetSettings, ctx: &mut Ctx) {
        if self.predictions.is_none() && !self.eval.is_running() && ctx.session.images.is_labelled() {
            self.evaluate(ctx);
        }
        if self.train_counts.is_none() {
            let train = settings.train_split.clone().or_else(|| {
                let system = PathBuf::from(easel_core::data::SYSTEM_FASHION_MNIST);
                let fashion = ctx.session.model.as_ref().is_some_and(|m| m.classes.first().map(String::as_str) == Some("T-shirt/top"));
                (fashion && system.join("train-images-idx3-ubyte.gz").is_file()).then_some(system)
            });
            if let Some(t) = train {
                let ticket = self.side_job.restart();
                ctx.send(Request::SplitCounts { ticket, path: t, split: "train".into() });
            }
        }
    }

    fn evaluate(&mut self, ctx: &mut Ctx) {
        let ticket = self.eval.restart();
        ctx.send(Request::Evaluate { ticket, batch_size: 256, cache: ctx.paths.cache.clone() });
    }

    /// The cost matrix over the model's classes, if a custom one is set and fits.
    fn base_cost(&self, settings: &DatasetSettings) -> Option<CostMatrix> {
        let k = self.predictions.as_ref()?.k();
        settings.cost.as_ref().filter(|c| c.len() == k && c.iter().all(|r| r.len() == k)).map(|c| CostMatrix { costs: c.clone() })
    }

    /// Recompute merged predictions, costs, decisions and curves (cheap: counting).
    pub fn refresh(&mut self, settings: &mut DatasetSettings, ctx: &mut Ctx) {
        let Some(p) = &self.predictions else { return };
        let cost = self.base_cost(settings);
        let figures = match metrics::derive(p, &settings.merges, cost.as_ref(), settings.decide_by_cost, settings.threshold_class) {
            Ok(f) => f,
            Err(e) => {
                ctx.notes.error(e);
                settings.merges.clear();
                match metrics::derive(p, &[], cost.as_ref(), settings.decide_by_cost, settings.threshold_class) {
                    Ok(f) => f,
                    Err(e) => return ctx.notes.error(e),
                }
            }
        };
        settings.threshold_class = figures.threshold_class;
        let k = figures.decided.k();
        self.figures = Some(figures);
        if let Some((t, pr)) = self.gallery.cell {
            if t < k && pr < k {
                self.open_cell(t, pr, settings, ctx);
            } else {
                self.gallery = Gallery::default();
            }
        }
    }

    fn open_cell(&mut self, t: usize, p: usize, settings: &DatasetSettings, ctx: &mut Ctx) {
        let Some(f) = &self.figures else { return };
        let d = &f.decided;
        let idx = metrics::cell_samples(d, t, p, settings.gallery_by_doubt);
        let title = format!("true {} predicted {}: {} images", d.classes[t], d.classes[p], idx.len());
        self.open_gallery(title, idx, Some((t, p)), ctx);
    }

    fn open_gallery(&mut self, title: String, indices: Vec<usize>, cell: Option<(usize, usize)>, ctx: &mut Ctx) {
        let thumbnails = std::mem::take(&mut self.gallery.thumbnails);
        self.gallery.job.cancel();
        self.gallery = Gallery { title, indices, page: 0, thumbnails, job: JobSlot::default(), cell };
        self.request_thumbnails(ctx);
    }

    /// Whether the predictions are of the open image set (so its entries are their images).
    pub fn same_set(&self, ctx: &Ctx) -> bool {
        self.predictions.as_ref().is_some_and(|p| p.len() == ctx.session.images.len() && ctx.session.images.is_labelled())
    }

    fn request_thumbnails(&mut self, ctx: &mut Ctx) {
        let same = self.same_set(ctx);
        request_thumbnails(&mut self.gallery, self.predictions.as_ref(), same, ctx);
    }

    /// Show sample `i` in the Compare view: `then` says how, once it is selected.
    fn open_sample(&self, i: usize, then: Option<Command>, ctx: &mut Ctx) {
        if self.same_set(ctx) {
            ctx.commands.extend(then);
            ctx.commands.push(Command::SetTab(Tab::Compare));
            ctx.commands.push(Command::SelectImage(i));
        } else if let Some(path) = self.predictions.as_ref().and_then(|p| p.paths.get(i)).map(PathBuf::from).filter(|p| p.is_file()) {
            ctx.commands.extend(then);
            ctx.commands.push(Command::SetTab(Tab::Compare));
            ctx.commands.push(Command::OpenImages(vec![path]));
        } else {
            ctx.notes.error("that sample's image is not available here");
        }
    }

    pub fn run(&mut self, cmd: DatasetCommand, settings: &mut DatasetSettings, ctx: &mut Ctx) {
        match cmd {
            DatasetCommand::Evaluate => self.evaluate(ctx),
            DatasetCommand::Cancel => self.eval.cancel(),
            DatasetCommand::Refresh => self.refresh(settings, ctx),
            DatasetCommand::OpenCell(t, p) => self.open_cell(t, p, settings, ctx),
            DatasetCommand::OpenIssues => {
                if let Some(f) = &self.figures {
                    let idx: Vec<usize> = f.report.label_issues.iter().map(|i| i.index).collect();
                    let title = format!("labels that look wrong: {} images, most suspicious first", idx.len());
                    self.open_gallery(title, idx, None, ctx);
                }
            }
            DatasetCommand::GalleryPage(page) => {
                self.gallery.page = page;
                self.request_thumbnails(ctx);
            }
            DatasetCommand::OpenSample(i) => self.open_sample(i, None, ctx),
            DatasetCommand::SetCostCell { row, col, value } => {
                let Some(p) = &self.predictions else { return };
                let mut base = self.base_cost(settings).unwrap_or_else(|| CostMatrix::zero_one(p.k()));
                let (_, new_of) = metrics::merge_map(p.k(), &settings.merges);
                base.set_merged_cell(&new_of, row, col, value);
                settings.cost = Some(base.costs);
                self.refresh(settings, ctx);
            }
            DatasetCommand::MissingClassCost { class, value } => {
                let Some(p) = &self.predictions else { return };
                let (_, new_of) = metrics::merge_map(p.k(), &settings.merges);
                let k = p.k();
                let costs = (0..k)
                    .map(|a| {
                        (0..k)
                            .map(|b| {
                                if new_of[a] == new_of[b] {
                                    0.0
                                } else if new_of[a] == class {
                                    value
                                } else {
                                    1.0
                                }
                            })
                            .collect()
                    })
                    .collect();
                settings.cost = Some(costs);
                self.refresh(settings, ctx);
            }
            DatasetCommand::ResetCost => {
                settings.cost = None;
                self.refresh(settings, ctx);
            }
            DatasetCommand::LoadPredictions(path) => {
                let ticket = self.eval.restart();
                ctx.send(Request::LoadPredictions { ticket, path });
            }
            DatasetCommand::LoadCost(path) => {
                let Some(p) = &self.predictions else { return ctx.notes.error("evaluate or open predictions before loading costs") };
                let ticket = self.side_job.restart();
                ctx.send(Request::LoadCost { ticket, path, k: p.k() });
            }
            DatasetCommand::SaveCost(path) => {
                let Some(p) = &self.predictions else { return };
                let cost = self.base_cost(settings).unwrap_or_else(|| CostMatrix::zero_one(p.k()));
                let ticket = easel_jobs::Ticket::detached();
                ctx.send(Request::SaveText { ticket, path, text: cost.to_csv(&p.classes) });
            }
            DatasetCommand::LoadTrainSplit(path) => {
                settings.train_split = Some(path.clone());
                let ticket = self.side_job.restart();
                ctx.send(Request::SplitCounts { ticket, path, split: "train".into() });
            }
            DatasetCommand::VersusPredictions(path) => self.start_versus(VersusSource::Csv(path), settings, ctx),
            DatasetCommand::VersusSecondModel => self.start_versus(VersusSource::SecondModel, settings, ctx),
            DatasetCommand::ClearVersus => self.versus.clear(),
            DatasetCommand::VersusGalleryPage(side, page) => {
                let same = self.same_set(ctx);
                self.versus.page(side, page, self.predictions.as_ref(), same, ctx);
            }
            DatasetCommand::OpenVersusSample(i) => {
                // both models' maps of the true class (the same target for both)
                let target = self.predictions.as_ref().and_then(|p| p.labels.get(i).copied());
                let index = if self.same_set(ctx) { i } else { 0 };
                self.open_sample(i, Some(Command::Compare(CompareCommand::SideBySideOf { index, target })), ctx);
            }
        }
    }

    /// Compare these predictions (A) with B's.
    fn start_versus(&mut self, source: VersusSource, settings: &DatasetSettings, ctx: &mut Ctx) {
        let Some(a) = &self.predictions else { return ctx.notes.error("evaluate the open set or open predictions (model A) first") };
        let cost = self.base_cost(settings);
        self.versus.start(a, source, cost, ctx);
    }

    /// A second model is open: compare it with A on the open set, if A's predictions are of it.
    pub fn second_model_ready(&mut self, settings: &DatasetSettings, ctx: &mut Ctx) {
        if self.predictions.is_some() && self.same_set(ctx) {
            self.start_versus(VersusSource::SecondModel, settings, ctx);
        }
    }

    pub fn on_event(&mut self, ev: Event, settings: &mut DatasetSettings, ctx: &mut Ctx) -> Result<(), Event> {
        let same = self.same_set(ctx);
        let ev = match self.versus.on_event(ev, self.predictions.as_ref(), same, ctx) {
            Ok(()) => return Ok(()),
            Err(ev) => ev,
        };
        match ev {
            Event::Progress { job, done, total, .. } if self.eval.owns(job) => {
                self.eval.progress(job, done, total);
            }
            Event::Evaluated { job, predictions, cached, secs } if self.eval.owns(job) => {
                self.eval.finish(job, ());
                self.cached = cached;
                self.secs = secs;
                // merges and costs made for another class list do not apply
                if self.predictions.as_ref().map(|p| p.k()) != Some(predictions.k()) {
                    settings.merges.retain(|g| g.iter().all(|&c| c < predictions.k()));
                    if settings.cost.as_ref().is_some_and(|c| c.len() != predictions.k()) {
                        settings.cost = None;
                    }
                }
                self.predictions = Some(*predictions);
                self.gallery = Gallery::default();
                self.versus.clear();
                self.refresh(settings, ctx);
                if let Some((t, p)) = self.open_cell_later.take() {
                    self.open_cell(t, p, settings, ctx);
                }
                ctx.announce("evaluation ready");
                // a second model opened while A was evaluated is compared now
                if ctx.session.second.is_some() {
                    self.second_model_ready(settings, ctx);
                }
            }
            Event::SplitCounts { job, counts, source } if self.side_job.owns(job) => {
                self.side_job.finish(job, ());
                self.train_counts = Some(counts);
                self.train_source = source;
            }
            Event::CostLoaded { job, cost } if self.side_job.owns(job) => {
                self.side_job.finish(job, ());
                settings.cost = Some(cost.costs);
                self.refresh(settings, ctx);
            }
            Event::Thumbnails { job, pictures } if self.gallery.job.owns(job) => {
                self.gallery.job.finish(job, ());
                for (i, p) in pictures {
                    self.gallery.thumbnails.insert(i, Shown::new(ctx.egui, &format!("thumb{i}"), &p));
                }
            }
            Event::Cancelled { job } if self.eval.owns(job) || self.gallery.job.owns(job) => {
                self.eval.cancelled(job);
                self.gallery.job.cancelled(job);
            }
            Event::Failed { job: Some(job), message } if self.eval.owns(job) || self.side_job.owns(job) || self.gallery.job.owns(job) => {
                self.eval.fail(job, message.clone());
                self.side_job.fail(job, message.clone());
                self.gallery.job.fail(job, message.clone());
                ctx.notes.error(message);
            }
            other => return Err(other),
        }
        Ok(())
    }
}

/// Ask for the thumbnails of a gallery's page that are not there yet: images of the open set
/// where the predictions are of it (`same`), else the files their paths name.
pub fn request_thumbnails(g: &mut Gallery, predictions: Option<&Predictions>, same: bool, ctx: &mut Ctx) {
    let items: Vec<(usize, ImageRef)> = g
        .indices
        .iter()
        .skip(g.page * GALLERY_PAGE)
        .take(GALLERY_PAGE)
        .filter(|i| !g.thumbnails.contains_key(i))
        .filter_map(|&i| {
            if same {
                Some((i, ctx.session.images.entries.get(i)?.source.clone()))
            } else {
                let path = PathBuf::from(predictions?.paths.get(i)?);
                path.is_file().then_some((i, ImageRef::File(path)))
            }
        })
        .collect();
    if !items.is_empty() {
        let ticket = g.job.restart();
        ctx.send(Request::Thumbnails { ticket, items });
    }
}
