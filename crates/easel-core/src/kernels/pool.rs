//! 2x2 max pooling (the small CNNs'): four loads and three selects a window.

use burn::backend::Flex;
use burn::nn::PaddingConfig2d;
use burn::nn::pool::MaxPool2d;
use burn::tensor::{Shape, Tensor};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::{constant, contiguous, filled, one_input_backward, values, with_backward};

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

/// burn's rule between two elements in window order: the later one wins if it is larger or NaN.
/// Choosing within each row, then between the rows, picks the same element as choosing along
/// the window in order (the first largest, or the last NaN), so the rows can be done as pairs.
#[inline(always)]
fn later_wins(a: f32, b: f32) -> bool {
    b > a || b.is_nan()
}

#[inline(always)]
fn later_if_larger(a: f32, b: f32) -> f32 {
    if later_wins(a, b) { b } else { a }
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
            let (t1, b1) = (later_wins(t[0], t[1]), later_wins(b[0], b[1]));
            let lower_wins = later_wins(later_if_larger(t[0], t[1]), later_if_larger(b[0], b[1]));
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
    use super::super::tests::{bits, input_gradient, random};
    use super::*;
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::Device;

    /// Max pooling's values and gradient equal burn's bit for bit: odd sizes (a row and a column
    /// dropped), ties (ReLU's zeros, repeated values), -0.0 and NaN.
    #[test]
    fn max_pool_equals_burns() {
        let device = Device::flex();
        let pool = MaxPool2dConfig::new([2, 2]).init();
        for (h, w) in [(4, 4), (7, 5), (28, 28)] {
            let n = 2 * 3 * h * w;
            let mut v: Vec<f32> = (0..n).map(|i| ((i * 7919) % 13) as f32 - 6.0).collect();
            v.iter_mut().step_by(5).for_each(|x| *x = 0.0);
            v[1] = f32::NAN;
            v[6] = -0.0;
            let x = Tensor::<1>::from_floats(v.as_slice(), &device).reshape([2, 3, h, w]);
            assert_eq!(bits(max_pool2d(&pool, x.clone())), bits(pool.forward(x.clone())), "{h}x{w}");
            let g = PoolGeometry { n: 2, c: 3, h, w, oh: h / 2, ow: w / 2 };
            let direct = Tensor::from_primitive::<Flex>(pool_forward(&v, g));
            assert_eq!(bits(direct), bits(pool.forward(x.clone())), "{h}x{w}: the loop itself");
            let mix = random([2, 3, h / 2, w / 2], &device);
            assert_eq!(input_gradient(&|x| max_pool2d(&pool, x), &x, &mix), input_gradient(&|x| pool.forward(x), &x, &mix), "{h}x{w}");
        }
    }
}
