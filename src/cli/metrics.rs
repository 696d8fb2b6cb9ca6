//! `easel metrics`: figures from a predictions CSV, with costs and class merging; with
//! `--versus B.csv`, model A against model B on the same samples (joined by path).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use easel_core::metrics::versus::{self, VersusOptions, VersusReport};
use easel_core::metrics::{self, CostMatrix, MetricsReport, Predictions};
use serde::Serialize;

#[derive(Args, Debug)]
pub struct MetricsArgs {
    /// `path,label,p0,...,pK-1` or `path,label,pred`.
    #[arg(long)]
    pub predictions: PathBuf,
    /// Compare with these predictions of another model on the same samples (rows joined by
    /// path): the 2x2 agreement table, the accuracy delta with a bootstrap 95 % interval,
    /// McNemar's exact test, per-class recall deltas and (with --cost) cost deltas.
    #[arg(long, value_name = "B.csv")]
    pub versus: Option<PathBuf>,
    /// A model card, for class names (needed for `path,label,pred` files).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// K x K costs: rows true class, columns predicted class.
    #[arg(long)]
    pub cost: Option<PathBuf>,
    /// Merge classes at scoring time, e.g. `--merge 0+6` (repeatable).
    #[arg(long)]
    pub merge: Vec<String>,
    /// Bootstrap resamples of the accuracy delta's interval (with --versus).
    #[arg(long, default_value_t = versus::BOOTSTRAP_RESAMPLES)]
    pub bootstrap: usize,
    /// Seed of the bootstrap (with --versus).
    #[arg(long, default_value_t = versus::BOOTSTRAP_SEED)]
    pub seed: u64,
    #[arg(long)]
    pub json: bool,
}

/// `--json` with `--versus`.
#[derive(Serialize)]
struct VersusJson<'a> {
    a_file: String,
    b_file: String,
    a: &'a MetricsReport,
    b: &'a MetricsReport,
    versus: &'a VersusReport,
}

/// The predictions with the merges applied (the cost matrix follows them).
fn merged(p: Predictions, groups: &[Vec<usize>]) -> Result<Predictions> {
    Ok(if groups.is_empty() { p } else { p.merged(groups)? })
}

pub fn run_metrics(args: MetricsArgs) -> Result<ExitCode> {
    let classes = match &args.model {
        Some(m) => Some(easel_core::card::ModelCard::load(m)?.0.classes),
        None => None,
    };
    let groups: Vec<Vec<usize>> = args.merge.iter().map(|m| metrics::parse_merge(m)).collect::<easel_core::Result<_>>()?;
    let raw = Predictions::read_csv(&args.predictions, classes.as_deref())?;
    let (raw_k, raw_classes) = (raw.k(), raw.classes.clone());
    let preds = merged(raw, &groups)?;
    let cost = match &args.cost {
        Some(c) => {
            let c = CostMatrix::read_csv(c, raw_k)?;
            Some(if groups.is_empty() {
                c
            } else {
                let (new_k, new_of) = metrics::merge_map(raw_k, &groups);
                c.merged(new_k, &new_of)
            })
        }
        None => None,
    };
    let Some(b_path) = &args.versus else {
        print_report(&metrics::report(&preds, cost.as_ref()), args.json)?;
        return Ok(ExitCode::SUCCESS);
    };
    let b = merged(Predictions::read_csv(b_path, Some(&raw_classes))?, &groups)?;
    let opts = VersusOptions { resamples: args.bootstrap, seed: args.seed };
    let (a_name, b_name) = (args.predictions.display().to_string(), b_path.display().to_string());
    let (b, v) = versus::compare(&preds, &b, cost.as_ref(), opts, &a_name, &b_name)?;
    let (ra, rb) = (metrics::report(&preds, cost.as_ref()), metrics::report(&b, cost.as_ref()));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&VersusJson { a_file: a_name, b_file: b_name, a: &ra, b: &rb, versus: &v })?);
    } else {
        print_versus(&v, &a_name, &b_name);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_versus(v: &VersusReport, a: &str, b: &str) {
    println!("A: {a}");
    println!("B: {b}");
    println!("samples            {}", v.samples);
    println!("accuracy A         {:.4}", v.accuracy_a);
    println!("accuracy B         {:.4}", v.accuracy_b);
    println!(
        "B - A              {:+.4}  (95 % bootstrap interval {:+.4} .. {:+.4}, {} resamples, seed {})",
        v.accuracy_delta, v.delta_ci95[0], v.delta_ci95[1], v.bootstrap_resamples, v.bootstrap_seed
    );
    println!("McNemar exact p    {}", versus::format_p(v.mcnemar_p));
    println!("\n{:<12} {:>10} {:>10}", "", "B right", "B wrong");
    println!("{:<12} {:>10} {:>10}", "A right", v.both_right, v.a_only);
    println!("{:<12} {:>10} {:>10}", "A wrong", v.b_only, v.both_wrong);
    println!("\n{}.", v.verdict);
    println!("\n{:<24} {:>8} {:>9} {:>9} {:>9} {:>7} {:>7}", "class", "support", "recall A", "recall B", "B - A", "A only", "B only");
    for c in &v.per_class {
        println!("{:<24} {:>8} {:>9.4} {:>9.4} {:>+9.4} {:>7} {:>7}", c.class, c.support, c.recall_a, c.recall_b, c.delta, c.a_only, c.b_only);
    }
    if let Some(c) = &v.cost {
        println!(
            "\ncost of the most probable class: A {:.2} (mean {:.4}), B {:.2} (mean {:.4}), B - A {:+.2} ({:+.4} a sample)",
            c.total_a, c.mean_a, c.total_b, c.mean_b, c.total_delta, c.mean_delta
        );
    }
}

pub fn print_report(r: &MetricsReport, json: bool) -> Result<()> {
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
