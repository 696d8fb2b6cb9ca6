//! The worker's side of each request: load, predict, explain, render, check, evaluate, save;
//! the second model's requests are in [`versus`].

mod versus;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use easel_core::data::{self, DataSource, LabelledImages};
use easel_core::device::{ComputeDevice, DeviceChoice, select_device};
use easel_core::error::{Error, Result};
use easel_core::explain::SaliencyMap;
use easel_core::imaging::{self, PreparedImage};
use easel_core::models::Classifier;
use easel_core::predict::top_k;
use easel_core::progress::Progress;
use easel_core::render;

use super::{Event, ImageEntry, ImageList, ImageRef, ModelSummary, Repaint, Request};
use crate::explain::{self, MAP_MIN_PX, Provenance};
use crate::picture::{self, Picture};
use crate::slot::{JobId, Ticket};

/// Progress reaches the UI at most this often in a job's first seconds: each event costs a
/// repaint, which a software renderer (llvmpipe under Xvfb) takes from the computation.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// ... and at most this often once the job has run for [`SLOW_AFTER`]: a long job keeps its
/// cores.
const PROGRESS_EVERY_LONG: Duration = Duration::from_millis(1000);
const SLOW_AFTER: Duration = Duration::from_secs(2);

/// A partial occlusion map at most this often (each one is also a render and an upload).
const PARTIAL_EVERY: Duration = Duration::from_millis(1000);

pub(super) struct Worker {
    device: Option<ComputeDevice>,
    model: Option<(PathBuf, Arc<Classifier>)>,
    /// Model B, compared with the current one.
    second: Option<(PathBuf, Arc<Classifier>)>,
    set: Option<LabelledImages>,
    /// Where `set` came from, for the evaluation cache.
    set_source: Option<DataSource>,
    events: Sender<Event>,
    repaint: Repaint,
}

/// Sends progress at most every [`PROGRESS_EVERY`], every [`PROGRESS_EVERY_LONG`] once the
/// job has run for [`SLOW_AFTER`] (and always the last step).
struct Throttle {
    last: std::sync::Mutex<Option<Instant>>,
    every: Duration,
    started: Instant,
}

impl Throttle {
    fn new(every: Duration) -> Throttle {
        Throttle { last: std::sync::Mutex::new(None), every, started: Instant::now() }
    }

    fn due(&self, done: usize, total: usize) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let every = if self.started.elapsed() < SLOW_AFTER { self.every } else { self.every.max(PROGRESS_EVERY_LONG) };
        if done < total && last.is_some_and(|t| t.elapsed() < every) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }
}

impl Worker {
    pub(super) fn new(events: Sender<Event>, repaint: Repaint) -> Worker {
        Worker { device: None, model: None, second: None, set: None, set_source: None, events, repaint }
    }

    pub(super) fn send(&self, e: Event) {
        let _ = self.events.send(e);
        (self.repaint)();
    }

    fn fail(&self, job: JobId, e: impl std::fmt::Display) {
        self.send(Event::Failed { job: Some(job), message: e.to_string() });
    }

    /// Report an error, or a cancel as such.
    fn finish_err(&self, job: JobId, e: Error) {
        match e {
            Error::Cancelled => self.send(Event::Cancelled { job }),
            e => self.fail(job, e),
        }
    }

    fn device(&self) -> burn::tensor::Device {
        self.device.as_ref().map(|d| d.device.clone()).unwrap_or_else(burn::tensor::Device::flex)
    }

    fn device_words(&self) -> String {
        self.device.as_ref().map(|d| d.info.summary()).unwrap_or_default()
    }

