//! Input gradients of a target logit: vanilla saliency (|gradient|), the signed gradient, and
//! gradient x input. The batched gradient here also serves integrated gradients and SmoothGrad.

use burn::tensor::{Tensor, TensorData};

use super::SaliencyMap;
use crate::error::{Error, Result};
use crate::models::{Classifier, read_floats};

/// Gradients of each sample's target logit with respect to its (normalised) input, and those
/// target logits. Samples are independent: the model is in inference mode.
///
/// # Shapes
/// - `xs`: `[B, C, H, W]` flattened; `targets`: `B` class indices
/// - returns gradients `[B, C, H, W]` flattened and `B` logits
pub fn target_gradients(model: &Classifier, xs: Vec<f32>, targets: &[usize]) -> Result<(Vec<f32>, Vec<f32>)> {
    crate::parallel::in_pool(|| target_gradients_here(model, xs, targets))
}

fn target_gradients_here(model: &Classifier, xs: Vec<f32>, targets: &[usize]) -> Result<(Vec<f32>, Vec<f32>)> {
    let spec = &model.card.input;
    let (c, h, w) = (spec.channels, spec.height, spec.width);
    let b = targets.len();
    if xs.len() != b * c * h * w {
        return Err(Error::Compute(format!("{} input values for {b} samples of {c}x{h}x{w}", xs.len())));
    }
    let k = model.num_classes();
    let x = Tensor::<4>::from_data(TensorData::new(xs, [b, c, h, w]), &model.device).autodiff().require_grad();
    let logits = model.inference().forward(x.clone()); // [B, K]
    let mut mask = vec![0.0f32; b * k];
    for (i, &t) in targets.iter().enumerate() {
        mask[i * k + t] = 1.0;
    }
    let mask = Tensor::<2>::from_data(TensorData::new(mask, [b, k]), &model.device);
    let picked = (logits * mask).sum_dim(1); // [B, 1]
    let values = read_floats(picked.clone().detach())?;
    let grads = picked.sum().backward();
    let g = x.grad(&grads).ok_or_else(|| Error::Compute("the input received no gradient".into()))?;
    Ok((read_floats(g)?, values))
}

/// d logit[target] / d x for one normalised input `[C, H, W]`.
pub fn gradient(model: &Classifier, x: &[f32], target: usize) -> Result<SaliencyMap> {
    let spec = &model.card.input;
    let (g, _) = target_gradients(model, x.to_vec(), &[target])?;
    Ok(SaliencyMap::new(spec.channels, spec.height, spec.width, g))
}

/// Vanilla saliency: |d logit[target] / d x| (Captum's `Saliency`, abs=True).
pub fn saliency(model: &Classifier, x: &[f32], target: usize) -> Result<SaliencyMap> {
    Ok(gradient(model, x, target)?.map_values(f32::abs))
}

/// Gradient x input (Captum's `InputXGradient`).
pub fn grad_x_input(model: &Classifier, x: &[f32], target: usize) -> Result<SaliencyMap> {
    let g = gradient(model, x, target)?;
    let values = g.values.iter().zip(x).map(|(a, b)| a * b).collect();
    Ok(SaliencyMap { values, ..g })
}
