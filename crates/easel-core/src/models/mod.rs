//! The classifiers easel can load: a small CNN family, EfficientNet-Lite0 and ResNet-18/34/50,
//! behind one [`Classifier`] that knows its card, its weights' hash and its device.

pub mod efficientnet;
pub mod fold;
pub mod resnet;
pub mod small_cnn;

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::card::{InputSpec, ModelCard};
use crate::error::{Error, Result};
use crate::imaging::PreparedImage;
use crate::weights::{self, TorchNamer};

pub use efficientnet::{EfficientNetConfig, EfficientNetLite};
pub use resnet::{ResNet, ResNetConfig};
pub use small_cnn::{ConvSpec, SmallCnn, SmallCnnConfig, SmallCnnPreset};

/// What every architecture's module provides. An architecture is its module (implementing
/// this) plus one line in the [`architectures!`] list below; nothing else matches on it.
pub trait NetModule: Module + Clone + std::fmt::Debug + Sized + Sync {
    /// The card's `architecture` part: how to build the network.
    type Config: Clone + std::fmt::Debug + PartialEq + Serialize + serde::de::DeserializeOwned;
    fn init(config: &Self::Config, device: &Device) -> Result<Self>;
    fn display_name(config: &Self::Config) -> String;
    fn num_classes(config: &Self::Config) -> usize;
    /// The PyTorch name of the output layer's bias, whose length is the class count.
    fn head_bias_name(config: &Self::Config) -> String;
    /// The card's input must agree with the architecture (`Err` says how it does not).
    fn check_input(config: &Self::Config, input: &InputSpec) -> std::result::Result<(), String>;
    /// burn module path -> PyTorch state-dict name.
    fn torch_name(path: &[String]) -> String;
    /// The layer group of a PyTorch parameter name (for the randomisation cascade).
    fn layer_group(torch_name: &str) -> String;
    /// # Shapes
    /// - `x`: `[B, C, H, W]` (normalised) -> logits `[B, K]`
    fn forward(&self, x: Tensor<4>) -> Tensor<2>;
    /// The same function with every BatchNorm (on its running statistics) folded into the
    /// convolution before it: faster inference and input gradients, not for training.
    fn fold_batch_norm(self) -> Self;
    /// Whether, while training, each sample's loss depends on that sample alone (no BatchNorm
    /// batch statistics, no random dropout): then a batch's gradient is the sum of its parts'.
    fn samples_independent(&self) -> bool {
        false
    }
    /// Places a forward pass can be split at (Grad-CAM's layers).
    fn num_stages(&self) -> usize;
    fn stage_names(&self) -> Vec<String>;
    /// # Shapes
    /// - `x`: `[B, C, H, W]` -> the activation after `stage`, `[B, C_s, H_s, W_s]`
    fn forward_to(&self, x: Tensor<4>, stage: usize) -> Tensor<4>;
    /// # Shapes
    /// - `a`: the activation after `stage` -> logits `[B, K]`
    fn forward_from(&self, a: Tensor<4>, stage: usize) -> Tensor<2>;
    /// The same architecture with `k` classes (a new output layer).
    fn with_classes(config: &Self::Config, k: usize) -> Self::Config;
    /// What the output layer sees (the backbone's features).
    ///
    /// # Shapes
    /// - `x`: `[B, C, H, W]` -> `[B, F]`
    fn features(&self, x: Tensor<4>) -> Tensor<2>;
    /// The output layer: logits = `head(features(x))`.
    fn head(&self) -> &Linear;
    fn head_mut(&mut self) -> &mut Linear;
}

/// Code that runs on whichever module a [`Net`] holds and gives back a module of that type
/// (training, weight loading, randomisation).
pub trait NetMap {
    fn map<M: NetModule>(&mut self, module: M) -> Result<M>;
}

/// Code that reads whichever module a [`Net`] holds.
pub trait NetVisit {
    type Out;
    fn visit<M: NetModule>(&mut self, module: &M) -> Self::Out;
}

