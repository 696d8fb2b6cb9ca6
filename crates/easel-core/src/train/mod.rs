//! Training a classifier on labelled images: seeded, batched, with per-epoch loss, accuracy
//! and per-class recall, progress and cancellation. The sampling lab reuses it with its own
//! epoch plans and class weights.

use std::time::Instant;

use burn::module::{Module, ParamId};
use burn::optim::AdamConfig;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::card::InputSpec;
use crate::data::LabelledImages;
use crate::error::{Error, Result};
use crate::models::{Architecture, Net, NetMap, NetModule, read_floats};
use crate::progress::Progress;
use crate::rng::Rng;

mod step;

use step::{batch_gradients, take_params};

/// How to train.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Multiply the learning rate by this after every epoch.
    #[serde(default = "one")]
    pub lr_decay: f64,
    pub seed: u64,
    /// Flip each training image left-right with probability 1/2.
    #[serde(default)]
    pub augment_flip: bool,
    /// Which parameters train, and how fast the output layer learns (fine-tuning).
    #[serde(default)]
    pub fine_tune: FineTune,
}

/// Fine-tuning: which parameters train, and the output layer's learning rate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FineTune {
    /// The output layer learns this many times faster than the rest (a new head on pre-trained
    /// layers).
    pub head_lr_mult: f64,
    /// Train only the top `n` layer groups (the output layer is the top one; 1 = the head
    /// alone); `None`: every layer.
    pub trainable_groups: Option<usize>,
    /// For this many epochs first, train the output layer alone, then the rest as well
    /// (freeze, then unfreeze).
    pub freeze_epochs: usize,
}

impl Default for FineTune {
    fn default() -> Self {
        FineTune { head_lr_mult: 1.0, trainable_groups: None, freeze_epochs: 0 }
    }
}

impl FineTune {
    fn is_plain(&self) -> bool {
        self.head_lr_mult == 1.0 && self.trainable_groups.is_none() && self.freeze_epochs == 0
    }

    pub fn validate(&self) -> Result<()> {
        if !(self.head_lr_mult.is_finite() && self.head_lr_mult > 0.0 && self.head_lr_mult <= 1000.0) {
            return Err(Error::invalid(format!("the head learning-rate multiplier {} must be in (0, 1000]", self.head_lr_mult)));
        }
        if self.trainable_groups == Some(0) {
            return Err(Error::invalid("at least the output layer must train"));
        }
        Ok(())
    }
}

fn one() -> f64 {
    1.0
}

impl Default for TrainSettings {
    fn default() -> Self {
        TrainSettings { epochs: 10, batch_size: 64, learning_rate: 1e-3, lr_decay: 1.0, seed: 42, augment_flip: false, fine_tune: FineTune::default() }
    }
}

/// What one epoch did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochReport {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    /// On the held-out set, where one was given.
    pub test_accuracy: Option<f64>,
    pub test_recall: Option<Vec<f64>>,
    pub seconds: f64,
}

/// Which samples an epoch visits and how much each class's loss counts.
pub trait EpochPlan {
    /// The sample indices of epoch `epoch`, in visiting order.
    fn indices(&mut self, epoch: usize, rng: &mut Rng) -> Vec<usize>;
    /// Loss weight per class (all 1 for plain training).
    fn class_weights(&self) -> Option<Vec<f32>> {
        None
    }
    /// Each visited sample's loss, after its batch (the loss-proportional sampler uses them).
    fn observe(&mut self, _indices: &[usize], _losses: &[f32]) {}
    /// Samples to score with the current model before epoch `epoch` (negative mining); none
    /// by default.
    fn to_score(&mut self, _epoch: usize) -> Vec<usize> {
        Vec::new()
    }
    /// The class probabilities of the samples [`EpochPlan::to_score`] asked for.
    fn scored(&mut self, _indices: &[usize], _probs: &[Vec<f32>]) {}
}

/// Every sample once per epoch, shuffled.
pub struct ShuffleAll(pub usize);

impl EpochPlan for ShuffleAll {
    fn indices(&mut self, _epoch: usize, rng: &mut Rng) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.0).collect();
        rng.shuffle(&mut idx);
        idx
    }
}