    pub(super) fn set_device(&mut self, choice: DeviceChoice) {
        let d = match select_device(choice) {
            Ok(d) => d,
            Err(e) => {
                self.send(Event::Failed { job: None, message: format!("{e}; using the CPU") });
                ComputeDevice::cpu("the requested device is not available")
            }
        };
        let info = d.info.clone();
        self.device = Some(d);
        if let Some((path, _)) = self.model.take() {
            match Classifier::load(&path, &self.device()) {
                Ok(m) => self.model = Some((path, Arc::new(m))),
                Err(e) => self.send(Event::Failed { job: None, message: format!("reloading the model: {e}") }),
            }
        }
        if let Some((path, _)) = self.second.take() {
            match Classifier::load(&path, &self.device()) {
                Ok(m) => self.second = Some((path, Arc::new(m))),
                Err(e) => self.send(Event::Failed { job: None, message: format!("reloading the second model: {e}") }),
            }
        }
        self.send(Event::Device(Box::new(info)));
    }

    fn current_model(&self) -> Result<Arc<Classifier>> {
        self.model.as_ref().map(|(_, m)| m.clone()).ok_or_else(|| Error::invalid("open a model first"))
    }

    pub(super) fn handle(&mut self, req: Request) {
        match req {
            Request::SetDevice(c) => self.set_device(c),
            Request::LoadModel { ticket, path } => self.load_model(ticket.id, path),
            Request::LoadImages { ticket, paths } => {
                if let Err(e) = self.load_images(ticket.id, &paths) {
                    self.fail(ticket.id, e);
                }
            }
            Request::Predict { ticket, image } => {
                if let Err(e) = self.predict(ticket.id, &image) {
                    self.fail(ticket.id, e);
                }
            }
            Request::Explain { ticket, image, image_name, request } => self.explain(&ticket, image, image_name, &request),
            Request::Render { ticket, map, image, opts } => {
                let up = render::upscale_for(image.height.max(image.width), MAP_MIN_PX);
                let (pic, scale) = render::render(&map, &image, &opts, up);
                self.send(Event::Rendered { job: ticket.id, picture: Picture::from_rgba(pic), scale });
            }
            Request::Trust { ticket, image, method, target, map, mode } => {
                let result = self.current_model().and_then(|model| {
                    let throttle = Throttle::new(PROGRESS_EVERY);
                    let report = |d: usize, t: usize| self.progress(&throttle, ticket.id, d, t);
                    let progress = Progress::none().with_cancel(&ticket.cancel).with_report(&report);
                    explain::trust_figures(&model, &image, &method, target, &map, mode, true, 0, progress)
                });
                match result {
                    Ok(figures) => self.send(Event::Trusted { job: ticket.id, figures }),
                    Err(e) => self.finish_err(ticket.id, e),
                }
            }
            Request::ExportReport { ticket, dir, report } => match report.save(&dir) {
                Ok(written) => self.send(Event::Saved { job: ticket.id, path: written }),
                Err(e) => self.fail(ticket.id, format!("cannot write the report: {e}")),
            },
            Request::SavePng { ticket, path, picture } => match picture::save_png_unused(&path, &picture) {
                Ok(written) => self.send(Event::Saved { job: ticket.id, path: written }),
                Err(e) => self.fail(ticket.id, format!("cannot save {}: {e}", path.display())),
            },
            Request::Evaluate { ticket, batch_size, cache } => self.evaluate(&ticket, batch_size, cache.as_deref()),
            Request::LoadPredictions { ticket, path } => {
                let classes = self.model.as_ref().map(|(_, m)| m.card.classes.clone());
                match easel_core::metrics::Predictions::read_csv(&path, classes.as_deref()) {
                    Ok(p) => self.send(Event::Evaluated { job: ticket.id, predictions: Box::new(p), cached: false, secs: 0.0 }),
                    Err(e) => self.fail(ticket.id, e),
                }
            }
            Request::SplitCounts { ticket, path, split } => {
                let counts = self.current_model().and_then(|model| {
                    let s = data::resolve_source(&path, &split)?;
                    Ok(data::load_source(&s, &model.card.input, &model.card.classes)?.class_counts())
                });
                match counts {
                    Ok(counts) => self.send(Event::SplitCounts { job: ticket.id, counts, source: format!("{} ({split})", path.display()) }),
                    Err(e) => self.fail(ticket.id, format!("cannot read the {split} split: {e}")),
                }
            }
            Request::Thumbnails { ticket, items } => {
                let Ok(model) = self.current_model() else { return };
                let mut pictures = Vec::with_capacity(items.len());
                for (i, r) in items {
                    if ticket.is_cancelled() {
                        return;
                    }
                    if let Ok(img) = self.prepare(&model, &r) {
                        pictures.push((i, picture::thumbnail(&img, 72)));
                    }
                }
                self.send(Event::Thumbnails { job: ticket.id, pictures });
            }
            Request::LoadCost { ticket, path, k } => match easel_core::metrics::CostMatrix::read_csv(&path, k) {
                Ok(cost) => self.send(Event::CostLoaded { job: ticket.id, cost }),
                Err(e) => self.fail(ticket.id, e),
            },
            Request::SaveText { ticket, path, text } => match easel_core::fsutil::write_atomic(&path, text.as_bytes()) {
                Ok(()) => self.send(Event::Saved { job: ticket.id, path }),
                Err(e) => self.fail(ticket.id, e),
            },
            Request::Fool { ticket, request } => self.fool(&ticket, &request),
            Request::FoolAll { ticket, request, classes } => {
                let job = ticket.id;
                let result = self.current_model().and_then(|model| {
                    let progress = Progress::none().with_cancel(&ticket.cancel);
                    crate::fool::run_all(&model, &request.start, &request.params, &classes, progress, &mut |done, total, o| {
                        self.send(Event::FooledClass { job, done, total, output: Box::new(o.clone()) });
                    })
                });
                match result {
                    Ok(output) => self.send(Event::FooledAll { job, output: Box::new(output) }),
                    Err(e) => self.finish_err(job, e),
                }
            }
            Request::Robustness { ticket, request } => {
                let job = ticket.id;
                let result = self.current_model().and_then(|model| {
                    let set = self.set.as_ref().ok_or_else(|| {
                        Error::invalid("open a labelled set first (the Fashion-MNIST demo, an IDX set, or a folder with one sub-folder per class)")
                    })?;
                    let name = self.set_source.as_ref().map(|s| format!("{s:?}")).unwrap_or_default();
                    let throttle = Throttle::new(PROGRESS_EVERY);
                    let report = |d: usize, t: usize| self.progress(&throttle, job, d, t);
                    let progress = Progress::none().with_cancel(&ticket.cancel).with_report(&report);
                    crate::robustness::run(&model, set, &name, &request, progress)
                });
                match result {
                    Ok(output) => self.send(Event::Robust { job, output: Box::new(output) }),
                    Err(e) => self.finish_err(job, e),
                }
            }
            Request::LoadSecondModel { ticket, path } => self.load_second(ticket.id, path),
            Request::Versus { ticket, a, b, cost, cache } => self.versus(&ticket, &a, &b, cost.as_ref(), cache.as_deref()),
            Request::ExplainPair { ticket, image, image_name, request } => self.explain_pair(&ticket, image, image_name, &request),
        }
    }

