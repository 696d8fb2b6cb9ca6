//! `easel evaluate`: run a model over a labelled set (or one shard of it), streaming the
//! predictions into a resumable CSV with its run record and metrics.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use easel_core::evaluate::shard::{RunRecord, Shard, ShardOrigin, record_path};
use easel_core::evaluate::stream;
use easel_core::metrics::tally;
use easel_core::models::Classifier;
use easel_core::progress::Progress;
use easel_core::{data, evaluate, fsutil};

use super::DeviceArg;
use super::metrics::print_report;

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
    /// Write the predictions here (`path,label,p0,...`), the run record beside it
    /// (`<name>.run.json`) and the metrics (`<name>.metrics.json`). A stopped run with the same
    /// model, data and shard resumes; a finished one is not redone.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace --out if it holds other predictions.
    #[arg(long)]
    pub force: bool,
    /// Print the metrics as JSON.
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Read the weights a card names even when they lie outside the card's folder.
    #[arg(long)]
    pub allow_outside: bool,
    /// Recompute even if predictions for this model and data are cached.
    #[arg(long)]
    pub no_cache: bool,
    /// Evaluate shard I of N (counting from 0): block I of the set's own order (IDX: image
    /// index; folder: sorted class folder, then file). Default: from SLURM_ARRAY_TASK_ID /
    /// SLURM_ARRAY_TASK_COUNT, or JOB_COMPLETION_INDEX with --shards.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// The number of shards, for a Kubernetes Indexed Job (JOB_COMPLETION_INDEX gives I).
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,
    #[command(flatten)]
    pub device: DeviceArg,
}

/// The shard to evaluate: the flag, else the scheduler's variables, else the whole set.
fn shard_of(args: &EvaluateArgs) -> Result<(Shard, Option<ShardOrigin>)> {
    if let Some(s) = &args.shard {
        let shard = Shard::parse(s)?;
        if let Some(n) = args.shards.filter(|&n| n != shard.count) {
            anyhow::bail!("--shard {shard} and --shards {n} disagree");
        }
        return Ok((shard, Some(ShardOrigin::Flag)));
    }
    Ok(match Shard::from_env(args.shards, &|k| std::env::var(k).ok())? {
        Some((s, origin)) => (s, Some(origin)),
        None => (Shard::WHOLE, None),
    })
}

/// The process's peak resident memory in bytes (Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// "12 s", "3 min 20 s".
fn secs_words(s: f64) -> String {
    if s < 60.0 { format!("{s:.0} s") } else { format!("{} min {} s", (s / 60.0) as u64, (s % 60.0) as u64) }
}

/// Copy a finished CSV and its run record (each written whole).
fn copy_run(from: &Path, to: &Path) -> easel_core::Result<()> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| easel_core::Error::io(p, e));
    fsutil::write_atomic(&record_path(to), &read(&record_path(from))?)?;
    fsutil::write_atomic(to, &read(from)?)
}

fn is_complete(csv: &Path, want: &RunRecord) -> bool {
    csv.is_file() && RunRecord::read(&record_path(csv)).is_ok_and(|r| r.complete && r.same_work(want) && r.rows == want.len())
}