/// The list of architectures: `Variant(module type) = "card tag"`. It generates the card's
/// [`Architecture`] and the loaded [`Net`], and their dispatch.
macro_rules! architectures {
    ($($variant:ident($module:ty) = $tag:literal),+ $(,)?) => {
        /// The architecture part of a model card.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type")]
        pub enum Architecture {
            $(#[serde(rename = $tag)] $variant(<$module as NetModule>::Config),)+
        }

        /// The network itself, one variant per architecture (held once per loaded model, so
        /// the variants' different sizes do not matter).
        #[derive(Debug, Clone)]
        #[allow(clippy::large_enum_variant)]
        pub enum Net {
            $($variant($module),)+
        }

        impl Architecture {
            pub fn name(&self) -> String {
                match self { $(Architecture::$variant(c) => <$module>::display_name(c),)+ }
            }
            pub fn num_classes(&self) -> usize {
                match self { $(Architecture::$variant(c) => <$module>::num_classes(c),)+ }
            }
            /// The PyTorch name of the output layer's bias, whose length is the class count.
            pub fn head_bias_name(&self) -> String {
                match self { $(Architecture::$variant(c) => <$module>::head_bias_name(c),)+ }
            }
            pub fn namer(&self) -> TorchNamer {
                match self { $(Architecture::$variant(_) => <$module>::torch_name,)+ }
            }
            pub fn layer_group(&self, torch_name: &str) -> String {
                match self { $(Architecture::$variant(_) => <$module>::layer_group(torch_name),)+ }
            }
            pub fn check_input(&self, input: &InputSpec) -> std::result::Result<(), String> {
                match self { $(Architecture::$variant(c) => <$module>::check_input(c, input),)+ }
            }
            /// A network with fresh (random) parameters.
            pub fn init(&self, device: &Device) -> Result<Net> {
                Ok(match self { $(Architecture::$variant(c) => Net::$variant(<$module>::init(c, device)?),)+ })
            }
        }

        impl Net {
            pub fn map_with(self, f: &mut impl NetMap) -> Result<Net> {
                Ok(match self { $(Net::$variant(m) => Net::$variant(f.map(m)?),)+ })
            }
            pub fn visit_with<V: NetVisit>(&self, v: &mut V) -> V::Out {
                match self { $(Net::$variant(m) => v.visit(m),)+ }
            }
            /// # Shapes
            /// - `x`: `[B, C, H, W]` (normalised) -> logits `[B, K]`
            pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
                match self { $(Net::$variant(m) => m.forward(x),)+ }
            }
            pub fn num_stages(&self) -> usize {
                match self { $(Net::$variant(m) => m.num_stages(),)+ }
            }
            pub fn stage_names(&self) -> Vec<String> {
                match self { $(Net::$variant(m) => m.stage_names(),)+ }
            }
            /// # Shapes
            /// - `x`: `[B, C, H, W]` -> the activation after `stage`, `[B, C_s, H_s, W_s]`
            pub fn forward_to(&self, x: Tensor<4>, stage: usize) -> Tensor<4> {
                match self { $(Net::$variant(m) => m.forward_to(x, stage),)+ }
            }
            /// # Shapes
            /// - `a`: the activation after `stage` -> logits `[B, K]`
            pub fn forward_from(&self, a: Tensor<4>, stage: usize) -> Tensor<2> {
                match self { $(Net::$variant(m) => m.forward_from(a, stage),)+ }
            }
            /// Inference mode: no autodiff on the parameters, BatchNorm on running statistics.
            pub fn valid(&self) -> Net {
                match self { $(Net::$variant(m) => Net::$variant(m.valid()),)+ }
            }
            /// Inference copy with the BatchNorms folded into their convolutions.
            pub fn fold_batch_norm(self) -> Net {
                match self { $(Net::$variant(m) => Net::$variant(m.fold_batch_norm().valid()),)+ }
            }
            pub fn to_device(self, device: &Device) -> Net {
                match self { $(Net::$variant(m) => Net::$variant(m.to_device(device)),)+ }
            }
            pub fn num_params(&self) -> usize {
                match self { $(Net::$variant(m) => m.num_params(),)+ }
            }
            /// # Shapes
            /// - `x`: `[B, C, H, W]` -> the output layer's input `[B, F]`
            pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
                match self { $(Net::$variant(m) => m.features(x),)+ }
            }
            pub fn head(&self) -> &Linear {
                match self { $(Net::$variant(m) => m.head(),)+ }
            }
            /// Replace the output layer (e.g. one trained on cached features).
            pub fn set_head(&mut self, head: Linear) {
                match self { $(Net::$variant(m) => *m.head_mut() = head,)+ }
            }
        }

        impl Architecture {
            /// The same architecture with `k` classes.
            pub fn with_classes(&self, k: usize) -> Architecture {
                match self { $(Architecture::$variant(c) => Architecture::$variant(<$module>::with_classes(c, k)),)+ }
            }
        }
    };
}

