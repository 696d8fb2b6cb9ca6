//! CPU kernels for operations that burn's CPU backend (flex) runs slowly, with their own
//! backward pass in burn's autodiff graph: EfficientNet's depthwise convolutions and ReLU6,
//! dense convolutions (the small CNNs' 3x3 layers, the stems), the small CNNs' 2x2 max
//! pooling, ReLU, and BatchNorm in training.
//!
//! Measured (perf, SmoothGrad of EfficientNet-Lite0 on a 224x224 photo): flex differentiates a
//! depthwise convolution's input through a general transposed convolution (22 % of the time),
//! and `relu(x).clamp_max(6)` takes four passes backward (compare, mask, compare, mask: 8 %).
//! Forward, flex's depthwise loop runs along output rows, which are short in the later layers
//! (7-28 pixels), and strided at stride 2 (39 % of an occlusion run). Here a depthwise
//! convolution, forward and backward, is one long run of multiply-adds per tap over a packed
//! copy of the plane, and ReLU6's backward is one pass. flex's max pooling is a general 3-D
//! loop (30 % of a small CNN's occlusion, a third of a training step); a 2x2 window is four
//! loads and three compares here. flex's dense convolution builds its im2col matrix with an
//! index computation and a bounds check per float, on top of single-threaded layout copies
//! (31 % of the small CNN's occlusion besides the matrix products); here the same matrix is a
//! few contiguous copies per kernel row (see `conv`). In training, flex runs BatchNorm's
//! twenty-odd passes and ReLU's on one thread while the other core idles; here they are split
//! across the cores (`batchnorm`, [`relu`]).
//!
//! The numbers are burn's bit for bit: each output adds the same products in the same order
//! (tests check values and gradients for every stride, kernel and padding EfficientNet-Lite
//! uses, the small CNNs' layers, max pooling's ties and NaNs, BatchNorm's statistics), so
//! trained weights are unchanged. The one exception is `wide`: on a CPU with AVX-512 the
//! convolutions of an evaluation-mode model (constant weights) take its matrix product, whose
//! values are burn's to rounding (a few parts in a million); training never does, nor do its
//! passes with constant weights (the test pass, mining's scores, frozen features: [`exact`]). Only what
//! these loops cover takes them: f32 tensors on the flex device; a depthwise convolution
//! (groups = channels, square kernel and stride, no dilation) whose weight and bias are
//! constants; a dense convolution (groups 1, no dilation, explicit padding) that flex would run
//! through im2col, in training too (its gradients are burn's own functions, the weight's
//! through the same im2col), or any dense one with constant weights on the wide path; a 2x2
//! pool at stride 2 without padding; BatchNorm on an autodiff device, not frozen. Everything
//! else, a depthwise weight that takes a gradient (training) or a GPU device, goes through
//! burn's own operations.

use burn::backend::{Autodiff, Flex, TensorMetadata};
use burn::tensor::{DType, Shape, Tensor};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_flex::FlexTensor;
use rayon::prelude::*;

/// `forward(x)`, with `op`'s backward in the autodiff graph in place of burn's when `x` is a
/// tracked f32 tensor on the flex device. The forward runs burn's own operations on `x`'s
/// values, so values are the same bits as `forward(x)`; anything else is `forward(x)`.
fn with_backward<const D: usize, O: Backward<Flex, 1>>(
    x: Tensor<D>,
    forward: impl Fn(Tensor<D>) -> Tensor<D>,
    op: O,
    state: impl FnOnce(FlexTensor) -> O::State,
) -> Tensor<D> {
    if x.dtype() != DType::F32 {
        return forward(x);
    }
    let Ok(tracked) = x.clone().try_into_primitive::<Autodiff<Flex>>() else { return forward(x) };
    let values = tracked.primitive().clone();
    let Ok(y) = forward(Tensor::from_primitive::<Flex>(values.clone())).try_into_primitive::<Flex>() else {
        return forward(x);
    };
    graph_node(op.prepare::<NoCheckpointing>([tracked.node()]).compute_bound().stateful(), || state(values), y)
}

