//! Devices: `auto` always answers, the CPU always works, and where wgpu has any adapter (a
//! GPU, or a software rasteriser such as llvmpipe) it gives the CPU's logits within 1e-4.

mod common;

use common::*;
use easel_core::device::{DeviceChoice, select_device};
use easel_core::models::Classifier;

#[test]
fn auto_and_cpu_always_answer() {
    let auto = select_device(DeviceChoice::Auto).expect("auto never fails");
    assert!(auto.info.kind == "cpu" || auto.info.kind == "wgpu");
    assert!(!auto.info.reason.is_empty());
    let cpu = select_device(DeviceChoice::Cpu).unwrap();
    assert_eq!(cpu.info.backend, "flex");
}

#[test]
fn wgpu_matches_the_cpu_where_it_exists() {
    let gpu = match select_device(DeviceChoice::Wgpu) {
        Ok(g) => g,
        Err(e) => {
            // No adapter here: what matters is a clear error instead of a panic or a hang.
            assert!(e.to_string().contains("wgpu is not available"), "{e}");
            eprintln!("no wgpu adapter on this machine: {e}");
            return;
        }
    };
    eprintln!("wgpu adapter: {}", gpu.info.summary());
    for name in ["smallcnn_fashion", "rgb_cnn_random"] {
        let dir = fixture(name);
        let cpu_model = Classifier::load(&dir.join("card.json"), &cpu()).unwrap();
        let gpu_model = Classifier::load(&dir.join("card.json"), &gpu.device).unwrap();
        let img = easel_core::imaging::load_prepared(&dir.join("input.png"), &cpu_model.card.input).unwrap();
        let a = cpu_model.logits(cpu_model.input_batch(&[&img, &img]).unwrap()).unwrap();
        let b = gpu_model.logits(gpu_model.input_batch(&[&img, &img]).unwrap()).unwrap();
        for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
            assert!((x - y).abs() < 1e-4, "{name}: cpu {x} vs wgpu {y}");
        }
    }
}
