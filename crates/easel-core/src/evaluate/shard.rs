//! Splitting a labelled set across machines and joining the results: a [`Shard`] is one of
//! N contiguous blocks of the set's own order (IDX: image index; folder: sorted class
//! folder, then sorted file), so every machine that sees the same files agrees on it. Each
//! finished predictions CSV has a [`RunRecord`] beside it (`<name>.run.json`: model hash,
//! data fingerprint, shard, rows); [`merge`] checks the records (same model and data, no
//! overlap, none missing, every shard complete) and writes one predictions CSV.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::models::Classifier;

/// The `format` of a run record.
pub const RUN_FORMAT: &str = "easel-run/1";

/// Shard `index` of `count` (0-based: `0/3`, `1/3`, `2/3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Where a shard came from, for the log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardOrigin {
    Flag,
    Slurm,
    Kubernetes,
}

impl Shard {
    /// The whole set.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    pub fn new(index: usize, count: usize) -> Result<Shard> {
        if count == 0 || index >= count {
            return Err(Error::invalid(format!(
                "shard {index}/{count}: the index counts from 0 and must be below the count (0/{c} .. {}/{c})",
                count.max(1) - 1,
                c = count.max(1)
            )));
        }
        Ok(Shard { index, count })
    }

    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// Parse `I/N`.
    pub fn parse(s: &str) -> Result<Shard> {
        let bad = || Error::invalid(format!("--shard '{s}': write I/N with I counting from 0, e.g. 0/3"));
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        Shard::new(i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?)
    }

    /// The items of a set of `n` this shard holds: block `index` of `count` near-equal blocks.
    pub fn range(&self, n: usize) -> Range<usize> {
        let at = |i: usize| (i as u128 * n as u128 / self.count as u128) as usize;
        at(self.index)..at(self.index + 1)
    }

    /// The shard a scheduler assigned, from its variables (`var` reads one): a Slurm array
    /// (`SLURM_ARRAY_TASK_ID` less `SLURM_ARRAY_TASK_MIN`, of `SLURM_ARRAY_TASK_COUNT`), or a
    /// Kubernetes Indexed Job (`JOB_COMPLETION_INDEX` of `shards`, the Job's completions).
    /// `None` when neither is set and `shards` is not given.
    pub fn from_env(shards: Option<usize>, var: &dyn Fn(&str) -> Option<String>) -> Result<Option<(Shard, ShardOrigin)>> {
        let number = |name: &str| -> Result<Option<usize>> {
            match var(name) {
                None => Ok(None),
                Some(v) => v.trim().parse().map(Some).map_err(|_| Error::invalid(format!("{name}={v} is not a whole number"))),
            }
        };
        if let Some(id) = number("SLURM_ARRAY_TASK_ID")? {
            let count = number("SLURM_ARRAY_TASK_COUNT")?.ok_or_else(|| Error::invalid("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not"))?;
            let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            if let Some(n) = shards.filter(|&n| n != count) {
                return Err(Error::invalid(format!("--shards {n}, but the Slurm array has SLURM_ARRAY_TASK_COUNT={count} tasks")));
            }
            let index = id.checked_sub(min).ok_or_else(|| Error::invalid(format!("SLURM_ARRAY_TASK_ID={id} is below SLURM_ARRAY_TASK_MIN={min}")))?;
            let shard = Shard::new(index, count).map_err(|_| {
                Error::invalid(format!(
                    "SLURM_ARRAY_TASK_ID={id} (from {min}) does not fit {count} tasks: use a contiguous array such as --array=0-{}",
                    count - 1
                ))
            })?;
            return Ok(Some((shard, ShardOrigin::Slurm)));
        }
        if let Some(index) = number("JOB_COMPLETION_INDEX")? {
            let count = shards.ok_or_else(|| Error::invalid("JOB_COMPLETION_INDEX is set: pass --shards N, the Job's completions"))?;
            return Ok(Some((Shard::new(index, count)?, ShardOrigin::Kubernetes)));
        }
        match shards {
            Some(n) => {
                Err(Error::invalid(format!("--shards {n} needs JOB_COMPLETION_INDEX (Kubernetes) or SLURM_ARRAY_TASK_ID (Slurm); or give --shard I/{n}")))
            }
            None => Ok(None),
        }
    }
}