/// `y` as the output of the autodiff node `kind` prepared: with the state `state()` (built
/// only when an input takes a gradient) for its backward, or untracked.
fn graph_node<const D: usize, const N: usize, O: Backward<Flex, N>>(
    kind: OpsKind<O, Flex, O::State, NoCheckpointing, N>,
    state: impl FnOnce() -> O::State,
    y: FlexTensor,
) -> Tensor<D> {
    let y = match kind {
        OpsKind::Tracked(prep) => prep.finish(state(), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Tensor::from_primitive::<Autodiff<Flex>>(y)
}

/// A one-input node's backward: the gradient of its output in, `input_gradient(state, grad)`
/// registered as its input's when the input takes one.
fn one_input_backward<S>(ops: Ops<S, 1>, grads: &mut Gradients, input_gradient: impl FnOnce(S, FlexTensor) -> FlexTensor) {
    let [parent] = ops.parents;
    let grad = grads.consume::<Flex>(&ops.node);
    if let Some(parent) = parent {
        grads.register::<Flex>(parent.id, input_gradient(ops.state, grad));
    }
}

/// A constant (no autodiff context) flex f32 tensor, contiguous.
fn constant<const D: usize>(x: &Tensor<D>) -> Option<FlexTensor> {
    if x.dtype() != DType::F32 {
        return None;
    }
    x.clone().try_into_primitive::<Flex>().ok().map(|t| contiguous(&t))
}

fn contiguous(t: &FlexTensor) -> FlexTensor {
    if t.as_slice::<f32>().is_some() { t.clone() } else { t.to_contiguous() }
}

fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("a contiguous f32 tensor")
}

/// A new f32 tensor of `shape`, zeros, then `fill`ed. Built from a vector, which burn takes
/// as it is: flex's own `zeros` copies its fresh buffer once more, on the calling thread, to
/// align it for any element type (perf: a tenth of a training thread's time, in these
/// kernels' outputs). A large zeroed vector is fresh pages, zeroed as `fill` first touches
/// them, on whichever thread does.
fn filled(shape: Shape, fill: impl FnOnce(&mut [f32])) -> FlexTensor {
    let n = shape.num_elements();
    // zeroed across the cores where it is large (the allocator's recycled memory needs it)
    let mut v = if n >= PIECE {
        let mut v = Vec::with_capacity(n);
        v.par_extend(rayon::iter::repeat_n(0.0f32, n));
        v
    } else {
        vec![0.0f32; n]
    };
    fill(&mut v);
    FlexTensor::from_data(burn::tensor::TensorData::new(v, shape))
}

/// A raw pointer to an output that parallel tasks share, each writing its own elements (a
/// tile's pixels, a block's rows, a channel's planes).
#[derive(Clone, Copy)]
struct Shared(*mut f32);

impl Shared {
    fn new(out: &mut [f32]) -> Shared {
        Shared(out.as_mut_ptr())
    }

    /// SAFETY: `offset` is inside the output.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        unsafe { self.0.add(offset) }
    }

    /// SAFETY: `offset..offset + len` lies inside the output and only this task touches it
    /// while the slice lives.
    unsafe fn slice<'a>(self, offset: usize, len: usize) -> &'a mut [f32] {
        unsafe { std::slice::from_raw_parts_mut(self.0.add(offset), len) }
    }
}
// SAFETY: the tasks write disjoint elements (each use says which).
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

/// Runs `body` compiled for AVX2 where the CPU has it (the loops then take 8 floats a step),
/// as plain code elsewhere. The same operations in the same order either way, so the same bits.
macro_rules! vectorised {
    ($body:expr) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx2")]
            unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
                f()
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2, checked on the line above.
                unsafe { avx2(|| $body) }
            } else {
                $body
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            $body
        }
    }};
}

thread_local! {
    /// Set while [`exact`] runs its closure on this thread.
    static EXACT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with burn's own products for constant-weight convolutions on this thread, in
/// place of the AVX-512 ones (`wide`), so that what it computes is burn's bit for bit on any
/// CPU. Training's own passes with constant weights run in it: the test pass, hard-negative
/// mining's scoring and a frozen backbone's features, whose rounding would otherwise reach the
/// trained weights (a near-tie in the mining order) or the reported accuracies.
pub fn exact<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            EXACT.set(self.0);
        }
    }
    let _restore = Restore(EXACT.replace(true));
    f()
}

/// Whether the AVX-512 products may run here: the CPU has them and no [`exact`] is running.
fn wide_here() -> bool {
    wide::available() && !EXACT.get()
}

