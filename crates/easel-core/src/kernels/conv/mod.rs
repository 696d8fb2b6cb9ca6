//! Dense convolutions (groups = 1, a kernel larger than 1x1: the small CNNs' 3x3 layers and
//! EfficientNet's stem) without flex's set-up copies.
//!
//! flex computes such a convolution as, per image, a transposed (channels-last) copy of the
//! input, per tile of 512 output pixels an im2col matrix (one row of kernel-window values per
//! pixel) and a matrix product with the reordered weights, then copies the product into the
//! output and adds the bias in another pass. perf on the small CNN's occlusion: the im2col
//! loop (an index computation and a bounds check per float) 22 % of the time, the single-
//! threaded channels-last copy and weight reordering 6 %, zero-filling new buffers 3 %, the
//! matrix products 46 %. Here the im2col rows are a few contiguous runs per kernel row (the
//! window's columns are consecutive in a channels-last row whatever the stride), buffers are
//! reused per thread and written once, the channels-last copies run in parallel, and each
//! product writes straight into the output.
//!
//! The gradients are the ones burn's autodiff node computes, by the same route: the input's a
//! transposed convolution (the same product, then each kernel tap's column added into the
//! image as runs along a row), the weight's in training a convolution with batch and channels
//! swapped (the swapped copies written straight in the layouts flex builds from them), the
//! bias's burn's own function. Where flex would go another way, ours call burn's.
//!
//! The matrix products are the same calls to the same `gemm` with the same operands and
//! shapes, and every output gets the same adds in the same order, so values and gradients are
//! burn's bit for bit (tests compare bits against `Conv2d::forward` and burn's autodiff). With
//! constant weights (an evaluation-mode model) on a CPU with AVX-512, the forward and the
//! input's gradient take [`wide`]'s product instead, 1x1 and few-channel kernels included
//! (at stride 1 the input's gradient as a convolution of the output's gradient with the
//! kernels turned half a turn, straight into the gradient): burn's values to rounding
//! (tests), never in training.

use burn::backend::{Autodiff, Flex};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Shape, Tensor};
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::ops::Backward;
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::{Shared, contiguous, filled, graph_node, values, wide};

mod backward;
mod shifted;

use backward::{InputBackward, WeightBackward};
use shifted::wide_forward;

/// flex's output tile: pixels per im2col matrix and product.
const TILE: usize = 512;

/// A dense convolution's shapes: input `[n, c_in, h, w]`, weight `[c_out, c_in, kh, kw]`,
/// stride, the padding before each axis, and the output's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Geometry {
    n: usize,
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    top: usize,
    left: usize,
    oh: usize,
    ow: usize,
}

impl Geometry {
    fn col_len(&self) -> usize {
        self.c_in * self.kh * self.kw
    }
}

/// `conv.forward(x)` for f32 on the flex device, groups 1, no dilation. With constant weights
/// (an evaluation-mode model) on a CPU with AVX-512, through [`wide`]'s products (burn's values
/// to rounding), 1x1 kernels included. Otherwise where flex would take its general im2col path
/// (a kernel larger than 1x1, and not flex's own small-channel loop: at most 4 input and 16
/// output channels), through [`conv_forward`], burn's bits; in training too.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    conv2d_with(conv, x, super::wide_here())
}

