//! The desktop app: persisted state, runtime handles, the event drain in `logic`, the panels in
//! `ui`, and the commands panels return, handled in one place after the frame.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::Instant;

use crate::device::{DeviceChoice, DeviceInfo};
use crate::explain::{Method, SaliencyMap};
use crate::imaging::PreparedImage;
use crate::predict::ClassScore;
use crate::render::{Colormap, RenderOptions, Scale, Sign};
use eframe::egui;

use super::panels;
use super::state::{Demo, State, Tab};
use super::worker::{
    Event, ExplainJob, ExplainResult, ImageEntry, ImageRef, JobId, ModelSummary, Picture, ReportContent, Request, TrustFigures, WorkerHandle,
};

/// What a panel asks for; handled after the frame in [`EaselApp::run_commands`].
#[derive(Debug, Clone)]
pub enum Command {
    LoadDemo(Demo),
    OpenModel(PathBuf),
    OpenImages(Vec<PathBuf>),
    PickModel,
    PickImages { folder: bool },
    SelectImage(usize),
    SelectClass(Option<usize>),
    SetMethod(String),
    /// Settings or target changed: cancel the running map and start a new one.
    Rerun,
    /// Only the colours changed: re-render the maps on screen.
    Rerender,
    CancelExplain,
    SetDevice(DeviceChoice),
    RunTrust,
    RunCompare,
    RunAttack,
    SavePng,
    ExportReport,
    /// Save the map on screen as a PNG here (a new name if the file exists).
    SavePngTo(PathBuf),
    /// Write a report folder here (a new name if the folder exists).
    ExportReportTo(PathBuf),
    DismissError(usize),
    /// Dataset view.
    Evaluate,
    PickPredictions,
    PickCost { save: bool },
    PickTrainSplit,
    /// Recompute metrics after a change of merges, costs or decisions.
    RefreshDataset,
    /// Open the gallery of one confusion-matrix cell (true, predicted) of the merged classes.
    OpenCell(usize, usize),
    /// Open the label-issues gallery.
    OpenIssues,
    GalleryPage(usize),
    /// Show a sample's predicted-class map next to its true-class map (the Compare view).
    OpenSample(usize),
    /// Sampling lab.
    RunLab,
    CancelLab,
    PickRuns,
    OpenRuns(PathBuf),
    RefreshLab,
}

/// The sampling lab's runtime part.
#[derive(Default)]
pub struct LabView {
    pub handle: Option<super::lab::LabHandle>,
    pub current: Option<String>,
    /// (epoch, batches done, batches in the epoch)
    pub progress: (usize, usize, usize),
    pub train_counts: Option<Vec<usize>>,
    pub live: Vec<(String, Vec<crate::train::EpochReport>)>,
    pub records: Vec<crate::sampling::RunRecord>,
    pub dirs: Vec<PathBuf>,
    pub selected: Vec<bool>,
    /// Derived from the selected runs.
    pub rows: Vec<crate::sampling::ComparisonRow>,
    pub confusions: Vec<crate::metrics::ConfusionMatrix>,
    pub true_distribution: Vec<f64>,
    pub cost_is_custom: bool,
    /// Where new runs go; `None`: `lab-runs/` in the cache folder.
    pub out_root: Option<PathBuf>,
}

/// Figures derived from predictions, recomputed when merges or costs change.
pub struct Derived {
    pub preds: crate::metrics::Predictions,
    pub cost: crate::metrics::CostMatrix,
    pub report: crate::metrics::MetricsReport,
    pub optimal: Option<Vec<usize>>,
    pub curves: Option<crate::metrics::BinaryCurves>,
}

/// The Dataset view's runtime part.
#[derive(Default)]
pub struct DatasetView {
    pub job: Option<JobId>,
    pub cancel: Arc<AtomicBool>,
    pub progress: (usize, usize),
    pub predictions: Option<crate::metrics::Predictions>,
    pub cached: bool,
    pub secs: f64,
    pub derived: Option<Derived>,
    pub train_counts: Option<Vec<usize>>,
    pub train_source: String,
    /// The open gallery: its title and sample indices (all of them), and the page shown.
    pub gallery_title: String,
    pub gallery: Vec<usize>,
    pub gallery_page: usize,
    pub gallery_job: Option<JobId>,
    pub thumbnails: std::collections::HashMap<usize, Shown>,
    /// The confusion-matrix cell whose gallery is open (true, predicted).
    pub selected_cell: Option<(usize, usize)>,
}

/// Images per gallery page.
pub const GALLERY_PAGE: usize = 48;

/// A texture and the picture's size.
pub struct Shown {
    pub texture: egui::TextureHandle,
    pub size: [usize; 2],
}

/// The map on screen in the Explain view.
pub struct ExplainView {
    pub job: Option<JobId>,
    pub cancel: Arc<AtomicBool>,
    pub progress: (usize, usize),
    /// The live, partial map of the running job (occlusion).
    pub partial: Option<Shown>,
    pub result: Option<ExplainResult>,
    pub shown: Option<Shown>,
    /// The result on screen belongs to other settings than the running job.
    pub stale: bool,
    pub trust: Option<TrustFigures>,
    pub trust_job: Option<JobId>,
    pub render_job: Option<JobId>,
}

impl Default for ExplainView {
    fn default() -> Self {
        ExplainView {
            job: None,
            cancel: Arc::new(AtomicBool::new(false)),
            progress: (0, 0),
            partial: None,
            result: None,
            shown: None,
            stale: false,
            trust: None,
            trust_job: None,
            render_job: None,
        }
    }
}

/// One cell of the Compare grid.
pub struct CompareCell {
    pub title: String,
    pub method: Method,
    pub image: PreparedImage,
    pub target: Option<usize>,
    pub job: JobId,
    pub map: Option<SaliencyMap>,
    pub scale: Option<f32>,
    pub shown: Option<Shown>,
    pub error: Option<String>,
}

/// The image being looked at.
pub struct Current {
    pub index: usize,
    pub image: PreparedImage,
    pub picture: Shown,
    pub top: Vec<ClassScore>,
}

/// Per-frame time the UI thread spends in `logic` + `ui`, for the frame-time report.
#[derive(Default)]
pub struct FrameStats {
    pub work_ms: Vec<f32>,
    pub measuring: bool,
}

impl FrameStats {
    pub fn percentile(&self, p: f32) -> Option<f32> {
        if self.work_ms.is_empty() {
            return None;
        }
        let mut v = self.work_ms.clone();
        v.sort_by(f32::total_cmp);
        let i = ((v.len() - 1) as f32 * p / 100.0).round() as usize;
        Some(v[i])
    }
}

/// Options from the command line (`easel gui ...`).
#[derive(Clone, Debug, Default)]
pub struct StartOptions {
    pub demo: Option<Demo>,
    pub model: Option<PathBuf>,
    pub images: Vec<PathBuf>,
    pub method: Option<String>,
    /// Select the image whose name contains this.
    pub image: Option<String>,
    pub frame_stats: bool,
    /// Print "easel: explanation ready" on stdout when a map arrives (for scripts).
    pub announce: bool,
    pub device: Option<DeviceChoice>,
    pub tab: Option<Tab>,
    /// Open these sampling-lab runs.
    pub runs: Option<PathBuf>,
}

