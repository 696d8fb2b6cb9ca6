//! `easel transfer` (the pre-training lab: scratch, transfer, weak labels and an ImageNet
//! backbone against the number of labels, and what the labels cost) and `easel finetune` (a
//! model fine-tuned on a class-per-folder tree of one's own classes). Both call the job layer,
//! as the app's Pre-training view does.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;
use easel_core::data;
use easel_core::progress::Progress;
use easel_core::transfer::{NoiseKind, Regime, TransferConfig};
use easel_jobs::finetune::{self, FinetuneMode, FinetuneRequest, HeldOut};
use easel_jobs::transfer::{self, TransferEvent, TransferRequest};

use super::DeviceArg;

#[derive(Args, Debug)]
pub struct TransferArgs {
    /// An IDX folder with a train split (Fashion-MNIST's 60k training set by default).
    #[arg(long, default_value = data::SYSTEM_FASHION_MNIST)]
    pub data: PathBuf,
    /// Held-out data (default: the t10k split beside --data).
    #[arg(long)]
    pub test: Option<PathBuf>,
    /// The target task's classes.
    #[arg(long, value_delimiter = ',', default_value = "5,6,7,8,9")]
    pub target_classes: Vec<usize>,
    /// The source task's classes (for `transfer`).
    #[arg(long, value_delimiter = ',', default_value = "0,1,2,3,4")]
    pub source_classes: Vec<usize>,
    #[arg(long, value_enum, value_delimiter = ',', default_value = "scratch,transfer,weak,imagenet")]
    pub regimes: Vec<Regime>,
    /// Points of the learning curve.
    #[arg(long, value_delimiter = ',', default_value = "10,50,200")]
    pub labels_per_class: Vec<usize>,
    /// Share of the weak labels that are wrong.
    #[arg(long, default_value_t = 0.4, allow_negative_numbers = true)]
    pub noise: f64,
    #[arg(long, value_enum, default_value_t = NoiseKind::Symmetric)]
    pub noise_kind: NoiseKind,
    /// The new output layer learns this many times faster than the pre-trained layers.
    #[arg(long, default_value_t = 10.0)]
    pub head_lr_mult: f64,
    /// Train the output layer alone for this many epochs first.
    #[arg(long, default_value_t = 0)]
    pub freeze_epochs: usize,
    /// Fine-tuning epochs (at least 200 batches).
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    /// Pre-training epochs.
    #[arg(long, default_value_t = 2)]
    pub pretrain_epochs: usize,
    /// `imagenet`: also fine-tune the backbone's last K blocks (slow on a CPU).
    #[arg(long, default_value_t = 0)]
    pub unfreeze_last: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Score on at most this many held-out images.
    #[arg(long, default_value_t = 2000)]
    pub test_limit: usize,
    /// Currency per label.
    #[arg(long, default_value_t = 25.0)]
    pub label_cost: f64,
    /// EfficientNet-Lite0's card (for `imagenet`).
    #[arg(long, default_value = "assets/efficientnet-lite0/card.json")]
    pub backbone: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub device: DeviceArg,
}

