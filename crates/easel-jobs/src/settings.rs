//! Methods built from typed settings, in one place: the CLI's flags ([`MethodArgs`],
//! [`RenderArgs`]) and the app's Adversarial settings ([`AttackSettings`]) become a
//! [`Method`] and [`RenderOptions`] through the functions here, which take every default from
//! `easel_core` (`Method::defaults`, `Fill::presets`, `AttackParams::pgd`, ...), so the two
//! front-ends cannot drift.

use std::path::Path;

use easel_core::error::{Error, Result};
use easel_core::explain::{self, AttackParams, Baseline, Fill, IgMethod, Method, MethodKind, NoiseBase, OcclusionParams, Roi};
use easel_core::imaging;
use easel_core::models::Classifier;
use easel_core::render::{Colormap, Mode, RenderOptions, Scale, Sign};
use serde::{Deserialize, Serialize};

/// A method's settings as command-line flags; each one left out keeps the method's default.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct MethodArgs {
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
    /// Occlusion fill: a number (normalised space, Captum's baselines), zero, grey, black,
    /// white, mean, or blur.
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
    #[arg(long, value_enum)]
    pub ig_method: Option<IgMethod>,
    /// IG baseline: zero, black, blur, or an image file.
    #[arg(long)]
    pub baseline: Option<String>,
    /// SmoothGrad / VarGrad samples.
    #[arg(long)]
    pub samples: Option<usize>,
    /// SmoothGrad / VarGrad noise sigma as a fraction of the input range.
    #[arg(long)]
    pub noise: Option<f32>,
    /// The attribution SmoothGrad / VarGrad average under noise (Captum's NoiseTunnel base).
    #[arg(long, value_enum)]
    pub noise_base: Option<NoiseBase>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// FGSM/PGD epsilon in pixel space [0, 1] (e.g. 0.00784 = 2/255).
    #[arg(long)]
    pub epsilon: Option<f32>,
    /// PGD step size in [0, 1] pixel units (default: epsilon / 4).
    #[arg(long)]
    pub step_size: Option<f32>,
    /// Targeted attack: the class to push the image towards.
    #[arg(long)]
    pub attack_target: Option<usize>,
    /// Grad-CAM layer (name such as conv3, layer4, head, or stage index).
    #[arg(long)]
    pub layer: Option<String>,
}

fn parse_roi(r: &str) -> Result<Roi> {
    let v: Vec<usize> = r
        .split(',')
        .map(|t| t.trim().parse())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::invalid(format!("--roi '{r}': four whole numbers x,y,width,height")))?;
    match v.as_slice() {
        [x, y, width, height] => Ok(Roi { x: *x, y: *y, width: *width, height: *height }),
        _ => Err(Error::invalid("--roi needs four numbers: x,y,width,height")),
    }
}

impl MethodArgs {
    /// The method `kind` for `model`: its defaults, then every flag given.
    pub fn method(&self, kind: MethodKind, model: &Classifier) -> Result<Method> {
        let spec = &model.card.input;
        let (h, w) = (spec.height, spec.width);
        let mut method = Method::defaults(kind, h, w);
        match &mut method {
            Method::Occlusion(p) => {
                if let Some(f) = &self.fill {
                    p.fill = Fill::parse(f, h, w)?;
                }
                match (self.window_fraction, self.windows) {
                    (Some(frac), Some(n)) => *p = OcclusionParams { batch_size: p.batch_size, ..OcclusionParams::picasso(h, w, frac, n, p.fill.clone())? },
                    (None, None) => {}
                    _ => return Err(Error::invalid("--window-fraction and --windows go together")),
                }
                if let Some(win) = self.window {
                    p.window = (win, win);
                }
                if let Some(s) = self.stride {
                    p.stride = (s, s);
                }
                if let Some(b) = self.batch_size {
                    p.batch_size = b;
                }
                if let Some(r) = &self.roi {
                    p.roi = Some(parse_roi(r)?);
                }
                p.validate(h, w)?;
            }
            Method::Ig(p) => {
                if let Some(s) = self.steps {
                    p.steps = s;
                }
                if let Some(b) = self.batch_size {
                    p.internal_batch_size = b;
                }
                if let Some(m) = self.ig_method {
                    p.method = m;
                }
                if let Some(b) = &self.baseline {
                    p.baseline = match Baseline::parse(b, h, w) {
                        Some(b) => b,
                        None => Baseline::Image(
                            imaging::load_prepared(Path::new(b), spec)
                                .map_err(|e| Error::invalid(format!("--baseline {b}: zero, black, blur or an image file ({e})")))?,
                        ),
                    };
                }
                explain::integrated::path_points(p.steps, p.method)?;
            }
            Method::Smoothgrad(p) | Method::Vargrad(p) => {
                if let Some(s) = self.samples {
                    p.samples = s;
                }
                if let Some(n) = self.noise {
                    p.noise = n;
                }
                if let Some(b) = self.batch_size {
                    p.batch_size = b;
                }
                if let Some(b) = self.noise_base {
                    p.base = b;
                }
                if let Some(s) = self.steps {
                    p.ig_steps = s;
                }
                p.seed = self.seed;
                p.validate()?;
            }
            Method::Gradcam { stage } => {
                if let Some(l) = &self.layer {
                    *stage = Some(explain::gradcam::stage_by_name(model, l)?);
                }
            }
            Method::Fgsm(p) => {
                if let Some(e) = self.epsilon {
                    *p = AttackParams::fgsm(e);
                }
                p.target_class = self.attack_target;
                p.seed = self.seed;
            }
            Method::Pgd(p) => {
                let eps = self.epsilon.unwrap_or(p.epsilon);
                *p = AttackParams::pgd(eps, self.steps.unwrap_or(p.steps));
                if let Some(s) = self.step_size {
                    p.step_size = s;
                }
                p.target_class = self.attack_target;
                p.seed = self.seed;
            }
            Method::Saliency | Method::Gradient | Method::GradXInput => {}
        }
        if let Method::Fgsm(p) | Method::Pgd(p) = &method {
            check_attack(p, model.num_classes())?;
        }
        Ok(method)
    }
}

