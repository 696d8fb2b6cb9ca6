//! The Sampling lab view's state and events: the lab runs on its own thread through the job
//! layer ([`easel_jobs::lab::spawn`], the same function `easel sample` calls); finished and
//! reopened runs are compared here (cheap: counting over held-out predictions).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use easel_core::metrics::{ConfusionMatrix, CostMatrix};
use easel_core::models::SmallCnnPreset;
use easel_core::sampling::{self, ComparisonRow, Profile, RunRecord, StrategySpec};
use easel_core::train::EpochReport;
use easel_jobs::lab::{self, LabEvent, LabHandle, LabMessage, LabRequest};

use crate::command::LabCommand;
use crate::ctx::Ctx;
use crate::state::{DatasetSettings, LabSettings};

#[derive(Default)]
pub struct LabView {
    pub handle: Option<LabHandle>,
    pub current: Option<String>,
    /// (epoch, batches done, batches in the epoch)
    pub progress: (usize, usize, usize),
    pub train_counts: Option<Vec<usize>>,
    /// Per-epoch reports of the runs trained in this session, for the live curves.
    pub live: Vec<(String, Vec<EpochReport>)>,
    pub records: Vec<RunRecord>,
    pub dirs: Vec<PathBuf>,
    pub selected: Vec<bool>,
    /// Derived from the selected runs.
    pub rows: Vec<ComparisonRow>,
    pub confusions: Vec<ConfusionMatrix>,
    pub true_distribution: Vec<f64>,
    pub cost_is_custom: bool,
    /// Where new runs go (default: `lab-runs/` in the app's cache folder).
    pub out_root: Option<PathBuf>,
    /// The most-mined negatives of each run (by index into `records`), as textures.
    pub mined: std::collections::HashMap<usize, Vec<crate::textures::Shown>>,
    /// Runs whose mined negatives still need textures (made in `logic`, which has the context).
    pending_textures: Vec<usize>,
    /// Runs being read from disk on the `easel-open` thread: each folder and its run or why not.
    opening: Option<std::sync::mpsc::Receiver<OpenedRuns>>,
}

/// What reading a folder of runs gave: each run folder with its record or the reason it failed.
type OpenedRuns = Result<Vec<(PathBuf, Result<RunRecord, String>)>, String>;

impl LabView {
    pub fn is_running(&self) -> bool {
        self.handle.is_some()
    }

    fn start(&mut self, settings: &LabSettings, cost: Option<CostMatrix>, device: easel_core::device::DeviceChoice, ctx: &mut Ctx) {
        if self.handle.is_some() {
            return;
        }
        let Some(assets) = &ctx.paths.assets else { return ctx.notes.error("the bundled assets/ folder was not found") };
        let (data, data_split, test, holdout) = lab::default_data(assets);
        let strategies: Result<Vec<StrategySpec>, _> = settings.strategies.iter().map(|s| s.parse()).collect();
        let strategies = match strategies {
            Ok(s) => s,
            Err(e) => return ctx.notes.error(e),
        };
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        let out = self.out_root.clone().unwrap_or_else(|| ctx.paths.lab_runs()).join(stamp.to_string());
        let req = LabRequest {
            data,
            data_split,
            test,
            holdout,
            profile: Profile::LongTail { ratio: settings.ratio, rare: settings.rare.clone() },
            per_class: Some(settings.per_class),
            strategies,
            arch: SmallCnnPreset::TwoConv,
            settings: LabRequest::settings(settings.epochs, settings.seed),
            cost,
            mining: Default::default(),
            merges: if settings.merge_rare && settings.rare.len() >= 2 { vec![settings.rare.clone()] } else { Vec::new() },
            out,
            force: false,
        };
        let repaint_ctx = ctx.egui.clone();
        match lab::spawn(req, device, std::sync::Arc::new(move || repaint_ctx.request_repaint_after(crate::ctx::WAKE_DELAY))) {
            Ok(h) => {
                self.handle = Some(h);
                self.live.clear();
                self.current = None;
            }
            Err(e) => ctx.notes.error(e),
        }
    }

    /// The Dataset view's cost matrix, where it is set for these classes.
    fn cost_for(k: usize, dataset: &DatasetSettings) -> Option<CostMatrix> {
        dataset.cost.as_ref().filter(|c| c.len() == k && dataset.merges.is_empty()).map(|c| CostMatrix { costs: c.clone() })
    }

    pub fn run(&mut self, cmd: LabCommand, settings: &LabSettings, dataset: &DatasetSettings, device: easel_core::device::DeviceChoice, ctx: &mut Ctx) {
        match cmd {
            LabCommand::Train => {
                let cost = Self::cost_for(easel_core::data::FASHION_MNIST_CLASSES.len(), dataset);
                self.start(settings, cost, device, ctx)
            }
            LabCommand::Cancel => {
                if let Some(h) = &self.handle {
                    h.cancel.store(true, Ordering::Relaxed);
                }
            }
            LabCommand::OpenRuns(dir) => self.open_runs(&dir, ctx),
            LabCommand::Choose(i, on) => {
                if let Some(s) = self.selected.get_mut(i) {
                    *s = on;
                }
                self.refresh(settings, dataset);
            }
            LabCommand::Refresh => self.refresh(settings, dataset),
        }
    }

