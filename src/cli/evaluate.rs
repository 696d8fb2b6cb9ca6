//! `easel evaluate` (run a model over a labelled set) and `easel metrics` (figures from a
//! predictions CSV, with costs and class merging).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use easel_core::metrics::{self, CostMatrix, MetricsReport, Predictions};
use easel_core::models::Classifier;
use easel_core::progress::Progress;
use easel_core::{data, evaluate, fsutil};

use super::DeviceArg;

#[derive(Args, Debug)]
pub struct EvaluateArgs {
    #[arg(long)]
    pub model: PathBuf,
    /// An IDX folder or file (Fashion-MNIST layout) or a folder with one sub-folder per class.
    #[arg(long)]
    pub data: PathBuf,
    /// `t10k` or `train` for an IDX folder.
    #[arg(long, default_value = "t10k")]
    pub split: String,
    /// Write the predictions here (`path,label,p0,...`) and the metrics beside it
    /// (`<name>.metrics.json`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long)]
    pub force: bool,
    /// Print the metrics as JSON.
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Recompute even if predictions for this model and data are cached.
    #[arg(long)]
    pub no_cache: bool,
    #[command(flatten)]
    pub device: DeviceArg,
}

#[derive(Args, Debug)]
pub struct MetricsArgs {
    /// `path,label,p0,...,pK-1` or `path,label,pred`.
    #[arg(long)]
    pub predictions: PathBuf,
    /// A model card, for class names (needed for `path,label,pred` files).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// K x K costs: rows true class, columns predicted class.
    #[arg(long)]
    pub cost: Option<PathBuf>,
    /// Merge classes at scoring time, e.g. `--merge 0+6` (repeatable).
    #[arg(long)]
    pub merge: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

pub fn run_evaluate(args: EvaluateArgs) -> Result<ExitCode> {
    if let Some(out) = &args.out
        && out.exists()
        && !args.force
    {
        bail!("{} already exists; pass --force to replace it", out.display());
    }
    let device = args.device.open()?;
    let model = Classifier::load(&args.model, &device.device).with_context(|| format!("cannot load the model {}", args.model.display()))?;
    let source = data::resolve_source(&args.data, &args.split)?;
    let set = data::load_source(&source, &model.card.input, &model.card.classes)?;
    let started = Instant::now();
    let report = |done: usize, total: usize| {
        eprint!("\r  {done}/{total} images");
        let _ = std::io::stderr().flush();
    };
    let cache = if args.no_cache { None } else { evaluate::cache_dir() };
    let (preds, cached) = evaluate::evaluate_cached(&model, &source, &set, args.batch_size, cache.as_deref(), Progress::none().with_report(&report))?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "\reasel: {} images {} in {secs:.1} s{}",
        preds.len(),
        if cached { "read from the cache" } else { "evaluated" },
        if cached { String::new() } else { format!(" ({:.0} images/s)", preds.len() as f64 / secs) }
    );
    let r = metrics::report(&preds, None);
    if let Some(out) = &args.out {
        fsutil::write_atomic(out, preds.to_csv().as_bytes())?;
        let mpath = out.with_extension("metrics.json");
        fsutil::write_atomic(&mpath, serde_json::to_string_pretty(&r)?.as_bytes())?;
        eprintln!("easel: wrote {} and {}", out.display(), mpath.display());
    }
    print_report(&r, args.json)?;
    Ok(ExitCode::SUCCESS)
}

pub fn run_metrics(args: MetricsArgs) -> Result<ExitCode> {
    let classes = match &args.model {
        Some(m) => Some(easel_core::card::ModelCard::load(m)?.0.classes),
        None => None,
    };
    let mut preds = Predictions::read_csv(&args.predictions, classes.as_deref())?;
    let mut cost = match &args.cost {
        Some(c) => Some(CostMatrix::read_csv(c, preds.k())?),
        None => None,
    };
    if !args.merge.is_empty() {
        let groups: Vec<Vec<usize>> = args.merge.iter().map(|m| metrics::parse_merge(m)).collect::<easel_core::Result<_>>()?;
        let k = preds.k();
        preds = preds.merged(&groups)?;
        let (new_k, new_of) = metrics::merge_map(k, &groups);
        cost = cost.map(|c| c.merged(new_k, &new_of));
    }
    print_report(&metrics::report(&preds, cost.as_ref()), args.json)?;
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &MetricsReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    let s = &r.summary;
    println!("samples            {}", s.samples);
    println!("accuracy           {:.4}", s.accuracy);
    println!("balanced accuracy  {:.4}", s.balanced_accuracy);
    println!("macro F1           {:.4}", s.macro_f1);
    println!("weighted F1        {:.4}", s.weighted_f1);
    for (k, a) in &s.top_k_accuracy {
        println!("top-{k} accuracy     {a:.4}");
    }
    println!("imbalance ratio    {:.2}", s.imbalance_ratio);
    println!("\n{:<24} {:>9} {:>9} {:>9} {:>8}", "class", "precision", "recall", "F1", "support");
    for m in &r.per_class {
        println!("{:<24} {:>9.4} {:>9.4} {:>9.4} {:>8}", m.class, m.precision, m.recall, m.f1, m.support);
    }
    for (name, c) in [("argmax", &r.cost_argmax), ("cost-optimal", &r.cost_optimal)] {
        if let Some(c) = c {
            println!(
                "\ncost of {name} decisions: total {:.2}, mean {:.4}{}",
                c.total,
                c.mean,
                c.expected_mean.map(|e| format!(", expected per sample {e:.4}")).unwrap_or_default()
            );
        }
    }
    if !r.label_issues.is_empty() {
        println!("\n{} samples whose label looks wrong (most suspicious first):", r.label_issues.len());
        for i in r.label_issues.iter().take(10) {
            println!("  #{} labelled {} but looks like {} (p(label) {:.3})", i.index, r.classes[i.given], r.classes[i.suggested], i.self_confidence);
        }
    }
    Ok(())
}
