//! The Pre-training view's state and messages: the pre-training lab runs on its own thread
//! through the job layer (`easel_jobs::transfer::spawn`, the function `easel transfer` runs);
//! a finished or reopened lab is drawn from its `TransferSummary`; "Fine-tune on a folder"
//! runs `easel_jobs::finetune` on another thread.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;

use easel_core::transfer::{Regime, TransferConfig, TransferResult};
use easel_jobs::finetune::{self, FinetuneMode, FinetuneOutput, FinetuneRequest, HeldOut};
use easel_jobs::transfer::{self, TransferEvent, TransferHandle, TransferMessage, TransferRequest, TransferSummary};
use serde::{Deserialize, Serialize};

use crate::command::{Command, PretrainCommand};
use crate::ctx::{Ctx, WAKE_DELAY};

/// The view's settings (persisted).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct PretrainSettings {
    pub regimes: Vec<Regime>,
    /// The target task's classes, e.g. "5,6,7,8,9".
    pub target_classes: String,
    /// The source task's classes (for `transfer`), e.g. "0,1,2,3,4".
    pub source_classes: String,
    /// Labels per class, e.g. "10,50,200".
    pub labels: String,
    pub noise: f64,
    pub head_lr_mult: f64,
    pub freeze_epochs: usize,
    pub label_cost: f64,
    pub seed: u64,
    /// The accuracy the view's sentence prices ("to reach 85 %: ...").
    pub target_accuracy: f64,
    pub pretrain_epochs: usize,
    /// Held-out images scored.
    pub test_limit: usize,
}

impl Default for PretrainSettings {
    fn default() -> Self {
        PretrainSettings {
            regimes: Regime::ALL.to_vec(),
            target_classes: "5,6,7,8,9".into(),
            source_classes: "0,1,2,3,4".into(),
            labels: "10,50,200".into(),
            noise: 0.4,
            head_lr_mult: 10.0,
            freeze_epochs: 0,
            label_cost: 25.0,
            seed: 0,
            target_accuracy: 0.85,
            pretrain_epochs: 2,
            test_limit: 2000,
        }
    }
}

/// Class indices joined by commas.
fn class_list(text: &str, what: &str) -> Result<Vec<usize>, String> {
    let v: Result<Vec<usize>, _> = text.split(',').map(|t| t.trim().parse::<usize>()).collect();
    match v {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => Err(format!("{what} '{text}': class indices joined by commas, e.g. 5,6,7,8,9")),
    }
}

impl PretrainSettings {
    pub fn classes(&self) -> Result<(Vec<usize>, Vec<usize>), String> {
        Ok((class_list(&self.target_classes, "target classes")?, class_list(&self.source_classes, "source classes")?))
    }

    pub fn labels_per_class(&self) -> Result<Vec<usize>, String> {
        let v: Result<Vec<usize>, _> = self.labels.split(',').map(|t| t.trim().parse::<usize>()).collect();
        match v {
            Ok(v) if !v.is_empty() && !v.contains(&0) => Ok(v),
            _ => Err(format!("labels per class '{}': whole numbers joined by commas, e.g. 10,50,200", self.labels)),
        }
    }

    pub fn config(&self) -> Result<TransferConfig, String> {
        let mut targets = vec![0.80, 0.85, 0.90];
        if !targets.iter().any(|t: &f64| (t - self.target_accuracy).abs() < 1e-9) {
            targets.push(self.target_accuracy);
        }
        let (target_classes, source_classes) = self.classes()?;
        Ok(TransferConfig {
            target_classes,
            source_classes,
            regimes: self.regimes.clone(),
            labels_per_class: self.labels_per_class()?,
            noise: self.noise,
            head_lr_mult: self.head_lr_mult,
            freeze_epochs: self.freeze_epochs,
            label_cost: self.label_cost,
            seed: self.seed,
            accuracy_targets: targets,
            pretrain_epochs: self.pretrain_epochs.max(1),
            test_limit: Some(self.test_limit.max(1)),
            ..TransferConfig::default()
        })
    }
}

enum FinetuneMessage {
    Stage(String),
    Done(Result<Box<FinetuneOutput>, String>),
}

