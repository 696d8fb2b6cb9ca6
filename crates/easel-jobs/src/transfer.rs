//! The pre-training lab as a job: load the data, pre-train what the regimes need, fine-tune
//! each regime at each number of labels, save every run as a model (weights + card) any
//! command or view can open, and write `transfer.json` and `transfer.csv`. `easel transfer`
//! calls [`run`]; the app's Pre-training view calls [`spawn`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Receiver;

use easel_core::card::{CARD_FORMAT, ModelCard};
use easel_core::data::{self, LabelledImages};
use easel_core::device::{ComputeDevice, DeviceChoice, select_device};
use easel_core::error::{Error, Result};
use easel_core::models::{Architecture, Classifier, Net, SmallCnnPreset};
use easel_core::progress::Progress;
use easel_core::train::{FineTune, ShuffleAll, TrainEvent, TrainSettings, train_net};
use easel_core::transfer::{self, LabelsToReach, Regime, TransferConfig, TransferResult};
use easel_core::{fsutil, weights};
use serde::Serialize;

use crate::explain::json_bytes;

/// What the lab should do and where its data and models are.
#[derive(Clone, Debug)]
pub struct TransferRequest {
    pub config: TransferConfig,
    /// An IDX folder with a `train` split (Fashion-MNIST's 60k training set by default).
    pub data: PathBuf,
    /// Held-out data (default: the `t10k` split beside `data`).
    pub test: Option<PathBuf>,
    /// EfficientNet-Lite0's card, for the `imagenet` regime.
    pub backbone: PathBuf,
    pub out: PathBuf,
    pub force: bool,
}

/// What the lab reports while it runs.
#[derive(Clone, Debug)]
pub enum TransferEvent {
    Prepared {
        target: Vec<String>,
        train: usize,
        test: usize,
    },
    /// A stage begins (pre-training, feature extraction, a fine-tune).
    Stage(String),
    /// A training epoch of the stage: (epoch, training accuracy, loss).
    Epoch {
        regime: Regime,
        labels_per_class: usize,
        epoch: usize,
        train_accuracy: f64,
        loss: f64,
    },
    Done(Box<TransferResult>),
}

/// `transfer.json`.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct TransferSummary {
    pub config: TransferConfig,
    pub classes: Vec<String>,
    pub results: Vec<TransferResult>,
    pub labels_to_reach: Vec<LabelsToReach>,
    /// Time spent on shared stages: pre-training and feature extraction.
    pub shared_seconds: Vec<(String, f64)>,
    pub seconds: f64,
}

/// The folder of one run.
pub fn run_dir(out: &Path, regime: Regime, n: usize) -> PathBuf {
    out.join("runs").join(format!("{}-{n}", regime.name()))
}

fn settings(cfg: &TransferConfig, epochs: usize, fine_tune: FineTune) -> TrainSettings {
    TrainSettings { epochs, batch_size: cfg.batch_size, learning_rate: cfg.learning_rate, lr_decay: 0.95, seed: cfg.seed, augment_flip: false, fine_tune }
}

/// Epochs over `n` images so that fine-tuning takes at least `min_steps` batches.
fn epochs_for(cfg: &TransferConfig, n: usize) -> usize {
    let batches = n.div_ceil(cfg.batch_size).max(1);
    cfg.epochs.max(cfg.min_steps.div_ceil(batches))
}

fn save_model(
    dir: &Path,
    net: &Net,
    arch: &Architecture,
    input: &easel_core::card::InputSpec,
    classes: &[String],
    name: String,
    source: String,
) -> Result<PathBuf> {
    fsutil::ensure_dir(dir)?;
    weights::write_safetensors(&dir.join("weights.safetensors"), &net.torch_tensors(arch)?)?;
    let card = ModelCard {
        format: CARD_FORMAT.into(),
        name,
        architecture: arch.clone(),
        weights: "weights.safetensors".into(),
        input: input.clone(),
        classes: classes.to_vec(),
        source,
        license: "trained by easel on Fashion-MNIST (MIT); the ImageNet backbone is Apache-2.0".into(),
        metrics: serde_json::Value::Null,
    };
    let path = dir.join("card.json");
    card.save(&path)?;
    Ok(path)
}

fn accuracy(model: &Classifier, test: &LabelledImages, progress: Progress<'_>) -> Result<(f64, f64)> {
    let p = easel_core::evaluate::evaluate(model, test, 256, progress)?;
    let r = easel_core::metrics::report(&p, None);
    Ok((r.summary.accuracy, r.summary.balanced_accuracy))
}

