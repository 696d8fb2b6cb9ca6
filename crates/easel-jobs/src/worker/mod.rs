//! The compute worker: one named thread owns the burn device, the loaded model and the open
//! labelled set. The app sends typed [`Request`]s over a bounded channel and drains typed
//! [`Event`]s with `try_recv`; the worker wakes the UI through a plain repaint closure, so
//! nothing here knows about egui. Every request carries a [`Ticket`]: a request whose ticket
//! was cancelled while it waited is skipped, so browsing never waits on stale jobs.

mod handlers;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use easel_core::device::{DeviceChoice, DeviceInfo};
use easel_core::explain::sanity::SanityMode;
use easel_core::explain::{Method, SaliencyMap};
use easel_core::imaging::PreparedImage;
use easel_core::metrics::versus::VersusReport;
use easel_core::metrics::{CostMatrix, Predictions};
use easel_core::predict::ClassScore;
use easel_core::render::RenderOptions;

use easel_core::explain::fool::FoolStep;

use crate::explain::{ExplainOutput, ExplainRequest, TrustFigures};
use crate::fool::{FoolOutput, FoolRequest, GalleryOutput};
use crate::pair::PairOutput;
use crate::picture::Picture;
use crate::report::Report;
use crate::robustness::{RobustnessOutput, RobustnessRequest};
use crate::slot::{JobId, Ticket};

/// Where an image comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum ImageRef {
    File(PathBuf),
    /// Index into the worker's open labelled set.
    Set(usize),
}

/// One entry of the image list.
#[derive(Clone, Debug)]
pub struct ImageEntry {
    pub name: String,
    /// Index into [`ImageList::classes`].
    pub label: Option<usize>,
    pub source: ImageRef,
}

/// The open images: files, or a labelled set with its own class names.
#[derive(Clone, Debug, Default)]
pub struct ImageList {
    pub entries: Vec<ImageEntry>,
    /// What was opened, in words (a folder, a file list).
    pub source: String,
    /// The labelled set's class names (labels index these, whatever model is open).
    pub classes: Vec<String>,
}

impl ImageList {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every image has a label.
    pub fn is_labelled(&self) -> bool {
        !self.entries.is_empty() && self.entries.iter().all(|e| e.label.is_some())
    }

    /// The class name of image `i`'s label, if it has one.
    pub fn label_name(&self, i: usize) -> Option<&str> {
        let l = self.entries.get(i)?.label?;
        self.classes.get(l).map(String::as_str)
    }
}

/// A loaded model, as the UI sees it.
#[derive(Clone, Debug)]
pub struct ModelSummary {
    pub name: String,
    pub path: PathBuf,
    pub architecture: String,
    pub classes: Vec<String>,
    /// (channels, height, width)
    pub input: (usize, usize, usize),
    pub hash: String,
    pub stages: Vec<String>,
}

impl ModelSummary {
    /// A class name, or "class N" for an index the model does not have.
    pub fn class_name(&self, k: usize) -> String {
        self.classes.get(k).cloned().unwrap_or_else(|| format!("class {k}"))
    }
}

/// Where model B's predictions come from, to compare with A's.
#[derive(Clone, Debug, PartialEq)]
pub enum VersusSource {
    /// A predictions CSV computed anywhere.
    Csv(PathBuf),
    /// The second model (see [`Request::LoadSecondModel`]) over the open labelled set.
    SecondModel,
}

