//! Can a map be trusted? The model-randomisation sanity check (Adebayo et al.: randomise the
//! layers from the top down; a map that does not change does not explain the model) and
//! deletion / insertion curves with their areas.

use burn::module::{ModuleMapper, Param};
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::SaliencyMap;
use crate::error::Result;
use crate::models::{Architecture, Classifier, NetMap, NetModule, read_floats};
use crate::predict::softmax;
use crate::progress::Progress;
use crate::rng::Rng;

/// Layer groups from the output down to the input.
pub fn groups_top_down(model: &Classifier) -> Result<Vec<String>> {
    let arch = &model.card.architecture;
    let names = model.net.torch_tensors(arch)?;
    let mut groups: Vec<String> = Vec::new();
    for (name, _) in names {
        let g = arch.layer_group(&name);
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    groups.reverse();
    Ok(groups)
}

struct Randomiser<'a> {
    stack: Vec<(String, String)>,
    arch: &'a Architecture,
    namer_groups: &'a [String],
    rng: Rng,
    device: burn::tensor::Device,
}

impl ModuleMapper for Randomiser<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack.push((name.to_string(), container_type.to_string()));
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.stack.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let container = self.stack.last().map(|(_, c)| c.as_str()).unwrap_or("");
        if container != "Struct:Conv2d" && container != "Struct:Linear" {
            return param;
        }
        let path: Vec<String> = self.stack.iter().map(|(n, _)| n.clone()).collect();
        let name = crate::weights::torch_name_of(self.arch, &path);
        if !self.namer_groups.contains(&self.arch.layer_group(&name)) {
            return param;
        }
        let tensor = param.val();
        let shape = tensor.dims();
        let Ok(values) = read_floats(tensor) else { return param };
        let n = values.len().max(1) as f64;
        let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
        let std = (values.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt().max(1e-3);
        let fresh: Vec<f32> = values.iter().map(|_| (self.rng.normal() * std) as f32).collect();
        let t = Tensor::<D>::from_data(TensorData::new(fresh, shape), &self.device);
        let id = param.id;
        param.transform_for_load(t, id)
    }
}

impl NetMap for Randomiser<'_> {
    fn map<M: NetModule>(&mut self, module: M) -> Result<M> {
        Ok(module.map(self))
    }
}

/// A copy of the model with the conv/linear weights of `groups` re-drawn at random (same
/// spread as the trained weights, seeded).
pub fn randomised(model: &Classifier, groups: &[String], seed: u64) -> Classifier {
    let arch = &model.card.architecture;
    let mut r = Randomiser { stack: Vec::new(), arch, namer_groups: groups, rng: Rng::new(seed), device: model.device.clone() };
    let net = model.net.clone().map_with(&mut r).unwrap_or_else(|_| model.net.clone());
    model.with_net(net)
}

/// Spearman rank correlation (average ranks for ties).
pub fn spearman(a: &[f32], b: &[f32]) -> f64 {
    let ra = ranks(a);
    let rb = ranks(b);
    pearson(&ra, &rb)
}

fn ranks(v: &[f32]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0;
        for k in i..=j {
            r[idx[k]] = avg;
        }
        i = j + 1;
    }
    r
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    if va == 0.0 || vb == 0.0 {
        return if va == vb { 1.0 } else { 0.0 };
    }
    cov / (va.sqrt() * vb.sqrt())
}

/// How much checking a map gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SanityMode {
    None,
    /// The fully randomised model only: one more map.
    Quick,
    /// Randomise the layers from the top down, one map per layer group.
    Cascade,
}

impl SanityMode {
    /// Quick for gradient maps and Grad-CAM, none for occlusion (a second occlusion costs as
    /// much as the first) and attacks.
    pub fn default_for(method: &super::Method) -> SanityMode {
        if method.is_attack() || matches!(method, super::Method::Occlusion(_)) { SanityMode::None } else { SanityMode::Quick }
    }
}

/// One step of the cascade.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SanityStep {
    /// The lowest group randomised so far (all groups above it are random too).
    pub randomised_down_to: String,
    /// Rank correlation of |map| with the original |map|.
    pub spearman: f64,
}

/// The result: the cascade, and whether the map survived randomisation of the whole model.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SanityReport {
    pub steps: Vec<SanityStep>,
    /// Rank correlation with every group randomised; near 1 means the map does not depend on
    /// what the model learned.
    pub score: f64,
    pub passed: bool,
}

