//! Drawing attribution maps as pictures, the same for the CLI's PNGs and the GUI's textures:
//! Captum's modes x signs x colormaps, outlier clipping, per-image or shared scale, and a
//! colour bar with the scale's numbers.

use image::{Rgba, RgbaImage};
use serde::{Deserialize, Serialize};

use crate::explain::SaliencyMap;
use crate::imaging::PreparedImage;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The map alone, coloured.
    #[value(name = "heat-map", alias = "heat_map")]
    HeatMap,
    /// The coloured map over a greyscale copy of the image.
    #[default]
    #[value(name = "blended", alias = "blended-heat-map")]
    BlendedHeatMap,
    /// The image multiplied by the map (dark where the map is small).
    #[value(name = "masked", alias = "masked-image")]
    MaskedImage,
    /// The image with the map as its opacity.
    #[value(name = "alpha", alias = "alpha-scaling")]
    AlphaScaling,
}

impl Mode {
    pub const ALL: [Mode; 4] = [Mode::HeatMap, Mode::BlendedHeatMap, Mode::MaskedImage, Mode::AlphaScaling];

    pub fn title(self) -> &'static str {
        match self {
            Mode::HeatMap => "heat map",
            Mode::BlendedHeatMap => "blended heat map",
            Mode::MaskedImage => "masked image",
            Mode::AlphaScaling => "alpha scaling",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Sign {
    Positive,
    Negative,
    #[default]
    Absolute,
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Colormap {
    /// Diverging blue-white-red, for signed maps.
    Diverging,
    #[default]
    Viridis,
    Inferno,
    Magma,
    Plasma,
    Turbo,
    Greys,
    Reds,
    Greens,
    Blues,
}

impl Colormap {
    pub const ALL: [Colormap; 10] = [
        Colormap::Diverging,
        Colormap::Viridis,
        Colormap::Inferno,
        Colormap::Magma,
        Colormap::Plasma,
        Colormap::Turbo,
        Colormap::Greys,
        Colormap::Reds,
        Colormap::Greens,
        Colormap::Blues,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Colormap::Diverging => "diverging",
            Colormap::Viridis => "viridis",
            Colormap::Inferno => "inferno",
            Colormap::Magma => "magma",
            Colormap::Plasma => "plasma",
            Colormap::Turbo => "turbo",
            Colormap::Greys => "greys",
            Colormap::Reds => "reds",
            Colormap::Greens => "greens",
            Colormap::Blues => "blues",
        }
    }

    fn gradient(self) -> colorous::Gradient {
        match self {
            Colormap::Diverging => colorous::RED_BLUE,
            Colormap::Viridis => colorous::VIRIDIS,
            Colormap::Inferno => colorous::INFERNO,
            Colormap::Magma => colorous::MAGMA,
            Colormap::Plasma => colorous::PLASMA,
            Colormap::Turbo => colorous::TURBO,
            Colormap::Greys => colorous::GREYS,
            Colormap::Reds => colorous::REDS,
            Colormap::Greens => colorous::GREENS,
            Colormap::Blues => colorous::BLUES,
        }
    }

    /// Colour of `t` in [0, 1] (for the diverging map 0.5 is white, 1 is red).
    pub fn color(self, t: f32) -> [u8; 3] {
        let t = t.clamp(0.0, 1.0) as f64;
        // colorous' RED_BLUE runs red -> blue; flip it so positive is red.
        let t = if self == Colormap::Diverging { 1.0 - t } else { t };
        let c = self.gradient().eval_continuous(t);
        [c.r, c.g, c.b]
    }
}

impl std::str::FromStr for Colormap {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Colormap::ALL
            .into_iter()
            .find(|c| c.name() == s.to_ascii_lowercase())
            .ok_or_else(|| format!("unknown colormap '{s}': {}", Colormap::ALL.map(|c| c.name()).join(", ")))
    }
}

/// Which magnitude maps to the end of the colour scale.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
#[derive(Default)]
pub enum Scale {
    /// From this map, after clipping the top outliers.
    #[default]
    PerImage,
    /// One absolute value shared across images and methods.
    Fixed(f32),
}

/// Everything about how a map is drawn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RenderOptions {
    pub mode: Mode,
    pub sign: Sign,
    pub colormap: Colormap,
    /// Percent of the attribution mass clipped as outliers (Captum's default 2).
    pub outlier_percent: f32,
    pub scale: Scale,
    /// Opacity of the heat map in `BlendedHeatMap`.
    pub alpha: f32,
    /// Draw a colour bar with numbers beside the picture.
    pub colour_bar: bool,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            mode: Mode::BlendedHeatMap,
            sign: Sign::Absolute,
            colormap: Colormap::Viridis,
            outlier_percent: 2.0,
            scale: Scale::PerImage,
            alpha: 0.5,
            colour_bar: true,
        }
    }
}

