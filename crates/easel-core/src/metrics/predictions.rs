//! Predictions for a labelled set: read and written as CSV (the `csv` crate), merged.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Predictions for a labelled set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Predictions {
    pub classes: Vec<String>,
    /// Where each sample came from.
    pub paths: Vec<String>,
    pub labels: Vec<usize>,
    /// Class probabilities per sample (`N x K`), where known.
    pub probs: Option<Vec<Vec<f32>>>,
    /// The predicted class per sample (argmax of `probs` where given).
    pub preds: Vec<usize>,
}

/// Tolerance for probabilities summing to 1 in a CSV.
pub const PROB_SUM_TOLERANCE: f64 = 1e-3;

impl Predictions {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn k(&self) -> usize {
        self.classes.len()
    }

    /// From probabilities: predictions are the argmax.
    pub fn from_probs(classes: Vec<String>, paths: Vec<String>, labels: Vec<usize>, probs: Vec<Vec<f32>>) -> Predictions {
        let preds = probs.iter().map(|p| argmax(p)).collect();
        Predictions { classes, paths, labels, probs: Some(probs), preds }
    }

    /// Read `path,label,p0,...,pK-1` or `path,label,pred` (a header line first). Labels and
    /// predictions are class indices. Every malformed line is an error with its number.
    pub fn read_csv(path: &Path, classes: Option<&[String]>) -> Result<Predictions> {
        let text = crate::fsutil::read_text(path)?;
        Self::parse_csv(&text, path, classes)
    }

    pub fn parse_csv(text: &str, path: &Path, classes: Option<&[String]>) -> Result<Predictions> {
        let err = |line: usize, reason: String| Error::Parse { path: path.to_path_buf(), line, reason };
        let mut rdr = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(text.as_bytes());
        let header: Vec<String> = rdr.headers().map_err(|e| err(1, e.to_string()))?.iter().map(|h| h.trim().to_string()).collect();
        if header.len() < 3 || header[0] != "path" || header[1] != "label" {
            return Err(err(1, "the header must be `path,label,p0,...,pK-1` or `path,label,pred`".into()));
        }
        if header.len() - 2 > crate::card::MAX_CLASSES {
            return Err(err(1, format!("{} probability columns: more than the {} classes easel handles", header.len() - 2, crate::card::MAX_CLASSES)));
        }
        let with_probs = !(header.len() == 3 && header[2] == "pred");
        let k = if with_probs {
            header.len() - 2
        } else {
            classes.map(<[String]>::len).ok_or_else(|| err(1, "a `path,label,pred` file needs the class names (a model card)".into()))?
        };
        if let Some(c) = classes
            && with_probs
            && c.len() != k
        {
            return Err(err(1, format!("{k} probability columns, but the model has {} classes", c.len())));
        }
        let class_names: Vec<String> = match classes {
            Some(c) => c.to_vec(),
            None => (0..k).map(|i| format!("class {i}")).collect(),
        };
        let (mut paths, mut labels, mut probs, mut preds) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (i, rec) in rdr.records().enumerate() {
            let rec = rec.map_err(|e| err(e.position().map_or(i + 2, |p| p.line() as usize), e.to_string()))?;
            let line = rec.position().map_or(i + 2, |p| p.line() as usize);
            if rec.len() != header.len() {
                return Err(err(line, format!("{} fields, the header has {}", rec.len(), header.len())));
            }
            let index = |s: &str, what: &str| -> Result<usize> {
                let v: usize = s.trim().parse().map_err(|_| err(line, format!("{what} '{s}' is not a class index")))?;
                if v >= k {
                    return Err(err(line, format!("{what} {v} is out of range (0..{})", k - 1)));
                }
                Ok(v)
            };
            paths.push(rec[0].to_string());
            labels.push(index(&rec[1], "label")?);
            if with_probs {
                let p: Vec<f32> = (2..rec.len())
                    .map(|c| rec[c].trim().parse::<f32>().map_err(|_| err(line, format!("'{}' is not a probability", &rec[c]))))
                    .collect::<Result<_>>()?;
                if p.iter().any(|v| !v.is_finite() || *v < 0.0 || *v > 1.0) {
                    return Err(err(line, "probabilities must lie in [0, 1]".into()));
                }
                let sum: f64 = p.iter().map(|&v| v as f64).sum();
                if (sum - 1.0).abs() > PROB_SUM_TOLERANCE {
                    return Err(err(line, format!("probabilities sum to {sum:.6}, not 1 (within {PROB_SUM_TOLERANCE})")));
                }
                preds.push(argmax(&p));
                probs.push(p);
            } else {
                preds.push(index(&rec[2], "prediction")?);
            }
        }
        if labels.is_empty() {
            return Err(err(2, "no predictions".into()));
        }
        Ok(Predictions { classes: class_names, paths, labels, probs: with_probs.then_some(probs), preds })
    }

