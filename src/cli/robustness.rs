//! `easel robustness`: accuracy against the attack budget epsilon over a labelled set, with the
//! images that flip first. Calls `easel_jobs::robustness`, as the app's "How robust?" does.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use easel_core::explain::robustness::{AttackKind, RobustnessParams};
use easel_core::models::Classifier;
use easel_core::progress::Progress;
use easel_jobs::robustness::{self, RobustnessRequest};

use super::DeviceArg;

#[derive(Args, Debug)]
pub struct RobustnessArgs {
    #[arg(long)]
    pub model: PathBuf,
    /// An IDX folder or file, a class-per-folder tree, or a predictions CSV (its images).
    #[arg(long)]
    pub data: PathBuf,
    /// `t10k` or `train` for an IDX folder.
    #[arg(long, default_value = "t10k")]
    pub split: String,
    #[arg(long, value_enum, default_value_t = AttackKind::Fgsm)]
    pub attack: AttackKind,
    /// Budgets in [0, 1] pixel units: numbers or fractions.
    #[arg(long, default_value = "0,1/255,2/255,4/255,8/255")]
    pub epsilons: String,
    /// PGD iterations.
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Attack only the first N images.
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub device: DeviceArg,
}

pub fn run(args: RobustnessArgs) -> Result<ExitCode> {
    let params =
        RobustnessParams { attack: args.attack, epsilons: robustness::parse_epsilons(&args.epsilons)?, steps: args.steps, batch_size: args.batch_size };
    params.validate()?;
    let device = args.device.open()?;
    let model = Classifier::load(&args.model, &device.device).with_context(|| format!("cannot load the model {}", args.model.display()))?;
    let set = robustness::load_data(&model, &args.data, &args.split)?;
    let req = RobustnessRequest { params, limit: args.limit };
    let report = |d: usize, t: usize| super::progress_line(format_args!("  {d}/{t} images"));
    let out = robustness::run(&model, &set, &args.data.display().to_string(), &req, Progress::none().with_report(&report))?;
    super::end_progress_line();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("{:>10} {:>9} {:>8} {:>11}", "epsilon", "accuracy", "flipped", "confidence");
        for p in &out.report.curve {
            println!("{:>10.5} {:>9.4} {:>8} {:>11.4}", p.epsilon, p.accuracy, p.flipped, p.mean_confidence);
        }
        println!("{} images, {:?}, {:.1} s", out.report.images, out.report.attack, out.report.seconds);
    }
    Ok(ExitCode::SUCCESS)
}