/// What the UI asks for.
pub enum Request {
    /// Choose the device; the loaded model moves to it.
    SetDevice(DeviceChoice),
    LoadModel {
        ticket: Ticket,
        path: PathBuf,
    },
    /// A folder, image files, or an IDX set.
    LoadImages {
        ticket: Ticket,
        paths: Vec<PathBuf>,
    },
    /// Prepare an image for the current model and predict it.
    Predict {
        ticket: Ticket,
        image: ImageRef,
    },
    /// One explanation (or attack) of a prepared image.
    Explain {
        ticket: Ticket,
        image: PreparedImage,
        image_name: String,
        request: Box<ExplainRequest>,
    },
    /// Re-colour a map with other render options (cheap; no model pass).
    Render {
        ticket: Ticket,
        map: SaliencyMap,
        image: PreparedImage,
        opts: RenderOptions,
    },
    /// The sanity check (quick or cascade) and deletion / insertion curves of a map.
    Trust {
        ticket: Ticket,
        image: PreparedImage,
        method: Box<Method>,
        target: usize,
        map: SaliencyMap,
        mode: SanityMode,
    },
    /// Write a report folder for a domain expert.
    ExportReport {
        ticket: Ticket,
        dir: PathBuf,
        report: Box<Report>,
    },
    /// Write a PNG (a new name if the file exists).
    SavePng {
        ticket: Ticket,
        path: PathBuf,
        picture: Picture,
    },
    /// Run the model over the open labelled set, cached by model and data in `cache`.
    Evaluate {
        ticket: Ticket,
        batch_size: usize,
        cache: Option<PathBuf>,
    },
    /// Read predictions computed elsewhere.
    LoadPredictions {
        ticket: Ticket,
        path: PathBuf,
    },
    /// Class counts of another split (e.g. the training set) for the distribution chart.
    SplitCounts {
        ticket: Ticket,
        path: PathBuf,
        split: String,
    },
    /// Small pictures of images for a gallery: (key, image).
    Thumbnails {
        ticket: Ticket,
        items: Vec<(usize, ImageRef)>,
    },
    LoadCost {
        ticket: Ticket,
        path: PathBuf,
        k: usize,
    },
    /// Write a text file (replacing it: the user chose the name in a save dialog).
    SaveText {
        ticket: Ticket,
        path: PathBuf,
        text: String,
    },
    /// Open a second model (B) beside the current one (A), to compare them.
    LoadSecondModel {
        ticket: Ticket,
        path: PathBuf,
    },
    /// Compare A's predictions with B's (joined by path).
    Versus {
        ticket: Ticket,
        a: Box<Predictions>,
        b: VersusSource,
        cost: Option<CostMatrix>,
        cache: Option<PathBuf>,
    },
    /// Both models' maps of one image (prepared for A), one method, one target, one scale.
    ExplainPair {
        ticket: Ticket,
        image: PreparedImage,
        image_name: String,
        request: Box<ExplainRequest>,
    },
    /// Search for an image the model takes for one class.
    Fool {
        ticket: Ticket,
        request: Box<FoolRequest>,
    },
    /// The same search for each of `classes` (the gallery).
    FoolAll {
        ticket: Ticket,
        request: Box<FoolRequest>,
        classes: Vec<usize>,
    },
    /// Accuracy against attack strength over the open labelled set.
    Robustness {
        ticket: Ticket,
        request: Box<RobustnessRequest>,
    },
}

impl Request {
    fn ticket(&self) -> Option<&Ticket> {
        match self {
            Request::SetDevice(_) => None,
            Request::LoadModel { ticket, .. }
            | Request::LoadImages { ticket, .. }
            | Request::Predict { ticket, .. }
            | Request::Explain { ticket, .. }
            | Request::Render { ticket, .. }
            | Request::Trust { ticket, .. }
            | Request::ExportReport { ticket, .. }
            | Request::SavePng { ticket, .. }
            | Request::Evaluate { ticket, .. }
            | Request::LoadPredictions { ticket, .. }
            | Request::SplitCounts { ticket, .. }
            | Request::Thumbnails { ticket, .. }
            | Request::LoadCost { ticket, .. }
            | Request::SaveText { ticket, .. }
            | Request::Fool { ticket, .. }
            | Request::FoolAll { ticket, .. }
            | Request::Robustness { ticket, .. }
            | Request::LoadSecondModel { ticket, .. }
            | Request::Versus { ticket, .. }
            | Request::ExplainPair { ticket, .. } => Some(ticket),
        }
    }
}

/// An image prepared for the model, its picture and its predictions.
pub struct Prediction {
    pub image: PreparedImage,
    pub picture: Picture,
    pub top: Vec<ClassScore>,
    /// How long the forward pass took (for time estimates).
    pub forward_secs: f64,
}

