//! A configurable small CNN: blocks of conv (+ optional BatchNorm) + ReLU (+ optional 2x2 max
//! pool), then linear layers with ReLU between them. PyTorch names: `conv{i}`, `bn{i}`, `fc{j}`.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::card::InputSpec;
use crate::error::{Error, Result};
use crate::kernels;

/// One convolutional block.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConvSpec {
    pub out_channels: usize,
    pub kernel: usize,
    /// BatchNorm after the convolution (`bn{i}` in PyTorch names).
    #[serde(default)]
    pub batchnorm: bool,
    /// 2x2 max pooling with stride 2 after the ReLU.
    #[serde(default = "yes")]
    pub pool: bool,
}

fn yes() -> bool {
    true
}

/// The whole network; saved in the model card.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SmallCnnConfig {
    pub in_channels: usize,
    pub height: usize,
    pub width: usize,
    pub convs: Vec<ConvSpec>,
    /// Widths of the hidden linear layers; the last layer maps to `num_classes`.
    pub hidden: Vec<usize>,
    pub num_classes: usize,
    /// Dropout before each linear layer while training.
    #[serde(default)]
    pub dropout: f64,
}

impl SmallCnnConfig {
    /// The two-conv network of the reference fixtures: conv(k) -> pool -> conv(k) -> pool -> fc -> fc.
    pub fn two_conv(in_channels: usize, side: usize, c1: usize, c2: usize, k: usize, hidden: usize, classes: usize) -> Self {
        SmallCnnConfig {
            in_channels,
            height: side,
            width: side,
            convs: vec![
                ConvSpec { out_channels: c1, kernel: k, batchnorm: false, pool: true },
                ConvSpec { out_channels: c2, kernel: k, batchnorm: false, pool: true },
            ],
            hidden: vec![hidden],
            num_classes: classes,
            dropout: 0.0,
        }
    }

    /// Parameters and per-image activations are bounded before anything is allocated, with
    /// checked arithmetic: a card cannot ask for a network that does not fit in memory.
    pub fn check_bounds(&self) -> std::result::Result<(), String> {
        const MAX_PARAMS: u64 = 100_000_000;
        const MAX_ACTIVATIONS: u64 = 64 << 20;
        const MAX_LAYERS: usize = 32;
        if self.convs.len() > MAX_LAYERS || self.hidden.len() > MAX_LAYERS {
            return Err(format!("{} convolutions and {} hidden layers: at most {MAX_LAYERS} of each", self.convs.len(), self.hidden.len()));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout {} must be in [0, 1)", self.dropout));
        }
        let too_big = || format!("the network is larger than easel handles (at most {MAX_PARAMS} parameters and {MAX_ACTIVATIONS} activations per image)");
        let mul = |a: u64, b: usize| a.checked_mul(b as u64).ok_or_else(too_big);
        let (mut params, mut c, mut h, mut w) = (0u64, self.in_channels, self.height, self.width);
        for (i, spec) in self.convs.iter().enumerate() {
            if spec.out_channels == 0 || spec.kernel == 0 || spec.kernel > 31 {
                return Err(format!("conv{}: {} channels with a {}x{0} kernel (1..=31 px)", i + 1, spec.out_channels, spec.kernel));
            }
            params = params.saturating_add(mul(mul(mul(c as u64, spec.out_channels)?, spec.kernel)?, spec.kernel)?);
            if mul(mul(h as u64, w)?, spec.out_channels)? > MAX_ACTIVATIONS {
                return Err(too_big());
            }
            (c, h, w) = (spec.out_channels, if spec.pool { h / 2 } else { h }, if spec.pool { w / 2 } else { w });
        }
        let mut width = mul(mul(c as u64, h)?, w)?;
        for &next in self.hidden.iter().chain(std::iter::once(&self.num_classes)) {
            if next == 0 {
                return Err("a linear layer has no outputs".into());
            }
            params = params.saturating_add(mul(width, next)?);
            width = next as u64;
        }
        if params > MAX_PARAMS {
            return Err(too_big());
        }
        Ok(())
    }

    /// Spatial size after every block, and the flattened feature count.
    pub fn feature_size(&self) -> Result<(usize, usize, usize)> {
        self.check_bounds().map_err(Error::Invalid)?;
        let (mut h, mut w, mut c) = (self.height, self.width, self.in_channels);
        for (i, spec) in self.convs.iter().enumerate() {
            if spec.kernel % 2 == 0 {
                return Err(Error::invalid(format!("conv{}: kernel {} must be odd", i + 1, spec.kernel)));
            }
            c = spec.out_channels;
            if spec.pool {
                h /= 2;
                w /= 2;
            }
            if h == 0 || w == 0 {
                return Err(Error::invalid(format!("conv{}: the {}x{} input has shrunk to nothing after this many poolings", i + 1, self.height, self.width)));
            }
        }
        Ok((c, h, w))
    }

