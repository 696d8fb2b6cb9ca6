//! `easel fool`: an artificial image the model is sure belongs to a class (Nguyen et al.'s
//! fooling images), by gradient ascent or a black-box evolution strategy; `--all-classes`
//! makes one per class and a gallery. Calls `easel_jobs::fool`, as the app's "Fool it" does.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use easel_core::explain::fool::{FoolMethod, FoolParams, FoolStart, Regulariser};
use easel_core::imaging;
use easel_core::models::Classifier;
use easel_core::progress::Progress;
use easel_jobs::fool::{self, FoolRequest};

use super::DeviceArg;

#[derive(Args, Debug)]
pub struct FoolArgs {
    /// Model card (JSON), or a weights file with its card beside it.
    #[arg(long)]
    pub model: PathBuf,
    /// The class the image should be taken for (index).
    #[arg(long, required_unless_present = "all_classes")]
    pub target: Option<usize>,
    /// One fooling image per class (or per --classes) and a gallery.
    #[arg(long)]
    pub all_classes: bool,
    /// With --all-classes: only these classes, e.g. 1,417,954.
    #[arg(long, value_delimiter = ',')]
    pub classes: Vec<usize>,
    /// Where to start: noise, grey, or an image file.
    #[arg(long, default_value = "noise")]
    pub start: String,
    #[arg(long, value_enum, default_value_t = FoolMethod::Gradient)]
    pub method: FoolMethod,
    /// Gradient steps, or generations of the evolution strategy (default 500 and 300).
    #[arg(long)]
    pub steps: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, value_enum, default_value_t = Regulariser::None)]
    pub regularise: Regulariser,
    /// Stop once the target's probability reaches this.
    #[arg(long, default_value_t = 0.99)]
    pub confidence: f32,
    /// Gradient: change of each pixel per step, in [0, 1] units (default 2/255).
    #[arg(long)]
    pub step_size: Option<f32>,
    /// Evolve: children per generation.
    #[arg(long)]
    pub population: Option<usize>,
    /// Evolve: side of the low-resolution pattern in pixels.
    #[arg(long)]
    pub pattern: Option<usize>,
    #[arg(long)]
    pub out: PathBuf,
    /// Replace files from an earlier run in --out.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub device: DeviceArg,
}

fn params(args: &FoolArgs, model: &Classifier, target: usize) -> FoolParams {
    let spec = &model.card.input;
    let mut p = FoolParams::new(target, args.method, spec.height.min(spec.width));
    p.seed = args.seed;
    p.regularise = args.regularise;
    p.confidence = args.confidence;
    if let Some(s) = args.steps {
        p.steps = s;
    }
    if let Some(s) = args.step_size {
        p.step_size = s;
    }
    if let Some(n) = args.population {
        p.population = n;
    }
    if let Some(s) = args.pattern {
        p.pattern = s;
    }
    p
}

pub fn run(args: FoolArgs) -> Result<ExitCode> {
    let device = args.device.open()?;
    let model = Classifier::load(&args.model, &device.device).with_context(|| format!("cannot load the model {}", args.model.display()))?;
    let start = match args.start.as_str() {
        "noise" => FoolStart::Noise,
        "grey" | "gray" => FoolStart::Grey,
        path => FoolStart::Image(
            imaging::load_prepared(std::path::Path::new(path), &model.card.input).with_context(|| format!("--start {path}: noise, grey or an image file"))?,
        ),
    };
    let k = model.num_classes();
    if args.all_classes {
        let classes: Vec<usize> = if args.classes.is_empty() { (0..k).collect() } else { args.classes.clone() };
        if classes.len() > 1000 {
            bail!("--all-classes makes one image per class: choose at most 1000 with --classes");
        }
        // check every setting once, before the first class runs
        for &c in &classes {
            params(&args, &model, c).validate(k)?;
        }
        let base = params(&args, &model, classes[0]);
        let out = fool::run_all(&model, &start, &base, &classes, Progress::none(), &mut |i, n, o| {
            eprintln!(
                "  {i}/{n} {:<24} {:>6.2} % after {} steps ({:.1} s)",
                o.meta.target_class,
                o.meta.target_probability * 100.0,
                o.meta.steps,
                o.meta.seconds
            );
        })?;
        out.save(&args.out, args.force)?;
        let reached = out.items.iter().filter(|i| i.meta.reached).count();
        eprintln!("easel: {reached} of {} classes reached {:.0} % -> {}", out.items.len(), args.confidence * 100.0, args.out.join("gallery.png").display());
        return Ok(ExitCode::SUCCESS);
    }
    let target = args.target.context("--target or --all-classes")?;
    let req = FoolRequest { start, params: params(&args, &model, target) };
    req.params.validate(k)?;
    let out = fool::run(&model, &req, Progress::none(), &mut |s, _| {
        if s.step % 25 == 0 {
            super::progress_line(format_args!("  step {} p({}) {:.4}   ", s.step, target, s.target_probability));
        }
    })?;
    super::end_progress_line();
    out.save(&args.out, args.force)?;
    let m = &out.meta;
    eprintln!(
        "easel: {} from {} ({:.2} %) to {:.2} % in {} steps, {:.1} s; top-1 {} -> {}",
        m.target_class,
        m.start,
        m.start_probability * 100.0,
        m.target_probability * 100.0,
        m.steps,
        m.seconds,
        m.top1_class,
        args.out.join("fooled.png").display()
    );
    Ok(ExitCode::SUCCESS)
}
