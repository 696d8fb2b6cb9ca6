//! The compute worker: one named thread owns the burn device and the loaded models. The UI
//! sends typed requests over a bounded channel and drains typed events with `try_recv`; the
//! worker wakes the UI through a plain repaint closure, so nothing here knows about egui
//! beyond image buffers it prepares for textures.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use crate::data::{self, LabelledImages};
use crate::device::{select_device, ComputeDevice, DeviceChoice, DeviceInfo};
use crate::explain::{self, sanity, Method, SaliencyMap};
use crate::imaging::{self, PreparedImage};
use crate::models::Classifier;
use crate::predict::{top_k, ClassScore};
use crate::progress::Progress;
use crate::render::{self, RenderOptions};

/// A job's number: results for a job the UI no longer waits for are dropped.
pub type JobId = u64;

/// Where an image comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum ImageRef {
    File(PathBuf),
    /// Index into the worker's loaded labelled set.
    Set(usize),
}

/// One entry of the image list.
#[derive(Clone, Debug)]
pub struct ImageEntry {
    pub name: String,
    pub label: Option<usize>,
    pub source: ImageRef,
}

/// A picture ready for a texture: RGBA8, row-major.
#[derive(Clone, Debug)]
pub struct Picture {
    pub width: usize,
    pub height: usize,
    pub rgba: Vec<u8>,
}

impl Picture {
    pub fn from_rgba(img: image::RgbaImage) -> Picture {
        Picture { width: img.width() as usize, height: img.height() as usize, rgba: img.into_raw() }
    }
}

/// What the UI asks for.
pub enum Request {
    /// Choose the device; loaded models move to it.
    SetDevice(DeviceChoice),
    LoadModel { job: JobId, path: PathBuf },
    /// A folder, image files, or an IDX set.
    LoadImages { job: JobId, paths: Vec<PathBuf> },
    /// Prepare an image for the current model and predict it.
    Predict { job: JobId, image: ImageRef },
    Explain(ExplainJob),
    /// Re-colour a map with other render options (cheap; no model pass).
    Render { job: JobId, map: SaliencyMap, image: PreparedImage, opts: RenderOptions },
    /// Sanity cascade and deletion / insertion curves for a map.
    Trust { job: JobId, image: PreparedImage, method: Method, target: usize, map: SaliencyMap, cancel: Arc<AtomicBool> },
    /// Write a report folder for a domain expert.
    ExportReport { job: JobId, dir: PathBuf, report: Box<ReportContent> },
    /// Write a PNG.
    SavePng { job: JobId, path: PathBuf, picture: Picture },
    /// Run the model over the loaded labelled set (cached by model and data).
    Evaluate { job: JobId, batch_size: usize, cancel: Arc<AtomicBool> },
    /// Read predictions computed elsewhere.
    LoadPredictions { job: JobId, path: PathBuf },
    /// Class counts of another split (e.g. the training set) for the distribution chart.
    SplitCounts { job: JobId, path: PathBuf, split: String },
    /// Small pictures of images for a gallery.
    Thumbnails { job: JobId, items: Vec<(usize, ImageRef)> },
    LoadCost { job: JobId, path: PathBuf, k: usize },
    SaveText { job: JobId, path: PathBuf, text: String },
}

/// Everything a report folder holds.
pub struct ReportContent {
    pub image: PreparedImage,
    pub image_name: String,
    pub maps: Vec<(String, SaliencyMap, RenderOptions)>,
    pub settings: serde_json::Value,
}

pub struct ExplainJob {
    pub job: JobId,
    pub image: PreparedImage,
    pub method: Method,
    pub target: Option<usize>,
    pub opts: RenderOptions,
    pub cancel: Arc<AtomicBool>,
    /// Also compute the quick sanity score and deletion AUC.
    pub trust: bool,
}

/// A loaded model, as the UI sees it.
#[derive(Clone, Debug)]
pub struct ModelSummary {
    pub name: String,
    pub path: PathBuf,
    pub architecture: String,
    pub classes: Vec<String>,
    pub input: (usize, usize, usize),
    pub hash: String,
    pub stages: Vec<String>,
}

