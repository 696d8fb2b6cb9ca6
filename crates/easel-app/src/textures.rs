//! Pictures on screen: the worker hands over RGBA buffers; the UI thread only copies them into
//! textures (`TextureHandle::set` when the size is unchanged).

use easel_jobs::picture::Picture;
use eframe::egui;

/// A texture and the picture's size.
pub struct Shown {
    pub texture: egui::TextureHandle,
    pub size: [usize; 2],
}

impl Shown {
    /// A new texture for `p`.
    pub fn new(ctx: &egui::Context, name: &str, p: &Picture) -> Shown {
        let img = egui::ColorImage::from_rgba_unmultiplied([p.width, p.height], &p.rgba);
        Shown { texture: ctx.load_texture(name, img, egui::TextureOptions::NEAREST), size: [p.width, p.height] }
    }
}

/// Put `p` into `slot`: reuse its texture when the size matches, else make a new one.
pub fn show(ctx: &egui::Context, name: &str, p: &Picture, slot: &mut Option<Shown>) {
    match slot {
        Some(s) if s.size == [p.width, p.height] => {
            let img = egui::ColorImage::from_rgba_unmultiplied([p.width, p.height], &p.rgba);
            s.texture.set(img, egui::TextureOptions::NEAREST);
        }
        _ => *slot = Some(Shown::new(ctx, name, p)),
    }
}

/// Replace the picture of a texture on screen.
pub fn update(ctx: &egui::Context, name: &str, p: &Picture, shown: &mut Shown) {
    if shown.size == [p.width, p.height] {
        let img = egui::ColorImage::from_rgba_unmultiplied([p.width, p.height], &p.rgba);
        shown.texture.set(img, egui::TextureOptions::NEAREST);
    } else {
        *shown = Shown::new(ctx, name, p);
    }
}

/// Draw a picture at most `max` points wide, dimmed if `dim`; returns the response.
pub fn picture_ui(ui: &mut egui::Ui, shown: &Shown, max: f32, dim: bool) -> egui::Response {
    let [w, h] = shown.size;
    let scale = (max / w as f32).min(1.5);
    let size = egui::vec2(w as f32 * scale, h as f32 * scale);
    let tint = if dim { egui::Color32::from_white_alpha(110) } else { egui::Color32::WHITE };
    ui.add(egui::Image::new((shown.texture.id(), size)).tint(tint).sense(egui::Sense::hover()))
}