impl Sign {
    pub const ALL: [Sign; 4] = [Sign::Positive, Sign::Negative, Sign::Absolute, Sign::All];
}

impl RenderOptions {
    /// These options with the sign and colormap that suit `method`: every value of a signed map
    /// on a diverging scale, the magnitude of an unsigned one on inferno. The CLI (when
    /// `--sign`/`--colormap` are not given) and the app (when "colours follow the method" is
    /// on) both use it.
    pub fn natural_for(mut self, method: &crate::explain::Method) -> RenderOptions {
        if method.is_signed() {
            self.sign = Sign::All;
            self.colormap = Colormap::Diverging;
        } else {
            self.sign = Sign::Absolute;
            self.colormap = Colormap::Inferno;
        }
        self
    }

    pub fn validate(&self) -> crate::error::Result<()> {
        if !(0.0..100.0).contains(&self.outlier_percent) {
            return Err(crate::error::Error::invalid(format!("the clipped share {} must be in [0, 100)", self.outlier_percent)));
        }
        if !(0.0..=1.0).contains(&self.alpha) {
            return Err(crate::error::Error::invalid(format!("alpha {} must be in [0, 1]", self.alpha)));
        }
        if let Scale::Fixed(v) = self.scale
            && !(v.is_finite() && v > 0.0)
        {
            return Err(crate::error::Error::invalid(format!("the fixed scale {v} must be a positive number")));
        }
        Ok(())
    }
}

/// Captum's `_cumulative_sum_threshold`: the smallest sorted value at which the cumulative
/// sum reaches `percentile` percent of the total.
pub fn cumulative_sum_threshold(values: &[f32], percentile: f32) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f32::total_cmp);
    let total: f64 = sorted.iter().map(|&v| v as f64).sum();
    let goal = total * 0.01 * percentile as f64;
    let mut acc = 0.0f64;
    for &v in &sorted {
        acc += v as f64;
        if acc >= goal {
            return v;
        }
    }
    *sorted.last().expect("non-empty")
}

/// The plane to draw: channels summed, sign applied, divided by the scale and clipped to
/// [-1, 1] (Captum's `_normalize_attr`). Returns the normalised plane and the scale used.
pub fn normalise_map(map: &SaliencyMap, sign: Sign, outlier_percent: f32, scale: Scale) -> (Vec<f32>, f32) {
    let plane = map.sum_over_channels().values;
    let signed: Vec<f32> = match sign {
        Sign::All => plane.clone(),
        Sign::Positive => plane.iter().map(|&v| v.max(0.0)).collect(),
        Sign::Negative => plane.iter().map(|&v| (-v).max(0.0)).collect(),
        Sign::Absolute => plane.iter().map(|v| v.abs()).collect(),
    };
    let threshold = match scale {
        Scale::Fixed(v) => v.abs(),
        Scale::PerImage => {
            let mags: Vec<f32> = signed.iter().map(|v| v.abs()).collect();
            cumulative_sum_threshold(&mags, 100.0 - outlier_percent)
        }
    };
    let t = if threshold.abs() < 1e-12 { 1.0 } else { threshold };
    (signed.iter().map(|v| (v / t).clamp(-1.0, 1.0)).collect(), threshold)
}

/// Draw `map` over `image` (both at the model's input size). `upscale` enlarges the
/// picture by nearest neighbour so small inputs stay readable.
pub fn render(map: &SaliencyMap, image: &PreparedImage, opts: &RenderOptions, upscale: u32) -> (RgbaImage, f32) {
    let (norm, threshold) = normalise_map(map, opts.sign, opts.outlier_percent, opts.scale);
    let (w, h) = (map.width, map.height);
    let rgba = image.to_rgba();
    let grey = image.grey();
    let signed = opts.sign == Sign::All;
    let mut out = RgbaImage::new(w as u32, h as u32);
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let v = norm[i];
            let t = if signed { (v + 1.0) / 2.0 } else { v.max(0.0) };
            let heat = opts.colormap.color(t);
            let px = rgba.get_pixel(x as u32, y as u32).0;
            let pixel = match opts.mode {
                Mode::HeatMap => [heat[0], heat[1], heat[2], 255],
                Mode::BlendedHeatMap => {
                    let g = grey[i] as f32;
                    let a = opts.alpha.clamp(0.0, 1.0);
                    let mix = |c: u8| (g * (1.0 - a) + c as f32 * a).round() as u8;
                    [mix(heat[0]), mix(heat[1]), mix(heat[2]), 255]
                }
                Mode::MaskedImage => {
                    let m = v.abs();
                    let s = |c: u8| (c as f32 * m).round() as u8;
                    [s(px[0]), s(px[1]), s(px[2]), 255]
                }
                Mode::AlphaScaling => [px[0], px[1], px[2], (v.abs() * 255.0).round() as u8],
            };
            out.put_pixel(x as u32, y as u32, Rgba(pixel));
        }
    }
    let out = if upscale > 1 { image::imageops::resize(&out, w as u32 * upscale, h as u32 * upscale, image::imageops::FilterType::Nearest) } else { out };
    let out = if opts.colour_bar { with_colour_bar(out, opts, threshold) } else { out };
    (out, threshold)
}

