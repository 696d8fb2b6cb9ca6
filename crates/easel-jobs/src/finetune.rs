//! Fine-tuning a model on one's own classes: a class-per-folder tree (sub-folders = classes,
//! sorted), a new output layer for them, and either only that layer trained on features
//! computed once (seconds), or the last blocks too. The result is a card + weights that every
//! command and view opens. `easel finetune` and the app's "Fine-tune on a folder" end here.

use std::path::{Path, PathBuf};

use easel_core::card::{CARD_FORMAT, ModelCard};
use easel_core::data::{self, LabelledImages};
use easel_core::error::{Error, Result};
use easel_core::models::Classifier;
use easel_core::progress::Progress;
use easel_core::rng::Rng;
use easel_core::train::{FineTune, ShuffleAll, TrainEvent, TrainSettings, train_net};
use easel_core::{fsutil, metrics, transfer, weights};
use serde::Serialize;

use crate::explain::json_bytes;

/// Which layers train.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum FinetuneMode {
    /// The new output layer alone, on features computed once.
    HeadOnly,
    /// The output layer and the last `K` layer groups (blocks).
    UnfreezeLast(usize),
}

/// Where the held-out images come from.
#[derive(Clone, Debug, PartialEq)]
pub enum HeldOut {
    /// This share of the folder's images, drawn at random (seeded), from every class.
    Share(f64),
    /// A folder with the same class folders.
    Folder(PathBuf),
}

#[derive(Clone, Debug)]
pub struct FinetuneRequest {
    pub model: PathBuf,
    pub data: PathBuf,
    pub held_out: HeldOut,
    pub mode: FinetuneMode,
    pub head_lr_mult: f64,
    pub epochs: usize,
    pub learning_rate: f64,
    pub batch_size: usize,
    pub seed: u64,
    pub out: PathBuf,
    pub force: bool,
}

/// What the fine-tune did (`metrics.json`).
#[derive(Clone, Debug, Serialize)]
pub struct FinetuneOutput {
    pub card: PathBuf,
    pub base_model: String,
    pub classes: Vec<String>,
    pub mode: FinetuneMode,
    pub train_images: usize,
    pub test_images: usize,
    pub test_accuracy: f64,
    pub balanced_accuracy: f64,
    pub feature_seconds: f64,
    pub train_seconds: f64,
    /// Per epoch: training accuracy.
    pub curve: Vec<f64>,
}

/// Split `set` into (train, held out) with `share` held out, at least one image of each class
/// on both sides where it has two.
fn split(set: &LabelledImages, share: f64, seed: u64) -> Result<(LabelledImages, LabelledImages)> {
    if !(share > 0.0 && share < 1.0) {
        return Err(Error::invalid(format!("--holdout {share} must be a share in (0, 1), e.g. 0.2")));
    }
    let mut rng = Rng::new(seed ^ 0xF1AE);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for c in 0..set.classes.len() {
        let mut idx: Vec<usize> = (0..set.len()).filter(|&i| set.labels[i] == c).collect();
        rng.shuffle(&mut idx);
        let n_test = ((idx.len() as f64 * share).round() as usize).clamp(usize::from(idx.len() > 1), idx.len().saturating_sub(1));
        test.extend_from_slice(&idx[..n_test]);
        train.extend_from_slice(&idx[n_test..]);
    }
    train.sort_unstable();
    test.sort_unstable();
    if test.is_empty() || train.is_empty() {
        return Err(Error::invalid("the folder has too few images to hold some out: add images or give --test"));
    }
    Ok((set.subset(&train), set.subset(&test)))
}

