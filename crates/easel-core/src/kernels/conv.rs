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
//! input's gradient take [`wide`]'s product instead, 1x1 and few-channel kernels included:
//! burn's values to rounding (tests), never in training.

use burn::backend::{Autodiff, Flex, TensorMetadata};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Shape, Tensor};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops};
use burn_backend::ops::ModuleOps;
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::{Shared, contiguous, filled, graph_node, values, wide};

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

/// Floats of a running image's buffers on [`wide_forward`]'s shifted route at most: 32 MiB.
const SHIFTED_FLOATS: usize = 8 << 20;

/// Floats of im2col matrix per tile of [`wide_forward`]: 256 KiB, within a core's share of L2.
const WIDE_TILE: usize = 64 * 1024;

/// The convolution through [`wide::product`]. At stride 1 with no im2col matrix at all: per
/// image a zero-padded copy, whose kernel taps are the product's rows at shifted offsets,
/// giving outputs over the padded width (the columns past the output's are dropped). Else the
/// batch's output pixels in tiles (a tile may span images), per tile an im2col matrix with a
/// row per kernel tap read from the channels-first input. Each product lands in a scratch
/// block, copied out with the bias added (after the product, as burn adds it).
fn wide_forward(x: &FlexTensor, weight: &wide::Packed, bias: Option<&FlexTensor>, g: Geometry) -> FlexTensor {
    let (x, bias) = (values(x), bias.map(values));
    // the shifted route's per-image buffers (a padded copy, an output-sized block) only where
    // they are modest; a huge image goes by tiles of bounded size
    let (wp, hp) = (g.ow + g.kw - 1, g.oh + g.kh);
    if g.sh == 1 && g.sw == 1 && g.c_in * hp * wp + g.c_out * g.oh * wp <= SHIFTED_FLOATS {
        return shifted_forward(x, weight, bias, g);
    }
    let (col_len, spatial) = (g.col_len(), g.oh * g.ow);
    let total = g.n * spatial;
    let tile = (WIDE_TILE / col_len).max(32) / 32 * 32;
    assert!(weight.rows() == g.c_out && x.len() == g.n * g.c_in * g.h * g.w);
    filled(Shape::new([g.n, g.c_out, g.oh, g.ow]), |out| {
        // the tiles write their own pixels
        let dst = Shared::new(out);
        (0..total.div_ceil(tile)).into_par_iter().for_each_init(
            || (Vec::new(), Vec::new()),
            |(col, block), t| {
                let pixels = t * tile..((t + 1) * tile).min(total);
                let len = pixels.len();
                col.resize(col_len * len, 0.0);
                tap_rows(col, x, pixels.clone(), g);
                block.resize(g.c_out * len, 0.0);
                // SAFETY: the CPU has AVX-512 (the caller chose this path); col is col_len rows
                // of len, block c_out rows of len, both this tile's own.
                let rows: Vec<usize> = (0..col_len).map(|c| c * len).collect();
                unsafe { wide::product(weight, col.as_ptr(), &rows, len, block.as_mut_ptr(), len) };
                let mut p = pixels.start;
                while p < pixels.end {
                    let (b, q) = (p / spatial, p % spatial);
                    let run = (spatial - q).min(pixels.end - p);
                    for co in 0..g.c_out {
                        let src = &block[co * len + p - pixels.start..][..run];
                        // SAFETY: pixels q..q + run of image b's channel co, inside `out` and
                        // written by this tile only.
                        let row = unsafe { dst.slice((b * g.c_out + co) * spatial + q, run) };
                        with_bias(row, src, bias.map(|b| b[co]));
                    }
                    p += run;
                }
            },
        );
    })
}