    /// `path,label,p0,...` (or `path,label,pred`), written with the `csv` crate so a path with
    /// a comma, quote or line break reads back as it was.
    pub fn to_csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header = vec!["path".to_string(), "label".to_string()];
        match &self.probs {
            Some(_) => header.extend((0..self.k()).map(|i| format!("p{i}"))),
            None => header.push("pred".into()),
        }
        let mut rows = vec![header];
        for i in 0..self.len() {
            let mut row = vec![self.paths[i].clone(), self.labels[i].to_string()];
            match &self.probs {
                Some(probs) => row.extend(probs[i].iter().map(|v| format!("{v:.7}"))),
                None => row.push(self.preds[i].to_string()),
            }
            rows.push(row);
        }
        for row in rows {
            // writing into a Vec cannot fail
            let _ = w.write_record(&row);
        }
        String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
    }

    /// Merge groups of classes (e.g. Shirt with T-shirt/top): merged probabilities are sums,
    /// labels and predictions map to the merged class. Classes in no group stay as they are.
    pub fn merged(&self, groups: &[Vec<usize>]) -> Result<Predictions> {
        let k = self.k();
        let mut seen = vec![false; k];
        for g in groups {
            for &c in g {
                if c >= k {
                    return Err(Error::invalid(format!("merge: class {c} is out of range (0..{})", k - 1)));
                }
                if seen[c] {
                    return Err(Error::invalid(format!("merge: class {c} is in two groups")));
                }
                seen[c] = true;
            }
        }
        // new class list: a merged group sits where its first member was
        let mut new_of = vec![usize::MAX; k];
        let mut names = Vec::new();
        for c in 0..k {
            if new_of[c] != usize::MAX {
                continue;
            }
            let group = groups.iter().find(|g| g.contains(&c)).cloned().unwrap_or_else(|| vec![c]);
            let id = names.len();
            names.push(group.iter().map(|&m| self.classes[m].clone()).collect::<Vec<_>>().join("+"));
            for &m in &group {
                new_of[m] = id;
            }
        }
        let labels = self.labels.iter().map(|&l| new_of[l]).collect();
        Ok(match &self.probs {
            Some(probs) => {
                let merged: Vec<Vec<f32>> = probs
                    .iter()
                    .map(|p| {
                        let mut q = vec![0.0f32; names.len()];
                        for (c, v) in p.iter().enumerate() {
                            q[new_of[c]] += v;
                        }
                        q
                    })
                    .collect();
                Predictions::from_probs(names, self.paths.clone(), labels, merged)
            }
            None => Predictions { classes: names, paths: self.paths.clone(), labels, probs: None, preds: self.preds.iter().map(|&p| new_of[p]).collect() },
        })
    }

    /// The same predictions with other decisions (e.g. cost-optimal ones).
    pub fn with_preds(&self, preds: Vec<usize>) -> Predictions {
        Predictions { preds, ..self.clone() }
    }
}

/// Parse `0+6` into a group.
pub fn parse_merge(s: &str) -> Result<Vec<usize>> {
    let g: Vec<usize> = s
        .split('+')
        .map(|t| t.trim().parse::<usize>().map_err(|_| Error::invalid(format!("--merge '{s}': use class indices joined by +, e.g. 0+6"))))
        .collect::<Result<_>>()?;
    if g.len() < 2 {
        return Err(Error::invalid(format!("--merge '{s}': a group needs at least two classes")));
    }
    Ok(g)
}

pub fn argmax(p: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in p.iter().enumerate() {
        if *v > p[best] {
            best = i;
        }
    }
    best
}
