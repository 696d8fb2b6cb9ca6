//! `easel predict`: top-k classes per image, as text or JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use easel_core::card::MAX_CLASSES;
use easel_core::imaging;
use easel_core::models::Classifier;
use easel_core::predict::{ClassScore, logits_batched, top_k};
use easel_core::progress::Progress;
use serde::Serialize;

use super::DeviceArg;

/// Most images per forward pass.
pub const MAX_BATCH: usize = 4096;

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// Model card (JSON), or a weights file with its card beside it.
    #[arg(long)]
    pub model: PathBuf,
    /// Image files or folders of images.
    #[arg(long, num_args = 1.., required = true)]
    pub images: Vec<PathBuf>,
    /// How many classes to list per image.
    #[arg(long, default_value_t = 5)]
    pub top_k: usize,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Print JSON (documented in the README) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Read the weights a card names even when they lie outside the card's folder.
    #[arg(long)]
    pub allow_outside: bool,
    #[command(flatten)]
    pub device: DeviceArg,
}

#[derive(Serialize)]
struct ImagePrediction {
    image: String,
    top_k: Vec<ClassScore>,
}

#[derive(Serialize)]
struct PredictReport {
    model: String,
    model_hash: String,
    device: easel_core::device::DeviceInfo,
    predictions: Vec<ImagePrediction>,
}

pub fn run(args: PredictArgs) -> Result<ExitCode> {
    if !(1..=MAX_CLASSES).contains(&args.top_k) {
        anyhow::bail!("--top-k must be in 1..={MAX_CLASSES}");
    }
    if !(1..=MAX_BATCH).contains(&args.batch_size) {
        anyhow::bail!("--batch-size must be in 1..={MAX_BATCH}");
    }
    let device = args.device.open()?;
    let model =
        Classifier::load_with(&args.model, &device.device, args.allow_outside).with_context(|| format!("cannot load the model {}", args.model.display()))?;
    let paths = imaging::list_images(&args.images)?;
    let mut prepared = Vec::with_capacity(paths.len());
    for p in &paths {
        prepared.push(imaging::load_prepared(p, &model.card.input)?);
    }
    let logits = logits_batched(&model, &prepared, args.batch_size, Progress::none())?;
    let k = args.top_k.min(model.num_classes());
    let predictions: Vec<ImagePrediction> =
        paths.iter().zip(&logits).map(|(p, l)| ImagePrediction { image: p.display().to_string(), top_k: top_k(l, k, &model.card.classes) }).collect();
    if args.json {
        let report = PredictReport { model: model.card.name.clone(), model_hash: model.hash.clone(), device: device.info.clone(), predictions };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for p in &predictions {
            println!("{}", p.image);
            for s in &p.top_k {
                println!("  {:>6.2}%  {} ({})", s.probability * 100.0, s.class, s.class_index);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