    pub fn init(&self, device: &Device) -> Result<SmallCnn> {
        let (c, h, w) = self.feature_size()?;
        let mut in_ch = self.in_channels;
        let blocks = self
            .convs
            .iter()
            .map(|s| {
                let p = s.kernel / 2;
                let conv = Conv2dConfig::new([in_ch, s.out_channels], [s.kernel, s.kernel]).with_padding(PaddingConfig2d::Explicit(p, p, p, p)).init(device);
                let bn = s.batchnorm.then(|| BatchNormConfig::new(s.out_channels).init(device));
                in_ch = s.out_channels;
                ConvBlock { conv, bn, pool: s.pool }
            })
            .collect();
        let mut widths = vec![c * h * w];
        widths.extend(&self.hidden);
        widths.push(self.num_classes);
        let fcs = widths.windows(2).map(|d| LinearConfig::new(d[0], d[1]).init(device)).collect();
        Ok(SmallCnn { convs: blocks, fcs, pool: MaxPool2dConfig::new([2, 2]).init(), dropout: DropoutConfig::new(self.dropout).init() })
    }
}

/// The small CNNs easel trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SmallCnnPreset {
    /// Two convolutions (the reference fixtures' network): fast on a CPU; the labs' default.
    #[default]
    TwoConv,
    /// Three conv blocks with BatchNorm and dropout (the demo model: > 92 % on Fashion-MNIST).
    Demo,
}

impl SmallCnnPreset {
    /// The network for 28x28 grey input and `classes` classes.
    pub fn config(self, classes: usize) -> SmallCnnConfig {
        match self {
            SmallCnnPreset::TwoConv => SmallCnnConfig::two_conv(1, 28, 16, 32, 3, 64, classes),
            SmallCnnPreset::Demo => SmallCnnConfig {
                in_channels: 1,
                height: 28,
                width: 28,
                convs: vec![
                    ConvSpec { out_channels: 32, kernel: 3, batchnorm: true, pool: true },
                    ConvSpec { out_channels: 64, kernel: 3, batchnorm: true, pool: true },
                    ConvSpec { out_channels: 128, kernel: 3, batchnorm: true, pool: true },
                ],
                hidden: vec![256],
                num_classes: classes,
                dropout: 0.3,
            },
        }
    }
}

#[derive(Module, Debug)]
pub struct ConvBlock {
    pub conv: Conv2d,
    pub bn: Option<BatchNorm>,
    pub pool: bool,
}

#[derive(Module, Debug)]
pub struct SmallCnn {
    pub convs: Vec<ConvBlock>,
    pub fcs: Vec<Linear>,
    pub pool: MaxPool2d,
    pub dropout: Dropout,
}

impl SmallCnn {
    /// Number of places a forward pass can be split at: one per conv block.
    pub fn num_stages(&self) -> usize {
        self.convs.len()
    }

    pub fn stage_names(&self) -> Vec<String> {
        (1..=self.convs.len()).map(|i| format!("conv{i}")).collect()
    }

    /// The output of conv block `stage` after its ReLU, before its pooling.
    ///
    /// # Shapes
    /// - `x`: `[B, C, H, W]` -> `[B, C_stage, H_stage, W_stage]`
    pub fn forward_to(&self, x: Tensor<4>, stage: usize) -> Tensor<4> {
        let mut x = x;
        for (i, block) in self.convs.iter().enumerate() {
            if i > 0 && self.convs[i - 1].pool {
                x = kernels::max_pool2d(&self.pool, x);
            }
            x = kernels::conv2d(&block.conv, x);
            if let Some(bn) = &block.bn {
                x = kernels::batch_norm(bn, x);
            }
            x = kernels::relu(x);
            if i == stage {
                break;
            }
        }
        x
    }

    /// The logits from the output of `forward_to(.., stage)`.
    ///
    /// # Shapes
    /// - `a`: `[B, C_stage, H_stage, W_stage]` -> `[B, K]`
    pub fn forward_from(&self, a: Tensor<4>, stage: usize) -> Tensor<2> {
        let f = self.features_from(a, stage);
        let last = self.fcs.len() - 1;
        self.fcs[last].forward(self.dropout.forward(f))
    }