pub struct Runtime {
    pub worker: WorkerHandle,
    next_job: JobId,
    pub device: Option<DeviceInfo>,
    pub model: Option<ModelSummary>,
    pub model_job: Option<JobId>,
    pub images: Vec<ImageEntry>,
    pub images_source: String,
    pub images_job: Option<JobId>,
    pub current: Option<Current>,
    pub predict_job: Option<JobId>,
    /// The class the maps explain; `None` = the predicted class.
    pub target: Option<usize>,
    pub explain: ExplainView,
    pub compare: Vec<CompareCell>,
    pub compare_cancel: Arc<AtomicBool>,
    /// Images of the across-images row waiting for their prediction: (index, job).
    pub compare_pending: Vec<(usize, JobId)>,
    pub attack: ExplainView,
    pub attack_pictures: Option<(Shown, Shown)>,
    pub errors: Vec<String>,
    pub status: Option<String>,
    dialog_tx: Sender<DialogAnswer>,
    dialog_rx: Receiver<DialogAnswer>,
    pub dialog_open: bool,
    /// Dataset view: decide by minimum expected cost instead of the most probable class.
    pub decide_by_cost: bool,
    /// Scroll the image list to the selection (after keys move it).
    pub scroll_to_selected: bool,
    pub commands: Vec<Command>,
    pub frames: FrameStats,
    pub dataset: DatasetView,
    pub lab: LabView,
    frame_started: Option<Instant>,
    start: StartOptions,
    announced: bool,
    pub assets: Option<PathBuf>,
}

enum DialogAnswer {
    Model(Option<PathBuf>),
    Images(Option<Vec<PathBuf>>),
    SavePng(Option<PathBuf>),
    Report(Option<PathBuf>),
    Predictions(Option<PathBuf>),
    LoadCost(Option<PathBuf>),
    SaveCost(Option<PathBuf>),
    TrainSplit(Option<PathBuf>),
    Runs(Option<PathBuf>),
}

pub struct EaselApp {
    pub state: State,
    pub rt: Runtime,
}

/// The bundled `assets/` folder: beside the working directory, the executable, or the
/// source tree it was built from.
pub fn find_assets() -> Option<PathBuf> {
    let mut candidates = vec![PathBuf::from("assets")];
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(exe.ancestors().skip(1).take(4).map(|p| p.join("assets")));
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("assets"));
    candidates.into_iter().find(|p| p.join("efficientnet-lite0/card.json").is_file() || p.join("fashion-mnist").is_dir())
}

pub const STATE_KEY: &str = "easel-state";

impl EaselApp {
    pub fn new(ctx: &egui::Context, stored: Option<State>, start: StartOptions) -> EaselApp {
        let mut state = stored.unwrap_or_default();
        if let Some(d) = start.device {
            state.device = d;
        }
        let repaint_ctx = ctx.clone();
        let worker = WorkerHandle::spawn(state.device, Arc::new(move || repaint_ctx.request_repaint()));
        let (dialog_tx, dialog_rx) = std::sync::mpsc::channel();
        let rt = Runtime {
            worker,
            next_job: 1,
            device: None,
            model: None,
            model_job: None,
            images: Vec::new(),
            images_source: String::new(),
            images_job: None,
            current: None,
            predict_job: None,
            target: None,
            explain: ExplainView::default(),
            compare: Vec::new(),
            compare_cancel: Arc::new(AtomicBool::new(false)),
            compare_pending: Vec::new(),
            attack: ExplainView::default(),
            attack_pictures: None,
            errors: Vec::new(),
            status: None,
            dialog_tx,
            dialog_rx,
            dialog_open: false,
            decide_by_cost: false,
            scroll_to_selected: false,
            commands: Vec::new(),
            frames: FrameStats { measuring: start.frame_stats, ..Default::default() },
            dataset: DatasetView::default(),
            lab: LabView::default(),
            frame_started: None,
            start: start.clone(),
            announced: false,
            assets: find_assets(),
        };
        let mut app = EaselApp { state, rt };
        if let Some(m) = &start.method {
            app.state.method = m.clone();
        }
        if let Some(t) = start.tab {
            app.state.tab = t;
        }
        app.state.lab.train = app.lab_data().0;
        // First start: the demo; later starts: what was open last time.
        let cmds = if let Some(d) = start.demo {
            vec![Command::LoadDemo(d)]
        } else if let Some(m) = &start.model {
            let mut v = vec![Command::OpenModel(m.clone())];
            if !start.images.is_empty() {
                v.push(Command::OpenImages(start.images.clone()));
            }
            v
        } else if let Some(m) = app.state.model_path.clone().filter(|p| p.exists()) {
            let mut v = vec![Command::OpenModel(m)];
            if !app.state.image_paths.is_empty() {
                v.push(Command::OpenImages(app.state.image_paths.clone()));
            }
            v
        } else {
            vec![Command::LoadDemo(Demo::Photos)]
        };
        app.rt.commands.extend(cmds);
        if let Some(r) = &start.runs {
            app.rt.commands.push(Command::OpenRuns(r.clone()));
        }
        app.run_commands(ctx);
        app
    }

    fn job(&mut self) -> JobId {
        self.rt.next_job += 1;
        self.rt.next_job
    }

    fn send(&mut self, req: Request) {
        if let Err(e) = self.rt.worker.send(req) {
            self.rt.errors.push(e);
        }
    }

    /// The current method's settings (defaults for this model's input size).
    pub fn method(&self) -> Option<Method> {
        let (_, h, w) = self.rt.model.as_ref()?.input;
        match self.state.methods.get(&self.state.method) {
            Some(m) => Some(m.clone()),
            None => Method::default_for(&self.state.method, h, w).ok(),
        }
    }

    /// Render options with the method's natural sign and colormap when `auto_colours` is on.
    pub fn render_options(&self, method: &Method) -> RenderOptions {
        let mut o = self.state.render.clone();
        if self.state.auto_colours {
            if method.is_signed() {
                o.sign = Sign::All;
                o.colormap = Colormap::Diverging;
            } else {
                o.sign = Sign::Absolute;
                o.colormap = Colormap::Inferno;
            }
        }
        o
    }

    pub fn run_commands(&mut self, ctx: &egui::Context) {
        let cmds = std::mem::take(&mut self.rt.commands);
        for c in cmds {
            self.run_command(ctx, c);
        }
    }