/// Events a caller sees while training runs.
#[derive(Clone, Debug)]
pub enum TrainEvent {
    Batch { epoch: usize, done: usize, total: usize, loss: f64 },
    Epoch(EpochReport),
}

/// Mean cross-entropy, each sample weighted by its class's weight (PyTorch's weighted
/// `CrossEntropyLoss`: sum of w * loss over sum of w).
///
/// # Shapes
/// - `logits`: `[B, K]`, `targets`: `[B]`, `weights`: `[B]` -> scalar `[1]`
pub fn weighted_cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>, weights: Tensor<1>) -> Tensor<1> {
    let [b, _k] = logits.dims();
    let picked = log_softmax(logits, 1).gather(1, targets.reshape([b, 1])); // [B, 1]
    let w = weights.reshape([b, 1]);
    let total = w.clone().sum();
    (picked * w).sum().neg() / total
}

/// Train `net` (whose parameters live on `device`; autodiff is switched on here) and return
/// it in inference mode with the per-epoch reports.
#[allow(clippy::too_many_arguments)]
pub fn train_net(
    net: Net,
    arch: &Architecture,
    spec: &InputSpec,
    train: &LabelledImages,
    test: Option<&LabelledImages>,
    settings: &TrainSettings,
    plan: &mut dyn EpochPlan,
    device: &Device,
    on_event: &mut dyn FnMut(TrainEvent),
    progress: Progress<'_>,
) -> Result<(Net, Vec<EpochReport>)> {
    if train.is_empty() {
        return Err(Error::invalid("the training set is empty"));
    }
    if settings.epochs == 0 || settings.batch_size == 0 {
        return Err(Error::invalid("epochs and batch size must be at least 1"));
    }
    settings.fine_tune.validate()?;
    let ad = device.clone().autodiff();
    ad.seed(settings.seed);
    device.seed(settings.seed);
    let mut trainer = Trainer { arch, spec, train, test, settings, plan, ad: &ad, on_event, progress, reports: Vec::new() };
    let net = net.map_with(&mut trainer)?;
    Ok((net, trainer.reports))
}

/// Training as a [`NetMap`], so one generic loop serves every architecture.
struct Trainer<'a, 'b> {
    arch: &'a Architecture,
    spec: &'a InputSpec,
    train: &'a LabelledImages,
    test: Option<&'a LabelledImages>,
    settings: &'a TrainSettings,
    plan: &'a mut dyn EpochPlan,
    ad: &'a Device,
    on_event: &'a mut dyn FnMut(TrainEvent),
    progress: Progress<'b>,
    reports: Vec<EpochReport>,
}

impl NetMap for Trainer<'_, '_> {
    fn map<M: NetModule>(&mut self, module: M) -> Result<M> {
        let groups = ParamGroups::of(&module, self.arch, &self.settings.fine_tune);
        let split = module.samples_independent();
        let (m, reports) = train_module(
            module.to_device(self.ad).train(),
            &groups,
            |m: &M, x| m.forward(x),
            split,
            self.spec,
            self.train,
            self.test,
            self.settings,
            &mut *self.plan,
            self.ad,
            &mut *self.on_event,
            self.progress,
        )?;
        self.reports = reports;
        Ok(m)
    }
}

/// The parameters that train: the output layer, and the rest that may.
struct ParamGroups {
    head: Vec<ParamId>,
    body: Vec<ParamId>,
}

impl ParamGroups {
    fn of<M: NetModule>(module: &M, arch: &Architecture, ft: &FineTune) -> ParamGroups {
        let named = crate::weights::param_names(module, arch.namer());
        // layer groups from the output down (the output layer's group first)
        let mut order: Vec<String> = Vec::new();
        for (_, name) in &named {
            let g = arch.layer_group(name);
            if !order.contains(&g) {
                order.push(g);
            }
        }
        order.reverse();
        let head_group = order.first().cloned().unwrap_or_default();
        let trainable: Vec<&String> = order.iter().take(ft.trainable_groups.unwrap_or(usize::MAX)).collect();
        let (mut head, mut body) = (Vec::new(), Vec::new());
        for (id, name) in named {
            let g = arch.layer_group(&name);
            if g == head_group {
                head.push(id);
            } else if trainable.contains(&&g) {
                body.push(id);
            }
        }
        ParamGroups { head, body }
    }
}

