//! Depthwise convolutions (EfficientNet's): a tap is one long run of multiply-adds over a packed
//! copy of the plane, forward and backward (see the module above).

use burn::backend::Flex;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::{Shape, Tensor};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::{constant, contiguous, filled, one_input_backward, values, with_backward};

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

#[cfg(test)]
mod tests {
    use super::super::tests::{bits, input_gradient, random};
    use super::*;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::Device;

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
                let theirs = conv.forward(x.clone());
                let mix = random(theirs.dims(), &device);
                assert_eq!(bits(depthwise_conv2d(&conv, x.clone())), bits(theirs), "k {k} s {s} pad {pad:?}");
                let ours = input_gradient(&|x| depthwise_conv2d(&conv, x), &x, &mix);
                assert_eq!(ours, input_gradient(&|x| conv.forward(x), &x, &mix), "k {k} s {s} pad {pad:?}");
            }
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