    fn run_command(&mut self, ctx: &egui::Context, cmd: Command) {
        match cmd {
            Command::LoadDemo(demo) => {
                let Some(assets) = self.rt.assets.clone() else {
                    self.rt.errors.push("the bundled assets/ folder was not found; open a model and images instead".into());
                    return;
                };
                let (model, images) = match demo {
                    Demo::Fashion => (assets.join("fashion-mnist/model/card.json"), vec![assets.join("fashion-mnist")]),
                    Demo::Photos => (assets.join("efficientnet-lite0/card.json"), vec![assets.join("photos")]),
                };
                self.run_command(ctx, Command::OpenModel(model));
                self.run_command(ctx, Command::OpenImages(images));
            }
            Command::OpenModel(p) => {
                let job = self.job();
                self.rt.model_job = Some(job);
                self.cancel_running();
                self.send(Request::LoadModel { job, path: p });
            }
            Command::OpenImages(paths) => {
                let job = self.job();
                self.rt.images_job = Some(job);
                self.send(Request::LoadImages { job, paths });
            }
            Command::SavePngTo(p) => self.save_png(p),
            Command::ExportReportTo(p) => self.export_report(p),
            Command::PickModel
            | Command::PickImages { .. }
            | Command::SavePng
            | Command::ExportReport
            | Command::PickPredictions
            | Command::PickCost { .. }
            | Command::PickTrainSplit
            | Command::PickRuns => self.open_dialog(cmd),
            Command::RunLab => self.start_lab(ctx),
            Command::CancelLab => {
                if let Some(h) = &self.rt.lab.handle {
                    h.cancel.store(true, Ordering::Relaxed);
                }
            }
            Command::OpenRuns(dir) => self.open_runs(&dir),
            Command::RefreshLab => self.refresh_lab(),
            Command::Evaluate => {
                self.rt.dataset.cancel.store(true, Ordering::Relaxed);
                let cancel = Arc::new(AtomicBool::new(false));
                let job = self.job();
                self.rt.dataset.cancel = cancel.clone();
                self.rt.dataset.job = Some(job);
                self.rt.dataset.progress = (0, 0);
                self.send(Request::Evaluate { job, batch_size: 256, cancel });
            }
            Command::RefreshDataset => self.refresh_dataset(),
            Command::OpenCell(t, p) => {
                if let Some(d) = &self.rt.dataset.derived {
                    let decisions = if self.state.cost.is_some() { d.optimal.clone() } else { None };
                    let preds = match decisions {
                        Some(dec) if self.rt.decide_by_cost => d.preds.with_preds(dec),
                        _ => d.preds.clone(),
                    };
                    let idx = crate::metrics::cell_samples(&preds, t, p, self.state.gallery_by_doubt);
                    let title = format!("true {} predicted {}: {} images", preds.classes[t], preds.classes[p], idx.len());
                    self.rt.dataset.selected_cell = Some((t, p));
                    self.open_gallery(title, idx);
                }
            }
            Command::OpenIssues => {
                if let Some(d) = &self.rt.dataset.derived {
                    let idx: Vec<usize> = d.report.label_issues.iter().map(|i| i.index).collect();
                    let title = format!("labels that look wrong: {} images, most suspicious first", idx.len());
                    self.rt.dataset.selected_cell = None;
                    self.open_gallery(title, idx);
                }
            }
            Command::GalleryPage(page) => {
                self.rt.dataset.gallery_page = page;
                self.request_thumbnails();
            }
            Command::OpenSample(i) => {
                let same_set = self.rt.dataset.predictions.as_ref().is_some_and(|p| p.len() == self.rt.images.len());
                if same_set {
                    self.state.tab = Tab::Compare;
                    self.rt.commands.push(Command::SelectImage(i));
                } else if let Some(path) = self.rt.dataset.predictions.as_ref().and_then(|p| p.paths.get(i)).map(PathBuf::from).filter(|p| p.is_file()) {
                    self.state.tab = Tab::Compare;
                    self.rt.commands.push(Command::OpenImages(vec![path]));
                } else {
                    self.rt.errors.push("that sample's image is not available here".into());
                }
            }
            Command::SelectImage(i) => {
                if i < self.rt.images.len() {
                    self.state.selected = i;
                    self.rt.target = None;
                    let job = self.job();
                    self.rt.predict_job = Some(job);
                    let source = self.rt.images[i].source.clone();
                    self.send(Request::Predict { job, image: source });
                }
            }
            Command::SelectClass(c) => {
                self.rt.target = c;
                self.run_command(ctx, Command::Rerun);
            }
            Command::SetMethod(m) => {
                self.state.method = m;
                self.run_command(ctx, Command::Rerun);
            }
            Command::Rerun => self.start_explain(),
            Command::Rerender => self.rerender(),
            Command::CancelExplain => {
                self.rt.explain.cancel.store(true, Ordering::Relaxed);
            }
            Command::SetDevice(d) => {
                self.state.device = d;
                self.cancel_running();
                self.send(Request::SetDevice(d));
            }
            Command::RunTrust => {
                let (Some(cur), Some(res)) = (&self.rt.current, &self.rt.explain.result) else { return };
                let (image, method, target, map) = (cur.image.clone(), res.method.clone(), res.target, res.map.clone());
                let cancel = self.rt.explain.cancel.clone();
                let job = self.job();
                let req = Request::Trust { job, image, method, target, map, cancel };
                self.rt.explain.trust_job = Some(job);
                self.send(req);
            }
            Command::RunCompare => self.start_compare(),
            Command::RunAttack => self.start_attack(),
            Command::DismissError(i) => {
                if i < self.rt.errors.len() {
                    self.rt.errors.remove(i);
                }
            }
        }
    }

    fn cancel_running(&mut self) {
        self.rt.explain.cancel.store(true, Ordering::Relaxed);
        self.rt.attack.cancel.store(true, Ordering::Relaxed);
        self.rt.compare_cancel.store(true, Ordering::Relaxed);
    }

    /// Cancel the running map and start one for the current image, class, method and settings.
    /// The previous map stays on screen, dimmed, until the new one arrives.
    pub fn start_explain(&mut self) {
        let (Some(cur), Some(method)) = (&self.rt.current, self.method()) else { return };
        if method.is_attack() {
            return;
        }
        self.rt.explain.cancel.store(true, Ordering::Relaxed);
        let cancel = Arc::new(AtomicBool::new(false));
        let opts = self.render_options(&method);
        let image = cur.image.clone();
        let job = self.job();
        // Frame times are reported for the time this map computes.
        self.rt.frames.work_ms.clear();
        let ev = &mut self.rt.explain;
        ev.cancel = cancel.clone();
        ev.job = Some(job);
        ev.progress = (0, 0);
        ev.partial = None;
        ev.stale = ev.result.is_some();
        ev.trust = None;
        let req = Request::Explain(ExplainJob { job, image, method, target: self.rt.target, opts, cancel, trust: self.state.trust });
        self.send(req);
    }

    fn rerender(&mut self) {
        let Some(cur) = &self.rt.current else { return };
        let image = cur.image.clone();
        if let Some(res) = &self.rt.explain.result {
            let opts = self.render_options(&res.method);
            let map = res.map.clone();
            let job = self.job();
            self.rt.explain.render_job = Some(job);
            self.send(Request::Render { job, map, image, opts });
        }
        self.rescale_compare();
    }