#[allow(clippy::too_many_arguments)]
fn train_module<M: Module + Clone + Sync>(
    mut model: M,
    groups: &ParamGroups,
    forward: fn(&M, Tensor<4>) -> Tensor<2>,
    split: bool,
    spec: &InputSpec,
    train: &LabelledImages,
    test: Option<&LabelledImages>,
    settings: &TrainSettings,
    plan: &mut dyn EpochPlan,
    ad: &Device,
    on_event: &mut dyn FnMut(TrainEvent),
    progress: Progress<'_>,
) -> Result<(M, Vec<EpochReport>)> {
    let mut optim = AdamConfig::new().init();
    let mut optim_head = AdamConfig::new().init();
    let ft = &settings.fine_tune;
    let mut rng = Rng::new(settings.seed);
    let class_weights = plan.class_weights().unwrap_or_else(|| vec![1.0; train.classes.len()]);
    let (c, h, w) = (spec.channels, spec.height, spec.width);
    let mut reports = Vec::new();
    let mut lr = settings.learning_rate;
    let workers = crate::parallel::workers_for(&ad.clone().inner());
    // every unsplit step on one thread: BatchNorm's running statistics are kept per thread
    let pinned = crate::parallel::PinnedPool::lend();
    for epoch in 1..=settings.epochs {
        let started = Instant::now();
        let pool = plan.to_score(epoch);
        if !pool.is_empty() {
            let logits = predict_rows(&model.valid(), forward, spec, train, &pool, &ad.clone().inner(), progress)?;
            let probs: Vec<Vec<f32>> = logits.iter().map(|l| crate::predict::softmax(l)).collect();
            plan.scored(&pool, &probs);
        }
        let order = plan.indices(epoch, &mut rng);
        if order.is_empty() {
            return Err(Error::invalid("the sampling plan selected no samples"));
        }
        let batches = order.len().div_ceil(settings.batch_size);
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        for (bi, chunk) in order.chunks(settings.batch_size).enumerate() {
            progress.check()?;
            let b = chunk.len();
            let mut x = train.normalised_batch(chunk, spec);
            if settings.augment_flip {
                for s in 0..b {
                    if rng.next_f64() < 0.5 {
                        flip_lr(&mut x[s * c * h * w..(s + 1) * c * h * w], c, h, w);
                    }
                }
            }
            let labels: Vec<i64> = chunk.iter().map(|&i| train.labels[i] as i64).collect();
            let weights: Vec<f32> = chunk.iter().map(|&i| class_weights[train.labels[i]]).collect();
            let step = batch_gradients(&model, forward, &x, &labels, &weights, [c, h, w], split, workers, &pinned, ad, progress)?;
            let k = step.logits.len() / b;
            let mut sample_losses = Vec::with_capacity(b);
            for (row, &l) in step.logits.chunks(k).zip(&labels) {
                let probs = crate::predict::softmax(row);
                sample_losses.push(-(probs[l as usize].max(1e-12)).ln());
                if crate::metrics::argmax(row) as i64 == l {
                    correct += 1;
                }
            }
            plan.observe(chunk, &sample_losses);
            seen += b;
            let loss_value = step.loss;
            if !loss_value.is_finite() {
                return Err(Error::Compute(format!("the loss became {loss_value} in epoch {epoch}: lower the learning rate")));
            }
            loss_sum += loss_value * b as f64;
            let mut grads = step.grads;
            if ft.is_plain() {
                model = optim.step(lr, model, grads);
            } else {
                // the output layer and the rest step apart: a faster head, a frozen body
                let head = take_params(&mut grads, &model, &groups.head);
                if epoch > ft.freeze_epochs && !groups.body.is_empty() {
                    let body = take_params(&mut grads, &model, &groups.body);
                    model = optim.step(lr, model, body);
                }
                model = optim_head.step(lr * ft.head_lr_mult, model, head);
            }
            on_event(TrainEvent::Batch { epoch, done: bi + 1, total: batches, loss: loss_value });
        }
        let (test_accuracy, test_recall) = match test {
            Some(t) => {
                let preds = predict_labels(&model.valid(), forward, spec, t, &ad.clone().inner(), progress)?;
                let (acc, recall) = accuracy_and_recall(&preds, &t.labels, t.classes.len());
                (Some(acc), Some(recall))
            }
            None => (None, None),
        };
        let report = EpochReport {
            epoch,
            train_loss: loss_sum / seen as f64,
            train_accuracy: correct as f64 / seen as f64,
            test_accuracy,
            test_recall,
            seconds: started.elapsed().as_secs_f64(),
        };
        on_event(TrainEvent::Epoch(report.clone()));
        reports.push(report);
        lr *= settings.lr_decay;
    }
    Ok((model.valid(), reports))
}

