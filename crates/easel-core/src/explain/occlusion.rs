//! Occlusion (Zeiler & Fergus; Captum's `Occlusion`): slide a window over the image, replace it
//! with a fill, and credit every covered pixel with the mean drop of the target logit.

use serde::{Deserialize, Serialize};

use super::SaliencyMap;
use crate::error::{Error, Result};
use crate::models::Classifier;
use crate::parallel::{ordered_chunks, workers_for};
use crate::progress::Progress;

/// What an occluded window is filled with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Fill {
    /// A constant in normalised input space (Captum's `baselines`).
    Constant(f32),
    /// A pixel value 0..=255 on every channel, normalised as the card says (Picasso's grey 128,
    /// black 0, white 255).
    Pixel(u8),
    /// The image's own per-channel mean.
    ImageMean,
    /// A Gaussian-blurred copy of the image (sigma in pixels).
    Blur(f32),
}

impl Fill {
    /// The blurred-copy fill for an `h` x `w` input: sigma a sixteenth of the longer side.
    pub fn blur_for(h: usize, w: usize) -> Fill {
        Fill::Blur(blur_sigma(h, w))
    }

    /// The fills a user picks from, by name: the CLI's `--fill` and the app's menu.
    pub fn presets(h: usize, w: usize) -> [(&'static str, Fill); 6] {
        [
            ("zero", Fill::Constant(0.0)),
            ("grey", Fill::Pixel(128)),
            ("black", Fill::Pixel(0)),
            ("white", Fill::Pixel(255)),
            ("mean", Fill::ImageMean),
            ("blur", Fill::blur_for(h, w)),
        ]
    }

    /// A preset's name or a number (a constant in normalised space, Captum's `baselines`).
    pub fn parse(s: &str, h: usize, w: usize) -> Result<Fill> {
        let s = s.trim();
        let alias = if s == "gray" { "grey" } else { s };
        if let Some((_, f)) = Fill::presets(h, w).into_iter().find(|(n, _)| *n == alias) {
            return Ok(f);
        }
        match s.parse::<f32>() {
            Ok(v) if v.is_finite() => Ok(Fill::Constant(v)),
            _ => Err(Error::invalid(format!("--fill '{s}': a number, zero, grey, black, white, mean or blur"))),
        }
    }

    /// A short description.
    pub fn label(&self) -> String {
        match self {
            Fill::Constant(v) if *v == 0.0 => "zero (normalised)".into(),
            Fill::Constant(v) => format!("{v} (normalised)"),
            Fill::Pixel(128) => "grey".into(),
            Fill::Pixel(0) => "black".into(),
            Fill::Pixel(255) => "white".into(),
            Fill::Pixel(p) => format!("pixel {p}"),
            Fill::ImageMean => "image mean".into(),
            Fill::Blur(s) => format!("blurred copy (sigma {s:.1} px)"),
        }
    }
}

/// The blur sigma for blurred fills and baselines of an `h` x `w` input.
pub fn blur_sigma(h: usize, w: usize) -> f32 {
    (h.max(w) as f32 / 16.0).max(1.0)
}

/// A rectangle in input pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roi {
    pub x: usize,
    pub y: usize,
    pub width: usize,
    pub height: usize,
}

/// Largest number of occluded copies per forward pass.
pub const MAX_BATCH: usize = 1024;

/// Most windows per axis in Picasso's preset.
pub const MAX_WINDOWS: usize = 1024;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OcclusionParams {
    /// Window (height, width) in pixels.
    pub window: (usize, usize),
    /// Stride (y, x) in pixels.
    pub stride: (usize, usize),
    pub fill: Fill,
    /// Occluded copies per forward pass.
    pub batch_size: usize,
    /// Only windows lying inside this rectangle.
    pub roi: Option<Roi>,
}

impl OcclusionParams {
    /// Picasso's preset: a window of `fraction` of the side and `windows` positions per axis.
    pub fn picasso(height: usize, width: usize, fraction: f32, windows: usize, fill: Fill) -> Result<Self> {
        if !(0.0..=1.0).contains(&fraction) || fraction == 0.0 || windows == 0 || windows > MAX_WINDOWS {
            return Err(Error::invalid(format!("window fraction must be in (0, 1] and windows per axis in 1..={MAX_WINDOWS}")));
        }
        let wh = ((height as f32 * fraction).round() as usize).max(1);
        let ww = ((width as f32 * fraction).round() as usize).max(1);
        let step = |side: usize, win: usize| if windows <= 1 { side } else { ((side - win) / (windows - 1)).max(1) };
        Ok(OcclusionParams { window: (wh, ww), stride: (step(height, wh), step(width, ww)), fill, batch_size: 16, roi: None })
    }

