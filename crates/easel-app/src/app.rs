//! The app shell: it owns the persisted state, the session and the views, routes commands to
//! the view they belong to and worker events to the view whose job slot owns them. `logic`
//! drains events and runs commands; `ui` only draws.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use easel_core::device::DeviceChoice;
use easel_core::explain::MethodKind;
use easel_jobs::report::Report;
use easel_jobs::worker::{Event, Request, WorkerHandle};
use eframe::egui;

use crate::command::{AttackCommand, Command};
use crate::ctx::{AppPaths, Ctx, Notes};
use crate::dialogs::Dialogs;
use crate::frames::FrameStats;
use crate::session::{Change, Session};
use crate::state::{AdvPane, Demo, State, Tab};
use crate::views::adversarial::{self, AdversarialView};
use crate::views::compare::{self, CompareView};
use crate::views::dataset::DatasetView;
use crate::views::explain::ExplainView;
use crate::views::lab::LabView;
use crate::views::pretrain::PretrainView;
use crate::views::{chrome, dataset_ui, explain_ui, lab_ui, pretrain_ui};

/// Options from the command line (`easel gui ...`).
#[derive(Clone, Debug, Default)]
pub struct StartOptions {
    pub demo: Option<Demo>,
    pub model: Option<PathBuf>,
    pub images: Vec<PathBuf>,
    pub method: Option<MethodKind>,
    /// Select the image whose name contains this.
    pub image: Option<String>,
    pub frame_stats: bool,
    /// Print "easel: explanation ready" (and the like) on stdout when results arrive.
    pub announce: bool,
    pub device: Option<DeviceChoice>,
    pub tab: Option<Tab>,
    /// Open these sampling-lab runs.
    pub runs: Option<PathBuf>,
    /// Cached predictions and lab runs go here (default: the user's cache folder; tests
    /// give a temporary one).
    pub cache: Option<PathBuf>,
    /// The window's inner size in points (default 1400 x 860).
    pub window_size: Option<(f32, f32)>,
    /// Open this confusion-matrix cell's gallery (true, predicted) once the Dataset view has
    /// its predictions.
    pub open_cell: Option<(usize, usize)>,
    /// Show this pane of the Adversarial view and run it once the first image is ready
    /// (`fool`: the gallery of every class; `robust`: the curve over the open set).
    pub pane: Option<AdvPane>,
    /// Open this model as B, to compare with the open model in the Dataset and Compare views.
    pub versus: Option<PathBuf>,
}

pub const STATE_KEY: &str = "easel-state";

/// The bundled `assets/` folder: beside the working directory, the executable, or the source
/// tree it was built from.
pub fn find_assets() -> Option<PathBuf> {
    let mut candidates = vec![PathBuf::from("assets")];
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(exe.ancestors().skip(1).take(4).map(|p| p.join("assets")));
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets"));
    candidates.into_iter().find(|p| p.join("efficientnet-lite0/card.json").is_file() || p.join("fashion-mnist").is_dir())
}

pub struct EaselApp {
    pub state: State,
    pub session: Session,
    pub explain: ExplainView,
    pub compare: CompareView,
    pub adversarial: AdversarialView,
    pub dataset: DatasetView,
    pub lab: LabView,
    pub pretrain: PretrainView,
    pub notes: Notes,
    pub commands: Vec<Command>,
    pub frames: FrameStats,
    worker: WorkerHandle,
    dialogs: Dialogs,
    paths: AppPaths,
    announce: bool,
    frame_started: Option<Instant>,
    /// Whether a map was computing at the last frame (frame times count per map).
    map_was_running: bool,
}

/// The context a view gets: the shell's fields other than the view itself.
macro_rules! ctx {
    ($self:ident, $egui:expr) => {
        Ctx { egui: $egui, worker: &$self.worker, session: &$self.session, notes: &mut $self.notes, commands: &mut $self.commands, paths: &$self.paths }
    };
}

