//! Pictures ready for a texture or a PNG file: RGBA8, row-major. The worker makes them (all
//! colouring happens off the UI thread); the app only copies them into textures.

use std::path::Path;

use easel_core::error::{Error, Result};
use easel_core::imaging::PreparedImage;
use easel_core::render;
use image::RgbaImage;

/// A picture ready for a texture: RGBA8, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Picture {
    pub width: usize,
    pub height: usize,
    pub rgba: Vec<u8>,
}

impl Picture {
    pub fn from_rgba(img: RgbaImage) -> Picture {
        Picture { width: img.width() as usize, height: img.height() as usize, rgba: img.into_raw() }
    }

    pub fn to_rgba(&self) -> Result<RgbaImage> {
        RgbaImage::from_raw(self.width as u32, self.height as u32, self.rgba.clone())
            .ok_or_else(|| Error::invalid("the picture's buffer does not match its size"))
    }

    /// The picture as PNG bytes.
    pub fn png(&self) -> Result<Vec<u8>> {
        png_bytes(&self.to_rgba()?)
    }
}

/// Pictures of small inputs are enlarged to at least this many pixels a side.
pub const PICTURE_MIN_PX: usize = 224;

/// The image as a picture, enlarged (nearest neighbour) to at least [`PICTURE_MIN_PX`].
pub fn image_picture(img: &PreparedImage) -> Picture {
    let up = render::upscale_for(img.height.max(img.width), PICTURE_MIN_PX);
    Picture::from_rgba(render::image_picture(img, up))
}

/// A square thumbnail of `side` pixels.
pub fn thumbnail(img: &PreparedImage, side: u32) -> Picture {
    let up = render::upscale_for(img.height.max(img.width), side as usize);
    let pic = render::image_picture(img, up);
    Picture::from_rgba(image::imageops::resize(&pic, side, side, image::imageops::FilterType::Triangle))
}

/// PNG bytes of an RGBA image.
pub fn png_bytes(img: &RgbaImage) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).map_err(|e| Error::Compute(format!("PNG encoding failed: {e}")))?;
    Ok(out)
}

/// Save a picture as PNG at `path`, or at a new name beside it if `path` exists (a user's file
/// is never overwritten); returns where it went.
pub fn save_png_unused(path: &Path, picture: &Picture) -> Result<std::path::PathBuf> {
    let bytes = picture.png()?;
    easel_core::fsutil::write_new(path, &bytes)
}