    pub fn validate(&self, height: usize, width: usize) -> Result<()> {
        let (wh, ww) = self.window;
        let (sy, sx) = self.stride;
        if wh == 0 || ww == 0 {
            return Err(Error::invalid("the occlusion window must be at least 1 pixel"));
        }
        if sy == 0 || sx == 0 {
            return Err(Error::invalid("the occlusion stride must be at least 1 pixel"));
        }
        if wh > height || ww > width {
            return Err(Error::invalid(format!("the occlusion window {wh}x{ww} is larger than the {height}x{width} input")));
        }
        if let Some(r) = self.roi
            && (r.width < ww || r.height < wh || r.x.checked_add(r.width).is_none_or(|e| e > width) || r.y.checked_add(r.height).is_none_or(|e| e > height))
        {
            return Err(Error::invalid(format!(
                "the region of interest {}x{} at ({}, {}) must lie inside the {height}x{width} input and hold one window",
                r.width, r.height, r.x, r.y
            )));
        }
        if self.batch_size == 0 || self.batch_size > MAX_BATCH {
            return Err(Error::invalid(format!("the batch size must be in 1..={MAX_BATCH}")));
        }
        if let Fill::Constant(v) | Fill::Blur(v) = self.fill
            && !v.is_finite()
        {
            return Err(Error::invalid("the occlusion fill must be a finite number"));
        }
        Ok(())
    }

    /// Top-left corners of all windows, row by row.
    pub fn windows(&self, height: usize, width: usize) -> Vec<(usize, usize)> {
        let (wh, ww) = self.window;
        let (sy, sx) = self.stride;
        let (y0, x0, h, w) = match self.roi {
            Some(r) => (r.y, r.x, r.height, r.width),
            None => (0, 0, height, width),
        };
        let ys: Vec<usize> = (0..).map(|i| y0 + i * sy).take_while(|y| y + wh <= y0 + h).collect();
        let xs: Vec<usize> = (0..).map(|i| x0 + i * sx).take_while(|x| x + ww <= x0 + w).collect();
        ys.iter().flat_map(|&y| xs.iter().map(move |&x| (y, x))).collect()
    }
}

/// Running state of an occlusion: per-pixel sums and counts, so a view can draw the map as
/// batches finish.
#[derive(Clone, Debug)]
pub struct OcclusionProgress {
    pub done: usize,
    pub total: usize,
    pub map: SaliencyMap,
}

/// The fill values for every input value, `[C, H, W]` flattened.
pub fn fill_values(fill: &Fill, x: &[f32], model: &Classifier) -> Vec<f32> {
    let spec = &model.card.input;
    let (c, hw) = (spec.channels, spec.height * spec.width);
    match fill {
        Fill::Constant(v) => vec![*v; x.len()],
        Fill::Pixel(p) => (0..c).flat_map(|ch| std::iter::repeat_n((*p as f32 * spec.scale - spec.mean[ch]) / spec.std[ch], hw)).collect(),
        Fill::ImageMean => (0..c)
            .flat_map(|ch| {
                let m = x[ch * hw..(ch + 1) * hw].iter().sum::<f32>() / hw as f32;
                std::iter::repeat_n(m, hw)
            })
            .collect(),
        Fill::Blur(sigma) => super::baseline::gaussian_blur(x, c, spec.height, spec.width, *sigma),
    }
}

/// Each window's refinement level: 0 on the coarse grid (every 8th window along each axis),
/// 1 on every 4th, 2 on every 2nd, 3 for the rest.
fn levels(windows: &[(usize, usize)]) -> Vec<u8> {
    let mut ys: Vec<usize> = windows.iter().map(|w| w.0).collect();
    let mut xs: Vec<usize> = windows.iter().map(|w| w.1).collect();
    ys.sort_unstable();
    ys.dedup();
    xs.sort_unstable();
    xs.dedup();
    windows
        .iter()
        .map(|&(y, x)| {
            let (iy, ix) = (ys.binary_search(&y).unwrap_or(0), xs.binary_search(&x).unwrap_or(0));
            let every = |n: usize| iy % n == 0 && ix % n == 0;
            if every(8) {
                0
            } else if every(4) {
                1
            } else if every(2) {
                2
            } else {
                3
            }
        })
        .collect()
}