impl EaselApp {
    pub fn new(ctx: &egui::Context, stored: Option<State>, start: StartOptions) -> EaselApp {
        let mut state = stored.unwrap_or_default();
        if let Some(d) = start.device {
            state.session.device = d;
        }
        if let Some(m) = start.method.filter(|m| !m.is_attack()) {
            state.explain.method = m;
        }
        if let Some(t) = start.tab {
            state.tab = t;
        }
        if let Some(p) = start.pane {
            state.adversarial.pane = p;
        }
        let repaint_ctx = ctx.clone();
        let mut notes = Notes::default();
        let worker = match WorkerHandle::spawn(state.session.device, Arc::new(move || repaint_ctx.request_repaint_after(crate::ctx::WAKE_DELAY))) {
            Ok(w) => w,
            Err(e) => panic!("cannot start the compute worker thread: {e}"),
        };
        let paths = AppPaths { cache: start.cache.clone().or_else(easel_core::evaluate::cache_dir), assets: find_assets() };
        if paths.assets.is_none() {
            notes.error("the bundled assets/ folder was not found; open a model and images instead");
        }
        let session = Session::new(&state.session, start.image.clone());
        let mut app = EaselApp {
            state,
            session,
            explain: ExplainView::default(),
            compare: CompareView::default(),
            adversarial: AdversarialView::default(),
            dataset: DatasetView::default(),
            lab: LabView::default(),
            pretrain: PretrainView::default(),
            notes,
            commands: Vec::new(),
            frames: FrameStats { measuring: start.frame_stats, ..Default::default() },
            worker,
            dialogs: Dialogs::default(),
            paths,
            announce: start.announce,
            frame_started: None,
            map_was_running: false,
        };
        // First start: the demo; later starts: what was open last time.
        let s = &app.state.session;
        let mut cmds = if let Some(d) = start.demo {
            vec![Command::LoadDemo(d)]
        } else if let Some(m) = &start.model {
            vec![Command::OpenModel(m.clone())]
        } else if let Some(m) = s.model_path.clone().filter(|p| p.exists()) {
            let mut v = vec![Command::OpenModel(m)];
            if !s.image_paths.is_empty() {
                v.push(Command::OpenImages(s.image_paths.clone()));
            }
            v
        } else {
            vec![Command::LoadDemo(Demo::Photos)]
        };
        if start.demo.is_none() && start.model.is_some() && !start.images.is_empty() {
            cmds.push(Command::OpenImages(start.images.clone()));
        }
        if let Some(b) = &start.versus {
            cmds.push(Command::OpenSecondModel(b.clone()));
        }
        if let Some(r) = &start.runs {
            // A folder written by `easel transfer` opens in the pre-training view; any other in the sampling lab.
            if r.join("transfer.json").is_file() {
                cmds.push(Command::Pretrain(crate::command::PretrainCommand::Open(r.clone())));
            } else {
                cmds.push(Command::Lab(crate::command::LabCommand::OpenRuns(r.clone())));
            }
        }
        app.explain.run_next = start.method.is_some();
        app.dataset.open_cell_later = start.open_cell;
        app.adversarial.run_pane_later = start.pane.filter(|p| *p != AdvPane::Attack);
        app.commands.extend(cmds);
        app.run_commands(ctx);
        app
    }

    /// Run the queued commands (and those they queue).
    pub fn run_commands(&mut self, egui: &egui::Context) {
        for _ in 0..8 {
            let cmds = std::mem::take(&mut self.commands);
            if cmds.is_empty() {
                return;
            }
            for c in cmds {
                self.run_command(egui, c);
            }
        }
    }

    fn send(&mut self, req: Request) {
        if let Err(e) = self.worker.send(req) {
            self.notes.error(e);
        }
    }

    /// Jobs on the image on screen stop now.
    fn leave_image(&mut self) {
        self.explain.leave_image();
        self.adversarial.leave_image();
    }