/// The quick trust figures computed beside a map.
#[derive(Clone, Debug)]
pub struct TrustFigures {
    pub sanity: Option<sanity::SanityReport>,
    pub deletion_auc: Option<f64>,
    pub insertion_auc: Option<f64>,
}

/// What the worker reports.
pub enum Event {
    Device(DeviceInfo),
    ModelLoaded { job: JobId, model: ModelSummary },
    ImagesLoaded { job: JobId, entries: Vec<ImageEntry>, source: String },
    Predicted { job: JobId, image: PreparedImage, picture: Picture, top: Vec<ClassScore> },
    ExplainProgress { job: JobId, done: usize, total: usize, picture: Option<Picture> },
    Explained { job: JobId, result: Box<ExplainResult> },
    Rendered { job: JobId, picture: Picture, scale: f32 },
    Trusted { job: JobId, figures: TrustFigures },
    Saved { job: JobId, path: PathBuf },
    Failed { job: Option<JobId>, message: String },
    Cancelled { job: JobId },
    EvalProgress { job: JobId, done: usize, total: usize },
    Evaluated { job: JobId, predictions: crate::metrics::Predictions, cached: bool, secs: f64, source: String },
    SplitCounts { job: JobId, counts: Vec<usize>, source: String },
    Thumbnails { job: JobId, pictures: Vec<(usize, Picture)> },
    CostLoaded { job: JobId, cost: crate::metrics::CostMatrix },
}

pub struct ExplainResult {
    pub method: Method,
    pub target: usize,
    pub map: SaliencyMap,
    pub picture: Picture,
    pub scale: f32,
    pub convergence_delta: Option<f32>,
    pub layer: Option<String>,
    pub adversarial: Option<AdversarialPictures>,
    pub trust: Option<TrustFigures>,
    pub elapsed_secs: f64,
}

pub struct AdversarialPictures {
    pub result: explain::AdversarialResult,
    pub adversarial: Picture,
    pub perturbation: Picture,
}

/// The UI's handle: a bounded request channel, the event receiver, and the thread.
pub struct WorkerHandle {
    requests: SyncSender<Request>,
    pub events: Receiver<Event>,
    _thread: std::thread::JoinHandle<()>,
}

/// Requests waiting at most; a full queue is reported, not blocked on.
const QUEUE_DEPTH: usize = 64;

/// Progress and partial maps reach the UI at most this often (each costs a repaint, which
/// under a software renderer takes cores from the computation).
const PARTIAL_EVERY: std::time::Duration = std::time::Duration::from_millis(400);

/// Pictures of small inputs are enlarged to at least this many pixels a side.
pub const PICTURE_MIN_PX: usize = 224;

impl WorkerHandle {
    pub fn spawn(device: DeviceChoice, repaint: Arc<dyn Fn() + Send + Sync>) -> WorkerHandle {
        let (req_tx, req_rx) = std::sync::mpsc::sync_channel::<Request>(QUEUE_DEPTH);
        let (ev_tx, ev_rx) = std::sync::mpsc::channel::<Event>();
        let thread = std::thread::Builder::new()
            .name("easel-compute".into())
            .spawn(move || {
                let mut w = Worker { device: None, model: None, set: None, set_source: None, events: ev_tx, repaint };
                w.set_device(device);
                while let Ok(req) = req_rx.recv() {
                    // A panic in one job must not take the worker down with it.
                    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.handle(req)));
                    if outcome.is_err() {
                        w.send(Event::Failed { job: None, message: "internal error in the compute worker (see the terminal)".into() });
                    }
                }
            })
            .expect("spawn the compute worker");
        WorkerHandle { requests: req_tx, events: ev_rx, _thread: thread }
    }

    /// Queue a request without blocking the UI.
    pub fn send(&self, req: Request) -> Result<(), String> {
        match self.requests.try_send(req) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err("the compute worker is busy; try again in a moment".into()),
            Err(TrySendError::Disconnected(_)) => Err("the compute worker stopped".into()),
        }
    }
}