    /// Drain the lab thread's messages.
    pub fn logic(&mut self, settings: &LabSettings, dataset: &DatasetSettings, ctx: &mut Ctx) {
        if let Some(rx) = &self.opening
            && let Ok(opened) = rx.try_recv()
        {
            self.opening = None;
            match opened {
                Ok(runs) => {
                    // one comparison compares runs of one taxonomy: a lab trained with
                    // `--merge` holds runs on the merged classes too; show the larger group
                    // (the unmerged one on a tie) and say where the others are
                    let mut good = Vec::new();
                    for (d, r) in runs {
                        match r {
                            Ok(r) => good.push((d, r)),
                            Err(e) => ctx.notes.error(e),
                        }
                    }
                    let mut groups: Vec<(Vec<String>, usize)> = Vec::new();
                    for (_, r) in &good {
                        match groups.iter_mut().find(|g| g.0 == r.classes) {
                            Some(g) => g.1 += 1,
                            None => groups.push((r.classes.clone(), 1)),
                        }
                    }
                    let keep = groups.iter().max_by_key(|g| (g.1, g.0.len())).map(|g| g.0.clone()).unwrap_or_default();
                    let skipped = good.iter().filter(|(_, r)| r.classes != keep).count();
                    for (d, r) in good.into_iter().filter(|(_, r)| r.classes == keep) {
                        self.add_run(r, d, settings, dataset);
                    }
                    if skipped > 0 {
                        ctx.notes.status = Some(format!(
                            "{skipped} runs trained on other (merged) classes are not in this comparison; the lab's comparison.csv puts them beside the others"
                        ));
                    }
                    ctx.announce("lab ready");
                }
                Err(e) => ctx.notes.error(e),
            }
        }
        for i in std::mem::take(&mut self.pending_textures) {
            let Some(r) = self.records.get(i) else { continue };
            let tiles = r
                .mined
                .iter()
                .map(|m| {
                    let img = easel_core::imaging::PreparedImage { width: m.width, height: m.height, channels: m.channels, pixels: m.pixels.clone() };
                    crate::textures::Shown::new(ctx.egui, &format!("mined{i}-{}", m.index), &easel_jobs::picture::image_picture(&img))
                })
                .collect();
            self.mined.insert(i, tiles);
        }
        let mut messages = Vec::new();
        if let Some(h) = &self.handle {
            while let Ok(m) = h.messages.try_recv() {
                messages.push(m);
            }
        }
        for m in messages {
            match m {
                LabMessage::Event(LabEvent::Prepared { train_counts, .. }) => self.train_counts = Some(train_counts),
                LabMessage::Event(LabEvent::Started { strategy }) => {
                    self.current = Some(strategy.clone());
                    self.live.push((strategy, Vec::new()));
                    self.progress = (1, 0, 0);
                }
                LabMessage::Event(LabEvent::Batch { epoch, done, total, .. }) => self.progress = (epoch, done, total),
                LabMessage::Event(LabEvent::Epoch { strategy, report }) => {
                    if let Some(l) = self.live.iter_mut().rev().find(|l| l.0 == strategy) {
                        l.1.push(report);
                    }
                }
                LabMessage::Event(LabEvent::RunDone { record, dir }) => self.add_run(*record, dir, settings, dataset),
                LabMessage::Failed(m) => ctx.notes.error(format!("sampling lab: {m}")),
                LabMessage::Finished { cancelled } => {
                    self.handle = None;
                    self.current = None;
                    if cancelled {
                        ctx.notes.status = Some("training cancelled".into());
                    }
                    ctx.announce("lab ready");
                }
            }
        }
    }

    fn add_run(&mut self, record: RunRecord, dir: PathBuf, settings: &LabSettings, dataset: &DatasetSettings) {
        let same_set = self.records.first().is_none_or(|r| r.test.len() == record.test.len() && r.classes == record.classes);
        if !same_set {
            self.records.clear();
            self.dirs.clear();
            self.selected.clear();
            self.mined.clear();
            self.pending_textures.clear();
        }
        let chosen = self.selected.iter().filter(|s| **s).count();
        self.pending_textures.push(self.records.len());
        self.records.push(record);
        self.dirs.push(dir);
        self.selected.push(chosen < 6);
        self.refresh(settings, dataset);
    }

    /// Read the runs in `dir` (or the run `dir` is) on a thread: a lab of many runs holds
    /// megabytes of predictions, which the UI thread does not wait for.
    fn open_runs(&mut self, dir: &Path, ctx: &mut Ctx) {
        let dir = dir.to_path_buf();
        let read = move || -> OpenedRuns {
            let mut dirs: Vec<PathBuf> = if dir.join("run.json").is_file() {
                vec![dir.clone()]
            } else {
                std::fs::read_dir(&dir).map(|r| r.flatten().map(|e| e.path()).filter(|p| p.join("run.json").is_file()).collect()).unwrap_or_default()
            };
            dirs.sort();
            if dirs.is_empty() {
                return Err(format!("{}: no runs found (folders with run.json)", dir.display()));
            }
            Ok(dirs.into_iter().map(|d| (d.clone(), sampling::load_run(&d).map_err(|e| e.to_string()))).collect())
        };
        if let Some(rx) = ctx.read_off_thread("the runs", read) {
            self.opening = Some(rx);
        }
    }

    /// Recompute the comparison of the selected runs.
    pub fn refresh(&mut self, settings: &LabSettings, dataset: &DatasetSettings) {
        let chosen: Vec<RunRecord> = self.records.iter().zip(&self.selected).filter(|(_, s)| **s).map(|(r, _)| r.clone()).collect();
        let Some(first) = chosen.first() else {
            self.rows.clear();
            self.confusions.clear();
            return;
        };
        let k = first.classes.len();
        let custom = Self::cost_for(k, dataset);
        self.cost_is_custom = custom.is_some();
        let cost = custom.unwrap_or_else(|| CostMatrix::zero_one(k));
        self.rows = sampling::compare(&chosen, &cost, settings.prior_correction);
        self.true_distribution = sampling::true_distribution(first);
        self.confusions = sampling::confusions(&chosen, settings.prior_correction);
    }
}