/// Pack a convolution weight (`[c_out, c_in, kh, kw]`, a constant: an evaluation-mode model's)
/// for [`wide`]'s products both ways, forward and input gradient at stride 1 (a strided
/// layer's gradient packs its own on first use), as the first pass would:
/// done when a model is loaded, so that its first map does not pay for it (~0.2 ms of a ~1 ms
/// small-CNN saliency map). Nothing where the wide products do not run or for other tensors.
pub fn prepack<const D: usize>(weight: &Tensor<D>) {
    if D != 4 || !wide_here() || weight.dtype() != DType::F32 {
        return;
    }
    let Ok(w) = weight.clone().try_into_primitive::<Flex>() else { return };
    let dims = weight.dims();
    let (c_out, col) = (dims[0], dims[1..].iter().product::<usize>());
    if c_out == 0 || col == 0 {
        return;
    }
    let w = contiguous(&w);
    wide::packed(&w, c_out, col, [col, 1]);
    wide::packed_flipped(&w, [dims[0], dims[1], dims[2], dims[3]]);
}

/// Elements per parallel piece of an element-wise pass.
const PIECE: usize = 1 << 15;

mod batchnorm;
mod conv;
mod depthwise;
mod pool;
mod wide;

pub use batchnorm::batch_norm;
pub use conv::conv2d;
pub use depthwise::depthwise_conv2d;
pub use pool::max_pool2d;

// ---------------------------------------------------------------------------------------------
// ReLU and ReLU6

/// ReLU as burn's (flex keeps a NaN), forward and backward split across the cores: flex runs
/// both passes on one thread (perf: a twentieth of a demo-net training thread).
pub fn relu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    with_backward(x, |x| elementwise(x, relu_value, burn::tensor::activation::relu), ReluBackward, |x| x)
}

/// `f` of every value of `x` (a constant f32 tensor on the CPU), in pieces across the cores;
/// else `burns(x)`.
fn elementwise<const D: usize>(x: Tensor<D>, f: impl Fn(f32) -> f32 + Sync, burns: impl FnOnce(Tensor<D>) -> Tensor<D>) -> Tensor<D> {
    match constant(&x) {
        Some(xs) => {
            let v = values(&xs);
            let y = filled(xs.shape(), |o| {
                o.par_chunks_mut(PIECE).zip(v.par_chunks(PIECE)).for_each(|(o, x)| vectorised!(o.iter_mut().zip(x).for_each(|(o, &x)| *o = f(x))))
            });
            Tensor::from_primitive::<Flex>(y)
        }
        None => burns(x),
    }
}

/// flex's ReLU of one value.
#[inline(always)]
fn relu_value(x: f32) -> f32 {
    if relu_passes(x) { x } else { 0.0 }
}

/// burn's `relu(x).clamp_max(6.0)` of one value, both of flex's rules (NaN passes both).
#[inline(always)]
fn relu6_value(x: f32) -> f32 {
    let y = relu_value(x);
    if y.is_nan() || y < 6.0 { y } else { 6.0 }
}

/// flex's ReLU rule: a value (and its gradient) passes where it is above zero or NaN.
#[inline(always)]
fn relu_passes(x: f32) -> bool {
    x.is_nan() || x > 0.0
}

#[derive(Debug)]
struct ReluBackward;

impl Backward<Flex, 1> for ReluBackward {
    /// The input.
    type State = FlexTensor;

    /// flex's `relu_backward` on the input (burn-autodiff's node passes it the input): the
    /// gradient where the input is above zero or NaN, zero elsewhere.
    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        one_input_backward(ops, grads, |x, grad| {
            masked_gradient(x, grad, |g, x| g.iter_mut().zip(x).for_each(|(g, &x)| *g = if relu_passes(x) { *g } else { 0.0 }))
        });
    }
}

/// `grad` with `keep(gradient, input)` applied piece by piece across the cores: in place where
/// the gradient's buffer is ours alone (as a layer's gradient is), else on a copy.
fn masked_gradient(x: FlexTensor, mut grad: FlexTensor, keep: impl Fn(&mut [f32], &[f32]) + Sync) -> FlexTensor {
    let x = contiguous(&x);
    let x = values(&x);
    let whole = |g: &FlexTensor| g.as_slice::<f32>().is_some_and(|v| v.len() == x.len()) && g.storage::<f32>().len() == x.len();
    match whole(&grad).then(|| grad.try_storage_mut::<f32>()).flatten() {
        Some(g) => {
            g.par_chunks_mut(PIECE).zip(x.par_chunks(PIECE)).for_each(|(g, x)| vectorised!(keep(g, x)));
            grad
        }
        None => {
            let grad = contiguous(&grad);
            filled(grad.shape(), |o| {
                o.copy_from_slice(values(&grad));
                o.par_chunks_mut(PIECE).zip(x.par_chunks(PIECE)).for_each(|(g, x)| vectorised!(keep(g, x)))
            })
        }
    }
}

