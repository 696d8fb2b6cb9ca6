//! `easel sample`: the sampling lab from the command line. Makes the training set imbalanced,
//! trains one model per strategy, and writes each run's record plus a comparison table.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use easel::data;
use easel::metrics::CostMatrix;
use easel::progress::Progress;
use easel::sampling::{self, Profile, StrategySpec};
use easel::train::{TrainEvent, TrainSettings};

use super::train::arch_preset;
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
    /// Comma-separated: uniform, ignore, undersample, oversample, hnm, weighted
    /// (weighted-inverse, weighted-effective, weighted-cost), or combinations with +.
    #[arg(long, value_delimiter = ',', default_value = "uniform,ignore,undersample,oversample,hnm,weighted")]
    pub strategies: Vec<String>,
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Network: two-conv (fast) or demo.
    #[arg(long, default_value = "two-conv")]
    pub arch: String,
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

pub fn run(args: SampleArgs) -> Result<ExitCode> {
    let specs: Vec<StrategySpec> = args.strategies.iter().map(|s| s.parse()).collect::<easel::Result<_>>()?;
    if specs.is_empty() {
        bail!("--strategies names no strategy");
    }
    let mut profile: Profile = args.profile.parse()?;
    if let Profile::LongTail { rare, .. } = &mut profile {
        *rare = args.rare.clone();
    } else if !args.rare.is_empty() {
        bail!("--rare applies to a longtail profile");
    }
    if args.out.join("comparison.json").exists() && !args.force {
        bail!("{} already holds a comparison; pass --force to replace it", args.out.display());
    }
    let lab = sampling::prepare_lab_data(&args.data, &args.data_split, args.test.as_deref(), args.holdout, &profile, args.per_class, args.seed, specs.len())
        .with_context(|| format!("cannot prepare the training data from {}", args.data.display()))?;
    let (train, test, input) = (lab.train, lab.test, lab.input);
    let classes = train.classes.clone();
    let cost = match &args.cost {
        Some(c) => CostMatrix::read_csv(c, classes.len())?,
        None => CostMatrix::zero_one(classes.len()),
    };
    eprintln!(
        "easel: training set per class {:?} ({} images), held out {} images",
        train.class_counts(),
        train.len(),
        test.len()
    );
    let device = args.device.open()?;
    let architecture = arch_preset(&args.arch, classes.len())?;
    let started = std::time::Instant::now();
    let mut records = Vec::new();
    for spec in &specs {
        let settings = TrainSettings { epochs: args.epochs, batch_size: args.batch_size, learning_rate: args.lr, lr_decay: 0.8, seed: args.seed, augment_flip: false };
        let config = sampling::run_config(spec, &profile, args.per_class, architecture.clone(), &input, settings);
        let name = spec.name.clone();
        let mut on_event = |e: TrainEvent| {
            if let TrainEvent::Batch { epoch, done, total, loss } = e {
                if done % 25 == 0 || done == total {
                    eprint!("\r  {name}: epoch {epoch}/{} batch {done}/{total} loss {loss:.3}   ", args.epochs);
                    let _ = std::io::stderr().flush();
                }
            }
        };
        let (record, model) = sampling::run_strategy(&train, &test, &config, Some(&cost), &device.device, &mut on_event, Progress::none())?;
        let row = &sampling::compare(std::slice::from_ref(&record), &cost, false)[0];
        eprintln!(
            "\r  {:<24} accuracy {:.4}  balanced {:.4}  rare-class recall {:.4}  ({:.0} s){}",
            name,
            row.accuracy,
            row.balanced_accuracy,
            row.rare_recall,
            record.seconds,
            " ".repeat(20)
        );
        sampling::save_run(&args.out.join(name.replace('+', "_")), &record, &model)?;
        records.push(record);
    }
    let rows = sampling::compare(&records, &cost, false);
    let corrected = sampling::compare(&records, &cost, true);
    easel::fsutil::write_atomic(&args.out.join("comparison.csv"), sampling::comparison_csv(&rows, &classes).as_bytes())?;
    easel::fsutil::write_atomic(&args.out.join("comparison-prior-corrected.csv"), sampling::comparison_csv(&corrected, &classes).as_bytes())?;
    let json = serde_json::json!({
        "classes": classes,
        "train_counts": train.class_counts(),
        "rare_classes": sampling::rare_classes(&train.class_counts()),
        "rows": rows,
        "prior_corrected": corrected,
    });
    easel::fsutil::write_atomic(&args.out.join("comparison.json"), serde_json::to_string_pretty(&json)?.as_bytes())?;
    println!("{:<24} {:>9} {:>9} {:>11} {:>10}", "strategy", "accuracy", "balanced", "rare recall", "cost");
    for r in &rows {
        println!("{:<24} {:>9.4} {:>9.4} {:>11.4} {:>10.1}", r.strategy, r.accuracy, r.balanced_accuracy, r.rare_recall, r.total_cost);
    }
    eprintln!("easel: {} runs in {:.0} s, written under {}", records.len(), started.elapsed().as_secs_f64(), args.out.display());
    Ok(ExitCode::SUCCESS)
}
