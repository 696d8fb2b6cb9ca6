//! CPU kernels for operations that burn's CPU backend (flex) runs slowly, with their own
//! backward pass in burn's autodiff graph: EfficientNet's depthwise convolutions and ReLU6, and
//! the small CNNs' 2x2 max pooling.
//!
//! Measured (perf, SmoothGrad of EfficientNet-Lite0 on a 224x224 photo): flex differentiates a
//! depthwise convolution's input through a general transposed convolution (22 % of the time),
//! and `relu(x).clamp_max(6)` takes four passes backward (compare, mask, compare, mask: 8 %).
//! Forward, flex's depthwise loop runs along output rows, which are short in the later layers
//! (7-28 pixels), and strided at stride 2 (39 % of an occlusion run). Here a depthwise
//! convolution, forward and backward, is one long run of multiply-adds per tap over a packed
//! copy of the plane, and ReLU6's backward is one pass. flex's max pooling is a general 3-D
//! loop (30 % of a small CNN's occlusion, a third of a training step); a 2x2 window is four
//! loads and three compares here.
//!
//! The numbers are burn's bit for bit: each output adds the same products in the same order
//! (tests check values and gradients for every stride, kernel and padding EfficientNet-Lite
//! uses, and max pooling's ties and NaNs), so explanations and trained weights are unchanged.
//! Only what these loops cover takes them: f32 tensors on the flex device; a depthwise
//! convolution (groups = channels, square kernel and stride, no dilation) whose weight and bias
//! are constants, as in an evaluation-mode model; a 2x2 pool at stride 2 without padding.
//! Everything else, a convolution weight that takes a gradient (training) or a GPU device,
//! goes through burn's own operations.

use burn::backend::{Autodiff, Flex, TensorMetadata};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
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
    let y = match op.prepare::<NoCheckpointing>([tracked.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(state(values), y),
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

fn filled(shape: Shape, fill: impl FnOnce(&mut [f32])) -> FlexTensor {
    let mut t = FlexTensor::zeros(shape, DType::F32);
    fill(t.storage_mut::<f32>());
    t
}

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

/// Elements per parallel piece of an element-wise pass.
const PIECE: usize = 1 << 15;

// ---------------------------------------------------------------------------------------------
// ReLU6

/// ReLU6 as burn's `relu(x).clamp_max(6)`: the same values, and its gradient (the output's
/// where 0 < x <= 6, zero elsewhere) in one pass instead of four.
pub fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    with_backward(x, |x| burn::tensor::activation::relu(x).clamp_max(6.0), Relu6Backward, |x| x)
}

#[derive(Debug)]
struct Relu6Backward;

impl Backward<Flex, 1> for Relu6Backward {
    /// The input.
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        one_input_backward(ops, grads, |x, mut grad| {
            let x = contiguous(&x);
            let x = values(&x);
            // In place where the gradient's buffer is ours alone (as a layer's gradient is).
            let whole = |g: &FlexTensor| g.as_slice::<f32>().is_some_and(|v| v.len() == x.len()) && g.storage::<f32>().len() == x.len();
            match whole(&grad).then(|| grad.try_storage_mut::<f32>()).flatten() {
                Some(g) => {
                    g.par_chunks_mut(PIECE).zip(x.par_chunks(PIECE)).for_each(|(g, x)| vectorised!(relu6_gradient_in_place(g, x)));
                    grad
                }
                None => {
                    let grad = contiguous(&grad);
                    filled(grad.shape(), |o| {
                        o.copy_from_slice(values(&grad));
                        o.par_chunks_mut(PIECE).zip(x.par_chunks(PIECE)).for_each(|(g, x)| vectorised!(relu6_gradient_in_place(g, x)))
                    })
                }
            }
        });
    }
}