    fn fool(&self, ticket: &Ticket, request: &crate::fool::FoolRequest) {
        let job = ticket.id;
        let result = self.current_model().and_then(|model| {
            let spec = model.card.input.clone();
            let throttle = Throttle::new(PROGRESS_EVERY);
            let mut last_picture: Option<Instant> = None;
            let mut on_step = |s: &easel_core::explain::fool::FoolStep, pixels: &[f32]| {
                if !throttle.due(s.step, request.params.steps) {
                    return;
                }
                let picture = if last_picture.is_none_or(|t| t.elapsed() >= PARTIAL_EVERY) {
                    last_picture = Some(Instant::now());
                    let img = easel_core::explain::pixels::image_from_unit(pixels, spec.channels, spec.height, spec.width);
                    Some(picture::image_picture(&img))
                } else {
                    None
                };
                self.send(Event::FoolStep { job, step: s.clone(), picture });
            };
            crate::fool::run(&model, request, Progress::none().with_cancel(&ticket.cancel), &mut on_step)
        });
        match result {
            Ok(output) => self.send(Event::Fooled { job, output: Box::new(output) }),
            Err(e) => self.finish_err(job, e),
        }
    }

    fn progress(&self, throttle: &Throttle, job: JobId, done: usize, total: usize) {
        if throttle.due(done, total) {
            self.send(Event::Progress { job, done, total, picture: None });
        }
    }