/// [`wide_forward`] at stride 1: per image, the kernel taps as shifted rows of one padded copy.
fn shifted_forward(x: &[f32], weight: &wide::Packed, bias: Option<&[f32]>, g: Geometry) -> FlexTensor {
    // the padded image: the output's rows plus the kernel's, and a spare row for the dropped
    // columns' reads past the last; as wide as the output plus the kernel
    let (wp, hp) = (g.ow + g.kw - 1, g.oh + g.kh);
    let (plane, padded_plane, n) = (g.h * g.w, hp * wp, g.oh * wp);
    assert!(g.top + g.h <= hp && g.left + g.w <= wp && weight.rows() == g.c_out && x.len() == g.n * g.c_in * plane);
    if g.kh * g.kw == 1 && g.top == 0 && g.left == 0 && (g.oh, g.ow) == (g.h, g.w) {
        // a 1x1 kernel without padding: the image's channels are the rows, the output's the block
        let rows: Vec<usize> = (0..g.c_in).map(|c| c * plane).collect();
        return filled(Shape::new([g.n, g.c_out, g.oh, g.ow]), |out| {
            out.par_chunks_mut(g.c_out * plane).zip(x.par_chunks(g.c_in * plane)).for_each(|(out, image)| {
                // SAFETY: the CPU has AVX-512 (the caller chose this path); the image is c_in
                // rows of `plane`, out c_out rows of `plane`, this image's own.
                unsafe { wide::product(weight, image.as_ptr(), &rows, plane, out.as_mut_ptr(), plane) };
                if let Some(bias) = bias {
                    out.chunks_exact_mut(plane).zip(bias).for_each(|(row, &b)| row.iter_mut().for_each(|v| *v += b));
                }
            });
        });
    }
    let rows: Vec<usize> = (0..g.col_len()).map(|t| (t / (g.kh * g.kw)) * padded_plane + (t / g.kw % g.kh) * wp + t % g.kw).collect();
    filled(Shape::new([g.n, g.c_out, g.oh, g.ow]), |out| {
        out.par_chunks_mut(g.c_out * g.oh * g.ow).zip(x.par_chunks(g.c_in * plane)).for_each_init(
            || (Vec::new(), Vec::new()),
            |(padded, block), (out, image)| {
                padded.clear();
                padded.resize(g.c_in * padded_plane, 0.0);
                for (dst, src) in padded.chunks_exact_mut(padded_plane).zip(image.chunks_exact(plane)) {
                    for (y, src) in src.chunks_exact(g.w).enumerate() {
                        dst[(g.top + y) * wp + g.left..][..g.w].copy_from_slice(src);
                    }
                }
                block.resize(g.c_out * n, 0.0);
                // SAFETY: the CPU has AVX-512 (the caller chose this path); every row reads n
                // floats from rows[t] <= (c_in - 1) * padded_plane + (kh - 1) * wp + kw - 1, so
                // the last ends before c_in * padded_plane (hp has a spare row); block is c_out
                // rows of n, this image's own.
                unsafe { wide::product(weight, padded.as_ptr(), &rows, n, block.as_mut_ptr(), n) };
                for (co, (dst, src)) in out.chunks_exact_mut(g.oh * g.ow).zip(block.chunks_exact(n)).enumerate() {
                    for (dst, src) in dst.chunks_exact_mut(g.ow).zip(src.chunks_exact(wp)) {
                        with_bias(dst, &src[..g.ow], bias.map(|b| b[co]));
                    }
                }
            },
        );
    })
}

/// `dst = src + bias` (the bias added after the product, as burn adds it), or a copy.
fn with_bias(dst: &mut [f32], src: &[f32], bias: Option<f32>) {
    match bias {
        Some(b) => dst.iter_mut().zip(src).for_each(|(o, &v)| *o = v + b),
        None => dst.copy_from_slice(src),
    }
}

