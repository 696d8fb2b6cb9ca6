//! Labelled image sets: IDX files (Fashion-MNIST, MNIST) and folders with one sub-folder per
//! class, held in memory as 8-bit pixels at one size.

pub mod idx;

use std::path::{Path, PathBuf};

use crate::card::InputSpec;
use crate::error::{Error, Result};
use crate::imaging::{self, PreparedImage};

/// Fashion-MNIST's ten classes, in label order.
pub const FASHION_MNIST_CLASSES: [&str; 10] = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/// Fashion-MNIST's pixel statistics (training set, 0..1 scale): the normalisation of the
/// models easel trains on it.
pub const FASHION_MEAN: f32 = 0.2860;
pub const FASHION_STD: f32 = 0.3530;

/// The input of a model trained on Fashion-MNIST: 28x28 grey, normalised with its statistics.
pub fn fashion_input() -> InputSpec {
    InputSpec {
        channels: 1,
        height: 28,
        width: 28,
        resize: crate::card::ResizeMode::Stretch,
        crop_fraction: 0.875,
        scale: 1.0 / 255.0,
        mean: vec![FASHION_MEAN],
        std: vec![FASHION_STD],
    }
}

pub fn fashion_classes() -> Vec<String> {
    FASHION_MNIST_CLASSES.iter().map(|s| s.to_string()).collect()
}

/// Where Debian's `dataset-fashion-mnist` package installs the IDX files.
pub const SYSTEM_FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

/// Images of one size with integer labels.
#[derive(Clone, Debug)]
pub struct LabelledImages {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    /// `N * H * W * C` bytes, image after image, channels interleaved.
    pub pixels: Vec<u8>,
    pub labels: Vec<usize>,
    pub classes: Vec<String>,
    /// Where each image came from (a file path, or `file.idx#i`).
    pub sources: Vec<String>,
}

impl LabelledImages {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image_len(&self) -> usize {
        self.width * self.height * self.channels
    }

    pub fn image(&self, i: usize) -> PreparedImage {
        let n = self.image_len();
        PreparedImage { width: self.width, height: self.height, channels: self.channels, pixels: self.pixels[i * n..(i + 1) * n].to_vec() }
    }

    /// Count of each label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.classes.len()];
        for &l in &self.labels {
            c[l] += 1;
        }
        c
    }

    /// A new set holding the given indices, in that order.
    pub fn subset(&self, indices: &[usize]) -> LabelledImages {
        let n = self.image_len();
        let mut pixels = Vec::with_capacity(indices.len() * n);
        for &i in indices {
            pixels.extend_from_slice(&self.pixels[i * n..(i + 1) * n]);
        }
        LabelledImages {
            width: self.width,
            height: self.height,
            channels: self.channels,
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            classes: self.classes.clone(),
            sources: indices.iter().map(|&i| self.sources[i].clone()).collect(),
        }
    }

    /// Normalised input for the images `indices`, as the card says.
    ///
    /// # Shapes
    /// - returns `[len(indices), C, H, W]` flattened
    pub fn normalised_batch(&self, indices: &[usize], spec: &InputSpec) -> Vec<f32> {
        let mut out = Vec::with_capacity(indices.len() * self.image_len());
        for &i in indices {
            out.extend(imaging::normalise(&self.image(i), spec));
        }
        out
    }
}

/// A data source a user names on the command line or in the GUI.
#[derive(Clone, Debug)]
pub enum DataSource {
    /// An IDX image file (its labels file is found beside it) or a folder holding one split.
    Idx { images: PathBuf, labels: PathBuf },
    /// A folder with one sub-folder per class.
    Folder(PathBuf),
}

