//! BatchNorm in training, channels in parallel.
//!
//! burn computes a training BatchNorm (burn-backend's `batch_norm_train` and its backward) as
//! some twenty tensor operations, each a pass over the activation, and flex runs most of them
//! on one thread: with the second core idle meanwhile, a third of a demo-net training step
//! sat on one thread (perf: flex's element-wise passes and reductions, all on the training
//! thread). Every one of those operations treats a channel on its own (the statistics are per
//! channel; everything else is element-wise with per-channel values), so here each channel is
//! done whole, the channels spread over the cores: its values gathered into one row (images
//! in order, the order burn's flattened `[channels, samples]` view has), the same arithmetic
//! in the same order per element, each sum by flex's own row-sum kernel (the one its
//! reductions call) and each mean that sum divided by the count, as flex's `mean_dim` does.
//! So the values, the gradients and the running statistics are burn's bit for bit (tests
//! compare them), and trained weights do not change.

use burn::backend::{Autodiff, Flex, TensorMetadata};
use burn::nn::BatchNorm;
use burn::tensor::{DType, Shape, Tensor, TensorData};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::{Shared, contiguous, filled, graph_node, values};

/// `bn.forward(x)`. In training (an autodiff device, the layer not frozen) on the flex device,
/// through [`channel_forward`] and its backward; anything else is burn's.
pub fn batch_norm(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    let [n, c, h, w] = x.dims();
    if !(device.is_autodiff() && bn.training.is_enabled()) || x.dtype() != DType::F32 || bn.gamma.dims() != [c] || n * h * w == 0 {
        return bn.forward(x);
    }
    let (Ok(xa), Ok(ga), Ok(ba)) = (
        x.clone().try_into_primitive::<Autodiff<Flex>>(),
        bn.gamma.val().try_into_primitive::<Autodiff<Flex>>(),
        bn.beta.val().try_into_primitive::<Autodiff<Flex>>(),
    ) else {
        return bn.forward(x);
    };
    let (xv, gv, bv) = (contiguous(xa.primitive()), contiguous(ga.primitive()), contiguous(ba.primitive()));
    if [&gv, &bv].iter().any(|t| t.dtype() != DType::F32) {
        return bn.forward(x);
    }
    let g = Channels { n, c, plane: h * w };
    let eps = bn.epsilon as f32;
    let (stats, y) = channel_forward(values(&xv), values(&gv), values(&bv), g, eps, Shape::new([n, c, h, w]));
    let (mean, variance): (Vec<f32>, Vec<f32>) = stats.into_iter().unzip();
    let node = BatchNormBackward.prepare::<NoCheckpointing>([xa.node(), ga.node(), ba.node()]).compute_bound().stateful();
    let out = graph_node(node, || (xv, gv, mean.clone(), variance.clone(), eps, g), y);
    // the running statistics, as burn-nn's `forward_train` updates them
    let update = |state: &burn::module::RunningState<Tensor<1>>, batch: Vec<f32>| {
        let batch = Tensor::<1>::from_data(TensorData::new(batch, [c]), &device);
        let running = state.value_sync().to_device(&device).mul_scalar(1.0 - bn.momentum).add(batch.detach().mul_scalar(bn.momentum));
        state.update(running.detach());
    };
    update(&bn.running_mean, mean);
    update(&bn.running_var, variance);
    out
}

/// A `[n, c, plane]` activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Channels {
    n: usize,
    c: usize,
    plane: usize,
}

impl Channels {
    fn samples(&self) -> usize {
        self.n * self.plane
    }
}

/// flex's sum of a row (its reductions' kernel: eight vector accumulators, then the rest).
fn row_sum(row: &[f32]) -> f32 {
    let mut out = [0.0f32];
    burn_flex::simd::kernels::sum_rows_f32(row, &mut out, 1, row.len());
    out[0]
}

/// Channel `ch` of `x` as one row, images in order.
fn gather(x: &[f32], ch: usize, g: Channels, row: &mut Vec<f32>) {
    row.clear();
    for b in 0..g.n {
        row.extend_from_slice(&x[(b * g.c + ch) * g.plane..][..g.plane]);
    }
}

/// Per channel, `f(channel, scratch rows, the channel's row of the output)`, in parallel; the
/// output row is then written back into `out`'s planes.
fn per_channel<T: Send>(g: Channels, shape: Shape, f: impl Fn(usize, &mut [Vec<f32>; 3]) -> T + Sync) -> (Vec<T>, FlexTensor) {
    let mut results = Vec::new();
    let out = filled(shape, |out| {
        // each task writes the planes of its own channel only
        let planes = Shared::new(out);
        results = (0..g.c)
            .into_par_iter()
            .map_init(
                || [Vec::new(), Vec::new(), Vec::new()],
                |rows, ch| {
                    let result = f(ch, rows);
                    for b in 0..g.n {
                        // SAFETY: image b's plane of channel ch: inside `out`, this task's own.
                        let plane = unsafe { planes.slice((b * g.c + ch) * g.plane, g.plane) };
                        plane.copy_from_slice(&rows[2][b * g.plane..][..g.plane]);
                    }
                    result
                },
            )
            .collect();
    });
    (results, out)
}