    /// What the output layer sees, from the output of `forward_to(.., stage)`.
    ///
    /// # Shapes
    /// - `a`: `[B, C_stage, H_stage, W_stage]` -> `[B, F]`
    pub fn features_from(&self, a: Tensor<4>, stage: usize) -> Tensor<2> {
        let mut x = a;
        if self.convs[stage].pool {
            x = kernels::max_pool2d(&self.pool, x);
        }
        for block in &self.convs[stage + 1..] {
            x = kernels::conv2d(&block.conv, x);
            if let Some(bn) = &block.bn {
                x = kernels::batch_norm(bn, x);
            }
            x = kernels::relu(x);
            if block.pool {
                x = kernels::max_pool2d(&self.pool, x);
            }
        }
        let mut x: Tensor<2> = x.flatten(1, 3); // [B, C*H*W], C-major like PyTorch
        let last = self.fcs.len() - 1;
        for fc in &self.fcs[..last] {
            x = kernels::relu(fc.forward(self.dropout.forward(x)));
        }
        x
    }

    /// Every BatchNorm folded into its convolution (inference only).
    pub fn fold_batch_norm(self) -> Self {
        let convs = self
            .convs
            .into_iter()
            .map(|b| {
                let (conv, bn) = super::fold::fold_pair(b.conv, b.bn);
                ConvBlock { conv, bn, pool: b.pool }
            })
            .collect();
        SmallCnn { convs, ..self }
    }

    /// # Shapes
    /// - `x`: `[B, C, H, W]` -> `[B, K]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let last = self.convs.len() - 1;
        let a = self.forward_to(x, last);
        self.forward_from(a, last)
    }
}

/// burn path -> PyTorch name: `convs.0.conv.weight` -> `conv1.weight`, `convs.0.bn.running_mean`
/// -> `bn1.running_mean`, `fcs.1.bias` -> `fc2.bias`.
pub fn torch_name(path: &[String]) -> String {
    match path {
        [group, idx, layer, param] if group == "convs" => {
            let i = idx.parse::<usize>().unwrap_or(0) + 1;
            format!("{layer}{i}.{param}")
        }
        [group, idx, param] if group == "fcs" => {
            let j = idx.parse::<usize>().unwrap_or(0) + 1;
            format!("fc{j}.{param}")
        }
        other => other.join("."),
    }
}

impl super::NetModule for SmallCnn {
    type Config = SmallCnnConfig;
    fn init(config: &SmallCnnConfig, device: &Device) -> Result<Self> {
        config.init(device)
    }
    fn display_name(c: &SmallCnnConfig) -> String {
        format!("small CNN ({} conv, {} linear)", c.convs.len(), c.hidden.len() + 1)
    }
    fn num_classes(c: &SmallCnnConfig) -> usize {
        c.num_classes
    }
    fn head_bias_name(c: &SmallCnnConfig) -> String {
        format!("fc{}.bias", c.hidden.len() + 1)
    }
    fn check_input(c: &SmallCnnConfig, i: &InputSpec) -> std::result::Result<(), String> {
        if c.in_channels != i.channels || c.height != i.height || c.width != i.width {
            return Err(format!("the architecture takes {}x{}x{} but input says {}x{}x{}", c.in_channels, c.height, c.width, i.channels, i.height, i.width));
        }
        c.check_bounds()
    }
    fn torch_name(path: &[String]) -> String {
        torch_name(path)
    }
    fn layer_group(name: &str) -> String {
        name.split('.').next().unwrap_or_default().replace("bn", "conv")
    }
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        SmallCnn::forward(self, x)
    }
    fn fold_batch_norm(self) -> Self {
        SmallCnn::fold_batch_norm(self)
    }
    fn samples_independent(&self) -> bool {
        self.convs.iter().all(|b| b.bn.is_none()) && self.dropout.prob == 0.0
    }
    fn num_stages(&self) -> usize {
        SmallCnn::num_stages(self)
    }
    fn stage_names(&self) -> Vec<String> {
        SmallCnn::stage_names(self)
    }
    fn forward_to(&self, x: Tensor<4>, stage: usize) -> Tensor<4> {
        SmallCnn::forward_to(self, x, stage)
    }
    fn forward_from(&self, a: Tensor<4>, stage: usize) -> Tensor<2> {
        SmallCnn::forward_from(self, a, stage)
    }
    fn with_classes(c: &SmallCnnConfig, k: usize) -> SmallCnnConfig {
        SmallCnnConfig { num_classes: k, ..c.clone() }
    }
    fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let last = self.convs.len() - 1;
        self.features_from(self.forward_to(x, last), last)
    }
    fn head(&self) -> &Linear {
        self.fcs.last().expect("a small CNN has an output layer")
    }
    fn head_mut(&mut self) -> &mut Linear {
        self.fcs.last_mut().expect("a small CNN has an output layer")
    }
}
