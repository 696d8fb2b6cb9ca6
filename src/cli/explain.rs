//! `easel explain`: one explanation of one image, written as `<method>.npy`, a PNG rendered
//! with the chosen options, and `meta.json`. Parses flags into the job layer's
//! `ExplainRequest` and calls the same `easel_jobs::explain::run` the app does. With a second
//! `--model`, both models' maps of the image on one scale (`easel_jobs::pair::run_pair`, as
//! the Compare view's "A and B side by side").

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use easel_core::explain::MethodKind;
use easel_core::explain::sanity::SanityMode;
use easel_core::imaging;
use easel_core::models::Classifier;
use easel_core::progress::Progress;
use easel_jobs::explain::{self, ExplainRequest, Provenance};
use easel_jobs::pair;
use easel_jobs::settings::{MethodArgs, RenderArgs};

use super::DeviceArg;

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// Model card (JSON), or a weights file with its card beside it. Give it twice (A, then
    /// B) for both models' maps side by side on one scale, written to `a/`, `b/`,
    /// `side-by-side.png` and `pair.json`.
    #[arg(long, required = true, action = clap::ArgAction::Append)]
    pub model: Vec<PathBuf>,
    #[arg(long)]
    pub image: PathBuf,
    #[arg(long, value_enum)]
    pub method: MethodKind,
    /// Class index to explain (default: the predicted class; with two models, A's).
    #[arg(long)]
    pub target: Option<usize>,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace files from an earlier run in --out.
    #[arg(long)]
    pub force: bool,
    /// Read the weights a card names even when they lie outside the card's folder.
    #[arg(long)]
    pub allow_outside: bool,
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

fn load(path: &Path, device: &burn::tensor::Device, allow_outside: bool) -> Result<Classifier> {
    Classifier::load_with(path, device, allow_outside).with_context(|| format!("cannot load the model {}", path.display()))
}

pub fn run(args: ExplainArgs) -> Result<ExitCode> {
    let device = args.device.open()?;
    match args.model.as_slice() {
        [a] => run_one(&args, &load(a, &device.device, args.allow_outside)?, &device.info.summary()),
        [a, b] => run_pair(&args, &load(a, &device.device, args.allow_outside)?, &load(b, &device.device, args.allow_outside)?, &device.info.summary()),
        _ => anyhow::bail!("--model: give one model, or two (A and B) for their maps side by side"),
    }
}

fn run_pair(args: &ExplainArgs, a: &Classifier, b: &Classifier, device: &str) -> Result<ExitCode> {
    let (req_a, req_b) = (request(args, a)?, request(args, b)?);
    if !args.force {
        let stem = req_a.method.name();
        for f in [format!("a/{stem}.png"), format!("b/{stem}.png"), "side-by-side.png".into(), "pair.json".into()] {
            let p = args.out.join(f);
            if p.exists() {
                anyhow::bail!("{} already exists; pass --force to replace it", p.display());
            }
        }
    }
    let image_a = imaging::load_prepared(&args.image, &a.card.input)?;
    let image_b = imaging::load_prepared(&args.image, &b.card.input)?;
    let provenance = Provenance { image: args.image.display().to_string(), device: device.to_string() };
    let out = pair::run_pair(a, b, &image_a, &image_b, &provenance, &req_a, &req_b, Progress::none())?;
    out.save(&args.out, args.force)?;
    let top = |o: &easel_jobs::explain::ExplainOutput| o.top.first().map(|t| format!("{} ({:.0} %)", t.class, t.probability * 100.0)).unwrap_or_default();
    eprintln!(
        "easel: {} of class {} ({}) by A ({}: {}) and B ({}: {}) on one scale up to {:.4} -> {}",
        req_a.method.name(),
        out.target,
        out.target_class,
        a.card.name,
        top(&out.a),
        b.card.name,
        top(&out.b),
        out.scale,
        args.out.join("side-by-side.png").display()
    );
    Ok(ExitCode::SUCCESS)
}

fn run_one(args: &ExplainArgs, model: &Classifier, device: &str) -> Result<ExitCode> {
    let image = imaging::load_prepared(&args.image, &model.card.input)?;
    let req = request(args, model)?;
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
    let provenance = Provenance { image: args.image.display().to_string(), device: device.to_string() };
    let out = explain::run(model, &image, &provenance, &req, Progress::none(), &mut |_, done, total| {
        if done == total || done % 64 == 0 {
            super::progress_line(format_args!("  {done}/{total} windows"));
        }
    })?;
    if req.method.kind() == MethodKind::Occlusion {
        super::end_progress_line();
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
