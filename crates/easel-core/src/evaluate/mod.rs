//! Running a model over a labelled set in batches (progress, cancel): batches are decoded and
//! run on the CPU's cores at once, so a folder of any size needs the memory of a few batches.
//! Results go to a sink: collected in memory ([`evaluate`]), or
//! appended to a resumable predictions CSV ([`stream`]); sets split into shards that
//! separate machines evaluate and [`shard::merge`] joins ([`shard`]). Predictions are cached
//! by the model's hash and the data's fingerprint.

pub mod shard;
pub mod stream;

use std::ops::Range;
use std::path::{Path, PathBuf};

use sha2::Digest;

use crate::data::{DataSource, LabelledImages, LabelledItems};
use crate::error::Result;
use crate::metrics::Predictions;
use crate::models::Classifier;
use crate::predict::softmax;
use crate::progress::Progress;

/// Run the model over `items[range]` in batches of `batch_size`; each batch's predictions go to
/// `sink` in order. Progress counts `done_before` rows as done already (a resumed run).
///
/// Each batch is decoded and run by one of the CPU's workers (`crate::parallel`), several
/// batches at once: decoding one batch overlaps the model on another, and both cores run the
/// model. The batches and their order are the same on any number of workers, so are the
/// numbers. Memory: a batch of input per worker, whatever the folder's size.
pub fn evaluate_items(
    model: &Classifier,
    items: &dyn LabelledItems,
    range: Range<usize>,
    batch_size: usize,
    done_before: usize,
    progress: Progress<'_>,
    sink: &mut dyn FnMut(Predictions) -> Result<()>,
) -> Result<()> {
    let spec = &model.card.input;
    let bs = batch_size.max(1);
    let total = done_before + range.len();
    let batches: Vec<Range<usize>> = range.clone().step_by(bs).map(|start| start..(start + bs).min(range.end)).collect();
    let work = |i: usize| -> Result<Vec<Vec<f32>>> {
        let batch = batches[i].clone();
        let mut x = Vec::with_capacity(batch.len() * spec.channels * spec.height * spec.width);
        batch.clone().try_for_each(|i| items.normalised_into(i, spec, &mut x))?;
        Ok(model.logits(model.tensor_from(x, batch.len()))?.iter().map(|l| softmax(l)).collect())
    };
    let mut done = done_before;
    crate::parallel::ordered_chunks(crate::parallel::workers_for(&model.device), batches.len(), progress, &work, &mut |i, probs| {
        let batch = batches[i].clone();
        let paths = batch.clone().map(|i| items.source(i)).collect();
        let labels = batch.clone().map(|i| items.label(i)).collect();
        done += batch.len();
        sink(Predictions::from_probs(model.card.classes.clone(), paths, labels, probs))?;
        progress.report(done, total);
        Ok(())
    })
}

/// Class probabilities for every image of `set`, in memory.
pub fn evaluate(model: &Classifier, set: &LabelledImages, batch_size: usize, progress: Progress<'_>) -> Result<Predictions> {
    if set.is_empty() {
        return Err(crate::Error::invalid("the data set holds no images: there is nothing to evaluate"));
    }
    let mut all = Predictions { classes: model.card.classes.clone(), paths: Vec::new(), labels: Vec::new(), probs: Some(Vec::new()), preds: Vec::new() };
    evaluate_items(model, set, 0..set.len(), batch_size, 0, progress, &mut |p| {
        all.paths.extend(p.paths);
        all.labels.extend(p.labels);
        all.preds.extend(p.preds);
        if let (Some(a), Some(b)) = (&mut all.probs, p.probs) {
            a.extend(b);
        }
        Ok(())
    })?;
    Ok(all)
}

/// What identifies a data source's content: file hashes for IDX files; for a folder tree, the
/// paths below it (relative, so machines that mount it elsewhere agree), sizes and
/// modification times.
pub fn data_fingerprint(source: &DataSource) -> Result<String> {
    let mut h = sha2::Sha256::new();
    match source {
        DataSource::Idx { images, labels } => {
            for p in [images, labels] {
                h.update(crate::fsutil::read_regular(p, 1 << 30)?);
            }
        }
        DataSource::Folder(dir) => hash_tree(dir, dir, &mut h),
    }
    Ok(crate::weights::hex(&h.finalize())[..16].to_string())
}

