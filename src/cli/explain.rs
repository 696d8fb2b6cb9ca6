//! `easel explain`: one explanation of one image, written as `<method>.npy`, a PNG rendered
//! with the chosen options, and `meta.json`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use easel::explain::{self, sanity, Baseline, Fill, IgMethod, Method, Roi};
use easel::models::Classifier;
use easel::predict::top_k;
use easel::progress::Progress;
use easel::render::{self, Colormap, Mode, RenderOptions, Scale, Sign};
use easel::{fsutil, imaging, npy};
use serde_json::json;

use super::DeviceArg;

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// Model card (JSON), or a weights file with its card beside it.
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub image: PathBuf,
    /// occlusion, saliency, gradient, grad-x-input, ig, smoothgrad, vargrad, gradcam, fgsm, pgd.
    #[arg(long)]
    pub method: String,
    /// Class index to explain (default: the predicted class).
    #[arg(long)]
    pub target: Option<usize>,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace files from an earlier run in --out.
    #[arg(long)]
    pub force: bool,

    /// Occlusion window side in pixels (Captum's sliding_window_shapes=(C, w, w)).
    #[arg(long)]
    pub window: Option<usize>,
    /// Occlusion stride in pixels.
    #[arg(long)]
    pub stride: Option<usize>,
    /// Picasso preset: window as a fraction of the side (0.05 ... 0.5); with --windows.
    #[arg(long)]
    pub window_fraction: Option<f32>,
    /// Picasso preset: windows per axis.
    #[arg(long)]
    pub windows: Option<usize>,
    /// Occlusion fill: a number (normalised space, Captum's baselines), grey, black, white,
    /// mean, or blur.
    #[arg(long)]
    pub fill: Option<String>,
    /// Occlusion region of interest: x,y,width,height in input pixels.
    #[arg(long)]
    pub roi: Option<String>,
    /// Images per forward pass (occlusion copies, IG path points, SmoothGrad samples).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Integrated-gradients steps, or PGD iterations.
    #[arg(long)]
    pub steps: Option<usize>,
    #[arg(long, default_value = "gausslegendre")]
    pub ig_method: String,
    /// IG baseline: zero, black or blur.
    #[arg(long, default_value = "zero")]
    pub baseline: String,
    /// SmoothGrad / VarGrad samples.
    #[arg(long)]
    pub samples: Option<usize>,
    /// SmoothGrad noise sigma as a fraction of the input range.
    #[arg(long)]
    pub noise: Option<f32>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// FGSM/PGD epsilon in pixel space [0, 1] (e.g. 0.00784 = 2/255).
    #[arg(long)]
    pub epsilon: Option<f32>,
    /// PGD step size in [0, 1] pixel units.
    #[arg(long)]
    pub step_size: Option<f32>,
    /// Targeted attack: the class to push the image towards.
    #[arg(long)]
    pub attack_target: Option<usize>,
    /// Grad-CAM layer (name such as conv3, layer4, head, or stage index).
    #[arg(long)]
    pub layer: Option<String>,

    /// heat-map, blended, masked, alpha.
    #[arg(long, default_value = "blended")]
    pub mode: String,
    /// positive, negative, absolute, all (default: all for signed maps, absolute otherwise).
    #[arg(long)]
    pub sign: Option<String>,
    #[arg(long)]
    pub colormap: Option<String>,
    /// Percent of attribution mass clipped as outliers.
    #[arg(long, default_value_t = 2.0)]
    pub clip: f32,
    /// A fixed absolute scale shared across images (default: per image).
    #[arg(long)]
    pub scale: Option<f32>,
    #[arg(long, default_value_t = 0.5)]
    pub alpha: f32,
    /// Sanity check: none, quick (fully randomised model only) or cascade (top-down).
    /// Default: quick for gradient maps and Grad-CAM, none for occlusion and attacks.
    #[arg(long)]
    pub sanity: Option<String>,
    /// Also compute deletion and insertion curves and their AUC.
    #[arg(long)]
    pub curves: bool,
    #[command(flatten)]
    pub device: DeviceArg,
}

fn parse_fill(s: &str) -> Result<Fill> {
    Ok(match s {
        "grey" | "gray" => Fill::Pixel(128),
        "black" => Fill::Pixel(0),
        "white" => Fill::Pixel(255),
        "mean" => Fill::ImageMean,
        "blur" => Fill::Blur(4.0),
        v => Fill::Constant(v.parse().with_context(|| format!("--fill '{v}': a number, grey, black, white, mean or blur"))?),
    })
}

