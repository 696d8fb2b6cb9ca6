//! The classifiers easel can load: a small CNN family, EfficientNet-Lite0 and ResNet-18/34/50,
//! behind one [`Classifier`] that knows its card, its weights' hash and its device.

pub mod efficientnet;
pub mod resnet;
pub mod small_cnn;

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::card::ModelCard;
use crate::error::{Error, Result};
use crate::imaging::PreparedImage;
use crate::weights::{self, TorchNamer};

pub use efficientnet::EfficientNetLite;
pub use resnet::ResNet;
pub use small_cnn::{ConvSpec, SmallCnn, SmallCnnConfig};

/// The architecture part of a model card.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Architecture {
    SmallCnn(SmallCnnConfig),
    EfficientnetLite0 { image_size: usize, num_classes: usize },
    Resnet { depth: usize, num_classes: usize },
}

impl Architecture {
    pub fn name(&self) -> String {
        match self {
            Architecture::SmallCnn(c) => format!("small CNN ({} conv, {} linear)", c.convs.len(), c.hidden.len() + 1),
            Architecture::EfficientnetLite0 { .. } => "EfficientNet-Lite0".into(),
            Architecture::Resnet { depth, .. } => format!("ResNet-{depth}"),
        }
    }

    pub fn num_classes(&self) -> usize {
        match self {
            Architecture::SmallCnn(c) => c.num_classes,
            Architecture::EfficientnetLite0 { num_classes, .. } | Architecture::Resnet { num_classes, .. } => *num_classes,
        }
    }

    /// The PyTorch name of the output layer's bias, whose length is the class count.
    pub fn head_bias_name(&self) -> String {
        match self {
            Architecture::SmallCnn(c) => format!("fc{}.bias", c.hidden.len() + 1),
            Architecture::EfficientnetLite0 { .. } => "_fc.bias".into(),
            Architecture::Resnet { .. } => "fc.bias".into(),
        }
    }

    pub fn namer(&self) -> TorchNamer {
        match self {
            Architecture::SmallCnn(_) => small_cnn::torch_name,
            Architecture::EfficientnetLite0 { .. } => efficientnet::torch_name,
            Architecture::Resnet { .. } => resnet::torch_name,
        }
    }

    /// A network with fresh (random) parameters.
    pub fn init(&self, device: &Device) -> Result<Net> {
        Ok(match self {
            Architecture::SmallCnn(c) => Net::SmallCnn(c.init(device)?),
            Architecture::EfficientnetLite0 { image_size, num_classes } => {
                Net::EfficientNet(EfficientNetLite::lite0(*image_size, *num_classes, device))
            }
            Architecture::Resnet { depth, num_classes } => Net::ResNet(ResNet::new(*depth, *num_classes, device)?),
        })
    }
}

/// The network itself, one variant per architecture.
#[derive(Debug, Clone)]
pub enum Net {
    SmallCnn(SmallCnn),
    EfficientNet(EfficientNetLite),
    ResNet(ResNet),
}

/// Run `$body` with `$m` bound to the variant's module, whatever the architecture.
macro_rules! with_net {
    ($net:expr, $m:ident => $body:expr) => {
        match $net {
            Net::SmallCnn($m) => $body,
            Net::EfficientNet($m) => $body,
            Net::ResNet($m) => $body,
        }
    };
}

impl Net {
    /// # Shapes
    /// - `x`: `[B, C, H, W]` (normalised) -> logits `[B, K]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        with_net!(self, m => m.forward(x))
    }

    pub fn num_stages(&self) -> usize {
        with_net!(self, m => m.num_stages())
    }

    pub fn stage_names(&self) -> Vec<String> {
        with_net!(self, m => m.stage_names())
    }

    /// # Shapes
    /// - `x`: `[B, C, H, W]` -> the activation after `stage`, `[B, C_s, H_s, W_s]`
    pub fn forward_to(&self, x: Tensor<4>, stage: usize) -> Tensor<4> {
        with_net!(self, m => m.forward_to(x, stage))
    }

    /// # Shapes
    /// - `a`: the activation after `stage` -> logits `[B, K]`
    pub fn forward_from(&self, a: Tensor<4>, stage: usize) -> Tensor<2> {
        with_net!(self, m => m.forward_from(a, stage))
    }

    /// Inference mode: no autodiff on the parameters, BatchNorm on running statistics.
    pub fn valid(&self) -> Net {
        match self {
            Net::SmallCnn(m) => Net::SmallCnn(m.valid()),
            Net::EfficientNet(m) => Net::EfficientNet(m.valid()),
            Net::ResNet(m) => Net::ResNet(m.valid()),
        }
    }

    pub fn to_device(self, device: &Device) -> Net {
        match self {
            Net::SmallCnn(m) => Net::SmallCnn(m.to_device(device)),
            Net::EfficientNet(m) => Net::EfficientNet(m.to_device(device)),
            Net::ResNet(m) => Net::ResNet(m.to_device(device)),
        }
    }

    pub fn num_params(&self) -> usize {
        with_net!(self, m => m.num_params())
    }

    fn apply(self, map: &weights::TensorMap, arch: &Architecture, device: &Device) -> Result<Net> {
        let namer = arch.namer();
        let name = arch.name();
        Ok(match self {
            Net::SmallCnn(m) => Net::SmallCnn(weights::apply_tensors(m, map, namer, &name, device)?),
            Net::EfficientNet(m) => Net::EfficientNet(weights::apply_tensors(m, map, namer, &name, device)?),
            Net::ResNet(m) => Net::ResNet(weights::apply_tensors(m, map, namer, &name, device)?),
        })
    }

    /// Parameters by PyTorch name, in PyTorch layout.
    pub fn torch_tensors(&self, arch: &Architecture) -> Result<Vec<(String, weights::HostTensor)>> {
        let namer = arch.namer();
        with_net!(self, m => weights::collect_tensors(m, namer))
    }
}