    fn start_compare(&mut self) {
        self.rt.compare_cancel.store(true, Ordering::Relaxed);
        self.rt.compare_cancel = Arc::new(AtomicBool::new(false));
        self.rt.compare.clear();
        let Some(cur) = &self.rt.current else { return };
        let Some(model) = &self.rt.model else { return };
        let (_, h, w) = model.input;
        let predicted = cur.top.first().map(|t| t.class_index);
        let truth = self.rt.images.get(cur.index).and_then(|e| e.label);
        let second = match truth {
            Some(t) if Some(t) != predicted => Some((t, "true")),
            _ => cur.top.get(1).map(|t| (t.class_index, "runner-up")),
        };
        let mut cells = Vec::new();
        let methods: Vec<String> = self.state.compare_methods.clone();
        for name in &methods {
            let method = self.state.methods.get(name).cloned().or_else(|| Method::default_for(name, h, w).ok());
            let Some(method) = method else { continue };
            if let Some(p) = predicted {
                cells.push((format!("{} · predicted {}", method.title(), model.classes[p]), method.clone(), cur.image.clone(), Some(p)));
            }
            if let Some((c, why)) = second {
                cells.push((format!("{} · {why} {}", method.title(), model.classes[c]), method.clone(), cur.image.clone(), Some(c)));
            }
        }
        self.queue_compare(cells);
    }

    /// Queue the across-images row: the current method on the next images, one scale.
    pub fn start_compare_images(&mut self) {
        self.rt.compare_cancel.store(true, Ordering::Relaxed);
        self.rt.compare_cancel = Arc::new(AtomicBool::new(false));
        self.rt.compare.clear();
        // Images are prepared by the worker; the across-images row predicts each first.
        self.rt.status = Some("preparing images...".into());
        let n = self.state.compare_images.max(1);
        let start = self.state.selected;
        let idx: Vec<usize> = (start..self.rt.images.len()).take(n).collect();
        self.rt.compare_pending = idx.iter().map(|&i| (i, 0)).collect();
        for i in idx {
            let job = self.job();
            self.rt.compare_pending.retain(|(j, _)| *j != i);
            self.rt.compare_pending.push((i, job));
            let source = self.rt.images[i].source.clone();
            self.send(Request::Predict { job, image: source });
        }
    }

    fn queue_compare(&mut self, cells: Vec<(String, Method, PreparedImage, Option<usize>)>) {
        for (title, method, image, target) in cells {
            let job = self.job();
            let opts = RenderOptions { colour_bar: true, ..self.render_options(&method) };
            let req = Request::Explain(ExplainJob {
                job,
                image: image.clone(),
                method: method.clone(),
                target,
                opts,
                cancel: self.rt.compare_cancel.clone(),
                trust: false,
            });
            self.rt.compare.push(CompareCell { title, method, image, target, job, map: None, scale: None, shown: None, error: None });
            self.send(req);
        }
    }

    /// With a shared scale, the cells of each method are re-rendered at that method's largest
    /// scale (maps of different methods have different units, so each method keeps its own).
    fn rescale_compare(&mut self) {
        let shared = self.state.compare_shared_scale;
        let mut reqs = Vec::new();
        for cell in &self.rt.compare {
            if let Some(map) = &cell.map {
                let max_scale = self
                    .rt
                    .compare
                    .iter()
                    .filter(|c| c.method.name() == cell.method.name())
                    .filter_map(|c| c.scale)
                    .fold(0.0f32, f32::max);
                let mut opts = self.render_options(&cell.method);
                if shared && max_scale > 0.0 {
                    opts.scale = Scale::Fixed(max_scale);
                }
                reqs.push(Request::Render { job: cell.job, map: map.clone(), image: cell.image.clone(), opts });
            }
        }
        for r in reqs {
            self.send(r);
        }
    }

    fn start_attack(&mut self) {
        let Some(cur) = &self.rt.current else { return };
        self.rt.attack.cancel.store(true, Ordering::Relaxed);
        let cancel = Arc::new(AtomicBool::new(false));
        let eps = self.state.attack_epsilon_levels / 255.0;
        let params = crate::explain::AttackParams {
            epsilon: eps,
            steps: if self.state.attack_pgd { self.state.attack_steps.max(1) } else { 1 },
            step_size: if self.state.attack_pgd { (eps / 4.0).max(0.25 / 255.0) } else { eps },
            target_class: self.state.attack_target,
            random_start: false,
            seed: 0,
        };
        let method = if self.state.attack_pgd { Method::Pgd(params) } else { Method::Fgsm(params) };
        let image = cur.image.clone();
        let job = self.job();
        self.rt.attack.cancel = cancel.clone();
        self.rt.attack.job = Some(job);
        self.rt.attack.stale = self.rt.attack.result.is_some();
        let opts = RenderOptions::default();
        self.send(Request::Explain(ExplainJob { job, image, method, target: None, opts, cancel, trust: false }));
    }

    fn open_dialog(&mut self, cmd: Command) {
        if self.rt.dialog_open {
            return;
        }
        self.rt.dialog_open = true;
        let tx = self.rt.dialog_tx.clone();
        let start_dir = self.state.model_path.as_ref().and_then(|p| p.parent().map(Path::to_path_buf));
        // Native dialogs block: they run on their own thread and answer through a channel.
        let spawned = std::thread::Builder::new().name("easel-dialog".into()).spawn(move || {
            let mut d = rfd::FileDialog::new();
            if let Some(dir) = start_dir {
                d = d.set_directory(dir);
            }
            let answer = match cmd {
                Command::PickModel => DialogAnswer::Model(
                    d.add_filter("model card or weights", &["json", "safetensors", "pth", "pt"]).pick_file(),
                ),
                Command::PickImages { folder: true } => DialogAnswer::Images(d.pick_folder().map(|p| vec![p])),
                Command::PickImages { folder: false } => DialogAnswer::Images(
                    d.add_filter("images", &crate::imaging::IMAGE_EXTENSIONS).pick_files(),
                ),
                Command::SavePng => DialogAnswer::SavePng(d.add_filter("PNG", &["png"]).set_file_name("easel-view.png").save_file()),
                Command::PickPredictions => DialogAnswer::Predictions(d.add_filter("predictions CSV", &["csv"]).pick_file()),
                Command::PickCost { save: false } => DialogAnswer::LoadCost(d.add_filter("cost matrix CSV", &["csv"]).pick_file()),
                Command::PickCost { save: true } => DialogAnswer::SaveCost(d.add_filter("cost matrix CSV", &["csv"]).set_file_name("costs.csv").save_file()),
                Command::PickTrainSplit => DialogAnswer::TrainSplit(d.pick_folder()),
                Command::PickRuns => DialogAnswer::Runs(d.pick_folder()),
                _ => DialogAnswer::Report(d.set_file_name("easel-report").save_file()),
            };
            let _ = tx.send(answer);
        });
        if spawned.is_err() {
            self.rt.dialog_open = false;
            self.rt.errors.push("cannot open a file dialog".into());
        }
    }