struct Worker {
    device: Option<ComputeDevice>,
    model: Option<(PathBuf, Arc<Classifier>)>,
    set: Option<LabelledImages>,
    /// Where `set` came from, for the evaluation cache.
    set_source: Option<data::DataSource>,
    events: std::sync::mpsc::Sender<Event>,
    repaint: Arc<dyn Fn() + Send + Sync>,
}

impl Worker {
    fn send(&self, e: Event) {
        let _ = self.events.send(e);
        (self.repaint)();
    }

    fn fail(&self, job: JobId, e: impl std::fmt::Display) {
        self.send(Event::Failed { job: Some(job), message: e.to_string() });
    }

    fn device(&self) -> burn::tensor::Device {
        self.device.as_ref().map(|d| d.device.clone()).unwrap_or_else(burn::tensor::Device::flex)
    }

    fn set_device(&mut self, choice: DeviceChoice) {
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
        self.send(Event::Device(info));
    }

    fn handle(&mut self, req: Request) {
        match req {
            Request::SetDevice(c) => self.set_device(c),
            Request::LoadModel { job, path } => match Classifier::load(&path, &self.device()) {
                Ok(m) => {
                    let summary = ModelSummary {
                        name: m.card.name.clone(),
                        path: path.clone(),
                        architecture: m.card.architecture.name(),
                        classes: m.card.classes.clone(),
                        input: (m.card.input.channels, m.card.input.height, m.card.input.width),
                        hash: m.hash.clone(),
                        stages: m.net.stage_names(),
                    };
                    self.model = Some((path, Arc::new(m)));
                    self.send(Event::ModelLoaded { job, model: summary });
                }
                Err(e) => self.fail(job, format!("cannot load the model {}: {e}", path.display())),
            },
            Request::LoadImages { job, paths } => self.load_images(job, paths),
            Request::Predict { job, image } => {
                if let Err(e) = self.predict(job, &image) {
                    self.fail(job, e);
                }
            }
            Request::Explain(j) => self.explain(j),
            Request::Render { job, map, image, opts } => {
                let up = render::upscale_for(image.height.max(image.width), PICTURE_MIN_PX);
                let (pic, scale) = render::render(&map, &image, &opts, up);
                self.send(Event::Rendered { job, picture: Picture::from_rgba(pic), scale });
            }
            Request::Trust { job, image, method, target, map, cancel } => {
                let Some(model) = self.current_model(job) else { return };
                let progress = Progress::none().with_cancel(&cancel);
                match trust_figures(&model, &image, &method, target, &map, true, progress) {
                    Ok(f) => self.send(Event::Trusted { job, figures: f }),
                    Err(crate::Error::Cancelled) => self.send(Event::Cancelled { job }),
                    Err(e) => self.fail(job, e),
                }
            }
            Request::ExportReport { job, dir, report } => match write_report(&dir, &report) {
                Ok(written) => self.send(Event::Saved { job, path: written }),
                Err(e) => self.fail(job, format!("cannot write the report: {e}")),
            },
            Request::Evaluate { job, batch_size, cancel } => self.evaluate(job, batch_size, &cancel),
            Request::LoadPredictions { job, path } => {
                let classes = self.model.as_ref().map(|(_, m)| m.card.classes.clone());
                match crate::metrics::Predictions::read_csv(&path, classes.as_deref()) {
                    Ok(p) => self.send(Event::Evaluated { job, predictions: p, cached: false, secs: 0.0, source: path.display().to_string() }),
                    Err(e) => self.fail(job, e),
                }
            }
            Request::SplitCounts { job, path, split } => {
                let Some(model) = self.current_model(job) else { return };
                let counts = data::resolve_source(&path, &split)
                    .and_then(|s| data::load_source(&s, &model.card.input, &model.card.classes))
                    .map(|set| set.class_counts());
                match counts {
                    Ok(counts) => self.send(Event::SplitCounts { job, counts, source: format!("{} ({split})", path.display()) }),
                    Err(e) => self.fail(job, format!("cannot read the {split} split: {e}")),
                }
            }
            Request::Thumbnails { job, items } => {
                let Some(model) = self.current_model(job) else { return };
                let pictures = items
                    .into_iter()
                    .filter_map(|(i, r)| {
                        let img = self.prepare(&model, &r).ok()?;
                        let up = render::upscale_for(img.height.max(img.width), 72);
                        let pic = render::image_picture(&img, up);
                        let pic = image::imageops::resize(&pic, 72, 72, image::imageops::FilterType::Triangle);
                        Some((i, Picture::from_rgba(pic)))
                    })
                    .collect();
                self.send(Event::Thumbnails { job, pictures });
            }
            Request::LoadCost { job, path, k } => match crate::metrics::CostMatrix::read_csv(&path, k) {
                Ok(cost) => self.send(Event::CostLoaded { job, cost }),
                Err(e) => self.fail(job, e),
            },
            Request::SaveText { job, path, text } => match crate::fsutil::write_atomic(&path, text.as_bytes()) {
                Ok(()) => self.send(Event::Saved { job, path }),
                Err(e) => self.fail(job, e),
            },
            Request::SavePng { job, path, picture } => {
                let path = crate::fsutil::unused_path(&path);
                let result = image::RgbaImage::from_raw(picture.width as u32, picture.height as u32, picture.rgba)
                    .ok_or_else(|| "bad picture size".to_string())
                    .and_then(|img| png_bytes(&img))
                    .and_then(|b| crate::fsutil::write_atomic(&path, &b).map_err(|e| e.to_string()));
                match result {
                    Ok(()) => self.send(Event::Saved { job, path }),
                    Err(e) => self.fail(job, format!("cannot save {}: {e}", path.display())),
                }
            }
        }
    }

