//! BatchNorm folded into the convolution before it, for inference and input gradients.
//!
//! With running statistics a BatchNorm is an affine map per channel, `y = (x - mean) * s + beta`
//! with `s = gamma / sqrt(var + eps)`, so `bn(conv(x))` is one convolution with weights `w * s`
//! (per output channel) and bias `beta + (b - mean) * s`. That removes four passes over every
//! activation a BatchNorm costs on the CPU (subtract, divide, multiply, add), forward and
//! backward; the numbers agree to float32 rounding. Training keeps the BatchNorms: only the
//! copy a [`Classifier`](super::Classifier) uses for inference is folded.

use burn::module::Param;
use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;

/// `bn(conv(x))` as one convolution (`bn` on its running statistics).
pub fn conv_bn(mut conv: Conv2d, bn: &BatchNorm) -> Conv2d {
    let scale = bn.gamma.val() / (bn.running_var.value() + bn.epsilon).sqrt(); // [C_out]
    let [out, _, _, _] = conv.weight.dims();
    let weight = conv.weight.val() * scale.clone().reshape([out, 1, 1, 1]);
    let bias = match &conv.bias {
        Some(b) => b.val(),
        None => Tensor::<1>::zeros([out], &scale.device()),
    };
    let bias = bn.beta.val() + (bias - bn.running_mean.value()) * scale;
    conv.weight = Param::from_tensor(weight);
    conv.bias = Some(Param::from_tensor(bias));
    conv
}

/// A convolution and the BatchNorm after it: folded when there is one.
pub fn fold_pair(conv: Conv2d, bn: Option<BatchNorm>) -> (Conv2d, Option<BatchNorm>) {
    match bn {
        Some(bn) => (conv_bn(conv, &bn), None),
        None => (conv, None),
    }
}

/// An optional convolution and its BatchNorm (an MBConv's expansion, a bottleneck's third
/// convolution): folded when both are there.
pub fn fold_optional(conv: Option<Conv2d>, bn: Option<BatchNorm>) -> (Option<Conv2d>, Option<BatchNorm>) {
    match conv {
        Some(c) => {
            let (c, bn) = fold_pair(c, bn);
            (Some(c), bn)
        }
        None => (None, bn),
    }
}

/// `bn(x)`, or `x` where the BatchNorm was folded away.
pub fn maybe_bn(bn: &Option<BatchNorm>, x: Tensor<4>) -> Tensor<4> {
    match bn {
        Some(bn) => bn.forward(x),
        None => x,
    }
}
