//! A report folder a domain expert can open without easel: the image, each map as PNG and NPY,
//! and `settings.json` with the same per-map record `easel explain` writes as `meta.json`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use easel_core::error::{Error, Result};
use easel_core::fsutil;
use easel_core::imaging::PreparedImage;
use easel_core::predict::ClassScore;
use serde::Serialize;

use crate::explain::{ExplainMeta, ExplainOutput, json_bytes};
use crate::picture::image_picture;

/// What a report holds.
#[derive(Clone, Debug)]
pub struct Report {
    pub image: PreparedImage,
    pub image_name: String,
    pub maps: Vec<ExplainOutput>,
}

#[derive(Serialize)]
struct ReportMeta<'a> {
    format: &'static str,
    image: &'a str,
    model: &'a str,
    model_hash: &'a str,
    top_k: &'a [ClassScore],
    /// One record per map, in the order of the files.
    maps: Vec<MapEntry<'a>>,
}

#[derive(Serialize)]
struct MapEntry<'a> {
    /// The files' stem (`saliency`, `saliency-2`, ...).
    files: String,
    #[serde(flatten)]
    meta: &'a ExplainMeta,
}

impl Report {
    /// Write the report into `dir`, or `dir-2`, ... if `dir` exists; returns the folder. The
    /// folder appears whole or not at all.
    pub fn save(&self, dir: &Path) -> Result<PathBuf> {
        let first = self.maps.first().ok_or_else(|| Error::invalid("compute a map before exporting a report"))?;
        let mut files = vec![("image.png".to_string(), image_picture(&self.image).png()?)];
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut entries = Vec::new();
        for m in &self.maps {
            let name = m.explanation.method.name();
            let n = seen.entry(name).or_insert(0);
            *n += 1;
            let stem = if *n == 1 { name.to_string() } else { format!("{name}-{n}") };
            files.extend(m.files(&stem)?.into_iter().filter(|(f, _)| f != "original.png"));
            entries.push(MapEntry { files: stem, meta: &m.meta });
        }
        let meta = ReportMeta {
            format: "easel-report/1",
            image: &self.image_name,
            model: &first.meta.model,
            model_hash: &first.meta.model_hash,
            top_k: &first.top,
            maps: entries,
        };
        files.push(("settings.json".into(), json_bytes(&meta)?));
        fsutil::write_folder_new(dir, &files)
    }
}