/// What a predictions CSV is the result of: written beside it as `<name>.run.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub format: String,
    pub model: String,
    pub model_hash: String,
    /// The data as named on the command line (for people; the fingerprint is what counts).
    pub data: String,
    pub data_fingerprint: String,
    pub classes: Vec<String>,
    /// Items in the whole set.
    pub total: usize,
    pub shard: Shard,
    /// The items of this shard: `start..end` of the set's order.
    pub start: usize,
    pub end: usize,
    /// Rows written.
    pub rows: usize,
    pub complete: bool,
}

impl RunRecord {
    pub fn new(model: &Classifier, data: &str, fingerprint: &str, total: usize, shard: Shard) -> RunRecord {
        let r = shard.range(total);
        RunRecord {
            format: RUN_FORMAT.into(),
            model: model.card.name.clone(),
            model_hash: model.hash.clone(),
            data: data.into(),
            data_fingerprint: fingerprint.into(),
            classes: model.card.classes.clone(),
            total,
            shard,
            start: r.start,
            end: r.end,
            rows: 0,
            complete: false,
        }
    }

    /// Whether `other` is the same work (model, data, shard), whatever its progress.
    pub fn same_work(&self, other: &RunRecord) -> bool {
        self.model_hash == other.model_hash
            && self.data_fingerprint == other.data_fingerprint
            && self.classes == other.classes
            && self.total == other.total
            && self.shard == other.shard
            && (self.start, self.end) == (other.start, other.end)
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    pub fn read(path: &Path) -> Result<RunRecord> {
        let text = crate::fsutil::read_text(path)?;
        let r: RunRecord = serde_json::from_str(&text).map_err(|e| Error::Parse { path: path.to_path_buf(), line: e.line(), reason: e.to_string() })?;
        if r.format != RUN_FORMAT || r.start > r.end || r.end > r.total || r.shard.count == 0 || r.shard.index >= r.shard.count {
            return Err(Error::Parse { path: path.to_path_buf(), line: 1, reason: format!("not an {RUN_FORMAT} record, or its shard and rows do not add up") });
        }
        Ok(r)
    }
}

/// The run record beside a predictions CSV: `preds.csv` -> `preds.run.json`.
pub fn record_path(csv: &Path) -> PathBuf {
    csv.with_extension("run.json")
}

/// What [`merge`] wrote.
#[derive(Clone, Debug)]
pub struct Merged {
    pub out: PathBuf,
    pub record: RunRecord,
    /// (shard, file) in shard order.
    pub shards: Vec<(Shard, PathBuf)>,
}

fn name(p: &Path) -> String {
    p.display().to_string()
}

/// Check the shards' records and rows and write one predictions CSV at `out` (replacing it
/// only with `replace`) with its run record. Refused: a file without a record, an
/// incomplete shard, shards of another model, data or split, two files with the same shard
/// or the same path, a missing shard, a row count that does not match its shard.
pub fn merge(inputs: &[PathBuf], out: &Path, replace: bool) -> Result<Merged> {
    if inputs.is_empty() {
        return Err(Error::invalid("merge: name the shards' predictions CSVs"));
    }
    let mut shards: Vec<(RunRecord, PathBuf)> = Vec::new();
    for csv in inputs {
        let rec_path = record_path(csv);
        if !rec_path.is_file() {
            return Err(Error::invalid(format!(
                "{}: no run record beside it ({}); merge takes the predictions `easel evaluate --shard` writes",
                name(csv),
                name(&rec_path)
            )));
        }
        let r = RunRecord::read(&rec_path)?;
        if !r.complete {
            return Err(Error::invalid(format!(
                "{} (shard {}) is incomplete: {} of {} rows; run its evaluation again to finish it",
                name(csv),
                r.shard,
                r.rows,
                r.len()
            )));
        }
        shards.push((r, csv.clone()));
    }
    let (first, first_csv) = (shards[0].0.clone(), shards[0].1.clone());
    let first_csv = &first_csv;
    for (r, csv) in &shards[1..] {
        let differs = |what: &str, a: &str, b: &str| {
            Error::invalid(format!("{} is from {what} {a}, {} from {what} {b}: shards must come from the same model and data", name(first_csv), name(csv)))
        };
        if r.model_hash != first.model_hash {
            return Err(differs("model", &first.model_hash, &r.model_hash));
        }
        if r.data_fingerprint != first.data_fingerprint || r.total != first.total {
            return Err(differs(
                "data",
                &format!("{} ({} items)", first.data_fingerprint, first.total),
                &format!("{} ({} items)", r.data_fingerprint, r.total),
            ));
        }
        if r.classes != first.classes {
            return Err(differs("a model with classes", &first.classes.join("|"), &r.classes.join("|")));
        }
        if r.shard.count != first.shard.count {
            return Err(Error::invalid(format!(
                "{} is shard {} and {} is shard {}: shards of different splits overlap; merge the shards of one split",
                name(first_csv),
                first.shard,
                name(csv),
                r.shard
            )));
        }
    }
    let count = first.shard.count;
    let mut by_index: HashMap<usize, &PathBuf> = HashMap::new();
    for (r, csv) in &shards {
        if let Some(other) = by_index.insert(r.shard.index, csv) {
            return Err(Error::invalid(format!("{} and {} are both shard {}: they overlap", name(other), name(csv), r.shard)));
        }
    }
    let missing: Vec<String> = (0..count)
        .filter(|i| !by_index.contains_key(i))
        .map(|i| {
            let r = Shard { index: i, count }.range(first.total);
            format!("{i}/{count} (items {}..{})", r.start, r.end)
        })
        .collect();
    if !missing.is_empty() {
        return Err(Error::invalid(format!(
            "missing shard{} {}: {} of {count} given",
            if missing.len() > 1 { "s" } else { "" },
            missing.join(", "),
            shards.len()
        )));
    }
    shards.sort_by_key(|(r, _)| r.shard.index);
    if out.exists() && !replace {
        return Err(Error::invalid(format!("{} already exists; pass --force to replace it", name(out))));
    }
    if inputs.iter().any(|i| same_file(i, out)) {
        return Err(Error::invalid(format!("{} is one of the shards; write the merge elsewhere", name(out))));
    }

    // rows: each file is checked row by row (parsed as `easel metrics` parses it) and its
    // body copied as it is, in shard order
    let partial = super::stream::partial_path(out);
    let result = (|| -> Result<usize> {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&partial).map_err(|e| Error::write(&partial, e))?);
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut header: Option<String> = None;
        let mut rows = 0usize;
        for (k, (r, csv)) in shards.iter().enumerate() {
            let mut n = 0usize;
            // an empty shard (more shards than items) holds only the header
            if !r.is_empty() {
                crate::metrics::tally::for_each_chunk(csv, Some(&r.classes), crate::metrics::tally::CHUNK_ROWS, &mut |_, p| {
                    n += p.len();
                    for path in p.paths {
                        if let Some(j) = seen.insert(path.clone(), k) {
                            return Err(Error::invalid(format!("{path} is in both {} and {}: the shards overlap", name(&shards[j].1), name(csv))));
                        }
                    }
                    Ok(())
                })?;
            }
            if n != r.len() {
                return Err(Error::invalid(format!("{} holds {n} rows, but shard {} of {} items has {}", name(csv), r.shard, r.total, r.len())));
            }
            let file = std::fs::File::open(csv).map_err(|e| Error::io(csv, e))?;
            let mut rd = std::io::BufReader::new(file);
            let mut line = String::new();
            rd.read_line(&mut line).map_err(|e| Error::io(csv, e))?;
            match &header {
                None => {
                    w.write_all(line.as_bytes()).map_err(|e| Error::write(&partial, e))?;
                    header = Some(line);
                }
                Some(h) if *h != line => return Err(Error::invalid(format!("{}: its header differs from {}'s", name(csv), name(&shards[0].1)))),
                Some(_) => {}
            }
            let copied = std::io::copy(&mut rd, &mut w).map_err(|e| Error::write(&partial, e))?;
            if copied > 0 && !ends_with_newline(csv)? {
                w.write_all(b"\n").map_err(|e| Error::write(&partial, e))?;
            }
            rows += n;
        }
        let f = w.into_inner().map_err(|e| Error::write(&partial, e.into_error()))?;
        f.sync_all().map_err(|e| Error::write(&partial, e))?;
        Ok(rows)
    })();
    let rows = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    let record = RunRecord { shard: Shard::WHOLE, start: 0, end: first.total, rows, complete: true, ..first.clone() };
    crate::fsutil::write_atomic(&record_path(out), &record.to_json())?;
    std::fs::rename(&partial, out).map_err(|e| Error::write(out, e))?;
    Ok(Merged { out: out.to_path_buf(), record, shards: shards.into_iter().map(|(r, p)| (r.shard, p)).collect() })
}