    fn drain_dialogs(&mut self) {
        while let Ok(a) = self.rt.dialog_rx.try_recv() {
            self.rt.dialog_open = false;
            match a {
                DialogAnswer::Model(Some(p)) => self.rt.commands.push(Command::OpenModel(p)),
                DialogAnswer::Images(Some(p)) => self.rt.commands.push(Command::OpenImages(p)),
                DialogAnswer::SavePng(Some(p)) => self.rt.commands.push(Command::SavePngTo(p)),
                DialogAnswer::Report(Some(p)) => self.rt.commands.push(Command::ExportReportTo(p)),
                DialogAnswer::Predictions(Some(p)) => {
                    let job = self.job();
                    self.rt.dataset.job = Some(job);
                    self.send(Request::LoadPredictions { job, path: p });
                }
                DialogAnswer::LoadCost(Some(p)) => {
                    let k = self.rt.dataset.derived.as_ref().map(|d| d.preds.k()).or(self.rt.model.as_ref().map(|m| m.classes.len()));
                    if let Some(k) = k {
                        let job = self.job();
                        self.send(Request::LoadCost { job, path: p, k });
                    }
                }
                DialogAnswer::SaveCost(Some(p)) => {
                    if let Some(d) = &self.rt.dataset.derived {
                        let text = d.cost.to_csv(&d.preds.classes);
                        let path = crate::fsutil::unused_path(&p);
                        let job = self.job();
                        self.send(Request::SaveText { job, path, text });
                    }
                }
                DialogAnswer::TrainSplit(Some(p)) => self.load_train_split(p),
                DialogAnswer::Runs(Some(p)) => self.rt.commands.push(Command::OpenRuns(p)),
                _ => {}
            }
        }
    }

    fn save_png(&mut self, path: PathBuf) {
        let picture = self
            .rt
            .explain
            .result
            .as_ref()
            .map(|r| r.picture.clone());
        match picture {
            Some(picture) => {
                let job = self.job();
                self.send(Request::SavePng { job, path, picture });
            }
            None => self.rt.errors.push("there is no map on screen to save yet".into()),
        }
    }

    fn export_report(&mut self, dir: PathBuf) {
        let Some(cur) = &self.rt.current else { return };
        let mut maps = Vec::new();
        let mut settings = Vec::new();
        let model = self.rt.model.clone();
        if let Some(r) = &self.rt.explain.result {
            maps.push((r.method.name().to_string(), r.map.clone(), self.render_options(&r.method)));
            settings.push(serde_json::json!({"method": r.method, "target": r.target, "convergence_delta": r.convergence_delta, "layer": r.layer}));
        }
        for c in &self.rt.compare {
            if let Some(m) = &c.map {
                maps.push((c.method.name().to_string(), m.clone(), self.render_options(&c.method)));
                settings.push(serde_json::json!({"title": c.title, "method": c.method, "target": c.target}));
            }
        }
        if maps.is_empty() {
            self.rt.errors.push("compute a map before exporting a report".into());
            return;
        }
        let report = ReportContent {
            image: cur.image.clone(),
            image_name: self.rt.images.get(cur.index).map(|e| e.name.clone()).unwrap_or_default(),
            maps,
            settings: serde_json::json!({
                "model": model.as_ref().map(|m| m.name.clone()),
                "model_hash": model.as_ref().map(|m| m.hash.clone()),
                "device": self.rt.device.as_ref().map(|d| d.summary()),
                "top_k": cur.top.iter().take(5).collect::<Vec<_>>(),
                "maps": settings,
                "render": self.state.render,
            }),
        };
        let job = self.job();
        self.send(Request::ExportReport { job, dir, report: Box::new(report) });
    }

    fn show(ctx: &egui::Context, name: &str, p: &Picture, slot: Option<&mut Shown>) -> Option<Shown> {
        let img = egui::ColorImage::from_rgba_unmultiplied([p.width, p.height], &p.rgba);
        match slot {
            Some(s) if s.size == [p.width, p.height] => {
                s.texture.set(img, egui::TextureOptions::NEAREST);
                None
            }
            _ => Some(Shown { texture: ctx.load_texture(name, img, egui::TextureOptions::NEAREST), size: [p.width, p.height] }),
        }
    }

    /// Drain the worker's events: results become textures, stale jobs are dropped.
    pub fn drain_events(&mut self, ctx: &egui::Context) {
        while let Ok(ev) = self.rt.worker.events.try_recv() {
            self.on_event(ctx, ev);
        }
    }

