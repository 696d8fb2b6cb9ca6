//! `easel sample`: the sampling lab from the command line. Parses flags into the job layer's
//! `LabRequest` and calls `easel_jobs::lab::run`, the function the app's Sampling lab view
//! runs on its thread.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use easel_core::data;
use easel_core::metrics::CostMatrix;
use easel_core::models::SmallCnnPreset;
use easel_core::progress::Progress;
use easel_core::sampling::{MineBy, MiningSettings, Profile, StrategySpec};
use easel_core::train::TrainSettings;
use easel_jobs::lab::{self, LabEvent, LabRequest};

use super::DeviceArg;

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// Training data: an IDX folder or file (Fashion-MNIST layout) or a class-per-folder tree
    /// (its sub-folders are the classes, sorted by name; images are brought to 28x28 grey).
    #[arg(long, default_value = data::SYSTEM_FASHION_MNIST)]
    pub data: PathBuf,
    /// Which IDX split of --data to train on.
    #[arg(long, default_value = "train")]
    pub data_split: String,
    /// Held-out data (default: the t10k split beside --data).
    #[arg(long)]
    pub test: Option<PathBuf>,
    /// Instead of --test, hold out N images of --data drawn at random (seeded).
    #[arg(long)]
    pub holdout: Option<usize>,
    /// asis, longtail:RATIO (e.g. longtail:100) or counts:N0,N1,...
    #[arg(long, default_value = "longtail:100")]
    pub profile: String,
    /// Rare classes for a long tail by index, e.g. 4,6 (default: a geometric tail over all
    /// classes).
    #[arg(long, value_delimiter = ',')]
    pub rare: Vec<usize>,
    /// At most this many training images per class before the profile applies.
    #[arg(long)]
    pub per_class: Option<usize>,
    /// Comma-separated: uniform, ignore, undersample, oversample, hnm (negative mining),
    /// loss-proportional, weighted (weighted-inverse, weighted-effective, weighted-cost),
    /// collect:N (N more real rare-class images), or combinations with +.
    #[arg(long, value_delimiter = ',', default_value = "uniform,ignore,undersample,oversample,hnm,weighted")]
    pub strategies: Vec<String>,
    /// Negative mining: a frequent-class sample is hard by its probability of a wrong class, or
    /// of the rare classes.
    #[arg(long, value_enum, default_value_t = MineBy::Wrong)]
    pub mine_by: MineBy,
    /// Negative mining: frequent-class samples per rare-class sample in an epoch.
    #[arg(long, default_value_t = 3.0)]
    pub mine_ratio: f64,
    /// Negative mining: share of the frequent-class samples drawn at random.
    #[arg(long, default_value_t = 0.2)]
    pub mine_random_share: f64,
    /// Also train on merged classes, e.g. `--merge 4+6` (repeatable): the comparison then puts
    /// each strategy merged at training beside merged at inference.
    #[arg(long)]
    pub merge: Vec<String>,
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The network.
    #[arg(long, value_enum, default_value_t = SmallCnnPreset::TwoConv)]
    pub arch: SmallCnnPreset,
    /// K x K cost matrix for the table's cost column (default 0/1: the number of mistakes).
    #[arg(long)]
    pub cost: Option<PathBuf>,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub device: DeviceArg,
}

/// The request these flags describe (the cost matrix is read later, once the classes are
/// known).
pub fn request(args: &SampleArgs) -> Result<LabRequest> {
    if args.epochs == 0 || args.epochs > 1000 {
        bail!("--epochs must be in 1..=1000");
    }
    if args.batch_size == 0 || args.batch_size > 4096 {
        bail!("--batch-size must be in 1..=4096");
    }
    if !(args.lr.is_finite() && args.lr > 0.0) {
        bail!("--lr must be a positive number");
    }
    let strategies: Vec<StrategySpec> = args.strategies.iter().map(|s| s.parse()).collect::<easel_core::Result<_>>()?;
    if strategies.is_empty() {
        bail!("--strategies names no strategy");
    }
    let mut profile: Profile = args.profile.parse()?;
    if let Profile::LongTail { rare, .. } = &mut profile {
        *rare = args.rare.clone();
    } else if !args.rare.is_empty() {
        bail!("--rare applies to a longtail profile");
    }
    Ok(LabRequest {
        data: args.data.clone(),
        data_split: args.data_split.clone(),
        test: args.test.clone(),
        holdout: args.holdout,
        profile,
        per_class: args.per_class,
        strategies,
        arch: args.arch,
        settings: TrainSettings { batch_size: args.batch_size, learning_rate: args.lr, ..LabRequest::settings(args.epochs, args.seed) },
        cost: None,
        mining: MiningSettings { by: args.mine_by, ratio: args.mine_ratio, random_share: args.mine_random_share },
        merges: args.merge.iter().map(|m| easel_core::metrics::parse_merge(m)).collect::<easel_core::Result<_>>()?,
        out: args.out.clone(),
        force: args.force,
    })
}

pub fn run(args: SampleArgs) -> Result<ExitCode> {
    let mut req = request(&args)?;
    if let Some(c) = &args.cost {
        // the classes are the data's: IDX data has Fashion-MNIST's ten, a folder its sub-folders
        let k = match data::resolve_source(&args.data, &args.data_split)? {
            data::DataSource::Folder(dir) => data::folder_classes(&dir)?.len(),
            data::DataSource::Idx { .. } => data::FASHION_MNIST_CLASSES.len(),
        };
        req.cost = Some(CostMatrix::read_csv(c, k)?);
    }
    let device = args.device.open()?;
    let epochs = req.settings.epochs;
    let mut current = String::new();
    let mut on_event = |e: LabEvent| match e {
        LabEvent::Prepared { train_counts, test_len, .. } => {
            eprintln!("easel: training set per class {train_counts:?} ({} images), held out {test_len} images", train_counts.iter().sum::<usize>());
        }
        LabEvent::Started { strategy } => current = strategy,
        LabEvent::Batch { epoch, done, total, loss } => {
            if done % 25 == 0 || done == total {
                super::progress_line(format_args!("  {current}: epoch {epoch}/{epochs} batch {done}/{total} loss {loss:.3}   "));
            }
        }
        LabEvent::Epoch { .. } => {}
        LabEvent::RunDone { record, .. } => {
            let (acc, _) = easel_core::train::accuracy_and_recall(&record.test.preds, &record.test.labels, record.classes.len());
            super::finish_progress_line(format_args!("  {:<24} accuracy {acc:.4}  ({:.0} s){}", record.config.strategy.name, record.seconds, " ".repeat(30)));
        }
    };
    let summary = lab::run(&req, &device.device, &mut on_event, Progress::none()).with_context(|| format!("the sampling lab on {}", args.data.display()))?;
    println!("{:<24} {:>9} {:>9} {:>11} {:>10}", "strategy", "accuracy", "balanced", "rare recall", "cost");
    for r in &summary.rows {
        println!("{:<24} {:>9.4} {:>9.4} {:>11.4} {:>10.1}", r.strategy, r.accuracy, r.balanced_accuracy, r.rare_recall, r.total_cost);
    }
    eprintln!("easel: {} runs in {:.0} s, written under {}", summary.rows.len(), summary.seconds, args.out.display());
    Ok(ExitCode::SUCCESS)
}