/// The windows in the order they are computed: the coarse grid first, then every 4th window,
/// every 2nd, then the rest, so the first partial maps already cover the whole image
/// coarsely. Each level keeps row-major order.
pub fn coarse_first(windows: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let lv = levels(windows);
    let mut order: Vec<usize> = (0..windows.len()).collect();
    order.sort_by_key(|&i| lv[i]); // stable: row-major within a level
    order.into_iter().map(|i| windows[i]).collect()
}

/// How many windows the coarse grid has: after that many, the partial map is a coarse map of
/// the whole image (4x4 windows of EfficientNet-Lite0's 27x27 at 16/8).
pub fn coarse_grid_len(windows: &[(usize, usize)]) -> usize {
    levels(windows).iter().filter(|&&l| l == 0).count()
}

/// Occlusion map of `target` for the normalised input `x` (`[C, H, W]`). `on_batch` sees the
/// map so far after every batch: the windows run coarse grid first ([`coarse_first`]) and a
/// partial map fills the pixels no window has covered yet from the nearest covered one, so
/// the first picture (after 1/50 of the windows) is a coarse map of the whole image.
pub fn occlusion(
    model: &Classifier,
    x: &[f32],
    target: usize,
    params: &OcclusionParams,
    progress: Progress<'_>,
    on_batch: &mut dyn FnMut(&OcclusionProgress),
) -> Result<SaliencyMap> {
    let spec = &model.card.input;
    let (c, h, w) = (spec.channels, spec.height, spec.width);
    params.validate(h, w)?;
    let windows = coarse_first(&params.windows(h, w));
    let fill = fill_values(&params.fill, x, model);
    // Every forward pass has the same batch size (the last one padded with copies of the
    // input), so the unoccluded logit and the occluded ones come from the same kernels: a
    // window the model ignores then changes nothing, bit for bit.
    let batch_size = params.batch_size.min(windows.len()).max(1);
    let padded_logits = |mut xs: Vec<f32>, n: usize| -> Result<Vec<Vec<f32>>> {
        for _ in n..batch_size {
            xs.extend_from_slice(x);
        }
        let mut l = model.logits(model.tensor_from(xs, batch_size))?;
        l.truncate(n);
        Ok(l)
    };
    let base = padded_logits(x.to_vec(), 1)?[0][target];
    let (wh, ww) = params.window;
    let mut sum = vec![0.0f64; h * w];
    let mut count = vec![0u32; h * w];
    let plane = h * w;
    let batches: Vec<&[(usize, usize)]> = windows.chunks(batch_size).collect();
    let occluded_logits = |i: usize| -> Result<Vec<Vec<f32>>> {
        let batch = batches[i];
        let mut xs = Vec::with_capacity(batch.len() * x.len());
        for &(y0, x0) in batch {
            let start = xs.len();
            xs.extend_from_slice(x);
            let copy = &mut xs[start..];
            for ch in 0..c {
                for y in y0..y0 + wh {
                    let row = ch * plane + y * w;
                    copy[row + x0..row + x0 + ww].copy_from_slice(&fill[row + x0..row + x0 + ww]);
                }
            }
        }
        padded_logits(xs, batch.len())
    };
    let mut done = 0;
    ordered_chunks(workers_for(&model.device), batches.len(), progress, &occluded_logits, &mut |i, logits| {
        let batch = batches[i];
        for (&(y0, x0), l) in batch.iter().zip(&logits) {
            let delta = (base - l[target]) as f64;
            for y in y0..y0 + wh {
                for xx in x0..x0 + ww {
                    sum[y * w + xx] += delta;
                    count[y * w + xx] += 1;
                }
            }
        }
        done += batch.len();
        progress.report(done, windows.len());
        let map = if done < windows.len() { partial_map(&sum, &count, c, h, w) } else { plane_to_map(&sum, &count, c, h, w) };
        on_batch(&OcclusionProgress { done, total: windows.len(), map });
        Ok(())
    })?;
    Ok(plane_to_map(&sum, &count, c, h, w))
}

