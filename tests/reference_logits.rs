//! Both reference fixtures (Captum's own model and input) give the same input tensor and the
//! same logits in easel, within 1e-4.

mod common;

use common::*;
use easel_core::models::Classifier;

fn check_fixture(name: &str) {
    let dir = fixture(name);
    let model = Classifier::load(&dir.join("card.json"), &cpu()).expect("fixture loads");
    let img = easel_core::imaging::load_prepared(&dir.join("input.png"), &model.card.input).unwrap();
    let x = easel_core::imaging::normalise(&img, &model.card.input);
    let want_x = read_npy(&dir.join("input.npy"));
    assert_eq!(want_x.data.len(), x.len());
    let ex = max_rel_err(&x, &want_x.data);
    assert!(ex < 1e-6, "{name}: input differs from input.npy by {ex}");

    let logits = model.logits(model.input_batch(&[&img]).unwrap()).unwrap().remove(0);
    let want = read_npy(&dir.join("logits.npy"));
    let worst = logits.iter().zip(&want.data).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(worst < 1e-4, "{name}: logits differ by {worst}: {logits:?} vs {:?}", want.data);
}

#[test]
fn fashion_fixture_logits_match_pytorch() {
    check_fixture("smallcnn_fashion");
}

#[test]
fn rgb_fixture_logits_match_pytorch() {
    check_fixture("rgb_cnn_random");
}