pub fn run_transfer(args: TransferArgs) -> Result<ExitCode> {
    let config = TransferConfig {
        target_classes: args.target_classes.clone(),
        source_classes: args.source_classes.clone(),
        regimes: args.regimes.clone(),
        labels_per_class: args.labels_per_class.clone(),
        noise: args.noise,
        noise_kind: args.noise_kind,
        epochs: args.epochs,
        pretrain_epochs: args.pretrain_epochs,
        head_lr_mult: args.head_lr_mult,
        freeze_epochs: args.freeze_epochs,
        unfreeze_last: args.unfreeze_last,
        seed: args.seed,
        test_limit: Some(args.test_limit),
        label_cost: args.label_cost,
        ..TransferConfig::default()
    };
    // impossible requests are refused before the data loads
    config.validate(data::FASHION_MNIST_CLASSES.len(), &[usize::MAX; 10])?;
    let req =
        TransferRequest { config, data: args.data.clone(), test: args.test.clone(), backbone: args.backbone.clone(), out: args.out.clone(), force: args.force };
    let device = args.device.open()?;
    let report = |done: usize, total: usize| super::progress_line(format_args!("    {done}/{total}   "));
    let s = transfer::run(
        &req,
        &device.device,
        &mut |e| match e {
            TransferEvent::Prepared { target, train, test } => eprintln!("easel: target classes {target:?}: {train} training images, {test} held out"),
            TransferEvent::Stage(s) => {
                super::end_progress_line();
                eprintln!("  {s}");
            }
            TransferEvent::Epoch { .. } => {}
            TransferEvent::Done(r) => {
                super::end_progress_line();
                eprintln!("    {:<9} {:>4} labels/class: accuracy {:.4} ({:.1} s)", r.regime.name(), r.labels_per_class, r.test_accuracy, r.seconds);
                let _ = std::io::stderr().flush();
            }
        },
        Progress::none().with_report(&report),
    )?;
    super::end_progress_line();
    println!("{:<10} {:>16} {:>9} {:>9}", "regime", "labels per class", "accuracy", "balanced");
    for r in &s.results {
        println!("{:<10} {:>16} {:>9.4} {:>9.4}", r.regime.name(), r.labels_per_class, r.test_accuracy, r.balanced_accuracy);
    }
    for t in &s.labels_to_reach {
        let what = match (t.labels_per_class, t.cost) {
            (Some(n), Some(c)) => format!("{}{n:.0} labels per class ({c:.0} at {} a label)", if t.at_most { "at most " } else { "~" }, args.label_cost),
            _ => "not reached".into(),
        };
        println!("to reach {:.0} %: {:<9} {what}", t.target_accuracy * 100.0, t.regime.name());
    }
    eprintln!("easel: {:.0} s; written under {}", s.seconds, args.out.display());
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct FinetuneArgs {
    /// The model to start from (any card: EfficientNet-Lite0, a ResNet, a small CNN).
    #[arg(long)]
    pub model: PathBuf,
    /// A class-per-folder tree: its sub-folders (sorted) are the new classes.
    #[arg(long)]
    pub data: PathBuf,
    /// Hold out this share of the images (seeded, from every class).
    #[arg(long, conflicts_with = "test")]
    pub holdout: Option<f64>,
    /// A held-out folder with the same class folders.
    #[arg(long)]
    pub test: Option<PathBuf>,
    /// Train only the new output layer, on features computed once (the default).
    #[arg(long, conflicts_with = "unfreeze_last")]
    pub head_only: bool,
    /// Train the last K layer groups (blocks) too.
    #[arg(long)]
    pub unfreeze_last: Option<usize>,
    #[arg(long, default_value_t = 10.0)]
    pub head_lr_mult: f64,
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub device: DeviceArg,
}

pub fn run_finetune(args: FinetuneArgs) -> Result<ExitCode> {
    let held_out = match (&args.test, args.holdout) {
        (Some(t), _) => HeldOut::Folder(t.clone()),
        (None, Some(s)) => HeldOut::Share(s),
        (None, None) => bail!("say where the held-out images come from: --holdout 0.2 or --test FOLDER"),
    };
    let mode = match args.unfreeze_last {
        Some(k) if !args.head_only => FinetuneMode::UnfreezeLast(k),
        _ => FinetuneMode::HeadOnly,
    };
    let req = FinetuneRequest {
        model: args.model.clone(),
        data: args.data.clone(),
        held_out,
        mode,
        head_lr_mult: args.head_lr_mult,
        epochs: args.epochs,
        learning_rate: args.lr,
        batch_size: args.batch_size,
        seed: args.seed,
        out: args.out.clone(),
        force: args.force,
    };
    let device = args.device.open()?;
    let report = |done: usize, total: usize| super::progress_line(format_args!("    {done}/{total}   "));
    let mut on_stage = |s: &str| {
        super::end_progress_line();
        eprintln!("  {s}");
    };
    let mut on_epoch = |e: usize, acc: f64| {
        super::end_progress_line();
        eprintln!("    epoch {e}: training accuracy {acc:.4}");
    };
    let out = finetune::run(&req, &device.device, &mut on_stage, &mut on_epoch, Progress::none().with_report(&report));
    super::end_progress_line();
    let out = out?;
    eprintln!(
        "easel: {} classes {:?}: held-out accuracy {:.4} on {} images ({} trained on; features {:.1} s, training {:.1} s) -> {}",
        out.classes.len(),
        out.classes,
        out.test_accuracy,
        out.test_images,
        out.train_images,
        out.feature_seconds,
        out.train_seconds,
        out.card.display()
    );
    Ok(ExitCode::SUCCESS)
}