/// What the worker reports.
pub enum Event {
    Device(Box<DeviceInfo>),
    ModelLoaded {
        job: JobId,
        model: Box<ModelSummary>,
    },
    ImagesLoaded {
        job: JobId,
        list: Box<ImageList>,
    },
    Predicted {
        job: JobId,
        prediction: Box<Prediction>,
    },
    /// Progress of any job; occlusion adds its partial map.
    Progress {
        job: JobId,
        done: usize,
        total: usize,
        picture: Option<Picture>,
    },
    Explained {
        job: JobId,
        output: Box<ExplainOutput>,
    },
    Rendered {
        job: JobId,
        picture: Picture,
        scale: f32,
    },
    Trusted {
        job: JobId,
        figures: TrustFigures,
    },
    Saved {
        job: JobId,
        path: PathBuf,
    },
    Failed {
        job: Option<JobId>,
        message: String,
    },
    Cancelled {
        job: JobId,
    },
    Evaluated {
        job: JobId,
        predictions: Box<Predictions>,
        cached: bool,
        secs: f64,
    },
    SplitCounts {
        job: JobId,
        counts: Vec<usize>,
        source: String,
    },
    Thumbnails {
        job: JobId,
        pictures: Vec<(usize, Picture)>,
    },
    CostLoaded {
        job: JobId,
        cost: CostMatrix,
    },
    /// A step of a fooling search, with the current image now and then.
    FoolStep {
        job: JobId,
        step: FoolStep,
        picture: Option<Picture>,
    },
    Fooled {
        job: JobId,
        output: Box<FoolOutput>,
    },
    /// One class of an all-classes run is done (done of total).
    FooledClass {
        job: JobId,
        done: usize,
        total: usize,
        output: Box<FoolOutput>,
    },
    FooledAll {
        job: JobId,
        output: Box<GalleryOutput>,
    },
    Robust {
        job: JobId,
        output: Box<RobustnessOutput>,
    },
    SecondModelLoaded {
        job: JobId,
        model: Box<ModelSummary>,
    },
    /// B's predictions in A's row order and the comparison.
    Versus {
        job: JobId,
        b: Box<Predictions>,
        report: Box<VersusReport>,
        /// What B is, in words (a model's name or a file).
        b_name: String,
    },
    ExplainedPair {
        job: JobId,
        output: Box<PairOutput>,
    },
}

impl Event {
    /// The job the event belongs to.
    pub fn job(&self) -> Option<JobId> {
        match self {
            Event::Device(_) => None,
            Event::Failed { job, .. } => *job,
            Event::ModelLoaded { job, .. }
            | Event::ImagesLoaded { job, .. }
            | Event::Predicted { job, .. }
            | Event::Progress { job, .. }
            | Event::Explained { job, .. }
            | Event::Rendered { job, .. }
            | Event::Trusted { job, .. }
            | Event::Saved { job, .. }
            | Event::Cancelled { job }
            | Event::Evaluated { job, .. }
            | Event::SplitCounts { job, .. }
            | Event::Thumbnails { job, .. }
            | Event::CostLoaded { job, .. }
            | Event::FoolStep { job, .. }
            | Event::Fooled { job, .. }
            | Event::FooledClass { job, .. }
            | Event::FooledAll { job, .. }
            | Event::Robust { job, .. }
            | Event::SecondModelLoaded { job, .. }
            | Event::Versus { job, .. }
            | Event::ExplainedPair { job, .. } => Some(*job),
        }
    }
}

/// The UI's handle: a bounded request channel, the event receiver, and the thread.
pub struct WorkerHandle {
    requests: SyncSender<Request>,
    events: Receiver<Event>,
    _thread: std::thread::JoinHandle<()>,
}

/// Requests waiting at most; a full queue is reported, not blocked on.
const QUEUE_DEPTH: usize = 256;

/// A wake-up for the UI; the worker calls it after each event.
pub type Repaint = Arc<dyn Fn() + Send + Sync>;

impl WorkerHandle {
    /// Start the worker on `device`. It opens the device on its own thread and answers with
    /// [`Event::Device`].
    pub fn spawn(device: DeviceChoice, repaint: Repaint) -> std::io::Result<WorkerHandle> {
        let (req_tx, req_rx) = std::sync::mpsc::sync_channel::<Request>(QUEUE_DEPTH);
        let (ev_tx, ev_rx) = std::sync::mpsc::channel::<Event>();
        let thread = std::thread::Builder::new().name("easel-compute".into()).spawn(move || {
            let mut w = handlers::Worker::new(ev_tx, repaint);
            w.set_device(device);
            while let Ok(req) = req_rx.recv() {
                if let Some(t) = req.ticket().filter(|t| t.is_cancelled()) {
                    // superseded while it waited: nobody wants its answer
                    let _ = t;
                    continue;
                }
                // A panic in one job must not take the worker down with it.
                let job = req.ticket().map(|t| t.id);
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.handle(req)));
                if outcome.is_err() {
                    w.send(Event::Failed { job, message: "internal error in the compute worker (see the terminal)".into() });
                }
            }
        })?;
        Ok(WorkerHandle { requests: req_tx, events: ev_rx, _thread: thread })
    }

    /// Queue a request without blocking the UI.
    pub fn send(&self, req: Request) -> Result<(), String> {
        match self.requests.try_send(req) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err("the compute worker is busy; try again in a moment".into()),
            Err(TrySendError::Disconnected(_)) => Err("the compute worker stopped".into()),
        }
    }

    /// The next event, if one is waiting (never blocks).
    pub fn try_recv(&self) -> Option<Event> {
        self.events.try_recv().ok()
    }
}