pub fn run_evaluate(args: EvaluateArgs) -> Result<ExitCode> {
    let (shard, origin) = shard_of(&args)?;
    let device = args.device.open()?;
    let model =
        Classifier::load_with(&args.model, &device.device, args.allow_outside).with_context(|| format!("cannot load the model {}", args.model.display()))?;
    let source = data::resolve_source(&args.data, &args.split)?;
    let items = data::open_items(&source, &model.card.input, &model.card.classes)?;
    let fingerprint = evaluate::data_fingerprint(&source)?;
    let record = RunRecord::new(&model, &source.describe(), &fingerprint, items.len(), shard);
    if let Some(o) = origin.filter(|_| !shard.is_whole()) {
        let from = match o {
            ShardOrigin::Flag => "--shard",
            ShardOrigin::Slurm => "SLURM_ARRAY_TASK_ID",
            ShardOrigin::Kubernetes => "JOB_COMPLETION_INDEX",
        };
        eprintln!("easel: shard {shard} (from {from}): items {}..{} of {}", record.start, record.end, record.total);
    }
    let cache = if args.no_cache { None } else { evaluate::cache_dir() };
    let cached = cache.as_ref().map(|c| evaluate::cache_file_for(c, &model.hash, &fingerprint, shard));
    let scratch = std::env::temp_dir().join(format!("easel-evaluate-{}.csv", std::process::id()));
    let target = args.out.clone().or_else(|| cached.clone()).unwrap_or_else(|| scratch.clone());
    let mut from_cache = false;
    if let (Some(out), Some(c)) = (&args.out, &cached)
        && is_complete(c, &record)
        && !is_complete(out, &record)
        && (args.force || !out.exists())
    {
        copy_run(c, out)?;
        from_cache = true;
    }

    let started = Instant::now();
    let last = Mutex::new((Instant::now(), None::<(Instant, usize)>));
    let report = |done: usize, total: usize| {
        let mut g = last.lock().unwrap_or_else(|e| e.into_inner());
        let first = *g.1.get_or_insert((Instant::now(), done));
        if done < total && g.0.elapsed().as_secs_f64() < 0.5 {
            return;
        }
        g.0 = Instant::now();
        let secs = first.0.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { (done - first.1) as f64 / secs } else { 0.0 };
        let eta = if rate > 0.0 { format!(" · {} left", secs_words((total - done) as f64 / rate)) } else { String::new() };
        super::progress_line(format_args!("  {done}/{total} images · {rate:.0} images/s{eta}    "));
    };
    let run = stream::Run { model: &model, items: &*items, record, out: &target, batch_size: args.batch_size, replace: args.force || args.out.is_none() };
    let outcome = stream::evaluate_to_csv(&run, Progress::none().with_report(&report))?;
    let secs = started.elapsed().as_secs_f64();
    if outcome.evaluated > 0 {
        super::end_progress_line();
    }
    let rate = outcome.evaluated as f64 / outcome.secs.max(1e-9);
    match (outcome.already_complete, outcome.resumed) {
        (true, _) if from_cache || args.out.is_none() => eprintln!("easel: {} images read from the cache in {secs:.1} s", outcome.rows),
        (true, _) => eprintln!("easel: {} already holds all {} predictions of this work; nothing to do", target.display(), outcome.rows),
        (false, 0) => eprintln!("easel: {} images evaluated in {:.1} s ({rate:.0} images/s)", outcome.evaluated, outcome.secs),
        (false, kept) => {
            eprintln!("easel: resumed a stopped run: kept {kept} rows, evaluated the other {} in {:.1} s ({rate:.0} images/s)", outcome.evaluated, outcome.secs)
        }
    }
    // a finished --out is also the cache's copy (best effort)
    if let (Some(out), Some(c)) = (&args.out, &cached)
        && !from_cache
        && !is_complete(c, &outcome.record)
    {
        let _ = copy_run(out, c);
    }
    let r = tally::report_of_csv(&target, Some(&model.card.classes))?;
    if let Some(out) = &args.out {
        let mpath = out.with_extension("metrics.json");
        fsutil::write_atomic(&mpath, serde_json::to_string_pretty(&r)?.as_bytes())?;
        eprintln!("easel: wrote {}, {} and {}", out.display(), record_path(out).display(), mpath.display());
    }
    if target == scratch {
        let _ = std::fs::remove_file(&scratch);
        let _ = std::fs::remove_file(record_path(&scratch));
    }
    if let Some(peak) = peak_rss_bytes() {
        eprintln!("easel: peak memory {:.0} MiB", peak as f64 / (1024.0 * 1024.0));
    }
    print_report(&r, args.json)?;
    Ok(ExitCode::SUCCESS)
}
