//! A second Fashion-MNIST model for comparisons: the demo model with one class's head row
//! scaled by 1.2 and its bias raised, so it calls that class more often (right more often on
//! it, wrong more often on its neighbours) and its maps of that class differ from A's.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use easel_core::card::ModelCard;

/// Write the demo model with class `class`'s head row scaled by 1.2 and its bias raised by
/// `shift` into `dir`; returns its card.
pub fn shifted_demo_model(dir: &Path, class: usize, shift: f32) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let card_path = root.join("assets/fashion-mnist/model/card.json");
    let (card, _) = ModelCard::load(&card_path).unwrap();
    let mut map = easel_core::weights::read_tensors(&card.weights_path(&card_path)).unwrap();
    let bias_name = card.architecture.head_bias_name();
    let bias = map.tensors.get_mut(&bias_name).expect("the head bias");
    bias.data[class] += shift;
    // PyTorch's layout: [out, in]
    let weight = map.tensors.get_mut(&bias_name.replace("bias", "weight")).expect("the head weight");
    let inputs = weight.shape[1];
    weight.data[class * inputs..(class + 1) * inputs].iter_mut().for_each(|w| *w *= 1.2);
    std::fs::create_dir_all(dir).unwrap();
    let tensors: Vec<_> = map.tensors.into_iter().collect();
    easel_core::weights::write_safetensors(&dir.join("weights.safetensors"), &tensors).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&card_path).unwrap()).unwrap();
    json["name"] = format!("Fashion-MNIST small CNN, class {class} bias {shift:+} (B)").into();
    json["weights"] = "weights.safetensors".into();
    let out = dir.join("card.json");
    std::fs::write(&out, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    out
}
