//! A small seeded random number generator (SplitMix64), so every seeded result in easel is the
//! same on every machine and with every dependency version.

#[derive(Clone, Debug)]
pub struct Rng(u64);

/// SplitMix64's increment.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ GAMMA)
    }

    /// The generator as it will be after `draws` calls of [`Rng::next_u64`] (SplitMix64's state
    /// only adds a constant per draw), so that a stream can be cut into pieces drawn apart.
    pub fn skip(mut self, draws: u64) -> Self {
        self.0 = self.0.wrapping_add(draws.wrapping_mul(GAMMA));
        self
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GAMMA);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_f64() * n as f64) as usize % n.max(1)
    }

    /// Standard normal (Box-Muller; two draws).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.next_f64().max(1e-300);
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_normal_moments() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        assert_eq!(a.next_u64(), b.next_u64());
        let xs: Vec<f64> = (0..20000).map(|_| a.normal()).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.03 && (var - 1.0).abs() < 0.05, "{mean} {var}");
    }

    #[test]
    fn skip_lands_where_drawing_does() {
        let mut a = Rng::new(7);
        for _ in 0..1001 {
            a.next_u64();
        }
        let mut b = Rng::new(7).skip(1001);
        assert_eq!(a.next_u64(), b.next_u64());
        let mut c = Rng::new(7);
        let first: Vec<f64> = (0..10).map(|_| c.normal()).collect();
        let mut d = Rng::new(7).skip(2 * 6);
        assert_eq!(first[6..].to_vec(), (0..4).map(|_| d.normal()).collect::<Vec<_>>());
    }
}