/// [`conv2d`], with [`wide`]'s products for constant weights or not.
fn conv2d_with(conv: &Conv2d, x: Tensor<4>, wide: bool) -> Tensor<4> {
    let Some((g, options, flex_own)) = geometry(conv, &x) else { return conv.forward(x) };
    if flex_own && !wide {
        return conv.forward(x);
    }
    let weight = conv.weight.val();
    let bias = conv.bias.as_ref().map(|b| b.val());
    // Constants (an evaluation-mode model): the input may take a gradient.
    if let (Ok(w), Ok(b)) = (weight.clone().try_into_primitive::<Flex>(), bias.clone().map(|b| b.try_into_primitive::<Flex>()).transpose()) {
        let (w, b) = (contiguous(&w), b.map(|b| contiguous(&b)));
        if let Ok(xa) = x.clone().try_into_primitive::<Autodiff<Flex>>() {
            let y = eval_forward(&contiguous(xa.primitive()), &w, b.as_ref(), g, wide);
            let node = InputBackward.prepare::<NoCheckpointing>([xa.node()]).compute_bound().stateful();
            return graph_node(node, || (xa.primitive().clone(), w, options, wide), y);
        }
        return match x.clone().try_into_primitive::<Flex>() {
            Ok(xf) => Tensor::from_primitive::<Flex>(eval_forward(&contiguous(&xf), &w, b.as_ref(), g, wide)),
            Err(_) => conv.forward(x),
        };
    }
    // Parameters in the autodiff graph (training): burn's node, with our forward.
    if flex_own {
        return conv.forward(x);
    }
    let (Ok(xa), Ok(wa), Ok(ba)) = (
        x.clone().try_into_primitive::<Autodiff<Flex>>(),
        weight.try_into_primitive::<Autodiff<Flex>>(),
        bias.map(|b| b.try_into_primitive::<Autodiff<Flex>>()).transpose(),
    ) else {
        return conv.forward(x);
    };
    let (xv, wv, bv) = (xa.primitive().clone(), wa.primitive().clone(), ba.as_ref().map(|b| b.primitive().clone()));
    let y = conv_forward(&contiguous(&xv), &contiguous(&wv), bv.as_ref().map(contiguous).as_ref(), g);
    match ba.zip(bv) {
        Some((ba, bv)) => {
            graph_node(WeightBackward.prepare::<NoCheckpointing>([xa.node(), wa.node(), ba.node()]).compute_bound().stateful(), || (xv, wv, bv, options), y)
        }
        None => graph_node(WeightBackward.prepare::<NoCheckpointing>([xa.node(), wa.node()]).compute_bound().stateful(), || (xv, wv, options), y),
    }
}

/// The geometry and burn's options for `conv` on `x` where [`wide_forward`] covers it, and
/// whether flex runs it its own way (a 1x1 kernel, few channels), which [`conv_forward`] does
/// not follow.
fn geometry(conv: &Conv2d, x: &Tensor<4>) -> Option<(Geometry, ConvOptions<2>, bool)> {
    if x.dtype() != DType::F32 || conv.weight.val().dtype() != DType::F32 {
        return None;
    }
    let [n, c_in, h, w] = x.dims();
    let [c_out, ci, kh, kw] = conv.weight.dims();
    let (top, left, bottom, right) = match conv.padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) => (top, left, bottom, right),
        PaddingConfig2d::Valid => (0, 0, 0, 0),
        _ => return None,
    };
    let [sh, sw] = conv.stride;
    let dense = conv.groups == 1 && ci == c_in && conv.dilation == [1, 1] && sh > 0 && sw > 0;
    // flex's small-channel loop (burn-flex's SMALL_CHANNEL_IN/OUT_THRESHOLD) is not im2col
    let flex_own = kh * kw == 1 || (c_in <= 4 && c_out <= 16);
    if !dense || h + top + bottom < kh || w + left + right < kw || [n, c_in, c_out, kh, kw, h, w].contains(&0) {
        return None;
    }
    let options = ConvOptions::new_with_padding(conv.stride, [(top, bottom), (left, right)], conv.dilation, conv.groups);
    let (oh, ow) = ((h + top + bottom - kh) / sh + 1, (w + left + right - kw) / sw + 1);
    Some((Geometry { n, c_in, h, w, c_out, kh, kw, sh, sw, top, left, oh, ow }, options, flex_own))
}

