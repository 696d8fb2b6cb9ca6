//! The model card: the JSON beside a weights file that says how to read it (architecture,
//! input size and channels, resizing, normalisation, class names), so weights never travel
//! without knowing what they are.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::models::Architecture;

/// The `format` string every card carries.
pub const CARD_FORMAT: &str = "easel-model-card/1";

/// Most classes a card may name: confusion and cost matrices are K x K, so K is bounded
/// before anything is allocated.
pub const MAX_CLASSES: usize = 4096;

/// How an image of any size becomes the model's input size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ResizeMode {
    /// Scale to exactly `width` x `height` (aspect ratio not kept).
    #[default]
    Stretch,
    /// Scale the shorter side to `side / crop_fraction`, then cut the centre (ImageNet style).
    CenterCrop,
}

/// What the model expects as input and how pixels become numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    #[serde(default)]
    pub resize: ResizeMode,
    /// For `center_crop`: the fraction of the scaled image kept (0.875 for ImageNet).
    #[serde(default = "default_crop")]
    pub crop_fraction: f32,
    /// `x = (pixel * scale - mean[c]) / std[c]` with `pixel` in 0..=255.
    pub scale: f32,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

fn default_crop() -> f32 {
    0.875
}

impl InputSpec {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.channels != 1 && self.channels != 3 {
            return Err(format!("input.channels is {}, expected 1 or 3", self.channels));
        }
        if self.height == 0 || self.width == 0 || self.height > 4096 || self.width > 4096 {
            return Err(format!("input size {}x{} is out of range", self.width, self.height));
        }
        if self.mean.len() != self.channels || self.std.len() != self.channels {
            return Err(format!("input.mean and input.std need {} values each, found {} and {}", self.channels, self.mean.len(), self.std.len()));
        }
        if self.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(format!("input.std {:?} must be positive numbers", self.std));
        }
        if self.mean.iter().any(|m| !m.is_finite()) {
            return Err(format!("input.mean {:?} must be finite numbers", self.mean));
        }
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(format!("input.scale {} must be a positive number", self.scale));
        }
        if !(0.1..=1.0).contains(&self.crop_fraction) {
            return Err(format!("input.crop_fraction {} is not in 0.1..=1", self.crop_fraction));
        }
        Ok(())
    }
}

/// A model card as stored on disk.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelCard {
    pub format: String,
    pub name: String,
    pub architecture: Architecture,
    /// The weights file, relative to the card's folder.
    pub weights: String,
    pub input: InputSpec,
    pub classes: Vec<String>,
    /// Where the weights come from and under which licence.
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub license: String,
    /// Figures measured when the model was made (e.g. test accuracy), for display only.
    #[serde(default)]
    pub metrics: serde_json::Value,
}

impl ModelCard {
    /// Read a card; `path` may also be a weights file with a card beside it
    /// (`model.safetensors` -> `model.json`).
    pub fn load(path: &Path) -> Result<(ModelCard, PathBuf)> {
        let card_path = card_path_for(path)?;
        let text = crate::fsutil::read_text(&card_path)?;
        if text.trim().is_empty() {
            return Err(Error::EmptyFile { path: card_path });
        }
        let card: ModelCard = serde_json::from_str(&text).map_err(|e| Error::Card { path: card_path.clone(), reason: format!("not a model card ({e})") })?;
        card.validate().map_err(|reason| Error::Card { path: card_path.clone(), reason })?;
        Ok((card, card_path))
    }

    /// Everything a card must satisfy before a network is built from it: its format, its
    /// input, and a class count within [`MAX_CLASSES`].
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.format != CARD_FORMAT {
            return Err(format!("format is '{}', expected '{CARD_FORMAT}'", self.format));
        }
        self.input.validate()?;
        if self.classes.is_empty() {
            return Err("the card names no classes".into());
        }
        let k = self.classes.len().max(self.architecture.num_classes());
        if k > MAX_CLASSES {
            return Err(format!("{k} classes is more than the {MAX_CLASSES} easel handles"));
        }
        Ok(())
    }

    /// The card as pretty JSON bytes.
    pub fn to_json_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self).map_err(|e| Error::Compute(e.to_string()))
    }

    /// The weights file's path.
    pub fn weights_path(&self, card_path: &Path) -> PathBuf {
        card_path.parent().unwrap_or(Path::new(".")).join(&self.weights)
    }

    /// The weights file's path, which must lie inside the card's folder (after following
    /// links) unless `allow_outside`: a card from elsewhere cannot make easel read any file.
    pub fn weights_path_confined(&self, card_path: &Path, allow_outside: bool) -> Result<PathBuf> {
        let path = self.weights_path(card_path);
        if allow_outside {
            return Ok(path);
        }
        let dir = card_path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let outside = || Error::Card {
            path: card_path.to_path_buf(),
            reason: format!("its weights '{}' lie outside the card's folder; pass --allow-outside to read them anyway", self.weights),
        };
        if Path::new(&self.weights).is_absolute() || Path::new(&self.weights).components().any(|c| matches!(c, std::path::Component::ParentDir)) {
            return Err(outside());
        }
        let real_dir = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
        let real = path.canonicalize().map_err(|e| Error::io(&path, e))?;
        if !real.starts_with(&real_dir) {
            return Err(outside());
        }
        Ok(path)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::Compute(e.to_string()))?;
        crate::fsutil::write_atomic(path, text.as_bytes())
    }
}

fn card_path_for(path: &Path) -> Result<PathBuf> {
    if !path.exists() {
        return Err(Error::io(path, std::io::Error::from(std::io::ErrorKind::NotFound)));
    }
    if path.is_dir() {
        for name in ["card.json", "model.json"] {
            let p = path.join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
        return Err(Error::Card { path: path.to_path_buf(), reason: "the folder holds no card.json or model.json".into() });
    }
    let is_json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        return Ok(path.to_path_buf());
    }
    let beside = path.with_extension("json");
    if beside.is_file() {
        return Ok(beside);
    }
    Err(Error::Card {
        path: path.to_path_buf(),
        reason: format!("a weights file needs a model card beside it ({}) saying its architecture, input and classes", beside.display()),
    })
}
