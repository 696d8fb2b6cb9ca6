//! ResNet-18/34/50 in torchvision's layout (`layer1.0.conv1`, `layer2.0.downsample.0`), so users
//! can bring their own `.pth` or `.safetensors`.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::fold::{fold_optional, fold_pair, maybe_bn};
use crate::error::{Error, Result};
use crate::kernels;

fn conv(c: [usize; 2], k: usize, stride: usize, device: &Device) -> Conv2d {
    let p = k / 2;
    Conv2dConfig::new(c, [k, k]).with_stride([stride, stride]).with_bias(false).with_padding(PaddingConfig2d::Explicit(p, p, p, p)).init(device)
}

fn bn(n: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(n).init(device)
}

#[derive(Module, Debug)]
pub struct Downsample {
    pub conv: Conv2d,
    /// `None` once folded into the convolution (see [`super::fold`]); likewise below.
    pub bn: Option<BatchNorm>,
}

/// A basic block (two 3x3 convs) or, with `conv3`, a bottleneck (1x1, 3x3 with the stride, 1x1).
#[derive(Module, Debug)]
pub struct Block {
    pub conv1: Conv2d,
    pub bn1: Option<BatchNorm>,
    pub conv2: Conv2d,
    pub bn2: Option<BatchNorm>,
    pub conv3: Option<Conv2d>,
    pub bn3: Option<BatchNorm>,
    pub downsample: Option<Downsample>,
}

impl Block {
    /// # Shapes
    /// - `x`: `[B, C_in, H, W]` -> `[B, C_out, H / stride, W / stride]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(d) => maybe_bn(&d.bn, d.conv.forward(x.clone())),
            None => x.clone(),
        };
        let mut h = relu(maybe_bn(&self.bn1, kernels::conv2d(&self.conv1, x)));
        h = maybe_bn(&self.bn2, kernels::conv2d(&self.conv2, h));
        if let Some(c3) = &self.conv3 {
            h = maybe_bn(&self.bn3, c3.forward(relu(h)));
        }
        relu(h + identity)
    }

    fn fold_batch_norm(self) -> Self {
        let (conv1, bn1) = fold_pair(self.conv1, self.bn1);
        let (conv2, bn2) = fold_pair(self.conv2, self.bn2);
        let (conv3, bn3) = fold_optional(self.conv3, self.bn3);
        let downsample = self.downsample.map(|d| {
            let (conv, bn) = fold_pair(d.conv, d.bn);
            Downsample { conv, bn }
        });
        Block { conv1, bn1, conv2, bn2, conv3, bn3, downsample }
    }
}

#[derive(Module, Debug)]
pub struct ResNet {
    pub conv1: Conv2d,
    pub bn1: Option<BatchNorm>,
    pub maxpool: MaxPool2d,
    pub layer1: Vec<Block>,
    pub layer2: Vec<Block>,
    pub layer3: Vec<Block>,
    pub layer4: Vec<Block>,
    pub fc: Linear,
}