    fn current_model(&self, job: JobId) -> Option<Arc<Classifier>> {
        match &self.model {
            Some((_, m)) => Some(m.clone()),
            None => {
                self.fail(job, "open a model first");
                None
            }
        }
    }

    fn evaluate(&self, job: JobId, batch_size: usize, cancel: &AtomicBool) {
        let Some(model) = self.current_model(job) else { return };
        let (Some(set), Some(source)) = (&self.set, &self.set_source) else {
            return self.fail(job, "open a labelled set first (an IDX set, or a folder with one sub-folder per class)");
        };
        let started = std::time::Instant::now();
        let report = |done: usize, total: usize| {
            let _ = self.events.send(Event::EvalProgress { job, done, total });
            (self.repaint)();
        };
        let progress = Progress::none().with_cancel(cancel).with_report(&report);
        match crate::evaluate::evaluate_cached(&model, source, set, batch_size, true, progress) {
            Ok((p, cached)) => self.send(Event::Evaluated {
                job,
                predictions: p,
                cached,
                secs: started.elapsed().as_secs_f64(),
                source: format!("{source:?}"),
            }),
            Err(crate::Error::Cancelled) => self.send(Event::Cancelled { job }),
            Err(e) => self.fail(job, e),
        }
    }

    fn load_images(&mut self, job: JobId, paths: Vec<PathBuf>) {
        // A single IDX file or a folder holding IDX files is a labelled set; it is read with
        // the current model's input (28x28 grey for Fashion-MNIST).
        if let [p] = paths.as_slice() {
            let idx = data::resolve_source(p, "t10k");
            if let Ok(src @ data::DataSource::Idx { .. }) = idx {
                let Some(model) = self.current_model(job) else { return };
                match data::load_source(&src, &model.card.input, &model.card.classes) {
                    Ok(set) => {
                        let entries = (0..set.len())
                            .map(|i| ImageEntry { name: format!("#{i}"), label: Some(set.labels[i]), source: ImageRef::Set(i) })
                            .collect();
                        self.set = Some(set);
                        self.set_source = Some(src);
                        self.send(Event::ImagesLoaded { job, entries, source: p.display().to_string() });
                    }
                    Err(e) => self.fail(job, e),
                }
                return;
            }
            // A folder of class folders is a labelled set too.
            let has_class_dirs = p.is_dir()
                && std::fs::read_dir(p).map(|r| r.flatten().any(|e| e.path().is_dir())).unwrap_or(false)
                && imaging::list_images(std::slice::from_ref(p)).is_err();
            if has_class_dirs {
                let Some(model) = self.current_model(job) else { return };
                match data::load_image_folder(p, &model.card.input, &model.card.classes) {
                    Ok(set) => {
                        let entries = (0..set.len())
                            .map(|i| {
                                let name = PathBuf::from(&set.sources[i]).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                                ImageEntry { name, label: Some(set.labels[i]), source: ImageRef::Set(i) }
                            })
                            .collect();
                        self.set = Some(set);
                        self.set_source = Some(data::DataSource::Folder(p.clone()));
                        self.send(Event::ImagesLoaded { job, entries, source: p.display().to_string() });
                    }
                    Err(e) => self.fail(job, e),
                }
                return;
            }
        }
        match imaging::list_images(&paths) {
            Ok(files) => {
                self.set = None;
                self.set_source = None;
                let entries = files
                    .into_iter()
                    .map(|f| ImageEntry {
                        name: f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                        label: None,
                        source: ImageRef::File(f),
                    })
                    .collect();
                let source = paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
                self.send(Event::ImagesLoaded { job, entries, source });
            }
            Err(e) => self.fail(job, e),
        }
    }

