//! One training batch's loss and parameter gradients, whole or as two halves on two threads,
//! and the bookkeeping of gradients by parameter (adding the halves', taking out a group's).

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::weighted_cross_entropy;
use crate::error::Result;
use crate::models::read_floats;
use crate::parallel::PinnedPool;
use crate::progress::Progress;

/// One training batch's logits (read back), loss and parameter gradients.
pub(super) struct BatchStep {
    pub(super) logits: Vec<f32>,
    pub(super) loss: f64,
    pub(super) grads: GradientsParams,
}

/// The loss and gradients of one batch (`x` holds its `[C, H, W]` images one after another).
///
/// With `split` (a network whose samples do not interact: no BatchNorm batch statistics, no
/// random dropout), the batch runs as two halves on two threads, each with its own copy of the
/// parameters, and their gradients are added weighted by each half's share of the class
/// weights: the whole batch's weighted mean loss, on both cores. burn's CPU backend keeps
/// about 1.3 cores busy on one small-CNN batch (its element-wise operations run on one thread).
/// Always two halves, whatever the number of threads, so a seed gives the same numbers on any
/// machine; they differ from one unsplit pass only by float rounding.
#[allow(clippy::too_many_arguments)]
pub(super) fn batch_gradients<M: Module + Clone + Sync>(
    model: &M,
    forward: fn(&M, Tensor<4>) -> Tensor<2>,
    x: &[f32],
    labels: &[i64],
    weights: &[f32],
    [c, h, w]: [usize; 3],
    split: bool,
    workers: usize,
    pinned: &PinnedPool,
    ad: &Device,
    progress: Progress<'_>,
) -> Result<BatchStep> {
    let b = labels.len();
    let one = |r: std::ops::Range<usize>, model: &M| -> Result<BatchStep> {
        let n = r.len();
        let chw = c * h * w;
        let xs = Tensor::<4>::from_data(TensorData::new(x[r.start * chw..r.end * chw].to_vec(), [n, c, h, w]), ad);
        let targets = Tensor::<1, Int>::from_data(TensorData::new(labels[r.clone()].to_vec(), [n]), ad);
        let wt = Tensor::<1>::from_data(TensorData::new(weights[r].to_vec(), [n]), ad);
        let logits = forward(model, xs);
        // Read the logits back once: predictions and per-sample losses come from them.
        let host = read_floats(logits.clone().detach())?;
        let loss = weighted_cross_entropy(logits, targets, wt);
        let loss_value = read_floats(loss.clone().detach())?[0] as f64;
        Ok(BatchStep { logits: host, loss: loss_value, grads: GradientsParams::from_grads(loss.backward(), model) })
    };
    if !split || b < 2 {
        return pinned.run(|| one(0..b, model));
    }
    let parts = [0..b.div_ceil(2), b.div_ceil(2)..b];
    // each half differentiates its own leaves (the same parameter ids), so the two graphs
    // share no node
    let replicas: Vec<M> = parts.iter().map(|_| model.clone().map(&mut FreshLeaves)).collect();
    let mut halves = Vec::with_capacity(parts.len());
    crate::parallel::ordered_chunks(workers, parts.len(), progress, &|i| one(parts[i].clone(), &replicas[i]), &mut |_, s| {
        halves.push(s);
        Ok(())
    })?;
    let sums: Vec<f64> = parts.iter().map(|r| weights[r.clone()].iter().map(|&v| v as f64).sum()).collect();
    let total: f64 = sums.iter().sum();
    let shares: Vec<f32> = sums.iter().map(|s| (s / total) as f32).collect();
    let mut logits = Vec::with_capacity(halves.iter().map(|s| s.logits.len()).sum());
    let mut loss = 0.0;
    let mut grads = Vec::with_capacity(halves.len());
    for (s, &share) in halves.into_iter().zip(&shares) {
        logits.extend(s.logits);
        loss += s.loss * share as f64;
        grads.push(s.grads);
    }
    let mut sum = WeightedSum { parts: grads, shares, out: GradientsParams::new() };
    model.visit(&mut sum);
    Ok(BatchStep { logits, loss, grads: sum.out })
}

/// A copy of a module whose parameters are new autodiff leaves (same ids, same values).
struct FreshLeaves;

impl ModuleMapper for FreshLeaves {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|t| if t.is_require_grad() { t.detach().require_grad() } else { t })
    }
}

/// `out[id] = sum of shares[i] * parts[i][id]` for every parameter the parts have gradients of.
struct WeightedSum {
    parts: Vec<GradientsParams>,
    shares: Vec<f32>,
    out: GradientsParams,
}

