//! Two models' maps of one image, side by side on one colour scale: the same method, the same
//! target class, each model's own predictions. `easel explain --model A --model B` and the
//! Compare view's "A and B side by side" both end in [`run_pair`]; [`PairOutput::save`] writes
//! `a/` and `b/` (each as `easel explain` writes one map), `side-by-side.png` and `pair.json`.

use std::path::{Path, PathBuf};

use easel_core::error::{Error, Result};
use easel_core::fsutil;
use easel_core::imaging::PreparedImage;
use easel_core::models::Classifier;
use easel_core::predict::{ClassScore, top_indices};
use easel_core::progress::Progress;
use easel_core::render::{self, Scale};
use serde::Serialize;

use crate::explain::{self, ExplainOutput, ExplainRequest, MAP_MIN_PX, Provenance, json_bytes};
use crate::picture::{Picture, png_bytes};

/// Both maps, rendered at one scale.
#[derive(Clone, Debug)]
pub struct PairOutput {
    pub a: ExplainOutput,
    pub b: ExplainOutput,
    /// The class both maps explain.
    pub target: usize,
    pub target_class: String,
    /// The value at the end of both colour bars.
    pub scale: f32,
}

/// One side of `pair.json`.
#[derive(Clone, Debug, Serialize)]
pub struct PairSide {
    pub model: String,
    pub model_hash: String,
    pub top_k: Vec<ClassScore>,
    pub map_max_abs: f32,
}

/// `pair.json`.
#[derive(Clone, Debug, Serialize)]
pub struct PairMeta {
    pub method: String,
    pub image: String,
    pub target: usize,
    pub target_class: String,
    pub shared_scale: f32,
    pub a: PairSide,
    pub b: PairSide,
}

/// The maps of `req_a` on model `a` and `req_b` on model `b` (the same method, each with
/// settings that fit its model) for one image (`image_a`, `image_b`: the image at each
/// model's input). The target is the request's, else A's predicted class; both pictures are
/// rendered at the larger of the two maps' scales (or the request's fixed scale).
#[allow(clippy::too_many_arguments)]
pub fn run_pair(
    a: &Classifier,
    b: &Classifier,
    image_a: &PreparedImage,
    image_b: &PreparedImage,
    provenance: &Provenance,
    req_a: &ExplainRequest,
    req_b: &ExplainRequest,
    progress: Progress<'_>,
) -> Result<PairOutput> {
    if req_a.method.is_attack() || req_b.method.is_attack() {
        return Err(Error::invalid("side-by-side maps are for attribution methods, not attacks"));
    }
    if req_a.method.kind() != req_b.method.kind() {
        return Err(Error::invalid("side-by-side maps use one method for both models"));
    }
    if a.card.classes != b.card.classes {
        return Err(Error::invalid(format!(
            "{} and {} score different classes ({} and {}): side-by-side maps explain one class in both",
            a.card.name,
            b.card.name,
            a.num_classes(),
            b.num_classes()
        )));
    }
    let target = match req_a.target.or(req_b.target) {
        Some(t) => t,
        None => top_indices(&a.logits(a.input_batch(&[image_a])?)?.remove(0), 1)[0],
    };
    let mut ra = req_a.clone();
    let mut rb = req_b.clone();
    ra.target = Some(target);
    rb.target = Some(target);
    let mut oa = explain::run(a, image_a, provenance, &ra, progress, &mut |_, _, _| {})?;
    progress.check()?;
    let mut ob = explain::run(b, image_b, provenance, &rb, progress, &mut |_, _, _| {})?;
    let scale = match ra.render.scale {
        Scale::Fixed(v) => v,
        Scale::PerImage => oa.scale.max(ob.scale),
    };
    if scale > 0.0 {
        rerender(&mut oa, image_a, scale);
        rerender(&mut ob, image_b, scale);
    }
    Ok(PairOutput { target_class: a.class_name(target).to_string(), a: oa, b: ob, target, scale })
}

/// Render a map again at a fixed scale.
fn rerender(out: &mut ExplainOutput, image: &PreparedImage, scale: f32) {
    let opts = render::RenderOptions { scale: Scale::Fixed(scale), ..out.request.render.clone() };
    let up = render::upscale_for(image.height.max(image.width), MAP_MIN_PX);
    let (pic, s) = render::render(&out.explanation.map, image, &opts, up);
    out.picture = Picture::from_rgba(pic);
    out.scale = s;
    out.meta.render_scale = Some(s);
    out.meta.render = opts.clone();
    out.request.render = opts;
}

