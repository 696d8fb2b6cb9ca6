//! Gradients in pixel space: images as `[0, 1]` pixels (what a PNG holds), brought to the
//! model's normalised input inside the graph, so attacks and fooling images step in the space a
//! person sees.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};

use crate::error::{Error, Result};
use crate::imaging::PreparedImage;
use crate::models::{Classifier, read_floats};

/// Pixels in [0, 1], channel-major (`[C, H, W]` flattened).
pub fn unit_pixels(img: &PreparedImage) -> Vec<f32> {
    let (c, hw) = (img.channels, img.width * img.height);
    let mut out = vec![0.0; c * hw];
    for ch in 0..c {
        for i in 0..hw {
            out[ch * hw + i] = img.pixels[i * c + ch] as f32 / 255.0;
        }
    }
    out
}

/// An image from [0, 1] pixels (`[C, H, W]`), rounded to 8 bits: exactly what a saved PNG
/// holds.
pub fn image_from_unit(p: &[f32], channels: usize, height: usize, width: usize) -> PreparedImage {
    let hw = height * width;
    let mut pixels = vec![0u8; channels * hw];
    for ch in 0..channels {
        for i in 0..hw {
            pixels[i * channels + ch] = (p[ch * hw + i] * 255.0).round().clamp(0.0, 255.0) as u8;
        }
    }
    PreparedImage { width, height, channels, pixels }
}

/// The model's normalised input for a batch of [0, 1] pixels.
///
/// # Shapes
/// - `p`: `[B, C, H, W]` -> `[B, C, H, W]`
fn normalised(model: &Classifier, p: Tensor<4>) -> Tensor<4> {
    let spec = &model.card.input;
    let c = spec.channels;
    let dev = &model.device;
    let mean = Tensor::<4>::from_data(TensorData::new(spec.mean.clone(), [1, c, 1, 1]), dev);
    let std = Tensor::<4>::from_data(TensorData::new(spec.std.clone(), [1, c, 1, 1]), dev);
    (p.mul_scalar(255.0 * spec.scale) - mean) / std
}

fn check_len(model: &Classifier, p: &[f32], b: usize) -> Result<[usize; 4]> {
    let spec = &model.card.input;
    let shape = [b, spec.channels, spec.height, spec.width];
    if p.len() != shape.iter().product::<usize>() {
        return Err(Error::Compute(format!("{} pixel values for {b} images of {}x{}x{}", p.len(), spec.channels, spec.height, spec.width)));
    }
    Ok(shape)
}

/// What [`log_prob_gradients`] returns: gradients `[B, C, H, W]` flattened, `B`
/// log-probabilities, `B x K` logits.
pub type LogProbGradients = (Vec<f32>, Vec<f32>, Vec<Vec<f32>>);

/// Gradients of each image's log-probability of its class with respect to its [0, 1] pixels,
/// and those log-probabilities and all logits.
///
/// # Shapes
/// - `p`: `[B, C, H, W]` flattened; `classes`: `B` class indices
/// - returns gradients `[B, C, H, W]` flattened, `B` log-probabilities, `B x K` logits
pub fn log_prob_gradients(model: &Classifier, p: &[f32], classes: &[usize]) -> Result<LogProbGradients> {
    let b = classes.len();
    let shape = check_len(model, p, b)?;
    let k = model.num_classes();
    if let Some(&c) = classes.iter().find(|&&c| c >= k) {
        return Err(Error::invalid(format!("class {c} is out of range: the model has {k} classes")));
    }
    let dev = &model.device;
    let pt = Tensor::<4>::from_data(TensorData::new(p.to_vec(), shape), dev).autodiff().require_grad();
    let logits = model.inference().forward(normalised(model, pt.clone())); // [B, K]
    let host_logits = read_floats(logits.clone().detach())?;
    let t = Tensor::<2, Int>::from_data(TensorData::new(classes.iter().map(|&c| c as i64).collect::<Vec<_>>(), [b, 1]), dev);
    let picked = log_softmax(logits, 1).gather(1, t); // [B, 1]
    let log_probs = read_floats(picked.clone().detach())?;
    let grads = picked.sum().backward();
    let g = pt.grad(&grads).ok_or_else(|| Error::Compute("the pixels received no gradient".into()))?;
    Ok((read_floats(g)?, log_probs, host_logits.chunks(k).map(<[f32]>::to_vec).collect()))
}

/// Class probabilities of a batch of [0, 1] pixel images (no gradients).
///
/// # Shapes
/// - `p`: `[B, C, H, W]` flattened -> `B x K`
pub fn pixel_probabilities(model: &Classifier, p: &[f32], b: usize) -> Result<Vec<Vec<f32>>> {
    let shape = check_len(model, p, b)?;
    let pt = Tensor::<4>::from_data(TensorData::new(p.to_vec(), shape), &model.device);
    let logits = read_floats(model.inference().forward(normalised(model, pt)))?;
    Ok(logits.chunks(model.num_classes()).map(crate::predict::softmax).collect())
}