/// ReLU6 as burn's `relu(x).clamp_max(6)`: the same values in one pass instead of flex's two
/// (each a whole read and write of the activation), and its gradient (the output's where
/// 0 < x <= 6 or x is NaN, zero elsewhere) in one pass instead of four.
pub fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    with_backward(x, |x| elementwise(x, relu6_value, |x| burn::tensor::activation::relu(x).clamp_max(6.0)), Relu6Backward, |x| x)
}

#[derive(Debug)]
struct Relu6Backward;

impl Backward<Flex, 1> for Relu6Backward {
    /// The input.
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        one_input_backward(ops, grads, |x, grad| masked_gradient(x, grad, relu6_gradient_in_place));
    }
}

/// Keeps the gradient where relu's backward does (above zero or NaN) and clamp_max's does
/// (burn's default clamp_max is a mask fill where x > 6: NaN passes).
#[inline(always)]
fn relu6_gradient_in_place(g: &mut [f32], x: &[f32]) {
    for (g, &x) in g.iter_mut().zip(x) {
        if !relu_passes(x) || x > 6.0 {
            *g = 0.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    pub(super) fn random(shape: [usize; 4], device: &Device) -> Tensor<4> {
        Tensor::random(shape, Distribution::Normal(0.0, 2.0), device)
    }

    pub(super) fn bits(t: Tensor<4>) -> Vec<u32> {
        t.to_data().try_into_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
    }

    /// The gradient, as bits, that `f` gives `x` for the weighted sum `sum(f(x) * mix)`.
    pub(super) fn input_gradient(f: &dyn Fn(Tensor<4>) -> Tensor<4>, x: &Tensor<4>, mix: &Tensor<4>) -> Vec<u32> {
        let xa = x.clone().autodiff().require_grad();
        let g = (f(xa.clone()) * mix.clone()).sum().backward();
        bits(xa.grad(&g).expect("a gradient"))
    }

    /// `ours` equals `theirs` bit for bit, values and input gradients, on `v` (more than one
    /// parallel piece) with `edges` first.
    fn equals_bit_for_bit(ours: &dyn Fn(Tensor<4>) -> Tensor<4>, theirs: &dyn Fn(Tensor<4>) -> Tensor<4>, modulo: usize, edges: &[f32]) {
        let device = Device::flex();
        let mut v: Vec<f32> = (0..3 * PIECE + 17).map(|i| ((i * 7919) % modulo) as f32 * 0.25 - 5.0).collect();
        v[..edges.len()].copy_from_slice(edges);
        let n = v.len();
        let x = Tensor::<1>::from_floats(v.as_slice(), &device).reshape([1, 1, 1, n]);
        assert_eq!(bits(ours(x.clone())), bits(theirs(x.clone())));
        let mix = random([1, 1, 1, n], &device);
        assert_eq!(input_gradient(ours, &x, &mix), input_gradient(theirs, &x, &mix));
    }

    /// ReLU's values and gradient equal burn's bit for bit: at zero, -0.0 and NaN, and over
    /// more than one parallel piece.
    #[test]
    fn relu_equals_burns() {
        equals_bit_for_bit(&|x| relu(x), &|x| burn::tensor::activation::relu(x), 41, &[0.0, -0.0, f32::NAN, -f32::NAN]);
    }

    /// ReLU6 in one pass: burn's ReLU then clamp, bit for bit (zeros, NaN, 6 and around it,
    /// infinity), values and gradients.
    #[test]
    fn relu6_equals_burns() {
        let edges = [0.0, -0.0, f32::NAN, -f32::NAN, 6.0, 6.0000005, 5.9999995, f32::INFINITY];
        equals_bit_for_bit(&|x| relu6(x), &|x| burn::tensor::activation::relu(x).clamp_max(6.0), 61, &edges);
    }
}