/// Two pictures next to each other, top-aligned, with a white gap, each under its caption
/// (up to two lines, each cut to the picture's width).
pub fn side_by_side(a: &Picture, b: &Picture, captions: [&str; 2]) -> Picture {
    const GAP: usize = 12;
    const SCALE: u32 = 2;
    const PAD: usize = 6;
    const LINE: usize = 7 * SCALE as usize;
    let lines = captions.iter().map(|c| c.lines().count()).max().unwrap_or(0).min(2);
    let band = lines * LINE + 2 * PAD - 2 * SCALE as usize;
    let width = a.width + GAP + b.width;
    let height = band + a.height.max(b.height);
    let mut img = image::RgbaImage::from_pixel(width as u32, height as u32, image::Rgba([255, 255, 255, 255]));
    for ((p, x0), caption) in [(a, 0), (b, a.width + GAP)].into_iter().zip(captions) {
        for y in 0..p.height {
            let src = &p.rgba[y * p.width * 4..(y + 1) * p.width * 4];
            let at = ((band + y) * width + x0) * 4;
            img.as_mut()[at..at + p.width * 4].copy_from_slice(src);
        }
        let fits = p.width / (4 * SCALE as usize);
        for (i, line) in caption.lines().take(2).enumerate() {
            // capitals: the built-in font keeps a small "e" for exponents
            let text: String = line.to_uppercase().chars().take(fits).collect();
            render::draw_text(&mut img, x0 as u32, (PAD + i * LINE) as u32, &text, SCALE);
        }
    }
    Picture::from_rgba(img)
}

/// `A: <model>` over `top: <its top class> <probability>`: which map is which in the pair
/// picture.
fn caption(letter: &str, o: &ExplainOutput) -> String {
    match o.top.first() {
        Some(t) => format!("{letter}: {}\ntop: {} {:.0}%", o.meta.model, t.class, 100.0 * t.probability),
        None => format!("{letter}: {}", o.meta.model),
    }
}

impl PairOutput {
    pub fn meta(&self) -> PairMeta {
        let side = |o: &ExplainOutput| PairSide {
            model: o.meta.model.clone(),
            model_hash: o.meta.model_hash.clone(),
            top_k: o.top.clone(),
            map_max_abs: o.meta.map_max_abs,
        };
        PairMeta {
            method: self.a.explanation.method.name().to_string(),
            image: self.a.meta.image.clone(),
            target: self.target,
            target_class: self.target_class.clone(),
            shared_scale: self.scale,
            a: side(&self.a),
            b: side(&self.b),
        }
    }

    /// The files: `a/<method>.npy|png`, `a/meta.json`, the same under `b/`,
    /// `side-by-side.png` and `pair.json`.
    pub fn files(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let stem = self.a.explanation.method.name();
        let mut files = Vec::new();
        for (dir, o) in [("a", &self.a), ("b", &self.b)] {
            for (name, bytes) in o.files(stem)? {
                files.push((format!("{dir}/{name}"), bytes));
            }
            files.push((format!("{dir}/meta.json"), json_bytes(&o.meta)?));
        }
        let captions = [caption("A", &self.a), caption("B", &self.b)];
        let pair = side_by_side(&self.a.picture, &self.b.picture, [&captions[0], &captions[1]]);
        files.push(("side-by-side.png".into(), png_bytes(&pair.to_rgba()?)?));
        files.push(("pair.json".into(), json_bytes(&self.meta())?));
        Ok(files)
    }

    /// Write [`Self::files`] into `dir`; without `force` an existing file is an error and
    /// nothing is written.
    pub fn save(&self, dir: &Path, force: bool) -> Result<Vec<PathBuf>> {
        fsutil::write_files(dir, &self.files()?, force)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(width: usize, height: usize, v: u8) -> Picture {
        Picture { width, height, rgba: vec![v; width * height * 4] }
    }

    #[test]
    fn the_pair_picture_puts_each_caption_over_its_map() {
        let (a, b) = (solid(100, 80, 10), solid(120, 60, 20));
        let p = side_by_side(&a, &b, ["A: ONE\nTOP: SHIRT 90%", "B: A VERY LONG MODEL NAME THAT DOES NOT FIT ABOVE ITS PICTURE"]);
        let band = 2 * 14 + 12 - 4;
        assert_eq!((p.width, p.height), (100 + 12 + 120, band + 80));
        let px = |x: usize, y: usize| p.rgba[(y * p.width + x) * 4];
        // the maps sit under the band, unchanged
        assert_eq!(px(0, band), 10);
        assert_eq!(px(99, band + 79), 10);
        assert_eq!(px(112, band), 20);
        assert_eq!(px(112, band + 60), 255, "white under the shorter map");
        // some black text in each caption's half of the band, none over the gap
        let dark = |x0: usize, x1: usize| (0..band).any(|y| (x0..x1).any(|x| px(x, y) == 0));
        assert!(dark(0, 100));
        assert!(dark(112, 232));
        assert!(!dark(100, 112), "the long caption is cut at its picture's edge");
    }
}
