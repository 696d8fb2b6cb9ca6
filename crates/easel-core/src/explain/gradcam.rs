//! Grad-CAM (Selvaraju et al.): ReLU of the channel sum of activations weighted by their
//! spatially averaged gradients, at one stage of the network, upsampled to the input.

use burn::tensor::{Tensor, TensorData};

use super::SaliencyMap;
use crate::error::{Error, Result};
use crate::models::{Classifier, read_floats};

/// What Grad-CAM returns: the map at the input size and at the layer's own size.
#[derive(Clone, Debug)]
pub struct GradCamResult {
    pub map: SaliencyMap,
    pub coarse: SaliencyMap,
    pub layer: String,
}

/// The default layer: the last convolutional stage.
pub fn default_stage(model: &Classifier) -> usize {
    model.net.num_stages() - 1
}

/// Find a stage by name (`conv3`, `layer4`, `block15`, `head`) or index.
pub fn stage_by_name(model: &Classifier, name: &str) -> Result<usize> {
    let names = model.net.stage_names();
    names
        .iter()
        .position(|n| n == name)
        .or_else(|| name.parse::<usize>().ok().filter(|&i| i < names.len()))
        .ok_or_else(|| Error::invalid(format!("unknown layer '{name}': this model has {}", names.join(", "))))
}

pub fn grad_cam(model: &Classifier, x: &[f32], target: usize, stage: usize) -> Result<GradCamResult> {
    let spec = &model.card.input;
    let (acts, g, [c, h, w]) = crate::parallel::in_pool(|| -> Result<_> {
        let input = model.tensor_from(x.to_vec(), 1);
        let activation = model.inference().forward_to(input, stage); // [1, C, h, w]
        let [_, c, h, w] = activation.dims();
        let a = activation.autodiff().require_grad();
        let logits = model.inference().forward_from(a.clone(), stage); // [1, K]
        let k = model.num_classes();
        let mut mask = vec![0.0f32; k];
        mask[target] = 1.0;
        let mask = Tensor::<2>::from_data(TensorData::new(mask, [1, k]), &model.device);
        let grads = (logits * mask).sum().backward();
        let g = a.grad(&grads).ok_or_else(|| Error::Compute("the layer received no gradient".into()))?;
        Ok((read_floats(a.inner())?, read_floats(g)?, [c, h, w]))
    })?;
    let hw = h * w;
    let mut cam = vec![0.0f32; hw];
    for ch in 0..c {
        let alpha: f32 = g[ch * hw..(ch + 1) * hw].iter().sum::<f32>() / hw as f32;
        for i in 0..hw {
            cam[i] += alpha * acts[ch * hw + i];
        }
    }
    let coarse = SaliencyMap::new(1, h, w, cam.iter().map(|v| v.max(0.0)).collect());
    let map = coarse.upsample_bilinear(spec.height, spec.width);
    Ok(GradCamResult { map, coarse, layer: model.net.stage_names()[stage].clone() })
}
