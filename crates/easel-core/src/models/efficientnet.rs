//! EfficientNet-Lite0 (ImageNet-1k): ReLU6, no squeeze-excitation, BatchNorm eps 1e-3, and
//! TensorFlow's static "SAME" padding, which is asymmetric for stride-2 convolutions.
//! PyTorch names follow the `efficientnet-lite-pytorch` package (`_conv_stem`, `_blocks.N._bn1`).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor};

use crate::kernels;

use super::fold::{fold_optional, fold_pair, maybe_bn};

/// ReLU6 (burn's `relu(x).clamp_max(6)`), one pass each way on the CPU (see [`kernels`]).
fn relu6(x: Tensor<4>) -> Tensor<4> {
    kernels::relu6(x)
}

/// Stem and head widths (fixed for the Lite family), and BatchNorm's epsilon.
const STEM_CHANNELS: usize = 32;
const HEAD_CHANNELS: usize = 1280;
const BN_EPSILON: f64 = 1e-3;

/// One group of MBConv blocks: (repeats, kernel, stride, expand ratio, in, out).
const LITE0_BLOCKS: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];

/// TensorFlow "SAME" padding for a static input size: (before, after); the extra pixel of an
/// odd total goes after (right/bottom).
pub fn same_padding(size_in: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let size_out = size_in.div_ceil(stride);
    let total = ((size_out - 1) * stride + kernel).saturating_sub(size_in);
    (total / 2, total - total / 2)
}

fn conv(channels: [usize; 2], kernel: usize, stride: usize, groups: usize, size_in: usize, device: &Device) -> Conv2d {
    let (a, b) = same_padding(size_in, kernel, stride);
    Conv2dConfig::new(channels, [kernel, kernel])
        .with_stride([stride, stride])
        .with_groups(groups)
        .with_bias(false)
        .with_padding(PaddingConfig2d::Explicit(a, a, b, b))
        .init(device)
}

fn bn(n: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(n).with_epsilon(BN_EPSILON).init(device)
}

#[derive(Module, Debug)]
pub struct MbConv {
    pub expand_conv: Option<Conv2d>,
    pub bn0: Option<BatchNorm>,
    pub depthwise_conv: Conv2d,
    /// `None` once folded into the convolution before it (see [`super::fold`]); likewise below.
    pub bn1: Option<BatchNorm>,
    pub project_conv: Conv2d,
    pub bn2: Option<BatchNorm>,
    pub skip: bool,
}

impl MbConv {
    /// # Shapes
    /// - `x`: `[B, C_in, H, W]` -> `[B, C_out, H / stride, W / stride]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut h = x.clone();
        if let Some(c) = &self.expand_conv {
            h = relu6(maybe_bn(&self.bn0, kernels::conv2d(c, h)));
        }
        h = relu6(maybe_bn(&self.bn1, kernels::depthwise_conv2d(&self.depthwise_conv, h)));
        h = maybe_bn(&self.bn2, kernels::conv2d(&self.project_conv, h));
        if self.skip { h + x } else { h }
    }

    fn fold_batch_norm(self) -> Self {
        let (expand_conv, bn0) = fold_optional(self.expand_conv, self.bn0);
        let (depthwise_conv, bn1) = fold_pair(self.depthwise_conv, self.bn1);
        let (project_conv, bn2) = fold_pair(self.project_conv, self.bn2);
        MbConv { expand_conv, bn0, depthwise_conv, bn1, project_conv, bn2, skip: self.skip }
    }
}

#[derive(Module, Debug)]
pub struct EfficientNetLite {
    pub conv_stem: Conv2d,
    pub bn0: Option<BatchNorm>,
    pub blocks: Vec<MbConv>,
    pub conv_head: Conv2d,
    pub bn1: Option<BatchNorm>,
    pub fc: Linear,
}

