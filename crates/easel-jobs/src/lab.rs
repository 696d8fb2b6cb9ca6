//! The sampling lab as a job: prepare the long-tailed data, train one model per strategy,
//! save each run and the comparison tables. `easel sample` calls [`run`] in the foreground;
//! the app's Sampling lab view calls [`spawn`], which runs the same function on a named thread
//! and reports over a channel.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Receiver;

use easel_core::device::{ComputeDevice, DeviceChoice, select_device};
use easel_core::error::{Error, Result};
use easel_core::metrics::CostMatrix;
use easel_core::models::SmallCnnPreset;
use easel_core::progress::Progress;
use easel_core::sampling::{self, ComparisonRow, MiningSettings, Profile, RunRecord, StrategySpec};
use easel_core::train::{EpochReport, TrainEvent, TrainSettings};
use easel_core::{data, fsutil};
use serde::Serialize;

use crate::explain::json_bytes;

/// What the lab should do.
#[derive(Clone, Debug)]
pub struct LabRequest {
    /// An IDX folder or file, or a class-per-folder tree.
    pub data: PathBuf,
    pub data_split: String,
    /// Held-out data (default: the t10k split beside an IDX `data`).
    pub test: Option<PathBuf>,
    /// Hold out N images of `data` drawn at random instead.
    pub holdout: Option<usize>,
    pub profile: Profile,
    pub per_class: Option<usize>,
    pub strategies: Vec<StrategySpec>,
    /// The network (default: the fast two-conv CNN).
    pub arch: SmallCnnPreset,
    /// Epochs, batch size, learning rate and its decay, seed (flips are the strategy's).
    pub settings: TrainSettings,
    /// K x K costs for the tables' cost columns (default 0/1).
    pub cost: Option<CostMatrix>,
    /// Negative mining's settings (the `hnm` strategy).
    pub mining: MiningSettings,
    /// Also train on merged classes: each strategy then runs twice, and the comparison puts
    /// "merged at training" beside "merged at inference" on the same merged test labels.
    pub merges: Vec<Vec<usize>>,
    /// Where the runs and the comparison go.
    pub out: PathBuf,
    /// Replace a comparison already in `out`.
    pub force: bool,
}

impl LabRequest {
    /// The lab's usual training settings: Adam at 2e-3, decaying by 0.8 per epoch, batch 64.
    pub fn settings(epochs: usize, seed: u64) -> TrainSettings {
        TrainSettings { epochs, batch_size: 64, learning_rate: 2e-3, lr_decay: 0.8, seed, ..TrainSettings::default() }
    }
}

/// What the lab reports while it runs.
#[derive(Clone, Debug)]
pub enum LabEvent {
    /// The data is ready.
    Prepared {
        classes: Vec<String>,
        train_counts: Vec<usize>,
        test_len: usize,
    },
    Started {
        strategy: String,
    },
    Batch {
        epoch: usize,
        done: usize,
        total: usize,
        loss: f64,
    },
    Epoch {
        strategy: String,
        report: EpochReport,
    },
    RunDone {
        record: Box<RunRecord>,
        dir: PathBuf,
    },
}

/// The comparison the lab writes at the end (`comparison.json`).
#[derive(Clone, Debug, Serialize)]
pub struct LabSummary {
    pub classes: Vec<String>,
    pub train_counts: Vec<usize>,
    pub rare_classes: Vec<usize>,
    pub rows: Vec<ComparisonRow>,
    pub prior_corrected: Vec<ComparisonRow>,
    pub seconds: f64,
}

/// The folder a run of `strategy` is saved in.
pub fn run_dir(out: &Path, strategy: &StrategySpec) -> PathBuf {
    out.join(strategy.name.replace(['+', ':'], "_"))
}