    fn on_event(&mut self, ctx: &egui::Context, ev: Event) {
        match ev {
            Event::Device(info) => self.rt.device = Some(info),
            Event::ModelLoaded { job, model } => {
                if self.rt.model_job != Some(job) {
                    return;
                }
                self.state.model_path = Some(model.path.clone());
                State::remember(&mut self.state.recent_models, model.path.clone());
                self.rt.model = Some(model);
                self.rt.dataset = DatasetView::default();
                self.rt.explain = ExplainView::default();
                self.rt.compare.clear();
                self.rt.attack = ExplainView::default();
                self.rt.attack_pictures = None;
                // Settings sized for another model's input do not carry over.
                self.state.methods.clear();
                if !self.rt.images.is_empty() {
                    let sel = self.state.selected.min(self.rt.images.len() - 1);
                    self.rt.commands.push(Command::SelectImage(sel));
                }
            }
            Event::ImagesLoaded { job, entries, source } => {
                if self.rt.images_job != Some(job) {
                    return;
                }
                // the set open when the app last closed keeps its selection; another set starts at 0
                let restored = self.rt.images_source.is_empty() && self.state.image_paths == [PathBuf::from(&source)];
                let first_load = self.rt.images_source != source && !restored;
                self.rt.images = entries;
                self.rt.images_source = source;
                let sel = match &self.rt.start.image {
                    Some(name) if !self.rt.announced => self.rt.images.iter().position(|e| e.name.contains(name.as_str())).unwrap_or(0),
                    _ if first_load => 0,
                    _ => self.state.selected.min(self.rt.images.len().saturating_sub(1)),
                };
                if let Some(ImageEntry { source: ImageRef::File(p), .. }) = self.rt.images.first() {
                    if let Some(dir) = p.parent() {
                        State::remember(&mut self.state.recent_images, dir.to_path_buf());
                    }
                }
                self.state.image_paths = vec![PathBuf::from(&self.rt.images_source)];
                // a new set: earlier predictions belong to other images
                self.rt.dataset.predictions = None;
                self.rt.dataset.derived = None;
                self.rt.dataset.gallery.clear();
                self.rt.dataset.thumbnails.clear();
                if self.state.tab == Tab::Dataset {
                    self.enter_dataset();
                }
                self.rt.commands.push(Command::SelectImage(sel));
            }
            Event::Predicted { job, image, picture, top } => {
                if let Some(pos) = self.rt.compare_pending.iter().position(|(_, j)| *j == job) {
                    let (idx, _) = self.rt.compare_pending.remove(pos);
                    self.queue_compare_image(idx, image, top);
                    return;
                }
                if self.rt.predict_job != Some(job) {
                    return;
                }
                let slot = self.rt.current.as_mut().map(|c| &mut c.picture);
                let new = Self::show(ctx, "image", &picture, slot);
                let index = self.state.selected;
                match (&mut self.rt.current, new) {
                    (Some(c), None) => {
                        c.index = index;
                        c.image = image;
                        c.top = top;
                    }
                    (_, Some(shown)) => self.rt.current = Some(Current { index, image, picture: shown, top }),
                    (None, None) => {}
                }
                self.rt.commands.push(Command::Rerun);
                if self.state.tab == Tab::Compare {
                    self.rt.commands.push(Command::RunCompare);
                }
                if self.state.tab == Tab::Adversarial {
                    self.rt.commands.push(Command::RunAttack);
                }
            }
            Event::ExplainProgress { job, done, total, picture } => {
                let ev = if self.rt.explain.job == Some(job) {
                    &mut self.rt.explain
                } else if self.rt.attack.job == Some(job) {
                    &mut self.rt.attack
                } else {
                    return;
                };
                ev.progress = (done, total);
                if let Some(p) = picture {
                    if let Some(new) = Self::show(ctx, "partial", &p, ev.partial.as_mut()) {
                        ev.partial = Some(new);
                    }
                }
            }
            Event::Explained { job, result } => self.on_explained(ctx, job, *result),
            Event::Rendered { job, picture, scale } => {
                if self.rt.explain.render_job == Some(job) {
                    if let Some(new) = Self::show(ctx, "map", &picture, self.rt.explain.shown.as_mut()) {
                        self.rt.explain.shown = Some(new);
                    }
                    if let Some(r) = &mut self.rt.explain.result {
                        r.picture = picture;
                        r.scale = scale;
                    }
                } else if let Some(cell) = self.rt.compare.iter_mut().find(|c| c.job == job) {
                    if let Some(new) = Self::show(ctx, &format!("cmp{job}"), &picture, cell.shown.as_mut()) {
                        cell.shown = Some(new);
                    }
                }
            }
            Event::Trusted { job, figures } => {
                if self.rt.explain.trust_job == Some(job) {
                    self.rt.explain.trust = Some(figures);
                }
            }
            Event::Saved { path, .. } => self.rt.status = Some(format!("saved {}", path.display())),
            Event::Failed { job, message } => {
                if let Some(j) = job {
                    if self.rt.explain.job == Some(j) {
                        self.rt.explain.job = None;
                        self.rt.explain.stale = false;
                    }
                    if self.rt.attack.job == Some(j) {
                        self.rt.attack.job = None;
                    }
                    if let Some(c) = self.rt.compare.iter_mut().find(|c| c.job == j) {
                        c.error = Some(message.clone());
                    }
                }
                self.rt.errors.push(message);
            }
            Event::EvalProgress { job, done, total } => {
                if self.rt.dataset.job == Some(job) {
                    self.rt.dataset.progress = (done, total);
                }
            }
            Event::Evaluated { job, predictions, cached, secs, .. } => {
                if self.rt.dataset.job != Some(job) {
                    return;
                }
                self.rt.dataset.job = None;
                self.rt.dataset.cached = cached;
                self.rt.dataset.secs = secs;
                // merges made for another class list do not apply
                if self.rt.dataset.predictions.as_ref().map(|p| p.k()) != Some(predictions.k()) {
                    self.state.merges.clear();
                    if self.state.cost.as_ref().is_some_and(|c| c.len() != predictions.k()) {
                        self.state.cost = None;
                    }
                }
                self.rt.dataset.predictions = Some(predictions);
                self.rt.dataset.gallery.clear();
                self.refresh_dataset();
                self.announce("evaluation ready");
            }
            Event::SplitCounts { counts, source, .. } => {
                self.rt.dataset.train_counts = Some(counts);
                self.rt.dataset.train_source = source;
            }
            Event::Thumbnails { job, pictures } => {
                if self.rt.dataset.gallery_job != Some(job) {
                    return;
                }
                for (i, p) in pictures {
                    if let Some(shown) = Self::show(ctx, &format!("thumb{i}"), &p, None) {
                        self.rt.dataset.thumbnails.insert(i, shown);
                    }
                }
            }
            Event::CostLoaded { cost, .. } => {
                self.set_cost(Some(cost.costs));
            }
            Event::Cancelled { job } => {
                if self.rt.dataset.job == Some(job) {
                    self.rt.dataset.job = None;
                }
                if self.rt.explain.job == Some(job) {
                    self.rt.explain.job = None;
                    self.rt.explain.stale = false;
                    self.rt.explain.partial = None;
                }
            }
        }
    }

    /// Where the lab trains from: Fashion-MNIST's 60k training set where the Debian package is
    /// installed, else the bundled test set with its last 3,000 images held out.
    fn lab_data(&self) -> (PathBuf, String, Option<PathBuf>, usize) {
        let system = PathBuf::from(crate::data::SYSTEM_FASHION_MNIST);
        let bundled = self.rt.assets.clone().unwrap_or_else(|| PathBuf::from("assets")).join("fashion-mnist");
        if system.join("train-images-idx3-ubyte.gz").is_file() {
            (system, "train".into(), Some(bundled), 0)
        } else {
            (bundled, "t10k".into(), None, 3000)
        }
    }

