//! EfficientNet-Lite0 with its real ImageNet weights from `assets/`: the shipped photos are
//! classified right, Grad-CAM looks at the cat, and FGSM at 2/255 changes the top-1 class.

mod common;

use common::*;
use easel_core::explain::{self, AttackParams, Method};
use easel_core::imaging::{self, PreparedImage};
use easel_core::models::{Classifier, read_floats};
use easel_core::predict::top_k;
use easel_core::progress::Progress;

fn model() -> Classifier {
    Classifier::load(&asset("efficientnet-lite0/card.json"), &cpu()).expect("the shipped EfficientNet-Lite0 loads")
}

fn top1(m: &Classifier, img: &PreparedImage) -> (usize, String) {
    let l = m.logits(m.input_batch(&[img]).unwrap()).unwrap().remove(0);
    let t = top_k(&l, 1, &m.card.classes).remove(0);
    (t.class_index, t.class)
}

/// ImageNet's domestic cat classes: tabby, tiger cat, Persian, Siamese, Egyptian cat.
const CAT_CLASSES: std::ops::RangeInclusive<usize> = 281..=285;

#[test]
fn shipped_photos_are_classified_right() {
    let m = model();
    let coffee = imaging::load_prepared(&asset("photos/coffee.png"), &m.card.input).unwrap();
    assert_eq!(top1(&m, &coffee).1, "espresso");
    let cat = imaging::load_prepared(&asset("photos/chelsea.png"), &m.card.input).unwrap();
    let (k, name) = top1(&m, &cat);
    assert!(CAT_CLASSES.contains(&k), "the cat photo is a {name}");
}

fn peak(map: &explain::SaliencyMap) -> (usize, usize) {
    let i = map.values.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
    (i % map.width, i / map.width)
}

#[test]
fn grad_cam_peaks_on_the_cat() {
    let m = model();
    // The photo itself: after the centre crop the cat fills the frame but for the background
    // at the top right.
    let cat = imaging::load_prepared(&asset("photos/chelsea.png"), &m.card.input).unwrap();
    let ex = explain::explain(&m, &cat, &Method::Gradcam { stage: None }, None, Progress::none(), &mut |_, _, _| {}).unwrap();
    let (x, y) = peak(&ex.map);
    assert!(x < 190 && y > 20, "peak at ({x}, {y})");

    // A harder case: the cat small in the top-left corner of a grey picture.
    let photo = imaging::load_image(&asset("photos/chelsea.png")).unwrap();
    let small = photo.resize_exact(120, 80, image::imageops::FilterType::Triangle).to_rgb8();
    let mut canvas = image::RgbImage::from_pixel(224, 224, image::Rgb([128, 128, 128]));
    image::imageops::overlay(&mut canvas, &small, 8, 8);
    let img = imaging::prepare(&image::DynamicImage::ImageRgb8(canvas), &m.card.input);
    let ex = explain::explain(&m, &img, &Method::Gradcam { stage: None }, Some(282), Progress::none(), &mut |_, _, _| {}).unwrap();
    let (x, y) = peak(&ex.map);
    assert!(x < 8 + 120 + 16 && y < 8 + 80 + 16, "peak at ({x}, {y}) is off the cat");
}

#[test]
fn fgsm_at_two_levels_changes_the_top_class() {
    let m = model();
    let cat = imaging::load_prepared(&asset("photos/chelsea.png"), &m.card.input).unwrap();
    let params = AttackParams { epsilon: 2.0 / 255.0, steps: 1, step_size: 2.0 / 255.0, ..AttackParams::default() };
    let ex = explain::explain(&m, &cat, &Method::Fgsm(params), None, Progress::none(), &mut |_, _, _| {}).unwrap();
    let adv = ex.adversarial.unwrap();
    assert!(adv.changed_top1, "{} stayed {}", adv.top_before[0].class, adv.top_after[0].class);
    assert!(adv.linf <= 2.0 / 255.0 + 1e-6, "L-inf {}", adv.linf);
    // what the saved PNG holds is what was scored
    assert_eq!(top1(&m, &adv.image).0, adv.top_after[0].class_index);
}

/// Inference runs on a copy with every BatchNorm folded into its convolution: the same logits
/// and the same Grad-CAM stage activations as the network with its 49 BatchNorms, and that
/// network is what stays in `net` (randomisation and export read it).
#[test]
fn folded_batch_norms_compute_the_same_function() {
    let m = model();
    let cat = imaging::load_prepared(&asset("photos/chelsea.png"), &m.card.input).unwrap();
    let x = m.input_batch(&[&cat]).unwrap();
    let full = read_floats(m.net.forward(x.clone())).unwrap();
    let folded = read_floats(m.inference().forward(x.clone())).unwrap();
    let scale = full.iter().fold(0f32, |a, v| a.max(v.abs()));
    let diff = full.iter().zip(&folded).fold(0f32, |a, (p, q)| a.max((p - q).abs()));
    assert!(diff < 1e-4 * scale, "folded logits differ by {diff} (largest |logit| {scale})");
    for stage in [0, 8, m.net.num_stages() - 1] {
        let a = read_floats(m.net.forward_to(x.clone(), stage)).unwrap();
        let b = read_floats(m.inference().forward_to(x.clone(), stage)).unwrap();
        let s = a.iter().fold(0f32, |acc, v| acc.max(v.abs()));
        let d = a.iter().zip(&b).fold(0f32, |acc, (p, q)| acc.max((p - q).abs()));
        assert!(d < 1e-4 * s.max(1.0), "stage {stage}: {d} of {s}");
    }
    let names = m.net.torch_tensors(&m.card.architecture).unwrap();
    assert!(names.iter().any(|(n, _)| n == "_blocks.3._bn1.running_var"), "the BatchNorms stay in `net`");
}