/// Run the lab: every strategy in turn, each run saved as it finishes, then the comparison
/// (`comparison.csv`, `comparison-prior-corrected.csv`, `comparison.json`).
pub fn run(req: &LabRequest, device: &burn::tensor::Device, on_event: &mut dyn FnMut(LabEvent), progress: Progress<'_>) -> Result<LabSummary> {
    if req.strategies.is_empty() {
        return Err(Error::invalid("choose at least one strategy"));
    }
    req.mining.validate()?;
    if req.out.join("comparison.json").exists() && !req.force {
        return Err(Error::invalid(format!("{} already holds a comparison; pass --force to replace it", req.out.display())));
    }
    // refuse before training, not after: no run folder may hold an earlier run
    if !req.force
        && let Some(p) = req.strategies.iter().map(|s| run_dir(&req.out, s).join("run.json")).find(|p| p.exists())
    {
        return Err(Error::invalid(format!("{} already exists; pass --force to replace it", p.display())));
    }
    let started = std::time::Instant::now();
    let runs = req.strategies.len() * if req.merges.is_empty() { 1 } else { 2 };
    let lab = sampling::prepare_lab_data(&req.data, &req.data_split, req.test.as_deref(), req.holdout, &req.profile, req.per_class, req.settings.seed, runs)?;
    let (train, test, held_back, input) = (lab.train, lab.test, lab.held_back, lab.input);
    let k = train.classes.len();
    let cost = match &req.cost {
        Some(c) if c.k() != k => return Err(Error::invalid(format!("the cost matrix is {}x{0} but the data has {k} classes", c.k()))),
        Some(c) => c.clone(),
        None => CostMatrix::zero_one(k),
    };
    // merged classes: checked before anything trains; the merged cost matrix takes the mean
    let merged = if req.merges.is_empty() {
        None
    } else {
        let (new_k, new_of) = easel_core::metrics::merge_map(k, &req.merges);
        Some((train.merged(&req.merges)?, test.merged(&req.merges)?, cost.merged(new_k, &new_of)))
    };
    on_event(LabEvent::Prepared { classes: train.classes.clone(), train_counts: train.class_counts(), test_len: test.len() });
    let architecture = req.arch.config(k);
    let mut records = Vec::new();
    for spec in &req.strategies {
        progress.check()?;
        let mut config = sampling::run_config(spec, &req.profile, req.per_class, architecture.clone(), &input, req.settings.clone());
        config.mining = req.mining.clone();
        let run_train = if config.collected > 0 { sampling::collect_rare(&train, &held_back, config.collected, req.settings.seed)? } else { train.clone() };
        let record = train_one(&run_train, &test, &config, &cost, device, &run_dir(&req.out, spec), on_event, progress)?;
        match &merged {
            None => records.push(record),
            Some((m_train, m_test, m_cost)) => {
                records.push(record.merged(&req.merges, &format!("{} (merged at inference)", spec.name))?);
                let mut m_config = config.clone();
                m_config.strategy.name = format!("{} (merged at training)", spec.name);
                m_config.architecture = req.arch.config(m_train.classes.len());
                m_config.merges = req.merges.clone();
                let m_run_train = if config.collected > 0 {
                    sampling::collect_rare(m_train, &held_back.merged(&req.merges)?, config.collected, req.settings.seed)?
                } else {
                    m_train.clone()
                };
                let dir = req.out.join(format!("{}-merged-at-training", spec.name.replace(['+', ':'], "_")));
                records.push(train_one(&m_run_train, m_test, &m_config, m_cost, device, &dir, on_event, progress)?);
            }
        }
    }
    let (classes, table_cost) = match &merged {
        Some((m_train, _, m_cost)) => (m_train.classes.clone(), m_cost.clone()),
        None => (train.classes.clone(), cost),
    };
    let summary = LabSummary {
        rows: sampling::compare(&records, &table_cost, false),
        prior_corrected: sampling::compare(&records, &table_cost, true),
        rare_classes: sampling::rare_classes(&records[0].train_counts),
        train_counts: records[0].train_counts.clone(),
        classes,
        seconds: started.elapsed().as_secs_f64(),
    };
    let files = vec![
        ("comparison.csv".to_string(), sampling::comparison_csv(&summary.rows, &summary.classes).into_bytes()),
        ("comparison-prior-corrected.csv".to_string(), sampling::comparison_csv(&summary.prior_corrected, &summary.classes).into_bytes()),
        ("comparison.json".to_string(), json_bytes(&summary)?),
    ];
    fsutil::write_files(&req.out, &files, req.force)?;
    Ok(summary)
}