/// Run the lab.
pub fn run(req: &TransferRequest, device: &burn::tensor::Device, on_event: &mut dyn FnMut(TransferEvent), progress: Progress<'_>) -> Result<TransferSummary> {
    let cfg = &req.config;
    if req.out.join("transfer.json").exists() && !req.force {
        return Err(Error::invalid(format!("{} already holds a pre-training lab; pass --force to replace it", req.out.display())));
    }
    let started = std::time::Instant::now();
    let input = data::fashion_input();
    let classes = data::fashion_classes();
    let train_all = data::load_source(&data::resolve_source(&req.data, "train")?, &input, &classes)?;
    cfg.validate(classes.len(), &train_all.class_counts())?;
    let test_path = req.test.clone().unwrap_or_else(|| req.data.clone());
    let test_all = data::load_source(&data::resolve_source(&test_path, "t10k")?, &input, &classes)?;
    let target = transfer::task(&train_all, &cfg.target_classes);
    let mut test = transfer::task(&test_all, &cfg.target_classes);
    if let Some(limit) = cfg.test_limit {
        test = test.first(limit);
    }
    if test.is_empty() {
        return Err(Error::invalid("the held-out data has no images of the target classes"));
    }
    let k = target.classes.len();
    on_event(TransferEvent::Prepared { target: target.classes.clone(), train: target.len(), test: test.len() });
    let order = transfer::label_order(&target, cfg.seed);
    let arch = Architecture::SmallCnn(SmallCnnPreset::TwoConv.config(k));
    let mut shared = Vec::new();
    let stage = |name: &str, on_event: &mut dyn FnMut(TransferEvent)| {
        on_event(TransferEvent::Stage(name.to_string()));
        std::time::Instant::now()
    };

    // pre-training, shared by every number of labels
    let pretrain = settings(cfg, cfg.pretrain_epochs, FineTune::default());
    let mut pretrained: Vec<(Regime, Net)> = Vec::new();
    if cfg.regimes.contains(&Regime::Transfer) {
        let t0 = stage("pre-training on the source classes", on_event);
        let source = transfer::task(&train_all, &cfg.source_classes);
        let s_arch = Architecture::SmallCnn(SmallCnnPreset::TwoConv.config(source.classes.len()));
        device.seed(cfg.seed);
        let net = s_arch.init(device)?;
        let (net, _) = train_net(net, &s_arch, &input, &source, None, &pretrain, &mut ShuffleAll(source.len()), device, &mut |_| {}, progress)?;
        pretrained.push((Regime::Transfer, net.reset_head(k, device)));
        shared.push(("pre-training on the source classes".to_string(), t0.elapsed().as_secs_f64()));
    }
    if cfg.regimes.contains(&Regime::Weak) {
        let t0 = stage("pre-training on weak labels", on_event);
        let mut weak = target.clone();
        weak.labels = transfer::noisy_labels(&target.labels, k, cfg.noise, cfg.noise_kind, cfg.seed);
        device.seed(cfg.seed);
        let net = arch.init(device)?;
        let (net, _) = train_net(net, &arch, &input, &weak, None, &pretrain, &mut ShuffleAll(weak.len()), device, &mut |_| {}, progress)?;
        pretrained.push((Regime::Weak, net));
        shared.push(("pre-training on weak labels".to_string(), t0.elapsed().as_secs_f64()));
    }
    // the ImageNet backbone's features of every image the curve uses, computed once
    let most = *cfg.labels_per_class.iter().max().unwrap_or(&1);
    let backbone = if cfg.regimes.contains(&Regime::Imagenet) {
        let t0 = stage("features from the ImageNet backbone", on_event);
        let model = Classifier::load(&req.backbone, device).map_err(|e| Error::invalid(format!("the imagenet regime needs EfficientNet-Lite0 ({e})")))?;
        // each class's first `most` labels in the seeded order, class after class: the first
        // `n` of each class in this pool are exactly the other regimes' `n` labels
        let pool = target.subset(&order.iter().flat_map(|v| v.iter().take(most).copied()).collect::<Vec<_>>());
        let spec = model.card.input.clone();
        let result = if cfg.unfreeze_last == 0 {
            let train_f = transfer::cached_features(&model, &pool.prepared_for(&spec), 16, progress)?;
            let test_f = transfer::cached_features(&model, &test.prepared_for(&spec), 16, progress)?;
            Some((model, pool, train_f, test_f))
        } else {
            Some((model, pool, Vec::new(), Vec::new()))
        };
        shared.push(("features from the ImageNet backbone".to_string(), t0.elapsed().as_secs_f64()));
        result
    } else {
        None
    };

    let mut results = Vec::new();
    let mut ns = cfg.labels_per_class.clone();
    ns.sort_unstable();
    for &n in &ns {
        let subset = transfer::labelled_subset(&target, &order, n);
        for &regime in &cfg.regimes {
            progress.check()?;
            stage(&format!("{} with {n} labels per class", regime.title()), on_event);
            let t0 = std::time::Instant::now();
            let dir = run_dir(&req.out, regime, n);
            let mut on_train = |e: TrainEvent| {
                if let TrainEvent::Epoch(r) = e {
                    on_event(TransferEvent::Epoch { regime, labels_per_class: n, epoch: r.epoch, train_accuracy: r.train_accuracy, loss: r.train_loss });
                }
            };
            let (acc, balanced, curve) = match regime {
                Regime::Imagenet => {
                    let (bb, pool, train_f, test_f) = backbone.as_ref().expect("features were computed");
                    fine_tune_backbone(cfg, bb, pool, train_f, test_f, &test, n, &dir, device, &mut on_train, progress)?
                }
                _ => {
                    let (net, ft) = match pretrained.iter().find(|(r, _)| *r == regime) {
                        Some((_, net)) => (net.clone(), FineTune { head_lr_mult: cfg.head_lr_mult, trainable_groups: None, freeze_epochs: cfg.freeze_epochs }),
                        None => {
                            device.seed(cfg.seed);
                            (arch.init(device)?, FineTune::default())
                        }
                    };
                    let s = settings(cfg, epochs_for(cfg, subset.len()), ft);
                    let (net, reports) = train_net(net, &arch, &input, &subset, None, &s, &mut ShuffleAll(subset.len()), device, &mut on_train, progress)?;
                    let name = format!("pre-training lab: {} with {n} labels per class", regime.title());
                    let card = save_model(&dir, &net, &arch, &input, &target.classes, name, "trained by easel transfer".into())?;
                    let (acc, balanced) = accuracy(&Classifier::load(&card, device)?, &test, progress)?;
                    (acc, balanced, reports.iter().map(|r| r.train_accuracy).collect())
                }
            };
            let result =
                TransferResult { regime, labels_per_class: n, test_accuracy: acc, balanced_accuracy: balanced, seconds: t0.elapsed().as_secs_f64(), curve };
            fsutil::write_atomic(&dir.join("result.json"), &json_bytes(&result)?)?;
            on_event(TransferEvent::Done(Box::new(result.clone())));
            results.push(result);
        }
    }
    let labels_to_reach = transfer::labels_to_reach(&results, &cfg.accuracy_targets, k, cfg.label_cost);
    let summary = TransferSummary {
        config: cfg.clone(),
        classes: target.classes.clone(),
        results,
        labels_to_reach,
        shared_seconds: shared,
        seconds: started.elapsed().as_secs_f64(),
    };
    fsutil::write_atomic(&req.out.join("transfer.json"), &json_bytes(&summary)?)?;
    fsutil::write_atomic(&req.out.join("transfer.csv"), table_csv(&summary).as_bytes())?;
    Ok(summary)
}

