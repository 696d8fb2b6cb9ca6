//! `easel bench`: speed figures as ratios against a baseline measured in the same run:
//! predict images/s at batch 1 against batched, and each explanation (the methods
//! `bench/captum_bench.py` compares with Captum: occlusion, saliency, IG-50, SmoothGrad-20,
//! Grad-CAM) against the same number of plain forward passes at batch 1; for occlusion also
//! the time to its first (coarse) picture.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use easel_core::explain::{self, Method, MethodKind};
use easel_core::imaging::{self, PreparedImage};
use easel_core::models::Classifier;
use easel_core::progress::Progress;
use serde_json::json;

use super::DeviceArg;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Folder with the shipped assets.
    #[arg(long, default_value = "assets")]
    pub assets: PathBuf,
    /// Repetitions of each timing (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Skip EfficientNet-Lite0's occlusion (about 30 s on two cores) and the fine-tuning figures.
    #[arg(long)]
    pub quick: bool,
    /// Skip the fine-tuning figures only (a few minutes on two cores).
    #[arg(long)]
    pub skip_finetune: bool,
    /// Images per class for the fine-tuning figures (EfficientNet-Lite0 on Fashion-MNIST test
    /// images written as a class-per-folder tree).
    #[arg(long, default_value_t = 8)]
    pub finetune_per_class: usize,
    /// Write the figures as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Replace an existing --json file.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub device: DeviceArg,
}

fn median_secs(repeat: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?; // warm-up: kernels, caches
    let mut t = Vec::new();
    for _ in 0..repeat.max(1) {
        let s = Instant::now();
        f()?;
        t.push(s.elapsed().as_secs_f64());
    }
    Ok(median(t).unwrap_or(0.0))
}

/// The middle value (the upper one of an even count); `None` for no values.
fn median(mut t: Vec<f64>) -> Option<f64> {
    t.sort_by(f64::total_cmp);
    t.get(t.len() / 2).copied()
}

/// Time `n` forward passes at batch 1 (the baseline every ratio is against).
fn forwards_batch1(model: &Classifier, img: &PreparedImage, n: usize) -> Result<f64> {
    let s = Instant::now();
    for _ in 0..n {
        model.logits(model.input_batch(&[img])?)?;
    }
    Ok(s.elapsed().as_secs_f64())
}