/// Keeps the gradient where relu's backward does (output > 0) and clamp_max's does (x <= 6).
#[inline(always)]
fn relu6_gradient_in_place(g: &mut [f32], x: &[f32]) {
    for (g, &x) in g.iter_mut().zip(x) {
        if !(x > 0.0 && x <= 6.0) {
            *g = 0.0;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Depthwise convolution

/// Where a depthwise convolution's taps land: input and output planes, kernel side, stride and
/// the padding before each axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Geometry {
    channels: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    k: usize,
    stride: usize,
    top: usize,
    left: usize,
}

impl Geometry {
    /// The output columns whose tap `kx` reads a column inside the input.
    #[cfg(any())]
    fn columns(&self, kx: usize) -> std::ops::Range<usize> {
        let s = self.stride;
        let lo = if self.left > kx { (self.left - kx).div_ceil(s) } else { 0 };
        let hi = if self.w + self.left > kx { ((self.w - 1 + self.left - kx) / s + 1).min(self.ow) } else { 0 };
        lo..hi.max(lo)
    }
}

/// `conv.forward(x)`. A depthwise convolution (groups = channels, square kernel and stride, no
/// dilation, explicit padding) with constant weights runs [`depthwise_forward`] and takes its
/// input's gradient from [`depthwise_input_gradient`] instead of burn's transposed convolution.
pub fn depthwise_conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let Some((weight, bias, g)) = depthwise_parts(conv, &x) else { return conv.forward(x) };
    // burn's own loop is as fast on long rows at stride 1 (measured: 32 x 112 x 112 and
    // 144 x 56 x 56, kernel 3); ours is 1.3-3x faster on short rows and at stride 2. Both give
    // the same bits.
    let ours = g.stride > 1 || g.ow < 56;
    let forward = |x: Tensor<4>| match constant(&x).filter(|_| ours) {
        Some(xs) => Tensor::from_primitive::<Flex>(depthwise_forward(values(&xs), values(&weight), bias.as_ref().map(values), g)),
        None => conv.forward(x),
    };
    with_backward(x, forward, DepthwiseBackward, |_| (weight.clone(), g))
}

fn depthwise_parts(conv: &Conv2d, x: &Tensor<4>) -> Option<(FlexTensor, Option<FlexTensor>, Geometry)> {
    let [_, c, h, w] = x.dims();
    let [co, ci, kh, kw] = conv.weight.dims();
    let depthwise = conv.groups == c && co == c && ci == 1 && kh == kw && conv.dilation == [1, 1] && conv.stride[0] == conv.stride[1];
    let PaddingConfig2d::Explicit(top, left, bottom, right) = conv.padding else { return None };
    let s = conv.stride[0];
    if !depthwise || h + top + bottom < kh || w + left + right < kw || s == 0 {
        return None;
    }
    let weight = constant(&conv.weight.val())?;
    let bias = match &conv.bias {
        Some(b) => Some(constant(&b.val())?),
        None => None,
    };
    let g = Geometry { channels: c, h, w, oh: (h + top + bottom - kh) / s + 1, ow: (w + left + right - kw) / s + 1, k: kh, stride: s, top, left };
    Some((weight, bias, g))
}

/// Floats of a phase plane's run that one pass over the taps covers (16 KiB).
const BLOCK: usize = 4096;

impl Geometry {
    /// For each column phase `b`: the first input column in it, its packed column, and how many
    /// of the row's columns (every `stride`-th) fit in a phase row of `pitch`.
    fn phase_columns(&self, pitch: usize) -> impl Iterator<Item = (usize, usize, usize, usize)> + '_ {
        let s = self.stride;
        (0..s).filter_map(move |b| {
            let ix0 = (b + s - self.left % s) % s;
            let c0 = (ix0 + self.left) / s;
            (ix0 < self.w && c0 < pitch).then(|| (b, ix0, c0, ((self.w - 1 - ix0) / s + 1).min(pitch - c0)))
        })
    }

    /// `scratch` as the zeroed phase planes of a plane (see [`plane_forward`]) and a plane of
    /// output rows at the same pitch, with the layout: rows of `pitch` floats, the output's rows
    /// plus the taps' reach past them plus one spare row, so that every tap's run stays inside.
    fn phase_buffers<'a>(&self, scratch: &'a mut Vec<f32>) -> (PhaseLayout, &'a mut [f32], &'a mut [f32]) {
        let ext = (self.k - 1) / self.stride;
        let (pitch, rows) = (self.ow + ext, self.oh + ext + 1);
        let phases = self.stride * self.stride * rows * pitch;
        scratch.clear();
        scratch.resize(phases + self.oh * pitch, 0.0);
        let (phase_planes, out_rows) = scratch.split_at_mut(phases);
        (PhaseLayout { pitch, rows, len: rows * pitch }, phase_planes, out_rows)
    }
}

/// Phase planes' rows, their width, and one plane's length.
struct PhaseLayout {
    pitch: usize,
    rows: usize,
    len: usize,
}

