//! `easel explain`: one explanation of one image, written as `<method>.npy`, a PNG rendered
//! with the chosen options, and `meta.json`. Parses flags into the job layer's
//! `ExplainRequest` and calls the same `easel_jobs::explain::run` the app does.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use easel_core::explain::MethodKind;
use easel_core::explain::sanity::SanityMode;
use easel_core::imaging;
use easel_core::models::Classifier;
use easel_core::progress::Progress;
use easel_jobs::explain::{self, ExplainRequest, Provenance};
use easel_jobs::settings::{MethodArgs, RenderArgs};

use super::DeviceArg;

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// Model card (JSON), or a weights file with its card beside it.
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub image: PathBuf,
    #[arg(long, value_enum)]
    pub method: MethodKind,
    /// Class index to explain (default: the predicted class).
    #[arg(long)]
    pub target: Option<usize>,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace files from an earlier run in --out.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub settings: MethodArgs,
    #[command(flatten)]
    pub render: RenderArgs,
    /// Model-randomisation check: none, quick (fully randomised model only) or cascade.
    /// Default: quick for gradient maps and Grad-CAM, none for occlusion and attacks.
    #[arg(long, value_enum)]
    pub sanity: Option<SanityMode>,
    /// Also compute deletion and insertion curves and their AUC.
    #[arg(long)]
    pub curves: bool,
    #[command(flatten)]
    pub device: DeviceArg,
}

/// The request these flags describe, for `model`.
pub fn request(args: &ExplainArgs, model: &Classifier) -> Result<ExplainRequest> {
    let method = args.settings.method(args.method, model)?;
    let mut req = ExplainRequest::new(method);
    req.render = args.render.options(&req.method)?;
    req.target = args.target;
    req.sanity = args.sanity.unwrap_or(req.sanity);
    req.curves = args.curves && !req.method.is_attack();
    req.sanity_seed = args.settings.seed;
    Ok(req)
}

pub fn run(args: ExplainArgs) -> Result<ExitCode> {
    let device = args.device.open()?;
    let model = Classifier::load(&args.model, &device.device).with_context(|| format!("cannot load the model {}", args.model.display()))?;
    let image = imaging::load_prepared(&args.image, &model.card.input)?;
    let req = request(&args, &model)?;
    // refuse before computing, not after
    let name = req.method.name();
    if !args.force {
        for f in [format!("{name}.npy"), format!("{name}.png"), "meta.json".into()] {
            let p = args.out.join(f);
            if p.exists() {
                anyhow::bail!("{} already exists; pass --force to replace it", p.display());
            }
        }
    }
    let provenance = Provenance { image: args.image.display().to_string(), device: device.info.summary() };
    let out = explain::run(&model, &image, &provenance, &req, Progress::none(), &mut |_, done, total| {
        if done == total || done % 64 == 0 {
            eprint!("\r  {done}/{total} windows");
        }
    })?;
    if req.method.kind() == MethodKind::Occlusion {
        eprintln!();
    }
    out.save(&args.out, args.force)?;
    let ex = &out.explanation;
    match &ex.adversarial {
        Some(adv) => eprintln!(
            "easel: {name} -> {} (top-1 {} -> {}, L-inf {:.4})",
            args.out.join(format!("{name}.png")).display(),
            adv.top_before[0].class,
            adv.top_after[0].class,
            adv.linf
        ),
        None => eprintln!("easel: {name} of class {} ({}) -> {}", ex.target, model.class_name(ex.target), args.out.join(format!("{name}.png")).display()),
    }
    Ok(ExitCode::SUCCESS)
}
