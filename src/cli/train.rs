//! `easel train`: train a small CNN on labelled images (Fashion-MNIST by default) and write
//! weights + model card.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use easel_core::card::{CARD_FORMAT, InputSpec, ModelCard};
use easel_core::data;
use easel_core::models::{Architecture, SmallCnnPreset};
use easel_core::progress::Progress;
use easel_core::train::{EpochReport, ShuffleAll, TrainEvent, TrainSettings, train_net};

use super::DeviceArg;

/// What `easel train` writes into --out.
const MODEL_FILES: [&str; 3] = ["weights.safetensors", "card.json", "training.json"];
/// Bounds on the training flags.
const MAX_EPOCHS: usize = 1000;
const MAX_BATCH: usize = 4096;

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// IDX folder (train-* and t10k-* files) or class-per-folder tree.
    #[arg(long, default_value = data::SYSTEM_FASHION_MNIST)]
    pub data: PathBuf,
    /// Held-out set for per-epoch accuracy (IDX folder: its t10k files are used by default).
    #[arg(long)]
    pub test: Option<PathBuf>,
    /// Output folder for weights.safetensors, card.json and training.json.
    #[arg(long)]
    pub out: PathBuf,
    /// The network: `demo` (three conv blocks with BatchNorm, > 92 % on Fashion-MNIST) or
    /// `two-conv` (the reference fixtures' network).
    #[arg(long, value_enum, default_value_t = SmallCnnPreset::Demo)]
    pub arch: SmallCnnPreset,
    #[arg(long, default_value_t = 12)]
    pub epochs: usize,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Learning-rate factor applied after each epoch.
    #[arg(long, default_value_t = 0.8)]
    pub lr_decay: f64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Use only the first N training images (quick runs).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Random left-right flips while training.
    #[arg(long)]
    pub flip: bool,
    /// Overwrite an existing model in --out.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub device: DeviceArg,
}

pub fn run(args: TrainArgs) -> Result<ExitCode> {
    if !args.force
        && let Some(p) = MODEL_FILES.iter().map(|f| args.out.join(f)).find(|p| p.exists())
    {
        bail!("{} already exists; pass --force to replace it", p.display());
    }
    if args.epochs == 0 || args.epochs > MAX_EPOCHS {
        bail!("--epochs must be in 1..={MAX_EPOCHS}");
    }
    if args.batch_size == 0 || args.batch_size > MAX_BATCH {
        bail!("--batch-size must be in 1..={MAX_BATCH}");
    }
    if !(args.lr.is_finite() && args.lr > 0.0 && args.lr_decay.is_finite() && args.lr_decay > 0.0) {
        bail!("--lr and --lr-decay must be positive numbers");
    }
    let classes = data::fashion_classes();
    let config = args.arch.config(classes.len());
    let spec = data::fashion_input();
    let train_src = data::resolve_source(&args.data, "train")?;
    let mut train = data::load_source(&train_src, &spec, &classes).with_context(|| format!("cannot load training data from {}", args.data.display()))?;
    if let Some(n) = args.limit {
        let idx: Vec<usize> = (0..n.min(train.len())).collect();
        train = train.subset(&idx);
    }
    if train.is_empty() {
        bail!("no training images (--limit 0?)");
    }
    let test_path = args.test.clone().unwrap_or_else(|| args.data.clone());
    let test = data::resolve_source(&test_path, "t10k").and_then(|s| data::load_source(&s, &spec, &classes)).ok();
    eprintln!(
        "easel: training {} on {} images{}",
        arch_name(args.arch),
        train.len(),
        test.as_ref().map(|t| format!(", testing on {}", t.len())).unwrap_or_default()
    );
    let device = args.device.open()?;
    let arch = Architecture::SmallCnn(config);
    let settings = TrainSettings {
        epochs: args.epochs,
        batch_size: args.batch_size,
        learning_rate: args.lr,
        lr_decay: args.lr_decay,
        seed: args.seed,
        augment_flip: args.flip,
        fine_tune: Default::default(),
    };
    device.device.seed(args.seed);
    let net = arch.init(&device.device)?;
    let mut on_event = |e: TrainEvent| match e {
        TrainEvent::Batch { epoch, done, total, loss } => {
            if done % 20 == 0 || done == total {
                let width = 30;
                let filled = done * width / total;
                super::progress_line(format_args!(
                    "  epoch {epoch}/{} [{}{}] {done}/{total} loss {loss:.4}   ",
                    args.epochs,
                    "#".repeat(filled),
                    " ".repeat(width - filled)
                ));
            }
        }
        TrainEvent::Epoch(r) => {
            super::finish_progress_line(format_args!(
                "  epoch {}/{}: loss {:.4}, train accuracy {:.2} %, test accuracy {}, {:.0} s{}",
                r.epoch,
                args.epochs,
                r.train_loss,
                r.train_accuracy * 100.0,
                r.test_accuracy.map(|a| format!("{:.2} %", a * 100.0)).unwrap_or_else(|| "-".into()),
                r.seconds,
                " ".repeat(20)
            ));
        }
    };
    let mut plan = ShuffleAll(train.len());
    let (net, reports) = train_net(net, &arch, &spec, &train, test.as_ref(), &settings, &mut plan, &device.device, &mut on_event, Progress::none())?;
    write_model(&args, &arch, spec, classes, &net, &reports, &settings)?;
    Ok(ExitCode::SUCCESS)
}

fn write_model(
    args: &TrainArgs,
    arch: &Architecture,
    spec: InputSpec,
    classes: Vec<String>,
    net: &easel_core::models::Net,
    reports: &[EpochReport],
    settings: &TrainSettings,
) -> Result<()> {
    let tensors = net.torch_tensors(arch)?;
    let last = reports.last();
    let card = ModelCard {
        format: CARD_FORMAT.into(),
        name: format!("Fashion-MNIST small CNN ({})", arch_name(args.arch)),
        architecture: arch.clone(),
        weights: "weights.safetensors".into(),
        input: spec,
        classes,
        source: format!(
            "trained by `easel train --arch {} --epochs {} --batch-size {} --lr {} --lr-decay {} --seed {}{}` on Fashion-MNIST (60k train)",
            arch_name(args.arch),
            settings.epochs,
            settings.batch_size,
            settings.learning_rate,
            settings.lr_decay,
            settings.seed,
            if settings.augment_flip { " --flip" } else { "" }
        ),
        license: "MIT (weights trained by easel on Fashion-MNIST, MIT, Zalando SE)".into(),
        metrics: serde_json::json!({
            "test_accuracy": last.and_then(|r| r.test_accuracy),
            "train_accuracy": last.map(|r| r.train_accuracy),
            "epochs": reports.len(),
        }),
    };
    let log = serde_json::to_vec_pretty(&serde_json::json!({"settings": settings, "epochs": reports}))?;
    let files = vec![
        (MODEL_FILES[0].to_string(), easel_core::weights::safetensors_bytes(&tensors)?),
        (MODEL_FILES[1].to_string(), card.to_json_bytes()?),
        (MODEL_FILES[2].to_string(), log),
    ];
    // the three files appear together, or not at all
    easel_core::fsutil::write_files(&args.out, &files, args.force)?;
    eprintln!("easel: wrote {}", args.out.join("card.json").display());
    Ok(())
}

fn arch_name(a: SmallCnnPreset) -> &'static str {
    match a {
        SmallCnnPreset::Demo => "demo",
        SmallCnnPreset::TwoConv => "two-conv",
    }
}