    fn run_command(&mut self, egui: &egui::Context, cmd: Command) {
        match cmd {
            Command::LoadDemo(demo) => {
                let Some(assets) = self.paths.assets.clone() else {
                    return self.notes.error("the bundled assets/ folder was not found; open a model and images instead");
                };
                let (model, images) = match demo {
                    Demo::Fashion => (assets.join("fashion-mnist/model/card.json"), assets.join("fashion-mnist")),
                    Demo::Photos => (assets.join("efficientnet-lite0/card.json"), assets.join("photos")),
                };
                self.run_command(egui, Command::OpenModel(model));
                self.run_command(egui, Command::OpenImages(vec![images]));
            }
            Command::OpenModel(p) => {
                self.leave_image();
                self.compare.clear();
                if let Err(e) = self.session.load_model(&self.worker, p) {
                    self.notes.error(e);
                }
            }
            Command::OpenSecondModel(p) => {
                if let Err(e) = self.session.load_second_model(&self.worker, p) {
                    self.notes.error(e);
                }
            }
            Command::OpenImages(paths) => {
                if let Err(e) = self.session.load_images(&self.worker, paths) {
                    self.notes.error(e);
                }
            }
            Command::Pick(pick) => {
                let dir = self.state.session.model_path.as_ref().and_then(|p| p.parent().map(Path::to_path_buf));
                if let Err(e) = self.dialogs.open(pick, dir.as_deref()) {
                    self.notes.error(e);
                }
            }
            Command::SelectImage(i) => {
                self.leave_image();
                match self.session.select(&self.worker, i) {
                    Ok(true) => self.state.session.selected = i,
                    Ok(false) => {}
                    Err(e) => self.notes.error(e),
                }
            }
            Command::SetTab(t) => {
                self.state.tab = t;
                let c = &mut ctx!(self, egui);
                match t {
                    Tab::Compare => self.compare.enter(&self.state.compare, &self.state.explain, c),
                    Tab::Adversarial => self.adversarial.enter(&self.state.adversarial, c),
                    Tab::Dataset => self.dataset.enter(&self.state.dataset, c),
                    Tab::Explain | Tab::Sampling | Tab::Pretraining => {}
                }
            }
            Command::SetDevice(d) => {
                self.state.session.device = d;
                self.leave_image();
                self.compare.clear();
                self.send(Request::SetDevice(d));
                let sel = self.session.selected;
                self.commands.push(Command::SelectImage(sel));
            }
            Command::DismissError(i) => {
                if i < self.notes.errors.len() {
                    self.notes.errors.remove(i);
                }
            }
            Command::SavePngTo(path) => match self.explain.shown_map(self.session.generation()) {
                Some(m) => {
                    let req = Request::SavePng { ticket: easel_jobs::Ticket::detached(), path, picture: m.output.picture.clone() };
                    self.send(req);
                }
                None => self.notes.error("there is no map on screen to save yet"),
            },
            Command::ExportReportTo(dir) => self.export_report(dir),
            Command::Explain(c) => self.explain.run(c, &mut self.state.explain, &mut ctx!(self, egui)),
            Command::Compare(c) => self.compare.run(c, &self.state.compare, &self.state.explain, &mut ctx!(self, egui)),
            Command::Attack(c) => self.adversarial.run(c, &mut self.state.adversarial, &mut ctx!(self, egui)),
            Command::Dataset(c) => self.dataset.run(c, &mut self.state.dataset, &mut ctx!(self, egui)),
            Command::Lab(c) => {
                let device = self.state.session.device;
                self.lab.run(c, &self.state.lab, &self.state.dataset, device, &mut ctx!(self, egui))
            }
            Command::Pretrain(c) => {
                let device = self.state.session.device;
                self.pretrain.run(c, &self.state.pretrain, device, &mut ctx!(self, egui))
            }
        }
    }

    fn export_report(&mut self, dir: PathBuf) {
        let Some(cur) = &self.session.current else { return self.notes.error("select an image first") };
        let mut maps: Vec<_> = self.explain.shown_map(cur.generation).map(|m| m.output.clone()).into_iter().collect();
        if self.compare.generation == cur.generation {
            maps.extend(self.compare.outputs());
        }
        if maps.is_empty() {
            return self.notes.error("compute a map before exporting a report");
        }
        let report = Report { image: cur.image.clone(), image_name: cur.name.clone(), maps };
        self.send(Request::ExportReport { ticket: easel_jobs::Ticket::detached(), dir, report: Box::new(report) });
    }

    /// Drain the worker's events: each goes to the session or the view whose job owns it;
    /// events of jobs nobody waits for any more are dropped.
    pub fn drain_events(&mut self, egui: &egui::Context) {
        while let Some(ev) = self.worker.try_recv() {
            match self.session.on_event(egui, ev, &mut self.state.session) {
                Ok(Some(change)) => self.follow(egui, change),
                Ok(None) => {}
                Err(ev) => self.route(egui, ev),
            }
        }
    }