/// The convolution.
fn depthwise_forward(x: &[f32], weight: &[f32], bias: Option<&[f32]>, g: Geometry) -> FlexTensor {
    plane_by_plane(x, g.h * g.w, [g.oh, g.ow], weight, g, |out, plane, taps, ch, scratch| {
        vectorised!(plane_forward(out, plane, taps, bias.map(|b| b[ch]), g, scratch))
    })
}

/// `[N, C, out_h, out_w]` from `src`'s planes of `src_len` floats: `f(out, plane, taps, channel,
/// scratch)` fills each output plane, one per parallel piece, with its channel's taps.
fn plane_by_plane(
    src: &[f32],
    src_len: usize,
    [out_h, out_w]: [usize; 2],
    weight: &[f32],
    g: Geometry,
    f: impl Fn(&mut [f32], &[f32], &[f32], usize, &mut Vec<f32>) + Sync,
) -> FlexTensor {
    let planes = src.len() / src_len;
    filled(Shape::new([planes / g.channels, g.channels, out_h, out_w]), |out| {
        out.par_chunks_mut(out_h * out_w).zip(src.par_chunks(src_len)).enumerate().for_each_init(Vec::new, |scratch, (p, (out, plane))| {
            let ch = p % g.channels;
            f(out, plane, &weight[ch * g.k * g.k..][..g.k * g.k], ch, scratch)
        })
    })
}

/// One plane of [`depthwise_forward`], as one long run of multiply-adds per tap. The zero-padded
/// input splits into `stride x stride` phases (padded row % stride, column % stride), each
/// packed at `pitch` floats a row; tap (ky, kx) reads phase (ky % s, kx % s) shifted by
/// (ky / s, kx / s), so its products cover contiguous memory on both sides. Each output adds
/// its taps in burn's order (row by row of the kernel, from zero, the bias last), so the sums
/// are burn's bit for bit; the products of padding are zeros, which add nothing.
#[inline(always)]
fn plane_forward(out: &mut [f32], x: &[f32], taps: &[f32], bias: Option<f32>, g: Geometry, scratch: &mut Vec<f32>) {
    let (s, k) = (g.stride, g.k);
    let (PhaseLayout { pitch, rows, len: phase_len }, phases, sums) = g.phase_buffers(scratch);
    for (iy, row) in x.chunks_exact(g.w).enumerate() {
        let (a, r) = ((iy + g.top) % s, (iy + g.top) / s);
        if r >= rows {
            break;
        }
        for (b, ix0, c0, n) in g.phase_columns(pitch) {
            let dst = &mut phases[(a * s + b) * phase_len + r * pitch + c0..][..n];
            dst.iter_mut().zip(row[ix0..].iter().step_by(s)).for_each(|(d, &v)| *d = v);
        }
    }
    // A block of output rows at a time, all taps, so the sums stay in L1 on large planes.
    for lo in (0..g.oh * pitch).step_by(BLOCK.max(pitch)) {
        let sums = &mut sums[lo..(lo + BLOCK.max(pitch)).min(g.oh * pitch)];
        let len = sums.len();
        for ky in 0..k {
            for kx in 0..k {
                let t = taps[ky * k + kx];
                let start = ((ky % s) * s + kx % s) * phase_len + (ky / s) * pitch + kx / s + lo;
                for (o, &v) in sums.iter_mut().zip(&phases[start..][..len]) {
                    *o += v * t;
                }
            }
        }
    }
    for (out, sums) in out.chunks_exact_mut(g.ow).zip(sums.chunks_exact(pitch)) {
        match bias {
            Some(b) => out.iter_mut().zip(sums).for_each(|(o, &v)| *o = v + b),
            None => out.copy_from_slice(&sums[..g.ow]),
        }
    }
}

#[derive(Debug)]
struct DepthwiseBackward;

impl Backward<Flex, 1> for DepthwiseBackward {
    /// The weight (a constant) and the geometry.
    type State = (FlexTensor, Geometry);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        one_input_backward(ops, grads, |(weight, g), grad| depthwise_input_gradient(values(&contiguous(&grad)), values(&weight), g));
    }
}

/// The input's gradient: every output's gradient times each tap, added where the tap read.
/// Within a plane the sums run in one fixed order.
fn depthwise_input_gradient(grad: &[f32], weight: &[f32], g: Geometry) -> FlexTensor {
    plane_by_plane(grad, g.oh * g.ow, [g.h, g.w], weight, g, |gx, plane, taps, _, scratch| vectorised!(plane_input_gradient(gx, plane, taps, g, scratch)))
}