/// `col` as an im2col matrix with a row per kernel tap (input channel, kernel row, kernel
/// column, as the weight's columns run) of the batch's output pixels `pixels` (image by image,
/// row by row): the input value under that tap, zero in the padding.
fn tap_rows(col: &mut [f32], x: &[f32], pixels: std::ops::Range<usize>, g: Geometry) {
    let (spatial, plane, len) = (g.oh * g.ow, g.h * g.w, pixels.len());
    for (tap, row) in col.chunks_exact_mut(len).enumerate() {
        let (ci, ky, kx) = (tap / (g.kh * g.kw), tap / g.kw % g.kh, tap % g.kw);
        let (y0, y1) = valid_range(ky, g.top, g.sh, g.oh, g.h);
        let (x0, x1) = valid_range(kx, g.left, g.sw, g.ow, g.w);
        let mut p = pixels.start;
        while p < pixels.end {
            let (b, q) = (p / spatial, p % spatial);
            let (oy, ox) = (q / g.ow, q % g.ow);
            let run = (g.ow - ox).min(pixels.end - p);
            let dst = &mut row[p - pixels.start..][..run];
            // the run's pixels ox..ox + run whose tap lands inside the input
            let lo = x0.clamp(ox, ox + run);
            let hi = x1.clamp(lo, ox + run);
            if oy < y0 || oy >= y1 || lo == hi {
                dst.fill(0.0);
            } else {
                let src = &x[(b * g.c_in + ci) * plane + (oy * g.sh + ky - g.top) * g.w..][..g.w];
                dst[..lo - ox].fill(0.0);
                dst[hi - ox..].fill(0.0);
                let first = lo * g.sw + kx - g.left;
                if g.sw == 1 {
                    dst[lo - ox..hi - ox].copy_from_slice(&src[first..first + hi - lo]);
                } else {
                    dst[lo - ox..hi - ox].iter_mut().zip(src[first..].iter().step_by(g.sw)).for_each(|(d, &v)| *d = v);
                }
            }
            p += run;
        }
    }
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

/// The input's gradient as burn computes it (burn-backend's `conv2d_x_backward`: a transposed
/// convolution of the output's gradient with the weight, which flex runs per image as one
/// matrix product into columns, then adds each kernel tap's column into the image, taps in
/// order). Here the same product, and the taps' adds as runs over a row instead of one indexed
/// add at a time (same adds, same order, so the same bits), images and channels in parallel.
/// `None` where flex would take another path (asymmetric padding; columns over its 8 MiB tile).
/// With `wide`, the products are [`wide::product`]'s (the same sums to rounding).
fn x_gradient(grad: &FlexTensor, weight: &FlexTensor, g: Geometry, options: &ConvOptions<2>, wide: bool) -> Option<FlexTensor> {
    let (taps, in_plane, plane) = (g.kh * g.kw, g.oh * g.ow, g.h * g.w);
    let col_ch = g.c_in * taps;
    if options.is_asymmetric() || col_ch * in_plane * 4 > 8 * 1024 * 1024 {
        return None;
    }
    let (grad, weight) = (contiguous(grad), contiguous(weight));
    // the weight's transpose (col_ch x c_out) for the wide product
    let packed = wide.then(|| wide::packed(&weight, col_ch, g.c_out, [1, col_ch]));
    let (grad, weight) = (values(&grad), values(&weight));
    assert!(grad.len() == g.n * g.c_out * in_plane && weight.len() == g.c_out * col_ch);
    let grad_rows: Vec<usize> = (0..g.c_out).map(|co| co * in_plane).collect();
    Some(filled(Shape::new([g.n, g.c_in, g.h, g.w]), |out| {
        out.par_chunks_mut(g.c_in * plane).zip(grad.par_chunks(g.c_out * in_plane)).for_each(|(image, grad)| {
            // columns[c * taps + tap][input pixel]: the weight's transpose times the gradient
            let mut columns = vec![0.0f32; col_ch * in_plane];
            // SAFETY: columns is col_ch x in_plane (dst strides 1, in_plane); the weight read as
            // its transpose is c_out x col_ch (strides col_ch, 1); the gradient c_out x
            // in_plane (strides 1, in_plane): all within their slices.
            unsafe {
                match &packed {
                    // the CPU has AVX-512 (the caller chose `wide`)
                    Some(packed) => wide::product(packed, grad.as_ptr(), &grad_rows, in_plane, columns.as_mut_ptr(), in_plane),
                    None => {
                        product([col_ch, in_plane, g.c_out], columns.as_mut_ptr(), in_plane, (weight.as_ptr(), [col_ch, 1]), (grad.as_ptr(), [1, in_plane]))
                    }
                }
            }
            image.par_chunks_mut(plane).enumerate().for_each(|(c, dst)| {
                for ky in 0..g.kh {
                    let (y0, y1) = valid_range(ky, g.top, g.sh, g.oh, g.h);
                    for kx in 0..g.kw {
                        let (x0, x1) = valid_range(kx, g.left, g.sw, g.ow, g.w);
                        if y0 >= y1 || x0 >= x1 {
                            continue;
                        }
                        let col = &columns[(c * taps + ky * g.kw + kx) * in_plane..][..in_plane];
                        for iy in y0..y1 {
                            let oy = iy * g.sh + ky - g.top;
                            let ox0 = x0 * g.sw + kx - g.left;
                            let src = &col[iy * g.ow + x0..iy * g.ow + x1];
                            let row = &mut dst[oy * g.w..][..g.w];
                            if g.sw == 1 {
                                row[ox0..ox0 + src.len()].iter_mut().zip(src).for_each(|(o, &v)| *o += v);
                            } else {
                                row[ox0..].iter_mut().step_by(g.sw).zip(src).for_each(|(o, &v)| *o += v);
                            }
                        }
                    }
                }
            });
        });
    }))
}

/// The outputs `i` (of `outputs`) whose tap `k` lands inside the input (`0 <= i * stride + k -
/// pad < size`), as flex's transposed convolution bounds them.
fn valid_range(k: usize, pad: usize, stride: usize, outputs: usize, size: usize) -> (usize, usize) {
    let start = if k >= pad { 0 } else { (pad - k).div_ceil(stride) };
    let end = if k >= size + pad { 0 } else { (size + pad - k).div_ceil(stride) }.min(outputs);
    (start.min(end), end)
}

/// The input's gradient: [`x_gradient`] where it covers the geometry, else burn's.
fn x_grad(x: &FlexTensor, weight: FlexTensor, grad: FlexTensor, options: ConvOptions<2>, wide: bool) -> FlexTensor {
    match backward_geometry(x, &weight, &grad, &options).and_then(|g| x_gradient(&grad, &weight, g, &options, wide)) {
        Some(gx) => gx,
        None => Flex::conv2d_x_backward(x.clone(), weight, grad, options),
    }
}

/// The weight's gradient as burn computes it for groups 1 (burn-backend's
/// `conv2d_weight_grad_no_groups`): a convolution of the input with the output's gradient,
/// batch and channels swapped on both (the images are the input channels, the channels the
/// batch, the kernel the output's plane), swapped back. Here the swapped copies are written
/// straight in the channels-last and reordered layouts flex's convolution builds from them, in
/// parallel, and the products land in the weight's layout; the convolution itself is the one
/// flex runs, so the same bits. `None` where flex would convolve another way (stride or
/// dilation above 1, asymmetric padding, a 1x1 plane, few channels).
fn weight_gradient(x: &FlexTensor, grad: &FlexTensor, g: Geometry, options: &ConvOptions<2>) -> Option<FlexTensor> {
    let inner = Geometry { n: g.c_in, c_in: g.n, c_out: g.c_out, kh: g.oh, kw: g.ow, oh: g.kh, ow: g.kw, ..g };
    let symmetric = !options.is_asymmetric() && [g.sh, g.sw] == [1, 1];
    let small_channels = inner.c_in <= 4 && inner.c_out <= 16;
    if !symmetric || small_channels || inner.kh * inner.kw <= 1 || (g.h + 2 * g.top - inner.kh) + 1 != g.kh || (g.w + 2 * g.left - inner.kw) + 1 != g.kw {
        return None;
    }
    let (x, grad) = (contiguous(x), contiguous(grad));
    let (x, grad) = (values(&x), values(&grad));
    let (plane, out_plane) = (g.h * g.w, g.oh * g.ow);
    // images: input channel ci as [h][w][batch]
    let mut nhwc = vec![0.0f32; x.len()];
    nhwc.par_chunks_mut(plane * g.n).enumerate().for_each(|(ci, dst)| {
        for (b, src) in x.chunks_exact(g.c_in * plane).enumerate() {
            for (p, &v) in src[ci * plane..][..plane].iter().enumerate() {
                dst[p * g.n + b] = v;
            }
        }
    });
    // weights: output channel co as [plane row][plane column][batch]
    let mut w_flat = vec![0.0f32; grad.len()];
    w_flat.par_chunks_mut(out_plane * g.n).enumerate().for_each(|(co, dst)| {
        for (b, src) in grad.chunks_exact(g.c_out * out_plane).enumerate() {
            for (p, &v) in src[co * out_plane..][..out_plane].iter().enumerate() {
                dst[p * g.n + b] = v;
            }
        }
    });
    let taps = g.kh * g.kw;
    // image ci's channel co is the weight's [co][ci]
    Some(filled(Shape::new([g.c_out, g.c_in, g.kh, g.kw]), |out| products(&nhwc, &w_flat, None, inner, out, [taps, g.c_in * taps])))
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

#[derive(Debug)]
struct InputBackward;

impl Backward<Flex, 1> for InputBackward {
    /// The input's values, the weight (a constant), burn's options, and whether the products
    /// are [`wide`]'s.
    type State = (FlexTensor, FlexTensor, ConvOptions<2>, bool);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        super::one_input_backward(ops, grads, |(x, weight, options, wide), grad| x_grad(&x, weight, grad, options, wide));
    }
}

/// burn's own convolution node's backward (burn-autodiff's `Conv2DWithBias`/`Conv2DNoBias`):
/// the same calls on the same values, so the same gradients.
#[derive(Debug)]
struct WeightBackward;

impl Backward<Flex, 2> for WeightBackward {
    /// The input's and the weight's values and burn's options.
    type State = (FlexTensor, FlexTensor, ConvOptions<2>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (x, weight, options) = ops.state;
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, x_grad(&x, weight.clone(), grad.clone(), options.clone(), false));
        }
        if let Some(node) = node_w {
            grads.register::<Flex>(node.id, weight_grad(x, weight, grad, options));
        }
    }
}

