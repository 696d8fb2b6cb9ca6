//! Cheap, noisy labels: a share of the labels replaced by a wrong class.

use serde::{Deserialize, Serialize};

use crate::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum NoiseKind {
    /// A wrong label is any other class, uniformly.
    #[default]
    Symmetric,
    /// A wrong label is always the same confusable class (class c becomes c + 1, wrapping;
    /// "pair flipping").
    Pairs,
}

/// `labels` with a `noise` share (exactly `round(noise * n)`, chosen at random) replaced by a
/// wrong class among `k`.
pub fn noisy_labels(labels: &[usize], k: usize, noise: f64, kind: NoiseKind, seed: u64) -> Vec<usize> {
    let mut out = labels.to_vec();
    if k < 2 || noise <= 0.0 {
        return out;
    }
    let mut rng = Rng::new(seed ^ 0x0015_E1AB);
    let mut order: Vec<usize> = (0..labels.len()).collect();
    rng.shuffle(&mut order);
    let flips = ((noise * labels.len() as f64).round() as usize).min(labels.len());
    for &i in &order[..flips] {
        let l = labels[i];
        out[i] = match kind {
            NoiseKind::Pairs => (l + 1) % k,
            NoiseKind::Symmetric => {
                let r = rng.below(k - 1);
                if r >= l { r + 1 } else { r }
            }
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_of_wrong_labels_is_exact_and_never_the_true_class() {
        let labels: Vec<usize> = (0..1000).map(|i| i % 5).collect();
        for kind in [NoiseKind::Symmetric, NoiseKind::Pairs] {
            let noisy = noisy_labels(&labels, 5, 0.4, kind, 3);
            let wrong = labels.iter().zip(&noisy).filter(|(a, b)| a != b).count();
            assert_eq!(wrong, 400, "{kind:?}");
            assert!(noisy.iter().all(|&l| l < 5));
        }
        let pairs = noisy_labels(&labels, 5, 0.4, NoiseKind::Pairs, 3);
        assert!(labels.iter().zip(&pairs).all(|(a, b)| a == b || *b == (a + 1) % 5));
    }
}