fn ends_with_newline(path: &Path) -> Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut last = [0u8];
    f.seek(SeekFrom::End(-1)).and_then(|_| f.read_exact(&mut last)).map_err(|e| Error::io(path, e))?;
    Ok(last[0] == b'\n')
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_set_once_in_order() {
        for n in [0, 1, 2, 10, 10_000, 10_001] {
            for count in [1, 2, 3, 7] {
                let mut next = 0;
                for index in 0..count {
                    let r = Shard::new(index, count).unwrap().range(n);
                    assert_eq!(r.start, next);
                    next = r.end;
                }
                assert_eq!(next, n);
            }
        }
        assert_eq!(Shard::parse("2/3").unwrap(), Shard { index: 2, count: 3 });
        for bad in ["3/3", "1", "a/3", "0/0", "-1/2"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn schedulers_variables_name_the_shard() {
        let env = |pairs: &'static [(&'static str, &'static str)]| move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        let slurm = env(&[("SLURM_ARRAY_TASK_ID", "2"), ("SLURM_ARRAY_TASK_COUNT", "3")]);
        assert_eq!(Shard::from_env(None, &slurm).unwrap(), Some((Shard { index: 2, count: 3 }, ShardOrigin::Slurm)));
        let from_one = env(&[("SLURM_ARRAY_TASK_ID", "3"), ("SLURM_ARRAY_TASK_COUNT", "3"), ("SLURM_ARRAY_TASK_MIN", "1")]);
        assert_eq!(Shard::from_env(None, &from_one).unwrap().unwrap().0, Shard { index: 2, count: 3 });
        assert!(Shard::from_env(Some(4), &slurm).unwrap_err().to_string().contains("SLURM_ARRAY_TASK_COUNT=3"));
        let k8s = env(&[("JOB_COMPLETION_INDEX", "1")]);
        assert_eq!(Shard::from_env(Some(4), &k8s).unwrap(), Some((Shard { index: 1, count: 4 }, ShardOrigin::Kubernetes)));
        assert!(Shard::from_env(None, &k8s).unwrap_err().to_string().contains("--shards"));
        let none = env(&[]);
        assert_eq!(Shard::from_env(None, &none).unwrap(), None);
        assert!(Shard::from_env(Some(3), &none).is_err());
    }
}
