//! Integrated gradients (Sundararajan et al.; Captum's `IntegratedGradients`): the path
//! integral of gradients from a baseline to the input, by Gauss-Legendre or Riemann trapezoid.

use serde::{Deserialize, Serialize};

use super::SaliencyMap;
use super::baseline::Baseline;
use super::gradients::target_gradients;
use crate::error::{Error, Result};
use crate::models::Classifier;
use crate::parallel::{batch_ranges, ordered_chunks, workers_for};
use crate::progress::Progress;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum IgMethod {
    /// Gauss-Legendre quadrature (Captum's default).
    Gausslegendre,
    /// Riemann trapezoid with Captum's weights (which sum to 1 - 1/n).
    #[value(alias = "riemann_trapezoid")]
    Trapezoid,
}

/// Largest number of integration steps accepted (Gauss-Legendre nodes cost O(n^2)).
pub const MAX_STEPS: usize = 2_000;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IgParams {
    pub steps: usize,
    pub method: IgMethod,
    pub baseline: Baseline,
    /// Path points per forward/backward pass (bounds memory).
    pub internal_batch_size: usize,
}

impl Default for IgParams {
    fn default() -> Self {
        IgParams { steps: 50, method: IgMethod::Gausslegendre, baseline: Baseline::Zero, internal_batch_size: 16 }
    }
}

/// Path positions (alphas in [0, 1]) and their weights, as Captum computes them.
pub fn path_points(n: usize, method: IgMethod) -> Result<(Vec<f64>, Vec<f64>)> {
    match method {
        IgMethod::Gausslegendre => {
            if n == 0 || n > MAX_STEPS {
                return Err(Error::invalid(format!("integrated gradients needs 1..={MAX_STEPS} steps")));
            }
            let (x, w) = gauss_legendre(n);
            Ok((x.iter().map(|v| 0.5 * (1.0 + v)).collect(), w.iter().map(|v| 0.5 * v).collect()))
        }
        IgMethod::Trapezoid => {
            if !(2..=MAX_STEPS).contains(&n) {
                return Err(Error::invalid(format!("the trapezoid rule needs 2..={MAX_STEPS} steps")));
            }
            let alphas = (0..n).map(|i| i as f64 / (n - 1) as f64).collect();
            let mut w = vec![1.0 / n as f64; n];
            w[0] /= 2.0;
            w[n - 1] /= 2.0;
            Ok((alphas, w))
        }
    }
}

/// Nodes and weights of n-point Gauss-Legendre quadrature on [-1, 1] (ascending nodes, like
/// NumPy's `leggauss`), by Newton's method on the Legendre polynomial.
pub fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut nodes = vec![0.0; n];
    let mut weights = vec![0.0; n];
    for i in 0..n.div_ceil(2) {
        let mut z = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut dp = 0.0;
        for _ in 0..100 {
            let (mut p0, mut p1) = (1.0f64, 0.0f64);
            for j in 0..n {
                let p2 = p1;
                p1 = p0;
                p0 = ((2 * j + 1) as f64 * z * p1 - j as f64 * p2) / (j + 1) as f64;
            }
            dp = n as f64 * (z * p0 - p1) / (z * z - 1.0);
            let dz = p0 / dp;
            z -= dz;
            if dz.abs() < 1e-15 {
                break;
            }
        }
        let wv = 2.0 / ((1.0 - z * z) * dp * dp);
        nodes[i] = -z;
        nodes[n - 1 - i] = z;
        weights[i] = wv;
        weights[n - 1 - i] = wv;
    }
    (nodes, weights)
}

/// What integrated gradients returns besides the map.
#[derive(Clone, Debug)]
pub struct IgResult {
    pub map: SaliencyMap,
    /// sum(attributions) - (f(x) - f(baseline)): Captum's convergence delta, sign included.
    pub convergence_delta: f32,
    /// f(x), the target logit, so the delta's size means something.
    pub target_logit: f32,
}

pub fn integrated_gradients(model: &Classifier, x: &[f32], target: usize, params: &IgParams, progress: Progress<'_>) -> Result<IgResult> {
    let spec = &model.card.input;
    let (c, h, w) = (spec.channels, spec.height, spec.width);
    if params.internal_batch_size == 0 {
        return Err(Error::invalid("the internal batch size must be at least 1"));
    }
    let (alphas, weights) = path_points(params.steps, params.method)?;
    let base = params.baseline.values(x, model)?;
    let diff: Vec<f32> = x.iter().zip(&base).map(|(a, b)| a - b).collect();
    let n = x.len();
    let mut total = vec![0.0f64; n];
    let chunks = batch_ranges(alphas.len(), params.internal_batch_size);
    let path = |i: usize| -> Result<Vec<f32>> {
        let chunk = chunks[i].clone();
        let mut xs = Vec::with_capacity(chunk.len() * n);
        for s in chunk.clone() {
            let a = alphas[s] as f32;
            xs.extend(base.iter().zip(&diff).map(|(b, d)| b + a * d));
        }
        Ok(target_gradients(model, xs, &vec![target; chunk.len()])?.0)
    };
    let mut done = 0;
    ordered_chunks(workers_for(&model.device), chunks.len(), progress, &path, &mut |i, g| {
        for (k, s) in chunks[i].clone().enumerate() {
            let wgt = weights[s];
            for (t, gv) in total.iter_mut().zip(&g[k * n..(k + 1) * n]) {
                *t += wgt * *gv as f64;
            }
        }
        done += chunks[i].len();
        progress.report(done, alphas.len());
        Ok(())
    })?;
    let values: Vec<f32> = total.iter().zip(&diff).map(|(t, d)| (*t as f32) * d).collect();
    let ends = model.logits(model.tensor_from([x.to_vec(), base].concat(), 2))?;
    let sum: f64 = values.iter().map(|&v| v as f64).sum();
    let delta = sum - (ends[0][target] - ends[1][target]) as f64;
    Ok(IgResult { map: SaliencyMap::new(c, h, w, values), convergence_delta: delta as f32, target_logit: ends[0][target] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauss_legendre_matches_numpy() {
        // numpy.polynomial.legendre.leggauss(3)
        let (x, w) = gauss_legendre(3);
        let want_x = [-0.7745966692414834, 0.0, 0.7745966692414834];
        let want_w = [0.5555555555555556, 0.8888888888888888, 0.5555555555555556];
        for i in 0..3 {
            assert!((x[i] - want_x[i]).abs() < 1e-14 && (w[i] - want_w[i]).abs() < 1e-14);
        }
        let (_, w50) = gauss_legendre(50);
        assert!((w50.iter().sum::<f64>() - 2.0).abs() < 1e-12);
    }

    #[test]
    fn trapezoid_weights_sum_to_one_minus_one_over_n() {
        let (a, w) = path_points(10, IgMethod::Trapezoid).unwrap();
        assert_eq!(a[0], 0.0);
        assert_eq!(a[9], 1.0);
        assert!((w.iter().sum::<f64>() - 0.9).abs() < 1e-12);
    }
}