/// Work out what `path` is: an IDX images file, a folder of IDX files (`split` picks
/// `train` or `t10k`), or a class-per-folder tree.
pub fn resolve_source(path: &Path, split: &str) -> Result<DataSource> {
    if path.is_file() {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.contains("images-idx3") {
            let labels = path.with_file_name(name.replace("images-idx3", "labels-idx1"));
            return Ok(DataSource::Idx { images: path.to_path_buf(), labels });
        }
        return Err(Error::invalid(format!("{}: expected an IDX images file (*-images-idx3-ubyte[.gz]) or a folder", path.display())));
    }
    if path.is_dir() {
        for ext in ["-images-idx3-ubyte.gz", "-images-idx3-ubyte"] {
            let images = path.join(format!("{split}{ext}"));
            if images.is_file() {
                let labels = path.join(format!("{split}{}", ext.replace("images-idx3", "labels-idx1")));
                return Ok(DataSource::Idx { images, labels });
            }
        }
        return Ok(DataSource::Folder(path.to_path_buf()));
    }
    Err(Error::io(path, std::io::Error::from(std::io::ErrorKind::NotFound)))
}

/// Load a data source. Folder images are converted to `spec`'s size and channels; IDX images
/// must already have them.
pub fn load_source(source: &DataSource, spec: &InputSpec, classes: &[String]) -> Result<LabelledImages> {
    match source {
        DataSource::Idx { images, labels } => {
            let set = idx::load_idx_pair(images, labels, classes)?;
            if set.width != spec.width || set.height != spec.height || set.channels != spec.channels {
                return Err(Error::invalid(format!(
                    "{}: images are {}x{}x{}, the model takes {}x{}x{}",
                    images.display(),
                    set.channels,
                    set.height,
                    set.width,
                    spec.channels,
                    spec.height,
                    spec.width
                )));
            }
            Ok(set)
        }
        DataSource::Folder(dir) => load_image_folder(dir, spec, classes),
    }
}

/// A torchvision `ImageFolder` tree: `dir/<class name>/*.png`. Class folders are matched to
/// the model's class names (exactly, or as the class index); unknown folders are an error.
pub fn load_image_folder(dir: &Path, spec: &InputSpec, classes: &[String]) -> Result<LabelledImages> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut class_dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
    class_dirs.sort();
    if class_dirs.is_empty() {
        return Err(Error::NoImages { path: dir.to_path_buf(), exts: "one sub-folder per class".into() });
    }
    let mut set = LabelledImages {
        width: spec.width,
        height: spec.height,
        channels: spec.channels,
        pixels: Vec::new(),
        labels: Vec::new(),
        classes: classes.to_vec(),
        sources: Vec::new(),
    };
    for cd in class_dirs {
        let name = cd.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let label = folder_label(&name, classes)
            .ok_or_else(|| Error::invalid(format!("{}: folder '{name}' matches none of the model's {} classes", dir.display(), classes.len())))?;
        let files = match imaging::list_images(std::slice::from_ref(&cd)) {
            Ok(f) => f,
            Err(Error::NoImages { .. }) => continue,
            Err(e) => return Err(e),
        };
        for f in files {
            let img = imaging::load_prepared(&f, spec)?;
            set.pixels.extend_from_slice(&img.pixels);
            set.labels.push(label);
            set.sources.push(f.display().to_string());
        }
    }
    if set.is_empty() {
        return Err(Error::NoImages { path: dir.to_path_buf(), exts: imaging::IMAGE_EXTENSIONS.join(", ") });
    }
    Ok(set)
}

/// The classes of a class-per-folder tree, as torchvision's `ImageFolder` orders them: the
/// sub-folder names, sorted (hidden folders left out).
pub fn folder_classes(dir: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(Error::NoImages { path: dir.to_path_buf(), exts: "one sub-folder per class".into() });
    }
    Ok(names)
}

/// A class folder's label: its name equals a class name (case-insensitive, `/` may be written
/// `_` or `-`), or it is the class index.
pub fn folder_label(name: &str, classes: &[String]) -> Option<usize> {
    let norm = |s: &str| s.to_lowercase().replace(['/', '-', ' '], "_");
    classes.iter().position(|c| norm(c) == norm(name)).or_else(|| name.parse::<usize>().ok().filter(|&i| i < classes.len()))
}
