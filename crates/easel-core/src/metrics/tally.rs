//! Metrics of a predictions CSV of any length in bounded memory: the file is read in chunks of
//! rows (each parsed by [`Predictions::parse_csv`], so every row is checked as `easel
//! metrics` checks it), counts are tallied, and labels that look wrong are found in a second
//! pass once the class thresholds are known. Gives the same [`MetricsReport`] as
//! [`super::report`] on the whole file.

use std::path::Path;

use super::{ClassMetrics, ConfusionMatrix, LabelIssue, MetricsReport, Predictions, class_metrics, issues_above, summary_from, top_k_hit, top_k_list};
use crate::error::{Error, Result};

/// Rows per chunk.
pub const CHUNK_ROWS: usize = 4096;

/// Counts over rows seen so far.
#[derive(Clone, Debug)]
pub struct Tally {
    pub classes: Vec<String>,
    pub samples: usize,
    pub confusion: ConfusionMatrix,
    /// (k, hits); `None` once a chunk came without probabilities.
    top_k_hits: Option<Vec<(usize, usize)>>,
    /// Per class: the sum of p(label) over its samples, and their count (label-issue thresholds).
    label_p_sum: Vec<f64>,
    label_n: Vec<usize>,
}

impl Tally {
    pub fn new(classes: &[String]) -> Tally {
        let k = classes.len();
        Tally {
            classes: classes.to_vec(),
            samples: 0,
            confusion: ConfusionMatrix { counts: vec![vec![0; k]; k] },
            top_k_hits: Some(top_k_list(k).into_iter().map(|t| (t, 0)).collect()),
            label_p_sum: vec![0.0; k],
            label_n: vec![0; k],
        }
    }

    /// Count a chunk of rows.
    pub fn add(&mut self, p: &Predictions) {
        self.samples += p.len();
        for (&l, &d) in p.labels.iter().zip(&p.preds) {
            self.confusion.counts[l][d] += 1;
        }
        match (&p.probs, &mut self.top_k_hits) {
            (Some(probs), Some(hits)) => {
                for (row, &l) in probs.iter().zip(&p.labels) {
                    for (t, h) in hits.iter_mut() {
                        *h += usize::from(top_k_hit(row, l, *t));
                    }
                    self.label_p_sum[l] += row[l] as f64;
                    self.label_n[l] += 1;
                }
            }
            _ => self.top_k_hits = None,
        }
    }

    /// The label-issue thresholds, where every row had probabilities.
    pub fn thresholds(&self) -> Option<Vec<f32>> {
        self.top_k_hits.as_ref().map(|_| super::curves::thresholds_from(&self.label_p_sum, &self.label_n))
    }

    /// The report of the rows counted (no costs), with `label_issues` as found.
    pub fn report(&self, mut label_issues: Vec<LabelIssue>) -> MetricsReport {
        let k = self.classes.len();
        let per_class: Vec<ClassMetrics> = class_metrics(&self.confusion, &self.classes);
        let summary = summary_from(self.samples, &self.confusion, &per_class, self.top_k_hits.as_deref());
        label_issues.sort_by(|a, b| a.normalized_margin.total_cmp(&b.normalized_margin));
        MetricsReport {
            classes: self.classes.clone(),
            summary,
            per_class,
            true_counts: (0..k).map(|i| self.confusion.counts[i].iter().sum()).collect(),
            predicted_counts: (0..k).map(|j| (0..k).map(|i| self.confusion.counts[i][j]).sum()).collect(),
            confusion: self.confusion.clone(),
            cost_argmax: None,
            cost_optimal: None,
            label_issues,
        }
    }
}