/// A loaded classifier: card, network (in inference mode) and the device it lives on.
#[derive(Debug, Clone)]
pub struct Classifier {
    pub card: ModelCard,
    pub card_path: PathBuf,
    pub net: Net,
    pub device: Device,
    /// SHA-256 of the weights file (first 16 hex digits), for reports and caches.
    pub hash: String,
}

impl Classifier {
    /// Load a card (or a weights file with its card beside it) and its weights onto `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Classifier> {
        let (card, card_path) = ModelCard::load(path)?;
        let weights_path = card.weights_path(&card_path);
        let map = weights::read_tensors(&weights_path)?;
        Self::from_tensors(card, card_path, &map, device)
    }

    /// Build from a card and tensors already read.
    pub fn from_tensors(card: ModelCard, card_path: PathBuf, map: &weights::TensorMap, device: &Device) -> Result<Classifier> {
        let arch = &card.architecture;
        let head = arch.head_bias_name();
        if let Some(bias) = map.tensors.get(&head) {
            let head_outputs = bias.shape.first().copied().unwrap_or(0);
            if head_outputs != card.classes.len() {
                return Err(Error::ClassCount {
                    card: card.classes.len(),
                    head: head_outputs,
                });
            }
        }
        if arch.num_classes() != card.classes.len() {
            return Err(Error::ClassCount {
                card: card.classes.len(),
                head: arch.num_classes(),
            });
        }
        check_input_matches(&card)?;
        let net = arch.init(device)?.apply(map, arch, device)?.valid();
        let hash = std::fs::read(&map.path)
            .map(|b| {
                use sha2::Digest;
                weights::hex(&sha2::Sha256::digest(&b))[..16].to_string()
            })
            .unwrap_or_default();
        Ok(Classifier {
            card,
            card_path,
            net,
            device: device.clone(),
            hash,
        })
    }

    pub fn num_classes(&self) -> usize {
        self.card.classes.len()
    }

    pub fn class_name(&self, k: usize) -> &str {
        self.card.classes.get(k).map(String::as_str).unwrap_or("?")
    }

    /// Stack prepared images into the normalised input batch.
    ///
    /// # Shapes
    /// - returns `[B, C, H, W]`
    pub fn input_batch(&self, images: &[&PreparedImage]) -> Tensor<4> {
        let spec = &self.card.input;
        let mut data = Vec::with_capacity(images.len() * spec.channels * spec.height * spec.width);
        for img in images {
            data.extend(crate::imaging::normalise(img, spec));
        }
        Tensor::from_data(
            TensorData::new(data, [images.len(), spec.channels, spec.height, spec.width]),
            &self.device,
        )
    }

    /// A batch tensor from normalised values.
    ///
    /// # Shapes
    /// - `xs`: `[B, C, H, W]` flattened -> `[B, C, H, W]`
    pub fn tensor_from(&self, xs: Vec<f32>, batch: usize) -> Tensor<4> {
        let spec = &self.card.input;
        Tensor::from_data(TensorData::new(xs, [batch, spec.channels, spec.height, spec.width]), &self.device)
    }

    /// Logits of a batch, read back to the host.
    pub fn logits(&self, x: Tensor<4>) -> Result<Vec<Vec<f32>>> {
        let k = self.num_classes();
        let out = self.net.forward(x);
        let flat = read_floats(out)?;
        Ok(flat.chunks(k).map(<[f32]>::to_vec).collect())
    }

    /// Class probabilities of a batch.
    pub fn probabilities(&self, x: Tensor<4>) -> Result<Vec<Vec<f32>>> {
        let k = self.num_classes();
        let out = softmax(self.net.forward(x), 1);
        let flat = read_floats(out)?;
        Ok(flat.chunks(k).map(<[f32]>::to_vec).collect())
    }
}

/// A SmallCnn card must agree with its own input size and channels.
fn check_input_matches(card: &ModelCard) -> Result<()> {
    let i = &card.input;
    let bad = |reason: String| Error::Card {
        path: PathBuf::from(&card.name),
        reason,
    };
    match &card.architecture {
        Architecture::SmallCnn(c) => {
            if c.in_channels != i.channels || c.height != i.height || c.width != i.width {
                return Err(bad(format!(
                    "the architecture takes {}x{}x{} but input says {}x{}x{}",
                    c.in_channels, c.height, c.width, i.channels, i.height, i.width
                )));
            }
        }
        Architecture::EfficientnetLite0 { image_size, .. } => {
            if i.channels != 3 || i.height != *image_size || i.width != *image_size {
                return Err(bad(format!("EfficientNet-Lite0 takes 3x{image_size}x{image_size} input")));
            }
        }
        Architecture::Resnet { .. } => {
            if i.channels != 3 {
                return Err(bad("ResNet takes RGB input".into()));
            }
        }
    }
    Ok(())
}

/// Read a tensor back to the host as float32.
pub fn read_floats<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.try_into_data()
        .map_err(|e| Error::Compute(format!("{e:?}")))?
        .try_into_vec_as::<f32>()
        .map_err(|e| Error::Compute(format!("{e:?}")))
}