impl EfficientNetLite {
    /// EfficientNet-Lite0 for square inputs of `image_size` pixels.
    pub fn lite0(image_size: usize, num_classes: usize, device: &Device) -> Self {
        let mut size = image_size;
        let conv_stem = conv([3, STEM_CHANNELS], 3, 2, 1, size, device);
        size = size.div_ceil(2);
        let mut blocks = Vec::new();
        for &(repeats, k, stride, expand, c_in, c_out) in &LITE0_BLOCKS {
            for r in 0..repeats {
                let (inp, s) = if r == 0 { (c_in, stride) } else { (c_out, 1) };
                let mid = inp * expand;
                let (expand_conv, bn0) = if expand != 1 { (Some(conv([inp, mid], 1, 1, 1, size, device)), Some(bn(mid, device))) } else { (None, None) };
                let depthwise_conv = conv([mid, mid], k, s, mid, size, device);
                size = size.div_ceil(s);
                blocks.push(MbConv {
                    expand_conv,
                    bn0,
                    depthwise_conv,
                    bn1: Some(bn(mid, device)),
                    project_conv: conv([mid, c_out], 1, 1, 1, size, device),
                    bn2: Some(bn(c_out, device)),
                    skip: s == 1 && inp == c_out,
                });
            }
        }
        let last = LITE0_BLOCKS[LITE0_BLOCKS.len() - 1].5;
        EfficientNetLite {
            conv_stem,
            bn0: Some(bn(STEM_CHANNELS, device)),
            blocks,
            conv_head: conv([last, HEAD_CHANNELS], 1, 1, 1, size, device),
            bn1: Some(bn(HEAD_CHANNELS, device)),
            fc: LinearConfig::new(HEAD_CHANNELS, num_classes).init(device),
        }
    }

    /// Stages: 0 = stem, 1..=16 = MBConv blocks, 17 = head convolution.
    pub fn num_stages(&self) -> usize {
        self.blocks.len() + 2
    }

    pub fn stage_names(&self) -> Vec<String> {
        let mut names = vec!["stem".to_string()];
        names.extend((0..self.blocks.len()).map(|i| format!("block{i}")));
        names.push("head".into());
        names
    }

    /// # Shapes
    /// - `x`: `[B, 3, 224, 224]` -> the stage's activation, `[B, 1280, 7, 7]` for the head
    pub fn forward_to(&self, x: Tensor<4>, stage: usize) -> Tensor<4> {
        let mut x = relu6(maybe_bn(&self.bn0, kernels::conv2d(&self.conv_stem, x)));
        if stage == 0 {
            return x;
        }
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(x);
            if stage == i + 1 {
                return x;
            }
        }
        relu6(maybe_bn(&self.bn1, kernels::conv2d(&self.conv_head, x)))
    }

    /// # Shapes
    /// - `a`: the activation of `stage` -> `[B, K]`
    pub fn forward_from(&self, a: Tensor<4>, stage: usize) -> Tensor<2> {
        let mut x = a;
        let n = self.blocks.len();
        if stage <= n {
            for block in &self.blocks[stage..] {
                x = block.forward(x);
            }
            x = relu6(maybe_bn(&self.bn1, kernels::conv2d(&self.conv_head, x)));
        }
        let pooled: Tensor<2> = x.mean_dim(3).mean_dim(2).flatten(1, 3); // [B, 1280]
        self.fc.forward(pooled)
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let last = self.num_stages() - 1;
        self.forward_from(self.forward_to(x, last), last)
    }

    /// Every BatchNorm folded into its convolution (inference only).
    pub fn fold_batch_norm(self) -> Self {
        let (conv_stem, bn0) = fold_pair(self.conv_stem, self.bn0);
        let (conv_head, bn1) = fold_pair(self.conv_head, self.bn1);
        let blocks = self.blocks.into_iter().map(MbConv::fold_batch_norm).collect();
        EfficientNetLite { conv_stem, bn0, blocks, conv_head, bn1, fc: self.fc }
    }
}

/// burn path -> PyTorch name: every module segment gets the package's leading underscore
/// (`blocks.3.depthwise_conv.weight` -> `_blocks.3._depthwise_conv.weight`).
pub fn torch_name(path: &[String]) -> String {
    let last = path.len().saturating_sub(1);
    path.iter()
        .enumerate()
        .map(|(i, s)| if i == last || s.chars().all(|c| c.is_ascii_digit()) { s.clone() } else { format!("_{s}") })
        .collect::<Vec<_>>()
        .join(".")
}

