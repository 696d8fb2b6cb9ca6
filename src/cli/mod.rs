//! Command-line parsing and the subcommands, each a thin call into the library.

mod bench;
mod convert;
mod evaluate;
mod explain;
mod export;
mod fool;
mod merge;
mod metrics;
mod predict;
mod robustness;
mod sample;
mod train;
mod transfer;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use easel_app::state::{Demo, Tab};
use easel_core::device::{ComputeDevice, DeviceChoice, select_device};
use easel_core::explain::MethodKind;

#[derive(Parser, Debug)]
#[command(name = "easel", version, about = "See why an image classifier is right or wrong")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Args, Debug, Clone)]
pub struct DeviceArg {
    /// Compute device: auto (wgpu where a hardware GPU answers, else CPU), cpu, or wgpu.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
}

impl DeviceArg {
    /// Pick the device and say which one on stderr.
    pub fn open(&self) -> Result<ComputeDevice> {
        let d = select_device(self.device)?;
        eprintln!("easel: device: {}", d.info.summary());
        Ok(d)
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Open the desktop app (the default with no command).
    Gui(GuiArgs),
    /// Print the compute device easel would use, its backend and adapter.
    Info {
        #[command(flatten)]
        device: DeviceArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Top-k classes with probabilities for images or folders of images.
    Predict(predict::PredictArgs),
    /// Train a small CNN on labelled images (Fashion-MNIST by default); writes weights and card.
    Train(train::TrainArgs),
    /// Convert a PyTorch state dict (EfficientNet-Lite0, ResNet) into safetensors + model card.
    Convert(convert::ConvertArgs),
    /// Explain one image: occlusion, gradients, IG, SmoothGrad, Grad-CAM, or an FGSM/PGD attack.
    Explain(explain::ExplainArgs),
    /// Speed figures: predict and explanations against batch-1 forward passes in the same run.
    Bench(bench::BenchArgs),
    /// Write images of an IDX set as PNG files (class folders, or flat).
    Export(export::ExportArgs),
    /// Run a model over a labelled set (or one shard of it): predictions CSV and metrics,
    /// streamed and resumable (cached by model and data).
    Evaluate(evaluate::EvaluateArgs),
    /// Metrics, costs (argmax and cost-optimal) and label issues from a predictions CSV; with
    /// --versus, two models compared on the same samples (McNemar, bootstrap, per class).
    Metrics(metrics::MetricsArgs),
    /// Join the predictions of `easel evaluate --shard` runs into one CSV, checked.
    Merge(merge::MergeArgs),
    /// The sampling lab: train under several sampling strategies on an imbalanced set and compare.
    Sample(sample::SampleArgs),
    /// A fooling image: an artificial image the model is sure belongs to a class.
    Fool(fool::FoolArgs),
    /// Accuracy against the attack budget over a labelled set (FGSM or PGD).
    Robustness(robustness::RobustnessArgs),
    /// The pre-training lab: scratch, transfer, weak labels and an ImageNet backbone against the
    /// number of labels, and what the labels cost.
    Transfer(transfer::TransferArgs),
    /// Fine-tune a model on a class-per-folder tree of your own classes.
    Finetune(transfer::FinetuneArgs),
}

#[derive(Args, Debug, Default)]
pub struct GuiArgs {
    /// Start on a bundled demo: `photos` (EfficientNet-Lite0) or `fashion` (small CNN).
    #[arg(long, value_enum)]
    pub demo: Option<Demo>,
    /// Open this model card instead.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// ... and these images or folders.
    #[arg(long, num_args = 1..)]
    pub images: Vec<PathBuf>,
    /// Select the first image whose name contains this.
    #[arg(long)]
    pub image: Option<String>,
    /// The method shown first.
    #[arg(long, value_enum)]
    pub method: Option<MethodKind>,
    /// Measure the UI thread's time per frame and print p50/p99 on exit.
    #[arg(long)]
    pub frame_stats: bool,
    /// Print "easel: explanation ready" on stdout when a map arrives (for scripts).
    #[arg(long)]
    pub announce: bool,
    #[arg(long, value_enum)]
    pub device: Option<DeviceChoice>,
    /// The view shown first.
    #[arg(long, value_enum)]
    pub tab: Option<Tab>,
    /// Open the sampling-lab runs in this folder (written by `easel sample`).
    #[arg(long)]
    pub runs: Option<PathBuf>,
    /// The window's size in points, e.g. 1024x640.
    #[arg(long, value_parser = parse_size)]
    pub window_size: Option<(f32, f32)>,
    /// With --tab dataset: open the gallery of this confusion-matrix cell, TRUE,PREDICTED.
    #[arg(long, value_parser = parse_cell)]
    pub open_cell: Option<(usize, usize)>,
    /// With --tab adversarial: show this pane and run it once the first image is ready
    /// (fool: a fooling image for every class; robust: the accuracy-against-epsilon curve).
    #[arg(long, value_enum)]
    pub pane: Option<easel_app::state::AdvPane>,
    /// Open this model as B beside the first: the Dataset view compares them on the open set
    /// (A versus B), the Compare view shows both maps.
    #[arg(long)]
    pub versus: Option<PathBuf>,
}

fn parse_cell(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("'{s}': two class indices TRUE,PREDICTED, e.g. 6,0");
    let (t, p) = s.split_once(',').ok_or_else(bad)?;
    Ok((t.trim().parse().map_err(|_| bad())?, p.trim().parse().map_err(|_| bad())?))
}

fn parse_size(s: &str) -> Result<(f32, f32), String> {
    let bad = || format!("'{s}': WIDTHxHEIGHT, e.g. 1024x640");
    let (w, h) = s.split_once('x').ok_or_else(bad)?;
    let (w, h): (f32, f32) = (w.trim().parse().map_err(|_| bad())?, h.trim().parse().map_err(|_| bad())?);
    if !(400.0..=10_000.0).contains(&w) || !(300.0..=10_000.0).contains(&h) {
        return Err(format!("'{s}': a window between 400x300 and 10000x10000"));
    }
    Ok((w, h))
}

fn run_gui(args: GuiArgs) -> Result<ExitCode> {
    easel_app::run(easel_app::StartOptions {
        tab: args.tab,
        runs: args.runs,
        demo: args.demo,
        model: args.model,
        images: args.images,
        method: args.method,
        image: args.image,
        frame_stats: args.frame_stats,
        announce: args.announce,
        device: args.device,
        cache: None,
        window_size: args.window_size,
        open_cell: args.open_cell,
        pane: args.pane,
        versus: args.versus,
    })?;
    Ok(ExitCode::SUCCESS)
}

/// A command-line error as one line: clap's message, its hint folded in.
fn one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn run() -> Result<ExitCode> {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help, --version
            e.print()?;
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => anyhow::bail!("{}", one_line(&e)),
    };
    match cli.command {
        None => run_gui(GuiArgs::default()),
        Some(Command::Gui(args)) => run_gui(args),
        Some(Command::Info { device, json }) => {
            let d = select_device(device.device)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&d.info)?);
            } else {
                println!("device:  {}", d.info.kind);
                println!("backend: {}", d.info.backend);
                println!("adapter: {}", d.info.adapter);
                println!("why:     {}", d.info.reason);
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Predict(args)) => predict::run(args),
        Some(Command::Train(args)) => train::run(args),
        Some(Command::Convert(args)) => convert::run(args),
        Some(Command::Explain(args)) => explain::run(args),
        Some(Command::Bench(args)) => bench::run(args),
        Some(Command::Export(args)) => export::run(args),
        Some(Command::Evaluate(args)) => evaluate::run_evaluate(args),
        Some(Command::Metrics(args)) => metrics::run_metrics(args),
        Some(Command::Merge(args)) => merge::run(args),
        Some(Command::Sample(args)) => sample::run(args),
        Some(Command::Fool(args)) => fool::run(args),
        Some(Command::Robustness(args)) => robustness::run(args),
        Some(Command::Transfer(args)) => transfer::run_transfer(args),
        Some(Command::Finetune(args)) => transfer::run_finetune(args),
    }
}

/// Whether a progress line (rewritten in place with `\r`) is open on stderr.
static LINE_OPEN: AtomicBool = AtomicBool::new(false);

/// Rewrite the progress line on stderr.
pub fn progress_line(text: std::fmt::Arguments<'_>) {
    eprint!("\r{text}");
    let _ = std::io::stderr().flush();
    LINE_OPEN.store(true, Ordering::Relaxed);
}

/// End the progress line, so what follows (a summary, an error) starts on its own line.
pub fn end_progress_line() {
    if LINE_OPEN.swap(false, Ordering::Relaxed) {
        eprintln!();
    }
}

/// Rewrite the progress line one last time and end it.
pub fn finish_progress_line(text: std::fmt::Arguments<'_>) {
    eprintln!("\r{text}");
    LINE_OPEN.store(false, Ordering::Relaxed);
}