impl ResNet {
    pub fn new(depth: usize, num_classes: usize, device: &Device) -> Result<Self> {
        let (counts, bottleneck) = match depth {
            18 => ([2, 2, 2, 2], false),
            34 => ([3, 4, 6, 3], false),
            50 => ([3, 4, 6, 3], true),
            d => return Err(Error::invalid(format!("ResNet-{d} is not supported: use 18, 34 or 50"))),
        };
        let expansion = if bottleneck { 4 } else { 1 };
        let mut inplanes = 64;
        let mut layers: Vec<Vec<Block>> = Vec::new();
        for (li, (&n, planes)) in counts.iter().zip([64, 128, 256, 512]).enumerate() {
            let mut blocks = Vec::new();
            for b in 0..n {
                let stride = if b == 0 && li > 0 { 2 } else { 1 };
                let out = planes * expansion;
                let downsample = (b == 0 && (stride != 1 || inplanes != out))
                    .then(|| Downsample { conv: conv([inplanes, out], 1, stride, device), bn: Some(bn(out, device)) });
                let block = if bottleneck {
                    Block {
                        conv1: conv([inplanes, planes], 1, 1, device),
                        bn1: Some(bn(planes, device)),
                        conv2: conv([planes, planes], 3, stride, device),
                        bn2: Some(bn(planes, device)),
                        conv3: Some(conv([planes, out], 1, 1, device)),
                        bn3: Some(bn(out, device)),
                        downsample,
                    }
                } else {
                    Block {
                        conv1: conv([inplanes, planes], 3, stride, device),
                        bn1: Some(bn(planes, device)),
                        conv2: conv([planes, planes], 3, 1, device),
                        bn2: Some(bn(planes, device)),
                        conv3: None,
                        bn3: None,
                        downsample,
                    }
                };
                blocks.push(block);
                inplanes = out;
            }
            layers.push(blocks);
        }
        let mut it = layers.into_iter();
        let mut next = || it.next().expect("four layers");
        Ok(ResNet {
            conv1: Conv2dConfig::new([3, 64], [7, 7]).with_stride([2, 2]).with_bias(false).with_padding(PaddingConfig2d::Explicit(3, 3, 3, 3)).init(device),
            bn1: Some(bn(64, device)),
            maxpool: MaxPool2dConfig::new([3, 3]).with_strides([2, 2]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(),
            layer1: next(),
            layer2: next(),
            layer3: next(),
            layer4: next(),
            fc: LinearConfig::new(512 * expansion, num_classes).init(device),
        })
    }

    fn layers(&self) -> [&Vec<Block>; 4] {
        [&self.layer1, &self.layer2, &self.layer3, &self.layer4]
    }

    /// Stages: 0 = stem (conv1, bn, relu, maxpool), 1..=4 = layer1..layer4.
    pub fn num_stages(&self) -> usize {
        5
    }

    pub fn stage_names(&self) -> Vec<String> {
        ["stem", "layer1", "layer2", "layer3", "layer4"].map(String::from).to_vec()
    }

    /// # Shapes
    /// - `x`: `[B, 3, H, W]` -> the stage's activation (`[B, 512 * e, H / 32, W / 32]` for layer4)
    pub fn forward_to(&self, x: Tensor<4>, stage: usize) -> Tensor<4> {
        let mut x = self.maxpool.forward(relu(maybe_bn(&self.bn1, kernels::conv2d(&self.conv1, x))));
        for layer in self.layers().iter().take(stage) {
            for block in layer.iter() {
                x = block.forward(x);
            }
        }
        x
    }

    /// # Shapes
    /// - `a`: the activation of `stage` -> `[B, K]`
    pub fn forward_from(&self, a: Tensor<4>, stage: usize) -> Tensor<2> {
        let mut x = a;
        for layer in self.layers().iter().skip(stage) {
            for block in layer.iter() {
                x = block.forward(x);
            }
        }
        let pooled: Tensor<2> = x.mean_dim(3).mean_dim(2).flatten(1, 3); // [B, C]
        self.fc.forward(pooled)
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_from(self.forward_to(x, 4), 4)
    }

    /// Every BatchNorm folded into its convolution (inference only).
    pub fn fold_batch_norm(self) -> Self {
        let (conv1, bn1) = fold_pair(self.conv1, self.bn1);
        let fold = |l: Vec<Block>| l.into_iter().map(Block::fold_batch_norm).collect();
        ResNet {
            conv1,
            bn1,
            maxpool: self.maxpool,
            layer1: fold(self.layer1),
            layer2: fold(self.layer2),
            layer3: fold(self.layer3),
            layer4: fold(self.layer4),
            fc: self.fc,
        }
    }
}

/// burn path -> torchvision name: `downsample.conv` -> `downsample.0`, `downsample.bn` ->
/// `downsample.1`; everything else is already torchvision's.
pub fn torch_name(path: &[String]) -> String {
    path.iter()
        .map(|s| match s.as_str() {
            "conv" => "0".to_string(),
            "bn" => "1".to_string(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// A ResNet's card entry (torchvision's layout).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResNetConfig {
    pub depth: usize,
    pub num_classes: usize,
}

impl super::NetModule for ResNet {
    type Config = ResNetConfig;
    fn init(c: &ResNetConfig, device: &Device) -> Result<Self> {
        ResNet::new(c.depth, c.num_classes, device)
    }
    fn display_name(c: &ResNetConfig) -> String {
        format!("ResNet-{}", c.depth)
    }
    fn num_classes(c: &ResNetConfig) -> usize {
        c.num_classes
    }
    fn head_bias_name(_: &ResNetConfig) -> String {
        "fc.bias".into()
    }
    fn check_input(_: &ResNetConfig, i: &crate::card::InputSpec) -> std::result::Result<(), String> {
        if i.channels != 3 {
            return Err("ResNet takes RGB input".into());
        }
        if i.height < 32 || i.width < 32 {
            return Err(format!("ResNet needs an input of at least 32x32 (the card says {}x{})", i.width, i.height));
        }
        Ok(())
    }
    fn torch_name(path: &[String]) -> String {
        torch_name(path)
    }
    fn layer_group(name: &str) -> String {
        let parts: Vec<&str> = name.split('.').collect();
        match parts[0] {
            l if l.starts_with("layer") => format!("{l}.{}", parts.get(1).unwrap_or(&"?")),
            "conv1" | "bn1" => "stem".into(),
            other => other.to_string(),
        }
    }
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        ResNet::forward(self, x)
    }
    fn fold_batch_norm(self) -> Self {
        ResNet::fold_batch_norm(self)
    }
    fn num_stages(&self) -> usize {
        ResNet::num_stages(self)
    }
    fn stage_names(&self) -> Vec<String> {
        ResNet::stage_names(self)
    }
    fn forward_to(&self, x: Tensor<4>, stage: usize) -> Tensor<4> {
        ResNet::forward_to(self, x, stage)
    }
    fn forward_from(&self, a: Tensor<4>, stage: usize) -> Tensor<2> {
        ResNet::forward_from(self, a, stage)
    }
    fn with_classes(c: &ResNetConfig, k: usize) -> ResNetConfig {
        ResNetConfig { num_classes: k, ..c.clone() }
    }
    fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let a = ResNet::forward_to(self, x, 4); // [B, 512 e, h, w]
        a.mean_dim(3).mean_dim(2).flatten(1, 3) // [B, 512 e]
    }
    fn head(&self) -> &Linear {
        &self.fc
    }
    fn head_mut(&mut self) -> &mut Linear {
        &mut self.fc
    }
}