/// Fine-tune `req.model` on `req.data`; `on_epoch(epoch, train accuracy)` after each epoch.
pub fn run(
    req: &FinetuneRequest,
    device: &burn::tensor::Device,
    on_stage: &mut dyn FnMut(&str),
    on_epoch: &mut dyn FnMut(usize, f64),
    progress: Progress<'_>,
) -> Result<FinetuneOutput> {
    let card_path = req.out.join("card.json");
    if !req.force && (card_path.exists() || req.out.join("weights.safetensors").exists()) {
        return Err(Error::invalid(format!("{} already holds a model; pass --force to replace it", req.out.display())));
    }
    if req.epochs == 0 || req.batch_size == 0 {
        return Err(Error::invalid("epochs and the batch size must be at least 1"));
    }
    let base = Classifier::load(&req.model, device)?;
    let classes = data::folder_classes(&req.data)?;
    if classes.len() < 2 {
        return Err(Error::invalid(format!("{}: fine-tuning needs at least two class folders", req.data.display())));
    }
    let spec = base.card.input.clone();
    on_stage("reading the images");
    let set = data::load_image_folder(&req.data, &spec, &classes)?;
    let (train, test) = match &req.held_out {
        HeldOut::Share(s) => split(&set, *s, req.seed)?,
        HeldOut::Folder(f) => (set, data::load_image_folder(f, &spec, &classes)?),
    };
    let k = classes.len();
    let arch = base.card.architecture.with_classes(k);
    let settings = TrainSettings {
        epochs: req.epochs,
        batch_size: req.batch_size,
        learning_rate: req.learning_rate,
        lr_decay: 0.95,
        seed: req.seed,
        augment_flip: false,
        fine_tune: FineTune {
            head_lr_mult: req.head_lr_mult,
            trainable_groups: match req.mode {
                FinetuneMode::HeadOnly => Some(1),
                FinetuneMode::UnfreezeLast(k) => Some(k + 1),
            },
            freeze_epochs: 0,
        },
    };
    settings.fine_tune.validate()?;
    let t0 = std::time::Instant::now();
    let (net, probs, curve, feature_seconds) = match req.mode {
        FinetuneMode::HeadOnly => {
            on_stage("computing the backbone's features (once)");
            let train_f = transfer::cached_features(&base, &train, 16, progress)?;
            let test_f = transfer::cached_features(&base, &test, 16, progress)?;
            let feature_seconds = t0.elapsed().as_secs_f64();
            on_stage("training the new output layer");
            let (head, curve) = transfer::train_head(&train_f, &train.labels, k, Some((&test_f, &test.labels)), &settings, device, progress)?;
            for (e, a) in curve.iter().enumerate() {
                on_epoch(e + 1, *a);
            }
            let probs = transfer::head_probabilities(&head, &test_f, device)?;
            let mut net = base.net.clone().reset_head(k, device);
            net.set_head(head);
            (net, Some(probs), curve, feature_seconds)
        }
        FinetuneMode::UnfreezeLast(_) => {
            on_stage("fine-tuning");
            let net = base.net.clone().reset_head(k, device);
            let mut on_train = |e: TrainEvent| {
                if let TrainEvent::Epoch(r) = e {
                    on_epoch(r.epoch, r.train_accuracy);
                }
            };
            let (net, reports) = train_net(net, &arch, &spec, &train, None, &settings, &mut ShuffleAll(train.len()), device, &mut on_train, progress)?;
            (net, None, reports.iter().map(|r| r.train_accuracy).collect(), 0.0)
        }
    };
    let train_seconds = t0.elapsed().as_secs_f64() - feature_seconds;
    let weights_bytes = weights::safetensors_bytes(&net.torch_tensors(&arch)?)?;
    let card = ModelCard {
        format: CARD_FORMAT.into(),
        name: format!("{} fine-tuned on {}", base.card.name, req.data.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()),
        architecture: arch,
        weights: "weights.safetensors".into(),
        input: spec,
        classes: classes.clone(),
        source: format!("easel finetune of {} (hash {})", base.card_path.display(), base.hash),
        license: base.card.license.clone(),
        metrics: serde_json::Value::Null,
    };
    let probs = match probs {
        Some(p) => p,
        None => {
            // the held-out images go through the model as every command will load it: from
            // its card, in a staging folder beside the result (removed after)
            let staging = staging_dir(&req.out);
            let staged = (|| -> Result<Vec<Vec<f32>>> {
                fsutil::ensure_dir(&staging)?;
                fsutil::write_atomic(&staging.join("weights.safetensors"), &weights_bytes)?;
                fsutil::write_atomic(&staging.join("card.json"), &card.to_json_bytes()?)?;
                let model = Classifier::load(&staging.join("card.json"), device)?;
                Ok(easel_core::evaluate::evaluate(&model, &test, 64, progress)?.probs.unwrap_or_default())
            })();
            let _ = std::fs::remove_dir_all(&staging);
            staged?
        }
    };
    let p = metrics::Predictions::from_probs(classes.clone(), test.sources.clone(), test.labels.clone(), probs);
    let r = metrics::report(&p, None);
    let out = FinetuneOutput {
        card: card_path,
        base_model: base.card.name.clone(),
        classes,
        mode: req.mode,
        train_images: train.len(),
        test_images: test.len(),
        test_accuracy: r.summary.accuracy,
        balanced_accuracy: r.summary.balanced_accuracy,
        feature_seconds,
        train_seconds,
        curve,
    };
    // weights, card and metrics appear together or not at all
    let files = vec![
        ("weights.safetensors".to_string(), weights_bytes),
        ("card.json".to_string(), card.to_json_bytes()?),
        ("metrics.json".to_string(), json_bytes(&out)?),
    ];
    fsutil::write_files(&req.out, &files, req.force)?;
    Ok(out)
}

/// A hidden folder beside `out` for a model on its way there.
fn staging_dir(out: &Path) -> PathBuf {
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
    out.with_file_name(format!(".{name}.staging-{}", std::process::id()))
}

/// The fine-tuned card of `dir`.
pub fn card_in(dir: &Path) -> PathBuf {
    dir.join("card.json")
}