/// EfficientNet-Lite0's card entry.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EfficientNetConfig {
    pub image_size: usize,
    pub num_classes: usize,
}

impl super::NetModule for EfficientNetLite {
    type Config = EfficientNetConfig;
    fn init(c: &EfficientNetConfig, device: &Device) -> crate::error::Result<Self> {
        if c.num_classes == 0 || c.image_size < 32 {
            return Err(crate::error::Error::invalid("EfficientNet-Lite0 needs at least 1 class and an input of at least 32 pixels"));
        }
        Ok(EfficientNetLite::lite0(c.image_size, c.num_classes, device))
    }
    fn display_name(_: &EfficientNetConfig) -> String {
        "EfficientNet-Lite0".into()
    }
    fn num_classes(c: &EfficientNetConfig) -> usize {
        c.num_classes
    }
    fn head_bias_name(_: &EfficientNetConfig) -> String {
        "_fc.bias".into()
    }
    fn check_input(c: &EfficientNetConfig, i: &crate::card::InputSpec) -> std::result::Result<(), String> {
        if i.channels != 3 || i.height != c.image_size || i.width != c.image_size {
            return Err(format!("EfficientNet-Lite0 takes 3x{0}x{0} input", c.image_size));
        }
        Ok(())
    }
    fn torch_name(path: &[String]) -> String {
        torch_name(path)
    }
    fn layer_group(name: &str) -> String {
        let parts: Vec<&str> = name.split('.').collect();
        match parts[0] {
            "_blocks" => format!("block{}", parts.get(1).unwrap_or(&"?")),
            "_conv_stem" | "_bn0" => "stem".into(),
            "_conv_head" | "_bn1" => "head".into(),
            other => other.trim_start_matches('_').to_string(),
        }
    }
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        EfficientNetLite::forward(self, x)
    }
    fn fold_batch_norm(self) -> Self {
        EfficientNetLite::fold_batch_norm(self)
    }
    fn num_stages(&self) -> usize {
        EfficientNetLite::num_stages(self)
    }
    fn stage_names(&self) -> Vec<String> {
        EfficientNetLite::stage_names(self)
    }
    fn forward_to(&self, x: Tensor<4>, stage: usize) -> Tensor<4> {
        EfficientNetLite::forward_to(self, x, stage)
    }
    fn forward_from(&self, a: Tensor<4>, stage: usize) -> Tensor<2> {
        EfficientNetLite::forward_from(self, a, stage)
    }
    fn with_classes(c: &EfficientNetConfig, k: usize) -> EfficientNetConfig {
        EfficientNetConfig { num_classes: k, ..c.clone() }
    }
    fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let last = self.num_stages() - 1;
        let a = EfficientNetLite::forward_to(self, x, last); // [B, 1280, h, w]
        a.mean_dim(3).mean_dim(2).flatten(1, 3) // [B, 1280]
    }
    fn head(&self) -> &Linear {
        &self.fc
    }
    fn head_mut(&mut self) -> &mut Linear {
        &mut self.fc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_is_tensorflows() {
        assert_eq!(same_padding(224, 3, 2), (0, 1));
        assert_eq!(same_padding(56, 5, 2), (1, 2));
        assert_eq!(same_padding(14, 5, 1), (2, 2));
        assert_eq!(same_padding(7, 1, 1), (0, 0));
    }

    #[test]
    fn names_match_the_pytorch_package() {
        let p = |s: &str| s.split('.').map(String::from).collect::<Vec<_>>();
        assert_eq!(torch_name(&p("blocks.3.depthwise_conv.weight")), "_blocks.3._depthwise_conv.weight");
        assert_eq!(torch_name(&p("fc.bias")), "_fc.bias");
        assert_eq!(torch_name(&p("bn0.running_var")), "_bn0.running_var");
    }
}