/// burn-backend's `batch_norm_train` per channel: the mean (the row's sum over the count), the
/// variance (the mean of the squared deviations), and `((x - mean) / sqrt(variance + eps)) *
/// gamma + beta`.
fn channel_forward(x: &[f32], gamma: &[f32], beta: &[f32], g: Channels, eps: f32, shape: Shape) -> (Vec<(f32, f32)>, FlexTensor) {
    let count = g.samples() as f32;
    per_channel(g, shape, |ch, [row, squares, y]| {
        gather(x, ch, g, row);
        let mean = row_sum(row) / count;
        squares.clear();
        squares.extend(row.iter().map(|&v| (v - mean) * (v - mean)));
        let variance = row_sum(squares) / count;
        let std = (variance + eps).sqrt();
        y.clear();
        y.extend(row.iter().map(|&v| ((v - mean) / std) * gamma[ch] + beta[ch]));
        (mean, variance)
    })
}

#[derive(Debug)]
struct BatchNormBackward;

impl Backward<Flex, 3> for BatchNormBackward {
    /// The input's and gamma's values, the batch's mean and variance, epsilon, the shape.
    type State = (FlexTensor, FlexTensor, Vec<f32>, Vec<f32>, f32, Channels);

    /// burn-backend's `batch_norm_train_backward` per channel, registered as burn-autodiff's
    /// node registers it.
    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad = contiguous(&grads.consume::<Flex>(&ops.node));
        let (x, gamma, mean, variance, eps, g) = ops.state;
        let (x, gamma, grad_values) = (values(&x), values(&gamma), values(&grad));
        let count = g.samples() as f32;
        let (sums, x_grad) = per_channel(g, grad.shape(), |ch, [row, grad_row, x_grad]| {
            let inv_std = 1.0 / (variance[ch] + eps).sqrt();
            gather(x, ch, g, row);
            gather(grad_values, ch, g, grad_row);
            // the normalised input, in place of the input
            row.iter_mut().for_each(|v| *v = (*v - mean[ch]) * inv_std);
            let beta_grad = row_sum(grad_row);
            // the gradient times the normalised input, for its sum, into the output row first
            x_grad.clear();
            x_grad.extend(grad_row.iter().zip(row.iter()).map(|(&d, &v)| d * v));
            let gamma_grad = row_sum(x_grad);
            let (mean_grad, mean_normalised_grad) = (beta_grad / count, gamma_grad / count);
            let scale = gamma[ch] * inv_std;
            for ((o, &d), &v) in x_grad.iter_mut().zip(grad_row.iter()).zip(row.iter()) {
                *o = scale * ((d - mean_grad) - v * mean_normalised_grad);
            }
            (gamma_grad, beta_grad)
        });
        let per_channel_tensor = |v: Vec<f32>| FlexTensor::from_data(TensorData::new(v, [g.c]));
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, x_grad);
        }
        let (gamma_grad, beta_grad): (Vec<f32>, Vec<f32>) = sums.into_iter().unzip();
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, per_channel_tensor(gamma_grad));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, per_channel_tensor(beta_grad));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{bits, random};
    use super::*;
    use burn::module::Param;
    use burn::nn::BatchNormConfig;
    use burn::tensor::Device;

    fn bits1(t: Tensor<1>) -> Vec<u32> {
        t.to_data().try_into_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
    }

    /// Against burn's BatchNorm in training: outputs, running statistics after two steps, and
    /// the gradients of the input, gamma and beta, bit for bit. The demo net's three layers
    /// (small batches), a plane whose rows end off the sum kernel's stride, one image.
    #[test]
    fn training_batch_norm_equals_burns() {
        let ad = Device::flex().autodiff();
        for (n, c, h, w) in [(3, 32, 28, 28), (4, 64, 14, 14), (5, 128, 7, 7), (2, 3, 5, 7), (1, 6, 3, 3)] {
            // two layers (clones would share their running statistics), gamma and beta away
            // from 1 and 0
            let (gamma, beta) = (random([1, 1, 1, c], &Device::flex()).reshape([c]) * 0.5 + 1.0, random([1, 1, 1, c], &Device::flex()).reshape([c]));
            let layer = || BatchNorm {
                gamma: Param::from_tensor(gamma.clone().autodiff().require_grad()),
                beta: Param::from_tensor(beta.clone().autodiff().require_grad()),
                ..BatchNormConfig::new(c).init(&ad)
            };
            let (ours, theirs) = (layer(), layer());
            for step in 0..2 {
                let x = (random([n, c, h, w], &ad) * (step + 1) as f32 + 0.25).require_grad();
                let mix = random([n, c, h, w], &ad);
                let (yo, yt) = (batch_norm(&ours, x.clone()), theirs.forward(x.clone()));
                assert_eq!(bits(yo.clone()), bits(yt.clone()), "{n}x{c}x{h}x{w}: values");
                let (go, gt) = ((yo * mix.clone()).sum().backward(), (yt * mix).sum().backward());
                assert_eq!(bits(x.grad(&go).unwrap()), bits(x.grad(&gt).unwrap()), "{n}x{c}x{h}x{w}: input gradient");
                assert_eq!(bits1(ours.gamma.val().grad(&go).unwrap()), bits1(theirs.gamma.val().grad(&gt).unwrap()), "gamma gradient");
                assert_eq!(bits1(ours.beta.val().grad(&go).unwrap()), bits1(theirs.beta.val().grad(&gt).unwrap()), "beta gradient");
                assert_eq!(bits1(ours.running_mean.value_sync()), bits1(theirs.running_mean.value_sync()), "running mean");
                assert_eq!(bits1(ours.running_var.value_sync()), bits1(theirs.running_var.value_sync()), "running variance");
            }
        }
    }
}