struct Case {
    name: &'static str,
    card: PathBuf,
    image: PathBuf,
    batch: usize,
}

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    if let Some(p) = args.json.as_ref().filter(|p| p.exists() && !args.force) {
        anyhow::bail!("{} already exists; pass --force to replace it", p.display());
    }
    if args.repeat > 1000 {
        anyhow::bail!("--repeat must be at most 1000");
    }
    let device = args.device.open()?;
    let cases = [
        Case {
            name: "small CNN (Fashion-MNIST demo)",
            card: args.assets.join("fashion-mnist/model/card.json"),
            image: args.assets.join("fashion-mnist/samples/0-ankle-boot.png"),
            batch: 64,
        },
        Case { name: "EfficientNet-Lite0", card: args.assets.join("efficientnet-lite0/card.json"), image: args.assets.join("photos/chelsea.png"), batch: 8 },
    ];
    let mut report = Vec::new();
    println!("device: {}", device.info.summary());
    for case in &cases {
        let model = Classifier::load(&case.card, &device.device).with_context(|| format!("{}", case.card.display()))?;
        let img = imaging::load_prepared(&case.image, &model.card.input)?;
        let spec = &model.card.input;
        println!("\n== {} ({}x{}x{}) ==", case.name, spec.channels, spec.height, spec.width);

        // predict: batch 1 against batched
        let n = case.batch * 2;
        let imgs: Vec<&PreparedImage> = std::iter::repeat_n(&img, case.batch).collect();
        let t1 = median_secs(args.repeat, || forwards_batch1(&model, &img, n).map(|_| ()))?;
        let tb = median_secs(args.repeat, || {
            for _ in 0..2 {
                model.logits(model.input_batch(&imgs)?)?;
            }
            Ok(())
        })?;
        let (ips1, ipsb) = (n as f64 / t1, n as f64 / tb);
        println!("predict   batch 1: {ips1:>9.1} images/s   batch {}: {ipsb:>9.1} images/s   ratio {:.2}x", case.batch, ipsb / ips1);
        let mut entry = json!({
            "model": case.name,
            "predict_images_per_sec_batch1": ips1,
            "predict_images_per_sec_batched": ipsb,
            "predict_batch": case.batch,
        });
        // `easel evaluate`'s path over the whole 10k test set, for the small CNN
        if spec.channels == 1 {
            let src = easel_core::data::resolve_source(&args.assets.join("fashion-mnist"), "t10k")?;
            let set = easel_core::data::load_source(&src, spec, &model.card.classes)?;
            let t = median_secs(1, || {
                easel_core::evaluate::evaluate(&model, &set, 256, Progress::none())?;
                Ok(())
            })?;
            let ips = set.len() as f64 / t;
            println!("evaluate  {} images: {:.1} s, {ips:.0} images/s ({:.2}x batch 1)", set.len(), t, ips / ips1);
            entry["evaluate_images_per_sec"] = json!(ips);
        }

        // explanations against the same number of batch-1 forwards
        let side = spec.height.min(spec.width);
        let mut methods: Vec<(&str, Method, usize)> = Vec::new();
        let occ = Method::defaults(MethodKind::Occlusion, spec.height, spec.width);
        let (windows, coarse) = match &occ {
            Method::Occlusion(p) => {
                let w = p.windows(spec.height, spec.width);
                (w.len() + 1, explain::occlusion::coarse_grid_len(&w))
            }
            _ => unreachable!(),
        };
        if !(args.quick && side > 64) {
            methods.push(("occlusion", occ, windows));
        }
        methods.push(("saliency", Method::Saliency, 1));
        let ig = Method::defaults(MethodKind::Ig, spec.height, spec.width);
        methods.push(("ig-50", ig, 52));
        let smoothgrad = match Method::defaults(MethodKind::Smoothgrad, spec.height, spec.width) {
            Method::Smoothgrad(p) => Method::Smoothgrad(explain::smoothgrad::NoiseParams { samples: 20, ..p }),
            m => m,
        };
        methods.push(("smoothgrad-20", smoothgrad, 20));
        methods.push(("grad-cam", Method::Gradcam { stage: None }, 1));
        for (name, method, forwards) in methods {
            let reps = if name == "occlusion" && side > 64 { 1 } else { args.repeat };
            let mut first = Vec::new();
            let t_method = median_secs(reps, || {
                let start = Instant::now();
                let mut seen = false;
                explain::explain(&model, &img, &method, None, Progress::none(), &mut |_, done, _| {
                    if !seen && done >= coarse {
                        seen = true;
                        first.push(start.elapsed().as_secs_f64());
                    }
                })?;
                Ok(())
            })?;
            if name == "occlusion"
                && let Some(t) = median(first.into_iter().skip(1).collect())
            // as median_secs: not the warm-up
            {
                println!("occlusion's first picture of the whole image ({coarse} windows of a coarse grid): {:>9.1} ms", t * 1e3);
                entry["occlusion_first_picture_ms"] = json!(t * 1e3);
            }
            let t_base = median_secs(reps, || forwards_batch1(&model, &img, forwards).map(|_| ()))?;
            println!("{name:<13} {:>9.1} ms   {forwards} forwards at batch 1: {:>9.1} ms   ratio {:.2}x", t_method * 1e3, t_base * 1e3, t_base / t_method);
            entry[format!("{name}_ms")] = json!(t_method * 1e3);
            entry[format!("{name}_baseline_forwards")] = json!(forwards);
            entry[format!("{name}_baseline_ms")] = json!(t_base * 1e3);
        }
        report.push(entry);
    }
    if !args.quick && !args.skip_finetune {
        report.push(finetune_figures(&args, &device.device)?);
    }
    if let Some(p) = &args.json {
        let v = json!({"device": device.info, "results": report});
        easel_core::fsutil::write_file(p, serde_json::to_string_pretty(&v)?.as_bytes(), args.force)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Fine-tuning EfficientNet-Lite0 on a small folder of one's own classes, both ways, on the
/// same folder in the same run: the frozen backbone's features computed once and a new output
/// layer trained on them (`easel finetune --head-only`), against a full fine-tune of every
/// layer (`--unfreeze-last 99`) for one epoch.
fn finetune_figures(args: &BenchArgs, device: &burn::tensor::Device) -> Result<serde_json::Value> {
    use easel_jobs::finetune::{self, FinetuneMode, FinetuneRequest, HeldOut};
    let per_class = args.finetune_per_class.clamp(2, 1000);
    let root = std::env::temp_dir().join(format!("easel-bench-finetune-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let result = (|| -> Result<serde_json::Value> {
        // a class-per-folder tree of Fashion-MNIST test images, as `easel export` writes it
        let classes = easel_core::data::fashion_classes();
        let src = easel_core::data::resolve_source(&args.assets.join("fashion-mnist"), "t10k")?;
        let set = easel_core::data::load_source(&src, &easel_core::data::fashion_input(), &classes)?;
        let mut taken = vec![0usize; classes.len()];
        let mut files = Vec::new();
        for i in 0..set.len() {
            let l = set.labels[i];
            if taken[l] >= per_class {
                continue;
            }
            taken[l] += 1;
            let img = set.image(i);
            let gray = image::GrayImage::from_raw(img.width as u32, img.height as u32, img.pixels).context("image size")?;
            let mut png = Vec::new();
            gray.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
            files.push((format!("{}/{i}.png", super::export::slug(&classes[l])), png));
        }
        let data = root.join("data");
        easel_core::fsutil::write_files(&data, &files, false)?;
        let request = |mode, epochs, out: &str| FinetuneRequest {
            model: args.assets.join("efficientnet-lite0/card.json"),
            data: data.clone(),
            held_out: HeldOut::Share(0.25),
            mode,
            head_lr_mult: 10.0,
            epochs,
            learning_rate: 1e-3,
            batch_size: 16,
            seed: 0,
            out: root.join(out),
            force: false,
        };
        let head_epochs = 20;
        println!("\n== fine-tuning EfficientNet-Lite0 on {} images ({per_class} per class, a quarter held out) ==", files.len());
        let head = finetune::run(&request(FinetuneMode::HeadOnly, head_epochs, "head"), device, &mut |_| {}, &mut |_, _| {}, Progress::none())?;
        let full = finetune::run(&request(FinetuneMode::UnfreezeLast(99), 1, "full"), device, &mut |_| {}, &mut |_, _| {}, Progress::none())?;
        let images = (head.train_images + head.test_images) as f64;
        let feature_ips = images / head.feature_seconds;
        let full_epoch = full.train_seconds;
        let head_total = head.feature_seconds + head.train_seconds;
        println!("features  {:.1} s for {images} images: {feature_ips:.1} images/s (computed once)", head.feature_seconds);
        println!("head      {head_epochs} epochs on the cached features: {:.2} s", head.train_seconds);
        println!("full      1 epoch of every layer: {full_epoch:.1} s ({:.1} images/s)", head.train_images as f64 / full_epoch);
        println!(
            "ratio     head-only, features + {head_epochs} epochs ({head_total:.1} s), against {head_epochs} full epochs (~{:.0} s): {:.1}x faster",
            full_epoch * head_epochs as f64,
            full_epoch * head_epochs as f64 / head_total
        );
        Ok(json!({
            "model": "EfficientNet-Lite0 fine-tune",
            "images": images,
            "feature_seconds": head.feature_seconds,
            "feature_images_per_sec": feature_ips,
            "head_epochs": head_epochs,
            "head_train_seconds": head.train_seconds,
            "full_epoch_seconds": full_epoch,
            "head_only_speedup_at_equal_epochs": full_epoch * head_epochs as f64 / head_total,
        }))
    })();
    let _ = std::fs::remove_dir_all(&root);
    result
}