/// `dst = lhs x rhs` ([m, n, k]; `dst` m x n at row stride `dst_rs`, columns adjacent; each
/// operand with its [column, row] strides), as flex calls gemm for its convolutions: no
/// accumulation, and gemm's own threads from 192^3 multiply-adds up.
///
/// # Safety
/// Every element the shapes and strides address lies inside its allocation, and no other
/// thread writes `dst`'s.
unsafe fn product(
    [m, n, k]: [usize; 3],
    dst: *mut f32,
    dst_rs: usize,
    (lhs, [lcs, lrs]): (*const f32, [usize; 2]),
    (rhs, [rcs, rrs]): (*const f32, [usize; 2]),
) {
    let parallelism = if m * n * k >= 192 * 192 * 192 { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            false,
            lhs,
            lcs as isize,
            lrs as isize,
            rhs,
            rcs as isize,
            rrs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// The convolution with constant weights: [`wide_forward`] or flex's route.
fn eval_forward(x: &FlexTensor, weight: &FlexTensor, bias: Option<&FlexTensor>, g: Geometry, wide: bool) -> FlexTensor {
    if wide { wide_forward(x, &wide::packed(weight, g.c_out, g.col_len(), [g.col_len(), 1]), bias, g) } else { conv_forward(x, weight, bias, g) }
}

/// The convolution, as flex's im2col path computes it (same products, same order).
fn conv_forward(x: &FlexTensor, weight: &FlexTensor, bias: Option<&FlexTensor>, g: Geometry) -> FlexTensor {
    let (x, weight, bias) = (values(x), values(weight), bias.map(values));
    let taps = g.kh * g.kw;
    // weights as rows of [kernel row][kernel column][input channel], as flex reorders them
    let mut w_flat = vec![0.0f32; g.c_out * g.col_len()];
    for (dst, src) in w_flat.chunks_exact_mut(g.col_len()).zip(weight.chunks_exact(g.col_len())) {
        for (ci, plane) in src.chunks_exact(taps).enumerate() {
            for (k, &v) in plane.iter().enumerate() {
                dst[k * g.c_in + ci] = v;
            }
        }
    }
    // the input channels-last, an image per parallel piece
    let plane = g.h * g.w;
    let mut nhwc = vec![0.0f32; x.len()];
    nhwc.par_chunks_mut(g.c_in * plane).zip(x.par_chunks(g.c_in * plane)).for_each(|(dst, src)| {
        if g.c_in == 1 {
            dst.copy_from_slice(src);
            return;
        }
        for (p, px) in dst.chunks_exact_mut(g.c_in).enumerate() {
            for (c, v) in px.iter_mut().enumerate() {
                *v = src[c * plane + p];
            }
        }
    });
    let spatial = g.oh * g.ow;
    filled(Shape::new([g.n, g.c_out, g.oh, g.ow]), |out| products(&nhwc, &w_flat, bias, g, out, [g.c_out * spatial, spatial]))
}

/// `out` as flex's convolution of the channels-last images `nhwc` with the reordered weights
/// `w_flat`, plus `bias`: per image and tile of [`TILE`] output pixels, an im2col matrix and one
/// matrix product, the same gemm call as flex's on the same operands. Image `b`'s output channel
/// `co` is written at `b * pitch[0] + co * pitch[1]`, its pixels consecutive.
fn products(nhwc: &[f32], w_flat: &[f32], bias: Option<&[f32]>, g: Geometry, out: &mut [f32], pitch: [usize; 2]) {
    let (col_len, spatial, image) = (g.col_len(), g.oh * g.ow, g.c_in * g.h * g.w);
    let tiles = spatial.div_ceil(TILE);
    assert!(out.len() >= (g.n - 1) * pitch[0] + (g.c_out - 1) * pitch[1] + spatial && (pitch[1] >= spatial || g.c_out == 1));
    assert!(nhwc.len() == g.n * image && w_flat.len() == g.c_out * col_len);
    // the tiles write their own pixels of their own image
    let dst = Shared::new(out);
    (0..g.n * tiles).into_par_iter().for_each_init(Vec::new, |col, t| {
        let (b, start) = (t / tiles, (t % tiles) * TILE);
        let end = (start + TILE).min(spatial);
        im2col(col, &nhwc[b * image..][..image], start..end, g);
        let n = end - start;
        let first = b * pitch[0] + start;
        // SAFETY: this tile's c_out rows start at `first`, each `n` long at a pitch of
        // pitch[1] >= spatial, inside `out` (asserted above) and no other tile's. The operands
        // have the lengths the shapes and strides read: w_flat c_out x col_len (asserted), col
        // n x col_len.
        unsafe { product([g.c_out, n, col_len], dst.at(first), pitch[1], (w_flat.as_ptr(), [1, col_len]), (col.as_ptr(), [col_len, 1])) };
        if let Some(bias) = bias {
            for (co, &bv) in bias.iter().enumerate() {
                // SAFETY: as above, this tile's pixels of channel co.
                let row = unsafe { dst.slice(first + co * pitch[1], n) };
                row.iter_mut().for_each(|v| *v += bv);
            }
        }
    });
}

/// The outputs `i` (of `outputs`) whose tap `k` lands inside the input (`0 <= i * stride + k -
/// pad < size`), as flex's transposed convolution bounds them.
fn valid_range(k: usize, pad: usize, stride: usize, outputs: usize, size: usize) -> (usize, usize) {
    let start = if k >= pad { 0 } else { (pad - k).div_ceil(stride) };
    let end = if k >= size + pad { 0 } else { (size + pad - k).div_ceil(stride) }.min(outputs);
    (start.min(end), end)
}

/// `col` as the im2col rows of output pixels `pixels` of one channels-last image: per pixel,
/// its window's values by kernel row, kernel column and input channel, zero where the window
/// overhangs the padding.
fn im2col(col: &mut Vec<f32>, image: &[f32], pixels: std::ops::Range<usize>, g: Geometry) {
    let (col_len, run) = (g.col_len(), g.kw * g.c_in);
    let row_len = g.w * g.c_in;
    col.resize(pixels.len() * col_len, 0.0);
    for (row, p) in col.chunks_exact_mut(col_len).zip(pixels) {
        let (oy, ox) = (p / g.ow, p % g.ow);
        // the window's columns in the input: x0 + kx for kx in lo..hi fall inside
        let x0 = (ox * g.sw) as isize - g.left as isize;
        let lo = (-x0).clamp(0, g.kw as isize) as usize;
        let hi = (g.w as isize - x0).clamp(lo as isize, g.kw as isize) as usize;
        for (ky, seg) in row.chunks_exact_mut(run).enumerate() {
            let iy = (oy * g.sh + ky) as isize - g.top as isize;
            if iy < 0 || iy >= g.h as isize || lo == hi {
                seg.fill(0.0);
                continue;
            }
            seg[..lo * g.c_in].fill(0.0);
            seg[hi * g.c_in..].fill(0.0);
            let from = iy as usize * row_len + (x0 + lo as isize) as usize * g.c_in;
            seg[lo * g.c_in..hi * g.c_in].copy_from_slice(&image[from..from + (hi - lo) * g.c_in]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{bits, input_gradient, random};
    use super::backward::{weight_gradient, x_gradient};
    use super::*;
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::Device;

    /// The small CNNs' layers, EfficientNet's stem (stride 2, asymmetric padding), more than
    /// one tile, odd sizes: outputs and input gradients equal `Conv2d::forward`'s bit for bit
    /// through burn's products, and to rounding through the wide ones (where the CPU has them;
    /// tiles spanning images, strides, padding on each side).
    #[test]
    fn dense_convolution_equals_burns() {
        let device = Device::flex();
        #[rustfmt::skip]
        let cases = [
            // c_in, c_out, k, stride, padding (top, left, bottom, right), n, h, w
            (1, 32, 3, 1, (1, 1, 1, 1), 3, 28, 28),
            (32, 64, 3, 1, (1, 1, 1, 1), 2, 14, 14),
            (64, 128, 3, 1, (1, 1, 1, 1), 2, 7, 7),
            (3, 32, 3, 2, (0, 0, 1, 1), 2, 33, 30),
            (5, 17, 5, 1, (2, 0, 2, 1), 1, 9, 40),
            (8, 20, 3, 1, (0, 0, 0, 0), 2, 5, 6),
            (6, 24, 2, 3, (1, 1, 0, 0), 1, 11, 10),
            // flex's own loops, which only the wide products follow: 1x1, few channels
            (16, 24, 1, 1, (0, 0, 0, 0), 2, 9, 9),
            (3, 16, 3, 1, (1, 1, 1, 1), 2, 10, 10),
        ];
        for (c_in, c_out, k, s, pad, n, h, w) in cases {
            for bias in [false, true] {
                let conv = Conv2dConfig::new([c_in, c_out], [k, k])
                    .with_stride([s, s])
                    .with_bias(bias)
                    .with_padding(PaddingConfig2d::Explicit(pad.0, pad.1, pad.2, pad.3))
                    .init(&device);
                let x = random([n, c_in, h, w], &device);
                let (g, options, _) = geometry(&conv, &x).expect("a dense convolution");
                let theirs = conv.forward(x.clone());
                let mix = random(theirs.dims(), &device);
                let flex = |t: &Tensor<4>| super::super::constant(t).expect("flex f32");
                let covered = x_gradient(&flex(&mix), &flex(&conv.weight.val()), g, &options, false).is_some();
                assert_eq!(covered, pad.0 == pad.2 && pad.1 == pad.3, "{c_in}->{c_out} k {k} s {s} pad {pad:?}");
                assert_eq!(bits(conv2d_with(&conv, x.clone(), false)), bits(theirs.clone()), "{c_in}->{c_out} k {k} s {s} pad {pad:?}");
                let ours = input_gradient(&|x| conv2d_with(&conv, x, false), &x, &mix);
                let burns = input_gradient(&|x| conv.forward(x), &x, &mix);
                assert_eq!(ours, burns, "{c_in}->{c_out} k {k} s {s} pad {pad:?}");
                if wide::available() {
                    // the wide products: the same values and input gradients to rounding
                    let close = |a: &[u32], b: &[u32], what: &str| {
                        let (a, b): (Vec<f32>, Vec<f32>) = (a.iter().map(|&v| f32::from_bits(v)).collect(), b.iter().map(|&v| f32::from_bits(v)).collect());
                        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
                        let err = a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
                        assert!(err <= 1e-5 * scale.max(1.0), "{what} {c_in}->{c_out} k {k} s {s} pad {pad:?}: {err} of {scale}");
                    };
                    close(&bits(conv2d_with(&conv, x.clone(), true)), &bits(theirs), "values");
                    close(&input_gradient(&|x| conv2d_with(&conv, x, true), &x, &mix), &burns, "input gradients");
                }
            }
        }
    }

    /// Inside `exact`, a constant-weight convolution is burn's bit for bit on any CPU, and the
    /// wide products come back after it.
    #[test]
    fn exact_keeps_burns_products() {
        let device = Device::flex();
        let conv = Conv2dConfig::new([32, 64], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(&device);
        let x = random([2, 32, 14, 14], &device);
        let exact = super::super::exact(|| bits(conv2d(&conv, x.clone())));
        assert_eq!(exact, bits(conv.forward(x.clone())));
        assert_eq!(super::super::wide_here(), wide::available());
    }

    /// In training the weight and bias take burn's gradients, bit for bit, as does the input:
    /// the demo net's first layer (one input channel), a wide batch, a wide layer, and burn's
    /// own weight gradient where ours does not apply (few channels, stride 2).
    #[test]
    fn training_gradients_equal_burns() {
        let ad = Device::flex().autodiff();
        // c_in, c_out, stride, n, h, w, whether weight_gradient covers it
        for (c_in, c_out, s, n, h, w, ours) in
            [(1, 32, 1, 5, 12, 12, true), (8, 16, 1, 6, 10, 9, true), (8, 32, 1, 2, 7, 7, true), (8, 16, 1, 3, 10, 9, false), (8, 32, 2, 6, 9, 9, false)]
        {
            for bias in [false, true] {
                let conv =
                    Conv2dConfig::new([c_in, c_out], [3, 3]).with_stride([s, s]).with_bias(bias).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(&ad);
                let x = random([n, c_in, h, w], &ad).require_grad();
                let (g, options, _) = geometry(&conv, &x).expect("a dense convolution");
                let mix = random([n, c_out, g.oh, g.ow], &ad);
                let flex = |t: &Tensor<4>| super::super::constant(&t.clone().inner()).expect("flex f32");
                let covered = weight_gradient(&flex(&x), &flex(&mix), g, &options).is_some();
                assert_eq!(covered, ours, "{c_in}->{c_out} s {s} n {n}");
                assert_eq!(bits(conv2d(&conv, x.clone())), bits(conv.forward(x.clone())));
                let ours = (conv2d(&conv, x.clone()) * mix.clone()).sum().backward();
                let theirs = (conv.forward(x.clone()) * mix).sum().backward();
                assert_eq!(bits(x.grad(&ours).unwrap()), bits(x.grad(&theirs).unwrap()));
                assert_eq!(bits(conv.weight.val().grad(&ours).unwrap()), bits(conv.weight.val().grad(&theirs).unwrap()), "{c_in}->{c_out} s {s} n {n}");
                if let Some(b) = &conv.bias {
                    let (o, t) = (b.val().grad(&ours).unwrap(), b.val().grad(&theirs).unwrap());
                    let bits1 = |t: Tensor<1>| t.to_data().try_into_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits1(o), bits1(t));
                }
            }
        }
    }

    /// Grouped and dilated convolutions stay burn's; flex's own 1x1 and small-channel loops are
    /// followed only by the wide products (constant weights), training leaves them to burn.
    #[test]
    fn other_convolutions_are_left_to_burn() {
        let device = Device::flex();
        let x = random([1, 8, 6, 6], &device);
        for cfg in [Conv2dConfig::new([8, 16], [3, 3]).with_groups(2), Conv2dConfig::new([8, 16], [3, 3]).with_dilation([2, 2])] {
            assert!(geometry(&cfg.init(&device), &x).is_none());
        }
        let flex_own = |cfg: Conv2dConfig, x: &Tensor<4>| geometry(&cfg.init(&device), x).map(|g| g.2);
        assert_eq!(flex_own(Conv2dConfig::new([8, 16], [1, 1]), &x), Some(true));
        assert_eq!(flex_own(Conv2dConfig::new([3, 16], [3, 3]), &random([1, 3, 6, 6], &device)), Some(true));
        assert_eq!(flex_own(Conv2dConfig::new([8, 16], [3, 3]), &x), Some(false));
        // in training, burn's own route: the same bits as Conv2d::forward
        let ad = Device::flex().autodiff();
        let conv = Conv2dConfig::new([8, 16], [1, 1]).init(&ad);
        let x = random([2, 8, 6, 6], &ad);
        assert_eq!(bits(conv2d(&conv, x.clone())), bits(conv.forward(x)));
    }
}
