//! `SaliencyMap`: an attribution per input value, the one thing every method returns and
//! every view draws.

use serde::{Deserialize, Serialize};

/// An attribution map over the model's input: `[C, H, W]` (Captum's layout), or `[1, H, W]`
/// for maps with no channels (Grad-CAM).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SaliencyMap {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// Channel-major values, `C * H * W` of them.
    pub values: Vec<f32>,
}

impl SaliencyMap {
    pub fn zeros(channels: usize, height: usize, width: usize) -> Self {
        SaliencyMap { channels, height, width, values: vec![0.0; channels * height * width] }
    }

    pub fn new(channels: usize, height: usize, width: usize, values: Vec<f32>) -> Self {
        assert_eq!(values.len(), channels * height * width, "map size");
        SaliencyMap { channels, height, width, values }
    }

    /// The `.npy` shape: `[C, H, W]`, or `[H, W]` for a single-plane map when `squeeze`.
    pub fn shape(&self, squeeze: bool) -> Vec<usize> {
        if squeeze && self.channels == 1 { vec![self.height, self.width] } else { vec![self.channels, self.height, self.width] }
    }

    pub fn max_abs(&self) -> f32 {
        self.values.iter().fold(0.0f32, |m, v| m.max(v.abs()))
    }

    pub fn sum(&self) -> f64 {
        self.values.iter().map(|&v| v as f64).sum()
    }

    /// One plane: the value at each pixel with the largest magnitude over channels, sign kept
    /// (Picasso's "max over channels").
    pub fn max_over_channels(&self) -> SaliencyMap {
        let hw = self.height * self.width;
        let values = (0..hw).map(|i| (0..self.channels).map(|c| self.values[c * hw + i]).fold(0.0f32, |m, v| if v.abs() > m.abs() { v } else { m })).collect();
        SaliencyMap::new(1, self.height, self.width, values)
    }

    /// One plane: the sum over channels (what Captum's visualiser draws).
    pub fn sum_over_channels(&self) -> SaliencyMap {
        let hw = self.height * self.width;
        let values = (0..hw).map(|i| (0..self.channels).map(|c| self.values[c * hw + i]).sum()).collect();
        SaliencyMap::new(1, self.height, self.width, values)
    }

    pub fn map_values(&self, f: impl Fn(f32) -> f32) -> SaliencyMap {
        SaliencyMap { values: self.values.iter().map(|&v| f(v)).collect(), ..self.clone() }
    }

    /// Value at pixel (x, y) of the channel-summed plane.
    pub fn value_at(&self, x: usize, y: usize) -> Option<f32> {
        (x < self.width && y < self.height).then(|| {
            let hw = self.height * self.width;
            (0..self.channels).map(|c| self.values[c * hw + y * self.width + x]).sum()
        })
    }

    /// Bilinear resize of every channel to `height` x `width` (PyTorch's `align_corners=False`).
    pub fn upsample_bilinear(&self, height: usize, width: usize) -> SaliencyMap {
        let (ih, iw) = (self.height, self.width);
        let mut out = Vec::with_capacity(self.channels * height * width);
        let sy = ih as f32 / height as f32;
        let sx = iw as f32 / width as f32;
        for c in 0..self.channels {
            let plane = &self.values[c * ih * iw..(c + 1) * ih * iw];
            for y in 0..height {
                let fy = ((y as f32 + 0.5) * sy - 0.5).max(0.0);
                let y0 = (fy.floor() as usize).min(ih - 1);
                let y1 = (y0 + 1).min(ih - 1);
                let wy = fy - y0 as f32;
                for x in 0..width {
                    let fx = ((x as f32 + 0.5) * sx - 0.5).max(0.0);
                    let x0 = (fx.floor() as usize).min(iw - 1);
                    let x1 = (x0 + 1).min(iw - 1);
                    let wx = fx - x0 as f32;
                    let top = plane[y0 * iw + x0] * (1.0 - wx) + plane[y0 * iw + x1] * wx;
                    let bottom = plane[y1 * iw + x0] * (1.0 - wx) + plane[y1 * iw + x1] * wx;
                    out.push(top * (1.0 - wy) + bottom * wy);
                }
            }
        }
        SaliencyMap::new(self.channels, height, width, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsampling_a_constant_stays_constant_and_corners_follow_pytorch() {
        let m = SaliencyMap::new(1, 2, 2, vec![1.0, 2.0, 3.0, 4.0]);
        let up = m.upsample_bilinear(4, 4);
        // PyTorch F.interpolate(..., 4, mode="bilinear", align_corners=False) first row
        let want = [1.0, 1.25, 1.75, 2.0];
        for (a, b) in up.values[..4].iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{:?}", &up.values[..4]);
        }
        let c = SaliencyMap::new(1, 3, 3, vec![0.5; 9]).upsample_bilinear(7, 5);
        assert!(c.values.iter().all(|v| (v - 0.5).abs() < 1e-6));
    }

    #[test]
    fn max_over_channels_keeps_the_sign_of_the_largest() {
        let m = SaliencyMap::new(2, 1, 2, vec![1.0, -3.0, -2.0, 2.0]);
        assert_eq!(m.max_over_channels().values, vec![-2.0, -3.0]);
    }
}