architectures! {
    SmallCnn(SmallCnn) = "small_cnn",
    EfficientnetLite0(EfficientNetLite) = "efficientnet_lite0",
    Resnet(ResNet) = "resnet",
}

struct ApplyTensors<'a> {
    map: &'a weights::TensorMap,
    arch: &'a Architecture,
    device: &'a Device,
}

impl NetMap for ApplyTensors<'_> {
    fn map<M: NetModule>(&mut self, module: M) -> Result<M> {
        weights::apply_tensors(module, self.map, self.arch.namer(), &self.arch.name(), self.device)
    }
}

struct CollectTensors(TorchNamer);

impl NetVisit for CollectTensors {
    type Out = Result<Vec<(String, weights::HostTensor)>>;
    fn visit<M: NetModule>(&mut self, module: &M) -> Self::Out {
        weights::collect_tensors(module, self.0)
    }
}

/// Packs the network's convolution weights for the CPU's wide products (see
/// [`crate::kernels::prepack`]); nothing on other devices or CPUs.
struct Prepack;

impl NetVisit for Prepack {
    type Out = ();
    fn visit<M: NetModule>(&mut self, module: &M) {
        module.visit(self);
    }
}

impl burn::module::ModuleVisitor for Prepack {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        crate::kernels::prepack(&param.val());
    }
}

impl Net {
    /// A fresh output layer for `k` classes; the backbone is kept (fine-tuning to new classes).
    ///
    /// # Shapes
    /// - the head becomes `[F, k]`
    pub fn reset_head(mut self, k: usize, device: &Device) -> Net {
        let [features, _] = self.head().weight.shape().dims::<2>();
        self.set_head(LinearConfig::new(features, k).init(device));
        self
    }

    fn apply(self, map: &weights::TensorMap, arch: &Architecture, device: &Device) -> Result<Net> {
        self.map_with(&mut ApplyTensors { map, arch, device })
    }

    /// Parameters by PyTorch name, in PyTorch layout.
    pub fn torch_tensors(&self, arch: &Architecture) -> Result<Vec<(String, weights::HostTensor)>> {
        self.visit_with(&mut CollectTensors(arch.namer()))
    }
}

/// A loaded classifier: card, network (in inference mode) and the device it lives on.
#[derive(Debug, Clone)]
pub struct Classifier {
    pub card: ModelCard,
    pub card_path: PathBuf,
    /// The network as its weights describe it (what is trained, randomised and exported).
    pub net: Net,
    pub device: Device,
    /// SHA-256 of the weights file (first 16 hex digits), for reports and caches.
    pub hash: String,
    /// `net` with its BatchNorms folded into the convolutions: what every forward pass and
    /// input gradient runs on. Private so that it always follows `net` ([`Classifier::with_net`]).
    inference: Net,
}

impl Classifier {
    /// A classifier around `net` (put in inference mode).
    pub fn new(card: ModelCard, card_path: PathBuf, net: Net, device: &Device, hash: String) -> Classifier {
        let net = net.valid();
        let inference = net.clone().fold_batch_norm();
        inference.visit_with(&mut Prepack);
        Classifier { card, card_path, net, device: device.clone(), hash, inference }
    }

