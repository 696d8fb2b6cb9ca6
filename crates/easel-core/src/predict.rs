//! Top-k predictions for prepared images, batched, with progress and cancellation.

use serde::Serialize;

use crate::error::Result;
use crate::imaging::PreparedImage;
use crate::models::Classifier;
use crate::progress::Progress;

/// One ranked class.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ClassScore {
    pub class_index: usize,
    pub class: String,
    pub probability: f32,
    pub logit: f32,
}

/// Softmax of logits, computed stably on the host.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = logits.iter().map(|&l| ((l - max) as f64).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| (e / sum) as f32).collect()
}

/// Indices of the `k` largest values, largest first (ties: lower index first).
pub fn top_indices(values: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// The `k` best classes of one logit vector.
pub fn top_k(logits: &[f32], k: usize, classes: &[String]) -> Vec<ClassScore> {
    let probs = softmax(logits);
    top_indices(&probs, k)
        .into_iter()
        .map(|i| ClassScore { class_index: i, class: classes.get(i).cloned().unwrap_or_else(|| format!("class {i}")), probability: probs[i], logit: logits[i] })
        .collect()
}

/// Logits for many images, `batch_size` at a time.
pub fn logits_batched(model: &Classifier, images: &[PreparedImage], batch_size: usize, progress: Progress<'_>) -> Result<Vec<Vec<f32>>> {
    let batch_size = batch_size.max(1);
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(batch_size) {
        progress.check()?;
        let refs: Vec<&PreparedImage> = chunk.iter().collect();
        out.extend(model.logits(model.input_batch(&refs)?)?);
        progress.report(out.len(), images.len());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let p = softmax(&[1.0, 3.0, 2.0, 1000.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(top_indices(&[1.0, 3.0, 2.0, 1000.0], 2), vec![3, 1]);
        assert!(p[3] > 0.999);
    }
}
