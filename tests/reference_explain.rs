//! Occlusion, saliency, the signed gradient and integrated gradients equal Captum's on both
//! reference fixtures (within 1e-4 of each map's largest magnitude), IG is complete within its
//! reported delta, and occlusion of a region the model provably ignores is exactly zero.

mod common;

use common::*;
use easel_core::explain::smoothgrad::{NoiseTunnelType, noise_tunnel_with};
use easel_core::explain::{self, Baseline, Fill, IgMethod, IgParams, Method, NoiseBase, NoiseParams, OcclusionParams};
use easel_core::imaging;
use easel_core::models::Classifier;
use easel_core::progress::Progress;

struct Fixture {
    model: Classifier,
    image: imaging::PreparedImage,
    meta: serde_json::Value,
    dir: std::path::PathBuf,
}

fn load(name: &str) -> Fixture {
    let dir = fixture(name);
    let model = Classifier::load(&dir.join("card.json"), &cpu()).unwrap();
    let image = imaging::load_prepared(&dir.join("input.png"), &model.card.input).unwrap();
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
    Fixture { model, image, meta, dir }
}

fn run(f: &Fixture, method: &Method) -> explain::Explanation {
    let target = f.meta["target"].as_u64().unwrap() as usize;
    explain::explain(&f.model, &f.image, method, Some(target), Progress::none(), &mut |_, _, _| {}).unwrap()
}

fn assert_matches(f: &Fixture, got: &[f32], file: &str) {
    let want = read_npy(&f.dir.join(file));
    let err = max_rel_err(got, &want.data);
    assert!(err < 1e-4, "{}: {file} differs by {err} of its largest magnitude", f.dir.display());
}

fn check_all(name: &str) {
    let f = load(name);
    let w = f.meta["window"].as_u64().unwrap() as usize;
    let s = f.meta["stride"].as_u64().unwrap() as usize;
    let occ = Method::Occlusion(OcclusionParams {
        window: (w, w),
        stride: (s, s),
        fill: Fill::Constant(f.meta["baseline"].as_f64().unwrap() as f32),
        batch_size: 16,
        roi: None,
    });
    assert_matches(&f, &run(&f, &occ).map.values, "occlusion.npy");
    assert_matches(&f, &run(&f, &Method::Saliency).map.values, "saliency.npy");
    assert_matches(&f, &run(&f, &Method::Gradient).map.values, "grad.npy");

    let steps = f.meta["ig_steps"].as_u64().unwrap() as usize;
    let ig = Method::Ig(IgParams { steps, method: IgMethod::Gausslegendre, baseline: Baseline::Zero, internal_batch_size: 7 });
    let r = run(&f, &ig);
    assert_matches(&f, &r.map.values, "ig.npy");

    // Completeness: sum(attributions) - delta = f(x) - f(baseline), and the delta is Captum's,
    // sign included.
    let delta = r.convergence_delta.unwrap() as f64;
    let target = r.target;
    let x = imaging::normalise(&f.image, &f.model.card.input);
    let ends = f.model.logits(f.model.tensor_from([x.clone(), vec![0.0; x.len()]].concat(), 2)).unwrap();
    let gap = (ends[0][target] - ends[1][target]) as f64;
    assert!((r.map.sum() - delta - gap).abs() < 1e-4 * gap.abs().max(1.0), "completeness");
    let captum_delta = f.meta["ig_convergence_delta"].as_f64().unwrap();
    assert!((delta - captum_delta).abs() < 1e-3 + 0.05 * captum_delta.abs(), "delta {delta} vs Captum's {captum_delta}");
    assert!((r.target_logit.unwrap() - ends[0][target]).abs() < 1e-5, "the target logit beside the delta");
}

#[test]
fn fashion_fixture_maps_match_captum() {
    check_all("smallcnn_fashion");
}

#[test]
fn rgb_fixture_maps_match_captum() {
    check_all("rgb_cnn_random");
}

#[test]
fn trapezoid_ig_converges_to_gauss_legendre() {
    let f = load("smallcnn_fashion");
    let gl = run(&f, &Method::Ig(IgParams { steps: 64, ..IgParams::default() }));
    let tr = run(&f, &Method::Ig(IgParams { steps: 400, method: IgMethod::Trapezoid, ..IgParams::default() }));
    // Captum's trapezoid weights sum to 1 - 1/n: the map is (1 - 1/n) of the integral's scale.
    assert!(max_rel_err(&tr.map.values, &gl.map.values) < 0.02);
}

