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
    (b > a) | b.is_nan()
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
                gx.par_chunks_mut(g.h * g.w).zip(x.par_chunks(g.h * g.w)).zip(grad.par_chunks(g.oh * g.ow)).for_each(|((gx, plane), grad)| {
                    #[cfg(target_arch = "x86_64")]
                    if super::wide::available() {
                        // SAFETY: the CPU has AVX-512, checked on the line above.
                        return unsafe { pool_plane_gradient_avx512(gx, plane, grad, g) };
                    }
                    vectorised!(pool_plane_gradient(gx, plane, grad, g))
                })
            })
        });
    }
}

/// One plane of max pooling's gradient: each output's gradient goes to its window's winner
/// (added to zero, as burn does), the other three elements get zero. Written without branches,
/// as bit masks (the winners are data, so branches on them mispredict half the time).
#[inline(always)]
fn pool_plane_gradient(gx: &mut [f32], x: &[f32], grad: &[f32], g: PoolGeometry) {
    for (oy, grad) in grad.chunks_exact(g.ow).enumerate() {
        let (upper, lower) = gx[2 * oy * g.w..][..2 * g.w].split_at_mut(g.w);
        // windows as pairs of columns (whole arrays, so the loop vectorises over windows)
        let (top, bottom) = (x[2 * oy * g.w..][..2 * g.ow].as_chunks::<2>().0, x[(2 * oy + 1) * g.w..][..2 * g.ow].as_chunks::<2>().0);
        let (gt, gb) = (upper[..2 * g.ow].as_chunks_mut::<2>().0, lower[..2 * g.ow].as_chunks_mut::<2>().0);
        for i in 0..g.ow {
            let (t, b) = (top[i], bottom[i]);
            let (t1, b1) = (later_wins(t[0], t[1]), later_wins(b[0], b[1]));
            let lower_wins = later_wins(later_if_larger(t[0], t[1]), later_if_larger(b[0], b[1]));
            // all ones where true; a loser's bits are 0.0's
            let mask = |c: bool| (c as u32).wrapping_neg();
            let (d, lower, t1, b1) = ((0.0 + grad[i]).to_bits(), mask(lower_wins), mask(t1), mask(b1));
            gt[i] = [f32::from_bits(d & !lower & !t1), f32::from_bits(d & !lower & t1)];
            gb[i] = [f32::from_bits(d & lower & !b1), f32::from_bits(d & lower & b1)];
        }
    }
}

/// [`pool_plane_gradient`] 16 windows a step (masked past the row's last): the rows' pairs
/// split into first and second columns, the same comparisons as masks, the gradient placed by
/// masked moves (zero elsewhere) and the columns interleaved back.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn pool_plane_gradient_avx512(gx: &mut [f32], x: &[f32], grad: &[f32], g: PoolGeometry) {
    use std::arch::x86_64::*;
    let first = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let second = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    let high = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    // later_wins as a mask: b > a, or b NaN
    let wins = |a: __m512, b: __m512| _mm512_cmp_ps_mask::<_CMP_GT_OQ>(b, a) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(b, b);
    let lanes = super::wide::lanes;
    for (oy, grad) in grad.chunks_exact(g.ow).enumerate() {
        let (upper, lower) = gx[2 * oy * g.w..][..2 * g.w].split_at_mut(g.w);
        let (top, bottom) = (&x[2 * oy * g.w..][..2 * g.ow], &x[(2 * oy + 1) * g.w..][..2 * g.ow]);
        for start in (0..g.ow).step_by(16) {
            let count = (g.ow - start).min(16);
            // the windows' gradients, and their rows' two halves of 16 floats
            let (m, m0, m1) = (lanes(count), lanes(2 * count), lanes((2 * count).saturating_sub(16)));
            let at = 2 * start;
            // SAFETY: the masks admit only the row's first 2 * ow floats and the first ow
            // gradients (at + 2 * count <= 2 * ow); the upper half's pointer is formed wrapping,
            // as it may lie past the slice when its mask is empty.
            unsafe {
                let split = |row: &[f32]| {
                    let p = row.as_ptr().add(at);
                    let (a, b) = (_mm512_maskz_loadu_ps(m0, p), _mm512_maskz_loadu_ps(m1, p.wrapping_add(16)));
                    (_mm512_permutex2var_ps(a, first, b), _mm512_permutex2var_ps(a, second, b))
                };
                let ((t0, t1), (b0, b1)) = (split(top), split(bottom));
                let (tw, bw) = (wins(t0, t1), wins(b0, b1));
                let lw = wins(_mm512_mask_blend_ps(tw, t0, t1), _mm512_mask_blend_ps(bw, b0, b1));
                let d = _mm512_add_ps(_mm512_setzero_ps(), _mm512_maskz_loadu_ps(m, grad.as_ptr().add(start)));
                let put = |row: &mut [f32], w0: __mmask16, w1: __mmask16| {
                    let (a, b) = (_mm512_maskz_mov_ps(w0, d), _mm512_maskz_mov_ps(w1, d));
                    let p = row.as_mut_ptr().add(at);
                    _mm512_mask_storeu_ps(p, m0, _mm512_permutex2var_ps(a, low, b));
                    _mm512_mask_storeu_ps(p.wrapping_add(16), m1, _mm512_permutex2var_ps(a, high, b));
                };
                put(upper, !lw & !tw, !lw & tw);
                put(lower, lw & !bw, lw & bw);
            }
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
    /// dropped), rows of more than 16 windows, ties (ReLU's zeros, repeated values), -0.0 and NaN.
    #[test]
    fn max_pool_equals_burns() {
        let device = Device::flex();
        let pool = MaxPool2dConfig::new([2, 2]).init();
        for (h, w) in [(4, 4), (7, 5), (28, 28), (6, 67)] {
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