/// Train one run, save it in `dir`, report it.
#[allow(clippy::too_many_arguments)]
fn train_one(
    train: &easel_core::data::LabelledImages,
    test: &easel_core::data::LabelledImages,
    config: &sampling::RunConfig,
    cost: &CostMatrix,
    device: &burn::tensor::Device,
    dir: &Path,
    on_event: &mut dyn FnMut(LabEvent),
    progress: Progress<'_>,
) -> Result<RunRecord> {
    let name = config.strategy.name.clone();
    on_event(LabEvent::Started { strategy: name.clone() });
    let mut on_train = |e: TrainEvent| match e {
        TrainEvent::Batch { epoch, done, total, loss } => on_event(LabEvent::Batch { epoch, done, total, loss }),
        TrainEvent::Epoch(report) => on_event(LabEvent::Epoch { strategy: name.clone(), report }),
    };
    let (record, model) = sampling::run_strategy(train, test, config, Some(cost), device, &mut on_train, progress)?;
    sampling::save_run(dir, &record, &model)?;
    on_event(LabEvent::RunDone { record: Box::new(record.clone()), dir: dir.to_path_buf() });
    Ok(record)
}

/// Where the app's lab trains from: Fashion-MNIST's 60k training set where the Debian package
/// is installed (held out: the bundled 10k test set), else the bundled test set with 3,000 of
/// its images held out at random.
pub fn default_data(assets: &Path) -> (PathBuf, String, Option<PathBuf>, Option<usize>) {
    let system = PathBuf::from(data::SYSTEM_FASHION_MNIST);
    let bundled = assets.join("fashion-mnist");
    if system.join("train-images-idx3-ubyte.gz").is_file() { (system, "train".into(), Some(bundled), None) } else { (bundled, "t10k".into(), None, Some(3000)) }
}

/// What the app sees of a lab running on its thread.
pub enum LabMessage {
    Event(LabEvent),
    Failed(String),
    Finished { cancelled: bool },
}

/// The app's handle on a running lab.
pub struct LabHandle {
    pub messages: Receiver<LabMessage>,
    pub cancel: Arc<AtomicBool>,
}

/// Run the lab on the `easel-lab` thread. Batch events reach the channel at most every
/// 300 ms; every epoch and run does.
pub fn spawn(req: LabRequest, device: DeviceChoice, repaint: crate::worker::Repaint) -> Result<LabHandle> {
    if req.strategies.is_empty() {
        return Err(Error::invalid("choose at least one strategy"));
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    std::thread::Builder::new()
        .name("easel-lab".into())
        .spawn(move || {
            let send = |m: LabMessage| {
                let _ = tx.send(m);
                repaint();
            };
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let device = select_device(device).unwrap_or_else(|_| ComputeDevice::cpu("fallback"));
                let mut last = std::time::Instant::now();
                let mut on_event = |e: LabEvent| {
                    if let LabEvent::Batch { done, total, .. } = &e {
                        if last.elapsed().as_millis() < 300 && done < total {
                            return;
                        }
                        last = std::time::Instant::now();
                    }
                    send(LabMessage::Event(e));
                };
                run(&req, &device.device, &mut on_event, Progress::none().with_cancel(&flag))
            }));
            match outcome {
                Ok(Ok(_)) => send(LabMessage::Finished { cancelled: false }),
                Ok(Err(Error::Cancelled)) => send(LabMessage::Finished { cancelled: true }),
                Ok(Err(e)) => {
                    send(LabMessage::Failed(e.to_string()));
                    send(LabMessage::Finished { cancelled: false });
                }
                Err(_) => {
                    send(LabMessage::Failed("internal error in the sampling lab".into()));
                    send(LabMessage::Finished { cancelled: false });
                }
            }
        })
        .map_err(|e| Error::Compute(format!("cannot start the lab thread: {e}")))?;
    Ok(LabHandle { messages: rx, cancel })
}
