//! A matrix product on AVX-512 for the convolutions of an evaluation-mode model (explanations,
//! predictions), where burn's `gemm` (built without its AVX-512 kernels, see below) takes 8
//! floats a step and packs both operands on every call.
//!
//! `gemm` has AVX-512 kernels behind a cargo feature that would switch every product burn makes
//! to them, training's included, and change trained weights in their last bits on such CPUs
//! (the same seed would no longer give the same numbers as before, or as on another x86 CPU).
//! So training stays on burn's products, and only the evaluation-mode convolutions come here:
//! their outputs differ from burn's by rounding (each output is its products added in order, k
//! from first to last, one fused multiply-add at a time), a few parts in a million.
//!
//! The layout suits a convolution: the right operand is `k` rows of pixels (an im2col matrix
//! with a row per kernel tap, or a channels-first image), read as it lies, 32 pixels a step in
//! two registers; the left (weights) is packed once per call into blocks of eight rows, whose
//! values are broadcast. 16 accumulators, two loads and eight broadcasts per 16 multiply-adds.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use std::sync::{Arc, Mutex};

use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::{Shared, values};

/// Rows of the left operand per packed block (accumulator rows of the kernel).
const ROWS: usize = 8;
/// Columns (pixels) per kernel step: two 16-float registers.
const COLS: usize = 32;

/// Whether this CPU runs [`product`].
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The left operand (`m` x `k`) in blocks of [`ROWS`] rows, each block as `k` groups of
/// [`ROWS`] values (rows past `m` zero).
pub(super) struct Packed {
    data: Vec<f32>,
    m: usize,
    k: usize,
}

impl Packed {
    /// `a`'s element (r, c) is `a[r * strides[0] + c * strides[1]]`.
    pub(super) fn new(a: &[f32], m: usize, k: usize, [rs, cs]: [usize; 2]) -> Packed {
        assert!(m == 0 || k == 0 || (m - 1) * rs + (k - 1) * cs < a.len());
        let mut data = vec![0.0f32; m.div_ceil(ROWS) * ROWS * k];
        data.par_chunks_mut(ROWS * k).enumerate().for_each(|(block, dst)| {
            for r in 0..ROWS.min(m - block * ROWS) {
                let row = (block * ROWS + r) * rs;
                for c in 0..k {
                    dst[c * ROWS + r] = a[row + c * cs];
                }
            }
        });
        Packed { data, m, k }
    }

    pub(super) fn rows(&self) -> usize {
        self.m
    }
}

/// Weights packed for [`product`], with the tensors they came from and how they were read
/// (address, length, then the packing's own key: see [`packed`] and [`packed_flipped`]).
struct PackCache {
    entries: Vec<(FlexTensor, [usize; 7], Arc<Packed>)>,
    floats: usize,
}

/// Packed floats the cache holds at most (and as many again in the weights it keeps alive):
/// EfficientNet-Lite0's convolutions, both ways, fit several times over.
const CACHE_FLOATS: usize = 32 << 20;

static CACHE: Mutex<PackCache> = Mutex::new(PackCache { entries: Vec::new(), floats: 0 });

/// `weight` (`m` x `k` through `strides`, as [`Packed::new`] reads it) packed, from the cache
/// when this tensor's values were packed the same way before. An evaluation-mode model passes
/// the same weight tensors on every call, and packing one is a pass over it with strided
/// reads (a tenth of a batch-1 pass of the small CNN). The entry holds a clone of the tensor:
/// while it lives, no other tensor can have its address, and a writer would copy its values
/// first (flex copies shared storage on write), so an address names the same values.
pub(super) fn packed(weight: &FlexTensor, m: usize, k: usize, strides: [usize; 2]) -> Arc<Packed> {
    cached(weight, [m, k, strides[0], strides[1], 0], |w| Packed::new(w, m, k, strides))
}