    fn load_model(&mut self, job: JobId, path: PathBuf) {
        match Classifier::load(&path, &self.device()) {
            Ok(m) => {
                let summary = summary_of(&m, &path);
                self.model = Some((path, Arc::new(m)));
                self.send(Event::ModelLoaded { job, model: Box::new(summary) });
            }
            Err(e) => self.fail(job, format!("cannot load the model {}: {e}", path.display())),
        }
    }

    fn evaluate(&self, ticket: &Ticket, batch_size: usize, cache: Option<&Path>) {
        let job = ticket.id;
        let result = self.current_model().and_then(|model| {
            let (Some(set), Some(source)) = (&self.set, &self.set_source) else {
                return Err(Error::invalid("open a labelled set first (an IDX set, or a folder with one sub-folder per class)"));
            };
            if set.classes != model.card.classes {
                return Err(Error::invalid(format!(
                    "the open set's {} classes are not the model's {} classes: reopen the set with this model",
                    set.classes.len(),
                    model.num_classes()
                )));
            }
            let started = Instant::now();
            let throttle = Throttle::new(PROGRESS_EVERY);
            let report = |d: usize, t: usize| self.progress(&throttle, job, d, t);
            let progress = Progress::none().with_cancel(&ticket.cancel).with_report(&report);
            let (p, cached) = easel_core::evaluate::evaluate_cached(&model, source, set, batch_size, cache, progress)?;
            Ok((p, cached, started.elapsed().as_secs_f64()))
        });
        match result {
            Ok((p, cached, secs)) => self.send(Event::Evaluated { job, predictions: Box::new(p), cached, secs }),
            Err(e) => self.finish_err(job, e),
        }
    }

