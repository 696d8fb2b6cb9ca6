//! A frozen backbone: its features computed once, and a new output layer trained on them in
//! seconds (what Teachable Machine and Lobe do with a pre-trained network).

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::data::LabelledImages;
use crate::error::{Error, Result};
use crate::models::{Classifier, read_floats};
use crate::progress::Progress;
use crate::rng::Rng;
use crate::train::{TrainSettings, weighted_cross_entropy};

/// The backbone's features of every image of `set` (prepared for the model), in batches.
///
/// # Shapes
/// - returns `len(set)` rows of `F` (the output layer's input width)
pub fn cached_features(model: &Classifier, set: &LabelledImages, batch_size: usize, progress: Progress<'_>) -> Result<Vec<Vec<f32>>> {
    let spec = &model.card.input;
    if (set.channels, set.height, set.width) != (spec.channels, spec.height, spec.width) {
        return Err(Error::invalid("the images are not prepared for this model"));
    }
    let idx: Vec<usize> = (0..set.len()).collect();
    let mut out = Vec::with_capacity(set.len());
    for chunk in idx.chunks(batch_size.max(1)) {
        progress.check()?;
        let x = model.tensor_from(set.normalised_batch(chunk, spec), chunk.len());
        // burn's own products (kernels::exact): the head trained on them is then burn's
        let f = crate::kernels::exact(|| read_floats(model.inference().features(x)))?; // [b, F]
        let width = f.len() / chunk.len();
        out.extend(f.chunks(width).map(<[f32]>::to_vec));
        progress.report(out.len(), set.len());
    }
    Ok(out)
}

fn rows_tensor(rows: &[&Vec<f32>], device: &Device) -> Tensor<2> {
    let f = rows.first().map_or(0, |r| r.len());
    let data: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_data(TensorData::new(data, [rows.len(), f]), device)
}

fn accuracy(head: &Linear, features: &[Vec<f32>], labels: &[usize], device: &Device) -> Result<f64> {
    let probs = head_probabilities(head, features, device)?;
    let right = probs.iter().zip(labels).filter(|(p, l)| crate::metrics::argmax(p) == **l).count();
    Ok(right as f64 / labels.len().max(1) as f64)
}

/// Class probabilities of cached features under an output layer.
pub fn head_probabilities(head: &Linear, features: &[Vec<f32>], device: &Device) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(features.len());
    for chunk in features.chunks(512) {
        let rows: Vec<&Vec<f32>> = chunk.iter().collect();
        let logits = read_floats(head.forward(rows_tensor(&rows, device)))?;
        let k = logits.len() / rows.len();
        out.extend(logits.chunks(k).map(crate::predict::softmax));
    }
    Ok(out)
}

/// A new output layer for `k` classes, trained on cached features (Adam, cross-entropy,
/// seeded), with the held-out accuracy after each epoch.
pub fn train_head(
    features: &[Vec<f32>],
    labels: &[usize],
    k: usize,
    test: Option<(&[Vec<f32>], &[usize])>,
    settings: &TrainSettings,
    device: &Device,
    progress: Progress<'_>,
) -> Result<(Linear, Vec<f64>)> {
    if features.is_empty() || features.len() != labels.len() {
        return Err(Error::invalid("training a head needs features and as many labels"));
    }
    let width = features[0].len();
    let ad = device.clone().autodiff();
    ad.seed(settings.seed);
    let mut head = LinearConfig::new(width, k).init(&ad);
    let mut optim = AdamConfig::new().init();
    let mut rng = Rng::new(settings.seed);
    let mut lr = settings.learning_rate * settings.fine_tune.head_lr_mult;
    let mut curve = Vec::new();
    for _ in 0..settings.epochs {
        let mut order: Vec<usize> = (0..features.len()).collect();
        rng.shuffle(&mut order);
        for chunk in order.chunks(settings.batch_size.max(1)) {
            progress.check()?;
            let rows: Vec<&Vec<f32>> = chunk.iter().map(|&i| &features[i]).collect();
            let x = rows_tensor(&rows, &ad);
            let b = chunk.len();
            let targets = Tensor::<1, Int>::from_data(TensorData::new(chunk.iter().map(|&i| labels[i] as i64).collect::<Vec<_>>(), [b]), &ad);
            let w = Tensor::<1>::from_data(TensorData::new(vec![1.0f32; b], [b]), &ad);
            let loss = weighted_cross_entropy(head.forward(x), targets, w);
            let grads = GradientsParams::from_grads(loss.backward(), &head);
            head = optim.step(lr, head, grads);
        }
        lr *= settings.lr_decay;
        if let Some((tf, tl)) = test {
            curve.push(accuracy(&head.valid(), tf, tl, device)?);
        }
    }
    Ok((head.valid(), curve))
}