/// A convolution weight `[c_out, c_in, kh, kw]` as the kernel of its input gradient at stride
/// 1 (a convolution of the output's gradient): `[c_in, c_out, kh, kw]`, each kernel turned
/// half a turn, packed `c_in` x `c_out * kh * kw`; cached as [`packed`] is.
pub(super) fn packed_flipped(weight: &FlexTensor, [c_out, c_in, kh, kw]: [usize; 4]) -> Arc<Packed> {
    cached(weight, [c_in, c_out * kh * kw, kh, kw, 1], |w| {
        let taps = kh * kw;
        assert_eq!(w.len(), c_out * c_in * taps);
        let mut flipped = vec![0.0f32; w.len()];
        for (co, kernels) in w.chunks_exact(c_in * taps).enumerate() {
            for (ci, kernel) in kernels.chunks_exact(taps).enumerate() {
                let dst = &mut flipped[(ci * c_out + co) * taps..][..taps];
                dst.iter_mut().zip(kernel.iter().rev()).for_each(|(d, &v)| *d = v);
            }
        }
        Packed::new(&flipped, c_in, c_out * taps, [c_out * taps, 1])
    })
}

/// The packing `build` makes of `weight`'s values, keyed by the tensor and `how`.
fn cached(weight: &FlexTensor, how: [usize; 5], build: impl FnOnce(&[f32]) -> Packed) -> Arc<Packed> {
    let values = values(weight);
    let key = [values.as_ptr() as usize, values.len(), how[0], how[1], how[2], how[3], how[4]];
    let lock = || CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let find = |cache: &PackCache| cache.entries.iter().find(|(_, k, _)| *k == key).map(|(_, _, p)| p.clone());
    if let Some(p) = find(&lock()) {
        return p;
    }
    let p = Arc::new(build(values));
    let mut cache = lock();
    // another thread packed it meanwhile: one entry, and the same packing for both
    if let Some(p) = find(&cache) {
        return p;
    }
    free_dropped(&mut cache);
    // when full, nothing more is kept: a model larger than the cache still finds the layers
    // that fitted on every call (evicting the oldest would evict each layer before its turn)
    if cache.floats + p.data.len() <= CACHE_FLOATS {
        cache.floats += p.data.len();
        cache.entries.push((weight.clone(), key, p.clone()));
    }
    p
}

/// Frees the entries of weights that only the cache still holds (their model was dropped: a
/// sanity check's randomised copy, a model the user closed): they can never be asked for
/// again. A weight packed several ways has an entry, and a clone, per packing, so a storage
/// is dropped when the cache's entries are all that hold it.
fn free_dropped(cache: &mut PackCache) {
    let storages: Vec<(usize, usize)> = cache
        .entries
        .iter()
        .map(|(t, _, _)| {
            let data = t.data_arc();
            (Arc::as_ptr(&data) as *const () as usize, Arc::strong_count(&data) - 1)
        })
        .collect();
    let held = |&(storage, count): &(usize, usize)| count > storages.iter().filter(|(s, _)| *s == storage).count();
    if storages.iter().all(held) {
        return;
    }
    let mut keep = storages.iter().map(held);
    cache.entries.retain(|_| keep.next().unwrap_or(true));
    cache.floats = cache.entries.iter().map(|(_, _, p)| p.data.len()).sum();
}

/// `out[r * out_rs + j] = sum over c of a[r][c] * b[rows[c] + j]` for `r < a.rows()`, `j < n`:
/// `b`'s row `c` starts at `rows[c]` (rows may overlap: a convolution's taps read one padded
/// image at shifted offsets). The pixels go in panels whose rows fit in a core's cache, every
/// row block over a panel before the next; the pieces run in parallel when the product is
/// large enough to pay for it.
///
/// # Safety
/// [`available`] is true; `rows` has `k` offsets and `b` holds `n` floats from each; `out`
/// holds `a.rows()` rows of `n` at a stride of `out_rs`, which no other thread touches meanwhile.
pub(super) unsafe fn product(a: &Packed, b: *const f32, rows: &[usize], n: usize, out: *mut f32, out_rs: usize) {
    assert!(available(), "the AVX-512 product on a CPU without AVX-512");
    assert_eq!(rows.len(), a.k);
    let blocks = a.m.div_ceil(ROWS);
    let panel = (PANEL / a.k.max(1)).clamp(COLS, 16 * COLS) / COLS * COLS;
    // the blocks write disjoint rows
    let (b, out) = (b as usize, Shared(out));
    let run = |piece: usize| {
        let (block, start) = (piece % blocks, piece / blocks * panel);
        // SAFETY: the caller's guarantees, for this block's rows and this panel's pixels.
        unsafe { block_product(a, block, b as *const f32, rows, start..(start + panel).min(n), out, out_rs) }
    };
    let pieces = blocks * n.div_ceil(panel);
    if a.m * a.k * n >= 1 << 20 && pieces > 1 {
        (0..pieces).into_par_iter().for_each(run);
    } else {
        (0..pieces).for_each(run);
    }
}