/// Above this rank correlation after full randomisation, a map is flagged.
pub const SANITY_FLAG_SPEARMAN: f64 = 0.5;

/// Randomise the groups from the top down (cascading) and compare each map with `original`.
/// `cascade == false` only compares the fully randomised model (one extra map).
pub fn sanity_check(
    model: &Classifier,
    original: &SaliencyMap,
    cascade: bool,
    seed: u64,
    progress: Progress<'_>,
    map_of: &mut dyn FnMut(&Classifier) -> Result<SaliencyMap>,
) -> Result<SanityReport> {
    let groups = groups_top_down(model)?;
    let abs_orig: Vec<f32> = original.sum_over_channels().values.iter().map(|v| v.abs()).collect();
    let cuts: Vec<usize> = if cascade { (1..=groups.len()).collect() } else { vec![groups.len()] };
    let mut steps = Vec::new();
    for (i, &k) in cuts.iter().enumerate() {
        progress.check()?;
        let m = randomised(model, &groups[..k], seed);
        let map = map_of(&m)?;
        let abs: Vec<f32> = map.sum_over_channels().values.iter().map(|v| v.abs()).collect();
        steps.push(SanityStep { randomised_down_to: groups[k - 1].clone(), spearman: spearman(&abs_orig, &abs) });
        progress.report(i + 1, cuts.len());
    }
    let score = steps.last().map(|s| s.spearman).unwrap_or(1.0);
    Ok(SanityReport { steps, score, passed: score < SANITY_FLAG_SPEARMAN })
}

/// A deletion or insertion curve: the target's probability as the most important pixels are
/// removed from the image (or inserted into a blurred copy).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PerturbationCurve {
    pub fractions: Vec<f64>,
    pub probabilities: Vec<f64>,
    /// Area under the curve (trapezoid rule over the fraction axis).
    pub auc: f64,
}

/// Deletion (`insert == false`: important pixels set to the baseline first; a low AUC is
/// good) and insertion (`insert == true`: important pixels restored first on a blurred image;
/// a high AUC is good).
pub fn perturbation_curve(
    model: &Classifier,
    x: &[f32],
    map: &SaliencyMap,
    target: usize,
    steps: usize,
    insert: bool,
    progress: Progress<'_>,
) -> Result<PerturbationCurve> {
    let spec = &model.card.input;
    let (c, h, w) = (spec.channels, spec.height, spec.width);
    let hw = h * w;
    let steps = steps.max(1);
    let plane = map.sum_over_channels();
    let mut order: Vec<usize> = (0..hw).collect();
    order.sort_by(|&a, &b| plane.values[b].total_cmp(&plane.values[a]));
    let reference = if insert { super::baseline::gaussian_blur(x, c, h, w, (h.max(w) as f32 / 16.0).max(1.0)) } else { vec![0.0; x.len()] };
    let fractions: Vec<f64> = (0..=steps).map(|i| i as f64 / steps as f64).collect();
    let mut probabilities = Vec::new();
    for chunk in fractions.chunks(8) {
        progress.check()?;
        let mut xs = Vec::with_capacity(chunk.len() * x.len());
        for &f in chunk {
            let n = (f * hw as f64).round() as usize;
            let (mut img, src) = if insert { (reference.clone(), x) } else { (x.to_vec(), &reference[..]) };
            for &p in &order[..n] {
                for ch in 0..c {
                    img[ch * hw + p] = src[ch * hw + p];
                }
            }
            xs.extend(img);
        }
        for l in model.logits(model.tensor_from(xs, chunk.len()))? {
            probabilities.push(softmax(&l)[target] as f64);
        }
    }
    let auc = fractions.windows(2).zip(probabilities.windows(2)).map(|(f, p)| (f[1] - f[0]) * (p[0] + p[1]) / 2.0).sum();
    Ok(PerturbationCurve { fractions, probabilities, auc })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_of_monotone_maps_is_one() {
        let a = [1.0, 5.0, 2.0, 9.0];
        let b = [10.0, 50.0, 20.0, 90.0];
        assert!((spearman(&a, &b) - 1.0).abs() < 1e-12);
        let r = [9.0, 2.0, 5.0, 1.0];
        assert!((spearman(&a, &r) + 1.0).abs() < 1e-12);
    }
}