    /// The views follow a change of model, images or image.
    fn follow(&mut self, egui: &egui::Context, change: Change) {
        match change {
            Change::Model => {
                self.explain.clear();
                self.compare.clear();
                self.adversarial.clear();
                self.dataset.clear();
                // settings sized for another model's input do not carry over
                self.state.explain.methods.clear();
                let k = self.session.model.as_ref().map(|m| m.classes.len()).unwrap_or(0);
                self.state.adversarial.attack.target = self.state.adversarial.attack.target.filter(|&t| t < k);
                if !self.session.images.is_empty() {
                    let sel = self.session.selected.min(self.session.images.len() - 1);
                    self.commands.push(Command::SelectImage(sel));
                }
            }
            Change::Images => {
                self.dataset.clear();
                self.adversarial.images_changed();
                self.compare.clear();
                self.leave_image();
                if self.state.tab == Tab::Dataset {
                    self.commands.push(Command::SetTab(Tab::Dataset));
                }
                let sel = self.session.selected;
                self.commands.push(Command::SelectImage(sel));
            }
            Change::Leaving => self.leave_image(),
            Change::SecondModel => {
                let c = &mut ctx!(self, egui);
                self.compare.pair.clear();
                self.dataset.second_model_ready(&self.state.dataset, c);
                if self.state.tab == Tab::Compare && self.compare.pair.active {
                    self.compare.pair.run(None, &self.state.explain, c);
                }
            }
            Change::Ready => {
                let c = &mut ctx!(self, egui);
                self.explain.image_ready(&self.state.explain, c);
                match self.state.tab {
                    Tab::Compare => self.compare.image_ready(&self.state.explain, c),
                    Tab::Adversarial => {
                        self.adversarial.image_ready(c);
                        match self.adversarial.run_pane_later.take() {
                            Some(AdvPane::Fool) => self.commands.push(Command::Attack(AttackCommand::FoolAll)),
                            Some(AdvPane::Robust) => self.commands.push(Command::Attack(AttackCommand::Robust)),
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    fn route(&mut self, egui: &egui::Context, ev: Event) {
        let c = &mut ctx!(self, egui);
        let Err(ev) = self.explain.on_event(ev, c) else { return };
        let Err(ev) = self.compare.on_event(ev, &self.state.compare, &self.state.explain, c) else { return };
        let Err(ev) = self.adversarial.on_event(ev, c) else { return };
        let Err(ev) = self.dataset.on_event(ev, &mut self.state.dataset, c) else { return };
        match ev {
            Event::Saved { path, .. } => self.notes.status = Some(format!("saved {}", path.display())),
            // a job no slot owns: superseded, or one-off work such as saving a file
            Event::Failed { message, .. } => self.notes.error(message),
            _ => {}
        }
    }

    /// Arrow keys move between images.
    fn keys(&mut self, egui: &egui::Context) {
        if egui.egui_wants_keyboard_input() || self.session.images.is_empty() {
            return;
        }
        let (next, prev) = egui.input(|i| {
            (
                i.key_pressed(egui::Key::ArrowDown) || i.key_pressed(egui::Key::ArrowRight),
                i.key_pressed(egui::Key::ArrowUp) || i.key_pressed(egui::Key::ArrowLeft),
            )
        });
        let sel = self.session.selected;
        let target = if next && sel + 1 < self.session.images.len() {
            Some(sel + 1)
        } else if prev && sel > 0 {
            Some(sel - 1)
        } else {
            None
        };
        if let Some(t) = target {
            self.commands.push(Command::SelectImage(t));
            self.session.scroll_to_selected = true;
        }
    }

    /// Files dropped on the window: a card or weights opens a model, anything else images.
    fn dropped_files(&mut self, egui: &egui::Context) {
        let dropped: Vec<PathBuf> = egui.input(|i| i.raw.dropped_files.iter().map(|f| f.path().to_path_buf()).filter(|p| !p.as_os_str().is_empty()).collect());
        if dropped.is_empty() {
            return;
        }
        let (models, images): (Vec<PathBuf>, Vec<PathBuf>) = dropped.into_iter().partition(|p| {
            p.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).is_some_and(|e| ["json", "safetensors", "pth", "pt"].contains(&e.as_str()))
        });
        if let Some(m) = models.into_iter().next() {
            self.commands.push(Command::OpenModel(m));
        }
        if !images.is_empty() {
            self.commands.push(Command::OpenImages(images));
        }
    }

    fn print_announcements(&mut self) {
        let lines = std::mem::take(&mut self.notes.announcements);
        if !self.announce || lines.is_empty() {
            return;
        }
        use std::io::Write;
        for l in lines {
            if l.starts_with("explanation ready") {
                if let Some(s) = self.frames.summary() {
                    println!("easel: frame times while it ran: {s}");
                }
                println!("easel: frames drawn while it ran: {}", self.frames.drawn());
            }
            println!("easel: {l}");
        }
        let _ = std::io::stdout().flush();
    }

    /// Per-frame work of the views (debounced runs, the lab's messages).
    fn views_logic(&mut self, egui: &egui::Context) {
        let c = &mut ctx!(self, egui);
        self.explain.logic(&self.state.explain, c);
        match self.state.tab {
            Tab::Adversarial => self.adversarial.logic(&self.state.adversarial, c),
            Tab::Compare => self.compare.logic(&self.state.compare, &self.state.explain, c),
            _ => {}
        }
        self.lab.logic(&self.state.lab, &self.state.dataset, c);
        self.pretrain.logic(c);
    }
}

impl eframe::App for EaselApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.frame_started = Some(Instant::now());
        self.drain_events(ctx);
        self.commands.extend(self.dialogs.drain());
        self.keys(ctx);
        self.dropped_files(ctx);
        self.run_commands(ctx);
        self.views_logic(ctx);
        self.run_commands(ctx);
        let running = self.explain.map.is_running();
        if running && !self.map_was_running {
            self.frames.reset();
        }
        self.map_was_running = running;
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.root_ui(ui);
        let egui = ui.ctx().clone();
        self.run_commands(&egui);
        self.print_announcements();
        self.frames.frames += 1;
        if let Some(start) = self.frame_started.take()
            && self.frames.measuring
        {
            self.frames.work_ms.push(start.elapsed().as_secs_f32() * 1e3);
        }
        // No timer repaints while work runs: the worker wakes the UI when it has news (a few
        // times a second at most), so a software renderer does not steal the cores computing.
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, STATE_KEY, &self.state);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.leave_image();
        self.compare.clear();
        self.dataset.clear();
        if self.frames.measuring
            && let Some(s) = self.frames.summary()
        {
            println!("easel: frame times over {s}");
        }
    }
}

impl EaselApp {
    /// The whole window.
    fn root_ui(&mut self, ui: &mut egui::Ui) {
        let cmds = &mut self.commands;
        egui::Panel::top("top_bar").show(ui, |ui| chrome::top_bar_ui(ui, &self.session, &self.state.session, &mut self.frames, cmds));
        if !self.notes.errors.is_empty() || self.notes.status.is_some() {
            egui::Panel::top("banner").show(ui, |ui| chrome::banner_ui(ui, &self.notes, cmds));
        }
        let width = ui.available_width();
        egui::Panel::left("images").resizable(true).default_size(if width < 1200.0 { 170.0 } else { 220.0 }).min_size(120.0).show(ui, |ui| {
            if chrome::images_ui(ui, &self.session, cmds) {
                self.session.scroll_to_selected = false;
            }
        });
        egui::CentralPanel::default().show(ui, |ui| {
            chrome::tabs_ui(ui, self.state.tab, cmds);
            ui.separator();
            let s = &mut self.state;
            match s.tab {
                Tab::Explain => explain_ui::ui(ui, &self.explain, &mut s.explain, &self.session, cmds),
                Tab::Compare => compare::ui(ui, &self.compare, &mut s.compare, &s.explain, &self.session, cmds),
                Tab::Adversarial => adversarial::ui(ui, &self.adversarial, &mut s.adversarial, &self.session, cmds),
                Tab::Dataset => dataset_ui::ui(ui, &self.dataset, &mut s.dataset, &self.session, cmds),
                Tab::Sampling => lab_ui::ui(ui, &self.lab, &mut s.lab, cmds),
                Tab::Pretraining => pretrain_ui::ui(ui, &self.pretrain, &mut s.pretrain, cmds),
            }
        });
    }
}