/// One plane of [`depthwise_input_gradient`], as one long run of adds per tap. The padded input
/// splits into `stride x stride` phases (padded row % stride, column % stride), each packed at
/// `pitch` floats a row; tap (ky, kx) reads phase (ky % s, kx % s) shifted by (ky / s, kx / s),
/// so with the gradient laid out at the same pitch (zeros past the last column) its adds cover
/// contiguous memory. The zeros land on columns that hold no output, adding nothing.
#[inline(always)]
fn plane_input_gradient(gx: &mut [f32], grad: &[f32], taps: &[f32], g: Geometry, scratch: &mut Vec<f32>) {
    let (s, k) = (g.stride, g.k);
    let (PhaseLayout { pitch, rows, len: phase_len }, phases, spread) = g.phase_buffers(scratch);
    for (oy, row) in grad.chunks_exact(g.ow).enumerate() {
        spread[oy * pitch..][..g.ow].copy_from_slice(row);
    }
    // A block of each phase's rows at a time, all taps, so the sums stay in L1 on large
    // planes; within a block every element still takes the taps in order.
    let step = BLOCK.max(pitch);
    for lo in (0..phase_len).step_by(step) {
        let hi = (lo + step).min(phase_len);
        for ky in 0..k {
            for kx in 0..k {
                let t = taps[ky * k + kx];
                let shift = (ky / s) * pitch + kx / s;
                // phase positions lo..hi take spread[j - shift]
                let (from, to) = (lo.max(shift), hi.min(shift + spread.len()));
                if from >= to {
                    continue;
                }
                let phase = &mut phases[((ky % s) * s + kx % s) * phase_len..][from..to];
                for (o, &v) in phase.iter_mut().zip(&spread[from - shift..to - shift]) {
                    *o += t * v;
                }
            }
        }
    }
    for (iy, out) in gx.chunks_exact_mut(g.w).enumerate() {
        let (a, r) = ((iy + g.top) % s, (iy + g.top) / s);
        if r >= rows {
            continue; // (`gx` starts at zero: rows and columns past the taps' reach stay there)
        }
        for (b, ix0, c0, n) in g.phase_columns(pitch) {
            let src = &phases[(a * s + b) * phase_len + r * pitch + c0..][..n];
            out[ix0..].iter_mut().step_by(s).zip(src).for_each(|(o, &v)| *o = v);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2x2 max pooling

/// `pool.forward(x)`. A 2x2 pool at stride 2 without padding (the small CNNs') runs one pass
/// over the input, and its backward one pass: flex's general 3-D pooling loop took 30 % of a
/// small CNN's occlusion. The same values and gradient as burn's, bit for bit: the first
/// largest element of a window in row order wins, a NaN always wins (the last one), and the
/// gradient goes to the winner as burn's does, added to zero.
pub fn max_pool2d(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let no_padding = matches!(pool.padding, PaddingConfig2d::Valid | PaddingConfig2d::Explicit(0, 0, 0, 0));
    if pool.kernel_size != [2, 2] || pool.stride != [2, 2] || pool.dilation != [1, 1] || pool.ceil_mode || !no_padding || h < 2 || w < 2 {
        return pool.forward(x);
    }
    let g = PoolGeometry { n, c, h, w, oh: h / 2, ow: w / 2 };
    let forward = |x: Tensor<4>| match constant(&x) {
        Some(xs) => Tensor::from_primitive::<Flex>(pool_forward(values(&xs), g)),
        None => pool.forward(x),
    };
    with_backward(x, forward, MaxPoolBackward, |x| (x, g))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PoolGeometry {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
}

/// burn's choice between two elements in window order: the later one if it is larger or NaN.
/// Choosing within each row, then between the rows, picks the same element as choosing along
/// the window in order (the first largest, or the last NaN), so the rows can be done as pairs.
#[inline(always)]
fn later_if_larger(a: f32, b: f32) -> f32 {
    if b > a || b.is_nan() { b } else { a }
}

fn pool_forward(x: &[f32], g: PoolGeometry) -> FlexTensor {
    filled(Shape::new([g.n, g.c, g.oh, g.ow]), |out| {
        out.par_chunks_mut(g.oh * g.ow).zip(x.par_chunks(g.h * g.w)).for_each(|(out, plane)| {
            vectorised!(for (oy, row) in out.chunks_exact_mut(g.ow).enumerate() {
                let top = plane[2 * oy * g.w..][..2 * g.ow].chunks_exact(2);
                let bottom = plane[(2 * oy + 1) * g.w..][..2 * g.ow].chunks_exact(2);
                for ((o, t), b) in row.iter_mut().zip(top).zip(bottom) {
                    *o = later_if_larger(later_if_larger(t[0], t[1]), later_if_larger(b[0], b[1]));
                }
            })
        })
    })
}

#[derive(Debug)]
struct MaxPoolBackward;

impl Backward<Flex, 1> for MaxPoolBackward {
    /// The input (the winners are found again from it) and the geometry.
    type State = (FlexTensor, PoolGeometry);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        one_input_backward(ops, grads, |(x, g), grad| {
            let (x, grad) = (contiguous(&x), contiguous(&grad));
            let (x, grad) = (values(&x), values(&grad));
            filled(Shape::new([g.n, g.c, g.h, g.w]), |gx| {
                gx.par_chunks_mut(g.h * g.w)
                    .zip(x.par_chunks(g.h * g.w))
                    .zip(grad.par_chunks(g.oh * g.ow))
                    .for_each(|((gx, plane), grad)| vectorised!(pool_plane_gradient(gx, plane, grad, g)))
            })
        });
    }
}

/// One plane of max pooling's gradient: each output's gradient goes to its window's winner
/// (added to zero, as burn does), the other three elements get zero. Written without branches,
/// as four selects per window, so that it vectorises.
#[inline(always)]
fn pool_plane_gradient(gx: &mut [f32], x: &[f32], grad: &[f32], g: PoolGeometry) {
    for (oy, grad) in grad.chunks_exact(g.ow).enumerate() {
        let (upper, lower) = gx[2 * oy * g.w..][..2 * g.w].split_at_mut(g.w);
        let top = x[2 * oy * g.w..][..2 * g.ow].chunks_exact(2);
        let bottom = x[(2 * oy + 1) * g.w..][..2 * g.ow].chunks_exact(2);
        let windows = upper[..2 * g.ow].chunks_exact_mut(2).zip(lower[..2 * g.ow].chunks_exact_mut(2));
        for (((t, b), (gt, gb)), &d) in top.zip(bottom).zip(windows).zip(grad) {
            let t1 = t[1] > t[0] || t[1].is_nan();
            let b1 = b[1] > b[0] || b[1].is_nan();
            let (tv, bv) = (if t1 { t[1] } else { t[0] }, if b1 { b[1] } else { b[0] });
            let lower_wins = bv > tv || bv.is_nan();
            let d = 0.0 + d;
            gt[0] = if !lower_wins && !t1 { d } else { 0.0 };
            gt[1] = if !lower_wins && t1 { d } else { 0.0 };
            gb[0] = if lower_wins && !b1 { d } else { 0.0 };
            gb[1] = if lower_wins && b1 { d } else { 0.0 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::{Device, Distribution};

    fn random(shape: [usize; 4], device: &Device) -> Tensor<4> {
        Tensor::random(shape, Distribution::Normal(0.0, 2.0), device)
    }

    /// Every stride, kernel and (asymmetric) padding EfficientNet-Lite uses, and odd sizes:
    /// outputs and input gradients equal burn's grouped convolution's.
    #[test]
    fn depthwise_equals_burns_grouped_convolution() {
        let device = Device::flex();
        for (k, s, pad, h, w) in
            [(3, 1, (1, 1, 1, 1), 9, 7), (3, 2, (0, 0, 1, 1), 8, 8), (5, 2, (1, 1, 2, 2), 11, 6), (5, 1, (2, 2, 2, 2), 5, 5), (3, 2, (1, 0, 1, 0), 7, 9)]
        {
            for bias in [false, true] {
                let c = 6;
                let conv = Conv2dConfig::new([c, c], [k, k])
                    .with_stride([s, s])
                    .with_groups(c)
                    .with_bias(bias)
                    .with_padding(PaddingConfig2d::Explicit(pad.0, pad.1, pad.2, pad.3))
                    .init(&device);
                let x = random([2, c, h, w], &device);
                assert!(depthwise_parts(&conv, &x).is_some() && depthwise_parts(&conv, &x.clone().autodiff()).is_some());
                let ours = depthwise_conv2d(&conv, x.clone());
                let theirs = conv.forward(x.clone());
                assert_eq!(ours.to_data().try_into_vec::<f32>().unwrap(), theirs.to_data().try_into_vec::<f32>().unwrap(), "k {k} s {s} pad {pad:?}");

                // The input gradient of a weighted sum of the outputs.
                let mix = random(theirs.dims(), &device);
                let grad_of = |f: &dyn Fn(Tensor<4>) -> Tensor<4>| {
                    let xa = x.clone().autodiff().require_grad();
                    let g = (f(xa.clone()) * mix.clone()).sum().backward();
                    xa.grad(&g).expect("a gradient")
                };
                let ours = grad_of(&|x| depthwise_conv2d(&conv, x));
                let theirs = grad_of(&|x| conv.forward(x));
                assert_eq!(ours.to_data().try_into_vec::<f32>().unwrap(), theirs.to_data().try_into_vec::<f32>().unwrap(), "k {k} s {s} pad {pad:?}");
            }
        }
    }

    /// ReLU6's values and gradient equal `relu(x).clamp_max(6)`'s bit for bit, at 0 and 6 too.
    #[test]
    fn relu6_equals_relu_then_clamp() {
        let device = Device::flex();
        let mut v: Vec<f32> = (-40..=40).map(|i| i as f32 * 0.25).collect();
        v.extend([0.0, -0.0, 6.0, 6.000001, 5.999999]);
        let n = v.len();
        let x = Tensor::<1>::from_floats(v.as_slice(), &device).reshape([1, 1, 1, n]);
        let theirs = |x: Tensor<4>| burn::tensor::activation::relu(x).clamp_max(6.0);
        assert_eq!(relu6(x.clone()).to_data().try_into_vec::<f32>().unwrap(), theirs(x.clone()).to_data().try_into_vec::<f32>().unwrap());
        let mix = random([1, 1, 1, n], &device);
        let grad_of = |f: &dyn Fn(Tensor<4>) -> Tensor<4>| {
            let xa = x.clone().autodiff().require_grad();
            let g = (f(xa.clone()) * mix.clone()).sum().backward();
            xa.grad(&g).expect("a gradient").to_data().try_into_vec::<f32>().unwrap()
        };
        assert_eq!(grad_of(&|x| relu6(x)), grad_of(&theirs));
    }

    /// Max pooling's values and gradient equal burn's bit for bit: odd sizes (a row and a column
    /// dropped), ties (ReLU's zeros, repeated values), -0.0 and NaN.
    #[test]
    fn max_pool_equals_burns() {
        use burn::nn::pool::MaxPool2dConfig;
        let device = Device::flex();
        let pool = MaxPool2dConfig::new([2, 2]).init();
        for (h, w) in [(4, 4), (7, 5), (28, 28)] {
            let n = 2 * 3 * h * w;
            let mut v: Vec<f32> = (0..n).map(|i| ((i * 7919) % 13) as f32 - 6.0).collect();
            v.iter_mut().step_by(5).for_each(|x| *x = 0.0);
            v[1] = f32::NAN;
            v[6] = -0.0;
            let x = Tensor::<1>::from_floats(v.as_slice(), &device).reshape([2, 3, h, w]);
            let bits = |t: Tensor<4>| t.to_data().try_into_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(max_pool2d(&pool, x.clone())), bits(pool.forward(x.clone())), "{h}x{w}");
            let g = PoolGeometry { n: 2, c: 3, h, w, oh: h / 2, ow: w / 2 };
            let direct = Tensor::from_primitive::<Flex>(pool_forward(&v, g));
            assert_eq!(bits(direct), bits(pool.forward(x.clone())), "{h}x{w}: the loop itself");
            let mix = random([2, 3, h / 2, w / 2], &device);
            let grad_of = |f: &dyn Fn(Tensor<4>) -> Tensor<4>| {
                let xa = x.clone().autodiff().require_grad();
                let g = (f(xa.clone()) * mix.clone()).sum().backward();
                bits(xa.grad(&g).expect("a gradient"))
            };
            assert_eq!(grad_of(&|x| max_pool2d(&pool, x)), grad_of(&|x| pool.forward(x)), "{h}x{w}");
        }
    }

    /// A weight that takes a gradient (training) goes through burn, and still gets one.
    #[test]
    fn a_trained_weight_takes_burns_path() {
        let ad = Device::flex().autodiff();
        let conv = Conv2dConfig::new([4, 4], [3, 3]).with_groups(4).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(&ad);
        let x = random([1, 4, 5, 5], &ad);
        assert!(depthwise_parts(&conv, &x).is_none());
        let g = depthwise_conv2d(&conv, x).sum().backward();
        assert!(conv.weight.val().grad(&g).is_some());
    }
}
