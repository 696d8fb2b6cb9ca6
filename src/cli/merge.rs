//! `easel merge`: join the predictions CSVs of `easel evaluate --shard` runs into one, after
//! checking they are the shards of one evaluation (same model hash and data fingerprint,
//! none overlapping, none missing, each complete), and write its metrics.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use easel_core::evaluate::shard::{self, record_path};
use easel_core::fsutil;
use easel_core::metrics::tally;

use super::metrics::print_report;

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The shards' predictions CSVs (each with the `<name>.run.json` evaluate wrote beside it).
    #[arg(required = true, num_args = 1..)]
    pub shards: Vec<PathBuf>,
    /// The merged predictions CSV; its run record and metrics go beside it.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace --out if it exists.
    #[arg(long)]
    pub force: bool,
    /// Print the metrics as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: MergeArgs) -> Result<ExitCode> {
    let merged = shard::merge(&args.shards, &args.out, args.force)?;
    let r = tally::report_of_csv(&merged.out, Some(&merged.record.classes))?;
    let mpath = merged.out.with_extension("metrics.json");
    fsutil::write_atomic(&mpath, serde_json::to_string_pretty(&r)?.as_bytes())?;
    eprintln!(
        "easel: merged {} shards ({} rows, model {}, data {}) into {}; wrote {} and {}",
        merged.shards.len(),
        merged.record.rows,
        merged.record.model_hash,
        merged.record.data_fingerprint,
        merged.out.display(),
        record_path(&merged.out).display(),
        mpath.display()
    );
    print_report(&r, args.json)?;
    Ok(ExitCode::SUCCESS)
}
