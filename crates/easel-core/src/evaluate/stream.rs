//! Evaluation straight into a predictions CSV, resumable: rows are appended to
//! `<out>.partial` batch by batch (nothing is kept in memory), with the work it belongs to in
//! `<out>.partial.json`. A run killed at any point (even `kill -9`) leaves whole rows plus at
//! most one torn line; the next run with the same model, data and shard cuts the torn line,
//! keeps the rows and evaluates only the rest. When the last row is written the run record
//! goes beside `<out>` and the partial file is renamed to `<out>`, so `<out>` only ever
//! appears complete.

use std::ffi::OsString;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::shard::{RunRecord, record_path};
use crate::data::LabelledItems;
use crate::error::{Error, Result};
use crate::metrics::Predictions;
use crate::models::Classifier;
use crate::progress::Progress;

/// One evaluation into a CSV.
pub struct Run<'a> {
    pub model: &'a Classifier,
    pub items: &'a dyn LabelledItems,
    /// The work: model, data, shard (rows 0, not complete).
    pub record: RunRecord,
    pub out: &'a Path,
    pub batch_size: usize,
    /// Replace an existing `out`, or a stopped run of other work, instead of refusing.
    pub replace: bool,
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Rows in the finished file.
    pub rows: usize,
    /// Rows kept from a stopped run (or all of them, if the file was complete already).
    pub resumed: usize,
    /// Rows evaluated by this run.
    pub evaluated: usize,
    pub secs: f64,
    /// `out` held this work, complete, before the run: nothing was done.
    pub already_complete: bool,
    pub record: RunRecord,
}

/// Where a run in progress writes: `<out>.partial`.
pub fn partial_path(out: &Path) -> PathBuf {
    let mut s = OsString::from(out.as_os_str());
    s.push(".partial");
    PathBuf::from(s)
}

fn partial_record_path(out: &Path) -> PathBuf {
    let mut s = OsString::from(out.as_os_str());
    s.push(".partial.json");
    PathBuf::from(s)
}

/// The header line of a predictions CSV over `classes`.
fn header_line(classes: &[String]) -> String {
    let empty = Predictions { classes: classes.to_vec(), paths: Vec::new(), labels: Vec::new(), probs: Some(Vec::new()), preds: Vec::new() };
    empty.to_csv()
}

/// Evaluate `run.items[record.start..record.end]` into `run.out`, resuming a stopped run of
/// the same work.
pub fn evaluate_to_csv(run: &Run<'_>, progress: Progress<'_>) -> Result<Outcome> {
    let started = Instant::now();
    let want = &run.record;
    let out = run.out;
    let shard_words = if want.shard.is_whole() { String::new() } else { format!(", shard {}", want.shard) };
    if out.exists() {
        if let Ok(r) = RunRecord::read(&record_path(out))
            && r.complete
            && r.same_work(want)
            && r.rows == want.len()
        {
            return Ok(Outcome { rows: r.rows, resumed: r.rows, evaluated: 0, secs: 0.0, already_complete: true, record: r });
        }
        if !run.replace {
            return Err(Error::invalid(format!(
                "{} already exists and does not hold this model's predictions on this data{shard_words}; pass --force to replace it",
                out.display()
            )));
        }
    }
    let partial = partial_path(out);
    let partial_record = partial_record_path(out);
    let mut resumed = 0;
    if partial.exists() {
        let kept = match RunRecord::read(&partial_record) {
            Ok(r) if r.same_work(want) => resume_rows(&partial, &want.classes).and_then(|n| {
                if n > want.len() {
                    Err(Error::invalid(format!("{} holds {n} rows, more than the {} of this work", partial.display(), want.len())))
                } else {
                    Ok(n)
                }
            }),
            Ok(_) | Err(_) => Err(Error::invalid(format!("{} holds a stopped run of another model, data or shard", partial.display()))),
        };
        match kept {
            Ok(n) => resumed = n,
            Err(_) if run.replace => {}
            Err(e) => return Err(Error::invalid(format!("{e}; pass --force to start over"))),
        }
    }
    // the cache folder (or the folder of --out) may not exist yet: a fresh machine has none
    if let Some(dir) = partial.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::fsutil::ensure_dir(dir)?;
    }
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&partial).map_err(|e| Error::write(&partial, e))?;
    if resumed == 0 {
        file.set_len(0).map_err(|e| Error::write(&partial, e))?;
        file.write_all(header_line(&want.classes).as_bytes()).map_err(|e| Error::write(&partial, e))?;
    }
    crate::fsutil::write_atomic(&partial_record, &want.to_json())?;
    let mut evaluated = 0;
    super::evaluate_items(run.model, run.items, want.start + resumed..want.end, run.batch_size, resumed, progress, &mut |p| {
        let text = p.to_csv();
        let body = text.split_once('\n').map(|(_, b)| b).unwrap_or("");
        // one write per batch: a kill leaves whole rows and at most one torn line
        file.write_all(body.as_bytes()).map_err(|e| Error::write(&partial, e))?;
        evaluated += p.len();
        Ok(())
    })?;
    file.sync_all().map_err(|e| Error::write(&partial, e))?;
    drop(file);
    let record = RunRecord { rows: want.len(), complete: true, ..want.clone() };
    crate::fsutil::write_atomic(&record_path(out), &record.to_json())?;
    std::fs::rename(&partial, out).map_err(|e| Error::write(out, e))?;
    let _ = std::fs::remove_file(&partial_record);
    Ok(Outcome { rows: record.rows, resumed, evaluated, secs: started.elapsed().as_secs_f64(), already_complete: false, record })
}

/// The whole rows of a stopped run's file: a torn last line is cut off, the rest is checked
/// row by row. 0 when not even the header is whole.
fn resume_rows(partial: &Path, classes: &[String]) -> Result<usize> {
    let end = last_newline(partial)?;
    let Some(end) = end else { return Ok(0) };
    let f = std::fs::OpenOptions::new().write(true).open(partial).map_err(|e| Error::write(partial, e))?;
    f.set_len(end + 1).map_err(|e| Error::write(partial, e))?;
    drop(f);
    let mut header = String::new();
    {
        let mut r = std::io::BufReader::new(std::fs::File::open(partial).map_err(|e| Error::io(partial, e))?);
        std::io::BufRead::read_line(&mut r, &mut header).map_err(|e| Error::io(partial, e))?;
    }
    if header != header_line(classes) {
        return Err(Error::invalid(format!("{}: its header is not that of this model's predictions", partial.display())));
    }
    if header.len() as u64 == end + 1 {
        return Ok(0);
    }
    let mut rows = 0;
    crate::metrics::tally::for_each_chunk(partial, Some(classes), crate::metrics::tally::CHUNK_ROWS, &mut |_, p| {
        rows += p.len();
        Ok(())
    })?;
    Ok(rows)
}

/// The offset of the last `\n` in a file, reading backwards a block at a time.
fn last_newline(path: &Path) -> Result<Option<u64>> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut pos = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut buf = vec![0u8; 64 * 1024];
    while pos > 0 {
        let n = (buf.len() as u64).min(pos) as usize;
        pos -= n as u64;
        f.seek(SeekFrom::Start(pos)).and_then(|_| f.read_exact(&mut buf[..n])).map_err(|e| Error::io(path, e))?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            return Ok(Some(pos + i as u64));
        }
    }
    Ok(None)
}