impl ModuleVisitor for WeightedSum {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let mut acc: Option<Tensor<D>> = None;
        for (g, &share) in self.parts.iter_mut().zip(&self.shares) {
            if let Some(t) = g.remove::<D>(param.id) {
                let t = t.mul_scalar(share);
                acc = Some(match acc {
                    Some(a) => a + t,
                    None => t,
                });
            }
        }
        if let Some(a) = acc {
            self.out.register(param.id, a);
        }
    }
}

/// Moves the gradients of `ids` out of `grads` (an optimiser step for one parameter group).
pub(super) fn take_params<M: Module>(grads: &mut GradientsParams, model: &M, ids: &[ParamId]) -> GradientsParams {
    struct Take<'a> {
        from: &'a mut GradientsParams,
        ids: &'a [ParamId],
        out: GradientsParams,
    }
    impl ModuleVisitor for Take<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if self.ids.contains(&param.id)
                && let Some(g) = self.from.remove::<D>(param.id)
            {
                self.out.register(param.id, g);
            }
        }
    }
    let mut take = Take { from: grads, ids, out: GradientsParams::new() };
    model.visit(&mut take);
    take.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::NetModule;
    use crate::models::small_cnn::{SmallCnn, SmallCnnConfig};
    use crate::rng::Rng;

    /// Every parameter gradient of `model` in `g`, flattened, in the module's order.
    fn flat(model: &SmallCnn, g: &GradientsParams) -> Vec<Vec<f32>> {
        struct Collect<'a>(&'a GradientsParams, Vec<Vec<f32>>);
        impl ModuleVisitor for Collect<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let t = self.0.get::<D>(param.id).expect("a gradient for every parameter");
                self.1.push(read_floats(t).expect("f32"));
            }
        }
        let mut c = Collect(g, Vec::new());
        model.visit(&mut c);
        c.1
    }

    #[test]
    fn a_split_batch_has_the_whole_batchs_gradient_and_the_same_numbers_on_any_thread_count() {
        let ad = Device::flex().autodiff();
        ad.seed(7);
        let cfg = SmallCnnConfig::two_conv(1, 12, 4, 6, 3, 16, 5);
        let net = <SmallCnn as NetModule>::init(&cfg, &ad).expect("a network").train();
        assert!(net.samples_independent());
        let b = 7;
        let mut rng = Rng::new(3);
        let x: Vec<f32> = (0..b * 144).map(|_| rng.normal() as f32).collect();
        let labels: Vec<i64> = (0..b).map(|i| (i % 5) as i64).collect();
        // unequal class weights: the halves' shares are not 1/2 each
        let weights: Vec<f32> = labels.iter().map(|&l| [1.0, 2.5, 0.5, 1.0, 4.0][l as usize]).collect();
        let fwd = |m: &SmallCnn, x| m.forward(x);
        let pinned = PinnedPool::lend();
        let run =
            |split, workers| batch_gradients(&net, fwd, &x, &labels, &weights, [1, 12, 12], split, workers, &pinned, &ad, Progress::none()).expect("gradients");
        let whole = run(false, 1);
        let (one, two) = (run(true, 1), run(true, 2));
        assert_eq!(whole.logits.len(), b * 5);
        for (a, w) in one.logits.iter().zip(&whole.logits) {
            assert!((a - w).abs() < 1e-5, "logits {a} vs {w}");
        }
        assert!((one.loss - whole.loss).abs() < 1e-6, "loss {} vs {}", one.loss, whole.loss);
        let (gw, g1, g2) = (flat(&net, &whole.grads), flat(&net, &one.grads), flat(&net, &two.grads));
        assert_eq!(gw.len(), 8, "two convolutions and two linear layers, weights and biases");
        for (pw, p1) in gw.iter().zip(&g1) {
            let scale = pw.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(scale > 0.0);
            for (a, w) in p1.iter().zip(pw) {
                assert!((a - w).abs() <= 1e-5 * scale, "gradient {a} vs {w} (largest {scale})");
            }
        }
        // the halves are fixed, not the threads: one or two workers give the same bits
        assert_eq!(g1, g2);
        assert_eq!(one.logits, two.logits);
        assert_eq!(one.loss.to_bits(), two.loss.to_bits());
    }

    #[test]
    fn batchnorm_or_dropout_keeps_a_batch_whole() {
        let dev = Device::flex();
        let mut cfg = SmallCnnConfig::two_conv(1, 12, 4, 6, 3, 16, 5);
        cfg.convs[0].batchnorm = true;
        assert!(!<SmallCnn as NetModule>::init(&cfg, &dev).expect("net").samples_independent());
        let mut cfg = SmallCnnConfig::two_conv(1, 12, 4, 6, 3, 16, 5);
        cfg.dropout = 0.25;
        assert!(!<SmallCnn as NetModule>::init(&cfg, &dev).expect("net").samples_independent());
    }
}