/// Hash every file under `dir` (path relative to `root`, size, modification time), one folder
/// at a time in sorted order, so only one folder's listing is in memory. Symbolic links to
/// folders are not followed (a link loop would never end).
fn hash_tree(root: &Path, dir: &Path, h: &mut sha2::Sha256) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut listed: Vec<(PathBuf, bool)> = entries.flatten().map(|e| (e.path(), e.file_type().is_ok_and(|t| t.is_dir()))).collect();
    listed.sort();
    for (p, is_dir) in listed {
        if is_dir {
            hash_tree(root, &p, h);
            continue;
        }
        if p.is_dir() {
            continue; // a link to a folder
        }
        let meta = std::fs::metadata(&p).ok();
        h.update(p.strip_prefix(root).unwrap_or(&p).to_string_lossy().as_bytes());
        h.update(meta.as_ref().map(|m| m.len()).unwrap_or(0).to_le_bytes());
        let mtime = meta.and_then(|m| m.modified().ok()).and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_nanos()).unwrap_or(0);
        h.update(mtime.to_le_bytes());
    }
}

/// Where cached predictions live: `$EASEL_CACHE_DIR`, else `$XDG_CACHE_HOME/easel`, else
/// `~/.cache/easel`. Empty or relative values are ignored (as the XDG specification says),
/// so the cache never lands in whatever folder the command runs in. The folder is created
/// when the first predictions are written.
pub fn cache_dir() -> Option<PathBuf> {
    let absolute = |name: &str| std::env::var_os(name).map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(d) = absolute("EASEL_CACHE_DIR") {
        return Some(d);
    }
    if let Some(d) = absolute("XDG_CACHE_HOME") {
        return Some(d.join("easel"));
    }
    absolute("HOME").map(|h| h.join(".cache").join("easel"))
}

/// The cached predictions of a model (by hash) on data (by fingerprint) in `cache`.
pub fn cache_file(cache: &Path, model_hash: &str, data_hash: &str) -> PathBuf {
    cache.join(format!("predictions-{model_hash}-{data_hash}.csv"))
}

/// The same for one shard of the data.
pub fn cache_file_for(cache: &Path, model_hash: &str, data_hash: &str, shard: shard::Shard) -> PathBuf {
    if shard.is_whole() {
        cache_file(cache, model_hash, data_hash)
    } else {
        cache.join(format!("predictions-{model_hash}-{data_hash}-shard-{}-of-{}.csv", shard.index, shard.count))
    }
}

/// Evaluate, or read the predictions a previous run with the same model and data cached in
/// the folder `cache` (`None`: no cache). With a cache the predictions stream into it, so a
/// run stopped halfway resumes where it stopped.
pub fn evaluate_cached(
    model: &Classifier,
    source: &DataSource,
    set: &LabelledImages,
    batch_size: usize,
    cache: Option<&Path>,
    progress: Progress<'_>,
) -> Result<(Predictions, bool)> {
    let fingerprint = cache.and_then(|_| data_fingerprint(source).ok());
    let (Some(cache), Some(fingerprint)) = (cache, fingerprint) else {
        return Ok((evaluate(model, set, batch_size, progress)?, false));
    };
    let file = cache_file(cache, &model.hash, &fingerprint);
    let record = shard::RunRecord::new(model, &source.describe(), &fingerprint, set.len(), shard::Shard::WHOLE);
    let run = stream::Run { model, items: set, record, out: &file, batch_size, replace: true };
    let outcome = match stream::evaluate_to_csv(&run, progress) {
        Ok(o) => o,
        // a cache that cannot be written is no error
        Err(crate::Error::Write { .. }) => return Ok((evaluate(model, set, batch_size, progress)?, false)),
        Err(e) => return Err(e),
    };
    let p = Predictions::read_csv(&file, Some(&model.card.classes))?;
    Ok((p, outcome.evaluated == 0))
}
