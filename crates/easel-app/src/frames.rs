//! Time the UI thread spends per frame (`logic` + `ui`), for the frame-time report.

#[derive(Default)]
pub struct FrameStats {
    pub work_ms: Vec<f32>,
    pub measuring: bool,
    /// Frames drawn since the last reset (measured or not).
    pub frames: usize,
}

impl FrameStats {
    pub fn percentile(&self, p: f32) -> Option<f32> {
        if self.work_ms.is_empty() {
            return None;
        }
        let mut v = self.work_ms.clone();
        v.sort_by(f32::total_cmp);
        let i = ((v.len() - 1) as f32 * p / 100.0).round() as usize;
        Some(v[i])
    }

    pub fn reset(&mut self) {
        self.work_ms.clear();
        self.frames = 0;
    }

    /// "N frames, p50 .. ms, p99 .. ms, max .. ms".
    pub fn summary(&self) -> Option<String> {
        let (p50, p99) = (self.percentile(50.0)?, self.percentile(99.0)?);
        let max = self.work_ms.iter().copied().fold(0.0f32, f32::max);
        Some(format!("{} frames, p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms", self.work_ms.len()))
    }

    /// Frames drawn since the last reset, and since when.
    pub fn drawn(&self) -> usize {
        self.frames
    }
}