/// The weight's gradient: [`weight_gradient`] where it covers the geometry, else burn's.
fn weight_grad(x: FlexTensor, weight: FlexTensor, grad: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
    match backward_geometry(&x, &weight, &grad, &options).and_then(|g| weight_gradient(&x, &grad, g, &options)) {
        Some(wg) => wg,
        None => Flex::conv2d_weight_backward(x, weight, grad, options),
    }
}

/// The geometry of the convolution whose input, weight and output gradient these are, if it
/// is one our gradients may cover: f32 throughout, groups 1, no dilation.
fn backward_geometry(x: &FlexTensor, weight: &FlexTensor, grad: &FlexTensor, options: &ConvOptions<2>) -> Option<Geometry> {
    let f32s = [x, weight, grad].iter().all(|t| t.dtype() == DType::F32);
    if !f32s || options.groups != 1 || options.dilation != [1, 1] {
        return None;
    }
    let (xs, ws, gs) = (x.shape(), weight.shape(), grad.shape());
    Some(Geometry {
        n: xs[0],
        c_in: xs[1],
        h: xs[2],
        w: xs[3],
        c_out: ws[0],
        kh: ws[2],
        kw: ws[3],
        sh: options.stride[0],
        sw: options.stride[1],
        top: options.padding[0].0,
        left: options.padding[1].0,
        oh: gs[2],
        ow: gs[3],
    })
}

impl Backward<Flex, 3> for WeightBackward {
    /// The input's, the weight's and the bias's values and burn's options.
    type State = (FlexTensor, FlexTensor, FlexTensor, ConvOptions<2>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (x, weight, bias, options) = ops.state;
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, x_grad(&x, weight.clone(), grad.clone(), options.clone(), false));
        }
        if let Some(node) = node_w {
            grads.register::<Flex>(node.id, weight_grad(x.clone(), weight, grad.clone(), options));
        }
        if let Some(node) = node_b {
            grads.register::<Flex>(node.id, Flex::conv2d_bias_backward(x, bias, grad));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{bits, input_gradient, random};
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
