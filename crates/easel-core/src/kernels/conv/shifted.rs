//! The dense convolution through [`wide::product`] (constant weights on a CPU with AVX-512):
//! at stride 1 the kernel taps as shifted rows of one padded copy of each image, else im2col
//! tiles with a row per tap. Values are burn's to rounding.

use burn::tensor::Shape;
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::{Geometry, valid_range};
use crate::kernels::{Shared, filled, values, wide};

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
pub(super) fn wide_forward(x: &FlexTensor, weight: &wide::Packed, bias: Option<&FlexTensor>, g: Geometry) -> FlexTensor {
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
