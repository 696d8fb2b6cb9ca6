//! The sampling lab's background runner: one named thread trains the chosen strategies one
//! after another, reporting epochs and finished runs over a channel; a shared flag cancels it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;

use crate::device::{select_device, DeviceChoice};
use crate::metrics::CostMatrix;
use crate::models::SmallCnnConfig;
use crate::progress::Progress;
use crate::sampling::{self, Profile, RunRecord, StrategySpec};
use crate::train::{EpochReport, TrainEvent, TrainSettings};

/// What the user asked the lab to do.
#[derive(Clone, Debug)]
pub struct LabRequest {
    pub train: PathBuf,
    pub train_split: String,
    /// Held-out data; `None`: hold out the last `holdout` images of the training data.
    pub test: Option<PathBuf>,
    pub holdout: usize,
    pub profile: Profile,
    pub per_class: Option<usize>,
    pub strategies: Vec<String>,
    pub epochs: usize,
    pub seed: u64,
    pub cost: Option<CostMatrix>,
    pub out: PathBuf,
    pub device: DeviceChoice,
}

pub enum LabEvent {
    Started { strategy: String, train_counts: Vec<usize> },
    Batch { epoch: usize, done: usize, total: usize },
    Epoch { strategy: String, report: EpochReport },
    RunDone { record: Box<RunRecord>, dir: PathBuf },
    Failed(String),
    Finished { cancelled: bool },
}

pub struct LabHandle {
    pub events: Receiver<LabEvent>,
    pub cancel: Arc<AtomicBool>,
}

/// The lab's small CNN: the two-conv network of the reference fixtures (fast on a CPU), as
/// `easel sample --arch two-conv` uses.
fn lab_architecture(k: usize) -> SmallCnnConfig {
    SmallCnnConfig::two_conv(1, 28, 16, 32, 3, 64, k)
}

pub fn spawn(req: LabRequest, repaint: Arc<dyn Fn() + Send + Sync>) -> Result<LabHandle, String> {
    let specs: Vec<StrategySpec> = req.strategies.iter().map(|s| s.parse()).collect::<crate::Result<_>>().map_err(|e| e.to_string())?;
    if specs.is_empty() {
        return Err("choose at least one strategy".into());
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    std::thread::Builder::new()
        .name("easel-lab".into())
        .spawn(move || {
            let send = |e: LabEvent| {
                let _ = tx.send(e);
                repaint();
            };
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&req, &specs, &flag, &tx, &*repaint)));
            match result {
                Ok(Ok(())) => send(LabEvent::Finished { cancelled: false }),
                Ok(Err(crate::Error::Cancelled)) => send(LabEvent::Finished { cancelled: true }),
                Ok(Err(e)) => {
                    send(LabEvent::Failed(e.to_string()));
                    send(LabEvent::Finished { cancelled: false });
                }
                Err(_) => {
                    send(LabEvent::Failed("internal error in the sampling lab".into()));
                    send(LabEvent::Finished { cancelled: false });
                }
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(LabHandle { events: rx, cancel })
}

fn run(req: &LabRequest, specs: &[StrategySpec], cancel: &AtomicBool, tx: &Sender<LabEvent>, repaint: &(dyn Fn() + Send + Sync)) -> crate::Result<()> {
    let send = |e: LabEvent| {
        let _ = tx.send(e);
        repaint();
    };
    let holdout = req.test.is_none().then_some(req.holdout);
    let lab = sampling::prepare_lab_data(&req.train, &req.train_split, req.test.as_deref(), holdout, &req.profile, req.per_class, req.seed, specs.len())?;
    let (train, test, input) = (lab.train, lab.test, lab.input);
    let k = train.classes.len();
    let device = select_device(req.device).unwrap_or_else(|_| crate::device::ComputeDevice::cpu("fallback"));
    let cost = req.cost.clone().unwrap_or_else(|| CostMatrix::zero_one(k));
    for spec in specs {
        if cancel.load(Ordering::Relaxed) {
            return Err(crate::Error::Cancelled);
        }
        send(LabEvent::Started { strategy: spec.name.clone(), train_counts: train.class_counts() });
        let settings = TrainSettings { epochs: req.epochs, batch_size: 64, learning_rate: 2e-3, lr_decay: 0.8, seed: req.seed, augment_flip: false };
        let config = sampling::run_config(spec, &req.profile, req.per_class, lab_architecture(k), &input, settings);
        let name = spec.name.clone();
        let mut last = std::time::Instant::now();
        let mut on_event = |e: TrainEvent| match e {
            TrainEvent::Batch { epoch, done, total, .. } => {
                if last.elapsed().as_millis() > 300 || done == total {
                    last = std::time::Instant::now();
                    send(LabEvent::Batch { epoch, done, total });
                }
            }
            TrainEvent::Epoch(report) => send(LabEvent::Epoch { strategy: name.clone(), report }),
        };
        let progress = Progress::none().with_cancel(cancel);
        let (record, model) = sampling::run_strategy(&train, &test, &config, Some(&cost), &device.device, &mut on_event, progress)?;
        let dir = req.out.join(spec.name.replace('+', "_"));
        sampling::save_run(&dir, &record, &model)?;
        send(LabEvent::RunDone { record: Box::new(record), dir });
    }
    Ok(())
}