/// Zero the first linear layer's weights for every feature in columns 4..7 of the last 7x7
/// feature map. Those features see only input columns >= 4*4-3; input columns >= 19 reach the
/// logits through nothing else, so occluding them cannot change any logit.
#[test]
fn occluding_a_provably_ignored_region_gives_exactly_zero() {
    let dir = fixture("smallcnn_fashion");
    let (card, card_path) = easel_core::card::ModelCard::load(&dir.join("card.json")).unwrap();
    let mut map = easel_core::weights::read_tensors(&dir.join("weights.safetensors")).unwrap();
    let fc1 = map.tensors.get_mut("fc1.weight").unwrap(); // [64, 32 * 7 * 7]
    let (out, inp) = (fc1.shape[0], fc1.shape[1]);
    for o in 0..out {
        for feat in 0..inp {
            if feat % 7 >= 4 {
                fc1.data[o * inp + feat] = 0.0;
            }
        }
    }
    let model = Classifier::from_tensors(card, card_path, &map, &cpu()).unwrap();
    let image = imaging::load_prepared(&dir.join("input.png"), &model.card.input).unwrap();
    let occ = Method::Occlusion(OcclusionParams { window: (4, 4), stride: (2, 2), fill: Fill::Constant(0.0), batch_size: 16, roi: None });
    let r = explain::explain(&model, &image, &occ, Some(9), Progress::none(), &mut |_, _, _| {}).unwrap();
    for y in 0..28 {
        for x in 22..28 {
            assert_eq!(r.map.values[y * 28 + x], 0.0, "pixel ({x}, {y}) is ignored by the model");
        }
    }
    let elsewhere = (0..28).flat_map(|y| (0..18).map(move |x| (x, y))).filter(|&(x, y)| r.map.values[y * 28 + x] != 0.0).count();
    assert!(elsewhere > 100, "the map should not be zero where the model looks");
}

#[test]
fn live_occlusion_reports_every_batch_and_cancels() {
    let f = load("smallcnn_fashion");
    let occ = Method::Occlusion(OcclusionParams { window: (4, 4), stride: (2, 2), fill: Fill::Constant(0.0), batch_size: 20, roi: None });
    let mut seen = Vec::new();
    let full = explain::explain(&f.model, &f.image, &occ, Some(9), Progress::none(), &mut |m, done, total| seen.push((done, total, m.clone()))).unwrap();
    assert_eq!(seen.len(), 169usize.div_ceil(20));
    assert_eq!(seen.last().unwrap().2, full.map);
    assert!(seen[0].2 != full.map, "the first partial map is partial");

    let cancel = std::sync::atomic::AtomicBool::new(false);
    let mut calls = 0;
    let res = explain::explain(&f.model, &f.image, &occ, Some(9), Progress::none().with_cancel(&cancel), &mut |_, _, _| {
        calls += 1;
        cancel.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    assert!(matches!(res, Err(easel_core::Error::Cancelled)));
    assert_eq!(calls, 1, "cancellation is checked between batches");
}

/// SmoothGrad and VarGrad are Captum's `NoiseTunnel` over each base attribution: fed the
/// noise Captum used (`make_noise_tunnel.py`), easel gives Captum's maps.
fn check_noise_tunnel(name: &str) {
    let f = load(name);
    let nt: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(f.dir.join("nt_meta.json")).unwrap()).unwrap();
    let noise = read_npy(&f.dir.join("nt_noise.npy"));
    let x = read_npy(&f.dir.join("input.npy")).data;
    let samples = nt["samples"].as_u64().unwrap() as usize;
    let n = x.len();
    let target = nt["target"].as_u64().unwrap() as usize;
    // the noise level is SmoothGrad's fraction of the input range
    let sigma = explain::smoothgrad::noise_sigma(&x, 0.15);
    assert!((sigma as f64 - nt["sigma"].as_f64().unwrap()).abs() < 1e-5);
    for (base, file) in [(NoiseBase::Saliency, "saliency"), (NoiseBase::Gradient, "gradient"), (NoiseBase::GradXInput, "grad_x_input"), (NoiseBase::Ig, "ig")] {
        for (nt_type, suffix) in [(NoiseTunnelType::Smoothgrad, "smoothgrad"), (NoiseTunnelType::Vargrad, "vargrad")] {
            let params = NoiseParams { samples, base, ig_steps: nt["ig_steps"].as_u64().unwrap() as usize, batch_size: 3, ..NoiseParams::default() };
            let noise_of = |i: usize| noise.data[i * n..(i + 1) * n].to_vec();
            let map = noise_tunnel_with(&f.model, &x, target, &params, nt_type, &noise_of, Progress::none()).unwrap();
            assert_matches(&f, &map.values, &format!("nt_{file}_{suffix}.npy"));
        }
    }
}

#[test]
fn fashion_noise_tunnels_match_captum() {
    check_noise_tunnel("smallcnn_fashion");
}

#[test]
fn rgb_noise_tunnels_match_captum() {
    check_noise_tunnel("rgb_cnn_random");
}
