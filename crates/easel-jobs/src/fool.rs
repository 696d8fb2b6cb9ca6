//! Fooling images as a job: one class ([`run`]) or every class ([`run_all`], with a gallery
//! picture: "the model is 99 % sure each of these is a ..."). `easel fool` and the app's
//! Adversarial view ("Fool it") both end here.

use std::path::{Path, PathBuf};

use easel_core::error::Result;
use easel_core::explain::fool::{self, FoolParams, FoolResult, FoolStart, FoolStep};
use easel_core::models::Classifier;
use easel_core::progress::Progress;
use easel_core::render;
use easel_core::{fsutil, npy};
use image::{Rgba, RgbaImage};
use serde::Serialize;

use crate::explain::json_bytes;
use crate::picture::{PICTURE_MIN_PX, Picture};

/// What to fool the model into.
#[derive(Clone, Debug)]
pub struct FoolRequest {
    pub start: FoolStart,
    pub params: FoolParams,
}

/// `meta.json`.
#[derive(Clone, Debug, Serialize)]
pub struct FoolMeta {
    pub target: usize,
    pub target_class: String,
    pub start: String,
    pub start_probability: f32,
    /// The target's probability for the saved image.
    pub target_probability: f32,
    pub top1: usize,
    pub top1_class: String,
    pub top1_probability: f32,
    pub steps: usize,
    pub reached: bool,
    pub seconds: f64,
    pub settings: FoolParams,
    pub model: String,
    pub model_hash: String,
}

#[derive(Clone, Debug)]
pub struct FoolOutput {
    pub result: FoolResult,
    /// The image, enlarged for the screen.
    pub picture: Picture,
    pub meta: FoolMeta,
}

fn picture_of(result: &FoolResult) -> Picture {
    let img = &result.image;
    Picture::from_rgba(render::image_picture(img, render::upscale_for(img.height.max(img.width), PICTURE_MIN_PX)))
}

/// Search one fooling image; `on_step` sees each step and the current pixels.
pub fn run(model: &Classifier, req: &FoolRequest, progress: Progress<'_>, on_step: &mut dyn FnMut(&FoolStep, &[f32])) -> Result<FoolOutput> {
    let result = fool::fool(model, &req.start, &req.params, progress, on_step)?;
    let p = &req.params;
    let meta = FoolMeta {
        target: p.target,
        target_class: model.class_name(p.target).to_string(),
        start: req.start.name().to_string(),
        start_probability: result.start_probability,
        target_probability: result.target_probability,
        top1: result.top1,
        top1_class: model.class_name(result.top1).to_string(),
        top1_probability: result.top1_probability,
        steps: result.steps,
        reached: result.reached,
        seconds: result.seconds,
        settings: p.clone(),
        model: model.card.name.clone(),
        model_hash: model.hash.clone(),
    };
    Ok(FoolOutput { picture: picture_of(&result), result, meta })
}

impl FoolOutput {
    /// `fooled.png`, `fooled.npy` (pixels in [0, 1], `[C, H, W]`), `trajectory.csv`, `meta.json`.
    pub fn files(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let img = &self.result.image;
        let mut csv = String::from("step,target_probability,top1\n");
        for s in &self.result.trajectory {
            csv.push_str(&format!("{},{:.6},{}\n", s.step, s.target_probability, s.top1));
        }
        Ok(vec![
            ("fooled.png".into(), self.picture.png()?),
            ("fooled.npy".into(), npy::npy_bytes(&[img.channels, img.height, img.width], &self.result.pixels)),
            ("trajectory.csv".into(), csv.into_bytes()),
            ("meta.json".into(), json_bytes(&self.meta)?),
        ])
    }

    /// Write the files into `dir`; nothing is replaced without `force`.
    pub fn save(&self, dir: &Path, force: bool) -> Result<Vec<PathBuf>> {
        fsutil::write_files(dir, &self.files()?, force)
    }
}

/// One fooling image per class, and their gallery.
#[derive(Clone, Debug)]
pub struct GalleryOutput {
    pub items: Vec<FoolOutput>,
    pub picture: Picture,
}

#[derive(Serialize)]
struct GallerySummary<'a> {
    classes: Vec<&'a FoolMeta>,
    reached: usize,
    total: usize,
}

/// A fooling image for each of `classes`, one after another; `on_done(i, n, output)` after
/// each.
pub fn run_all(
    model: &Classifier,
    start: &FoolStart,
    params: &FoolParams,
    classes: &[usize],
    progress: Progress<'_>,
    on_done: &mut dyn FnMut(usize, usize, &FoolOutput),
) -> Result<GalleryOutput> {
    let mut items = Vec::with_capacity(classes.len());
    for (i, &k) in classes.iter().enumerate() {
        progress.check()?;
        let req = FoolRequest { start: start.clone(), params: FoolParams { target: k, ..params.clone() } };
        let out = run(model, &req, progress.without_report(), &mut |_, _| {})?;
        on_done(i + 1, classes.len(), &out);
        progress.report(i + 1, classes.len());
        items.push(out);
    }
    let picture = gallery_picture(&items);
    Ok(GalleryOutput { items, picture })
}

/// Tiles of the fooling images, each captioned with its class and the model's confidence.
pub fn gallery_picture(items: &[FoolOutput]) -> Picture {
    const TILE: u32 = 128;
    const CAPTION: u32 = 30;
    const PAD: u32 = 6;
    let columns = (items.len() as f64).sqrt().ceil().max(1.0) as u32;
    let rows = (items.len() as u32).div_ceil(columns).max(1);
    let (w, h) = (columns * (TILE + PAD) + PAD, rows * (TILE + CAPTION + PAD) + PAD);
    let mut out = RgbaImage::from_pixel(w, h, Rgba([255, 255, 255, 255]));
    for (i, it) in items.iter().enumerate() {
        let (cx, cy) = ((i as u32 % columns) * (TILE + PAD) + PAD, (i as u32 / columns) * (TILE + CAPTION + PAD) + PAD);
        let img = &it.result.image;
        let tile = image::imageops::resize(&img.to_rgba(), TILE, TILE, image::imageops::FilterType::Nearest);
        image::imageops::overlay(&mut out, &tile, cx as i64, cy as i64);
        let max_chars = (TILE / 8) as usize;
        let name: String = it.meta.target_class.chars().take(max_chars).collect();
        render::draw_text(&mut out, cx, cy + TILE + 4, &name, 2);
        let p = format!("{:.1}%", it.meta.target_probability * 100.0);
        render::draw_text(&mut out, cx, cy + TILE + 17, &p, 2);
    }
    Picture::from_rgba(out)
}

impl GalleryOutput {
    /// `gallery.png`, `summary.json`, and each class's files in `<k>-<class>/`; nothing is
    /// replaced without `force`.
    pub fn save(&self, dir: &Path, force: bool) -> Result<()> {
        let summary = GallerySummary {
            classes: self.items.iter().map(|i| &i.meta).collect(),
            reached: self.items.iter().filter(|i| i.meta.reached).count(),
            total: self.items.len(),
        };
        fsutil::write_files(dir, &[("gallery.png".into(), self.picture.png()?), ("summary.json".into(), json_bytes(&summary)?)], force)?;
        for it in &self.items {
            let slug: String = it.meta.target_class.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
            it.save(&dir.join(format!("{}-{slug}", it.meta.target)), force)?;
        }
        Ok(())
    }
}