/// The map so far, its uncovered pixels filled from the nearest covered pixel in their row,
/// and rows with none from the nearest filled row (a picture, not a result: the final map
/// never comes through here).
fn partial_map(sum: &[f64], count: &[u32], c: usize, h: usize, w: usize) -> SaliencyMap {
    let mut plane: Vec<Option<f32>> = sum.iter().zip(count).map(|(&s, &n)| (n > 0).then(|| (s / n as f64) as f32)).collect();
    let nearest = |line: &mut [Option<f32>]| {
        let known: Vec<usize> = (0..line.len()).filter(|&i| line[i].is_some()).collect();
        if known.is_empty() {
            return;
        }
        let mut k = 0;
        for i in 0..line.len() {
            while k + 1 < known.len() && known[k + 1].abs_diff(i) <= known[k].abs_diff(i) {
                k += 1;
            }
            if line[i].is_none() {
                line[i] = line[known[k]];
            }
        }
    };
    for row in plane.chunks_mut(w) {
        nearest(row);
    }
    let mut rows: Vec<Option<Vec<Option<f32>>>> = plane.chunks(w).map(|r| r[0].is_some().then(|| r.to_vec())).collect();
    let filled: Vec<usize> = (0..h).filter(|&y| rows[y].is_some()).collect();
    if !filled.is_empty() {
        for y in 0..h {
            if rows[y].is_none() {
                let src = *filled.iter().min_by_key(|&&f| f.abs_diff(y)).unwrap_or(&0);
                rows[y] = rows[src].clone();
            }
        }
    }
    let plane: Vec<f32> = rows.into_iter().flat_map(|r| r.unwrap_or_else(|| vec![None; w])).map(|v| v.unwrap_or(0.0)).collect();
    let mut values = Vec::with_capacity(c * h * w);
    for _ in 0..c {
        values.extend_from_slice(&plane);
    }
    SaliencyMap::new(c, h, w, values)
}

fn plane_to_map(sum: &[f64], count: &[u32], c: usize, h: usize, w: usize) -> SaliencyMap {
    let plane: Vec<f32> = sum.iter().zip(count).map(|(&s, &n)| if n == 0 { 0.0 } else { (s / n as f64) as f32 }).collect();
    let mut values = Vec::with_capacity(c * h * w);
    for _ in 0..c {
        values.extend_from_slice(&plane);
    }
    SaliencyMap::new(c, h, w, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(window: usize, stride: usize) -> OcclusionParams {
        OcclusionParams { window: (window, window), stride: (stride, stride), fill: Fill::Constant(0.0), batch_size: 4, roi: None }
    }

    #[test]
    fn windows_follow_captum() {
        assert_eq!(params(4, 2).windows(28, 28).len(), 13 * 13);
        assert_eq!(params(16, 8).windows(224, 224).len(), 27 * 27);
        assert_eq!(params(4, 4).windows(32, 32).len(), 64);
        assert!(params(30, 2).validate(28, 28).is_err());
        assert!(params(4, 0).validate(28, 28).is_err());
    }

    #[test]
    fn picasso_preset_spans_the_image() {
        let p = OcclusionParams::picasso(224, 224, 0.25, 8, Fill::Pixel(128)).unwrap();
        assert_eq!(p.window, (56, 56));
        let wins = p.windows(224, 224);
        assert_eq!(wins.len(), 64);
        assert_eq!(wins.last().unwrap().0 + 56, 224);
    }

    #[test]
    fn a_coarse_grid_runs_first_and_its_picture_covers_the_image() {
        let wins = params(16, 8).windows(224, 224);
        let order = coarse_first(&wins);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        let mut all = wins.clone();
        all.sort_unstable();
        assert_eq!(sorted, all, "a permutation of the windows");
        assert_eq!(order[..16].iter().filter(|(y, x)| y % 64 == 0 && x % 64 == 0).count(), 16, "4x4 coarse windows first");
        assert_eq!(order[16], (0, 32), "then every fourth window");
        assert_eq!(order[49].0 % 32 + order[49].1 % 32, 16, "then every second");
        assert_eq!(coarse_grid_len(&wins), 16);
        // one covered window: its value everywhere
        let (h, w) = (8, 8);
        let mut sum = vec![0.0f64; h * w];
        let mut count = vec![0u32; h * w];
        for y in 2..4 {
            for x in 4..6 {
                sum[y * w + x] = 3.0;
                count[y * w + x] = 1;
            }
        }
        assert!(partial_map(&sum, &count, 1, h, w).values.iter().all(|&v| v == 3.0));
        // nothing covered: zeros, no panic
        assert!(partial_map(&vec![0.0; 64], &vec![0; 64], 1, h, w).values.iter().all(|&v| v == 0.0));
    }
}