    fn prepare(&self, model: &Classifier, image: &ImageRef) -> crate::Result<PreparedImage> {
        match image {
            ImageRef::File(p) => imaging::load_prepared(p, &model.card.input),
            ImageRef::Set(i) => match &self.set {
                Some(set) if *i < set.len() => Ok(set.image(*i)),
                _ => Err(crate::Error::invalid("that image is no longer loaded")),
            },
        }
    }

    fn predict(&self, job: JobId, image: &ImageRef) -> crate::Result<()> {
        let Some(model) = self.current_model(job) else { return Ok(()) };
        let img = self.prepare(&model, image)?;
        let logits = model.logits(model.input_batch(&[&img]))?.remove(0);
        let top = top_k(&logits, model.num_classes(), &model.card.classes);
        let up = render::upscale_for(img.height.max(img.width), PICTURE_MIN_PX);
        let picture = Picture::from_rgba(render::image_picture(&img, up));
        self.send(Event::Predicted { job, image: img, picture, top });
        Ok(())
    }

    fn explain(&self, j: ExplainJob) {
        let Some(model) = self.current_model(j.job) else { return };
        if j.cancel.load(Ordering::Relaxed) {
            self.send(Event::Cancelled { job: j.job });
            return;
        }
        let up = render::upscale_for(j.image.height.max(j.image.width), PICTURE_MIN_PX);
        let progress = Progress::none().with_cancel(&j.cancel);
        let events = self.events.clone();
        let repaint = self.repaint.clone();
        let partial_opts = RenderOptions { colour_bar: false, ..j.opts.clone() };
        // A partial map at most every quarter second: each one costs the UI a repaint.
        let mut last_partial: Option<std::time::Instant> = None;
        let mut on_partial = |map: &SaliencyMap, done: usize, total: usize| {
            if done < total && last_partial.is_some_and(|t| t.elapsed() < PARTIAL_EVERY) {
                return;
            }
            last_partial = Some(std::time::Instant::now());
            let (pic, _) = render::render(map, &j.image, &partial_opts, up);
            let _ = events.send(Event::ExplainProgress { job: j.job, done, total, picture: Some(Picture::from_rgba(pic)) });
            repaint();
        };
        let last_report = std::sync::Mutex::new(None::<std::time::Instant>);
        let report = |done: usize, total: usize| {
            {
                let mut last = last_report.lock().unwrap_or_else(|e| e.into_inner());
                if done < total && last.is_some_and(|t| t.elapsed() < PARTIAL_EVERY) {
                    return;
                }
                *last = Some(std::time::Instant::now());
            }
            let _ = self.events.send(Event::ExplainProgress { job: j.job, done, total, picture: None });
            (self.repaint)();
        };
        // Occlusion reports through its partial maps; the others through the progress callback.
        let progress = if matches!(j.method, Method::Occlusion(_)) { progress } else { progress.with_report(&report) };
        let ex = match explain::explain(&model, &j.image, &j.method, j.target, progress, &mut on_partial) {
            Ok(ex) => ex,
            Err(crate::Error::Cancelled) => return self.send(Event::Cancelled { job: j.job }),
            Err(e) => return self.fail(j.job, e),
        };
        let (pic, scale) = render::render(&ex.map, &j.image, &j.opts, up);
        let adversarial = ex.adversarial.clone().map(|r| AdversarialPictures {
            adversarial: Picture::from_rgba(render::image_picture(&r.image, up)),
            perturbation: Picture::from_rgba(render::perturbation_picture(&r.perturbation, j.image.channels, j.image.height, j.image.width, up)),
            result: r,
        });
        let trust = if j.trust && !j.method.is_attack() && !matches!(j.method, Method::Occlusion(_)) {
            trust_figures(&model, &j.image, &j.method, ex.target, &ex.map, false, Progress::none().with_cancel(&j.cancel)).ok()
        } else {
            None
        };
        self.send(Event::Explained {
            job: j.job,
            result: Box::new(ExplainResult {
                method: ex.method,
                target: ex.target,
                map: ex.map,
                picture: Picture::from_rgba(pic),
                scale,
                convergence_delta: ex.convergence_delta,
                layer: ex.layer,
                adversarial,
                trust,
                elapsed_secs: ex.elapsed_secs,
            }),
        });
    }
}