    /// The same classifier with another network (e.g. randomised layers).
    pub fn with_net(&self, net: Net) -> Classifier {
        Classifier::new(self.card.clone(), self.card_path.clone(), net, &self.device, self.hash.clone())
    }

    /// The network forward passes and input gradients run on: `net` with its BatchNorms folded.
    ///
    /// # Shapes
    /// - `forward`: `[B, C, H, W]` -> `[B, K]`, as `net`
    pub fn inference(&self) -> &Net {
        &self.inference
    }

    /// Load a card (or a weights file with its card beside it) and its weights onto `device`.
    /// The weights must lie in the card's folder (see [`Classifier::load_allowing_outside`]).
    pub fn load(path: &Path, device: &Device) -> Result<Classifier> {
        Self::load_with(path, device, false)
    }

    /// Load a card whose weights may lie outside its folder (the CLI's `--allow-outside`).
    pub fn load_allowing_outside(path: &Path, device: &Device) -> Result<Classifier> {
        Self::load_with(path, device, true)
    }

    /// [`Classifier::load`], with the weights confined to the card's folder unless `allow_outside`.
    pub fn load_with(path: &Path, device: &Device, allow_outside: bool) -> Result<Classifier> {
        let (card, card_path) = ModelCard::load(path)?;
        let weights_path = card.weights_path_confined(&card_path, allow_outside)?;
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
                return Err(Error::ClassCount { card: card.classes.len(), head: head_outputs });
            }
        }
        if arch.num_classes() != card.classes.len() {
            return Err(Error::ClassCount { card: card.classes.len(), head: arch.num_classes() });
        }
        arch.check_input(&card.input).map_err(|reason| Error::Card { path: card_path.clone(), reason })?;
        let net = arch.init(device)?.apply(map, arch, device)?;
        let hash = map.sha256.chars().take(16).collect();
        Ok(Classifier::new(card, card_path, net, device, hash))
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
    pub fn input_batch(&self, images: &[&PreparedImage]) -> Result<Tensor<4>> {
        let spec = &self.card.input;
        let mut data = Vec::with_capacity(images.len() * spec.channels * spec.height * spec.width);
        for img in images {
            self.check_prepared(img)?;
            data.extend(crate::imaging::normalise(img, spec));
        }
        Ok(Tensor::from_data(TensorData::new(data, [images.len(), spec.channels, spec.height, spec.width]), &self.device))
    }

    /// An image prepared for another model (another size or colour) is an error that says so,
    /// never a shape assertion inside burn.
    pub fn check_prepared(&self, img: &PreparedImage) -> Result<()> {
        let spec = &self.card.input;
        if img.width != spec.width || img.height != spec.height || img.channels != spec.channels {
            let colour = |c: usize| if c == 1 { "grey" } else { "RGB" };
            return Err(Error::invalid(format!(
                "the image is {}x{} {} but {} takes {}x{} {}",
                img.width,
                img.height,
                colour(img.channels),
                self.card.name,
                spec.width,
                spec.height,
                colour(spec.channels)
            )));
        }
        if img.pixels.len() != img.width * img.height * img.channels {
            return Err(Error::invalid("the image's pixel buffer does not match its size"));
        }
        Ok(())
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
        let flat = crate::parallel::in_pool(|| read_floats(self.inference.forward(x)))?;
        Ok(flat.chunks(k).map(<[f32]>::to_vec).collect())
    }

    /// Class probabilities of a batch.
    pub fn probabilities(&self, x: Tensor<4>) -> Result<Vec<Vec<f32>>> {
        let k = self.num_classes();
        let flat = crate::parallel::in_pool(|| read_floats(softmax(self.inference.forward(x), 1)))?;
        Ok(flat.chunks(k).map(<[f32]>::to_vec).collect())
    }
}

/// Read a tensor back to the host as float32.
pub fn read_floats<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.try_into_data().map_err(|e| Error::Compute(format!("{e:?}")))?.try_into_vec_as::<f32>().map_err(|e| Error::Compute(format!("{e:?}")))
}