fn build_method(args: &ExplainArgs, model: &Classifier) -> Result<Method> {
    let spec = &model.card.input;
    let mut method = Method::default_for(&args.method, spec.height, spec.width)?;
    match &mut method {
        Method::Occlusion(p) => {
            if let Some(f) = &args.fill {
                p.fill = parse_fill(f)?;
            }
            if let (Some(frac), Some(n)) = (args.window_fraction, args.windows) {
                *p = explain::OcclusionParams { batch_size: p.batch_size, ..explain::OcclusionParams::picasso(spec.height, spec.width, frac, n, p.fill.clone())? };
            }
            if let Some(w) = args.window {
                p.window = (w, w);
            }
            if let Some(s) = args.stride {
                p.stride = (s, s);
            }
            if let Some(b) = args.batch_size {
                p.batch_size = b;
            }
            if let Some(r) = &args.roi {
                let v: Vec<usize> = r.split(',').map(|t| t.trim().parse()).collect::<Result<_, _>>().context("--roi x,y,width,height")?;
                if v.len() != 4 {
                    bail!("--roi needs four numbers: x,y,width,height");
                }
                p.roi = Some(Roi { x: v[0], y: v[1], width: v[2], height: v[3] });
            }
            p.validate(spec.height, spec.width)?;
        }
        Method::Ig(p) => {
            if let Some(s) = args.steps {
                p.steps = s;
            }
            if let Some(b) = args.batch_size {
                p.internal_batch_size = b;
            }
            p.method = match args.ig_method.as_str() {
                "gausslegendre" => IgMethod::Gausslegendre,
                "trapezoid" | "riemann_trapezoid" => IgMethod::Trapezoid,
                o => bail!("--ig-method '{o}': use gausslegendre or trapezoid"),
            };
            p.baseline = match args.baseline.as_str() {
                "zero" => Baseline::Zero,
                "black" => Baseline::Black,
                "blur" => Baseline::Blur((spec.height.max(spec.width) as f32 / 16.0).max(1.0)),
                other => Baseline::Image(imaging::load_prepared(Path::new(other), spec).with_context(|| format!("--baseline {other}: zero, black, blur or an image file"))?),
            };
        }
        Method::Smoothgrad(p) | Method::Vargrad(p) => {
            if let Some(s) = args.samples {
                p.samples = s;
            }
            if let Some(n) = args.noise {
                p.noise = n;
            }
            if let Some(b) = args.batch_size {
                p.batch_size = b;
            }
            p.seed = args.seed;
        }
        Method::Gradcam { stage } => {
            if let Some(l) = &args.layer {
                *stage = Some(explain::gradcam::stage_by_name(model, l)?);
            }
        }
        Method::Fgsm(p) | Method::Pgd(p) => {
            let fgsm = args.method == "fgsm";
            if let Some(e) = args.epsilon {
                p.epsilon = e;
                if fgsm {
                    p.step_size = e;
                }
            }
            if !fgsm {
                if let Some(s) = args.steps {
                    p.steps = s;
                }
                if let Some(s) = args.step_size {
                    p.step_size = s;
                }
            }
            p.target_class = args.attack_target;
            p.seed = args.seed;
        }
        Method::Saliency | Method::Gradient | Method::GradXInput => {}
    }
    Ok(method)
}

fn parse_render(args: &ExplainArgs, method: &Method) -> Result<RenderOptions> {
    let signed = method.is_signed();
    let sign = match args.sign.as_deref() {
        None => if signed { Sign::All } else { Sign::Absolute },
        Some("positive") => Sign::Positive,
        Some("negative") => Sign::Negative,
        Some("absolute") => Sign::Absolute,
        Some("all") => Sign::All,
        Some(o) => bail!("--sign '{o}': positive, negative, absolute or all"),
    };
    let colormap: Colormap = match &args.colormap {
        Some(c) => c.parse().map_err(anyhow::Error::msg)?,
        None => if sign == Sign::All { Colormap::Diverging } else { Colormap::Inferno },
    };
    let mode = match args.mode.as_str() {
        "heat-map" | "heat_map" => Mode::HeatMap,
        "blended" | "blended-heat-map" => Mode::BlendedHeatMap,
        "masked" | "masked-image" => Mode::MaskedImage,
        "alpha" | "alpha-scaling" => Mode::AlphaScaling,
        o => bail!("--mode '{o}': heat-map, blended, masked or alpha"),
    };
    if !(0.0..100.0).contains(&args.clip) {
        bail!("--clip {} must be in [0, 100)", args.clip);
    }
    Ok(RenderOptions {
        mode,
        sign,
        colormap,
        outlier_percent: args.clip,
        scale: args.scale.map(Scale::Fixed).unwrap_or(Scale::PerImage),
        alpha: args.alpha,
        colour_bar: true,
    })
}

