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

    /// The same images with classes merged (`groups` of class indices; a merged class sits where
    /// its first member was, named by its members joined with `+`), as
    /// [`crate::metrics::Predictions::merged`] numbers them.
    pub fn merged(&self, groups: &[Vec<usize>]) -> Result<LabelledImages> {
        let k = self.classes.len();
        if let Some(&c) = groups.iter().flatten().find(|&&c| c >= k) {
            return Err(Error::invalid(format!("merge: class {c} is out of range (0..{})", k.saturating_sub(1))));
        }
        let (new_k, new_of) = crate::metrics::merge_map(k, groups);
        let mut names = vec![String::new(); new_k];
        for c in 0..k {
            if names[new_of[c]].is_empty() {
                let group = groups.iter().find(|g| g.contains(&c)).cloned().unwrap_or_else(|| vec![c]);
                names[new_of[c]] = group.iter().map(|&m| self.classes[m].as_str()).collect::<Vec<_>>().join("+");
            }
        }
        Ok(LabelledImages { labels: self.labels.iter().map(|&l| new_of[l]).collect(), classes: names, ..self.clone() })
    }

    /// The images of `classes` (in that order), relabelled 0..len, with those classes' names.
    pub fn of_classes(&self, classes: &[usize]) -> LabelledImages {
        let idx: Vec<usize> = (0..self.len()).filter(|&i| classes.contains(&self.labels[i])).collect();
        let mut sub = self.subset(&idx);
        sub.labels = sub.labels.iter().map(|l| classes.iter().position(|c| c == l).unwrap_or(0)).collect();
        sub.classes = classes.iter().map(|&c| self.classes.get(c).cloned().unwrap_or_default()).collect();
        sub
    }

    /// The first `n` images (all of them if there are fewer).
    pub fn first(&self, n: usize) -> LabelledImages {
        let idx: Vec<usize> = (0..n.min(self.len())).collect();
        self.subset(&idx)
    }

    /// The same images brought to another model's input (size and colour); a copy when they
    /// already fit.
    pub fn prepared_for(&self, spec: &InputSpec) -> LabelledImages {
        if (self.width, self.height, self.channels) == (spec.width, spec.height, spec.channels) {
            return self.clone();
        }
        let mut pixels = Vec::with_capacity(self.len() * spec.width * spec.height * spec.channels);
        for i in 0..self.len() {
            pixels.extend(self.image(i).prepared_for(spec).pixels);
        }
        LabelledImages { width: spec.width, height: spec.height, channels: spec.channels, pixels, ..self.clone() }
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

impl DataSource {
    /// The path a user named, for records and messages.
    pub fn describe(&self) -> String {
        match self {
            DataSource::Idx { images, .. } => images.display().to_string(),
            DataSource::Folder(dir) => dir.display().to_string(),
        }
    }
}

/// The samples of a source, ready to stream: an IDX set is read (it is one file), a folder
/// is listed and its images are decoded batch by batch as they are evaluated.
pub fn open_items(source: &DataSource, spec: &InputSpec, classes: &[String]) -> Result<Box<dyn LabelledItems>> {
    Ok(match source {
        DataSource::Idx { .. } => Box::new(load_source(source, spec, classes)?),
        DataSource::Folder(dir) => Box::new(FolderItems::list(dir, classes)?),
    })
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
            // a model of some of Fashion-MNIST's classes (e.g. the pre-training lab's target
            // task) sees those classes' images, relabelled
            let fashion = fashion_classes();
            let some: Option<Vec<usize>> =
                (classes.len() < fashion.len()).then(|| classes.iter().map(|c| fashion.iter().position(|f| f == c)).collect::<Option<Vec<_>>>()).flatten();
            let set = match some {
                Some(which) => idx::load_idx_pair(images, labels, &fashion)?.of_classes(&which),
                None => idx::load_idx_pair(images, labels, classes)?,
            };
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
    load_files(&folder_files(dir, classes)?, spec, classes)
}

/// Image files with their labels (e.g. the rows of a predictions CSV), prepared for `spec`.
pub fn load_files(files: &[(PathBuf, usize)], spec: &InputSpec, classes: &[String]) -> Result<LabelledImages> {
    if let Some((f, l)) = files.iter().find(|(_, l)| *l >= classes.len()) {
        return Err(Error::invalid(format!("{}: label {l} but the model has {} classes", f.display(), classes.len())));
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
    for (f, label) in files {
        let img = imaging::load_prepared(f, spec)?;
        set.pixels.extend_from_slice(&img.pixels);
        set.labels.push(*label);
        set.sources.push(f.display().to_string());
    }
    Ok(set)
}

/// The image files of a class-per-folder tree with their labels, in the order every easel
/// run uses: class folders sorted, then files sorted. Nothing is decoded.
pub fn folder_files(dir: &Path, classes: &[String]) -> Result<Vec<(PathBuf, usize)>> {
    Ok(class_folders(dir, classes)?.into_iter().flat_map(|(_, label, files)| files.into_iter().map(move |f| (f, label))).collect())
}

/// (class folder, label, its image files), sorted.
fn class_folders(dir: &Path, classes: &[String]) -> Result<Vec<(PathBuf, usize, Vec<PathBuf>)>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut class_dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
    class_dirs.sort();
    if class_dirs.is_empty() {
        return Err(Error::NoImages { path: dir.to_path_buf(), exts: "one sub-folder per class".into() });
    }
    let mut out = Vec::new();
    for cd in class_dirs {
        let name = cd.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let label = folder_label(&name, classes)
            .ok_or_else(|| Error::invalid(format!("{}: folder '{name}' matches none of the model's {} classes", dir.display(), classes.len())))?;
        let files = match imaging::list_images(std::slice::from_ref(&cd)) {
            Ok(f) => f,
            Err(Error::NoImages { .. }) => continue,
            Err(e) => return Err(e),
        };
        out.push((cd, label, files));
    }
    if out.is_empty() {
        return Err(Error::NoImages { path: dir.to_path_buf(), exts: imaging::IMAGE_EXTENSIONS.join(", ") });
    }
    Ok(out)
}

/// The samples of a labelled set in its own order (IDX: image index; folder: sorted class
/// folder, then sorted file), with their input made on demand: what evaluation streams over.
pub trait LabelledItems: Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Where item `i` came from (the `path` column of a predictions CSV).
    fn source(&self, i: usize) -> String;
    fn label(&self, i: usize) -> usize;
    fn classes(&self) -> &[String];
    /// Append item `i`'s normalised input (`[C, H, W]` flattened) to `out`.
    fn normalised_into(&self, i: usize, spec: &InputSpec, out: &mut Vec<f32>) -> Result<()>;
}