    fn load_images(&mut self, job: JobId, paths: &[PathBuf]) -> Result<()> {
        // A single IDX file or a folder holding IDX files is a labelled set; it is read with the
        // current model's input and classes (28x28 grey for Fashion-MNIST).
        if let [p] = paths {
            if let Ok(src @ DataSource::Idx { .. }) = data::resolve_source(p, "t10k") {
                let model = self.current_model()?;
                let set = data::load_source(&src, &model.card.input, &model.card.classes)?;
                let entries = (0..set.len()).map(|i| ImageEntry { name: format!("#{i}"), label: Some(set.labels[i]), source: ImageRef::Set(i) }).collect();
                let classes = set.classes.clone();
                self.set = Some(set);
                self.set_source = Some(src);
                self.send(Event::ImagesLoaded { job, list: Box::new(ImageList { entries, source: p.display().to_string(), classes }) });
                return Ok(());
            }
            // A folder of class folders is a labelled set too.
            let has_class_dirs = p.is_dir()
                && std::fs::read_dir(p).map(|r| r.flatten().any(|e| e.path().is_dir())).unwrap_or(false)
                && imaging::list_images(std::slice::from_ref(p)).is_err();
            if has_class_dirs {
                let model = self.current_model()?;
                let set = data::load_image_folder(p, &model.card.input, &model.card.classes)?;
                let entries = (0..set.len())
                    .map(|i| {
                        let name = PathBuf::from(&set.sources[i]).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                        ImageEntry { name, label: Some(set.labels[i]), source: ImageRef::Set(i) }
                    })
                    .collect();
                let classes = set.classes.clone();
                self.set = Some(set);
                self.set_source = Some(DataSource::Folder(p.clone()));
                self.send(Event::ImagesLoaded { job, list: Box::new(ImageList { entries, source: p.display().to_string(), classes }) });
                return Ok(());
            }
        }
        let files = imaging::list_images(paths)?;
        self.set = None;
        self.set_source = None;
        let entries = files
            .into_iter()
            .map(|f| ImageEntry { name: f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), label: None, source: ImageRef::File(f) })
            .collect();
        let source = paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
        self.send(Event::ImagesLoaded { job, list: Box::new(ImageList { entries, source, classes: Vec::new() }) });
        Ok(())
    }

    /// An image at the current model's input: files are decoded for it; images of an open set
    /// made for another model are brought to this one's size and colour.
    fn prepare(&self, model: &Classifier, image: &ImageRef) -> Result<PreparedImage> {
        match image {
            ImageRef::File(p) => imaging::load_prepared(p, &model.card.input),
            ImageRef::Set(i) => match &self.set {
                Some(set) if *i < set.len() => Ok(set.image(*i).prepared_for(&model.card.input)),
                _ => Err(Error::invalid("that image is no longer loaded")),
            },
        }
    }

    fn predict(&self, job: JobId, image: &ImageRef) -> Result<()> {
        let model = self.current_model()?;
        let img = self.prepare(&model, image)?;
        let started = Instant::now();
        let logits = model.logits(model.input_batch(&[&img])?)?.remove(0);
        let forward_secs = started.elapsed().as_secs_f64();
        let top = top_k(&logits, model.num_classes(), &model.card.classes);
        let picture = picture::image_picture(&img);
        self.send(Event::Predicted { job, prediction: Box::new(super::Prediction { image: img, picture, top, forward_secs }) });
        Ok(())
    }

    fn explain(&self, ticket: &Ticket, image: PreparedImage, image_name: String, request: &explain::ExplainRequest) {
        let job = ticket.id;
        let model = match self.current_model() {
            Ok(m) => m,
            Err(e) => return self.fail(job, e),
        };
        let up = render::upscale_for(image.height.max(image.width), MAP_MIN_PX);
        let partial_opts = render::RenderOptions { colour_bar: false, ..request.render.clone() };
        // A partial map at most every PARTIAL_EVERY, plain progress between them.
        let throttle = Throttle::new(PROGRESS_EVERY);
        let mut last_partial: Option<Instant> = None;
        let mut on_partial = |map: &SaliencyMap, done: usize, total: usize| {
            if done < total && last_partial.is_some_and(|t| t.elapsed() < PARTIAL_EVERY) {
                self.progress(&throttle, job, done, total);
                return;
            }
            if done < total && !throttle.due(done, total) {
                return;
            }
            last_partial = Some(Instant::now());
            let (pic, _) = render::render(map, &image, &partial_opts, up);
            self.send(Event::Progress { job, done, total, picture: Some(Picture::from_rgba(pic)) });
        };
        let report = |d: usize, t: usize| self.progress(&throttle, job, d, t);
        // Occlusion reports through its partial maps; the others through the progress callback.
        let progress = Progress::none().with_cancel(&ticket.cancel);
        let progress = if matches!(request.method, easel_core::explain::Method::Occlusion(_)) { progress } else { progress.with_report(&report) };
        let provenance = Provenance { image: image_name, device: self.device_words() };
        match explain::run(&model, &image, &provenance, request, progress, &mut on_partial) {
            Ok(output) => self.send(Event::Explained { job, output: Box::new(output) }),
            Err(e) => self.finish_err(job, e),
        }
    }
}

/// A loaded model, as the UI sees it.
fn summary_of(m: &Classifier, path: &Path) -> ModelSummary {
    ModelSummary {
        name: m.card.name.clone(),
        path: path.to_path_buf(),
        architecture: m.card.architecture.name(),
        classes: m.card.classes.clone(),
        input: (m.card.input.channels, m.card.input.height, m.card.input.width),
        hash: m.hash.clone(),
        stages: m.net.stage_names(),
    }
}