#[derive(Default)]
pub struct PretrainView {
    handle: Option<TransferHandle>,
    pub stage: Option<String>,
    /// Per run trained in this session: its training accuracy per epoch.
    pub live: Vec<((Regime, usize), Vec<f64>)>,
    pub results: Vec<TransferResult>,
    pub summary: Option<TransferSummary>,
    /// Where the lab on screen was written.
    pub dir: Option<PathBuf>,
    /// Where new labs go (default: `pretraining/` in the app's cache folder).
    pub out_root: Option<PathBuf>,
    opened: Option<Receiver<Result<(PathBuf, TransferSummary), String>>>,
    finetune: Option<Receiver<FinetuneMessage>>,
    pub finetune_stage: Option<String>,
    pub finetuned: Option<FinetuneOutput>,
}

impl PretrainView {
    pub fn is_running(&self) -> bool {
        self.handle.is_some()
    }

    pub fn is_finetuning(&self) -> bool {
        self.finetune.is_some()
    }

    fn train(&mut self, settings: &PretrainSettings, device: easel_core::device::DeviceChoice, ctx: &mut Ctx) {
        if self.handle.is_some() {
            return;
        }
        let config = match settings.config() {
            Ok(c) => c,
            Err(e) => return ctx.notes.error(e),
        };
        let Some(assets) = &ctx.paths.assets else { return ctx.notes.error("the bundled assets/ folder was not found") };
        let system = PathBuf::from(easel_core::data::SYSTEM_FASHION_MNIST);
        if !system.join("train-images-idx3-ubyte.gz").is_file() {
            return ctx
                .notes
                .error("the pre-training lab needs Fashion-MNIST's 60k training set: install dataset-fashion-mnist (scripts/test.sh does, as root)");
        }
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        let out =
            self.out_root.clone().unwrap_or_else(|| ctx.paths.cache.clone().unwrap_or_else(std::env::temp_dir).join("pretraining")).join(stamp.to_string());
        let req = TransferRequest {
            config,
            data: system,
            test: Some(assets.join("fashion-mnist")),
            backbone: assets.join("efficientnet-lite0/card.json"),
            out: out.clone(),
            force: false,
        };
        let repaint = ctx.egui.clone();
        match transfer::spawn(req, device, std::sync::Arc::new(move || repaint.request_repaint_after(WAKE_DELAY))) {
            Ok(h) => {
                self.handle = Some(h);
                self.live.clear();
                self.results.clear();
                self.summary = None;
                self.dir = Some(out);
            }
            Err(e) => ctx.notes.error(e),
        }
    }

    fn open(&mut self, dir: PathBuf, ctx: &mut Ctx) {
        let read = move || -> Result<(PathBuf, TransferSummary), String> {
            let p = dir.join("transfer.json");
            let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            let s = serde_json::from_str(&text).map_err(|e| format!("{}: not a pre-training lab ({e})", p.display()))?;
            Ok((dir, s))
        };
        if let Some(rx) = ctx.read_off_thread("the lab", read) {
            self.opened = Some(rx);
        }
    }

    fn finetune_folder(&mut self, folder: PathBuf, settings: &PretrainSettings, device: easel_core::device::DeviceChoice, ctx: &mut Ctx) {
        let Some(model) = &ctx.session.model else { return ctx.notes.error("open the model to fine-tune first (e.g. the Photos demo's EfficientNet-Lite0)") };
        let out =
            folder.with_file_name(format!("{}-finetuned", folder.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "folder".into())));
        let out = easel_core::fsutil::unused_path(&out);
        let req = FinetuneRequest {
            model: model.path.clone(),
            data: folder,
            held_out: HeldOut::Share(0.2),
            mode: FinetuneMode::HeadOnly,
            head_lr_mult: settings.head_lr_mult,
            epochs: 30,
            learning_rate: 1e-3,
            batch_size: 32,
            seed: settings.seed,
            out,
            force: false,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let repaint = ctx.egui.clone();
        let spawned = std::thread::Builder::new().name("easel-finetune".into()).spawn(move || {
            let send = |m: FinetuneMessage| {
                let _ = tx.send(m);
                repaint.request_repaint_after(WAKE_DELAY);
            };
            let dev = easel_core::device::select_device(device).unwrap_or_else(|_| easel_core::device::ComputeDevice::cpu("fallback"));
            let r =
                finetune::run(&req, &dev.device, &mut |s| send(FinetuneMessage::Stage(s.to_string())), &mut |_, _| {}, easel_core::progress::Progress::none());
            send(FinetuneMessage::Done(r.map(Box::new).map_err(|e| e.to_string())));
        });
        match spawned {
            Ok(_) => {
                self.finetune = Some(rx);
                self.finetuned = None;
                self.finetune_stage = Some("starting".into());
            }
            Err(e) => ctx.notes.error(format!("cannot start the fine-tune: {e}")),
        }
    }

