//! Running a model over a labelled set in batches (progress, cancel), with a cache keyed by
//! the model's hash and the data's fingerprint.

use std::path::{Path, PathBuf};

use sha2::Digest;

use crate::data::{DataSource, LabelledImages};
use crate::error::Result;
use crate::metrics::Predictions;
use crate::models::Classifier;
use crate::predict::softmax;
use crate::progress::Progress;

/// Class probabilities for every image of `set`.
pub fn evaluate(model: &Classifier, set: &LabelledImages, batch_size: usize, progress: Progress<'_>) -> Result<Predictions> {
    let spec = &model.card.input;
    let idx: Vec<usize> = (0..set.len()).collect();
    let mut probs = Vec::with_capacity(set.len());
    for chunk in idx.chunks(batch_size.max(1)) {
        progress.check()?;
        let x = set.normalised_batch(chunk, spec);
        for l in model.logits(model.tensor_from(x, chunk.len()))? {
            probs.push(softmax(&l));
        }
        progress.report(probs.len(), set.len());
    }
    Ok(Predictions::from_probs(model.card.classes.clone(), set.sources.clone(), set.labels.clone(), probs))
}

/// What identifies a data source's content: file hashes for IDX files, names, sizes and
/// modification times for a folder tree.
pub fn data_fingerprint(source: &DataSource) -> Result<String> {
    let mut h = sha2::Sha256::new();
    match source {
        DataSource::Idx { images, labels } => {
            for p in [images, labels] {
                h.update(std::fs::read(p).map_err(|e| crate::Error::io(p, e))?);
            }
        }
        DataSource::Folder(dir) => {
            let mut files = Vec::new();
            walk(dir, &mut files);
            files.sort();
            for f in files {
                let meta = std::fs::metadata(&f).ok();
                h.update(f.to_string_lossy().as_bytes());
                h.update(meta.as_ref().map(|m| m.len()).unwrap_or(0).to_le_bytes());
                let mtime = meta.and_then(|m| m.modified().ok()).and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_nanos()).unwrap_or(0);
                h.update(mtime.to_le_bytes());
            }
        }
    }
    Ok(crate::weights::hex(&h.finalize())[..16].to_string())
}

/// Every file under `dir`; symbolic links to folders are not followed (a link loop would never
/// end).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => walk(&p, out),
                Ok(t) if t.is_symlink() && p.is_dir() => {}
                _ => out.push(p),
            }
        }
    }
}

/// Where cached predictions live: `$EASEL_CACHE_DIR`, else `$XDG_CACHE_HOME/easel`, else
/// `~/.cache/easel`.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("EASEL_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("easel"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("easel"))
}

/// The cached predictions of a model (by hash) on data (by fingerprint) in `cache`.
pub fn cache_file(cache: &Path, model_hash: &str, data_hash: &str) -> PathBuf {
    cache.join(format!("predictions-{model_hash}-{data_hash}.csv"))
}

/// Evaluate, or read the predictions a previous run with the same model and data cached in
/// the folder `cache` (`None`: no cache).
pub fn evaluate_cached(
    model: &Classifier,
    source: &DataSource,
    set: &LabelledImages,
    batch_size: usize,
    cache: Option<&Path>,
    progress: Progress<'_>,
) -> Result<(Predictions, bool)> {
    let file = cache.and_then(|c| data_fingerprint(source).ok().map(|d| cache_file(c, &model.hash, &d)));
    if let Some(f) = &file
        && let Ok(p) = Predictions::read_csv(f, Some(&model.card.classes))
        && p.len() == set.len()
    {
        return Ok((p, true));
    }
    let p = evaluate(model, set, batch_size, progress)?;
    if let Some(f) = &file {
        // a cache that cannot be written is no error
        let _ = crate::fsutil::write_atomic(f, p.to_csv().as_bytes());
    }
    Ok((p, false))
}