/// A picture of an image alone at the same size a rendered map has (for side-by-side views).
pub fn image_picture(image: &PreparedImage, upscale: u32) -> RgbaImage {
    let rgba = image.to_rgba();
    if upscale > 1 {
        image::imageops::resize(&rgba, image.width as u32 * upscale, image.height as u32 * upscale, image::imageops::FilterType::Nearest)
    } else {
        rgba
    }
}

/// A perturbation (values in [-eps, eps]) amplified to be visible: 0 is grey.
pub fn perturbation_picture(delta: &[f32], channels: usize, height: usize, width: usize, upscale: u32) -> RgbaImage {
    let eps = delta.iter().fold(1e-12f32, |m, v| m.max(v.abs()));
    let hw = height * width;
    let mut out = RgbaImage::new(width as u32, height as u32);
    for i in 0..hw {
        let c = |ch: usize| ((delta[ch.min(channels - 1) * hw + i] / eps * 127.0) + 128.0).clamp(0.0, 255.0) as u8;
        out.put_pixel((i % width) as u32, (i / width) as u32, Rgba([c(0), c(1), c(2), 255]));
    }
    if upscale > 1 { image::imageops::resize(&out, width as u32 * upscale, height as u32 * upscale, image::imageops::FilterType::Nearest) } else { out }
}

/// Upscale factor so a side of `side` pixels becomes at least `min_px` pixels.
pub fn upscale_for(side: usize, min_px: usize) -> u32 {
    (min_px.div_ceil(side.max(1))).max(1) as u32
}

/// Tick labels of the colour bar, top to bottom.
pub fn colour_bar_labels(opts: &RenderOptions, threshold: f32) -> Vec<(f32, String)> {
    let fmt = |v: f32| format_number(v);
    match opts.sign {
        Sign::All => vec![(1.0, fmt(threshold)), (0.5, fmt(0.0)), (0.0, fmt(-threshold))],
        Sign::Negative => vec![(1.0, fmt(-threshold)), (0.0, fmt(0.0))],
        _ => vec![(1.0, fmt(threshold)), (0.5, fmt(threshold / 2.0)), (0.0, fmt(0.0))],
    }
}

/// A short number: 3 significant digits, exponent form when tiny or huge.
pub fn format_number(v: f32) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-2..1e4).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn with_colour_bar(img: RgbaImage, opts: &RenderOptions, threshold: f32) -> RgbaImage {
    let (w, h) = img.dimensions();
    let bar_w = 14u32;
    let glyph = 2u32; // font scale
    let labels = colour_bar_labels(opts, threshold);
    let text_w = labels.iter().map(|(_, s)| s.len() as u32 * 4 * glyph).max().unwrap_or(0);
    let pad = 6u32;
    // room above and below the bar for the end labels
    let margin = 5 * glyph / 2 + 2;
    let out_h = h.max(60);
    let mut out = RgbaImage::from_pixel(w + pad + bar_w + 4 + text_w + pad, out_h, Rgba([255, 255, 255, 255]));
    image::imageops::overlay(&mut out, &img, 0, 0);
    let top = margin;
    let bar_h = out_h - 2 * margin;
    for y in 0..bar_h {
        // top to bottom, the colormap from 1 to 0: what the picture shows (signed maps put
        // -scale at 0 and +scale at 1, unsigned ones 0 at 0)
        let t = 1.0 - y as f32 / (bar_h - 1).max(1) as f32;
        let c = opts.colormap.color(t);
        for x in 0..bar_w {
            out.put_pixel(w + pad + x, top + y, Rgba([c[0], c[1], c[2], 255]));
        }
    }
    for (pos, text) in labels {
        let y = top + ((1.0 - pos) * (bar_h - 1) as f32) as u32;
        let ty = y.saturating_sub(5 * glyph / 2).min(out_h - 5 * glyph - 1);
        draw_text(&mut out, w + pad + bar_w + 4, ty, &text, glyph);
    }
    out
}