    pub fn run(&mut self, cmd: PretrainCommand, settings: &PretrainSettings, device: easel_core::device::DeviceChoice, ctx: &mut Ctx) {
        match cmd {
            PretrainCommand::Train => self.train(settings, device, ctx),
            PretrainCommand::Cancel => {
                if let Some(h) = &self.handle {
                    h.cancel.store(true, Ordering::Relaxed);
                }
            }
            PretrainCommand::Open(dir) => self.open(dir, ctx),
            PretrainCommand::OpenModel(regime, n) => {
                let Some(dir) = &self.dir else { return };
                let card = transfer::run_dir(dir, regime, n).join("card.json");
                ctx.commands.push(Command::OpenModel(card));
                if let Some(assets) = &ctx.paths.assets {
                    ctx.commands.push(Command::OpenImages(vec![assets.join("fashion-mnist")]));
                }
                ctx.commands.push(Command::SetTab(crate::state::Tab::Dataset));
            }
            PretrainCommand::Finetune(folder) => self.finetune_folder(folder, settings, device, ctx),
        }
    }

    /// Drain the lab's and the fine-tune's messages.
    pub fn logic(&mut self, ctx: &mut Ctx) {
        let mut messages = Vec::new();
        if let Some(h) = &self.handle {
            while let Ok(m) = h.messages.try_recv() {
                messages.push(m);
            }
        }
        for m in messages {
            match m {
                TransferMessage::Event(TransferEvent::Prepared { .. }) => {}
                TransferMessage::Event(TransferEvent::Stage(s)) => self.stage = Some(s),
                TransferMessage::Event(TransferEvent::Epoch { regime, labels_per_class, train_accuracy, .. }) => {
                    match self.live.iter_mut().find(|(k, _)| *k == (regime, labels_per_class)) {
                        Some((_, v)) => v.push(train_accuracy),
                        None => self.live.push(((regime, labels_per_class), vec![train_accuracy])),
                    }
                }
                TransferMessage::Event(TransferEvent::Done(r)) => self.results.push(*r),
                TransferMessage::Finished(s) => {
                    self.handle = None;
                    self.stage = None;
                    self.results = s.results.clone();
                    self.summary = Some(*s);
                    ctx.announce("pre-training ready");
                }
                TransferMessage::Failed(e) => {
                    self.handle = None;
                    self.stage = None;
                    ctx.notes.error(format!("pre-training lab: {e}"));
                }
                TransferMessage::Cancelled => {
                    self.handle = None;
                    self.stage = None;
                    ctx.notes.status = Some("pre-training cancelled".into());
                }
            }
        }
        if let Some(rx) = &self.opened
            && let Ok(r) = rx.try_recv()
        {
            self.opened = None;
            match r {
                Ok((dir, s)) => {
                    self.results = s.results.clone();
                    self.summary = Some(s);
                    self.dir = Some(dir);
                    self.live.clear();
                    ctx.announce("pre-training ready");
                }
                Err(e) => ctx.notes.error(e),
            }
        }
        let mut done = None;
        if let Some(rx) = &self.finetune {
            while let Ok(m) = rx.try_recv() {
                match m {
                    FinetuneMessage::Stage(s) => self.finetune_stage = Some(s),
                    FinetuneMessage::Done(r) => done = Some(r),
                }
            }
        }
        if let Some(r) = done {
            self.finetune = None;
            self.finetune_stage = None;
            match r {
                Ok(o) => {
                    ctx.notes.status = Some(format!("fine-tuned: held-out accuracy {:.3}; model written to {}", o.test_accuracy, o.card.display()));
                    self.finetuned = Some(*o);
                    ctx.announce("fine-tune ready");
                }
                Err(e) => ctx.notes.error(format!("fine-tune: {e}")),
            }
        }
    }

    /// The lab's folder, if one is on screen.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }
}
