//! Command-line parsing and the subcommands, each a thin call into the library.

mod bench;
mod convert;
mod evaluate;
mod explain;
mod export;
mod predict;
mod sample;
mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use easel::device::{select_device, ComputeDevice, DeviceChoice};

#[derive(Parser, Debug)]
#[command(name = "easel", version, about = "See why an image classifier is right or wrong")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Args, Debug, Clone)]
pub struct DeviceArg {
    /// Compute device: auto (wgpu where a hardware GPU answers, else CPU), cpu, or wgpu.
    #[arg(long, default_value = "auto", value_parser = parse_device)]
    pub device: DeviceChoice,
}

fn parse_device(s: &str) -> Result<DeviceChoice, String> {
    s.parse().map_err(|e: easel::Error| e.to_string())
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
    #[cfg(feature = "gui")]
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
    /// Run a model over a labelled set: predictions CSV and metrics (cached by model and data).
    Evaluate(evaluate::EvaluateArgs),
    /// Metrics, costs (argmax and cost-optimal) and label issues from a predictions CSV.
    Metrics(evaluate::MetricsArgs),
    /// The sampling lab: train under several sampling strategies on an imbalanced set and compare.
    Sample(sample::SampleArgs),
}

#[cfg(feature = "gui")]
#[derive(Args, Debug, Default)]
pub struct GuiArgs {
    /// Start on a bundled demo: `photos` (EfficientNet-Lite0) or `fashion` (small CNN).
    #[arg(long)]
    pub demo: Option<String>,
    /// Open this model card instead.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// ... and these images or folders.
    #[arg(long, num_args = 1..)]
    pub images: Vec<PathBuf>,
    /// Select the first image whose name contains this.
    #[arg(long)]
    pub image: Option<String>,
    /// The method shown first (saliency, gradcam, occlusion, ...).
    #[arg(long)]
    pub method: Option<String>,
    /// Measure the UI thread's time per frame and print p50/p99 on exit.
    #[arg(long)]
    pub frame_stats: bool,
    /// Print "easel: explanation ready" on stdout when a map arrives (for scripts).
    #[arg(long)]
    pub announce: bool,
    /// auto, cpu or wgpu.
    #[arg(long, value_parser = parse_device)]
    pub device: Option<DeviceChoice>,
    /// The view shown first: explain, compare, adversarial, dataset or sampling.
    #[arg(long)]
    pub tab: Option<String>,
    /// Open the sampling-lab runs in this folder (written by `easel sample`).
    #[arg(long)]
    pub runs: Option<PathBuf>,
}

#[cfg(feature = "gui")]
fn run_gui(args: GuiArgs) -> Result<ExitCode> {
    use easel::gui::state::Demo;
    let demo = match args.demo.as_deref() {
        None => None,
        Some("photos") | Some("efficientnet") => Some(Demo::Photos),
        Some("fashion") | Some("fashion-mnist") => Some(Demo::Fashion),
        Some(o) => anyhow::bail!("--demo '{o}': use photos or fashion"),
    };
    if let Some(m) = &args.method {
        if !easel::explain::METHOD_NAMES.contains(&m.as_str()) {
            anyhow::bail!("unknown method '{m}'");
        }
    }
    use easel::gui::state::Tab;
    let tab = match args.tab.as_deref() {
        None => None,
        Some("explain") => Some(Tab::Explain),
        Some("compare") => Some(Tab::Compare),
        Some("adversarial") => Some(Tab::Adversarial),
        Some("dataset") => Some(Tab::Dataset),
        Some("sampling") => Some(Tab::Sampling),
        Some(o) => anyhow::bail!("--tab '{o}': explain, compare or adversarial"),
    };
    easel::gui::run(easel::gui::StartOptions {
        tab,
        runs: args.runs,
        demo,
        model: args.model,
        images: args.images,
        method: args.method,
        image: args.image,
        frame_stats: args.frame_stats,
        announce: args.announce,
        device: args.device,
    })?;
    Ok(ExitCode::SUCCESS)
}

pub fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        #[cfg(feature = "gui")]
        None => run_gui(GuiArgs::default()),
        #[cfg(feature = "gui")]
        Some(Command::Gui(args)) => run_gui(args),
        #[cfg(not(feature = "gui"))]
        None => {
            use clap::CommandFactory;
            Cli::command().print_help()?;
            Ok(ExitCode::SUCCESS)
        }
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
        Some(Command::Metrics(args)) => evaluate::run_metrics(args),
        Some(Command::Sample(args)) => sample::run(args),
    }
}