/// 3x5 bitmaps of the characters numbers need.
fn glyph_rows(ch: char) -> [u8; 5] {
    match ch {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 2, 2],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '-' => [0, 0, 7, 0, 0],
        '+' => [0, 2, 7, 2, 0],
        '.' => [0, 0, 0, 0, 2],
        'e' => [0, 7, 7, 4, 7],
        'A' => [2, 5, 7, 5, 5],
        'B' => [6, 5, 6, 5, 6],
        'C' => [3, 4, 4, 4, 3],
        'D' => [6, 5, 5, 5, 6],
        'E' => [7, 4, 6, 4, 7],
        'F' => [7, 4, 6, 4, 4],
        'G' => [3, 4, 5, 5, 3],
        'H' => [5, 5, 7, 5, 5],
        'I' => [7, 2, 2, 2, 7],
        'J' => [1, 1, 1, 5, 2],
        'K' => [5, 5, 6, 5, 5],
        'L' => [4, 4, 4, 4, 7],
        'M' => [5, 7, 7, 5, 5],
        'N' => [6, 5, 5, 5, 5],
        'O' => [2, 5, 5, 5, 2],
        'P' => [6, 5, 6, 4, 4],
        'Q' => [2, 5, 5, 7, 3],
        'R' => [6, 5, 6, 5, 5],
        'S' => [3, 4, 2, 1, 6],
        'T' => [7, 2, 2, 2, 2],
        'U' => [5, 5, 5, 5, 7],
        'V' => [5, 5, 5, 5, 2],
        'W' => [5, 5, 7, 7, 5],
        'X' => [5, 5, 2, 5, 5],
        'Y' => [5, 5, 2, 2, 2],
        'Z' => [7, 1, 2, 4, 7],
        '%' => [5, 1, 2, 4, 5],
        '/' => [1, 1, 2, 4, 4],
        ':' => [0, 2, 0, 2, 0],
        '(' => [1, 2, 2, 2, 1],
        ')' => [4, 2, 2, 2, 4],
        '=' => [0, 7, 0, 7, 0],
        '>' => [4, 2, 1, 2, 4],
        '<' => [1, 2, 4, 2, 1],
        ',' => [0, 0, 0, 2, 4],
        '_' => [0, 0, 0, 0, 7],
        '#' => [5, 7, 5, 7, 5],
        c if c.is_ascii_lowercase() => glyph_rows(c.to_ascii_uppercase()),
        _ => [0; 5],
    }
}

/// The width in pixels of `text` drawn at `scale`.
pub fn text_width(text: &str, scale: u32) -> u32 {
    text.chars().count() as u32 * 4 * scale
}

/// Draw `text` in black with the built-in 3x5 font scaled by `scale` (letters as capitals).
pub fn draw_text(img: &mut RgbaImage, x0: u32, y0: u32, text: &str, scale: u32) {
    for (i, ch) in text.chars().enumerate() {
        let rows = glyph_rows(ch);
        for (ry, bits) in rows.iter().enumerate() {
            for rx in 0..3u32 {
                if bits & (4 >> rx) != 0 {
                    for dy in 0..scale {
                        for dx in 0..scale {
                            let x = x0 + (i as u32 * 4 + rx) * scale + dx;
                            let y = y0 + ry as u32 * scale + dy;
                            if x < img.width() && y < img.height() {
                                img.put_pixel(x, y, Rgba([0, 0, 0, 255]));
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_clips_two_percent_of_the_mass() {
        let mut v: Vec<f32> = vec![1.0; 98];
        v.push(1000.0);
        v.push(1000.0);
        // 98 + 2000 total; 98 % of it is reached only inside the outliers
        assert_eq!(cumulative_sum_threshold(&v, 98.0), 1000.0);
        let u: Vec<f32> = (1..=100).map(|i| i as f32).collect();
        let t = cumulative_sum_threshold(&u, 98.0);
        assert!(t > 95.0 && t < 100.0, "{t}");
    }

    #[test]
    fn normalised_values_stay_in_range_and_follow_the_sign() {
        let m = SaliencyMap::new(1, 1, 4, vec![-2.0, -1.0, 1.0, 4.0]);
        let (pos, _) = normalise_map(&m, Sign::Positive, 0.0, Scale::PerImage);
        assert_eq!(pos, vec![0.0, 0.0, 0.25, 1.0]);
        let (all, t) = normalise_map(&m, Sign::All, 0.0, Scale::Fixed(2.0));
        assert_eq!(t, 2.0);
        assert_eq!(all, vec![-1.0, -0.5, 0.5, 1.0]);
    }

    #[test]
    fn colour_bar_widens_the_picture() {
        let img = PreparedImage { width: 4, height: 4, channels: 1, pixels: vec![100; 16] };
        let m = SaliencyMap::new(1, 4, 4, (0..16).map(|i| i as f32).collect());
        let (pic, _) = render(&m, &img, &RenderOptions::default(), 16);
        assert!(pic.width() > 64 && pic.height() == 64);
    }
}