/// Accuracy and balanced accuracy of class probabilities against labels.
fn scores(probs: Vec<Vec<f32>>, test: &LabelledImages) -> (f64, f64) {
    let p = easel_core::metrics::Predictions::from_probs(test.classes.clone(), test.sources.clone(), test.labels.clone(), probs);
    let r = easel_core::metrics::report(&p, None);
    (r.summary.accuracy, r.summary.balanced_accuracy)
}

/// The `imagenet` regime at `n` labels per class: a new output layer on the frozen backbone's
/// cached features (scored on the cached test features: the same numbers the whole model
/// gives), or with `unfreeze_last` the last blocks fine-tuned too. Returns the accuracy, the
/// balanced accuracy and the training curve; saves the model.
#[allow(clippy::too_many_arguments)]
fn fine_tune_backbone(
    cfg: &TransferConfig,
    backbone: &Classifier,
    pool: &LabelledImages,
    train_f: &[Vec<f32>],
    test_f: &[Vec<f32>],
    test: &LabelledImages,
    n: usize,
    dir: &Path,
    device: &burn::tensor::Device,
    on_train: &mut dyn FnMut(TrainEvent),
    progress: Progress<'_>,
) -> Result<(f64, f64, Vec<f64>)> {
    let k = pool.classes.len();
    let arch = backbone.card.architecture.with_classes(k);
    let spec = backbone.card.input.clone();
    // the pool holds each class's labels in the seeded order: its first `n` per class are the
    // `n`-label subset
    let mut chosen = Vec::new();
    let mut seen = vec![0usize; k];
    for i in 0..pool.len() {
        let l = pool.labels[i];
        if seen[l] < n {
            seen[l] += 1;
            chosen.push(i);
        }
    }
    let name = format!("pre-training lab: EfficientNet-Lite0 backbone with {n} labels per class");
    let source = "EfficientNet-Lite0 (ImageNet) with a new head, trained by easel transfer".to_string();
    if cfg.unfreeze_last == 0 {
        let feats: Vec<Vec<f32>> = chosen.iter().map(|&i| train_f[i].clone()).collect();
        let labels: Vec<usize> = chosen.iter().map(|&i| pool.labels[i]).collect();
        let s = settings(cfg, epochs_for(cfg, feats.len()), FineTune { head_lr_mult: cfg.head_lr_mult, ..FineTune::default() });
        let (head, curve) = transfer::train_head(&feats, &labels, k, None, &s, device, progress)?;
        let (acc, balanced) = scores(transfer::head_probabilities(&head, test_f, device)?, test);
        let mut net = backbone.net.clone().reset_head(k, device);
        net.set_head(head);
        save_model(dir, &net, &arch, &spec, &pool.classes, name, source)?;
        return Ok((acc, balanced, curve));
    }
    let subset = pool.subset(&chosen).prepared_for(&spec);
    let ft = FineTune { head_lr_mult: cfg.head_lr_mult, trainable_groups: Some(cfg.unfreeze_last + 1), freeze_epochs: cfg.freeze_epochs };
    let s = settings(cfg, epochs_for(cfg, subset.len()), ft);
    let net = backbone.net.clone().reset_head(k, device);
    let (net, reports) = train_net(net, &arch, &spec, &subset, None, &s, &mut ShuffleAll(subset.len()), device, on_train, progress)?;
    let card = save_model(dir, &net, &arch, &spec, &pool.classes, name, source)?;
    let (acc, balanced) = accuracy(&Classifier::load(&card, device)?, &test.prepared_for(&spec), progress)?;
    Ok((acc, balanced, reports.iter().map(|r| r.train_accuracy).collect()))
}