pub fn run(args: ExplainArgs) -> Result<ExitCode> {
    // Cheap checks first, so a typo does not wait for a model to load.
    if !easel::explain::METHOD_NAMES.contains(&args.method.as_str()) {
        bail!("unknown method '{}': use one of {}", args.method, easel::explain::METHOD_NAMES.join(", "));
    }
    let device = args.device.open()?;
    let model = Classifier::load(&args.model, &device.device).with_context(|| format!("cannot load the model {}", args.model.display()))?;
    let image = imaging::load_prepared(&args.image, &model.card.input)?;
    let method = build_method(&args, &model)?;
    let opts = parse_render(&args, &method)?;
    if let Some(t) = args.target {
        explain::check_target(&model, t)?;
    }
    let name = method.name();
    let files: Vec<PathBuf> = [format!("{name}.npy"), format!("{name}.png"), "meta.json".into()].iter().map(|f| args.out.join(f)).collect();
    if !args.force {
        if let Some(existing) = files.iter().find(|f| f.exists()) {
            bail!("{} already exists; pass --force to replace it", existing.display());
        }
    }
    let logits = model.logits(model.input_batch(&[&image]))?.remove(0);
    let top = top_k(&logits, 5.min(model.num_classes()), &model.card.classes);
    let ex = explain::explain(&model, &image, &method, args.target, Progress::none(), &mut |_, done, total| {
        if done == total || done % 64 == 0 {
            eprint!("\r  {done}/{total} windows");
        }
    })?;
    if matches!(method, Method::Occlusion(_)) {
        eprintln!();
    }
    fsutil::ensure_dir(&args.out)?;
    let spec = &model.card.input;
    let upscale = render::upscale_for(spec.height.max(spec.width), 256);
    let sanity_mode = args.sanity.clone().unwrap_or_else(|| {
        if method.is_attack() || matches!(method, Method::Occlusion(_)) { "none".into() } else { "quick".into() }
    });
    let sanity_report = match sanity_mode.as_str() {
        "none" => None,
        m @ ("quick" | "cascade") => {
            if method.is_attack() {
                bail!("--sanity applies to attribution maps, not to attacks");
            }
            let target = ex.target;
            let mut map_of = |m: &Classifier| -> easel::Result<easel::explain::SaliencyMap> {
                Ok(explain::explain(m, &image, &method, Some(target), Progress::none(), &mut |_, _, _| {})?.map)
            };
            Some(sanity::sanity_check(&model, &ex.map, m == "cascade", args.seed, Progress::none(), &mut map_of)?)
        }
        o => bail!("--sanity '{o}': none, quick or cascade"),
    };
    let curves = if args.curves && !method.is_attack() {
        let x = imaging::normalise(&image, spec);
        Some((
            sanity::perturbation_curve(&model, &x, &ex.map, ex.target, 20, false, Progress::none())?,
            sanity::perturbation_curve(&model, &x, &ex.map, ex.target, 20, true, Progress::none())?,
        ))
    } else {
        None
    };

    let mut meta = json!({
        "method": name,
        "settings": method,
        "render": opts,
        "image": args.image.display().to_string(),
        "model": model.card.name,
        "model_card": model.card_path.display().to_string(),
        "model_hash": model.hash,
        "device": device.info,
        "target": ex.target,
        "target_class": model.class_name(ex.target),
        "top_k": top,
        "elapsed_secs": ex.elapsed_secs,
        "convergence_delta": ex.convergence_delta,
        "layer": ex.layer,
        "map_shape": ex.map.shape(matches!(method, Method::Gradcam { .. })),
        "map_sum": ex.map.sum(),
        "map_max_abs": ex.map.max_abs(),
    });
    if let Some(s) = &sanity_report {
        meta["sanity"] = json!(s);
        meta["sanity_score"] = json!(s.score);
    }
    if let Some((del, ins)) = &curves {
        meta["deletion"] = json!(del);
        meta["insertion"] = json!(ins);
        meta["deletion_auc"] = json!(del.auc);
        meta["insertion_auc"] = json!(ins.auc);
    }
    if let Some(adv) = &ex.adversarial {
        meta["adversarial"] = json!(adv);
        npy::write_npy(&files[0], &ex.map.shape(false), &adv.pixels)?;
        fsutil::write_atomic(&files[1], &png_bytes(&render::image_picture(&adv.image, upscale))?)?;
        let pert = render::perturbation_picture(&adv.perturbation, spec.channels, spec.height, spec.width, upscale);
        fsutil::write_atomic(&args.out.join(format!("{name}-perturbation.png")), &png_bytes(&pert)?)?;
        fsutil::write_atomic(&args.out.join("original.png"), &png_bytes(&render::image_picture(&image, upscale))?)?;
        eprintln!(
            "easel: {} -> {} (top-1 {} -> {}, L-inf {:.4})",
            name,
            files[1].display(),
            adv.top_before[0].class,
            adv.top_after[0].class,
            adv.linf
        );
    } else {
        let squeeze = matches!(method, Method::Gradcam { .. });
        npy::write_npy(&files[0], &ex.map.shape(squeeze), &ex.map.values)?;
        let (pic, threshold) = render::render(&ex.map, &image, &opts, upscale);
        meta["render_scale"] = json!(threshold);
        fsutil::write_atomic(&files[1], &png_bytes(&pic)?)?;
        eprintln!("easel: {} of class {} ({}) -> {}", name, ex.target, model.class_name(ex.target), files[1].display());
    }
    fsutil::write_atomic(&files[2], serde_json::to_string_pretty(&meta)?.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

pub fn png_bytes(img: &image::RgbaImage) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)?;
    Ok(out)
}
