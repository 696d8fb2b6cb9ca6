//! Decoding images safely (size limits, clear errors) and turning them into model inputs:
//! resize or centre-crop, grey or RGB, then the card's named normalisation.

use std::path::{Path, PathBuf};

use image::{DynamicImage, GenericImageView, RgbaImage};

use crate::card::{InputSpec, ResizeMode};
use crate::error::{Error, Result};

/// File extensions easel treats as images when it walks a folder.
pub const IMAGE_EXTENSIONS: [&str; 8] = ["png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff"];

/// Largest side, pixel count and decoded size accepted from an untrusted file: a small file
/// that promises a huge picture is refused before its memory is taken.
pub const MAX_IMAGE_SIDE_PX: u32 = 16_384;
pub const MAX_IMAGE_PIXELS: u64 = 64 << 20;
pub const MAX_DECODE_BYTES: u64 = 512 << 20;
/// Largest image file read.
pub const MAX_IMAGE_FILE_BYTES: u64 = 256 << 20;

/// Decode an image file with limits, so a huge or hostile file is an error, not a crash. A
/// folder, FIFO or device is refused before anything is read.
pub fn load_image(path: &Path) -> Result<DynamicImage> {
    let bytes = crate::fsutil::read_regular(path, MAX_IMAGE_FILE_BYTES).map_err(|e| match e {
        Error::NotAFile { what, .. } => Error::Image { path: path.to_path_buf(), reason: format!("it is {what}") },
        other => other,
    })?;
    if bytes.is_empty() {
        return Err(Error::EmptyFile { path: path.to_path_buf() });
    }
    decode_image(&bytes).map_err(|reason| Error::Image { path: path.to_path_buf(), reason })
}

fn reader(bytes: &[u8]) -> std::result::Result<image::ImageReader<std::io::Cursor<&[u8]>>, String> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| e.to_string())?;
    if reader.format().is_none() {
        return Err("unknown image format".into());
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE_PX);
    limits.max_image_height = Some(MAX_IMAGE_SIDE_PX);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    Ok(reader)
}

/// Decode image bytes with the same limits as [`load_image`].
pub fn decode_image(bytes: &[u8]) -> std::result::Result<DynamicImage, String> {
    let limit = |e: image::ImageError| match e {
        image::ImageError::Limits(l) => format!("larger than easel accepts ({l}; at most {MAX_IMAGE_SIDE_PX} px a side and {MAX_IMAGE_PIXELS} pixels)"),
        other => other.to_string(),
    };
    let r = reader(bytes)?;
    if r.format() == Some(image::ImageFormat::Jpeg) {
        jpeg_is_complete(bytes)?;
    }
    let (w, h) = r.into_dimensions().map_err(limit)?;
    if w as u64 * h as u64 > MAX_IMAGE_PIXELS {
        return Err(format!("{w}x{h} is {} pixels, more than the {MAX_IMAGE_PIXELS} easel decodes", w as u64 * h as u64));
    }
    reader(bytes)?.decode().map_err(limit)
}

/// A JPEG must reach its end-of-image marker: a truncated file would otherwise decode to a
/// picture padded with grey, and be explained as if it were whole.
fn jpeg_is_complete(b: &[u8]) -> std::result::Result<(), String> {
    let truncated = || Err("truncated JPEG: the data ends before the end-of-image marker".to_string());
    let mut pos = 2;
    loop {
        if pos >= b.len() {
            return truncated();
        }
        if b[pos] != 0xff {
            return Err(format!("corrupt JPEG: no marker at byte {pos}"));
        }
        while pos < b.len() && b[pos] == 0xff {
            pos += 1;
        }
        let Some(&marker) = b.get(pos) else { return truncated() };
        pos += 1;
        match marker {
            0xd9 => return Ok(()),
            0xd0..=0xd8 | 0x01 => {}
            _ => {
                let Some(len) = b.get(pos..pos + 2).map(|l| u16::from_be_bytes([l[0], l[1]]) as usize) else { return truncated() };
                pos += len;
                if marker == 0xda {
                    // entropy-coded data runs to the next marker that is not a stuffed 0xff00
                    // or a restart marker
                    while pos + 1 < b.len() && !(b[pos] == 0xff && b[pos + 1] != 0 && !(0xd0..=0xd7).contains(&b[pos + 1])) {
                        pos += 1;
                    }
                    if pos + 1 >= b.len() {
                        return truncated();
                    }
                }
            }
        }
    }
}

fn has_image_extension(p: &Path) -> bool {
    p.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str()))
}

/// Expand files and folders into image files: a folder contributes its images (sorted, not
/// recursive); a folder without any is an error; a file is taken as given.
pub fn list_images(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let entries = std::fs::read_dir(input).map_err(|e| Error::io(input, e))?;
            let mut found: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file() && has_image_extension(p)).collect();
            if found.is_empty() {
                return Err(Error::NoImages { path: input.clone(), exts: IMAGE_EXTENSIONS.join(", ") });
            }
            found.sort();
            out.extend(found);
        } else if input.exists() {
            out.push(input.clone());
        } else {
            return Err(Error::io(input, std::io::Error::from(std::io::ErrorKind::NotFound)));
        }
    }
    Ok(out)
}

/// An image at the model's input size, before normalisation: what the model sees, and what
/// overlays are drawn on.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PreparedImage {
    pub width: usize,
    pub height: usize,
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// Row-major, channels interleaved (`HWC`), 0..=255.
    pub pixels: Vec<u8>,
}