    fn start_lab(&mut self, ctx: &egui::Context) {
        if self.rt.lab.handle.is_some() {
            return;
        }
        let (train, train_split, test, holdout) = self.lab_data();
        let s = &self.state.lab;
        let out = self
            .rt
            .lab
            .out_root
            .clone()
            .unwrap_or_else(|| crate::evaluate::cache_dir().unwrap_or_else(std::env::temp_dir).join("lab-runs"))
            .join(format!("{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)));
        let cost = self.rt.dataset.derived.as_ref().filter(|d| d.preds.k() == 10 && self.state.cost.is_some()).map(|d| d.cost.clone());
        let req = super::lab::LabRequest {
            train,
            train_split,
            test,
            holdout,
            profile: crate::sampling::Profile::LongTail { ratio: s.ratio, rare: s.rare.clone() },
            per_class: Some(s.per_class),
            strategies: s.strategies.clone(),
            epochs: s.epochs,
            seed: s.seed,
            cost,
            out,
            device: self.state.device,
        };
        let repaint_ctx = ctx.clone();
        match super::lab::spawn(req, Arc::new(move || repaint_ctx.request_repaint())) {
            Ok(h) => {
                self.rt.lab.handle = Some(h);
                self.rt.lab.live.clear();
            }
            Err(e) => self.rt.errors.push(e),
        }
    }

    fn drain_lab(&mut self) {
        let mut events = Vec::new();
        if let Some(h) = &self.rt.lab.handle {
            while let Ok(e) = h.events.try_recv() {
                events.push(e);
            }
        }
        use super::lab::LabEvent;
        for e in events {
            match e {
                LabEvent::Started { strategy, train_counts } => {
                    self.rt.lab.current = Some(strategy.clone());
                    self.rt.lab.train_counts = Some(train_counts);
                    self.rt.lab.live.push((strategy, Vec::new()));
                    self.rt.lab.progress = (1, 0, 0);
                }
                LabEvent::Batch { epoch, done, total } => self.rt.lab.progress = (epoch, done, total),
                LabEvent::Epoch { strategy, report } => {
                    if let Some(l) = self.rt.lab.live.iter_mut().rev().find(|l| l.0 == strategy) {
                        l.1.push(report);
                    }
                }
                LabEvent::RunDone { record, dir } => {
                    self.add_run(*record, dir);
                }
                LabEvent::Failed(m) => self.rt.errors.push(format!("sampling lab: {m}")),
                LabEvent::Finished { cancelled } => {
                    self.rt.lab.handle = None;
                    self.rt.lab.current = None;
                    if cancelled {
                        self.rt.status = Some("training cancelled".into());
                    }
                    self.announce("lab ready");
                }
            }
        }
    }

    fn add_run(&mut self, record: crate::sampling::RunRecord, dir: PathBuf) {
        let lab = &mut self.rt.lab;
        let same_set = lab.records.first().is_none_or(|r| r.test.len() == record.test.len() && r.classes == record.classes);
        if !same_set {
            lab.records.clear();
            lab.dirs.clear();
            lab.selected.clear();
        }
        let chosen = lab.selected.iter().filter(|s| **s).count();
        lab.records.push(record);
        lab.dirs.push(dir);
        lab.selected.push(chosen < 6);
        self.refresh_lab();
    }

    fn open_runs(&mut self, dir: &Path) {
        let mut dirs: Vec<PathBuf> = if dir.join("run.json").is_file() {
            vec![dir.to_path_buf()]
        } else {
            std::fs::read_dir(dir).map(|r| r.flatten().map(|e| e.path()).filter(|p| p.join("run.json").is_file()).collect()).unwrap_or_default()
        };
        dirs.sort();
        if dirs.is_empty() {
            self.rt.errors.push(format!("{}: no runs found (folders with run.json)", dir.display()));
            return;
        }
        // keep the order the strategies were run in, where the comparison says it
        for d in dirs {
            match crate::sampling::load_run(&d) {
                Ok(r) => self.add_run(r, d),
                Err(e) => self.rt.errors.push(e.to_string()),
            }
        }
        self.announce("lab ready");
    }

    /// Recompute the comparison of the selected runs (cheap: counting over held-out predictions).
    pub fn refresh_lab(&mut self) {
        let lab = &mut self.rt.lab;
        let chosen: Vec<crate::sampling::RunRecord> = lab.records.iter().zip(&lab.selected).filter(|(_, s)| **s).map(|(r, _)| r.clone()).collect();
        let Some(first) = chosen.first() else {
            lab.rows.clear();
            lab.confusions.clear();
            return;
        };
        let k = first.classes.len();
        let custom = self.state.cost.as_ref().filter(|c| c.len() == k);
        lab.cost_is_custom = custom.is_some();
        let cost = custom.map(|c| crate::metrics::CostMatrix { costs: c.clone() }).unwrap_or_else(|| crate::metrics::CostMatrix::zero_one(k));
        let correct = self.state.lab.prior_correction;
        lab.rows = crate::sampling::compare(&chosen, &cost, correct);
        let n = first.test.len().max(1) as f64;
        lab.true_distribution = crate::metrics::class_counts(&first.test.labels, k).iter().map(|&c| c as f64 / n).collect();
        lab.confusions = chosen
            .iter()
            .map(|r| {
                let prior: Vec<f64> = lab.true_distribution.clone();
                let p = if correct { crate::sampling::prior_corrected(&r.test, &r.train_prior, &prior) } else { r.test.clone() };
                crate::metrics::ConfusionMatrix::new(&p.labels, &p.preds, k)
            })
            .collect();
    }

    /// Entering the Dataset view: evaluate the open set if it is labelled, and show the
    /// training split beside it where one is known.
    pub fn enter_dataset(&mut self) {
        let labelled = !self.rt.images.is_empty() && self.rt.images.iter().all(|e| e.label.is_some());
        if self.rt.dataset.predictions.is_none() && self.rt.dataset.job.is_none() && labelled {
            self.rt.commands.push(Command::Evaluate);
        }
        if self.rt.dataset.train_counts.is_none() {
            let train = self.state.train_split.clone().or_else(|| {
                let system = PathBuf::from(crate::data::SYSTEM_FASHION_MNIST);
                let fashion = self.rt.model.as_ref().is_some_and(|m| m.classes.first().map(String::as_str) == Some("T-shirt/top"));
                (fashion && system.join("train-images-idx3-ubyte.gz").is_file()).then_some(system)
            });
            if let Some(t) = train {
                self.load_train_split(t);
            }
        }
    }

    /// Set the cost matrix (of the merged classes) and recompute.
    pub fn set_cost(&mut self, cost: Option<Vec<Vec<f64>>>) {
        self.state.cost = cost;
        self.refresh_dataset();
    }

    /// The training split's class counts for the distribution chart.
    pub fn load_train_split(&mut self, path: PathBuf) {
        self.state.train_split = Some(path.clone());
        let job = self.job();
        self.send(Request::SplitCounts { job, path, split: "train".into() });
    }

    /// Recompute merged predictions, costs, decisions and curves (cheap: counting).
    pub fn refresh_dataset(&mut self) {
        let Some(p) = &self.rt.dataset.predictions else { return };
        let merged = match p.merged(&self.state.merges) {
            Ok(m) => m,
            Err(e) => {
                self.rt.errors.push(e.to_string());
                self.state.merges.clear();
                p.clone()
            }
        };
        let k = merged.k();
        let cost = match &self.state.cost {
            Some(c) if c.len() == k && c.iter().all(|r| r.len() == k) => crate::metrics::CostMatrix { costs: c.clone() },
            _ => {
                self.state.cost = None;
                crate::metrics::CostMatrix::zero_one(k)
            }
        };
        let report = crate::metrics::report(&merged, Some(&cost));
        let optimal = merged.probs.as_ref().map(|ps| crate::metrics::cost_optimal_decisions(ps, &cost));
        self.state.threshold_class = self.state.threshold_class.min(k - 1);
        let c = self.state.threshold_class;
        let fn_cost = (0..k).filter(|&j| j != c).map(|j| cost.costs[c][j]).sum::<f64>() / (k - 1).max(1) as f64;
        let fp_cost = (0..k).filter(|&i| i != c).map(|i| cost.costs[i][c]).sum::<f64>() / (k - 1).max(1) as f64;
        let curves = crate::metrics::binary_curves(&merged, c, fn_cost, fp_cost);
        self.rt.dataset.derived = Some(Derived { preds: merged, cost, report, optimal, curves });
        if let Some((t, pr)) = self.rt.dataset.selected_cell {
            if t < k && pr < k {
                self.rt.commands.push(Command::OpenCell(t, pr));
            }
        }
    }

    fn open_gallery(&mut self, title: String, indices: Vec<usize>) {
        self.rt.dataset.gallery_title = title;
        self.rt.dataset.gallery = indices;
        self.rt.dataset.gallery_page = 0;
        self.request_thumbnails();
    }

    fn request_thumbnails(&mut self) {
        let ds = &self.rt.dataset;
        let start = ds.gallery_page * GALLERY_PAGE;
        let same_set = ds.predictions.as_ref().is_some_and(|p| p.len() == self.rt.images.len());
        let items: Vec<(usize, ImageRef)> = ds
            .gallery
            .iter()
            .skip(start)
            .take(GALLERY_PAGE)
            .filter(|i| !ds.thumbnails.contains_key(i))
            .filter_map(|&i| {
                if same_set {
                    Some((i, self.rt.images[i].source.clone()))
                } else {
                    let path = PathBuf::from(ds.predictions.as_ref()?.paths.get(i)?);
                    path.is_file().then_some((i, ImageRef::File(path)))
                }
            })
            .collect();
        let job = self.job();
        self.rt.dataset.gallery_job = Some(job);
        if !items.is_empty() {
            self.send(Request::Thumbnails { job, items });
        }
    }

    fn queue_compare_image(&mut self, index: usize, image: PreparedImage, top: Vec<ClassScore>) {
        let Some(model) = &self.rt.model else { return };
        let (_, h, w) = model.input;
        let method = self.state.methods.get(&self.state.method).cloned().or_else(|| Method::default_for(&self.state.method, h, w).ok());
        let Some(method) = method.filter(|m| !m.is_attack()) else { return };
        let name = self.rt.images.get(index).map(|e| e.name.clone()).unwrap_or_default();
        let title = format!("{name} · {}", top.first().map(|t| t.class.as_str()).unwrap_or("?"));
        self.queue_compare(vec![(title, method, image, None)]);
        if self.rt.compare_pending.is_empty() {
            self.rt.status = None;
        }
    }

    fn on_explained(&mut self, ctx: &egui::Context, job: JobId, result: ExplainResult) {
        if self.rt.explain.job == Some(job) {
            let ev = &mut self.rt.explain;
            if let Some(new) = Self::show(ctx, "map", &result.picture, ev.shown.as_mut()) {
                ev.shown = Some(new);
            }
            ev.trust = result.trust.clone();
            ev.result = Some(result);
            ev.job = None;
            ev.stale = false;
            ev.partial = None;
            if self.rt.start.announce {
                let f = &self.rt.frames;
                if let (Some(p50), Some(p99)) = (f.percentile(50.0), f.percentile(99.0)) {
                    let max = f.work_ms.iter().copied().fold(0.0f32, f32::max);
                    println!("easel: frame times while it ran: {} frames, p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms", f.work_ms.len());
                }
                println!("easel: explanation ready");
                use std::io::Write;
                let _ = std::io::stdout().flush();
            }
            self.rt.announced = true;
        } else if self.rt.attack.job == Some(job) {
            if let Some(adv) = &result.adversarial {
                let a = Self::show(ctx, "adv", &adv.adversarial, None);
                let p = Self::show(ctx, "pert", &adv.perturbation, None);
                if let (Some(a), Some(p)) = (a, p) {
                    self.rt.attack_pictures = Some((a, p));
                }
            }
            self.rt.attack.result = Some(result);
            self.rt.attack.job = None;
            self.rt.attack.stale = false;
            self.announce("attack ready");
        } else if let Some(cell) = self.rt.compare.iter_mut().find(|c| c.job == job) {
            cell.shown = Self::show(ctx, &format!("cmp{job}"), &result.picture, None);
            cell.scale = Some(result.scale);
            cell.map = Some(result.map);
            if self.rt.compare.iter().all(|c| c.map.is_some() || c.error.is_some()) {
                if self.state.compare_shared_scale {
                    self.rescale_compare();
                }
                self.announce("compare ready");
            }
        }
    }

    fn announce(&self, what: &str) {
        if self.rt.start.announce {
            println!("easel: {what}");
            use std::io::Write;
            let _ = std::io::stdout().flush();
        }
    }

    /// Arrow keys move between images.
    fn keys(&mut self, ctx: &egui::Context) {
        if ctx.egui_wants_keyboard_input() || self.rt.images.is_empty() {
            return;
        }
        let (next, prev) = ctx.input(|i| {
            (
                i.key_pressed(egui::Key::ArrowDown) || i.key_pressed(egui::Key::ArrowRight),
                i.key_pressed(egui::Key::ArrowUp) || i.key_pressed(egui::Key::ArrowLeft),
            )
        });
        let sel = self.state.selected;
        if next && sel + 1 < self.rt.images.len() {
            self.rt.commands.push(Command::SelectImage(sel + 1));
            self.rt.scroll_to_selected = true;
        } else if prev && sel > 0 {
            self.rt.commands.push(Command::SelectImage(sel - 1));
            self.rt.scroll_to_selected = true;
        }
    }

    /// Files dropped on the window: a card or weights opens a model, anything else images.
    fn dropped_files(&mut self, ctx: &egui::Context) {
        let dropped: Vec<PathBuf> = ctx.input(|i| i.raw.dropped_files.iter().map(|f| f.path().to_path_buf()).filter(|p| !p.as_os_str().is_empty()).collect());
        if dropped.is_empty() {
            return;
        }
        let (models, images): (Vec<PathBuf>, Vec<PathBuf>) = dropped.into_iter().partition(|p| {
            p.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).is_some_and(|e| ["json", "safetensors", "pth", "pt"].contains(&e.as_str()))
        });
        if let Some(m) = models.into_iter().next() {
            self.rt.commands.push(Command::OpenModel(m));
        }
        if !images.is_empty() {
            self.rt.commands.push(Command::OpenImages(images));
        }
    }
}

impl eframe::App for EaselApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.rt.frame_started = Some(Instant::now());
        self.drain_events(ctx);
        self.drain_lab();
        self.drain_dialogs();
        self.keys(ctx);
        self.dropped_files(ctx);
        self.run_commands(ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        panels::root_ui(ui, self);
        let ctx = ui.ctx().clone();
        self.run_commands(&ctx);
        if let Some(start) = self.rt.frame_started.take() {
            if self.rt.frames.measuring {
                self.rt.frames.work_ms.push(start.elapsed().as_secs_f32() * 1e3);
            }
        }
        // No timer repaints while work runs: the worker wakes the UI when it has news (at most
        // four times a second), so a software renderer does not steal the cores computing.
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, STATE_KEY, &self.state);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.cancel_running();
        if self.rt.frames.measuring {
            let f = &self.rt.frames;
            if let (Some(p50), Some(p99)) = (f.percentile(50.0), f.percentile(99.0)) {
                let max = f.work_ms.iter().copied().fold(0.0f32, f32::max);
                println!("easel: frame times over {} frames: p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms", f.work_ms.len());
            }
        }
    }
}