impl LabelledItems for LabelledImages {
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn source(&self, i: usize) -> String {
        self.sources[i].clone()
    }
    fn label(&self, i: usize) -> usize {
        self.labels[i]
    }
    fn classes(&self) -> &[String] {
        &self.classes
    }
    fn normalised_into(&self, i: usize, spec: &InputSpec, out: &mut Vec<f32>) -> Result<()> {
        out.extend(imaging::normalise(&self.image(i), spec));
        Ok(())
    }
}

/// A class-per-folder tree listed but not decoded: each image is read when its batch comes.
/// File names are kept in one buffer (a few bytes an image), so the listing of a large folder
/// stays small.
#[derive(Clone, Debug)]
pub struct FolderItems {
    /// Class folders with their label.
    dirs: Vec<(PathBuf, usize)>,
    /// Per item: its folder and the end of its name in `names` (it starts where the previous
    /// one ended).
    items: Vec<(u32, u32)>,
    names: String,
    /// Items whose file name is not UTF-8, by index.
    odd: std::collections::HashMap<usize, PathBuf>,
    pub classes: Vec<String>,
}

impl FolderItems {
    pub fn list(dir: &Path, classes: &[String]) -> Result<FolderItems> {
        let mut out = FolderItems { dirs: Vec::new(), items: Vec::new(), names: String::new(), odd: Default::default(), classes: classes.to_vec() };
        for (class_dir, label, files) in class_folders(dir, classes)? {
            let d = out.dirs.len() as u32;
            out.dirs.push((class_dir, label));
            for f in files {
                match f.file_name().and_then(|n| n.to_str()) {
                    Some(n) => out.names.push_str(n),
                    None => {
                        out.odd.insert(out.items.len(), f.clone());
                    }
                }
                let end = u32::try_from(out.names.len()).map_err(|_| Error::invalid(format!("{}: too many files to list", dir.display())))?;
                out.items.push((d, end));
            }
        }
        Ok(out)
    }

    /// Item `i`'s file.
    pub fn path(&self, i: usize) -> PathBuf {
        if let Some(p) = self.odd.get(&i) {
            return p.clone();
        }
        let (d, end) = self.items[i];
        let start = if i == 0 { 0 } else { self.items[i - 1].1 };
        self.dirs[d as usize].0.join(&self.names[start as usize..end as usize])
    }
}

impl LabelledItems for FolderItems {
    fn len(&self) -> usize {
        self.items.len()
    }
    fn source(&self, i: usize) -> String {
        self.path(i).display().to_string()
    }
    fn label(&self, i: usize) -> usize {
        self.dirs[self.items[i].0 as usize].1
    }
    fn classes(&self) -> &[String] {
        &self.classes
    }
    fn normalised_into(&self, i: usize, spec: &InputSpec, out: &mut Vec<f32>) -> Result<()> {
        out.extend(imaging::normalise(&imaging::load_prepared(&self.path(i), spec)?, spec));
        Ok(())
    }
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
