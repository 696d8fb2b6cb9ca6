//! The dense convolution's gradients, by burn's own route (see the module above): the input's
//! a transposed convolution (with [`wide`]'s products at stride 1, a convolution with the
//! kernels turned half a turn), the weight's in training a convolution with batch and
//! channels swapped, and the two autodiff nodes that call them.

use burn::backend::{Flex, TensorMetadata};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Shape};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops};
use burn_backend::ops::ModuleOps;
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::shifted::wide_forward;
use super::{Geometry, product, products, valid_range};
use crate::kernels::{contiguous, filled, one_input_backward, values, wide};

/// The input's gradient as burn computes it (burn-backend's `conv2d_x_backward`: a transposed
/// convolution of the output's gradient with the weight, which flex runs per image as one
/// matrix product into columns, then adds each kernel tap's column into the image, taps in
/// order). Here the same product, and the taps' adds as runs over a row instead of one indexed
/// add at a time (same adds, same order, so the same bits), images and channels in parallel.
/// `None` where flex would take another path (asymmetric padding; columns over its 8 MiB tile).
/// With `wide`, the products are [`wide::product`]'s (the same sums to rounding).
pub(super) fn x_gradient(grad: &FlexTensor, weight: &FlexTensor, g: Geometry, options: &ConvOptions<2>, wide: bool) -> Option<FlexTensor> {
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

/// The input's gradient: with [`wide`]'s products at stride 1 [`flipped_x_gradient`], else
/// [`x_gradient`] where it covers the geometry, else burn's.
fn x_grad(x: &FlexTensor, weight: FlexTensor, grad: FlexTensor, options: ConvOptions<2>, wide: bool) -> FlexTensor {
    let g = backward_geometry(x, &weight, &grad, &options);
    if wide && let Some(gx) = g.and_then(|g| flipped_x_gradient(&grad, &weight, g, &options)) {
        return gx;
    }
    match g.and_then(|g| x_gradient(&grad, &weight, g, &options, wide)) {
        Some(gx) => gx,
        None => Flex::conv2d_x_backward(x.clone(), weight, grad, options),
    }
}

/// The input's gradient at stride 1 as a convolution of the output's gradient with the
/// weight's kernels turned half a turn (input and output channels swapped, padding `k - 1 -
/// p` on each side), through [`wide_forward`]: every product lands in the gradient itself,
/// with no column matrix to add back tap by tap (those adds were a tenth of a batched
/// small-CNN gradient pass). The same sums as burn's in another order: its values to rounding,
/// so for [`wide`]'s constant weights only. `None` at other strides, or padding of a kernel's
/// size or more.
fn flipped_x_gradient(grad: &FlexTensor, weight: &FlexTensor, g: Geometry, options: &ConvOptions<2>) -> Option<FlexTensor> {
    let [(top, bottom), (left, right)] = options.padding;
    let fits = [g.sh, g.sw] == [1, 1] && top.max(bottom) < g.kh && left.max(right) < g.kw;
    if !fits || g.oh + g.kh != g.h + top + bottom + 1 || g.ow + g.kw != g.w + left + right + 1 {
        return None;
    }
    let (grad, weight) = (contiguous(grad), contiguous(weight));
    let flipped = wide::packed_flipped(&weight, [g.c_out, g.c_in, g.kh, g.kw]);
    let turned = Geometry { c_in: g.c_out, h: g.oh, w: g.ow, c_out: g.c_in, top: g.kh - 1 - top, left: g.kw - 1 - left, oh: g.h, ow: g.w, ..g };
    Some(wide_forward(&grad, &flipped, None, turned))
}

/// The weight's gradient as burn computes it for groups 1 (burn-backend's
/// `conv2d_weight_grad_no_groups`): a convolution of the input with the output's gradient,
/// batch and channels swapped on both (the images are the input channels, the channels the
/// batch, the kernel the output's plane), swapped back. Here the swapped copies are written
/// straight in the channels-last and reordered layouts flex's convolution builds from them, in
/// parallel, and the products land in the weight's layout; the convolution itself is the one
/// flex runs, so the same bits. `None` where flex would convolve another way (stride or
/// dilation above 1, asymmetric padding, a 1x1 plane, few channels).
pub(super) fn weight_gradient(x: &FlexTensor, grad: &FlexTensor, g: Geometry, options: &ConvOptions<2>) -> Option<FlexTensor> {
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

#[derive(Debug)]
pub(super) struct InputBackward;

impl Backward<Flex, 1> for InputBackward {
    /// The input's values, the weight (a constant), burn's options, and whether the products
    /// are [`wide`]'s.
    type State = (FlexTensor, FlexTensor, ConvOptions<2>, bool);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        one_input_backward(ops, grads, |(x, weight, options, wide), grad| x_grad(&x, weight, grad, options, wide));
    }
}

/// burn's own convolution node's backward (burn-autodiff's `Conv2DWithBias`/`Conv2DNoBias`):
/// the same calls on the same values, so the same gradients.
#[derive(Debug)]
pub(super) struct WeightBackward;

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