/// ITU-R 601 luma with PIL's fixed-point rounding, so greyscale matches PIL's `convert("L")`.
fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 19595 + g as u32 * 38470 + b as u32 * 7471 + 0x8000) >> 16) as u8
}

/// Resize / crop and convert an image to the card's input.
pub fn prepare(img: &DynamicImage, spec: &InputSpec) -> PreparedImage {
    let (w, h) = (spec.width as u32, spec.height as u32);
    let rgb = img.to_rgb8();
    let filter = image::imageops::FilterType::Triangle;
    let sized = if rgb.dimensions() == (w, h) {
        rgb
    } else {
        match spec.resize {
            ResizeMode::Stretch => image::imageops::resize(&rgb, w, h, filter),
            ResizeMode::CenterCrop => {
                let (iw, ih) = rgb.dimensions();
                // scale so the crop of `crop_fraction` of the shorter side becomes the input
                let scale = (w.max(h) as f32 / spec.crop_fraction) / iw.min(ih) as f32;
                let sw = ((iw as f32 * scale).round() as u32).max(w);
                let sh = ((ih as f32 * scale).round() as u32).max(h);
                let scaled = image::imageops::resize(&rgb, sw, sh, filter);
                image::imageops::crop_imm(&scaled, (sw - w) / 2, (sh - h) / 2, w, h).to_image()
            }
        }
    };
    let pixels = if spec.channels == 1 { sized.pixels().map(|p| luma(p[0], p[1], p[2])).collect() } else { sized.into_raw() };
    PreparedImage { width: spec.width, height: spec.height, channels: spec.channels, pixels }
}

/// Grey images skip the RGB round trip so their bytes are kept exactly.
pub fn prepare_any(img: &DynamicImage, spec: &InputSpec) -> PreparedImage {
    if spec.channels == 1 && matches!(img, DynamicImage::ImageLuma8(_)) && img.dimensions() == (spec.width as u32, spec.height as u32) {
        return PreparedImage { width: spec.width, height: spec.height, channels: 1, pixels: img.to_luma8().into_raw() };
    }
    prepare(img, spec)
}

/// Load and prepare one file.
pub fn load_prepared(path: &Path, spec: &InputSpec) -> Result<PreparedImage> {
    Ok(prepare_any(&load_image(path)?, spec))
}

/// The normalised input `x = (pixel * scale - mean[c]) / std[c]`, channel-major.
///
/// # Shapes
/// - returns `[C, H, W]` flattened
pub fn normalise(img: &PreparedImage, spec: &InputSpec) -> Vec<f32> {
    let (c, hw) = (img.channels, img.width * img.height);
    let mut out = vec![0.0f32; c * hw];
    for ch in 0..c {
        let (mean, std) = (spec.mean[ch], spec.std[ch]);
        for i in 0..hw {
            out[ch * hw + i] = (img.pixels[i * c + ch] as f32 * spec.scale - mean) / std;
        }
    }
    out
}

/// Back from normalised values to pixels (clamped), e.g. for an adversarial image.
///
/// # Shapes
/// - `x`: `[C, H, W]` flattened
pub fn denormalise(x: &[f32], spec: &InputSpec) -> PreparedImage {
    let (c, hw) = (spec.channels, spec.width * spec.height);
    let mut pixels = vec![0u8; c * hw];
    for ch in 0..c {
        for i in 0..hw {
            let p = (x[ch * hw + i] * spec.std[ch] + spec.mean[ch]) / spec.scale;
            pixels[i * c + ch] = p.round().clamp(0.0, 255.0) as u8;
        }
    }
    PreparedImage { width: spec.width, height: spec.height, channels: c, pixels }
}

impl PreparedImage {
    pub fn to_rgba(&self) -> RgbaImage {
        let mut out = RgbaImage::new(self.width as u32, self.height as u32);
        for (i, px) in out.pixels_mut().enumerate() {
            *px = if self.channels == 1 {
                let v = self.pixels[i];
                image::Rgba([v, v, v, 255])
            } else {
                let p = &self.pixels[i * 3..i * 3 + 3];
                image::Rgba([p[0], p[1], p[2], 255])
            };
        }
        out
    }

    /// The same picture as an `image` crate image (grey or RGB).
    pub fn to_dynamic(&self) -> DynamicImage {
        if self.channels == 1 {
            DynamicImage::ImageLuma8(image::GrayImage::from_raw(self.width as u32, self.height as u32, self.pixels.clone()).unwrap_or_default())
        } else {
            DynamicImage::ImageRgb8(image::RgbImage::from_raw(self.width as u32, self.height as u32, self.pixels.clone()).unwrap_or_default())
        }
    }

    /// This image brought to another model's input (resized, grey or RGB as `spec` says);
    /// a copy when it already fits.
    pub fn prepared_for(&self, spec: &InputSpec) -> PreparedImage {
        if self.width == spec.width && self.height == spec.height && self.channels == spec.channels {
            return self.clone();
        }
        prepare_any(&self.to_dynamic(), spec)
    }

    /// Greyscale copy (for "blended heat map" overlays).
    pub fn grey(&self) -> Vec<u8> {
        if self.channels == 1 { self.pixels.clone() } else { self.pixels.chunks(3).map(|p| luma(p[0], p[1], p[2])).collect() }
    }
}