fn check_attack(p: &AttackParams, k: usize) -> Result<()> {
    if !(p.epsilon > 0.0 && p.epsilon <= 1.0) {
        return Err(Error::invalid(format!("epsilon {} must be in (0, 1] (pixel space: 2/255 = 0.0078)", p.epsilon)));
    }
    if p.steps == 0 || p.steps > AttackParams::MAX_STEPS {
        return Err(Error::invalid(format!("the attack needs 1..={} steps", AttackParams::MAX_STEPS)));
    }
    if let Some(t) = p.target_class {
        explain::check_class_index(t, k)?;
    }
    Ok(())
}

/// How a map is drawn, as command-line flags.
#[derive(clap::Args, Debug, Clone)]
pub struct RenderArgs {
    #[arg(long, value_enum, default_value_t = Mode::BlendedHeatMap)]
    pub mode: Mode,
    /// Default: all for signed maps, absolute otherwise.
    #[arg(long, value_enum)]
    pub sign: Option<Sign>,
    /// Default: diverging for `--sign all`, inferno otherwise.
    #[arg(long, value_enum)]
    pub colormap: Option<Colormap>,
    /// Percent of attribution mass clipped as outliers.
    #[arg(long, default_value_t = 2.0)]
    pub clip: f32,
    /// A fixed absolute scale shared across images (default: per image).
    #[arg(long)]
    pub scale: Option<f32>,
    #[arg(long, default_value_t = 0.5)]
    pub alpha: f32,
}

impl RenderArgs {
    pub fn options(&self, method: &Method) -> Result<RenderOptions> {
        let mut o = RenderOptions::default().natural_for(method);
        if let Some(s) = self.sign {
            o.sign = s;
            o.colormap = if s == Sign::All { Colormap::Diverging } else { Colormap::Inferno };
        }
        if let Some(c) = self.colormap {
            o.colormap = c;
        }
        o.mode = self.mode;
        o.outlier_percent = self.clip;
        o.scale = self.scale.map(Scale::Fixed).unwrap_or(Scale::PerImage);
        o.alpha = self.alpha;
        o.validate()?;
        Ok(o)
    }
}

/// The Adversarial view's settings (persisted with the app's state).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AttackSettings {
    /// PGD (iterated) instead of FGSM (one step).
    pub pgd: bool,
    /// Epsilon in 8-bit levels (2 = 2/255).
    pub epsilon_levels: f32,
    pub steps: usize,
    /// Push towards this class instead of away from the predicted one.
    pub target: Option<usize>,
}

impl Default for AttackSettings {
    fn default() -> Self {
        AttackSettings { pgd: false, epsilon_levels: AttackParams::DEFAULT_EPSILON * 255.0, steps: AttackParams::DEFAULT_STEPS, target: None }
    }
}

impl AttackSettings {
    /// The same method `easel explain --method fgsm|pgd --epsilon E --steps N` builds.
    pub fn method(&self) -> Method {
        let eps = self.epsilon_levels / 255.0;
        let mut p = if self.pgd { AttackParams::pgd(eps, self.steps.max(1)) } else { AttackParams::fgsm(eps) };
        p.target_class = self.target;
        if self.pgd { Method::Pgd(p) } else { Method::Fgsm(p) }
    }
}