/// Read a predictions CSV in chunks of at most `chunk_rows` rows: `each(first_row, chunk)`.
/// Errors carry the line number in the whole file.
pub fn for_each_chunk(path: &Path, classes: Option<&[String]>, chunk_rows: usize, each: &mut dyn FnMut(usize, Predictions) -> Result<()>) -> Result<()> {
    let (file, _) = crate::fsutil::open_regular(path)?;
    let mut rdr = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(std::io::BufReader::new(file));
    let header = rdr.headers().map_err(|e| Error::Parse { path: path.to_path_buf(), line: 1, reason: e.to_string() })?.clone();
    let mut chunk: Vec<csv::StringRecord> = Vec::with_capacity(chunk_rows.min(CHUNK_ROWS));
    let mut first = 0usize;
    let mut flush = |first: usize, chunk: &mut Vec<csv::StringRecord>| -> Result<()> {
        let mut w = csv::WriterBuilder::new().flexible(true).from_writer(Vec::new());
        let written = std::iter::once(&header).chain(chunk.iter()).try_for_each(|r| w.write_record(r));
        let bytes = written.and_then(|_| w.into_inner().map_err(|e| e.into_error().into())).map_err(|e| Error::Compute(format!("CSV: {e}")))?;
        let text = String::from_utf8(bytes).map_err(|_| Error::Parse { path: path.to_path_buf(), line: first + 2, reason: "not UTF-8".into() })?;
        chunk.clear();
        // a chunk's line n is line `first + n` of the file (both count the header as line 1)
        let p = Predictions::parse_csv(&text, path, classes).map_err(|e| match e {
            Error::Parse { path, line, reason } => Error::Parse { path, line: line + first, reason },
            other => other,
        })?;
        each(first, p)
    };
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| Error::Parse { path: path.to_path_buf(), line: i + 2, reason: e.to_string() })?;
        chunk.push(rec);
        if chunk.len() >= chunk_rows.max(1) {
            flush(first, &mut chunk)?;
            first = i + 1;
        }
    }
    if !chunk.is_empty() || first == 0 {
        flush(first, &mut chunk)?;
    }
    Ok(())
}

/// The metrics of a predictions CSV in two passes over the file, in bounded memory.
pub fn report_of_csv(path: &Path, classes: Option<&[String]>) -> Result<MetricsReport> {
    let mut tally: Option<Tally> = None;
    for_each_chunk(path, classes, CHUNK_ROWS, &mut |_, p| {
        tally.get_or_insert_with(|| Tally::new(&p.classes)).add(&p);
        Ok(())
    })?;
    let tally = tally.ok_or_else(|| Error::Parse { path: path.to_path_buf(), line: 2, reason: "no predictions".into() })?;
    let mut issues = Vec::new();
    if let Some(thresholds) = tally.thresholds() {
        for_each_chunk(path, classes, CHUNK_ROWS, &mut |first, p| {
            issues.extend(issues_above(&p, &thresholds, first));
            Ok(())
        })?;
    }
    Ok(tally.report(issues))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_metrics_equal_the_whole_file_and_errors_keep_their_line() {
        let dir = std::env::temp_dir().join(format!("easel-tally-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut text = String::from("path,label,p0,p1,p2\n");
        let mut rng = crate::rng::Rng::new(3);
        for i in 0..1000 {
            let mut p: Vec<f64> = (0..3).map(|_| rng.next_f64() + 0.01).collect();
            let l = rng.below(3);
            p[l] += 0.8;
            let s: f64 = p.iter().sum();
            let p: Vec<String> = p.iter().map(|v| format!("{:.6}", v / s)).collect();
            text.push_str(&format!("img{i}.png,{},{}\n", rng.below(3).min(l + rng.below(2)), p.join(",")));
        }
        let path = dir.join("p.csv");
        std::fs::write(&path, &text).unwrap();
        let whole = crate::metrics::report(&Predictions::read_csv(&path, None).unwrap(), None);
        for chunk in [1, 7, 300, 5000] {
            let mut tally = Tally::new(&whole.classes);
            let mut issues = Vec::new();
            for_each_chunk(&path, None, chunk, &mut |_, p| {
                tally.add(&p);
                Ok(())
            })
            .unwrap();
            let t = tally.thresholds().unwrap();
            for_each_chunk(&path, None, chunk, &mut |first, p| {
                issues.extend(issues_above(&p, &t, first));
                Ok(())
            })
            .unwrap();
            let r = tally.report(issues);
            assert_eq!(serde_json::to_value(&r).unwrap(), serde_json::to_value(&whole).unwrap(), "chunks of {chunk}");
        }
        let bad = text.replacen("img500.png,", "img500.png,9,", 1);
        std::fs::write(&path, bad).unwrap();
        let e = report_of_csv(&path, None).unwrap_err().to_string();
        assert!(e.contains("p.csv:502"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