/// `transfer.csv`: one row per regime and number of labels.
pub fn table_csv(s: &TransferSummary) -> String {
    let mut out = String::from("regime,labels_per_class,test_accuracy,balanced_accuracy,seconds\n");
    for r in &s.results {
        out.push_str(&format!("{},{},{:.6},{:.6},{:.2}\n", r.regime.name(), r.labels_per_class, r.test_accuracy, r.balanced_accuracy, r.seconds));
    }
    out
}

/// What the app sees of a lab running on its thread.
pub enum TransferMessage {
    Event(TransferEvent),
    Finished(Box<TransferSummary>),
    Failed(String),
    Cancelled,
}

pub struct TransferHandle {
    pub messages: Receiver<TransferMessage>,
    pub cancel: Arc<AtomicBool>,
}

/// Run the lab on the `easel-transfer` thread.
pub fn spawn(req: TransferRequest, device: DeviceChoice, repaint: crate::worker::Repaint) -> Result<TransferHandle> {
    let (tx, rx) = std::sync::mpsc::channel();
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    std::thread::Builder::new()
        .name("easel-transfer".into())
        .spawn(move || {
            let send = |m: TransferMessage| {
                let _ = tx.send(m);
                repaint();
            };
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let device = select_device(device).unwrap_or_else(|_| ComputeDevice::cpu("fallback"));
                run(&req, &device.device, &mut |e| send(TransferMessage::Event(e)), Progress::none().with_cancel(&flag))
            }));
            match outcome {
                Ok(Ok(s)) => send(TransferMessage::Finished(Box::new(s))),
                Ok(Err(Error::Cancelled)) => send(TransferMessage::Cancelled),
                Ok(Err(e)) => send(TransferMessage::Failed(e.to_string())),
                Err(_) => send(TransferMessage::Failed("internal error in the pre-training lab".into())),
            }
        })
        .map_err(|e| Error::Compute(format!("cannot start the pre-training thread: {e}")))?;
    Ok(TransferHandle { messages: rx, cancel })
}
