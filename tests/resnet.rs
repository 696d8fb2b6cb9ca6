//! ResNet-18/34/50 use torchvision's state-dict layout exactly (names and shapes, from
//! torchvision 0.29's `state_dict()`), compute torchvision's logits (basic and bottleneck
//! blocks, weights filled by a formula both sides share), and a seeded random ResNet-18
//! survives a round trip through safetensors with the same logits.

mod common;

use common::*;
use easel_core::card::{CARD_FORMAT, InputSpec, ModelCard, ResizeMode};
use easel_core::models::{Architecture, Classifier};

fn torchvision_keys(depth: usize) -> Vec<(String, Vec<usize>)> {
    std::fs::read_to_string(fixture(&format!("resnet/resnet{depth}_keys.txt")))
        .unwrap()
        .lines()
        .map(|l| {
            let (k, s) = l.split_once(' ').unwrap();
            (k.to_string(), if s.is_empty() { vec![] } else { s.split(',').map(|d| d.parse().unwrap()).collect() })
        })
        .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
        .collect()
}

#[test]
fn resnets_name_and_shape_every_tensor_as_torchvision() {
    for depth in [18, 34, 50] {
        let arch = Architecture::Resnet(easel_core::models::ResNetConfig { depth, num_classes: 1000 });
        let net = arch.init(&cpu()).unwrap();
        let mut ours: Vec<(String, Vec<usize>)> = net.torch_tensors(&arch).unwrap().into_iter().map(|(k, t)| (k, t.shape)).collect();
        let mut theirs = torchvision_keys(depth);
        ours.sort();
        theirs.sort();
        assert_eq!(ours.len(), theirs.len(), "ResNet-{depth}: tensor count");
        for (a, b) in ours.iter().zip(&theirs) {
            assert_eq!(a, b, "ResNet-{depth}");
        }
    }
}

#[test]
fn a_seeded_resnet18_round_trips_through_safetensors() {
    let dev = cpu();
    dev.seed(7);
    let arch = Architecture::Resnet(easel_core::models::ResNetConfig { depth: 18, num_classes: 10 });
    let net = arch.init(&dev).unwrap();
    let tensors = net.torch_tensors(&arch).unwrap();
    let dir = std::env::temp_dir().join(format!("easel-resnet-{}", std::process::id()));
    let card = write_model(&dir, "seeded ResNet-18", arch, &tensors, (64, 64));
    let loaded = Classifier::load(&card, &dev).unwrap();
    let img = easel_core::imaging::load_prepared(&asset("photos/chelsea.png"), &loaded.card.input).unwrap();
    let a = loaded.logits(loaded.input_batch(&[&img]).unwrap()).unwrap().remove(0);
    let direct = loaded.with_net(net);
    let b = direct.logits(direct.input_batch(&[&img]).unwrap()).unwrap().remove(0);
    assert_eq!(a, b);
    // and Grad-CAM works at every stage of it
    for stage in 0..loaded.net.num_stages() {
        let m = easel_core::explain::Method::Gradcam { stage: Some(stage) };
        let ex = easel_core::explain::explain(&loaded, &img, &m, None, easel_core::progress::Progress::none(), &mut |_, _, _| {}).unwrap();
        assert_eq!(ex.map.values.len(), 64 * 64);
    }
}

/// `hash_unit` of `fixtures/resnet/make_formula_logits.py`: exact integer hash -> [-1, 1).
fn hash_unit(i: u64, t: u64) -> f64 {
    let m = 0xFFFF_FFFFu64;
    let mut h = (i.wrapping_mul(2_654_435_761).wrapping_add(t * 97_531 + 1)) & m;
    h ^= h >> 15;
    h = h.wrapping_mul(2_246_822_519) & m;
    h ^= h >> 13;
    h as f64 / 2f64.powi(31) - 1.0
}

fn formula_card(depth: usize, dir: &std::path::Path) -> std::path::PathBuf {
    let arch = Architecture::Resnet(easel_core::models::ResNetConfig { depth, num_classes: 10 });
    let net = arch.init(&cpu()).unwrap();
    let mut tensors = net.torch_tensors(&arch).unwrap();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    for (t, (name, host)) in tensors.iter_mut().enumerate() {
        let fan_in: usize = host.shape.iter().skip(1).product();
        for (i, v) in host.data.iter_mut().enumerate() {
            let u = hash_unit(i as u64, t as u64);
            *v = if name.ends_with("running_var") {
                1.0 + 0.5 * u * u
            } else if name.ends_with("running_mean") || name.ends_with("bias") {
                0.1 * u
            } else if host.shape.len() >= 2 {
                u * (6.0 / fan_in as f64).sqrt()
            } else {
                1.0 + 0.2 * u
            } as f32;
        }
    }
    write_model(dir, &format!("formula ResNet-{depth}"), arch, &tensors, (80, 72))
}

/// Write `tensors` as safetensors plus a 10-class card (RGB, `height` x `width`) into `dir`;
/// returns the card's path.
fn write_model(
    dir: &std::path::Path,
    name: &str,
    arch: Architecture,
    tensors: &[(String, easel_core::weights::HostTensor)],
    (height, width): (usize, usize),
) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    easel_core::weights::write_safetensors(&dir.join("weights.safetensors"), tensors).unwrap();
    let card = ModelCard {
        format: CARD_FORMAT.into(),
        name: name.into(),
        architecture: arch,
        weights: "weights.safetensors".into(),
        input: InputSpec {
            channels: 3,
            height,
            width,
            resize: ResizeMode::Stretch,
            crop_fraction: 0.875,
            scale: 1.0 / 255.0,
            mean: vec![0.5; 3],
            std: vec![0.25; 3],
        },
        classes: (0..10).map(|i| format!("c{i}")).collect(),
        source: String::new(),
        license: String::new(),
        metrics: serde_json::Value::Null,
    };
    card.save(&dir.join("card.json")).unwrap();
    dir.join("card.json")
}

#[test]
fn resnet18_and_resnet50_compute_torchvisions_logits() {
    let dev = cpu();
    for depth in [18, 50] {
        let dir = std::env::temp_dir().join(format!("easel-resnet-formula-{depth}-{}", std::process::id()));
        let model = Classifier::load(&formula_card(depth, &dir), &dev).unwrap();
        let x: Vec<f32> = (0..2 * 3 * 80 * 72).map(|j| hash_unit(j, 1000) as f32).collect();
        let ours: Vec<f32> = model.logits(model.tensor_from(x, 2)).unwrap().concat();
        let theirs = read_npy(&fixture(&format!("resnet/resnet{depth}_formula_logits.npy")));
        let err = max_rel_err(&ours, &theirs.data);
        assert!(err < 1e-4, "ResNet-{depth}: logits differ from torchvision by {err} of the largest\n ours {ours:?}\n torch {:?}", theirs.data);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