/// Floats of the right operand per panel: 64 KiB.
const PANEL: usize = 16 * 1024;

/// One block of [`ROWS`] rows of [`product`] over the pixels `pixels`, [`COLS`] at a time.
unsafe fn block_product(a: &Packed, block: usize, b: *const f32, rows_at: &[usize], pixels: std::ops::Range<usize>, out: Shared, out_rs: usize) {
    #[cfg(target_arch = "x86_64")]
    unsafe {
        let rows = (a.m - block * ROWS).min(ROWS);
        let packed = a.data.as_ptr().add(block * ROWS * a.k);
        let out = out.at(block * ROWS * out_rs);
        for j in pixels.clone().step_by(COLS) {
            let (b, out, cols) = (b.add(j), out.add(j), (pixels.end - j).min(COLS));
            match rows {
                8 => kernel::<8>(packed, rows_at, b, cols, out, out_rs),
                7 => kernel::<7>(packed, rows_at, b, cols, out, out_rs),
                6 => kernel::<6>(packed, rows_at, b, cols, out, out_rs),
                5 => kernel::<5>(packed, rows_at, b, cols, out, out_rs),
                4 => kernel::<4>(packed, rows_at, b, cols, out, out_rs),
                3 => kernel::<3>(packed, rows_at, b, cols, out, out_rs),
                2 => kernel::<2>(packed, rows_at, b, cols, out, out_rs),
                _ => kernel::<1>(packed, rows_at, b, cols, out, out_rs),
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (a, block, b, rows_at, pixels, out, out_rs);
}

/// A mask of the first `n` (at most 16) lanes of a 16-float register.
pub(super) fn lanes(n: usize) -> u16 {
    ((1u32 << n.min(16)) - 1) as u16
}

/// `R` rows by `cols` (<= 32) pixels: per step of `k`, two (masked) loads of `b`'s row, `R`
/// broadcasts of the packed column, `2R` fused multiply-adds; then masked stores.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn kernel<const R: usize>(a: *const f32, rows_at: &[usize], b: *const f32, cols: usize, out: *mut f32, out_rs: usize) {
    let (lanes, high) = (lanes(cols), lanes(cols.saturating_sub(16)));
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    for (c, &at) in rows_at.iter().enumerate() {
        // SAFETY (the whole body): the caller's; the masked-off lanes are not read or written,
        // and the second half's pointer is only formed (wrapping) where it may lie past the row.
        unsafe {
            let row = b.add(at);
            let lo = _mm512_maskz_loadu_ps(lanes, row);
            let hi = _mm512_maskz_loadu_ps(high, row.wrapping_add(16));
            let column = a.add(c * ROWS);
            for (r, acc) in acc.iter_mut().enumerate() {
                let v = _mm512_set1_ps(*column.add(r));
                acc[0] = _mm512_fmadd_ps(v, lo, acc[0]);
                acc[1] = _mm512_fmadd_ps(v, hi, acc[1]);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        // SAFETY: the caller's `out` rows, masked to `cols` pixels.
        unsafe {
            let row = out.add(r * out_rs);
            _mm512_mask_storeu_ps(row, lanes, acc[0]);
            _mm512_mask_storeu_ps(row.wrapping_add(16), high, acc[1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{DType, Shape};

    /// The cache hands back the packing of the same values read the same way, and never a
    /// stale one: a tensor written after packing (its storage shared with the cache's clone,
    /// so copied on write) or read another way packs anew.
    #[test]
    fn packed_weights_are_cached_by_values() {
        let mut w = FlexTensor::zeros(Shape::new([3, 4]), DType::F32);
        w.storage_mut::<f32>().iter_mut().enumerate().for_each(|(i, v)| *v = i as f32);
        let first = packed(&w, 3, 4, [4, 1]);
        assert!(Arc::ptr_eq(&first, &packed(&w.clone(), 3, 4, [4, 1])));
        let transposed = packed(&w, 4, 3, [1, 4]);
        assert!(!Arc::ptr_eq(&first, &transposed));
        assert_eq!(transposed.data[..3], [0.0, 1.0, 2.0]);
        w.storage_mut::<f32>()[0] = 99.0;
        let written = packed(&w, 3, 4, [4, 1]);
        assert_eq!(written.data[0], 99.0);
        assert_eq!(first.data[0], 0.0);
    }

    /// A weight nobody holds any more leaves the cache at the next packing, with its packing:
    /// a long session's dropped models neither fill the cache nor stay in memory.
    #[test]
    fn dropped_weights_leave_the_cache() {
        // a convolution weight packed both ways, as a loaded model's are
        let w = FlexTensor::zeros(Shape::new([5, 7, 1, 1]), DType::F32);
        let forward = Arc::downgrade(&packed(&w, 5, 7, [7, 1]));
        let flipped = Arc::downgrade(&packed_flipped(&w, [5, 7, 1, 1]));
        assert!(forward.upgrade().is_some() && flipped.upgrade().is_some(), "the cache holds the packings while the weight lives");
        let other = FlexTensor::zeros(Shape::new([5, 7]), DType::F32);
        packed(&other, 5, 7, [7, 1]);
        assert!(forward.upgrade().is_some() && flipped.upgrade().is_some(), "a live weight stays");
        drop(w);
        packed(&other, 7, 5, [1, 7]);
        assert!(forward.upgrade().is_none() && flipped.upgrade().is_none(), "the dropped weight's packings were freed");
    }

    /// Against a double-precision product: every shape of tail (rows past a block, pixels
    /// past a register, fewer than 16 pixels), both operand layouts, serial and parallel.
    #[test]
    fn product_equals_a_reference() {
        if !available() {
            return;
        }
        let mut seed = 7u64;
        let mut next = move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        for (m, k, n) in [(1, 1, 1), (8, 9, 32), (7, 5, 15), (13, 27, 49), (32, 288, 196), (17, 40, 33), (128, 576, 100), (3, 2, 16), (9, 3, 17)] {
            let a: Vec<f32> = (0..m * k).map(|_| next()).collect();
            let b_rs = n + 3;
            let b: Vec<f32> = (0..k * b_rs).map(|_| next()).collect();
            for transposed in [false, true] {
                // the same matrix stored row-major, or column-major (packed through its strides)
                let (store, strides) = if transposed {
                    let mut t = vec![0.0; m * k];
                    (0..m).for_each(|r| (0..k).for_each(|c| t[c * m + r] = a[r * k + c]));
                    (t, [1, m])
                } else {
                    (a.clone(), [k, 1])
                };
                let packed = Packed::new(&store, m, k, strides);
                let out_rs = n + 1;
                let mut out = vec![f32::NAN; m * out_rs];
                // SAFETY: available() above; b is k x n at b_rs, out m x n at out_rs.
                let rows: Vec<usize> = (0..k).map(|c| c * b_rs).collect();
                unsafe { product(&packed, b.as_ptr(), &rows, n, out.as_mut_ptr(), out_rs) };
                for r in 0..m {
                    for j in 0..n {
                        let want: f64 = (0..k).map(|c| a[r * k + c] as f64 * b[c * b_rs + j] as f64).sum();
                        let got = out[r * out_rs + j];
                        assert!((got as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()), "{m}x{k}x{n} ({r}, {j}): {got} vs {want}");
                    }
                    // the padding column between rows is not written
                    assert!(out[r * out_rs + n].is_nan(), "{m}x{k}x{n}: row {r} overran");
                }
            }
        }
    }
}