/// Sanity (quick or cascade) and deletion/insertion AUCs of a map.
fn trust_figures(
    model: &Classifier,
    image: &PreparedImage,
    method: &Method,
    target: usize,
    map: &SaliencyMap,
    cascade: bool,
    progress: Progress<'_>,
) -> crate::Result<TrustFigures> {
    let mut map_of = |m: &Classifier| Ok(explain::explain(m, image, method, Some(target), progress, &mut |_, _, _| {})?.map);
    let sanity = sanity::sanity_check(model, map, cascade, 0, progress, &mut map_of)?;
    let x = imaging::normalise(image, &model.card.input);
    let del = sanity::perturbation_curve(model, &x, map, target, 20, false, progress)?;
    let ins = sanity::perturbation_curve(model, &x, map, target, 20, true, progress)?;
    Ok(TrustFigures { sanity: Some(sanity), deletion_auc: Some(del.auc), insertion_auc: Some(ins.auc) })
}

fn png_bytes(img: &image::RgbaImage) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).map_err(|e| e.to_string())?;
    Ok(out)
}

/// A folder a domain expert can open: the image, each map as PNG and NPY, settings JSON.
/// Write the report into `dir`, or a new name beside it if `dir` exists; returns the folder.
fn write_report(dir: &std::path::Path, r: &ReportContent) -> Result<PathBuf, String> {
    let dir = crate::fsutil::unused_path(dir);
    crate::fsutil::ensure_dir(&dir).map_err(|e| e.to_string())?;
    let up = render::upscale_for(r.image.height.max(r.image.width), PICTURE_MIN_PX);
    let write = |name: &str, bytes: &[u8]| crate::fsutil::write_atomic(&dir.join(name), bytes).map_err(|e| e.to_string());
    write("image.png", &png_bytes(&render::image_picture(&r.image, up))?)?;
    let mut names: HashMap<String, usize> = HashMap::new();
    for (name, map, opts) in &r.maps {
        let n = names.entry(name.clone()).or_insert(0);
        *n += 1;
        let stem = if *n == 1 { name.clone() } else { format!("{name}-{n}") };
        let (pic, _) = render::render(map, &r.image, opts, up);
        write(&format!("{stem}.png"), &png_bytes(&pic)?)?;
        write(&format!("{stem}.npy"), &crate::npy::npy_bytes(&map.shape(false), &map.values))?;
    }
    let settings = serde_json::json!({"image": r.image_name, "explanations": r.settings});
    write("settings.json", serde_json::to_string_pretty(&settings).map_err(|e| e.to_string())?.as_bytes())?;
    Ok(dir)
}