/// Mirror one `[C, H, W]` image left-right in place.
fn flip_lr(x: &mut [f32], c: usize, h: usize, w: usize) {
    for ch in 0..c {
        for row in 0..h {
            let s = ch * h * w + row * w;
            x[s..s + w].reverse();
        }
    }
}

/// Argmax labels of a whole set with an inference-mode model.
fn predict_labels<M: Module + Sync>(
    model: &M,
    forward: fn(&M, Tensor<4>) -> Tensor<2>,
    spec: &InputSpec,
    set: &LabelledImages,
    device: &Device,
    progress: Progress<'_>,
) -> Result<Vec<usize>> {
    let idx: Vec<usize> = (0..set.len()).collect();
    let rows = predict_rows(model, |m, x| forward(m, x).argmax(1).float(), spec, set, &idx, device, progress)?;
    Ok(rows.into_iter().map(|r| r[0] as usize).collect())
}

/// `f(model, batch)` for `indices` of a set in batches of 256, one output row per image; the
/// batches run on the CPU's cores at once (the same batches, so the same numbers, as one
/// thread).
fn predict_rows<M: Module + Sync>(
    model: &M,
    f: impl Fn(&M, Tensor<4>) -> Tensor<2> + Sync,
    spec: &InputSpec,
    set: &LabelledImages,
    indices: &[usize],
    device: &Device,
    progress: Progress<'_>,
) -> Result<Vec<Vec<f32>>> {
    const BATCH: usize = 256;
    let (c, h, w) = (spec.channels, spec.height, spec.width);
    let chunks: Vec<&[usize]> = indices.chunks(BATCH).collect();
    let mut out = Vec::with_capacity(indices.len());
    // burn's own products, as training's (see kernels::exact): these passes steer training
    let work = |i: usize| -> Result<Vec<f32>> {
        let chunk = chunks[i];
        let x = Tensor::<4>::from_data(TensorData::new(set.normalised_batch(chunk, spec), [chunk.len(), c, h, w]), device);
        crate::kernels::exact(|| read_floats(f(model, x)))
    };
    crate::parallel::ordered_chunks(crate::parallel::workers_for(device), chunks.len(), progress, &work, &mut |i, rows| {
        let k = rows.len() / chunks[i].len();
        out.extend(rows.chunks(k).map(<[f32]>::to_vec));
        Ok(())
    })?;
    Ok(out)
}

/// Accuracy and recall per class.
pub fn accuracy_and_recall(preds: &[usize], labels: &[usize], k: usize) -> (f64, Vec<f64>) {
    let mut hit = vec![0usize; k];
    let mut total = vec![0usize; k];
    for (&p, &l) in preds.iter().zip(labels) {
        total[l] += 1;
        if p == l {
            hit[l] += 1;
        }
    }
    let acc = hit.iter().sum::<usize>() as f64 / labels.len().max(1) as f64;
    let recall = hit.iter().zip(&total).map(|(&h, &t)| if t == 0 { 0.0 } else { h as f64 / t as f64 }).collect();
    (acc, recall)
}
