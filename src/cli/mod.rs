//! Command-line parsing and the subcommands, each a thin call into the library.

mod convert;
mod explain;
mod predict;
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
}

pub fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
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
    }
}

/// Paths given on the command line, for messages.
#[allow(dead_code)]
pub fn show(p: &PathBuf) -> String {
    p.display().to_string()
}
